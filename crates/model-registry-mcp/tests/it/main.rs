//! Integration tests: the real binary, over stdio (rmcp client and raw lines) and HTTP, against
//! a release-config fixture repository and the registry emulator on 127.0.0.1.

// Test helpers may unwrap: a failure there is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bench;
mod changes;
mod cli;
mod conformance;
mod emu;
mod git_remotes;
mod http;
mod placement;
mod proposal_race;
mod proposals;
mod registry_modes;
mod registry_tools;
mod release_configs;
mod resources;
mod revisions;
mod secrets;
mod shared_service;
mod stdio_raw;
mod support;
mod surface;
