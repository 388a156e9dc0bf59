//! The bench binary, run by `cargo xtask bench [ARGS]`: measures the fleet
//! and prints figures beside targets (see the library's docs). Its hidden
//! subcommands are the children it times: `one` (one engine scenario in a
//! fresh process) and `validate` (the validator, as the Python script's
//! counterpart).

// The same allocator as the validator binaries, so the figures are theirs
// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask bench",
    about = "Generate a synthetic fleet; measure the validator and the MCP server against their targets.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    child: Option<Child>,
    #[command(flatten)]
    args: bench::BenchArgs,
}

#[derive(Debug, Subcommand)]
enum Child {
    /// One measurement in a fresh process (for clean peak-memory figures).
    #[command(hide = true)]
    One(bench::OneArgs),
    /// The validator, timed as a process beside the Python script.
    #[command(hide = true)]
    Validate(Box<release_config_validate::Args>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.child {
        None => bench::run(&cli.args),
        Some(Child::One(args)) => bench::run_one(&args),
        Some(Child::Validate(args)) => {
            let env = release_config_validate::Environment::from_process();
            return release_config_validate::run(
                &args,
                &env,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            )
            .into();
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
