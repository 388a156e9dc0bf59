//! GPU004: CUDA_VISIBLE_DEVICES inconsistent with pinned GPUs.
//!
//! Found while a service's GPU claim is read: it needs only the service itself.

use super::*;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "CUDA_VISIBLE_DEVICES inconsistent with pinned GPUs";
pub(super) const NOT_REPORTED_WHEN: &str = "the service claims no GPU";
pub(super) const EXPLANATION: &str = include_str!("gpu004.md");
pub(super) const CHECK: Check = Check::Elsewhere(&["compose/gpus.rs"]);
