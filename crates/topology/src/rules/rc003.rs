//! RC003: a malformed .env line or ${...} expression, or an unset required variable
//! (${X:?msg}).
//!
//! Found while a compose file's `${...}` expressions are interpolated.

use super::*;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str =
    "a malformed .env line or ${...} expression, or an unset required variable (${X:?msg})";
pub(super) const NOT_REPORTED_WHEN: &str = "";
pub(super) const EXPLANATION: &str = include_str!("rc003.md");
pub(super) const CHECK: Check = Check::Elsewhere(&["compose/mod.rs"]);
