//! TP004: a tensor parallel group's worst link is slower than the machine offers a group
//! of that size.
//!
//! Reads the machine's link matrix: `links` as `nvidia-smi topo -m` gives it, or what
//! the shorthand stands for (`pcie` with `numa_domains`: NODE within a domain, SYS
//! across; `nvlink`: NVLink everywhere, which never warns). GPUs are ranked in the order
//! the container numbers them; each run of TP consecutive ranks is a TP group, and its
//! worst pair bounds every all-reduce. When some group of that size on the machine has a
//! better worst link, the group warns, naming the best such group that is free (not held
//! by another service), if there is one. One finding per service: the first group that
//! is worse says enough. A group that cannot do better (TP 8 on two sockets of four) is
//! not reported.

use super::*;
use crate::finding::Related;
use crate::inventory::{GpuIdentity, Link, LinkMatrix};

pub(super) const SEVERITY: Severity = Severity::Warning;
pub(super) const SUMMARY: &str =
    "TP group's worst link is slower than the machine offers a group of that size";
pub(super) const NOT_REPORTED_WHEN: &str = "no inventory, no link matrix (`links`, or `pcie` with `numa_domains`), TP < 2, `count: N` claims, no better group on the machine";
pub(super) const EXPLANATION: &str = include_str!("tp004.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    let Some(inventory) = cx.inventory() else {
        return;
    };
    let Some(links) = inventory.link_matrix() else {
        return;
    };
    let all: Vec<usize> = (0..links.gpus()).collect();
    // The best worst link a group of each size can have on this machine.
    let mut best_by_size: BTreeMap<usize, Option<Link>> = BTreeMap::new();
    for (holder_index, holder) in cx.holders.iter().enumerate() {
        let tp = usize::try_from(holder.service.tensor_parallel).unwrap_or(usize::MAX);
        if tp < 2 {
            continue;
        }
        let ranked: Vec<usize> = match &holder.service.gpus {
            GpuClaim::Pinned(refs) => {
                let whole: Vec<usize> = refs
                    .iter()
                    .filter_map(|r| match inventory.identify(&r.id) {
                        GpuIdentity::Whole(n) => usize::try_from(n).ok(),
                        _ => None,
                    })
                    .collect();
                // A slice (TP005) or an unknown GPU (GPU002) leaves the groups unknown.
                if whole.len() != refs.len() {
                    continue;
                }
                whole
            }
            GpuClaim::All => all.clone(),
            GpuClaim::None | GpuClaim::Count(_) => continue,
        };
        let best = *best_by_size
            .entry(tp)
            .or_insert_with(|| links.best_group(tp, &all).map(|(link, _)| link));
        let Some(best) = best else {
            continue;
        };
        for group in ranked.chunks(tp).filter(|g| g.len() == tp) {
            let Some(worst) = links.worst_in(group) else {
                continue;
            };
            if worst >= best {
                continue;
            }
            findings.push(finding(
                cx,
                holder_index,
                holder,
                &links,
                group,
                worst,
                best,
            ));
            break;
        }
    }
}

fn finding(
    cx: &MachineContext<'_>,
    holder_index: usize,
    holder: &Holder<'_>,
    links: &LinkMatrix,
    group: &[usize],
    worst: Link,
    best: Link,
) -> Finding {
    let inventory = cx.inventory();
    let gpus: Vec<String> = group.iter().map(usize::to_string).collect();
    // Free for it: no other service holds the GPU (or one of its slices).
    let held_by_others: Vec<u64> = cx
        .gpu_users
        .iter()
        .filter(|((kind, _, _), users)| *kind < 2 && users.iter().any(|(h, _)| *h != holder_index))
        .map(|((_, gpu, _), _)| *gpu)
        .collect();
    let available: Vec<usize> = (0..links.gpus())
        .filter(|g| !u64::try_from(*g).is_ok_and(|g| held_by_others.contains(&g)))
        .collect();
    let better = links
        .best_group(group.len(), &available)
        .filter(|(link, _)| *link > worst);
    let offer = match &better {
        Some((link, set)) => format!(
            "GPUs {} are free and linked {}",
            set.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            link.describe()
        ),
        None => "no such group is free now".to_owned(),
    };
    let message = format!(
        "{}: tensor parallel group of GPUs {} is linked {} on {}, where a group of {} can be linked {}: {offer}",
        holder.name(),
        gpus.join(", "),
        worst.describe(),
        cx.machine.name,
        group.len(),
        best.describe(),
    );
    let mut finding = Finding::new(
        Rule::Tp004,
        Some(&cx.machine.name),
        [holder.id()],
        std::iter::once(holder.subject()).chain(gpus.iter().cloned()),
        holder
            .service
            .located(holder.service.tensor_parallel_at)
            .unwrap_or_else(|| holder.claim_at()),
        message,
    );
    finding.related.push(Related {
        location: holder.claim_at(),
        message: "the GPUs it holds".into(),
    });
    let matrix_at = inventory.and_then(|i| {
        i.links_at
            .as_ref()
            .map(|at| (at, "the links of the machine"))
            .or(i
                .numa_domains_at
                .as_ref()
                .map(|at| (at, "NUMA domains of the machine")))
    });
    if let Some((at, what)) = matrix_at {
        finding.related.push(Related {
            location: at.clone(),
            message: what.into(),
        });
    }
    finding
}
