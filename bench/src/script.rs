//! The comparison group: our validator and the Python script a team would
//! write instead (`validate.py`, PyYAML with libyaml, from the contract), each
//! as a process on the same directory in the same run; and the validator's
//! system calls per file read, counted by `strace -c` where it is installed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::{Context, Figure, Group, Row, median};

/// The script, written from the contract (section 1-4 of release-config-repo.md).
const SCRIPT: &str = include_str!("validate.py");
/// How much faster than the script the validator must be.
const RATIO_TARGET: f64 = 20.0;
/// System calls per file read.
const SYSCALLS_PER_FILE_TARGET: f64 = 5.0;

pub fn measure(context: &Context) -> anyhow::Result<Group> {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let dir = &context.repo;
    let ours = time_process(context.runs, || {
        let mut command = Command::new(&exe);
        command.arg("validate").arg(dir);
        command
    })?;
    let script_dir = tempfile::tempdir().context("creating a directory for the script")?;
    let script = script_dir.path().join("validate.py");
    std::fs::write(&script, SCRIPT).context("writing validate.py")?;
    if python_with_yaml() {
        let python = time_process(context.runs.min(3), || {
            let mut command = Command::new("python3");
            command.arg(&script).arg(dir);
            command
        })?;
        let ratio = python.as_secs_f64() / ours.as_secs_f64().max(1e-9);
        rows.push(Row {
            group: "compare",
            name: "Python script (PyYAML, libyaml), directory".to_owned(),
            figure: Figure::Time {
                median: python,
                min: python,
                target: None,
            },
            peak: None,
        });
        rows.push(Row {
            group: "compare",
            name: format!("validator process, directory ({ratio:.1}x)"),
            figure: Figure::Time {
                median: ours,
                min: ours,
                target: Some(python.div_f64(RATIO_TARGET)),
            },
            peak: None,
        });
        notes.push(format!(
            "compare: the validator as a process takes {:.0} ms, the Python script {:.0} ms on the \
             same directory: {ratio:.1}x (target {RATIO_TARGET}x)",
            ours.as_secs_f64() * 1e3,
            python.as_secs_f64() * 1e3
        ));
    } else {
        notes.push("compare: python3 with PyYAML is not installed; no comparison".to_owned());
    }
    match syscalls(&exe, dir) {
        Ok(calls) => {
            let files = context.stats.files.max(1);
            #[allow(clippy::cast_precision_loss)]
            let per_file = calls as f64 / files as f64;
            let verdict = if per_file <= SYSCALLS_PER_FILE_TARGET {
                "ok"
            } else {
                "MISSED"
            };
            notes.push(format!(
                "syscalls: `validate DIR` makes {calls} system calls for {files} files: {per_file:.1} per \
                 file (target <= {SYSCALLS_PER_FILE_TARGET}, {verdict})"
            ));
        }
        Err(error) => notes.push(format!("syscalls: not counted ({error:#})")),
    }
    Ok(Group { rows, notes })
}

fn python_with_yaml() -> bool {
    Command::new("python3")
        .args(["-c", "import yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The median wall time of `runs` runs of a process (after one warm-up run);
/// exit status 1 (findings) is a normal answer.
fn time_process(runs: usize, command: impl Fn() -> Command) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for run in 0..=runs.max(1) {
        let start = Instant::now();
        let output = command()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .context("running a compared process")?;
        let elapsed = start.elapsed();
        if !matches!(output.status.code(), Some(0 | 1)) {
            bail!(
                "a compared process failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        if run > 0 {
            times.push(elapsed);
        }
    }
    Ok(median(&mut times))
}

/// The total of `strace -f -c` over one `validate DIR`.
fn syscalls(exe: &Path, dir: &Path) -> anyhow::Result<u64> {
    let out = tempfile::NamedTempFile::new().context("creating strace's output file")?;
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(out.path())
        .arg(exe)
        .arg("validate")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running strace (install it to count system calls)")?;
    if !matches!(status.code(), Some(0 | 1)) {
        bail!("strace validate exited with {status}");
    }
    let text = std::fs::read_to_string(out.path()).context("reading strace's summary")?;
    // `100.00    0.123456           2     69012        28 total`
    text.lines()
        .find(|line| line.trim_end().ends_with("total"))
        .and_then(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(3).and_then(|calls| calls.parse().ok())
        })
        .with_context(|| format!("no total in strace's summary: {text}"))
}
