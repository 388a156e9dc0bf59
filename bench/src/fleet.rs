//! A synthetic release-config fleet for the benchmark: thousands of machines
//! whose compose files mix every GPU source and parallelism spelling the engine
//! reads, `.env` interpolation, anchors and merge keys, inventories with NUMA
//! domains, and a sprinkle of real conflicts so the findings path is exercised.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

/// How big the fleet is.
#[derive(Debug, Clone, Copy)]
pub struct FleetSize {
    pub machines: usize,
}

/// What was generated.
#[derive(Debug, Clone, Default)]
pub struct FleetStats {
    pub machines: usize,
    pub deployments: usize,
    pub files: usize,
}

/// The file that the "one file changes" measurements edit.
pub const CHANGED_FILE: &str = "machines/node-00007/8000/docker-compose.yml";

/// Deterministic xorshift, so every run benchmarks the same fleet.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[derive(Clone, Copy)]
enum Server {
    Vllm,
    Sglang,
    Tgi,
    Trtllm,
}

#[derive(Clone, Copy)]
enum GpuSource {
    DeviceIdsStrings,
    /// CDI device names: `devices: [nvidia.com/gpu=0]`.
    CdiDevices,
    ServiceGpus,
    RuntimeEnvMap,
    RuntimeEnvList,
    /// `count: all`: only when the deployment is alone on its machine.
    CountAll,
}

struct MachineKind {
    gpus: u32,
    model: &'static str,
    memory_gb: u32,
    nvlink: bool,
    /// GPU group sizes, one deployment each.
    layouts: &'static [&'static [u32]],
}

const KINDS: &[MachineKind] = &[
    MachineKind {
        gpus: 8,
        model: "H100-SXM-80GB",
        memory_gb: 80,
        nvlink: true,
        layouts: &[&[4, 4], &[8], &[2, 2, 4], &[2, 2, 2, 2]],
    },
    MachineKind {
        gpus: 4,
        model: "A100-PCIE-80GB",
        memory_gb: 80,
        nvlink: false,
        layouts: &[&[2, 2], &[4], &[1, 1, 2]],
    },
    MachineKind {
        gpus: 8,
        model: "L4-24GB",
        memory_gb: 24,
        nvlink: false,
        layouts: &[&[4, 4], &[2, 2, 4], &[1, 1, 2, 4]],
    },
];

/// Writes the fleet under `root` (which must exist) and returns its size.
pub fn generate(root: &Path, size: FleetSize) -> anyhow::Result<FleetStats> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut stats = FleetStats::default();
    write(
        root,
        "release-config.toml",
        "[rules]\nTP004 = \"warning\"\n",
        &mut stats,
    )?;
    for m in 0..size.machines {
        let name = format!("node-{m:05}");
        let kind = KINDS.get(rng.below(KINDS.len())).unwrap_or(&KINDS[0]);
        // 3% of machines have no inventory yet (INV001).
        let has_inventory = rng.below(100) >= 3;
        if has_inventory {
            write(
                root,
                &format!("machines/{name}/machine.yaml"),
                &inventory(kind, m),
                &mut stats,
            )?;
        }
        let layout = kind
            .layouts
            .get(rng.below(kind.layouts.len()))
            .copied()
            .unwrap_or(&[1]);
        let mut next_gpu = 0u32;
        for (index, &group) in layout.iter().enumerate() {
            let port = 8000 + index as u16;
            let mut gpus: Vec<u32> = (next_gpu..next_gpu + group).collect();
            next_gpu += group;
            // 1 deployment in 200 reuses the previous group's first GPU: a real conflict.
            if index > 0
                && rng.below(200) == 0
                && let Some(first) = gpus.first_mut()
            {
                *first -= 1;
            }
            let server = match rng.below(4) {
                0 => Server::Vllm,
                1 => Server::Sglang,
                2 => Server::Tgi,
                _ => Server::Trtllm,
            };
            let alone = layout.len() == 1;
            let source = match rng.below(if alone { 6 } else { 5 }) {
                0 => GpuSource::DeviceIdsStrings,
                1 => GpuSource::CdiDevices,
                2 => GpuSource::ServiceGpus,
                3 => GpuSource::RuntimeEnvMap,
                4 => GpuSource::RuntimeEnvList,
                _ => GpuSource::CountAll,
            };
            let style = rng.below(3);
            let dir = format!("machines/{name}/{port}");
            let (compose, env) = compose(server, source, style, port, &gpus, rng.below(4));
            write(
                root,
                &format!("{dir}/docker-compose.yml"),
                &compose,
                &mut stats,
            )?;
            if let Some(env) = env {
                write(root, &format!("{dir}/.env"), &env, &mut stats)?;
            }
            stats.deployments += 1;
        }
        stats.machines += 1;
    }
    Ok(stats)
}

