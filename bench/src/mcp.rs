//! The MCP group: the release build of `model-registry-mcp`, serving the fleet
//! repository over stdio. Each run is one server process measured by
//! [`model_registry_mcp::bench::run`]: spawn to the `initialize` result, the
//! `tools/list` size, `get_machine_topology` latency (first call, then warm
//! p50/p99) and the server's peak RSS.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use model_registry_mcp::bench::{BenchOptions, BenchReport, ConfirmTarget};
use rmcp::ServiceExt as _;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;

use super::{Context, Figure, Group, Peak, Row, median};

const GROUP: &str = "mcp";
const PACKAGE: &str = "model-registry-mcp";
const TOPOLOGY_TOOL: &str = "get_machine_topology";

/// Targets of issue 3.
const STARTUP_TARGET: Duration = Duration::from_millis(20);
const TOPOLOGY_P50_TARGET: Duration = Duration::from_millis(2);
const TOOLS_LIST_TARGET_BYTES: u64 = 40_000;
/// Issue 17: the planner's p50 on the 20,000-machine fleet, here through the MCP call.
const PLACEMENT_P50_TARGET: Duration = Duration::from_millis(20);

/// The server's fleet-size targets: issue 3's for the 2,000-machine fleet, and
/// above it those the fleet-scale issue sets for 20,000 machines.
#[derive(Debug, Clone, Copy, PartialEq)]
struct McpTargets {
    /// The first `get_machine_topology` call, which waits for the fleet to load.
    first_load: Option<Duration>,
    peak_rss_mb: f64,
}

impl McpTargets {
    fn for_machines(machines: usize) -> McpTargets {
        if machines <= 2000 {
            McpTargets {
                first_load: None,
                peak_rss_mb: 60.0,
            }
        } else {
            McpTargets {
                first_load: Some(Duration::from_secs(3)),
                peak_rss_mb: 200.0,
            }
        }
    }
}
/// The shared HTTP service (issue 12): sessions held, and authenticated throughput.
const HTTP_SESSIONS: usize = 1000;
const HTTP_CLIENTS: usize = 4;
const HTTP_RSS_TARGET_MB: f64 = 100.0;
const HTTP_RATE_TARGET: f64 = 2000.0;
/// The `tools/list` target is for the whole surface.
const SURFACE_TOOLS: usize = model_registry_mcp::catalog::CATALOG.len();

/// Settings the server gets whatever the caller's environment says, so that
/// every run serves the same surface and answer size (the documented defaults).
const FIXED_SETTINGS: &[(&str, &str)] = &[
    ("REGISTRY_RELEASE_CONFIG_BRANCH", "main"),
    ("REGISTRY_MAX_RESULTS", "100"),
    ("REGISTRY_READ_ONLY", "false"),
    ("REGISTRY_ALLOW_PRODUCTION_CHANGES", "true"),
];

