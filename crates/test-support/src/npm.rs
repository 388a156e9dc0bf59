//! Tools from npm, pinned by `tools/<name>/package-lock.json` and installed on first use with
//! `npm ci` into `target/reference-tools/<name>-<hash of the lock file>`, staged and renamed into
//! place like the other reference tools.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::reference::tools_dir;
use crate::workspace_root;

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where `tools/<name>` is installed, installing it unless `ready(home)` says it is.
pub(crate) fn install(name: &str, ready: &dyn Fn(&Path) -> bool) -> Result<PathBuf, String> {
    let dir = workspace_root().join("tools").join(name);
    let lock = fs::read(dir.join("package-lock.json"))
        .map_err(|e| format!("cannot read tools/{name}/package-lock.json: {e}"))?;
    let home = tools_dir().join(format!("{name}-{:016x}", fnv(&lock)));
    if ready(&home) {
        return Ok(home);
    }
    let staging = tools_dir().join(format!(".staging-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)
        .map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
    for file in ["package.json", "package-lock.json"] {
        fs::copy(dir.join(file), staging.join(file))
            .map_err(|e| format!("cannot copy tools/{name}/{file}: {e}"))?;
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
            "`npm ci` of tools/{name} failed (is the npm registry reachable?): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    // Another test binary may have finished first: theirs is as good.
    let moved = fs::rename(&staging, &home);
    let _ = fs::remove_dir_all(&staging);
    if moved.is_err() && !ready(&home) {
        return Err(format!(
            "cannot install tools/{name} into {}",
            home.display()
        ));
    }
    Ok(home)
}
