//! The release-config validator (`cargo xtask validate`, the CI check, and the
//! installable `release-config-validate` binary): reads a release-config
//! repository from a directory or a Git revision, runs the topology engine,
//! and reports findings as a compiler-style text, JSON, GitHub workflow
//! commands or SARIF. Contract: `shared/spec/release-config-repo.md`, section 5.

pub mod baseline;
pub mod github;
pub mod human;
pub mod import;
pub mod json;
pub mod markdown;
mod pipeline;
pub mod place;
pub mod report;
pub mod sarif;
mod source;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

pub use pipeline::{ValidateError, Validated, validate};
pub use report::{Counts, Report, ReportedFinding, RevisionInfo, Topology, mark_new, mark_new_in};

/// Command-line arguments of the validator (also `cargo xtask validate`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Parser)]
#[command(
    name = "release-config-validate",
    version,
    about = "Validate a release-config repository (GPU, port and parallelism conflicts).",
    after_help = "Exit status: 0 no error-severity finding (no new one with --base), 1 at least one, \
                  2 the validator could not run.",
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// Instead of validating: write a machine's inventory (`inventory import`), or say where a
    /// model could go (`place`).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The release-config repository (any directory; a Git work tree for --rev, --base, --pending).
    #[arg(value_name = "PATH", default_value = ".")]
    pub path: PathBuf,
    /// Read this revision from Git objects instead of the work tree.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Diff-aware mode: findings that also exist at REV are pre-existing and do not fail the run.
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Findings listed in this baseline file are pre-existing (like --base); entries that no
    /// longer occur are reported, so the file shrinks as things are fixed.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Record this run's findings in FILE (by fingerprint, sorted) for --baseline.
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,
    /// Also report GPUs or ports claimed by refs matching GLOB, e.g. 'refs/pull/*/head' (repeatable).
    #[arg(long = "pending", value_name = "GLOB")]
    pub pending: Vec<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Only report findings (and topology) of this machine.
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
    /// Explain a rule (what it checks, why it matters, an example and its fix) and exit; with
    /// --format json, as JSON.
    #[arg(long, value_name = "CODE")]
    pub explain: Option<String>,
    /// Colour the human report.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// What the validator does besides validating.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Machine inventories (`machines/<machine>/machine.yaml`).
    #[command(subcommand)]
    Inventory(InventoryCommand),
    /// Where a model could go: ranked machines, GPU sets and free ports, with reasons (exit 0:
    /// at least one, 1: none fits).
    Place(place::PlaceArgs),
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum InventoryCommand {
    /// Write a machine's machine.yaml (to stdout) from nvidia-smi's outputs on it: topo -m,
    /// --query-gpu, -L.
    Import(import::ImportArgs),
}

impl Args {
    /// Arguments for validating `path` in the human format.
    pub fn for_path(path: impl Into<PathBuf>) -> Args {
        Args {
            command: None,
            path: path.into(),
            rev: None,
            base: None,
            baseline: None,
            write_baseline: None,
            pending: Vec::new(),
            format: Format::Human,
            machine: None,
            explain: None,
            color: ColorChoice::Auto,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Compiler-style text with source lines and carets.
    Human,
    /// One JSON object: findings, summary, topology, revision.
    Json,
    /// GitHub Actions workflow commands (plus $GITHUB_STEP_SUMMARY).
    Github,
    /// SARIF 2.1.0 for code scanning.
    Sarif,
    /// For a pull-request comment: each touched machine's GPU map before and after, new
    /// findings first.
    Markdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// What the validator takes from its surroundings, made explicit so tests do
/// not depend on the process (a test run inside GitHub Actions must not
/// write into the real step summary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// Whether stdout is a terminal (`--color auto`).
    pub stdout_is_tty: bool,
    /// `$GITHUB_STEP_SUMMARY`: where the github format appends its Markdown report.
    pub step_summary: Option<PathBuf>,
    /// `$NO_COLOR` is set (honoured by `--color auto`).
    pub no_color: bool,
    /// The process exits after this run: the analysis is left to the kernel
    /// to take back, not freed ([`pipeline::Validated::leak`]).
    pub exits_after_run: bool,
}

impl Environment {
    /// The real process environment.
    pub fn from_process() -> Environment {
        Environment {
            stdout_is_tty: std::io::stdout().is_terminal(),
            step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            exits_after_run: true,
        }
    }
}

/// The process exit status of section 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// No error-severity finding (no new one with `--base`).
    Clean = 0,
    /// At least one error-severity finding that counts.
    Findings = 1,
    /// The validator could not run: usage, unreadable repository, unknown revision.
    Failure = 2,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(exit as u8)
    }
}

