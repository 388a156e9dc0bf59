//! Integration tests of the topology engine (one test binary for the crate).

// Test helpers may unwrap: a failure there is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod compose;
mod compose_reference;
mod engine;
mod hostile;
mod interpolate;
mod inventory;
mod layout;
mod nvidia_smi;
mod placement;
mod proposal;
mod repo;
mod rules;
mod support;
mod yaml;