pub fn measure(context: &Context) -> anyhow::Result<Group> {
    eprintln!("  building {PACKAGE} (release) ...");
    let binary = build_server()?;
    let cache = tempfile::tempdir().context("creating the server's cache directory")?;
    let repository = context
        .repo
        .to_str()
        .with_context(|| format!("{} is not UTF-8", context.repo.display()))?
        .to_owned();
    let mut env: Vec<(String, String)> = FIXED_SETTINGS
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    let cache_dir = cache
        .path()
        .to_str()
        .context("the temporary directory's path is not UTF-8")?;
    env.push((
        "REGISTRY_RELEASE_CONFIG_CACHE_DIR".to_owned(),
        cache_dir.to_owned(),
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The registry emulator on loopback, for the confirming tool's rounds.
    let storage = tempfile::tempdir().context("creating the registry emulator's storage")?;
    let config = registry_emulator::EmulatorConfig::demo(storage.path().join("storage"))
        .context("the registry emulator's demo seed")?;
    let deployment_id = config
        .seed
        .deployments
        .first()
        .map(|d| d.id.clone())
        .context("the emulator's demo seed has no deployment")?;
    let emulator = runtime
        .block_on(registry_emulator::spawn(config))
        .context("starting the registry emulator")?;
    let options = BenchOptions {
        binary,
        repository: Some(repository),
        calls: context.calls,
        env,
        confirm_on: Some(ConfirmTarget {
            registry_url: emulator.base_url().to_owned(),
            api_key: emulator
                .api_key(registry_emulator::Role::Operator)
                .context("the emulator has no operator key")?
                .to_owned(),
            deployment_id,
        }),
    };

    eprintln!("  checking {PACKAGE}'s answers ...");
    let answers = runtime.block_on(check_answers(&options, context.stats.machines))?;
    let mut reports = Vec::with_capacity(context.runs);
    for run in 1..=context.runs {
        eprintln!("  {PACKAGE} session {run} of {} ...", context.runs);
        let report = runtime
            .block_on(model_registry_mcp::bench::run(&options))
            .with_context(|| format!("measuring {}", options.binary.display()))?;
        reports.push(report);
    }
    eprintln!("  {PACKAGE} over HTTP: {HTTP_SESSIONS} sessions, authenticated pings ...");
    let work = tempfile::tempdir().context("creating the HTTP bench's directory")?;
    let http = runtime
        .block_on(model_registry_mcp::bench::http::run(
            &options,
            work.path(),
            HTTP_SESSIONS,
            context.calls * 10,
            HTTP_CLIENTS,
        ))
        .context("measuring the HTTP service")?;
    let mut group = rows(&reports, McpTargets::for_machines(context.stats.machines))?;
    group.rows.extend(http_rows(&http));
    group.notes.push(format!(
        "mcp http: {} sessions opened by {} clients in {:.0} ms with a bearer token; VmRSS {:.1} MB \
         after the first, {:.1} MB after all ({:.1} KiB per session); then {} pings in one session \
         by the {} clients, {:.0} ms (rate limit off, so the figure is the server's)",
        http.sessions,
        http.concurrency,
        http.sessions_took.as_secs_f64() * 1e3,
        http.rss_before_kib as f64 / 1024.0,
        http.rss_after_kib as f64 / 1024.0,
        http.kib_per_session(),
        http.requests,
        http.concurrency,
        http.requests_took.as_secs_f64() * 1e3,
    ));
    group.notes.push(format!(
        "mcp: {} runs = {} server processes, each: spawn, initialize, tools/list, one {TOPOLOGY_TOOL} \
         call that waits for the fleet to load from Git, then {} timed warm calls (p50/p99 within a \
         process; the table shows their median and best over the processes); peak RSS is the \
         largest VmHWM of the server processes",
        context.runs, context.runs, context.calls
    ));
    group.notes.push(tools_note(
        answers.tools,
        model_registry_mcp::implemented_tools(),
        reports
            .iter()
            .map(|r| r.tools_list_bytes)
            .max()
            .unwrap_or_default(),
    ));
    group.notes.push(format!(
        "mcp: {TOPOLOGY_TOOL} without `machine` answers fleet totals over all {} machines and \
         details of {} of them: {} per answer",
        context.stats.machines,
        answers.machines_listed,
        super::kilobytes(answers.answer_bytes as u64)
    ));
    let inherited = inherited_settings();
    if !inherited.is_empty() {
        group.notes.push(format!(
            "mcp: the server inherited {} from this environment; they may change its tool list",
            inherited.join(", ")
        ));
    }
    Ok(group)
}

/// What the `tools/list` figure covers; while tools are missing, the size the
/// whole surface would have at the same average per tool.
fn tools_note(listed: usize, implemented: usize, bytes: usize) -> String {
    let mut note = format!(
        "mcp: tools/list lists {listed} tools ({implemented} implemented in this build, \
         {SURFACE_TOOLS} in the surface); the {} KB target is for all {SURFACE_TOOLS}",
        TOOLS_LIST_TARGET_BYTES / 1000
    );
    if listed > 0 && listed < SURFACE_TOOLS {
        let projected = (bytes * SURFACE_TOOLS).div_ceil(listed);
        note.push_str(&format!(
            ", which at the same average per tool would be {}",
            super::kilobytes(projected as u64)
        ));
    }
    note
}

/// Builds the server with the release profile and returns its executable, as
/// Cargo reports it (so `CARGO_TARGET_DIR` and `build.target-dir` are honoured).
fn build_server() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let output = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--package",
            PACKAGE,
            "--bin",
            PACKAGE,
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} build", cargo.to_string_lossy()))?;
    if !output.status.success() {
        bail!(
            "cargo build --release -p {PACKAGE} failed: {}",
            output.status
        );
    }
    let messages = String::from_utf8_lossy(&output.stdout);
    executable(&messages).with_context(|| {
        format!("cargo build --release -p {PACKAGE} reported no executable for {PACKAGE}")
    })
}

