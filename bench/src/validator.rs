//! The validator group: full validation from a directory and from a Git
//! revision, and re-validation with a warm engine after one file changed.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use release_config_validate::{Args, Environment, Exit, Format, run, validate};
use topology::engine::{Engine, Timings};
use topology::placement::{PlacementQuery, find_placement};
use topology::repo::{Author, DirReader, Repository, Snapshot};

use super::fleet::CHANGED_FILE;
use super::{
    Context, Group, OneArgs, Row, Sample, ValidatorTargets, child, format_sample, median, peak_kb,
};

/// The planner's p50 target (issue 17), at every fleet size.
const PLACEMENT_P50_TARGET: Duration = Duration::from_millis(20);

/// The branch holding the one-file change (made by [`prepare`]).
const CHANGED_BRANCH: &str = "bench-one-file";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// `validate PATH`: list, parse, check, build the report; cold engine.
    FullDir,
    /// `validate PATH --rev main`: the same from Git objects.
    FullGit,
    /// `validate PATH --format json`: the full run with the JSON report
    /// (findings and the whole topology) written out, to a sink.
    FullDirJson,
    /// Listing and `Engine::analyze` only (cold engine, no report): the
    /// engine's share of `FullDir`.
    AnalyzeDir,
    /// Warm engine, one compose file rewritten in the directory.
    OneFileDir,
    /// Warm engine, alternating between two commits that differ in one file.
    OneFileGit,
    /// The placement planner on the analysed fleet (Git revision): TP 2, and
    /// a 70B model at the smallest TP that fits; median and p99 per query.
    Placement,
}

impl Scenario {
    fn arg(self) -> &'static str {
        match self {
            Scenario::FullDir => "full-dir",
            Scenario::FullGit => "full-git",
            Scenario::FullDirJson => "full-dir-json",
            Scenario::AnalyzeDir => "analyze-dir",
            Scenario::OneFileDir => "one-file-dir",
            Scenario::OneFileGit => "one-file-git",
            Scenario::Placement => "placement",
        }
    }
}

/// Commits the one-file change on its own branch (no work tree touched).
pub fn prepare(root: &Path) -> anyhow::Result<()> {
    let repo = Repository::open(root)?;
    let original = std::fs::read_to_string(root.join(CHANGED_FILE))
        .with_context(|| format!("reading {CHANGED_FILE}"))?;
    let author = Author {
        name: "bench".into(),
        email: "bench@example.invalid".into(),
    };
    repo.commit_file_on_new_branch(
        "main",
        CHANGED_BRANCH,
        CHANGED_FILE,
        changed(&original, 1).as_bytes(),
        "bench: change one file",
        &author,
    )?;
    Ok(())
}

/// The file with a different trailing comment per iteration.
fn changed(original: &str, iteration: usize) -> String {
    format!("{original}# bench edit {iteration}\n")
}

pub fn measure(context: &Context) -> anyhow::Result<Group> {
    let targets = ValidatorTargets::for_machines(context.stats.machines);
    let cases = [
        (
            Scenario::FullDir,
            "full validation, directory",
            targets.full_dir,
        ),
        (
            Scenario::FullGit,
            "full validation, git revision",
            targets.full_git,
        ),
        (
            Scenario::FullDirJson,
            "full validation, directory, --format json",
            targets.full_dir,
        ),
        (
            Scenario::AnalyzeDir,
            "  of which listing + analyze, directory",
            targets.full_dir,
        ),
        (
            Scenario::OneFileDir,
            "one file changed, directory",
            targets.one_file,
        ),
        (
            Scenario::OneFileGit,
            "one file changed, git revision",
            targets.one_file,
        ),
        (
            Scenario::Placement,
            "placement query (find_placement), p50",
            PLACEMENT_P50_TARGET,
        ),
    ];
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let machines = context.stats.machines.max(1) as f64;
    let mut per_machine = Vec::new();
    for (scenario, name, target) in cases {
        eprintln!("  {name} ...");
        // One untimed process of the scenario first, as the comparison
        // does (see `script::time_processes`): in this VM a process that
        // follows a larger one pays to get back the memory that one gave
        // up (one file changed at 20,000 machines: 44-72 ms after the full
        // runs, 41 ms after one of its own).
        child(scenario.arg(), &context.repo, 1)?;
        let sample = child(scenario.arg(), &context.repo, context.runs)?;
        if let Some(phases) = &sample.phases {
            if scenario == Scenario::Placement {
                notes.push(format!("{}: {phases}", name.trim()));
            } else {
                notes.push(format!("phases of {}: {phases}", name.trim()));
            }
        }
        // Per machine, so that runs at two fleet sizes show a superlinear step.
        per_machine.push(format!(
            "{} {:.1} us, {:.1} KiB",
            name.trim(),
            sample.median.as_secs_f64() * 1e6 / machines,
            sample.peak_kb as f64 / machines
        ));
        let peak_kb = sample.peak_kb;
        let mut row = Row::from_sample("validator", name, sample, target, targets.peak_mb);
        if scenario == Scenario::Placement {
            // The planner has a time target only; its process holds the fleet
            // twice (packed, and without each machine's last deployment).
            row.peak = None;
            notes.push(format!(
                "placement: peak {:.0} MB (the analysed fleet twice, and its allocation graph)",
                peak_kb as f64 / 1024.0
            ));
        }
        rows.push(row);
    }
    notes.push(format!(
        "per machine ({} machines): {}",
        context.stats.machines,
        per_machine.join("; ")
    ));
    Ok(Group { rows, notes })
}

