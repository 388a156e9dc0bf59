//! TP002: TP x PP x DP exceeds the machine's GPU count.
//!
//! Needs the inventory, and like TP001 ignores services that hold no GPUs and need at
//! most one (a CPU-only gateway on a `gpus: 0` machine).

use super::*;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "TP x PP x DP exceeds the machine's GPU count";
pub(super) const NOT_REPORTED_WHEN: &str = "no usable inventory; service holds no GPU and needs 1";
pub(super) const EXPLANATION: &str = include_str!("tp002.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    let Some(inventory) = cx.inventory() else {
        return;
    };
    for holder in &cx.holders {
        if !holder.is_gpu_server() || !cx.exceeds_machine(holder) {
            continue;
        }
        findings.push(Finding::new(
            Rule::Tp002,
            Some(&cx.machine.name),
            [holder.id()],
            [holder.subject()],
            holder.parallel_at().unwrap_or_else(|| holder.claim_at()),
            format!(
                "{} runs {} GPU(s) but {} has only {}",
                holder.name(),
                holder.shape(),
                cx.machine.name,
                inventory.gpus
            ),
        ));
    }
}
