//! End-to-end runs of the shipped programs as their users run them: an agent's MCP client
//! talking to `model-registry-mcp` over stdio, CI running `release-config-validate` on a Git
//! repository, both against the same release-config repository, with the registry emulator on
//! 127.0.0.1 as the Registry Server.
//!
//! Why `tests` has its own binaries (`src/bin/e2e-*.rs`): Cargo sets `CARGO_BIN_EXE_<name>` only
//! for the binaries of the package whose tests are being built, so these tests cannot name
//! `model-registry-mcp` or `release-config-validate` from their crates. The `e2e-` binaries are
//! the same programs (each calls its crate's `process_main`, exactly as the crate's `main.rs`
//! does) under names that do not collide with the real ones in the target directory.

// Test helpers may unwrap: a failure there is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ci_files;
mod deploy;
mod production;
mod propose;
mod support;
mod tidy;
mod validate_and_serve;
