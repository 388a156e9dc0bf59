//! `cargo xtask bench`: builds a synthetic fleet (a Git repository in a temp
//! dir), then runs each measurement in a child process of xtask (`bench-one`)
//! so that its peak memory (VmHWM) is its own, and prints a table with the
//! targets beside the figures.
//!
//! Measurements come in groups, one function per group returning rows
//! ([`validator::measure`]); a new group (e.g. MCP calls) is one more module and
//! one more line in [`run`].

mod fleet;
mod validator;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

pub use validator::run_one;

/// Peak memory target for every measurement.
const PEAK_TARGET_MB: f64 = 200.0;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Machines in the synthetic fleet (about 2.5 deployments each).
    #[arg(long, default_value_t = 2000)]
    pub machines: usize,
    /// Runs per measurement (the median is reported).
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
    /// Generate the fleet here (kept) instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    pub fleet_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct OneArgs {
    /// Which measurement.
    #[arg(long, value_enum)]
    pub scenario: validator::Scenario,
    /// The fleet repository.
    #[arg(long)]
    pub repo: PathBuf,
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
}

/// What one child measured.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub median: Duration,
    pub min: Duration,
    pub peak_kb: u64,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub group: &'static str,
    pub name: String,
    pub sample: Sample,
    /// Wall-time target for the median.
    pub target: Option<Duration>,
}

/// Everything a group needs to measure.
pub struct Context {
    pub repo: PathBuf,
    pub runs: usize,
    pub stats: fleet::FleetStats,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let temp;
    let root = match &args.fleet_dir {
        Some(dir) => {
            if dir.exists() {
                bail!("{} already exists; give a new directory", dir.display());
            }
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_owned()
        }
    };
    eprintln!(
        "generating a fleet of {} machines in {} ...",
        args.machines,
        root.display()
    );
    let stats = fleet::generate(
        &root,
        fleet::FleetSize {
            machines: args.machines,
        },
    )?;
    fleet::commit_all(&root)?;
    validator::prepare(&root)?;
    eprintln!(
        "{} machines, {} deployments, {} files; measuring ...",
        stats.machines, stats.deployments, stats.files
    );
    let context = Context {
        repo: root,
        runs: args.runs.max(1),
        stats,
    };

    let mut rows = Vec::new();
    rows.extend(validator::measure(&context)?);
    // Further groups (MCP call latencies, ...) add their rows here.

    println!("{}", table(&context, &rows));
    Ok(())
}

/// Runs `xtask bench-one` for a scenario and parses its one-line answer.
pub fn child(scenario: &str, repo: &Path, runs: usize) -> anyhow::Result<Sample> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    let output = Command::new(exe)
        .args([
            "bench-one",
            "--scenario",
            scenario,
            "--runs",
            &runs.to_string(),
            "--repo",
        ])
        .arg(repo)
        .output()
        .context("running bench-one")?;
    if !output.status.success() {
        bail!(
            "bench-one {scenario} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    parse_sample(&text).with_context(|| format!("bench-one {scenario} printed {text:?}"))
}

/// The child's answer: `median_ns min_ns peak_kb`.
pub fn format_sample(sample: &Sample) -> String {
    format!(
        "{} {} {}",
        sample.median.as_nanos(),
        sample.min.as_nanos(),
        sample.peak_kb
    )
}

fn parse_sample(text: &str) -> Option<Sample> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let median = Duration::from_nanos(fields.next()?.ok()?);
    let min = Duration::from_nanos(fields.next()?.ok()?);
    let peak_kb = fields.next()?.ok()?;
    Some(Sample {
        median,
        min,
        peak_kb,
    })
}

/// Peak resident set size of this process so far (VmHWM), in KiB.
pub fn peak_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// Median of the durations (sorted in place).
pub fn median(durations: &mut [Duration]) -> Duration {
    durations.sort_unstable();
    durations
        .get(durations.len() / 2)
        .copied()
        .unwrap_or_default()
}

fn table(context: &Context, rows: &[Row]) -> String {
    let mut out = format!(
        "fleet: {} machines, {} deployments, {} files; median of {} runs\n\n",
        context.stats.machines, context.stats.deployments, context.stats.files, context.runs
    );
    let name_width = rows
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(10)
        .max(11);
    out.push_str(&format!(
        "{:<10} {:<name_width$} {:>10} {:>10} {:>10}  {:>9} {:>9}  {}\n",
        "group", "measurement", "median", "min", "target", "peak MB", "target", "verdict"
    ));
    for row in rows {
        let peak_mb = row.sample.peak_kb as f64 / 1024.0;
        let time_ok = row.target.is_none_or(|t| row.sample.median <= t);
        let peak_ok = peak_mb <= PEAK_TARGET_MB;
        out.push_str(&format!(
            "{:<10} {:<name_width$} {:>10} {:>10} {:>10}  {:>9.1} {:>9}  {}\n",
            row.group,
            row.name,
            millis(row.sample.median),
            millis(row.sample.min),
            row.target
                .map(|t| format!("< {}", millis(t)))
                .unwrap_or_else(|| "-".into()),
            peak_mb,
            format!("< {PEAK_TARGET_MB:.0}"),
            if time_ok && peak_ok { "ok" } else { "MISSED" },
        ));
    }
    out
}

fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}
