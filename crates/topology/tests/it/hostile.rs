//! Hostile repositories, end to end through `Engine::analyze`: every case is
//! read both as a directory and as a Git commit, must give its specific
//! finding in bounded time, must not panic, and must leave the rest of the
//! fleet validated. Each case's repository holds a witness fleet beside the
//! hostile file: `m1:9000` uses GPU 9 of an 8-GPU machine (GPU002) and
//! `m2:8000` / `m2:8001` both hold GPU 1 (GPU001). When those findings are
//! still there, the hostile file did not stop validation.
//!
//! Memory bounds are measured in a child process (this test binary re-run
//! with only `child_analysis`, under an address-space cap), so that other
//! tests' allocations do not blur the peak and a blow-up cannot exhaust the
//! machine.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use git2::FileMode;
use tempfile::TempDir;
use topology::engine::Engine;
use topology::repo::{Repository, Snapshot};

use crate::support::{FixtureRepo, signature};

/// What one path of a case's repository holds.
#[derive(Debug, Clone)]
enum Content {
    Text(String),
    Bytes(Vec<u8>),
    /// A symbolic link with this target text.
    Link(&'static str),
    /// `header` padded with `#` comment lines to `size` bytes, written and
    /// hashed in chunks so the test itself never holds it in memory.
    Big {
        header: &'static str,
        size: u64,
    },
    /// A named pipe (directory snapshots only; Git has no such thing). Opening
    /// it for reading would block forever.
    Fifo,
}

use Content::{Big, Bytes, Fifo, Link};

fn text(s: impl Into<String>) -> Content {
    Content::Text(s.into())
}

/// Which snapshots a case is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sources {
    Both,
    DirOnly,
}

