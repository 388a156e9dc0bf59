//! TP005: a service with tensor (or pipeline) parallelism holds a MIG slice.
//!
//! MIG slices have no peer-to-peer path to each other or to other GPUs (no NVLink, no
//! CUDA IPC between instances), so NCCL cannot all-reduce across them. Needs the
//! machine's `devices` with MIG UUIDs (`inventory import` writes them): only then is a
//! claimed UUID known to be a slice.

use super::*;
use crate::inventory::GpuIdentity;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "tensor or pipeline parallelism over a MIG slice";
pub(super) const NOT_REPORTED_WHEN: &str =
    "TP x PP of 1; machine.yaml lists no MIG slices (a MIG UUID it does not list is GPU002)";
pub(super) const EXPLANATION: &str = include_str!("tp005.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    let Some(inventory) = cx.inventory() else {
        return;
    };
    for holder in &cx.holders {
        let service = holder.service;
        let split = u64::from(service.tensor_parallel) * u64::from(service.pipeline_parallel);
        if split < 2 {
            continue;
        }
        let GpuClaim::Pinned(refs) = &service.gpus else {
            continue;
        };
        let Some((slice, parent)) = refs.iter().find_map(|r| match inventory.identify(&r.id) {
            GpuIdentity::Slice { gpu, .. } => Some((r, gpu)),
            _ => None,
        }) else {
            continue;
        };
        findings.push(Finding::new(
            Rule::Tp005,
            Some(&cx.machine.name),
            [holder.id()],
            [holder.subject(), slice.id.to_string()],
            holder.service.at(slice.pos),
            format!(
                "{} runs {} GPU(s) over MIG slice {} of GPU {parent} on {}: MIG slices have no peer-to-peer path, so the all-reduce cannot run across them",
                holder.name(),
                holder.shape(),
                slice.id,
                cx.machine.name
            ),
        ));
    }
}
