//! GPU005: several GPU ids packed into one device_ids string.
//!
//! Found while a service's GPU claim is read: it needs only the service itself.

use super::*;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "several GPU ids packed into one device_ids string";
pub(super) const NOT_REPORTED_WHEN: &str = "";
pub(super) const EXPLANATION: &str = include_str!("gpu005.md");
pub(super) const CHECK: Check = Check::Elsewhere(&["compose/gpus.rs"]);