/// `bench one`: runs one scenario `runs` times and prints `median min peak`.
pub fn run_one(args: &OneArgs) -> anyhow::Result<()> {
    let runs = args.runs.max(1);
    let mut times = Vec::with_capacity(runs);
    // The last run's snapshot time and engine phases.
    let mut phases: Option<(Duration, Timings)> = None;
    // A cold scenario's peak is its first run's, as one validation (a CLI
    // run) has it: later runs in this process start with pages the allocator
    // kept from the one before, which raises the high-water mark 50-70 MB at
    // 20,000 machines without any run needing more.
    let mut first_peak: Option<u64> = None;
    // The planner's p99 and first query, printed where the phases go.
    let mut placement_note: Option<String> = None;
    match args.scenario {
        Scenario::FullDir | Scenario::FullGit => {
            let mut validate_args = Args::for_path(&args.repo);
            if args.scenario == Scenario::FullGit {
                validate_args.rev = Some("main".to_owned());
            }
            for _ in 0..runs {
                let start = Instant::now();
                let validated = validate(&validate_args)?;
                times.push(start.elapsed());
                std::hint::black_box(&validated.report);
                drop(validated);
                first_peak.get_or_insert_with(peak_kb);
            }
        }
        Scenario::FullDirJson => {
            let mut validate_args = Args::for_path(&args.repo);
            validate_args.format = Format::Json;
            let env = Environment {
                stdout_is_tty: false,
                step_summary: None,
                no_color: true,
                // Runs repeat in this process: each frees what it made.
                exits_after_run: false,
            };
            for _ in 0..runs {
                let mut report = CountingSink::default();
                let start = Instant::now();
                let exit = run(&validate_args, &env, &mut report, &mut std::io::stderr());
                times.push(start.elapsed());
                if exit == Exit::Failure || report.bytes == 0 {
                    return Err(anyhow!("validate --format json wrote no report ({exit:?})"));
                }
                first_peak.get_or_insert_with(peak_kb);
            }
        }
        Scenario::AnalyzeDir => {
            for _ in 0..runs {
                let start = Instant::now();
                let snapshot = Snapshot::from_dir(&args.repo)?;
                let listed = start.elapsed();
                let mut engine = Engine::new();
                let fleet = engine.analyze(&snapshot).map_err(|e| anyhow!("{e}"))?;
                times.push(start.elapsed());
                phases = Some((listed, engine.stats().last.timings));
                std::hint::black_box(&fleet);
                drop(fleet);
                first_peak.get_or_insert_with(peak_kb);
            }
        }
        Scenario::OneFileDir => {
            let path = args.repo.join(CHANGED_FILE);
            let original = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let reader = DirReader::new(&args.repo)?;
            let mut engine = Engine::new();
            // Twice: the reader's second listing starts watching every
            // directory (a stat and a watch each); the measured ones are
            // what a long-lived reader makes from then on.
            for _ in 0..2 {
                engine
                    .analyze(&reader.snapshot()?)
                    .map_err(|e| anyhow!("{e}"))?;
            }
            for iteration in 0..runs {
                std::fs::write(&path, changed(&original, iteration))?;
                let start = Instant::now();
                let snapshot = reader.snapshot()?;
                let listed = start.elapsed();
                let fleet = engine.analyze(&snapshot).map_err(|e| anyhow!("{e}"))?;
                times.push(start.elapsed());
                phases = Some((listed, engine.stats().last.timings));
                std::hint::black_box(&fleet);
            }
            std::fs::write(&path, original)?;
        }
        Scenario::OneFileGit => {
            let repo = Repository::open(&args.repo)?;
            let mut engine = Engine::new();
            engine
                .analyze(&repo.snapshot("main")?)
                .map_err(|e| anyhow!("{e}"))?;
            for iteration in 0..runs {
                let rev = if iteration % 2 == 0 {
                    CHANGED_BRANCH
                } else {
                    "main"
                };
                let start = Instant::now();
                let snapshot = repo.snapshot(rev)?;
                let listed = start.elapsed();
                let fleet = engine.analyze(&snapshot).map_err(|e| anyhow!("{e}"))?;
                times.push(start.elapsed());
                phases = Some((listed, engine.stats().last.timings));
                std::hint::black_box(&fleet);
            }
        }
        Scenario::Placement => {
            let repo = Repository::open(&args.repo)?;
            let snapshot = repo.snapshot("main")?;
            let mut engine = Engine::new();
            // The generated fleet is packed; without each machine's last
            // deployment most machines have free GPUs to rank.
            let full = engine.analyze(&snapshot).map_err(|e| anyhow!("{e}"))?;
            let mut last: std::collections::BTreeMap<&str, topology::compose::DeploymentId> =
                std::collections::BTreeMap::new();
            for id in full.deployments.keys() {
                last.insert(id.machine.as_str(), id.clone());
            }
            let removed: Vec<topology::compose::DeploymentId> = last.into_values().collect();
            let fleet = engine
                .analyze_changes(&snapshot, &[], &removed)
                .map_err(|e| anyhow!("{e}"))?;
            drop(full);
            // The first query builds the allocation graph (once per fleet).
            let start = Instant::now();
            let first = find_placement(&fleet, &placement_queries()[0]);
            let graph_built = start.elapsed();
            let queries = placement_queries();
            for _ in 0..runs.max(1) * 10 {
                for query in &queries {
                    let start = Instant::now();
                    let plan = find_placement(&fleet, query);
                    times.push(start.elapsed());
                    std::hint::black_box(&plan);
                }
            }
            let mut sorted = times.clone();
            sorted.sort_unstable();
            let p99 = sorted
                .get(sorted.len().saturating_mul(99) / 100)
                .copied()
                .unwrap_or_default();
            placement_note = Some(format!(
                "p99 {:.1} ms over {} queries, on the fleet without each machine's last deployment; the first (which builds the allocation graph) {:.0} ms; {} candidate machines for TP 2",
                p99.as_secs_f64() * 1e3,
                times.len(),
                graph_built.as_secs_f64() * 1e3,
                first.candidates
            ));
        }
    }
    let min = times.iter().min().copied().unwrap_or_default();
    let sample = Sample {
        median: median(&mut times),
        min,
        peak_kb: first_peak.unwrap_or_else(peak_kb),
        phases: placement_note
            .or_else(|| phases.map(|(listed, timings)| describe_phases(listed, &timings))),
    };
    println!("{}", format_sample(&sample));
    Ok(())
}

