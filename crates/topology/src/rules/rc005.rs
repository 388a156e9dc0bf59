//! RC005: interpolation of an unset variable without default (it becomes empty).
//!
//! Found while a compose file's `${...}` expressions are interpolated.

use super::*;

pub(super) const SEVERITY: Severity = Severity::Warning;
pub(super) const SUMMARY: &str =
    "interpolation of an unset variable without default (it becomes empty)";
pub(super) const NOT_REPORTED_WHEN: &str = "the deployment's `.env` has an RC003";
pub(super) const EXPLANATION: &str = include_str!("rc005.md");
pub(super) const CHECK: Check = Check::Elsewhere(&["compose/mod.rs"]);