struct Case {
    name: &'static str,
    sources: Sources,
    /// Added to (or replacing) the witness fleet's files.
    files: Vec<(&'static str, Content)>,
    /// Every finding, as `CODE path[:line:column]`, in any order.
    expected: Vec<&'static str>,
    /// Substrings that must appear in some finding's message.
    messages: Vec<&'static str>,
}

fn case(
    name: &'static str,
    files: Vec<(&'static str, Content)>,
    expected: &[&'static str],
) -> Case {
    Case {
        name,
        sources: Sources::Both,
        files,
        expected: expected.to_vec(),
        messages: Vec::new(),
    }
}

impl Case {
    fn only(mut self, sources: Sources) -> Case {
        self.sources = sources;
        self
    }

    fn saying(mut self, messages: &[&'static str]) -> Case {
        self.messages = messages.to_vec();
        self
    }
}

const HOSTILE: &str = "machines/m1/8000/docker-compose.yml";
/// The witness findings (see the module comment).
const M1_GPU002: &str = "GPU002 machines/m1/9000/docker-compose.yml:9:56";
const M2_GPU001: &str = "GPU001 machines/m2/8001/docker-compose.yml:9:56";

/// Wall-clock bound of one analysis (debug build, slow CI machine).
const TIME_LIMIT: Duration = Duration::from_secs(20);

fn vllm(port: u16, ids: &str, tp: u32) -> String {
    format!(
        "services:
  llm:
    image: vllm/vllm-openai
    command: --model /models/m --tensor-parallel-size {tp}
    ports: ['{port}:8000']
    deploy:
      resources:
        reservations:
          devices: [{{capabilities: [gpu], device_ids: [{ids}]}}]
"
    )
}

fn witness() -> Vec<(&'static str, Content)> {
    vec![
        ("machines/m1/machine.yaml", text("gpus: 8\n")),
        (
            "machines/m1/9000/docker-compose.yml",
            text(vllm(9000, "'9'", 1)),
        ),
        ("machines/m2/machine.yaml", text("gpus: 4\n")),
        (
            "machines/m2/8000/docker-compose.yml",
            text(vllm(8000, "'0', '1'", 2)),
        ),
        (
            "machines/m2/8001/docker-compose.yml",
            text(vllm(8001, "'1', '2'", 2)),
        ),
    ]
}

/// The witness fleet with the case's files added; a case's file replaces a
/// witness file at the same path.
fn repository_files(case: &Case) -> Vec<(&'static str, Content)> {
    let mut files: Vec<(&'static str, Content)> = witness()
        .into_iter()
        .filter(|(path, _)| !case.files.iter().any(|(p, _)| p == path))
        .collect();
    files.extend(case.files.iter().cloned());
    files
}

// ---------------------------------------------------------------------------
// Building the two snapshots

const CHUNK: usize = 1 << 16;

/// Writes `size` bytes: the header, then `#` comment lines.
fn write_big(out: &mut impl std::io::Write, header: &str, size: u64) -> std::io::Result<()> {
    out.write_all(header.as_bytes())?;
    let line = "# padding padding padding padding padding padding padding padding\n";
    let chunk: String = line.repeat(CHUNK / line.len() + 1);
    let mut left = size.saturating_sub(header.len() as u64);
    while left > 0 {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        out.write_all(&chunk.as_bytes()[..n])?;
        left -= n as u64;
    }
    Ok(())
}

fn write_dir(root: &Path, files: &[(&str, Content)]) {
    for (path, content) in files {
        let full = root.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).expect("create fixture directory");
        }
        match content {
            Content::Text(s) => fs::write(&full, s).expect("write fixture file"),
            Bytes(b) => fs::write(&full, b).expect("write fixture file"),
            Link(target) => std::os::unix::fs::symlink(target, &full).expect("symlink"),
            Big { header, size } => {
                let file = fs::File::create(&full).expect("create big file");
                let mut out = std::io::BufWriter::new(file);
                write_big(&mut out, header, *size).expect("write big file");
                out.flush().expect("flush big file");
            }
            Fifo => {
                let status = std::process::Command::new("mkfifo")
                    .arg(&full)
                    .status()
                    .expect("run mkfifo");
                assert!(status.success(), "mkfifo {}", full.display());
            }
        }
    }
}

/// Commits `files` on `main` of a fresh repository, straight into the
/// object database (bytes and links included, which `support` cannot do).
fn commit(files: &[(&str, Content)]) -> FixtureRepo {
    let fixture = FixtureRepo::init();
    write_commit(fixture.repo(), files);
    fixture
}

fn write_commit(git: &git2::Repository, files: &[(&str, Content)]) {
    let empty = git
        .treebuilder(None)
        .expect("tree builder")
        .write()
        .expect("empty tree");
    let base = git.find_tree(empty).expect("empty tree");
    let mut update = git2::build::TreeUpdateBuilder::new();
    for (path, content) in files {
        let (blob, mode) = match content {
            Content::Text(s) => (git.blob(s.as_bytes()).expect("blob"), FileMode::Blob),
            Bytes(b) => (git.blob(b).expect("blob"), FileMode::Blob),
            Link(target) => (git.blob(target.as_bytes()).expect("blob"), FileMode::Link),
            Big { header, size } => {
                let mut writer = git.blob_writer(None).expect("blob writer");
                write_big(&mut writer, header, *size).expect("write big blob");
                (writer.commit().expect("commit big blob"), FileMode::Blob)
            }
            Fifo => continue,
        };
        update.upsert(*path, blob, mode);
    }
    let tree_id = update.create_updated(git, &base).expect("tree");
    let tree = git.find_tree(tree_id).expect("tree");
    let sig = signature();
    git.commit(Some("refs/heads/main"), &sig, &sig, "hostile", &tree, &[])
        .expect("commit");
}

/// What one analysis gave: `CODE location` lines and the messages.
struct Outcome {
    lines: Vec<String>,
    messages: Vec<String>,
    elapsed: Duration,
}

/// Analyses on another thread, so that a hang is a failure with a message
/// rather than a stuck test run.
fn analyze_bounded(make: impl FnOnce() -> Snapshot + Send + 'static) -> Result<Outcome, String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let snapshot = make();
            Engine::new().analyze(&snapshot)
        }));
        let _ = send.send((result, started.elapsed()));
    });
    match receive.recv_timeout(TIME_LIMIT) {
        Err(_) => Err(format!("no answer within {TIME_LIMIT:?}")),
        Ok((Err(_), _)) => Err("the engine panicked".to_owned()),
        Ok((Ok(Err(e)), _)) => Err(format!("analyze failed: {e}")),
        Ok((Ok(Ok(fleet)), elapsed)) => Ok(Outcome {
            lines: fleet
                .findings
                .iter()
                .map(|f| format!("{} {}", f.rule, f.location))
                .collect(),
            messages: fleet.findings.iter().map(|f| f.message.clone()).collect(),
            elapsed,
        }),
    }
}

