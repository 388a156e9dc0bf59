//! SUP001: a suppression comment without a reason, naming no rule, or accepting no finding.
//!
//! Found when suppression comments are applied to the findings of the whole repository.

use super::*;

pub(super) const SEVERITY: Severity = Severity::Warning;
pub(super) const SUMMARY: &str =
    "a suppression comment without a reason, naming no rule, or accepting no finding";
pub(super) const NOT_REPORTED_WHEN: &str = "";
pub(super) const EXPLANATION: &str = include_str!("sup001.md");
pub(super) const CHECK: Check = Check::Elsewhere(&["suppress.rs"]);