fn write(root: &Path, path: &str, text: &str, stats: &mut FleetStats) -> anyhow::Result<()> {
    let full = root.join(path);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&full, text).with_context(|| format!("writing {}", full.display()))?;
    stats.files += 1;
    Ok(())
}

fn inventory(kind: &MachineKind, index: usize) -> String {
    let half = kind.gpus / 2;
    let ids =
        |range: std::ops::Range<u32>| range.map(|g| g.to_string()).collect::<Vec<_>>().join(", ");
    format!(
        "gpus: {}\ngpu_model: {}\ngpu_memory_gb: {}\ninterconnect: {}\nnuma_domains: [[{}], [{}]]\nlabels: {{pool: {}, rack: r{:03}}}\n",
        kind.gpus,
        kind.model,
        kind.memory_gb,
        if kind.nvlink { "nvlink" } else { "pcie" },
        ids(0..half),
        ids(half..kind.gpus),
        if index.is_multiple_of(5) {
            "staging"
        } else {
            "prod"
        },
        index / 40,
    )
}

/// A compose file for one deployment (and its `.env` when it interpolates).
/// `style`: 0 plain, 1 anchors and merge keys, 2 `.env` interpolation.
fn compose(
    server: Server,
    source: GpuSource,
    style: usize,
    port: u16,
    gpus: &[u32],
    spelling: usize,
) -> (String, Option<String>) {
    let tp = gpus.len();
    let interpolate = style == 2;
    let model = [
        "meta-llama/Llama-3.1-8B-Instruct",
        "Qwen/Qwen2.5-32B-Instruct",
        "mistralai/Mistral-7B-Instruct-v0.3",
    ][tp % 3];
    let (model_text, tp_text) = if interpolate {
        ("${MODEL_PATH:?}".to_owned(), "${TP:-1}".to_owned())
    } else {
        (format!("/models/{model}"), tp.to_string())
    };
    let (image, container_port, args): (&str, u16, Vec<String>) = match server {
        Server::Vllm => {
            let flag = match spelling {
                0 => vec!["--tensor-parallel-size".to_owned(), tp_text.clone()],
                1 => vec![format!("--tensor-parallel-size={tp_text}")],
                _ => vec!["-tp".to_owned(), tp_text.clone()],
            };
            let mut args = vec!["--model".to_owned(), model_text.clone()];
            args.extend(flag);
            args.extend(["--gpu-memory-utilization".to_owned(), "0.9".to_owned()]);
            ("vllm/vllm-openai:v0.6.3", 8000, args)
        }
        Server::Sglang => {
            let flag = if spelling.is_multiple_of(2) {
                "--tp"
            } else {
                "--tp-size"
            };
            let mut args: Vec<String> = ["python3", "-m", "sglang.launch_server", "--model-path"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            args.extend([
                model_text.clone(),
                flag.to_owned(),
                tp_text.clone(),
                "--port".to_owned(),
                "30000".to_owned(),
            ]);
            if spelling == 3 {
                args.extend(["--dp-size".to_owned(), "1".to_owned()]);
            }
            ("lmsysorg/sglang:v0.4.0-cu124", 30000, args)
        }
        Server::Tgi => {
            let mut args = vec![
                "--model-id".to_owned(),
                model_text.clone(),
                "--port".to_owned(),
                "80".to_owned(),
            ];
            if spelling.is_multiple_of(2) {
                args.extend(["--num-shard".to_owned(), tp_text.clone()]);
            }
            (
                "ghcr.io/huggingface/text-generation-inference:2.4.0",
                80,
                args,
            )
        }
        Server::Trtllm => {
            let args = vec![
                "trtllm-serve".to_owned(),
                model_text.clone(),
                "--tp_size".to_owned(),
                tp_text.clone(),
                "--pp_size".to_owned(),
                "1".to_owned(),
                "--port".to_owned(),
                "8000".to_owned(),
            ];
            (
                "nvcr.io/nvidia/tritonserver:24.10-trtllm-python-py3",
                8000,
                args,
            )
        }
    };
    let tgi_env_shards = matches!(server, Server::Tgi) && spelling % 2 == 1;

    let mut out = String::new();
    out.push_str("# generated by cargo xtask bench\n");
    if style == 1 {
        let _ = write!(
            out,
            "x-common: &common\n  image: {image}\n  ipc: host\n  restart: unless-stopped\n  volumes: [\"/models:/models:ro\"]\n  labels: &labels\n    catapult.params_b: \"8\"\n    catapult.dtype: bf16\n\n"
        );
    }
    out.push_str("services:\n  server:\n");
    if style == 1 {
        out.push_str("    <<: *common\n");
    } else {
        let _ = writeln!(out, "    image: {image}\n    restart: unless-stopped");
    }
    // Command: list form for even spellings, one string otherwise.
    if spelling.is_multiple_of(2) {
        out.push_str("    command:\n");
        for arg in &args {
            let _ = writeln!(out, "      - \"{arg}\"");
        }
    } else {
        let _ = writeln!(out, "    command: {}", args.join(" "));
    }
    let _ = writeln!(out, "    ports:\n      - \"{port}:{container_port}\"");

    let ids_str = gpus
        .iter()
        .map(|g| format!("\"{g}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let ids_cdi = gpus
        .iter()
        .map(|g| format!("\"nvidia.com/gpu={g}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let ids_plain = gpus
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut env: Vec<(String, String)> = Vec::new();
    if tgi_env_shards {
        env.push(("NUM_SHARD".to_owned(), tp_text.clone()));
    }
    let reservation = |ids: &str| {
        format!(
            "    deploy:\n      resources:\n        reservations:\n          devices:\n            - driver: nvidia\n              capabilities: [gpu]\n              {ids}\n"
        )
    };
    let mut env_list = false;
    let gpu_block = match source {
        GpuSource::DeviceIdsStrings => reservation(&format!("device_ids: [{ids_str}]")),
        GpuSource::CdiDevices => format!("    devices: [{ids_cdi}]\n"),
        GpuSource::ServiceGpus => {
            format!("    gpus:\n      - capabilities: [gpu]\n        device_ids: [{ids_str}]\n")
        }
        GpuSource::RuntimeEnvMap => {
            env.push(("NVIDIA_VISIBLE_DEVICES".to_owned(), ids_plain.clone()));
            "    runtime: nvidia\n".to_owned()
        }
        GpuSource::RuntimeEnvList => {
            env_list = true;
            env.push(("NVIDIA_VISIBLE_DEVICES".to_owned(), ids_plain.clone()));
            "    runtime: nvidia\n".to_owned()
        }
        GpuSource::CountAll => reservation("count: all"),
    };
    out.push_str(&gpu_block);
    if !env.is_empty() {
        out.push_str("    environment:\n");
        for (key, value) in &env {
            if env_list {
                let _ = writeln!(out, "      - {key}={value}");
            } else {
                let _ = writeln!(out, "      {key}: \"{value}\"");
            }
        }
    }
    if style == 1 {
        out.push_str("    labels:\n      <<: *labels\n      catapult.role: inference\n");
    }
    let env_file = interpolate.then(|| format!("MODEL_PATH=/models/{model}\nTP={tp}\n"));
    (out, env_file)
}

/// `git init` + commit of everything under `root`, with an isolated Git
/// configuration (no user or system config can change the result). Automatic
/// `gc` is off so no background repack races the measurements; [`pack`] packs
/// explicitly.
pub fn commit_all(root: &Path) -> anyhow::Result<()> {
    git(root, &["init", "--quiet", "--initial-branch=main"])?;
    git(root, &["config", "gc.auto", "0"])?;
    git(root, &["config", "maintenance.auto", "false"])?;
    git(root, &["add", "--all"])?;
    git(
        root,
        &[
            "commit",
            "--quiet",
            "--no-gpg-sign",
            "-m",
            "synthetic fleet",
        ],
    )?;
    Ok(())
}

/// Packs every object into one pack and deletes the loose copies, as a mirror
/// fetched from a remote has them (`git add` and `git commit` leave one zlib
/// file per object, which is slower to read).
pub fn pack(root: &Path) -> anyhow::Result<()> {
    git(root, &["repack", "-a", "-d", "-q"])?;
    Ok(())
}

/// How the repository stores its objects (`git count-objects -v`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ObjectCounts {
    pub loose: u64,
    pub in_pack: u64,
    pub packs: u64,
    pub pack_kb: u64,
}

/// Writes the fleet's dirty pages out (`sync -f`, one `syncfs` of its file
/// system). Just generated, its 10,000-100,000 files are written back by the
/// kernel over the next half minute, in the middle of the measurements.
pub fn settle(root: &Path) -> anyhow::Result<()> {
    let status = Command::new("sync")
        .arg("-f")
        .arg(root)
        .status()
        .context("running sync")?;
    if !status.success() {
        bail!("sync -f {} exited with {status}", root.display());
    }
    Ok(())
}

pub fn object_counts(root: &Path) -> anyhow::Result<ObjectCounts> {
    let text = git(root, &["count-objects", "-v"])?;
    Ok(parse_object_counts(&text))
}

fn parse_object_counts(text: &str) -> ObjectCounts {
    let mut counts = ObjectCounts::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<u64>() else {
            continue;
        };
        match key.trim() {
            "count" => counts.loose = value,
            "in-pack" => counts.in_pack = value,
            "packs" => counts.packs = value,
            "size-pack" => counts.pack_kb = value,
            _ => {}
        }
    }
    counts
}

/// Runs `git` in `root` with an isolated configuration and returns its stdout.
fn git(root: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(root)
        .env("HOME", root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "git {} failed in {}: {}: {}",
            args.join(" "),
            root.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_counts_are_read_from_count_objects_output() {
        let text = "count: 12\nsize: 48\nin-pack: 5616\npacks: 1\nsize-pack: 637\nprune-packable: 0\ngarbage: 0\nsize-garbage: 0\n";
        let counts = parse_object_counts(text);
        assert_eq!(
            (counts.loose, counts.in_pack, counts.packs, counts.pack_kb),
            (12, 5616, 1, 637)
        );
    }

    /// The bench measures a fleet Docker Compose would accept: no reading
    /// finding (RC001-RC005) in it, and every deployment holds its GPUs.
    #[test]
    fn the_fleet_reads_cleanly() {
        use topology::Rule;
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), FleetSize { machines: 200 }).unwrap();
        // As the bench does before measuring.
        settle(dir.path()).unwrap();
        let snapshot = topology::repo::Snapshot::from_dir(dir.path()).unwrap();
        let fleet = topology::engine::Engine::new().analyze(&snapshot).unwrap();
        let reading: Vec<String> = fleet
            .findings
            .iter()
            .filter(|f| {
                matches!(
                    f.rule,
                    Rule::Rc001 | Rule::Rc002 | Rule::Rc003 | Rule::Rc004 | Rule::Rc005
                )
            })
            .map(|f| format!("{} {}", f.rule, f.message))
            .collect();
        assert!(reading.is_empty(), "{reading:#?}");
        // Every GPU source of the generator is read as a claim.
        let unclaimed: Vec<String> = fleet
            .deployments
            .values()
            .filter(|d| !d.services.iter().any(|s| s.gpus.holds_gpus()))
            .map(|d| format!("{}: {}", d.id, d.compose_path))
            .collect();
        assert!(
            unclaimed.is_empty(),
            "deployments holding no GPU: {unclaimed:#?}"
        );
    }

    #[test]
    fn packing_leaves_no_loose_objects() {
        let dir = tempfile::tempdir().unwrap();
        let stats = generate(dir.path(), FleetSize { machines: 3 }).unwrap();
        commit_all(dir.path()).unwrap();
        let loose = object_counts(dir.path()).unwrap();
        assert!(loose.loose > 0 && loose.packs == 0, "{loose:?}");
        pack(dir.path()).unwrap();
        let packed = object_counts(dir.path()).unwrap();
        assert_eq!((packed.loose, packed.packs), (0, 1), "{packed:?}");
        assert_eq!(packed.in_pack, loose.loose);
        assert!(stats.files > 3);
    }
}