fn compare(case: &Case, source: &str, outcome: Result<Outcome, String>) -> Option<String> {
    let mut outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => return Some(format!("{} ({source}): {e}", case.name)),
    };
    // The engine's order is tested elsewhere; here, which findings.
    outcome.lines.sort();
    let mut expected = case.expected.clone();
    expected.sort_unstable();
    let mut problems = Vec::new();
    if outcome.lines != expected {
        let shown: Vec<String> = outcome
            .messages
            .iter()
            .map(|m| m.chars().take(200).collect())
            .collect();
        problems.push(format!(
            "findings\n    expected {:#?}\n    got      {:#?}\n    messages {:#?}",
            expected, outcome.lines, shown
        ));
    }
    for wanted in &case.messages {
        if !outcome.messages.iter().any(|m| m.contains(wanted)) {
            let shown: Vec<String> = outcome
                .messages
                .iter()
                .map(|m| m.chars().take(200).collect())
                .collect();
            problems.push(format!("no message contains {wanted:?}: {shown:#?}"));
        }
    }
    if outcome.elapsed > TIME_LIMIT {
        problems.push(format!("took {:?}", outcome.elapsed));
    }
    (!problems.is_empty()).then(|| format!("{} ({source}): {}", case.name, problems.join("\n  ")))
}

