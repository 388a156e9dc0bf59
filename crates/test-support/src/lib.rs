//! Test-only helpers shared by the workspace's test binaries.
//!
//! [`reference`] installs the reference implementations that differential
//! tests compare the workspace against (Docker Compose v2, ...), from the
//! pinned, hashed list in `tools/reference/requirements.txt`, so that a fresh
//! clone's `cargo test --workspace` needs nothing installed by hand.
//! [`git_daemon`] serves repositories over the `git://` protocol on loopback,
//! [`smart_http`] over smart HTTP(S) through `git http-backend`. [`conformance`]
//! installs the official MCP conformance suite from npm.

pub mod conformance;
pub mod git_daemon;
pub mod reference;
pub mod smart_http;

use std::path::PathBuf;

/// The workspace's top directory.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(|crates| crates.parent())
        .map_or(manifest.clone(), PathBuf::from)
}
