//! `release-config-validate`: the validator as an installable binary, for
//! release-config repositories that do not carry this workspace. All behaviour
//! lives in the library.

fn main() -> std::process::ExitCode {
    release_config_validate::process_main()
}
