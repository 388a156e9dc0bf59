//! RC001: a file does not parse as YAML or TOML, is over the size limit, not UTF-8 or
//! unreadable, or exceeds a YAML limit.
//!
//! Found while a compose file, an inventory or the repository config is read, and for a
//! file the Git revision cannot give.

use super::*;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "a file does not parse as YAML or TOML, is over the size limit, not UTF-8 or unreadable, or exceeds a YAML limit";
pub(super) const NOT_REPORTED_WHEN: &str = "";
pub(super) const EXPLANATION: &str = include_str!("rc001.md");
pub(super) const CHECK: Check = Check::Elsewhere(&[
    "compose/mod.rs",
    "inventory/mod.rs",
    "config.rs",
    "engine/parse.rs",
]);
