//! TP001: TP x PP x DP differs from the number of GPUs the service holds.
//!
//! Fires when the service holds GPUs, or needs more than one, and the product differs
//! from what it holds; a sidecar without GPUs and without parallelism is not an inference
//! server. `count: all` / `gpus: all` without inventory: the held count is unknown,
//! skipped. When TP002 fires (the shape cannot fit the machine at all), TP001 is not
//! reported for the same service. The product is computed exactly: absurd sizes such as
//! `--tensor-parallel-size 4294967295` are TP001/TP002, never an overflow.

use super::*;
use crate::finding::Related;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "TP x PP x DP differs from the number of GPUs the service holds";
pub(super) const NOT_REPORTED_WHEN: &str =
    "service holds no GPU and needs 1; `all` without inventory; TP002 fires for the service";
pub(super) const EXPLANATION: &str = include_str!("tp001.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    let gpus = cx.inventory().map(|i| i.gpus);
    for holder in &cx.holders {
        let service = holder.service;
        let Some(held) = service.gpus.count_on(gpus) else {
            continue;
        };
        if !holder.is_gpu_server()
            || cx.exceeds_machine(holder)
            || u64::from(held) == service.gpus_needed()
        {
            continue;
        }
        let parallel_at = holder.parallel_at();
        let mut finding = Finding::new(
            Rule::Tp001,
            Some(&cx.machine.name),
            [holder.id()],
            [holder.subject()],
            parallel_at.clone().unwrap_or_else(|| holder.claim_at()),
            format!(
                "{} runs {} GPU(s) but holds {held} ({})",
                holder.name(),
                holder.shape(),
                service.gpus.describe()
            ),
        );
        if parallel_at.is_some() {
            finding.related.push(Related {
                location: holder.claim_at(),
                message: "the GPUs it holds".into(),
            });
        }
        findings.push(finding);
    }
}
