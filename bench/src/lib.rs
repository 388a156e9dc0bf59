//! `cargo xtask bench` runs this package's binary: it builds a synthetic fleet
//! (a Git repository in a temp dir, packed like a fetched mirror), then measures it in processes of their
//! own so that each peak memory (VmHWM) is its own: the validator in a child of
//! the bench (`bench one`), the MCP server as its release binary. Prints a table
//! with the targets beside the figures, notes, and a summary of the misses.
//!
//! Measurements come in groups, one function per group returning a [`Group`]
//! ([`validator::measure`], [`mcp::measure`]); a new group is one more module
//! and one more line in [`run`].

mod fleet;
mod mcp;
mod script;
mod validator;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};

pub use validator::run_one;

/// The validator's targets for a fleet size: those of the 2,000-machine
/// fleet, and above it those the fleet-scale issue sets for 20,000 machines.
#[derive(Debug, Clone, Copy)]
pub struct ValidatorTargets {
    pub full_dir: Duration,
    pub full_git: Duration,
    pub one_file: Duration,
    pub peak_mb: f64,
}

impl ValidatorTargets {
    pub fn for_machines(machines: usize) -> ValidatorTargets {
        if machines <= 2000 {
            ValidatorTargets {
                full_dir: Duration::from_millis(300),
                full_git: Duration::from_millis(300),
                one_file: Duration::from_millis(30),
                peak_mb: 200.0,
            }
        } else {
            ValidatorTargets {
                full_dir: Duration::from_millis(3000),
                full_git: Duration::from_millis(1500),
                one_file: Duration::from_millis(50),
                peak_mb: 250.0,
            }
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Machines in the synthetic fleet (about 2.5 deployments each) [default: 2000, 200 with --quick].
    #[arg(long)]
    pub machines: Option<usize>,
    /// Runs per measurement (the median is reported) [default: 7, 3 with --quick].
    #[arg(long)]
    pub runs: Option<usize>,
    /// Timed `get_machine_topology` calls per MCP server session [default: 500, 100 with --quick].
    #[arg(long)]
    pub calls: Option<usize>,
    /// A fast sanity run: a smaller fleet, fewer runs and calls.
    #[arg(long)]
    pub quick: bool,
    /// Measure one group only.
    #[arg(long, value_enum)]
    pub only: Option<Only>,
    /// Leave the fleet repository as loose objects (as `git commit` leaves them)
    /// instead of packing it like a fetched mirror; for comparison.
    #[arg(long)]
    pub loose_objects: bool,
    /// Generate the fleet here (kept) instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    pub fleet_dir: Option<PathBuf>,
}

/// The measurement groups `--only` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// Validation and engine analysis of the fleet (the `validator` rows).
    #[value(alias = "validator")]
    Engine,
    /// The MCP server binary: start-up, tools/list, get_machine_topology, memory.
    Mcp,
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
#[derive(Debug, Clone)]
pub struct Sample {
    pub median: Duration,
    pub min: Duration,
    pub peak_kb: u64,
    /// Where the last run's time went (engine phases), when the scenario says.
    pub phases: Option<String>,
}

/// The figure of one row, with its target.
#[derive(Debug, Clone)]
pub enum Figure {
    /// Wall time over the runs; the target applies to the median.
    Time {
        median: Duration,
        min: Duration,
        target: Option<Duration>,
    },
    /// A size in bytes (the same in every run).
    Bytes { size: u64, target: Option<u64> },
    /// Events per second (the median run's); the target is a floor.
    Rate {
        per_second: f64,
        target: Option<f64>,
    },
    /// Nothing but the row's peak memory.
    Nothing,
}

/// Peak resident memory (VmHWM) of the measured process, with its target.
#[derive(Debug, Clone, Copy)]
pub struct Peak {
    pub kb: u64,
    pub target_mb: f64,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub group: &'static str,
    pub name: String,
    pub figure: Figure,
    pub peak: Option<Peak>,
}

impl Row {
    /// A wall-time row of a `bench one` child, with the validator's peak target.
    fn from_sample(
        group: &'static str,
        name: &str,
        sample: Sample,
        target: Duration,
        peak_target_mb: f64,
    ) -> Row {
        Row {
            group,
            name: name.to_owned(),
            figure: Figure::Time {
                median: sample.median,
                min: sample.min,
                target: Some(target),
            },
            peak: Some(Peak {
                kb: sample.peak_kb,
                target_mb: peak_target_mb,
            }),
        }
    }

    /// Each target of the row: what was measured against what, and whether it was met.
    fn checks(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        match &self.figure {
            Figure::Time {
                median,
                target: Some(target),
                ..
            } => checks.push(Check {
                figure: millis(*median),
                target: format!("< {}", millis(*target)),
                met: median <= target,
            }),
            Figure::Bytes {
                size,
                target: Some(target),
            } => checks.push(Check {
                figure: kilobytes(*size),
                target: format!("< {}", kilobytes(*target)),
                met: size <= target,
            }),
            Figure::Rate {
                per_second,
                target: Some(target),
            } => checks.push(Check {
                figure: rate(*per_second),
                target: format!("> {}", rate(*target)),
                met: per_second >= target,
            }),
            Figure::Time { target: None, .. }
            | Figure::Bytes { target: None, .. }
            | Figure::Rate { target: None, .. } => {}
            Figure::Nothing => {}
        }
        if let Some(peak) = self.peak {
            let mb = peak.kb as f64 / 1024.0;
            checks.push(Check {
                figure: format!("{mb:.1} MB peak"),
                target: format!("< {:.0} MB", peak.target_mb),
                met: mb <= peak.target_mb,
            });
        }
        checks
    }
}

/// One target of one row.
struct Check {
    figure: String,
    target: String,
    met: bool,
}

/// What a group measured: its rows and the notes printed under the table.
#[derive(Debug, Default)]
pub struct Group {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

/// Everything a group needs to measure.
pub struct Context {
    pub repo: PathBuf,
    pub runs: usize,
    /// Timed calls per MCP server session.
    pub calls: usize,
    pub stats: fleet::FleetStats,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let machines = args.machines.unwrap_or(if args.quick { 200 } else { 2000 });
    let runs = args.runs.unwrap_or(if args.quick { 3 } else { 7 }).max(1);
    let calls = args
        .calls
        .unwrap_or(if args.quick { 100 } else { 500 })
        .max(1);
    let wants = |group: Only| args.only.is_none_or(|only| only == group);

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
    let load_before = load_average();
    let drops_before = page_cache_drops();
    eprintln!(
        "generating a fleet of {machines} machines in {} ...",
        root.display()
    );
    let stats = fleet::generate(&root, fleet::FleetSize { machines })?;
    fleet::commit_all(&root)?;
    validator::prepare(&root)?;
    let loose = fleet::object_counts(&root)?;
    let objects = if args.loose_objects {
        loose
    } else {
        fleet::pack(&root)?;
        fleet::object_counts(&root)?
    };
    let settled = fleet::settle(&root);
    eprintln!(
        "{} machines, {} deployments, {} files; measuring ...",
        stats.machines, stats.deployments, stats.files
    );
    let context = Context {
        repo: root,
        runs,
        calls,
        stats,
    };

    let mut notes = vec![if args.loose_objects {
        format!(
            "git: the fleet repository is left as {} loose objects (--loose-objects), as `git commit` \
             leaves them; a mirror fetched from a remote is packed, and reads faster",
            objects.loose
        )
    } else {
        format!(
            "git: the fleet repository is packed (`git repack -a -d`, {} loose objects -> {} in {} pack of \
             {} KiB) before measuring, as a mirror fetched from a remote is; --loose-objects to compare",
            loose.loose, objects.in_pack, objects.packs, objects.pack_kb
        )
    }];
    notes.push(match settled {
        Ok(()) => "disk: the fleet was written out (`sync -f`) before measuring, so that no \
                   write-back of its files falls into a measurement"
            .to_owned(),
        Err(error) => format!("disk: the fleet was not synced before measuring ({error:#})"),
    });
    let mut rows = Vec::new();
    let mut add = |group: Group| {
        rows.extend(group.rows);
        notes.extend(group.notes);
    };
    if wants(Only::Engine) {
        add(validator::measure(&context)?);
        add(script::measure(&context)?);
    }
    if wants(Only::Mcp) {
        add(mcp::measure(&context)?);
    }
    notes.push(load_note(load_before, load_average()));
    if let Some(note) = drops_note(drops_before, page_cache_drops()) {
        notes.push(note);
    }

    println!("{}", table(&context, &rows, &notes));
    Ok(())
}

/// Runs `bench one` for a scenario and parses its one-line answer.
pub fn child(scenario: &str, repo: &Path, runs: usize) -> anyhow::Result<Sample> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let output = Command::new(exe)
        .args([
            "one",
            "--scenario",
            scenario,
            "--runs",
            &runs.to_string(),
            "--repo",
        ])
        .arg(repo)
        .output()
        .context("running bench one")?;
    if !output.status.success() {
        bail!(
            "bench one {scenario} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    parse_sample(&text).with_context(|| format!("bench one {scenario} printed {text:?}"))
}

/// The child's answer: `median_ns min_ns peak_kb`, then the phases (if any)
/// on a second line.
pub fn format_sample(sample: &Sample) -> String {
    let mut out = format!(
        "{} {} {}",
        sample.median.as_nanos(),
        sample.min.as_nanos(),
        sample.peak_kb
    );
    if let Some(phases) = &sample.phases {
        out.push('\n');
        out.push_str(phases);
    }
    out
}

fn parse_sample(text: &str) -> Option<Sample> {
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let mut fields = first.split_whitespace().map(str::parse::<u64>);
    let median = Duration::from_nanos(fields.next()?.ok()?);
    let min = Duration::from_nanos(fields.next()?.ok()?);
    let peak_kb = fields.next()?.ok()?;
    let phases = Some(rest.trim())
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    Some(Sample {
        median,
        min,
        peak_kb,
        phases,
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

fn table(context: &Context, rows: &[Row], notes: &[String]) -> String {
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
        let (figure, min, target) = match &row.figure {
            Figure::Time {
                median,
                min,
                target,
            } => (
                millis(*median),
                millis(*min),
                target.map_or_else(|| "-".to_owned(), |t| format!("< {}", millis(t))),
            ),
            Figure::Bytes { size, target } => (
                kilobytes(*size),
                "-".to_owned(),
                target.map_or_else(|| "-".to_owned(), |t| format!("< {}", kilobytes(t))),
            ),
            Figure::Rate { per_second, target } => (
                rate(*per_second),
                "-".to_owned(),
                target.map_or_else(|| "-".to_owned(), |t| format!("> {}", rate(t))),
            ),
            Figure::Nothing => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        let (peak, peak_target) = match row.peak {
            Some(peak) => (
                format!("{:.1}", peak.kb as f64 / 1024.0),
                format!("< {:.0}", peak.target_mb),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let checks = row.checks();
        let verdict = if checks.is_empty() {
            "-"
        } else if checks.iter().all(|c| c.met) {
            "ok"
        } else {
            "MISSED"
        };
        out.push_str(&format!(
            "{:<10} {:<name_width$} {figure:>10} {min:>10} {target:>10}  {peak:>9} {peak_target:>9}  {verdict}\n",
            row.group, row.name,
        ));
    }
    if !notes.is_empty() {
        out.push_str("\nnotes:\n");
        for note in notes {
            out.push_str(&format!("- {note}\n"));
        }
    }
    out.push('\n');
    out.push_str(&summary(rows));
    out
}

/// The last line: how many targets were met, and the misses by name.
fn summary(rows: &[Row]) -> String {
    let mut total = 0;
    let mut missed = Vec::new();
    for row in rows {
        for check in row.checks() {
            total += 1;
            if !check.met {
                missed.push(format!(
                    "{} {}: {} (target {})",
                    row.group,
                    row.name.trim(),
                    check.figure,
                    check.target
                ));
            }
        }
    }
    let met = total - missed.len();
    let mut out = format!("summary: {met} of {total} targets met");
    if missed.is_empty() {
        out.push('\n');
    } else {
        out.push_str("; missed:\n");
        for miss in missed {
            out.push_str(&format!("  {miss}\n"));
        }
    }
    out
}

/// The 1-minute load average (`/proc/loadavg`), if readable.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn load_note(before: Option<f64>, after: Option<f64>) -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let show = |load: Option<f64>| load.map_or_else(|| "?".to_owned(), |l| format!("{l:.1}"));
    format!(
        "machine: {cores} cores, 1-minute load average {} at the start and {} at the end; \
         other processes' load makes the figures slower and noisier",
        show(before),
        show(after)
    )
}

/// How often the page cache was dropped since boot (`drop_pagecache` of
/// `/proc/vmstat`, Linux 5.x+), if readable.
fn page_cache_drops() -> Option<u64> {
    drops_in(&std::fs::read_to_string("/proc/vmstat").ok()?)
}

fn drops_in(vmstat: &str) -> Option<u64> {
    vmstat
        .lines()
        .find_map(|line| line.strip_prefix("drop_pagecache "))?
        .trim()
        .parse()
        .ok()
}

/// Something outside the bench (a sandbox's memory manager, `echo 1 >
/// /proc/sys/vm/drop_caches`) dropped the page cache: the next runs read
/// directories and files from the disk, and are slower for it.
fn drops_note(before: Option<u64>, after: Option<u64>) -> Option<String> {
    let dropped = after?.checked_sub(before?).filter(|&n| n > 0)?;
    Some(format!(
        "page cache: dropped {dropped} time(s) while the bench ran (not by the bench); the runs \
         after a drop read from the disk, so their figures are slower"
    ))
}

/// Bytes in KB of 1,000 bytes (the unit of the `tools/list` target).
fn kilobytes(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1000.0)
}

fn rate(per_second: f64) -> String {
    format!("{per_second:.0}/s")
}

fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_cache_drop_during_the_bench_is_noted_and_none_is_not() {
        let vmstat = "pgfault 364220956\ndrop_pagecache 13\ndrop_slab 2\n";
        assert_eq!(drops_in(vmstat), Some(13));
        assert_eq!(drops_in("pgfault 1\n"), None);
        let note = drops_note(Some(13), Some(16)).unwrap();
        assert!(note.contains("dropped 3 time(s)"), "{note}");
        assert_eq!(drops_note(Some(13), Some(13)), None);
        assert_eq!(drops_note(None, Some(13)), None);
    }

    fn time(name: &str, median_us: u64, target_us: Option<u64>, peak_kb: Option<u64>) -> Row {
        Row {
            group: "g",
            name: name.to_owned(),
            figure: Figure::Time {
                median: Duration::from_micros(median_us),
                min: Duration::from_micros(median_us * 9 / 10),
                target: target_us.map(Duration::from_micros),
            },
            peak: peak_kb.map(|kb| Peak {
                kb,
                target_mb: 60.0,
            }),
        }
    }

    #[test]
    fn the_table_shows_figures_beside_targets_then_notes_and_misses() {
        let context = Context {
            repo: PathBuf::from("/fleet"),
            runs: 7,
            calls: 500,
            stats: fleet::FleetStats {
                machines: 2000,
                deployments: 4953,
                files: 8546,
            },
        };
        let rows = [
            time("fast enough", 250_000, Some(300_000), Some(50 * 1024)),
            time("too slow", 31_000, Some(30_000), None),
            time("no target", 420, None, None),
            Row {
                group: "g",
                name: "size".to_owned(),
                figure: Figure::Bytes {
                    size: 41_234,
                    target: Some(40_000),
                },
                peak: None,
            },
            Row {
                group: "g",
                name: "memory only".to_owned(),
                figure: Figure::Nothing,
                peak: Some(Peak {
                    kb: 30 * 1024,
                    target_mb: 60.0,
                }),
            },
        ];
        let notes = ["first note".to_owned(), "second note".to_owned()];
        insta::assert_snapshot!(table(&context, &rows, &notes));
    }

    #[test]
    fn all_targets_met_is_one_summary_line() {
        let rows = [time("fast", 1_000, Some(2_000), Some(1024))];
        assert_eq!(summary(&rows), "summary: 2 of 2 targets met\n");
    }
}
