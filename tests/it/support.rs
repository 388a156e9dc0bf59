//! The pieces of an end-to-end run: the registry emulator on 127.0.0.1, a Git copy of the
//! release-config fixture, the real `model-registry-mcp` program over stdio and the real
//! `release-config-validate` program.

use std::path::Path;
use std::process::Stdio;

use registry_emulator::{EmulatorConfig, Role, RunningEmulator};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use tempfile::TempDir;

/// The MCP server program (see `main.rs` for why it is this package's own binary).
pub const MCP_BINARY: &str = env!("CARGO_BIN_EXE_e2e-model-registry-mcp");
/// The validator program.
pub const VALIDATE_BINARY: &str = env!("CARGO_BIN_EXE_e2e-release-config-validate");

/// The registry emulator (the Registry Server's test double), seeded with the demo data.
pub struct Registry {
    pub emu: RunningEmulator,
    _root: TempDir,
}

impl Registry {
    pub async fn start() -> Registry {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let config = EmulatorConfig::demo(root.path().join("storage"))
            .unwrap_or_else(|e| panic!("demo seed: {e}"));
        let emu = registry_emulator::spawn(config)
            .await
            .unwrap_or_else(|e| panic!("emulator: {e}"));
        Registry { emu, _root: root }
    }

    /// The server's environment for talking to this registry with `role`'s key, uncached.
    pub fn env(&self, role: Role) -> Vec<(&'static str, String)> {
        let key = self
            .emu
            .api_key(role)
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no key for {role:?}"));
        vec![
            ("REGISTRY_URL", self.emu.base_url().to_owned()),
            ("REGISTRY_API_KEY", key),
            ("REGISTRY_CACHE_TTL_SECONDS", "0".to_owned()),
        ]
    }

    /// `METHOD /path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.emu
            .requests()
            .snapshot()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

/// A Git repository (isolated, fixed identity: `test_support::fixture_repo`).
pub use test_support::fixture_repo::FixtureRepo as ReleaseRepo;

/// The release-config fixture of this project, committed to a fresh Git repository (branch
/// `main`).
pub fn release_repo() -> ReleaseRepo {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/release-config");
    ReleaseRepo::from_tree(&fixture, "production fleet")
}

/// `program` with a clean environment: nothing from the developer's shell or CI (no registry
/// settings, no `GITHUB_STEP_SUMMARY`, no Git configuration) besides `PATH`.
fn clean_command(program: &str, home: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
        .env("HOME", home)
        .envs(test_support::fixture_repo::ENV.iter().copied());
    command
}

pub type Client = RunningService<RoleClient, ()>;

/// The MCP server program over stdio, with its own cache directory and stderr log.
pub struct Server {
    pub client: Client,
    cache: TempDir,
}

impl Server {
    /// Starts the server with `env` (every setting is an environment variable) and initializes
    /// an MCP session with it.
    pub async fn start(env: &[(&str, String)]) -> Server {
        let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let log = cache.path().join("stderr.log");
        let stderr = std::fs::File::create(&log).unwrap_or_else(|e| panic!("stderr log: {e}"));
        let mut command = clean_command(MCP_BINARY, cache.path());
        command
            .env(
                "REGISTRY_RELEASE_CONFIG_CACHE_DIR",
                cache.path().join("mirrors"),
            )
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let (transport, _) = TokioChildProcess::builder(command)
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {MCP_BINARY}: {e}"));
        let client = match ().serve(transport).await {
            Ok(client) => client,
            Err(e) => panic!(
                "initialize: {e}; server stderr:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        };
        Server { client, cache }
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.cache.path().join("stderr.log")).unwrap_or_default()
    }

    /// Ends the session; the server exits when its stdin closes.
    pub async fn stop(self) {
        let _ = self.client.cancel().await;
    }

    /// Calls a tool that must succeed; returns its structured content.
    pub async fn call_ok(&self, name: &str, arguments: Value) -> Value {
        let mut params = CallToolRequestParams::new(name.to_owned());
        params.arguments = arguments.as_object().cloned();
        let result = match self.client.call_tool(params).await {
            Ok(result) => result,
            Err(e) => panic!("{name}: {e}; server stderr:\n{}", self.stderr()),
        };
        assert_eq!(result.is_error, Some(false), "{name}: {}", text_of(&result));
        result
            .structured_content
            .unwrap_or_else(|| panic!("{name}: no structuredContent"))
    }
}

/// What a run of the validator program left behind.
pub struct Validation {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Validation {
    /// The report of `--format json`.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs the validator program with `args`.
pub async fn validate(args: &[&str], home: &Path) -> Validation {
    let output = clean_command(VALIDATE_BINARY, home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {VALIDATE_BINARY}: {e}"));
    Validation {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn str_of<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value}"))
}
