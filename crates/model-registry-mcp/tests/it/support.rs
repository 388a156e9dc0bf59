//! Fixtures: a small release-config repository built as a Git repository in a temp dir (served
//! to the server as a `file://` remote), and the real binary started over stdio.

use std::path::Path;
use std::process::Command;

use rmcp::RoleClient;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::{Peer, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::Value;
use tempfile::TempDir;

pub const BINARY: &str = env!("CARGO_BIN_EXE_model-registry-mcp");

/// Two inventoried machines and one without inventory; GPU 1 of gpu-a is held twice (GPU001).
pub const FLEET: &[(&str, &str)] = &[
    (
        "machines/gpu-a/machine.yaml",
        "gpus: 8\ngpu_model: H100-SXM-80GB\ngpu_memory_gb: 80\ninterconnect: nvlink\nnuma_domains: [[0,1,2,3],[4,5,6,7]]\n",
    ),
    (
        "machines/gpu-a/8000/docker-compose.yml",
        r#"services:
  vllm:
    image: vllm/vllm-openai:v0.8.5
    labels:
      catapult.model: llama-3-70b
      catapult.model_path: /models/llama-3-70b
    command: ["--model", "/models/llama-3-70b", "--tensor-parallel-size", "2"]
    ports: ["8000:8000"]
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              capabilities: [gpu]
              device_ids: ["0", "1"]
"#,
    ),
    (
        "machines/gpu-a/8001/docker-compose.yml",
        r#"services:
  sglang:
    image: lmsysorg/sglang:v0.4.6
    labels:
      catapult.model: qwen-2-7b
      catapult.model_path: /models/qwen-2-7b
    command: ["python3", "-m", "sglang.launch_server", "--model-path", "/models/qwen-2-7b", "--tp-size", "2"]
    ports: ["8001:30000"]
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              capabilities: [gpu]
              device_ids: ["1", "2"]
"#,
    ),
    (
        "machines/gpu-b/machine.yaml",
        "gpus: 4\ngpu_model: A100-80GB\ninterconnect: pcie\n",
    ),
    (
        "machines/gpu-b/9000/docker-compose.yml",
        r#"services:
  tgi:
    image: ghcr.io/huggingface/text-generation-inference:3.2.3
    labels:
      catapult.model: llama-3-70b
      catapult.model_path: /models/llama-3-70b
    command: ["--model-id", "/models/llama-3-70b", "--num-shard", "4"]
    ports: ["9000:80"]
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              capabilities: [gpu]
              device_ids: ["0", "1", "2", "3"]
"#,
    ),
    (
        "machines/cpu-x/7000/docker-compose.yml",
        "services:\n  router:\n    image: nginx:1.27\n    ports: [\"7000:80\"]\n",
    ),
    ("templates/vllm.yml.j2", "services: {}\n"),
    ("templates/custom.yml.j2", "services: {}\n"),
];

/// A Git repository (branch `main`) holding `files`, with isolated Git configuration.
pub struct FixtureRepo {
    pub dir: TempDir,
}

impl FixtureRepo {
    pub fn new(files: &[(&str, &str)]) -> FixtureRepo {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let repo = FixtureRepo { dir };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.commit(files, "initial fleet");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    pub fn commit(&self, files: &[(&str, &str)], message: &str) {
        for (path, content) in files {
            let full = self.path().join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {parent:?}: {e}"));
            }
            std::fs::write(&full, content).unwrap_or_else(|e| panic!("write {full:?}: {e}"));
        }
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "-m", message]);
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "main"]).trim().to_owned()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "Fixture")
            .env("GIT_AUTHOR_EMAIL", "fixture@example.invalid")
            .env("GIT_COMMITTER_NAME", "Fixture")
            .env("GIT_COMMITTER_EMAIL", "fixture@example.invalid")
            .output()
            .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// The binary's command with a clean environment (nothing from the developer's shell).
pub fn command(env: &[(&str, &str)], args: &[&str], cache: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BINARY);
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
        .env("HOME", cache)
        .env("REGISTRY_RELEASE_CONFIG_CACHE_DIR", cache.join("mirrors"))
        .env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command.args(args);
    command
}

pub type Client = RunningService<RoleClient, ()>;

/// A server over stdio, with its temp cache dir.
pub struct Server {
    pub client: Client,
    pub _cache: TempDir,
}

/// A server whose stderr goes to a file (read it with [`Server::stderr`]).
pub async fn start_logged(env: &[(&str, &str)], args: &[&str]) -> (Server, std::path::PathBuf) {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let log = cache.path().join("stderr.log");
    let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("stderr file: {e}"));
    let (transport, _stderr) = TokioChildProcess::builder(command(env, args, cache.path()))
        .stderr(std::process::Stdio::from(file))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BINARY}: {e}"));
    let client = ().serve(transport).await.unwrap_or_else(|e| panic!("initialize: {e}"));
    (
        Server {
            client,
            _cache: cache,
        },
        log,
    )
}

pub async fn start(env: &[(&str, &str)], args: &[&str]) -> Server {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (transport, _stderr) = TokioChildProcess::builder(command(env, args, cache.path()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BINARY}: {e}"));
    let client = ().serve(transport).await.unwrap_or_else(|e| panic!("initialize: {e}"));
    Server {
        client,
        _cache: cache,
    }
}

pub fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        other => panic!("arguments must be an object, got {other}"),
    }
}

/// Calls a tool; panics on a JSON-RPC error.
pub async fn call(client: &Peer<RoleClient>, name: &str, arguments: Value) -> CallToolResult {
    let mut params = CallToolRequestParams::new(name.to_owned());
    params.arguments = Some(args(arguments));
    client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Calls a tool expected to succeed; returns its structured content.
pub async fn call_ok(client: &Peer<RoleClient>, name: &str, arguments: Value) -> Value {
    let result = call(client, name, arguments).await;
    assert_eq!(result.is_error, Some(false), "{name}: {:?}", result.content);
    assert!(
        !text_of(&result).is_empty(),
        "{name}: text rendering missing"
    );
    result
        .structured_content
        .unwrap_or_else(|| panic!("{name}: no structuredContent"))
}

/// The text content of a result.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Calls a tool expected to fail as a tool (isError); returns its text.
pub async fn call_err(client: &Peer<RoleClient>, name: &str, arguments: Value) -> String {
    let result = call(client, name, arguments).await;
    assert_eq!(
        result.is_error,
        Some(true),
        "{name} should fail: {:?}",
        result.structured_content
    );
    text_of(&result)
}

pub fn fixture_env(repo: &FixtureRepo) -> Vec<(&'static str, String)> {
    vec![("REGISTRY_RELEASE_CONFIG_REPO", repo.url())]
}

pub fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
