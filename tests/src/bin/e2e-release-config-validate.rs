//! The `release-config-validate` program, built inside the `tests` package so
//! that its end-to-end tests get `CARGO_BIN_EXE_e2e-release-config-validate`.
//! Same entry point as `crates/release-config-validate/src/main.rs`.

fn main() -> std::process::ExitCode {
    release_config_validate::process_main()
}