/// Validates as `args` say, writes the report to `stdout` and problems to
/// `stderr` (one line naming what went wrong), and returns the exit status.
pub fn run(args: &Args, env: &Environment, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Exit {
    match run_inner(args, env, stdout) {
        Ok(exit) => exit,
        Err(error) => {
            // One line, whatever Git or the OS put into the message.
            let message = error.to_string();
            let line: Vec<&str> = message
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let _ = writeln!(stderr, "error: {}", line.join("; "));
            Exit::Failure
        }
    }
}

fn run_inner(
    args: &Args,
    env: &Environment,
    stdout: &mut dyn Write,
) -> Result<Exit, ValidateError> {
    if let Some(Command::Inventory(InventoryCommand::Import(import))) = &args.command {
        import::run(import, stdout)?;
        return Ok(Exit::Clean);
    }
    if let Some(Command::Place(place)) = &args.command {
        return place::run(place, stdout);
    }
    if let Some(code) = &args.explain {
        let text = explain(code, args.format)?;
        stdout
            .write_all(text.as_bytes())
            .map_err(|source| ValidateError::Output { source })?;
        return Ok(Exit::Clean);
    }
    let validated = validate(args)?;
    let report = &validated.report;
    let text = match args.format {
        Format::Json => {
            // Streamed: at 20,000 machines the report is 47 MB of text.
            let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut *stdout);
            json::write(report, &mut out)
                .and_then(|()| out.flush())
                .map_err(|source| ValidateError::Output { source })?;
            drop(out);
            let exit = exit_of(report);
            finish(validated, env);
            return Ok(exit);
        }
        Format::Human => {
            let color = match args.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => env.stdout_is_tty && !env.no_color,
            };
            human::render(report, &|at, path| validated.source(at, path), color)
        }
        Format::Github => {
            if let Some(path) = &env.step_summary {
                append(path, &github::step_summary(report))?;
            }
            github::render(report, env.step_summary.is_some())
        }
        Format::Sarif => sarif::render(report, env!("CARGO_PKG_VERSION")),
        Format::Markdown => markdown::render(report),
    };
    stdout
        .write_all(text.as_bytes())
        .map_err(|source| ValidateError::Output { source })?;
    stdout
        .flush()
        .map_err(|source| ValidateError::Output { source })?;
    let exit = exit_of(report);
    finish(validated, env);
    Ok(exit)
}

/// Done with `validated`: freed, or left to the kernel by a process that exits next.
fn finish(validated: Validated, env: &Environment) {
    if env.exits_after_run {
        validated.leak();
    }
}

fn exit_of(report: &Report) -> Exit {
    if report.failed() {
        Exit::Findings
    } else {
        Exit::Clean
    }
}

/// `--explain CODE`: the rule's explanation as text (human formats) or JSON.
pub fn explain(code: &str, format: Format) -> Result<String, ValidateError> {
    let rule = topology::Rule::from_code(&code.trim().to_ascii_uppercase()).ok_or_else(|| {
        ValidateError::UnknownRule {
            code: code.to_owned(),
            known: topology::Rule::ALL
                .iter()
                .map(|r| r.code())
                .collect::<Vec<_>>()
                .join(", "),
        }
    })?;
    Ok(match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(&serde_json::json!({
                "code": rule.code(),
                "severity": rule.default_severity().as_str(),
                "summary": rule.summary(),
                "explanation": rule.explanation(),
                "help_uri": sarif::help_uri(rule),
            }))
            .unwrap_or_default();
            text.push('\n');
            text
        }
        _ => format!(
            "{} ({} by default): {}\n\n{}",
            rule.code(),
            rule.default_severity(),
            rule.summary(),
            rule.explanation()
        ),
    })
}

/// Appends `text` to the file at `path` (other steps' summaries stay), on a
/// line of its own so that its Markdown heading is one.
fn append(path: &std::path::Path, text: &str) -> Result<(), ValidateError> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let error = |source| ValidateError::StepSummary {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(error)?;
    let mut needs_break = false;
    if file.metadata().map_err(error)?.len() > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1)).map_err(error)?;
        file.read_exact(&mut last).map_err(error)?;
        needs_break = last[0] != b'\n';
    }
    if needs_break {
        file.write_all(b"\n").map_err(error)?;
    }
    file.write_all(text.as_bytes()).map_err(error)
}

/// The process edge shared by the `release-config-validate` binary and the
/// end-to-end tests' copy of it: parse the command line (clap exits with status
/// 2 on usage errors, as section 5 asks), run, map the outcome to an exit code.
pub fn process_main() -> std::process::ExitCode {
    use clap::Parser as _;
    let args = Args::parse();
    let env = Environment::from_process();
    run(
        &args,
        &env,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
    .into()
}
