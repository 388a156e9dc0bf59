//! MEM002: services sharing a GPU on purpose (`catapult.gpu_sharing`) claim more than
//! [`SHARED_MEMORY_LIMIT`] of its memory together.
//!
//! One finding per set of sharing services, naming every GPU exactly that set shares; at
//! the last sharer's memory fraction, the first others' as related locations.

use super::*;
use crate::finding::Related;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str =
    "services sharing a GPU on purpose claim more than 0.95 of its memory together";
pub(super) const NOT_REPORTED_WHEN: &str = "fewer than two sharing services on a GPU";
pub(super) const EXPLANATION: &str = include_str!("mem002.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    // The set of sharing services (holder indexes, in order) -> the GPUs they share.
    let mut shared: BTreeMap<Vec<usize>, Vec<&str>> = BTreeMap::new();
    for ((_, _, gpu), users) in &cx.gpu_users {
        let sharers: Vec<usize> = users
            .iter()
            .map(|(h, _)| *h)
            .filter(|h| cx.sharing(*h))
            .collect();
        if sharers.len() >= 2 {
            shared.entry(sharers).or_default().push(gpu.as_ref());
        }
    }
    for (sharers, gpus) in shared {
        one_set(cx, &sharers, &gpus, findings);
    }
}

/// MEM002 for one set of sharing services (`sharers`, holder indices in order) on `gpus`.
fn one_set(cx: &MachineContext<'_>, sharers: &[usize], gpus: &[&str], findings: &mut Vec<Finding>) {
    let members: Vec<Holder<'_>> = sharers
        .iter()
        .filter_map(|h| cx.holders.get(*h).copied())
        .collect();
    let total: f64 = members.iter().map(|h| h.service.memory_utilization).sum();
    if total <= SHARED_MEMORY_LIMIT + 1e-9 {
        return;
    }
    let Some((last, others)) = members.split_last() else {
        return;
    };
    let who = if members.len() <= LISTED_HOLDERS {
        members
            .iter()
            .map(Holder::name)
            .collect::<Vec<_>>()
            .join(" and ")
    } else {
        format!("{} services", members.len())
    };
    let parts = listed(
        members
            .iter()
            .map(|h| format!("{} {}", h.name(), h.service.memory_utilization)),
        members.len(),
    );
    let message = format!(
        "{} {} on {} {} shared by {who} whose memory fractions add up to {total:.2} (> {SHARED_MEMORY_LIMIT}): {parts}",
        plural(gpus.len(), "GPU", "GPUs"),
        list(gpus),
        cx.machine.name,
        plural(gpus.len(), "is", "are"),
    );
    let at = |h: &Holder<'_>| {
        h.service
            .located(h.service.memory_utilization_at)
            .unwrap_or_else(|| h.claim_at())
    };
    let mut finding = Finding::new(
        Rule::Mem002,
        Some(&cx.machine.name),
        members.iter().map(Holder::id),
        gpus.iter().map(|s| (*s).to_owned()),
        at(last),
        message,
    );
    for other in others.iter().take(LISTED_HOLDERS) {
        finding.related.push(Related {
            location: at(other),
            message: format!(
                "{} claims {} of the GPU memory",
                other.name(),
                other.service.memory_utilization
            ),
        });
    }
    findings.push(finding);
}
