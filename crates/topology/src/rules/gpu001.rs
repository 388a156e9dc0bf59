//! GPU001: one host GPU held by two services on one machine, in one deployment or two.
//!
//! - It compares pinned GPU sets (device_ids, NVIDIA_VISIBLE_DEVICES, host ids in
//!   CUDA_VISIBLE_DEVICES). `count: N` / `all` claims are GPU003's business: reporting
//!   them as GPU001 on every GPU too would bury the one fix that matters (pin the GPUs).
//! - A pair of services that both carry `catapult.gpu_sharing: "true"` is not GPU001;
//!   MEM002 checks their memory fractions instead. One sharing and one not is GPU001.
//!
//! Each holder of a GPU is checked against the first earlier holder it conflicts with
//! (any earlier holder for an exclusive service; the first exclusive one for a sharing
//! service), its owner. One finding per (holder, owner), naming every GPU the two share;
//! the primary location is the holder's entry for the first of them, the related
//! locations the owner's entries.

use super::*;
use crate::finding::Related;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "one host GPU held by two services on one machine";
pub(super) const NOT_REPORTED_WHEN: &str = "unpinned claims (`count`, `all`: see GPU003); both services carry `catapult.gpu_sharing: \"true\"`";
pub(super) const EXPLANATION: &str = include_str!("gpu001.md");
pub(super) const CHECK: Check = Check::Machine(check);

/// (holder, owner) -> the GPUs they share: (holder's entry, owner's entry).
type Pairs<'r> = BTreeMap<(usize, usize), Vec<(&'r GpuRef, &'r GpuRef)>>;

/// Records each user's conflict with its owner among `users` (holder order):
/// any earlier holder for an exclusive service, the first exclusive one for
/// a sharing service. `counts` says which pairs to keep.
fn owners<'r>(
    cx: &MachineContext<'_>,
    users: &[(usize, &'r GpuRef)],
    counts: impl Fn(&GpuRef, &GpuRef) -> bool,
    conflicts: &mut Pairs<'r>,
) {
    let Some(&first) = users.first() else {
        return;
    };
    let mut first_exclusive: Option<(usize, &GpuRef)> = None;
    for &(index, entry) in users {
        let owner = if cx.sharing(index) {
            first_exclusive
        } else {
            Some(first)
        };
        if let Some((owner, owner_entry)) = owner
            && owner != index
            && counts(entry, owner_entry)
        {
            conflicts
                .entry((index, owner))
                .or_default()
                .push((entry, owner_entry));
        }
        if first_exclusive.is_none() && !cx.sharing(index) {
            first_exclusive = Some((index, entry));
        }
    }
}

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    let mut conflicts: Pairs<'_> = BTreeMap::new();
    for users in cx.gpu_users.values() {
        if users.len() >= 2 {
            owners(cx, users, |_, _| true, &mut conflicts);
        }
    }
    // A MIG slice is part of its GPU: a claim of the whole GPU conflicts with
    // each claim of one of its slices (two different slices do not).
    for ((kind, gpu, _), slice_users) in &cx.gpu_users {
        if *kind != 1 {
            continue;
        }
        let Some(whole_users) = cx
            .gpu_users
            .iter()
            .find(|((k, g, _), _)| *k == 0 && g == gpu)
            .map(|(_, users)| users)
        else {
            continue;
        };
        let mut users: Vec<(usize, &GpuRef)> =
            whole_users.iter().chain(slice_users).copied().collect();
        users.sort_by_key(|(holder, _)| *holder);
        let slice_ids: Vec<&str> = slice_users.iter().map(|(_, r)| &*r.id).collect();
        let is_slice = |r: &GpuRef| slice_ids.contains(&&*r.id);
        owners(
            cx,
            &users,
            |a, b| is_slice(a) != is_slice(b),
            &mut conflicts,
        );
    }
    for ((index, owner_index), refs) in conflicts {
        let (Some(holder), Some(owner)) = (cx.holders.get(index), cx.holders.get(owner_index))
        else {
            continue;
        };
        let Some((primary, _)) = refs.first() else {
            continue;
        };
        let ids: Vec<&str> = refs.iter().map(|(r, _)| &*r.id).collect();
        let message = format!(
            "{} {} on {} {} held by both {} and {}",
            plural(ids.len(), "GPU", "GPUs"),
            list(&ids),
            cx.machine.name,
            plural(ids.len(), "is", "are"),
            holder.name(),
            owner.name()
        );
        let mut finding = Finding::new(
            Rule::Gpu001,
            Some(&cx.machine.name),
            [owner.id(), holder.id()],
            ids.iter().map(|s| (*s).to_owned()),
            holder.service.at(primary.pos),
            message,
        );
        for (_, theirs) in &refs {
            finding.related.push(Related {
                location: owner.service.at(theirs.pos),
                message: format!("GPU {} is held by {} here", theirs.id, owner.name()),
            });
        }
        findings.push(finding);
    }
}
