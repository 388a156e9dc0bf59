//! The pieces of an end-to-end run: the registry emulator on 127.0.0.1, a Git copy of the
//! release-config fixture, the real `model-registry-mcp` program over stdio and the real
//! `release-config-validate` program.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// Git identity and isolation for every process that touches a fixture repository: no system
/// or user configuration of the machine running the tests leaks in.
const GIT_ENV: &[(&str, &str)] = &[
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_AUTHOR_NAME", "Fixture"),
    ("GIT_AUTHOR_EMAIL", "fixture@example.invalid"),
    ("GIT_COMMITTER_NAME", "Fixture"),
    ("GIT_COMMITTER_EMAIL", "fixture@example.invalid"),
];

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

/// The release-config fixture of this project, committed to a fresh Git repository (branch
/// `main`) with isolated Git configuration.
pub struct ReleaseRepo {
    pub dir: TempDir,
}

impl ReleaseRepo {
    pub fn from_fixture() -> ReleaseRepo {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/release-config");
        copy_tree(&fixture, dir.path());
        let repo = ReleaseRepo { dir };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.git(&["add", "--all"]);
        repo.git(&["commit", "--quiet", "-m", "production fleet"]);
        repo
    }

    /// A bare clone: a remote that pushes can go to.
    pub fn bare_clone(&self) -> ReleaseRepo {
        self.clone_into(&["--bare"])
    }

    /// A clone with a work tree, `origin` being this repository.
    pub fn work_clone(&self) -> ReleaseRepo {
        self.clone_into(&[])
    }

    fn clone_into(&self, options: &[&str]) -> ReleaseRepo {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let source = self.path().to_string_lossy().into_owned();
        let target = dir.path().to_string_lossy().into_owned();
        let mut args = vec!["clone", "--quiet"];
        args.extend_from_slice(options);
        args.extend([source.as_str(), target.as_str()]);
        self.git(&args);
        ReleaseRepo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// As a remote, so that the server mirrors it rather than reading the work tree.
    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    pub fn head(&self) -> String {
        self.rev_parse("main")
    }

    pub fn rev_parse(&self, rev: &str) -> String {
        self.git(&["rev-parse", rev]).trim().to_owned()
    }

    /// Commits `files` on a new branch `branch` forked from `main`, then checks `main` out again
    /// (so only `--rev` or the server's branch setting can see the change).
    pub fn commit_on_branch(&self, branch: &str, files: &[(&str, &str)], message: &str) {
        self.git(&["checkout", "--quiet", "-b", branch, "main"]);
        for (path, content) in files {
            let full = self.path().join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {parent:?}: {e}"));
            }
            std::fs::write(&full, content).unwrap_or_else(|e| panic!("write {full:?}: {e}"));
        }
        self.git(&["add", "--all"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["checkout", "--quiet", "main"]);
    }

    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.path())
            .envs(GIT_ENV.iter().copied())
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

fn copy_tree(from: &Path, to: &Path) {
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {from:?}: {e}"));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("entry in {from:?}: {e}"));
        let target: PathBuf = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("type of {:?}: {e}", entry.path()));
        if kind.is_dir() {
            std::fs::create_dir_all(&target).unwrap_or_else(|e| panic!("mkdir {target:?}: {e}"));
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {:?}: {e}", entry.path()));
        }
    }
}

/// `program` with a clean environment: nothing from the developer's shell or CI (no registry
/// settings, no `GITHUB_STEP_SUMMARY`, no Git configuration) besides `PATH`.
fn clean_command(program: &str, home: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.env("HOME", home).envs(GIT_ENV.iter().copied());
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