/// The planner's queries: TP 2 anywhere; a 70B bf16 model (64 heads, 8 KV
/// heads) at the smallest TP that fits, on at least 40 GB.
fn placement_queries() -> Vec<PlacementQuery> {
    vec![
        PlacementQuery {
            tp: Some(2),
            limit: 5,
            ..PlacementQuery::default()
        },
        PlacementQuery {
            params_b: Some(70.0),
            dtype: Some("bf16".to_owned()),
            num_attention_heads: Some(64),
            num_kv_heads: Some(8),
            min_memory_gb: Some(40.0),
            limit: 5,
            ..PlacementQuery::default()
        },
    ]
}

/// Where the JSON report goes: counted, not kept (the run's peak is the
/// validator's, not a buffer's).
#[derive(Default)]
struct CountingSink {
    bytes: usize,
}

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `snapshot 3.1 ms, layout 1.0 ms, ...`: the last run's phases.
fn describe_phases(listed: Duration, timings: &Timings) -> String {
    let ms = |us: u64| format!("{:.1} ms", us as f64 / 1000.0);
    format!(
        "snapshot {}, layout {}, parse {}, inventories {}, rules {}, assemble {} (engine {})",
        ms(u64::try_from(listed.as_micros()).unwrap_or(u64::MAX)),
        ms(timings.layout_us),
        ms(timings.parse_us),
        ms(timings.inventories_us),
        ms(timings.rules_us),
        ms(timings.assemble_us),
        ms(timings.total_us),
    )
}
