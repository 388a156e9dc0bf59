//! Workspace tasks: `cargo xtask validate [PATH] ...` (the release-config
//! validator) and `cargo xtask bench [ARGS]` (performance figures with
//! targets; it runs the `bench` package, so that validating builds only the
//! validator and not the MCP server stack the bench measures).

// Parsing a fleet makes millions of small allocations; glibc's malloc spent
// a quarter of the profile on them (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::ffi::OsString;
use std::process::{Command, ExitCode};

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
    Validate(Box<release_config_validate::Args>),
    /// Generate a synthetic fleet; measure the validator and the MCP server against their
    /// targets (`cargo xtask bench --help` lists the options).
    #[command(disable_help_flag = true)]
    Bench {
        /// Passed to the bench as they are.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
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
        Task::Bench { args } => bench(&args),
    }
}

/// Runs the bench package in release, with Cargo as it ran us (so
/// `CARGO_TARGET_DIR` and the toolchain are the same), and exits as it did.
fn bench(args: &[OsString]) -> ExitCode {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(&cargo)
        .args(["run", "--quiet", "--release", "--package", "bench", "--"])
        .args(args)
        .current_dir(workspace)
        .status();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        // The bench said why (its misses or its error).
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!(
                "error: running {} run --package bench: {error}",
                cargo.to_string_lossy()
            );
            ExitCode::FAILURE
        }
    }
}
