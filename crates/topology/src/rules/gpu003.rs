//! GPU003: a service with unpinned GPUs (`count: N`, `count: all`, `gpus: all`,
//! `runtime: nvidia` without a device list) on a machine where any other service also
//! holds GPUs.
//!
//! Every unpinned service is reported (two unpinned services give two findings); a lone
//! unpinned service is fine. `count: 0` holds nothing and is never GPU003. The finding is
//! against the first other GPU holder (its owner: the related location and the second
//! deployment); the message names the first few others and how many more there are.

use super::*;
use crate::finding::Related;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "unpinned GPUs on a machine where another service also holds GPUs";
pub(super) const NOT_REPORTED_WHEN: &str =
    "the unpinned service is alone in holding GPUs; `count: 0`";
pub(super) const EXPLANATION: &str = include_str!("gpu003.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    let holders = &cx.holders;
    let gpu_holders: Vec<usize> = holders
        .iter()
        .enumerate()
        .filter(|(_, h)| h.service.gpus.holds_gpus())
        .map(|(i, _)| i)
        .collect();
    for (index, holder) in holders.iter().enumerate() {
        if !holder.service.gpus.is_unpinned() {
            continue;
        }
        let others = || {
            gpu_holders
                .iter()
                .filter(move |i| **i != index)
                .filter_map(|i| holders.get(*i))
        };
        let Some(owner) = others().next() else {
            continue;
        };
        let count = gpu_holders.len().saturating_sub(1);
        let names = listed(others().map(Holder::name), count);
        let message = format!(
            "{} takes unpinned GPUs ({}) on {}, where {names} also {} GPUs: nobody can prove they do not collide; pin them with device_ids",
            holder.name(),
            holder.service.gpus.describe(),
            cx.machine.name,
            plural(count, "holds", "hold")
        );
        let mut finding = Finding::new(
            Rule::Gpu003,
            Some(&cx.machine.name),
            [holder.id(), owner.id()],
            [holder.subject()],
            holder.claim_at(),
            message,
        );
        finding.related.push(Related {
            location: owner.claim_at(),
            message: format!(
                "{} holds {}",
                owner.name(),
                short_claim(&owner.service.gpus)
            ),
        });
        findings.push(finding);
    }
}
