//! Integration tests of the validator.

// Test helpers may unwrap: a failure there is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod baseline;
mod cli;
mod explain;
mod fixtures;
mod git;
mod import;
mod markdown;
mod place;
mod renderers;
mod sarif_shape;
mod support;
mod suppress;