/// The workspace root: the bench package's parent directory.
fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

/// The `executable` of the server's `compiler-artifact` message in Cargo's JSON output.
fn executable(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == PACKAGE)
        .filter(|message| {
            message["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
}

/// What one unmeasured session saw: the timed calls are only worth timing if
/// they are answered with the fleet, not with an error.
#[derive(Debug)]
struct Answers {
    tools: usize,
    machines_listed: usize,
    answer_bytes: usize,
}

async fn check_answers(options: &BenchOptions, machines: usize) -> anyhow::Result<Answers> {
    let mut command = tokio::process::Command::new(&options.binary);
    if let Some(repository) = &options.repository {
        command.env("REGISTRY_RELEASE_CONFIG_REPO", repository);
    }
    for (key, value) in &options.env {
        command.env(key, value);
    }
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", options.binary.display()))?;
    let client = ().serve(transport).await.context("MCP initialize")?;
    let answers = async {
        let tools = client.list_tools(None).await.context("tools/list")?;
        if tools.next_cursor.is_some() {
            bail!("tools/list is paginated; the size measured would be its first page only");
        }
        let result = client
            .call_tool(CallToolRequestParams::new(TOPOLOGY_TOOL))
            .await
            .with_context(|| format!("calling {TOPOLOGY_TOOL}"))?;
        let answer_bytes = serde_json::to_vec(&result).map_or(0, |bytes| bytes.len());
        let structured = result.structured_content.unwrap_or_default();
        if result.is_error == Some(true) {
            bail!(
                "{TOPOLOGY_TOOL} answered an error: {}",
                serde_json::to_string(&result.content).unwrap_or_default()
            );
        }
        let served = structured["fleet"]["machines"].as_u64();
        if served != Some(machines as u64) {
            bail!(
                "{TOPOLOGY_TOOL} answered fleet.machines = {served:?}, expected {machines}: {}",
                truncate(&structured.to_string(), 300)
            );
        }
        Ok(Answers {
            tools: tools.tools.len(),
            machines_listed: structured["machines"].as_array().map_or(0, Vec::len),
            answer_bytes,
        })
    }
    .await;
    let _ = client.cancel().await;
    answers
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => text.get(..end).unwrap_or(text),
        None => text,
    }
}

/// Turns the reports of the runs into table rows.
fn rows(reports: &[BenchReport], targets: McpTargets) -> anyhow::Result<Group> {
    let startup: Vec<Duration> = reports.iter().map(|r| r.startup_to_initialize).collect();
    let confirm_p50 = durations(reports, |r| r.confirm_p50, "confirming-tool p50")?;
    let confirm_p99 = durations(reports, |r| r.confirm_p99, "confirming-tool p99")?;
    let revisions: Vec<String> = reports
        .first()
        .map(|r| {
            r.startup_by_revision
                .iter()
                .map(|(v, _)| v.clone())
                .collect()
        })
        .unwrap_or_default();
    let first = durations(reports, |r| r.first_topology_call, "first call")?;
    let p50 = durations(reports, |r| r.topology_p50, "p50")?;
    let p99 = durations(reports, |r| r.topology_p99, "p99")?;
    let placement_p50 = durations(reports, |r| r.placement_p50, "find_placement p50")?;
    let placement_p99 = durations(reports, |r| r.placement_p99, "find_placement p99")?;
    let tools_list_bytes = reports
        .iter()
        .map(|r| r.tools_list_bytes as u64)
        .max()
        .unwrap_or_default();
    let peak_kb = reports
        .iter()
        .map(|r| {
            r.peak_rss_kib
                .context("the server's peak RSS is unknown (no /proc?)")
        })
        .collect::<anyhow::Result<Vec<u64>>>()?
        .into_iter()
        .max()
        .unwrap_or_default();
    let time = |name: &str, samples: Vec<Duration>, target: Option<Duration>| Row {
        group: GROUP,
        name: name.to_owned(),
        figure: timing(samples, target),
        peak: None,
    };
    let mut by_revision = Vec::new();
    for (index, revision) in revisions.iter().enumerate() {
        let samples = durations(
            reports,
            |r| r.startup_by_revision.get(index).map(|(_, took)| *took),
            "start-up on a revision",
        )?;
        by_revision.push(time(
            &format!("start-up to first answer, {revision}"),
            samples,
            Some(STARTUP_TARGET),
        ));
    }
    let mut rows = vec![time(
        "start-up to initialize result",
        startup,
        Some(STARTUP_TARGET),
    )];
    rows.extend([
        Row {
            group: GROUP,
            name: "tools/list result size".to_owned(),
            figure: Figure::Bytes {
                size: tools_list_bytes,
                target: Some(TOOLS_LIST_TARGET_BYTES),
            },
            peak: None,
        },
        time(
            &format!("{TOPOLOGY_TOOL} first call (fleet load)"),
            first,
            targets.first_load,
        ),
        time(
            &format!("{TOPOLOGY_TOOL} p50, warm"),
            p50,
            Some(TOPOLOGY_P50_TARGET),
        ),
        time(&format!("{TOPOLOGY_TOOL} p99, warm"), p99, None),
        Row {
            group: GROUP,
            name: "server peak RSS, whole session".to_owned(),
            figure: Figure::Nothing,
            peak: Some(Peak {
                kb: peak_kb,
                target_mb: targets.peak_rss_mb,
            }),
        },
        time(
            "find_placement p50 (70 B, TP 2, whole fleet)",
            placement_p50,
            Some(PLACEMENT_P50_TARGET),
        ),
        time("find_placement p99", placement_p99, None),
    ]);
    rows.extend(by_revision);
    rows.extend([
        time(
            "stop_deployment on 2026-07-28, both rounds, p50",
            confirm_p50,
            None,
        ),
        time(
            "stop_deployment on 2026-07-28, both rounds, p99",
            confirm_p99,
            None,
        ),
    ]);
    Ok(Group {
        rows,
        notes: Vec::new(),
    })
}

fn http_rows(http: &model_registry_mcp::bench::http::HttpBenchReport) -> Vec<Row> {
    vec![
        Row {
            group: GROUP,
            name: format!("HTTP: RSS with {} sessions (VmRSS)", http.sessions),
            figure: Figure::Nothing,
            peak: Some(Peak {
                kb: http.rss_after_kib,
                target_mb: HTTP_RSS_TARGET_MB,
            }),
        },
        Row {
            group: GROUP,
            name: format!("HTTP: authenticated requests, {} clients", http.concurrency),
            figure: Figure::Rate {
                per_second: http.requests_per_second(),
                target: Some(HTTP_RATE_TARGET),
            },
            peak: None,
        },
    ]
}

/// One optional duration of every report; an absent one is an error (the
/// repository was configured, so every run made the calls).
fn durations(
    reports: &[BenchReport],
    field: impl Fn(&BenchReport) -> Option<Duration>,
    what: &str,
) -> anyhow::Result<Vec<Duration>> {
    reports
        .iter()
        .map(|report| field(report).with_context(|| format!("a run reported no {what}")))
        .collect()
}

fn timing(mut samples: Vec<Duration>, target: Option<Duration>) -> Figure {
    let min = samples.iter().min().copied().unwrap_or_default();
    Figure::Time {
        median: median(&mut samples),
        min,
        target,
    }
}

/// `REGISTRY_*` variables of this environment that the server inherits
/// (names only: their values may be secrets).
fn inherited_settings() -> Vec<String> {
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("REGISTRY_"))
        .filter(|name| {
            name != "REGISTRY_RELEASE_CONFIG_REPO" && name != "REGISTRY_RELEASE_CONFIG_CACHE_DIR"
        })
        .filter(|name| FIXED_SETTINGS.iter().all(|(fixed, _)| fixed != name))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_executable_is_read_from_cargo_messages() {
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"name":"model-registry-mcp","kind":["lib"]},"executable":null}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"xtask","kind":["bin"]},"executable":"/t/release/xtask"}"#,
            "not json",
            r#"{"reason":"compiler-artifact","target":{"name":"model-registry-mcp","kind":["bin"]},"executable":"/t/release/model-registry-mcp"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            executable(&messages),
            Some(PathBuf::from("/t/release/model-registry-mcp"))
        );
        assert_eq!(
            executable(r#"{"reason":"build-finished","success":true}"#),
            None
        );
    }

    fn report(startup_ms: u64, p50_us: u64, peak_kib: u64) -> BenchReport {
        BenchReport {
            startup_to_initialize: Duration::from_millis(startup_ms),
            tools_list_bytes: 30_000,
            first_topology_call: Some(Duration::from_millis(300)),
            topology_p50: Some(Duration::from_micros(p50_us)),
            topology_p99: Some(Duration::from_micros(p50_us * 3)),
            placement_p50: Some(Duration::from_micros(p50_us * 4)),
            placement_p99: Some(Duration::from_micros(p50_us * 5)),
            peak_rss_kib: Some(peak_kib),
            startup_by_revision: vec![("2026-07-28".to_owned(), Duration::from_millis(startup_ms))],
            confirm_p50: Some(Duration::from_micros(p50_us)),
            confirm_p99: Some(Duration::from_micros(p50_us * 2)),
        }
    }

    #[test]
    fn rows_show_the_median_and_best_run_and_the_largest_peak() {
        let group = rows(
            &[
                report(12, 900, 40_000),
                report(30, 700, 50_000),
                report(15, 2500, 45_000),
            ],
            McpTargets::for_machines(2000),
        )
        .unwrap();
        let names: Vec<&str> = group.rows.iter().map(|row| row.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "start-up to initialize result",
                "tools/list result size",
                "get_machine_topology first call (fleet load)",
                "get_machine_topology p50, warm",
                "get_machine_topology p99, warm",
                "server peak RSS, whole session",
                "find_placement p50 (70 B, TP 2, whole fleet)",
                "find_placement p99",
                "start-up to first answer, 2026-07-28",
                "stop_deployment on 2026-07-28, both rounds, p50",
                "stop_deployment on 2026-07-28, both rounds, p99",
            ]
        );
        let Figure::Time {
            median,
            min,
            target,
        } = group.rows[0].figure
        else {
            panic!("start-up is a time: {:?}", group.rows[0].figure);
        };
        assert_eq!(
            (median, min, target),
            (
                Duration::from_millis(15),
                Duration::from_millis(12),
                Some(STARTUP_TARGET)
            )
        );
        let Figure::Time { median, .. } = group.rows[3].figure else {
            panic!("p50 is a time");
        };
        assert_eq!(median, Duration::from_micros(900));
        assert_eq!(group.rows[5].peak.map(|p| p.kb), Some(50_000));
    }

    #[test]
    fn the_large_fleet_is_held_to_the_fleet_scale_targets() {
        let reports = [report(12, 900, 40_000)];
        let small = rows(&reports, McpTargets::for_machines(2000)).unwrap();
        let large = rows(&reports, McpTargets::for_machines(20_000)).unwrap();
        let first_load_target = |group: &Group| match group.rows[2].figure {
            Figure::Time { target, .. } => target,
            ref other => panic!("the first call is a time: {other:?}"),
        };
        assert_eq!(first_load_target(&small), None);
        assert_eq!(first_load_target(&large), Some(Duration::from_secs(3)));
        assert_eq!(small.rows[5].peak.map(|p| p.target_mb), Some(60.0));
        assert_eq!(large.rows[5].peak.map(|p| p.target_mb), Some(200.0));
    }

    #[test]
    fn a_partial_tool_list_is_projected_to_the_whole_surface() {
        // Half the surface listed at 900 bytes a tool: the whole surface at the same rate.
        let half = SURFACE_TOOLS / 2;
        let note = tools_note(half, half, 900 * half);
        assert!(
            note.starts_with(&format!(
                "mcp: tools/list lists {half} tools ({half} implemented in this build, \
                 {SURFACE_TOOLS} in the surface); the 40 KB target is for all {SURFACE_TOOLS}, \
                 which at the same average per tool would be "
            )),
            "{note}"
        );
        let projected = crate::kilobytes((900 * SURFACE_TOOLS) as u64);
        assert!(note.ends_with(&projected), "{note} (expected {projected})");
        let whole = tools_note(SURFACE_TOOLS, SURFACE_TOOLS, 39_000);
        assert_eq!(
            whole,
            format!(
                "mcp: tools/list lists {SURFACE_TOOLS} tools ({SURFACE_TOOLS} implemented in this \
                 build, {SURFACE_TOOLS} in the surface); the 40 KB target is for all {SURFACE_TOOLS}"
            )
        );
    }

    #[test]
    fn a_run_without_topology_figures_is_an_error() {
        let mut broken = report(12, 900, 40_000);
        broken.topology_p50 = None;
        let error = rows(
            &[report(12, 900, 40_000), broken],
            McpTargets::for_machines(2000),
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "a run reported no p50");
    }
}
