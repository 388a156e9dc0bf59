//! Times listing a large release-config repository: `DirReader::snapshot`
//! cold (new reader, every file hashed) and warm (stat cache filled), a bare
//! `read_dir` + `lstat` walk beside it as the floor, `Layout::read`, and
//! `Repository::snapshot` of the same tree committed to Git.
//!
//! `cargo run --release -p topology --example dir_walk [-- MACHINES DEPLOYMENTS RUNS]`
//! (defaults: 2000 machines, 5000 deployments, 30 runs). The tree is
//! `machines/<m>/machine.yaml`, `machines/<m>/<port>/docker-compose.yml` and,
//! for every third deployment, `.env`, in a temporary directory.
//! `-- --loop` lists warm for a few seconds and prints nothing, for `perf`.

// A measuring tool run by hand: a failed expectation stops it with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use topology::layout::Layout;
use topology::repo::{DirReader, Repository};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let profile_loop = args.iter().any(|a| a == "--loop");
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let machines = numbers.first().copied().unwrap_or(2000).max(1);
    let deployments = numbers.get(1).copied().unwrap_or(5000);
    let runs = numbers.get(2).copied().unwrap_or(30).max(1);

    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let files = generate(root, machines, deployments)?;

    if profile_loop {
        let reader = DirReader::new(root)?;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            black_box(reader.snapshot()?);
        }
        return Ok(());
    }

    println!(
        "{machines} machines, {deployments} deployments, {files} files; median / min of {runs} runs"
    );
    report("bare read_dir + lstat walk", runs, || {
        black_box(bare_walk(&root.join("machines"))?);
        Ok(())
    })?;
    report("DirReader::snapshot, cold (new reader)", runs, || {
        black_box(DirReader::new(root)?.snapshot()?);
        Ok(())
    })?;
    let reader = DirReader::new(root)?;
    black_box(reader.snapshot()?);
    report("DirReader::snapshot, warm", runs, || {
        black_box(reader.snapshot()?);
        Ok(())
    })?;
    let changed = root.join("machines/m0000/8000/docker-compose.yml");
    let original = fs::read_to_string(&changed)?;
    let mut edit = 0;
    report("DirReader::snapshot, warm, one file changed", runs, || {
        edit += 1;
        fs::write(&changed, format!("{original}# edit {edit}\n"))?;
        let start = Instant::now();
        black_box(reader.snapshot()?);
        Ok(start.elapsed())
    })?;
    let snapshot = reader.snapshot()?;
    report("Layout::read of the warm snapshot", runs, || {
        black_box(Layout::read(&snapshot));
        Ok(())
    })?;

    commit_tree(root)?;
    let repo = Repository::open(root)?;
    black_box(repo.snapshot("main")?);
    report("Repository::snapshot(\"main\"), warm", runs, || {
        black_box(repo.snapshot("main")?);
        Ok(())
    })?;
    report("Repository::open + snapshot(\"main\")", runs, || {
        black_box(Repository::open(root)?.snapshot("main")?);
        Ok(())
    })?;
    Ok(())
}

/// What one timed run returns: nothing (the whole closure is timed) or the
/// duration of the part that counts.
trait Timed {
    fn measured(self, whole: Duration) -> Duration;
}

impl Timed for () {
    fn measured(self, whole: Duration) -> Duration {
        whole
    }
}

impl Timed for Duration {
    fn measured(self, _whole: Duration) -> Duration {
        self
    }
}

fn report<T: Timed>(
    name: &str,
    runs: usize,
    mut run: impl FnMut() -> Result<T, Box<dyn std::error::Error>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut times = Vec::with_capacity(runs);
    let cpu_before = cpu_time();
    for _ in 0..runs {
        let start = Instant::now();
        let part = run()?;
        times.push(part.measured(start.elapsed()));
    }
    times.sort_unstable();
    let median = times.get(times.len() / 2).copied().unwrap_or_default();
    let min = times.first().copied().unwrap_or_default();
    // CPU time of all threads, which unlike wall time does not grow while
    // other processes hold the cores (tick resolution, averaged over the runs).
    let cpu = match (cpu_before, cpu_time()) {
        (Some(before), Some(after)) => format!(
            "{:.1} ms",
            after.saturating_sub(before).as_secs_f64() * 1e3 / runs as f64
        ),
        _ => "-".to_owned(),
    };
    println!(
        "  {name:<48} {:>8.2} ms  (min {:>6.2} ms, cpu {cpu})",
        median.as_secs_f64() * 1e3,
        min.as_secs_f64() * 1e3
    );
    Ok(())
}

