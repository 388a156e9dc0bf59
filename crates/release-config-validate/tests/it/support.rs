//! Helpers: running the validator in-process, fixture paths; Git repositories
//! are the workspace's one fixture builder (`test_support::fixture_repo`).

use std::path::{Path, PathBuf};

use release_config_validate::{Args, ColorChoice, Environment, Exit, Format, run};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// What one run printed and returned.
#[derive(Debug)]
pub struct Outcome {
    pub exit: Exit,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// `code` of every finding of a JSON report.
    pub fn codes(&self) -> Vec<String> {
        self.json()["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| f["code"].as_str().expect("code").to_owned())
            .collect()
    }
}

/// Runs the validator with `args` (no colour, no step summary).
pub fn validate(args: &Args) -> Outcome {
    validate_in(args, &Environment::default())
}

pub fn validate_in(args: &Args, env: &Environment) -> Outcome {
    let mut args = args.clone();
    if args.color == ColorChoice::Auto {
        args.color = ColorChoice::Never;
    }
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let exit = run(&args, env, &mut stdout, &mut stderr);
    Outcome {
        exit,
        stdout: String::from_utf8(stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(stderr).expect("utf-8 stderr"),
    }
}

pub fn args(path: impl Into<PathBuf>, format: Format) -> Args {
    Args {
        format,
        ..Args::for_path(path)
    }
}

pub use test_support::fixture_repo::FixtureRepo as GitRepo;

pub const INVENTORY: &str = "gpus: 8\ngpu_model: H100-SXM-80GB\ngpu_memory_gb: 80\ninterconnect: nvlink\nnuma_domains: [[0, 1, 2, 3], [4, 5, 6, 7]]\n";

/// A one-GPU vLLM deployment on host port `port` holding GPU `gpu`.
pub fn deployment(port: u16, gpu: u32) -> String {
    format!(
        "services:
  server:
    image: vllm/vllm-openai:v0.6.3
    command: --model /models/m{port}
    ports:
      - \"{port}:8000\"
    deploy:
      resources:
        reservations:
          devices:
            - capabilities: [gpu]
              device_ids: [\"{gpu}\"]
"
    )
}

pub trait WithBase {
    fn with_base(self, rev: &str) -> Args;
}

impl WithBase for Args {
    fn with_base(mut self, rev: &str) -> Args {
        self.base = Some(rev.to_owned());
        self
    }
}

/// The `--flags` of the README's usage block whose first line starts with
/// `first_line`, sorted, each once.
pub fn readme_usage_flags(first_line: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap_or_else(|e| panic!("{e}"));
    let usage: String = readme
        .lines()
        .skip_while(|line| !line.starts_with(first_line))
        .take_while(|line| !line.starts_with("```"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut flags: Vec<String> = usage
        .split(|c: char| c.is_whitespace() || c == '[' || c == ']')
        .filter(|word| word.starts_with("--"))
        .map(str::to_owned)
        .collect();
    flags.sort_unstable();
    flags.dedup();
    flags
}

/// The long flags of a clap command, `--name`, sorted.
pub fn long_flags(command: &clap::Command) -> Vec<String> {
    let mut flags: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_long())
        .map(|long| format!("--{long}"))
        .collect();
    flags.sort();
    flags
}
