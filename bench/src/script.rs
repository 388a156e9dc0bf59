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
    let validator = || {
        let mut command = Command::new(&exe);
        command.arg("validate").arg(dir);
        command
    };
    let script_dir = tempfile::tempdir().context("creating a directory for the script")?;
    let script = script_dir.path().join("validate.py");
    std::fs::write(&script, SCRIPT).context("writing validate.py")?;
    // Five at most: each takes seconds, and a median of three moved by a
    // tenth between runs of the bench.
    let python_rounds = if python_with_yaml() {
        context.runs.min(5)
    } else {
        0
    };
    // In alternated blocks, each run after one of its own (see
    // `time_processes`).
    let [ours, python] = time_processes([
        (context.runs, &validator as &dyn Fn() -> Command),
        (python_rounds, &|| {
            let mut command = Command::new("python3");
            command.arg(&script).arg(dir);
            command
        }),
    ])?;
    if let Some(python) = python {
        let ours = ours.unwrap_or_default();
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

/// The median wall times of processes timed in blocks, the way hyperfine
/// times a command: in each block every command runs once untimed, then its
/// share of its `runs` timed, so that every timed run follows a run of the
/// same command. (In this VM a process that follows a larger one pays for
/// the memory that one gave back: the validator timed right after the
/// script took 149-163 ms, right after itself 110-123 ms.) The blocks
/// alternate, so that a change in the machine's load reaches every command
/// alike; there are as many as the fewest runs asked. `None` for a command
/// of no runs. Exit status 1 (findings) is a normal answer.
fn time_processes<const N: usize>(
    commands: [(usize, &dyn Fn() -> Command); N],
) -> anyhow::Result<[Option<Duration>; N]> {
    let run = |command: &dyn Fn() -> Command| -> anyhow::Result<Duration> {
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
        Ok(elapsed)
    };
    let mut times: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::new());
    let blocks = commands
        .iter()
        .map(|(runs, _)| *runs)
        .filter(|runs| *runs > 0)
        .min()
        .unwrap_or(0);
    for block in 0..blocks {
        for ((runs, command), times) in commands.iter().zip(&mut times) {
            if *runs == 0 {
                continue;
            }
            let share = runs * (block + 1) / blocks - runs * block / blocks;
            run(*command)?;
            for _ in 0..share {
                times.push(run(*command)?);
            }
        }
    }
    Ok(times.map(|mut times| (!times.is_empty()).then(|| median(&mut times))))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn appending(file: &Path, mark: &str) -> impl Fn() -> Command {
        let line = format!("echo {mark} >> '{}'", file.display());
        move || {
            let mut command = Command::new("sh");
            command.args(["-c", &line]);
            command
        }
    }

    #[test]
    fn compared_processes_run_in_alternated_blocks_each_after_a_warm_up() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("order");
        let ours = appending(&log, "a");
        let theirs = appending(&log, "b");
        let none = appending(&log, "c");
        let [a, b, c] = time_processes([(5, &ours), (2, &theirs), (0, &none)]).unwrap();
        assert!(a.is_some() && b.is_some() && c.is_none());
        let order = std::fs::read_to_string(&log).unwrap().replace('\n', "");
        // Two blocks (the fewest runs): a warm-up of each command, then its
        // share of its runs (2 + 3 of five, 1 + 1 of two).
        assert_eq!(order, "aaabbaaaabb");
    }

    #[test]
    fn a_compared_process_that_fails_is_an_error_with_its_message() {
        let failing = || {
            let mut command = Command::new("sh");
            command.args(["-c", "echo no fleet here >&2; exit 2"]);
            command
        };
        let error = time_processes([(1, &failing as &dyn Fn() -> Command)]).unwrap_err();
        assert!(error.to_string().contains("no fleet here"), "{error}");
    }
}
