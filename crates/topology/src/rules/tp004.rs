//! TP004: a tensor parallel group spans more than one NUMA domain on a pcie machine.
//!
//! Needs `numa_domains` in the inventory and a known GPU set (pinned or all). GPUs are
//! ranked in the order the container numbers them; each run of TP consecutive ranks is a
//! TP group and must stay in one domain. One finding per service: the first group that
//! crosses says enough.

use super::*;
use crate::finding::Related;

pub(super) const SEVERITY: Severity = Severity::Warning;
pub(super) const SUMMARY: &str = "TP group spans more than one NUMA domain on a pcie machine";
pub(super) const NOT_REPORTED_WHEN: &str =
    "no inventory, not `pcie`, no `numa_domains`, TP < 2, `count: N` claims";
pub(super) const EXPLANATION: &str = include_str!("tp004.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    let Some(inventory) = cx.inventory() else {
        return;
    };
    if inventory.interconnect != Some(Interconnect::Pcie) || inventory.numa_domains.is_empty() {
        return;
    }
    for holder in &cx.holders {
        one_service(cx, inventory, holder, findings);
    }
}

fn one_service(
    cx: &MachineContext<'_>,
    inventory: &Inventory,
    holder: &Holder<'_>,
    findings: &mut Vec<Finding>,
) {
    let service = holder.service;
    let tp = usize::try_from(service.tensor_parallel).unwrap_or(usize::MAX);
    if tp < 2 {
        return;
    }
    let ranked: Vec<u32> = match &service.gpus {
        GpuClaim::Pinned(_) => service
            .host_gpus
            .iter()
            .filter_map(|g| g.parse::<u32>().ok())
            .collect(),
        GpuClaim::All => inventory.gpu_ids().collect(),
        GpuClaim::None | GpuClaim::Count(_) => return,
    };
    for group in ranked.chunks(tp) {
        let mut domains: Vec<usize> = group
            .iter()
            .filter_map(|g| {
                usize::try_from(*g)
                    .ok()
                    .and_then(|g| cx.numa.get(g).copied().flatten())
            })
            .collect();
        domains.sort_unstable();
        domains.dedup();
        if domains.len() < 2 {
            continue;
        }
        let gpus: Vec<String> = group.iter().map(u32::to_string).collect();
        let mut finding = Finding::new(
            Rule::Tp004,
            Some(&cx.machine.name),
            [holder.id()],
            std::iter::once(holder.subject()).chain(gpus.iter().cloned()),
            service
                .tensor_parallel_at
                .clone()
                .unwrap_or_else(|| holder.claim_at()),
            format!(
                "{}: tensor parallel group of GPUs {} spans NUMA domains {} on pcie machine {}: all-reduce crosses the socket",
                holder.name(),
                gpus.join(", "),
                domains
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(" and "),
                cx.machine.name
            ),
        );
        finding.related.push(Related {
            location: holder.claim_at(),
            message: "the GPUs it holds".into(),
        });
        if let Some(at) = &inventory.numa_domains_at {
            finding.related.push(Related {
                location: at.clone(),
                message: "NUMA domains of the machine".into(),
            });
        }
        findings.push(finding);
        return;
    }
}
