//! `model-registry-mcp`: parse the command line, run, map failures to exit codes
//! (0 done, 1 the server failed, 2 unusable command line or setting).

use std::process::ExitCode;

use model_registry_mcp::config::{CliError, Settings};

fn main() -> ExitCode {
    let (cli, settings) = match Settings::parse_from(std::env::args_os()) {
        Ok(parsed) => parsed,
        // Clap prints usage, --help and --version itself, with its own exit code.
        Err(CliError::Usage(error)) => error.exit(),
        Err(CliError::Config(error)) => {
            eprintln!("model-registry-mcp: {error}");
            return ExitCode::from(2);
        }
    };
    match model_registry_mcp::run(&cli, settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("model-registry-mcp: {error}");
            ExitCode::FAILURE
        }
    }
}
