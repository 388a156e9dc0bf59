//! The `release-config-validate` program, built inside the `tests` package so that its
//! end-to-end tests get `CARGO_BIN_EXE_e2e-release-config-validate` (Cargo only sets
//! `CARGO_BIN_EXE_*` for a package's own binaries). Keep this identical to
//! `crates/release-config-validate/src/main.rs`: all behaviour lives in the library.

use std::process::ExitCode;

use clap::Parser as _;
use release_config_validate::{Args, Environment, run};

fn main() -> ExitCode {
    // clap exits with status 2 on usage errors, as section 5 asks.
    let args = Args::parse();
    let env = Environment::from_process();
    let exit = run(
        &args,
        &env,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    exit.into()
}
