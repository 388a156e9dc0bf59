//! `release-config-validate`: the validator as an installable binary, for
//! release-config repositories that do not carry this workspace. All behaviour
//! lives in the library.

// A fleet's parse makes millions of small allocations; glibc's malloc spent
// a quarter of the profile on them (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    release_config_validate::process_main()
}
