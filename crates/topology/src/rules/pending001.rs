//! PENDING001: a GPU or port claimed by the head is also claimed by an open proposal.
//!
//! Found by the engine with `--pending`: it compares the head's claims (`capacity`) with
//! those of every open proposal branch.

use super::*;

pub(super) const SEVERITY: Severity = Severity::Warning;
pub(super) const SUMMARY: &str =
    "a GPU or port claimed by the head is also claimed by an open proposal";
pub(super) const NOT_REPORTED_WHEN: &str = "without `--pending`";
pub(super) const EXPLANATION: &str = include_str!("pending001.md");
pub(super) const CHECK: Check = Check::Elsewhere(&["engine/pending.rs"]);
