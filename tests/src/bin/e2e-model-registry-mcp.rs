//! The `model-registry-mcp` program, built inside the `tests` package so that its end-to-end
//! tests get `CARGO_BIN_EXE_e2e-model-registry-mcp` (Cargo only sets `CARGO_BIN_EXE_*` for a
//! package's own binaries). Keep this identical to `crates/model-registry-mcp/src/main.rs`: all
//! behaviour lives in the library, this is only the process edge.

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
