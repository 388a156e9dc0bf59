//! RC004: layout: a bad machine or port directory name, a port directory without compose
//! file, an extra compose file, a link leaving the repository.
//!
//! Found while the repository's layout (`machines/<machine>/<port>/`) is listed.

use super::*;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "layout: a bad machine or port directory name, a port directory without compose file, an extra compose file, a link leaving the repository";
pub(super) const NOT_REPORTED_WHEN: &str = "";
pub(super) const EXPLANATION: &str = include_str!("rc004.md");
pub(super) const CHECK: Check = Check::Elsewhere(&["layout.rs"]);