/// User + system time of the process so far, from `/proc/self/stat` (Linux).
fn cpu_time() -> Option<Duration> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture the project targets.
    Some(Duration::from_millis((user + system) * 10))
}

/// Writes the tree; returns the number of files. Modification times are put
/// an hour back so the stat cache accepts every file (it refuses files written
/// within the last seconds, see `RACY_WINDOW` in `repo.rs`).
fn generate(root: &Path, machines: usize, deployments: usize) -> std::io::Result<usize> {
    let old = SystemTime::now() - Duration::from_secs(3600);
    let write = |path: &Path, content: &str| -> std::io::Result<()> {
        fs::write(path, content)?;
        fs::File::options()
            .write(true)
            .open(path)?
            .set_modified(old)
    };
    fs::write(root.join("release-config.toml"), "[rules]\n")?;
    let mut files = 1;
    let mut remaining = deployments;
    for m in 0..machines {
        let machine = root.join(format!("machines/m{m:04}"));
        fs::create_dir_all(&machine)?;
        write(
            &machine.join("machine.yaml"),
            "gpus: 8\ngpu_model: H100-SXM-80GB\ngpu_memory_gb: 80\ninterconnect: nvlink\n",
        )?;
        files += 1;
        // Spread the deployments evenly over the machines left.
        let here = remaining.div_ceil(machines - m);
        remaining -= here;
        for d in 0..here {
            let port = 8000 + d;
            let deployment = machine.join(port.to_string());
            fs::create_dir(&deployment)?;
            write(
                &deployment.join("docker-compose.yml"),
                &format!(
                    "services:\n  vllm-{m}-{port}:\n    image: vllm/vllm-openai:v0.6.3\n    \
                     command: [\"--model\", \"meta-llama/Llama-3-8B\", \"--port\", \"{port}\"]\n    \
                     ports: [\"{port}:{port}\"]\n    deploy:\n      resources:\n        \
                     reservations:\n          devices:\n            - driver: nvidia\n              \
                     device_ids: [\"{d}\"]\n              capabilities: [gpu]\n"
                ),
            )?;
            files += 1;
            if (m + d) % 3 == 0 {
                write(&deployment.join(".env"), "MODEL=llama\nHF_HOME=/data/hf\n")?;
                files += 1;
            }
        }
    }
    Ok(files)
}

/// The floor: `read_dir` and `lstat` of every entry, nothing else.
fn bare_walk(dir: &Path) -> std::io::Result<usize> {
    let mut count = 0;
    for child in fs::read_dir(dir)? {
        let child = child?;
        let path = child.path();
        let meta = fs::symlink_metadata(&path)?;
        count += 1;
        if meta.is_dir() {
            count += bare_walk(&path)?;
        }
    }
    Ok(count)
}

/// Commits the directory as `main` (`git init` + add everything), with git2
/// and no user configuration.
fn commit_tree(root: &Path) -> Result<(), git2::Error> {
    let mut options = git2::RepositoryInitOptions::new();
    options.initial_head("main");
    let git = git2::Repository::init_opts(root, &options)?;
    let mut index = git.index()?;
    index.add_all(
        ["machines", "release-config.toml"],
        git2::IndexAddOption::DEFAULT,
        None,
    )?;
    let tree = git.find_tree(index.write_tree()?)?;
    let signature = git2::Signature::new("bench", "bench@example.invalid", &git2::Time::new(0, 0))?;
    git.commit(
        Some("refs/heads/main"),
        &signature,
        &signature,
        "tree",
        &tree,
        &[],
    )?;
    Ok(())
}
