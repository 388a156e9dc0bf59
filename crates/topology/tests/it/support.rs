//! Shared fixtures: release-config repositories built in temporary directories,
//! as plain directories or as Git repositories (the workspace's one fixture
//! builder, `test_support::fixture_repo`: git2 objects, isolated configuration,
//! a fixed signature).

pub use test_support::fixture_repo::{Change, FixtureRepo, signature, write_files};