/// The hostile cases share the machine's memory and two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs every case on a directory and on a Git commit; reports all failures.
fn check(cases: Vec<Case>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut failures = Vec::new();
    for case in &cases {
        let files = repository_files(case);
        // Always as a directory (removed at the end of the block), and as a commit.
        {
            let dir = TempDir::new().expect("temp dir");
            write_dir(dir.path(), &files);
            let root = dir.path().to_owned();
            let outcome =
                analyze_bounded(move || Snapshot::from_dir(&root).expect("directory snapshot"));
            failures.extend(compare(case, "directory", outcome));
        }
        if case.sources != Sources::DirOnly {
            let fixture = commit(&files);
            let path = fixture.path().to_owned();
            let outcome = analyze_bounded(move || {
                Repository::open(&path)
                    .expect("open")
                    .snapshot("main")
                    .expect("snapshot of main")
            });
            failures.extend(compare(case, "git", outcome));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------
// YAML bombs and limits

/// Nine levels of nine aliases each: 9^9 (387 million) nodes when expanded.
fn billion_laughs() -> String {
    let mut src = String::from("x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..=9 {
        let prev = level - 1;
        let items = vec![format!("*a{prev}"); 9].join(", ");
        src.push_str(&format!("x-a{level}: &a{level} [{items}]\n"));
    }
    src.push_str("services:\n  bomb:\n    image: *a9\n");
    src
}

#[test]
fn hostile_yaml_is_rc001_and_the_fleet_is_still_validated() {
    let deep_flow = format!("services: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    // Block nesting 10,000 deep in a few kilobytes: compact block sequences.
    let deep_block = format!("services:\n  x:\n    {}x\n", "- ".repeat(10_000));
    // Block mappings, one level per line, one space per level: stays under
    // the size limit only because the depth limit stops the parse first.
    let mut deep_map = String::from("services:\n");
    for level in 0..2_000 {
        deep_map.push_str(&" ".repeat(level + 1));
        deep_map.push_str("k:\n");
    }
    let recursive_merge = "x-base: &base\n  <<: *base\nservices: {}\n";
    check(vec![
        case(
            "billion laughs",
            vec![(HOSTILE, text(billion_laughs()))],
            &[
                M1_GPU002,
                "RC001 machines/m1/8000/docker-compose.yml:6:17",
                M2_GPU001,
            ],
        )
        .saying(&["alias expansion exceeds 200000 nodes"]),
        case(
            "10,000-deep flow nesting",
            vec![(HOSTILE, text(deep_flow))],
            &[
                M1_GPU002,
                "RC001 machines/m1/8000/docker-compose.yml:1:266",
                M2_GPU001,
            ],
        )
        .saying(&["nesting deeper than 64 levels"]),
        case(
            "10,000-deep block sequences",
            vec![(HOSTILE, text(deep_block))],
            &[
                M1_GPU002,
                "RC001 machines/m1/8000/docker-compose.yml:3:129",
                M2_GPU001,
            ],
        )
        .saying(&["nesting deeper than 64 levels"]),
        case(
            "2,000-deep block mappings",
            vec![(HOSTILE, text(deep_map))],
            &[
                M1_GPU002,
                "RC001 machines/m1/8000/docker-compose.yml:65:65",
                M2_GPU001,
            ],
        )
        .saying(&["nesting deeper than 64 levels"]),
        case(
            "a merge key that merges its own anchor",
            vec![(HOSTILE, text(recursive_merge))],
            &[
                M1_GPU002,
                "RC001 machines/m1/8000/docker-compose.yml:2:7",
                M2_GPU001,
            ],
        ),
        case(
            "two documents",
            vec![(HOSTILE, text("services: {}\n---\nservices: {}\n"))],
            &[
                M1_GPU002,
                "RC001 machines/m1/8000/docker-compose.yml:2:1",
                M2_GPU001,
            ],
        ),
    ]);
}

#[test]
fn hostile_bytes_are_rc001_naming_where() {
    // Line 3, after `    image: vll` (13 bytes): byte offset 10 + 8 + 13 = 31.
    let mut invalid = b"services:\n  bad:\n    image: vll".to_vec();
    invalid.extend_from_slice(&[0xff, 0xfe]);
    invalid.extend_from_slice(b"m\n");
    let mut invalid_env = b"A=1\nB=".to_vec();
    invalid_env.push(0xc3);
    invalid_env.extend_from_slice(b"\n");
    check(vec![
        case(
            "50 MB compose file",
            vec![(
                HOSTILE,
                Big {
                    header: "services:\n",
                    size: 50 << 20,
                },
            )],
            &[
                M1_GPU002,
                "RC001 machines/m1/8000/docker-compose.yml",
                M2_GPU001,
            ],
        )
        .saying(&["is 52428800 bytes, more than the limit of 4194304 bytes"]),
        case(
            "invalid UTF-8 in a compose file",
            vec![(HOSTILE, Bytes(invalid))],
            &[
                M1_GPU002,
                "RC001 machines/m1/8000/docker-compose.yml:3:15",
                M2_GPU001,
            ],
        )
        .saying(&["invalid byte at offset 31"]),
        case(
            "invalid UTF-8 in .env",
            vec![
                (HOSTILE, text(vllm(8000, "'0'", 1))),
                ("machines/m1/8000/.env", Bytes(invalid_env)),
            ],
            &[M1_GPU002, "RC001 machines/m1/8000/.env:2:3", M2_GPU001],
        )
        .saying(&["invalid byte at offset 6"]),
        case(
            "a NUL byte (valid UTF-8, not YAML)",
            vec![(HOSTILE, text("services:\n  a\0: {}\n"))],
            &[
                M1_GPU002,
                "RC001 machines/m1/8000/docker-compose.yml:2:4",
                M2_GPU001,
            ],
        ),
    ]);
}

/// `VmHWM` / `VmRSS` of this process in kB, when Linux says so.
fn proc_status_kb(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Set (to `dir:<path>` or `git:<path>`) when this test binary is re-run as
/// the child process that analyses one repository (see [`analyze_in_child`]).
const CHILD_SOURCE: &str = "TOPOLOGY_HOSTILE_CHILD";
const CHILD_TEST: &str = "hostile::child_analysis";
/// Address-space cap of the child: a runaway allocation fails there instead
/// of taking the shared machine's memory.
const CHILD_MEMORY_KB: u64 = 4 << 20;

/// What the child reported.
#[derive(Debug)]
struct ChildReport {
    /// Growth of the peak resident size over the analysis.
    peak_growth_kb: u64,
    findings: Vec<String>,
}

/// Analyses `source` in a fresh process (this test binary, running only
/// [`child_analysis`]) under an address-space cap, so that no other test's
/// allocations blur the peak and a blow-up cannot hurt the machine.
fn analyze_in_child(source: &str) -> Result<ChildReport, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {CHILD_MEMORY_KB} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_SOURCE, source)
        .output()
        .map_err(|e| format!("cannot run the child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let peak_growth_kb = stdout
        .lines()
        .find_map(|l| l.split_once("peak growth kB: "))
        .and_then(|(_, v)| v.split_whitespace().next()?.parse().ok());
    match peak_growth_kb {
        Some(peak_growth_kb) if output.status.success() => Ok(ChildReport {
            peak_growth_kb,
            findings: stdout
                .lines()
                .filter_map(|l| l.strip_prefix("finding: "))
                .map(str::to_owned)
                .collect(),
        }),
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr
                .lines()
                .filter(|l| !l.trim_start().starts_with("at ") && !l.contains(": 0x"))
                .take(12)
                .collect::<Vec<_>>()
                .join("\n");
            Err(format!("the child failed ({}): {tail}", output.status))
        }
    }
}

/// The child side of [`analyze_in_child`]; does nothing in a normal run.
/// Besides `analyze`, it renders the topology, as the MCP tools do.
#[test]
fn child_analysis() {
    let Ok(source) = std::env::var(CHILD_SOURCE) else {
        return;
    };
    let before = proc_status_kb("VmRSS").unwrap_or(0);
    let snapshot = match source.split_once(':') {
        Some(("dir", path)) => Snapshot::from_dir(path).expect("directory snapshot"),
        Some(("git", path)) => Repository::open(path)
            .expect("open")
            .snapshot("main")
            .expect("snapshot of main"),
        _ => panic!("bad {CHILD_SOURCE}: {source}"),
    };
    let fleet = Engine::new().analyze(&snapshot).expect("analyze");
    let topology = fleet.topology();
    assert_eq!(topology.len(), fleet.machines.len());
    for finding in &fleet.findings {
        println!("finding: {} {}", finding.rule, finding.location);
    }
    let peak = proc_status_kb("VmHWM").unwrap_or(0);
    println!("peak growth kB: {}", peak.saturating_sub(before));
}

/// Runs `files` (added to the witness fleet) in a child, from a directory
/// and from a commit; checks the peak memory bound and the witness findings.
fn check_memory(name: &str, files: Vec<(&'static str, Content)>, limit_mb: u64) -> Vec<String> {
    let mut all = witness();
    all.retain(|(path, _)| !files.iter().any(|(p, _)| p == path));
    all.extend(files);
    let dir = TempDir::new().expect("temp dir");
    write_dir(dir.path(), &all);
    let fixture = commit(&all);
    let mut failures = Vec::new();
    for source in [
        format!("dir:{}", dir.path().display()),
        format!("git:{}", fixture.path().display()),
    ] {
        let kind = source.split(':').next().unwrap_or("");
        match analyze_in_child(&source) {
            Err(e) => failures.push(format!("{name} ({kind}): {e}")),
            Ok(report) => {
                if report.peak_growth_kb > limit_mb * 1024 {
                    failures.push(format!(
                        "{name} ({kind}): peak memory grew by {} MB (bound {limit_mb} MB)",
                        report.peak_growth_kb / 1024
                    ));
                }
                if !report.findings.iter().any(|f| f == M2_GPU001) {
                    failures.push(format!(
                        "{name} ({kind}): the rest of the fleet was not validated: {:?}",
                        report.findings
                    ));
                }
            }
        }
    }
    failures
}

/// "Without reading it whole": analysing a repository whose compose file is
/// 50 MB must not raise peak memory by anything near 50 MB.
#[test]
fn a_50_mb_compose_file_is_not_read_into_memory() {
    if proc_status_kb("VmHWM").is_none() {
        eprintln!("no /proc/self/status: memory not measured");
        return;
    }
    let failures = check_memory(
        "50 MB compose file",
        vec![(
            HOSTILE,
            Big {
                header: "services:\n",
                size: 50 << 20,
            },
        )],
        20,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A GPU count no machine has (a typo, or hostile): the analysis must not
/// allocate per GPU of it. Without a bound, `gpus: 4294967295` asks for
/// hundreds of gigabytes (a 4 GB address-space cap makes the child abort
/// instead of exhausting the machine).
#[test]
fn an_absurd_gpu_count_does_not_exhaust_memory() {
    if proc_status_kb("VmHWM").is_none() {
        eprintln!("no /proc/self/status: memory not measured");
        return;
    }
    let all_gpus = "services:\n  llm:\n    image: vllm/vllm-openai\n    command: --model /m -tp 2\n    ports: ['8000:8000']\n    gpus: all\n";
    let mut failures = check_memory(
        "gpus: 4294967295",
        vec![("machines/m1/machine.yaml", text("gpus: 4294967295\n"))],
        64,
    );
    failures.extend(check_memory(
        "gpus: 4294967295, pcie, a service with `gpus: all`",
        vec![
            (
                "machines/m1/machine.yaml",
                text("gpus: 4294967295\ninterconnect: pcie\nnuma_domains: [[0, 1], [2, 3]]\n"),
            ),
            (HOSTILE, text(all_gpus)),
        ],
        64,
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Layout

#[test]
fn hostile_layout_is_rc004_and_the_fleet_is_still_validated() {
    let compose = || text(vllm(7000, "'7'", 1));
    check(vec![
        case(
            "compose file linking outside the repository",
            vec![(HOSTILE, Link("../../../../../../../../../../etc/passwd"))],
            &[
                "RC004 machines/m1/8000",
                "RC004 machines/m1/8000/docker-compose.yml",
                M1_GPU002,
                M2_GPU001,
            ],
        )
        .saying(&[
            "leaves the repository; it is not followed",
            "has no compose file",
        ]),
        case(
            "compose file linking to `../../etc/passwd` (inside, dangling)",
            vec![(HOSTILE, Link("../../etc/passwd"))],
            &[
                "RC004 machines/m1/8000",
                "RC004 machines/m1/8000/docker-compose.yml",
                M1_GPU002,
                M2_GPU001,
            ],
        )
        .saying(&["which points to nothing, not a compose file"]),
        case(
            "release-config.toml linking to `../../etc/passwd` (outside)",
            vec![("release-config.toml", Link("../../etc/passwd"))],
            &[M1_GPU002, M2_GPU001, "RC004 release-config.toml"],
        )
        .saying(&["leaves the repository"]),
        case(
            "machine directory linking to `../../etc` (outside)",
            vec![("machines/evil", Link("../../etc"))],
            &[M1_GPU002, "RC004 machines/evil", M2_GPU001],
        ),
        case(
            "port directory linking to /etc",
            vec![("machines/m1/8002", Link("/etc"))],
            &[M1_GPU002, "RC004 machines/m1/8002", M2_GPU001],
        )
        .only(Sources::DirOnly),
        case(
            "odd port directory names",
            vec![
                ("machines/m1/..x/docker-compose.yml", compose()),
                ("machines/m1/x../docker-compose.yml", compose()),
                ("machines/m1/ 8000/docker-compose.yml", compose()),
                ("machines/m1/8000 /docker-compose.yml", compose()),
                ("machines/m1/08000/docker-compose.yml", compose()),
                ("machines/m1/65536/docker-compose.yml", compose()),
            ],
            &[
                "RC004 machines/m1/ 8000",
                "RC004 machines/m1/..x",
                "RC004 machines/m1/08000",
                "RC004 machines/m1/65536",
                "RC004 machines/m1/8000 ",
                M1_GPU002,
                "RC004 machines/m1/x..",
                M2_GPU001,
            ],
        )
        .saying(&[
            "has a leading zero",
            "is not a decimal number",
            "is outside 1..65535",
        ]),
        case(
            "machine directory `-bad`",
            vec![("machines/-bad/8000/docker-compose.yml", compose())],
            &["RC004 machines/-bad", M1_GPU002, M2_GPU001],
        )
        .saying(&["must start with a letter or a digit"]),
        case(
            "compose file that is a named pipe",
            vec![(HOSTILE, Fifo)],
            &[
                "RC004 machines/m1/8000",
                "RC004 machines/m1/8000/docker-compose.yml",
                M1_GPU002,
                M2_GPU001,
            ],
        )
        .only(Sources::DirOnly),
    ]);
}

// ---------------------------------------------------------------------------
// Interpolation

#[test]
fn hostile_interpolation_is_rc003() {
    let nested = format!(
        "services:\n  x:\n    image: {}x{}\n",
        "${A:-".repeat(1_000),
        "}".repeat(1_000)
    );
    check(vec![
        case(
            "malformed .env line",
            vec![
                (HOSTILE, text(vllm(8000, "'${GPU}'", 1))),
                (
                    "machines/m1/8000/.env",
                    text("GPU=0\nthis is not a variable\n"),
                ),
            ],
            &["RC003 machines/m1/8000/.env:2:1", M1_GPU002, M2_GPU001],
        )
        .saying(&["cannot contain a space"]),
        case(
            "required variable missing",
            vec![(
                HOSTILE,
                text("services:\n  x:\n    image: ${X:?boom}\n    ports: ['8000:80']\n"),
            )],
            &[
                M1_GPU002,
                "RC003 machines/m1/8000/docker-compose.yml:3:12",
                M2_GPU001,
            ],
        )
        .saying(&["required variable X is missing a value: boom"]),
        case(
            "interpolation nested 1,000 deep",
            vec![(HOSTILE, text(nested))],
            &[
                M1_GPU002,
                "RC003 machines/m1/8000/docker-compose.yml:3:12",
                "PORT002 machines/m1/8000/docker-compose.yml:2:3",
                M2_GPU001,
            ],
        )
        .saying(&["nested deeper than 64 levels"]),
    ]);
}

// ---------------------------------------------------------------------------
// Structure

#[test]
fn hostile_structure_is_rc002() {
    let service = |body: &str| {
        text(format!(
            "services:\n  llm:\n    image: vllm/vllm-openai\n    ports: ['8000:8000']\n{body}"
        ))
    };
    check(vec![
        case(
            "empty compose file",
            vec![(HOSTILE, text(""))],
            &[M1_GPU002, "RC002 machines/m1/8000/docker-compose.yml:1:1", M2_GPU001],
        )
        .saying(&["has no `services` mapping"]),
        case(
            "compose file that is a list",
            vec![(HOSTILE, text("- services\n- x\n"))],
            &[M1_GPU002, "RC002 machines/m1/8000/docker-compose.yml:1:1", M2_GPU001],
        )
        .saying(&["must be a mapping, found a list"]),
        case(
            "compose file that is a scalar",
            vec![(HOSTILE, text("just text\n"))],
            &[M1_GPU002, "RC002 machines/m1/8000/docker-compose.yml:1:1", M2_GPU001],
        ),
        // Compose accepts a file without services (e.g. include-only); the
        // deployment simply holds nothing.
        case(
            "services: null",
            vec![(HOSTILE, text("services: null\n"))],
            &[M1_GPU002, M2_GPU001],
        ),
        case(
            "services is a list",
            vec![(HOSTILE, text("services: [a, b]\n"))],
            &[M1_GPU002, "RC002 machines/m1/8000/docker-compose.yml:1:11", M2_GPU001],
        ),
        case(
            "a service that is a string",
            vec![(HOSTILE, text("services:\n  llm: vllm/vllm-openai\n"))],
            &[M1_GPU002, "RC002 machines/m1/8000/docker-compose.yml:2:8", M2_GPU001],
        )
        .saying(&["service `llm` must be a mapping, found a scalar"]),
        case(
            "device_ids as a string",
            vec![(
                HOSTILE,
                service(
                    "    deploy:\n      resources:\n        reservations:\n          devices:\n            - capabilities: [gpu]\n              device_ids: '0,1'\n",
                ),
            )],
            &[M1_GPU002, "RC002 machines/m1/8000/docker-compose.yml:10:27", M2_GPU001],
        )
        .saying(&["`device_ids` must be a list, found a scalar"]),
        case(
            "count as a float",
            vec![(
                HOSTILE,
                service(
                    "    deploy:\n      resources:\n        reservations:\n          devices:\n            - capabilities: [gpu]\n              count: 1.5\n",
                ),
            )],
            &[M1_GPU002, "RC002 machines/m1/8000/docker-compose.yml:10:22", M2_GPU001],
        )
        .saying(&["`count` must be a non-negative integer or `all`, found `1.5`"]),
        case(
            "a port range of 60,000 ports",
            vec![(
                HOSTILE,
                text("services:\n  llm:\n    ports: ['8000:8000', '1000-61000:1000-61000']\n"),
            )],
            &[M1_GPU002, "RC002 machines/m1/8000/docker-compose.yml:3:26", M2_GPU001],
        )
        .saying(&["longer than 4096 ports"]),
        case(
            "gpus: -1 in machine.yaml",
            vec![("machines/m1/machine.yaml", text("gpus: -1\n"))],
            &["RC002 machines/m1/machine.yaml:1:7", M2_GPU001],
        )
        .saying(&["`gpus` must be a non-negative integer, found `-1`"]),
        case(
            "gpus: \"eight\" in machine.yaml",
            vec![("machines/m1/machine.yaml", text("gpus: \"eight\"\n"))],
            &["RC002 machines/m1/machine.yaml:1:7", M2_GPU001],
        )
        .saying(&["`gpus` must be a non-negative integer, found `eight`"]),
        case(
            "machine.yaml that is a billion laughs",
            vec![("machines/m1/machine.yaml", text(billion_laughs()))],
            &["RC001 machines/m1/machine.yaml:6:17", M2_GPU001],
        ),
    ]);
}

// ---------------------------------------------------------------------------
// release-config.toml

#[test]
fn release_config_that_is_not_toml_is_rc001_and_the_run_goes_on() {
    check(vec![
        case(
            "not TOML",
            vec![("release-config.toml", text("[rules\nGPU002 = \"off\"\n"))],
            &[M1_GPU002, M2_GPU001, "RC001 release-config.toml:1:7"],
        )
        .saying(&["release-config.toml is not valid TOML"]),
        case(
            "YAML instead of TOML",
            vec![("release-config.toml", text("rules:\n  GPU002: off\n"))],
            &[M1_GPU002, M2_GPU001, "RC001 release-config.toml:1:7"],
        ),
        case(
            "binary release-config.toml",
            vec![("release-config.toml", Bytes(vec![0xff, 0x00, 0x01]))],
            &[M1_GPU002, M2_GPU001, "RC001 release-config.toml:1:1"],
        )
        .saying(&["not valid UTF-8: invalid byte at offset 0"]),
    ]);
}

// ---------------------------------------------------------------------------
// Quadratic blow-ups

/// Many services claiming one GPU and one port (a generated file gone
/// wrong, or a hostile one: 300 services are 40 KB). The findings must grow
/// with the number of services, not with the number of pairs: with one
/// finding (and one related location) per pair, 1,600 such services give
/// 2.5 million findings, a minute and 4 GB.
#[test]
fn many_services_on_one_gpu_give_findings_linear_in_services() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let services = 300;
    let pinned = "deploy: {resources: {reservations: {devices: [{capabilities: [gpu], device_ids: ['0']}]}}}";
    let counted =
        "deploy: {resources: {reservations: {devices: [{capabilities: [gpu], count: 1}]}}}";
    let mut failures = Vec::new();
    for (what, claim) in [("device_ids: ['0']", pinned), ("count: 1", counted)] {
        let mut src = String::from("services:\n");
        for i in 0..services {
            src.push_str(&format!("  s{i}:\n    ports: ['8000:8000']\n    {claim}\n"));
        }
        let mut files = witness();
        files.push((HOSTILE, text(src)));
        let dir = TempDir::new().expect("temp dir");
        write_dir(dir.path(), &files);
        let root = dir.path().to_owned();
        let started = Instant::now();
        let snapshot = Snapshot::from_dir(&root).expect("snapshot");
        let fleet = Engine::new().analyze(&snapshot).expect("analyze");
        let elapsed = started.elapsed();
        let findings = fleet.findings.len();
        let related: usize = fleet.findings.iter().map(|f| f.related.len()).sum();
        // The witness findings are there too.
        for witness in [M1_GPU002, M2_GPU001] {
            if !fleet
                .findings
                .iter()
                .any(|f| format!("{} {}", f.rule, f.location) == witness)
            {
                failures.push(format!("{what}: witness {witness} missing"));
            }
        }
        let bound = 4 * services + 10;
        if findings + related > bound {
            failures.push(format!(
                "{services} services with {what} on one port: {findings} findings with {related} related locations (bound {bound}) in {elapsed:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
