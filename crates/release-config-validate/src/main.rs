//! `release-config-validate`: the validator as an installable binary, for
//! release-config repositories that do not carry this workspace.

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
