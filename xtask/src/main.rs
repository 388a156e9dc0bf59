//! Workspace tasks: `cargo xtask validate [PATH] ...` (the release-config
//! validator) and `cargo xtask bench` (performance figures with targets).

mod bench;

// Parsing a fleet makes millions of small allocations; glibc's malloc spent
// a quarter of the profile on them (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Workspace tasks.")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Validate a release-config repository (PATH defaults to the current directory).
    Validate(release_config_validate::Args),
    /// Generate a synthetic fleet; measure the validator and the MCP server against their targets.
    Bench(bench::BenchArgs),
    /// One measurement in a fresh process (run by `bench`, for clean peak-memory figures).
    #[command(hide = true)]
    BenchOne(bench::OneArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Task::Validate(args) => {
            let env = release_config_validate::Environment::from_process();
            release_config_validate::run(
                &args,
                &env,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            )
            .into()
        }
        Task::Bench(args) => report(bench::run(&args)),
        Task::BenchOne(args) => report(bench::run_one(&args)),
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
