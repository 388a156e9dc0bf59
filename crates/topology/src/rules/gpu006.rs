//! GPU006: host ids in CUDA_VISIBLE_DEVICES without CUDA_DEVICE_ORDER=PCI_BUS_ID.
//!
//! Found while a service's GPU claim is read: it needs only the service itself.

use super::*;

pub(super) const SEVERITY: Severity = Severity::Warning;
pub(super) const SUMMARY: &str =
    "host ids in CUDA_VISIBLE_DEVICES without CUDA_DEVICE_ORDER=PCI_BUS_ID";
pub(super) const NOT_REPORTED_WHEN: &str = "GPUs already pinned (the ids are then container-local)";
pub(super) const EXPLANATION: &str = include_str!("gpu006.md");
pub(super) const CHECK: Check = Check::Elsewhere(&["compose/gpus.rs"]);
