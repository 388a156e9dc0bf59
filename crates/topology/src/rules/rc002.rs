//! RC002: a value of the wrong type or range (compose file, machine.yaml,
//! release-config.toml).
//!
//! Found where each value is read, with the position of the value of the wrong type.

use super::*;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str =
    "a value of the wrong type or range (compose file, machine.yaml, release-config.toml)";
pub(super) const NOT_REPORTED_WHEN: &str = "";
pub(super) const EXPLANATION: &str = include_str!("rc002.md");
pub(super) const CHECK: Check = Check::Elsewhere(&[
    "compose/mod.rs",
    "compose/model.rs",
    "compose/gpus.rs",
    "compose/ports.rs",
    "inventory/mod.rs",
    "config.rs",
]);
