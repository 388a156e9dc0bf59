//! The machine-level rules of contract section 4: everything that needs the
//! machine's inventory or more than one service at a time. Rules found while
//! reading a file (RC001-RC005, GPU004-GPU006) come from `compose`,
//! `inventory`, `config` and `layout`.
//!
//! Every rule here depends only on one machine (its inventory and its
//! deployments), so the engine caches the result per machine and recomputes
//! only machines whose files changed.
//!
//! Decisions the contract leaves open, as a GPU-fleet operator would take them:
//! - GPU001 compares pinned GPU sets (device_ids, NVIDIA_VISIBLE_DEVICES, host
//!   ids in CUDA_VISIBLE_DEVICES). `count: N` / `all` claims are GPU003's
//!   business: reporting them as GPU001 on every GPU too would bury the one
//!   fix that matters (pin the GPUs).
//! - A pair of services that both carry `catapult.gpu_sharing: "true"` is not
//!   GPU001; MEM002 checks their memory fractions instead. One sharing and one
//!   not is GPU001.
//! - Unpinned and pinned claims without inventory: range and capacity checks
//!   (GPU002, TP002, TP004, MEM001, TP001 for `all`) are skipped; INV001 says so
//!   once per machine.
//! - Conflicts are reported linearly, never per pair: the services of a
//!   machine are ordered by (deployment id, service name), and each holder of
//!   a GPU (port) is reported once, against the first earlier holder it
//!   conflicts with (its "owner"), with every GPU (port) it shares with that
//!   owner in the one finding. N services on one GPU give N - 1 findings, not
//!   N x (N - 1) / 2; a head adding one holder after the existing ones adds
//!   exactly one finding.

use std::collections::BTreeMap;

use crate::compose::{Deployment, GpuClaim, GpuRef, PublishedPort, Service};
use crate::finding::{Finding, Location, Related, Rule};
use crate::inventory::{Interconnect, Inventory, Machine};

/// Sum of memory fractions that services sharing one GPU may claim (MEM002).
pub const SHARED_MEMORY_LIMIT: f64 = 0.95;

/// Other services a GPU003 / MEM002 message names (and MEM002 points at)
/// before it says "and N more": enough to act on, bounded however many
/// services a machine runs.
pub const LISTED_HOLDERS: usize = 5;

/// Pinned ids a GPU003 related message shows before "and N more".
const LISTED_GPU_IDS: usize = 8;

/// One service on the machine, with the deployment it belongs to.
#[derive(Clone, Copy)]
struct Holder<'a> {
    deployment: &'a Deployment,
    service: &'a Service,
}

impl Holder<'_> {
    fn name(&self) -> String {
        self.deployment.holder_name(self.service)
    }

    fn id(&self) -> String {
        self.deployment.id.to_string()
    }

    /// Where the service's GPU claim is written (else the service key).
    fn claim_at(&self) -> Location {
        self.service
            .gpus_at
            .clone()
            .unwrap_or_else(|| self.service.location.clone())
    }

    fn subject(&self) -> String {
        format!("service:{}", self.service.name)
    }
}

/// Runs every machine-level rule on one machine. `deployments` are the
/// deployments under `machines/<machine.name>/`, in any order.
pub fn check_machine(machine: &Machine, deployments: &[&Deployment]) -> Vec<Finding> {
    let mut sorted: Vec<&Deployment> = deployments.to_vec();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    // The order that decides who "owns" a shared GPU or port: deployment id,
    // then service name (file order would change with an unrelated edit).
    let mut holders: Vec<Holder<'_>> = sorted
        .iter()
        .flat_map(|d| {
            d.services.iter().map(move |s| Holder {
                deployment: d,
                service: s,
            })
        })
        .collect();
    holders.sort_by(|a, b| {
        a.deployment
            .id
            .cmp(&b.deployment.id)
            .then_with(|| a.service.name.cmp(&b.service.name))
    });
    // GPU id -> NUMA domain, built once: TP004 looks up every GPU of every
    // service, and a file may list any number of (empty) domains.
    let numa: Vec<Option<usize>> = machine
        .inventory
        .as_deref()
        .filter(|i| i.interconnect == Some(Interconnect::Pcie) && !i.numa_domains.is_empty())
        .map(Inventory::numa_domain_by_gpu)
        .unwrap_or_default();
    let mut findings = Vec::new();
    inv001(machine, &mut findings);
    gpu001_mem002(machine, &holders, &mut findings);
    gpu002(machine, &holders, &mut findings);
    gpu003(machine, &holders, &mut findings);
    for holder in &holders {
        tp_rules(machine, holder, &numa, &mut findings);
        mem001(machine, holder, &mut findings);
    }
    port001(machine, &holders, &mut findings);
    for deployment in &sorted {
        port002(machine, deployment, &mut findings);
    }
    findings
}

/// Sort key putting decimal GPU ids in numeric order (ids beyond `u64` last
/// among them), then the others.
pub fn gpu_sort_key(id: &str) -> (u8, u64, &str) {
    match decimal_gpu_id(id) {
        Some(n) => (0, n, id),
        None => (1, 0, id),
    }
}

/// The index a decimal GPU id names (`u64::MAX` for one with more digits than
/// `u64` holds); `None` for UUIDs, MIG ids and anything not all digits.
pub fn decimal_gpu_id(id: &str) -> Option<u64> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(id.parse::<u64>().unwrap_or(u64::MAX))
}

/// `a, b, c` of the first [`LISTED_HOLDERS`] of `total` names, then `and N more`.
fn listed(names: impl Iterator<Item = String>, total: usize) -> String {
    let mut text: Vec<String> = names.take(LISTED_HOLDERS).collect();
    if total > text.len() {
        text.push(format!("and {} more", total - text.len()));
    }
    text.join(", ")
}

/// [`GpuClaim::describe`] with at most [`LISTED_GPU_IDS`] ids.
fn short_claim(claim: &GpuClaim) -> String {
    match claim {
        GpuClaim::Pinned(refs) if refs.len() > LISTED_GPU_IDS => {
            let ids: Vec<&str> = refs
                .iter()
                .take(LISTED_GPU_IDS)
                .map(|r| r.id.as_str())
                .collect();
            format!(
                "GPUs {} and {} more",
                ids.join(","),
                refs.len() - LISTED_GPU_IDS
            )
        }
        _ => claim.describe(),
    }
}

fn list(ids: &[&str]) -> String {
    ids.join(", ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        one.to_owned()
    } else {
        many.to_owned()
    }
}

/// INV001: once per machine without `machine.yaml`. A machine whose inventory
/// exists but cannot be read gets RC001/RC002 instead, not INV001 too.
fn inv001(machine: &Machine, findings: &mut Vec<Finding>) {
    if machine.inventory.is_some() || machine.inventory_path.is_some() {
        return;
    }
    findings.push(Finding::new(
        Rule::Inv001,
        Some(&machine.name),
        Vec::new(),
        Vec::new(),
        Location::file(machine.dir_path()),
        format!(
            "machine {} has no inventory ({}/machine.yaml): GPU ids, GPU counts and memory on it are not checked",
            machine.name,
            machine.dir_path()
        ),
    ));
}

/// GPU001 (one host GPU held by two services, in one deployment or two) and
/// MEM002 (services sharing a GPU on purpose claim more than 0.95 of it).
///
/// GPU001: each holder of a GPU is checked against the first earlier holder
/// it conflicts with (any earlier holder for an exclusive service; the first
/// exclusive one for a `catapult.gpu_sharing` service), its owner. One
/// finding per (holder, owner), naming every GPU the two share; the primary
/// location is the holder's entry for the first of them, the related
/// locations the owner's entries.
///
/// MEM002: one finding per set of sharing services, naming every GPU exactly
/// that set shares; at the last sharer's memory fraction, the first others'
/// as related locations.
fn gpu001_mem002(machine: &Machine, holders: &[Holder<'_>], findings: &mut Vec<Finding>) {
    type GpuKey<'k> = (u8, u64, &'k str);
    // GPU -> its holders in holder order, each once, with the entry naming it.
    let mut by_gpu: BTreeMap<GpuKey<'_>, Vec<(usize, &GpuRef)>> = BTreeMap::new();
    for (index, holder) in holders.iter().enumerate() {
        if let GpuClaim::Pinned(refs) = &holder.service.gpus {
            for gpu in refs {
                let users = by_gpu.entry(gpu_sort_key(&gpu.id)).or_default();
                if users.last().is_none_or(|(h, _)| *h != index) {
                    users.push((index, gpu));
                }
            }
        }
    }
    let sharing = |h: usize| holders.get(h).is_some_and(|h| h.service.gpu_sharing);
    // (holder, owner) -> the GPUs they share: (holder's entry, owner's entry).
    type Pairs<'r> = BTreeMap<(usize, usize), Vec<(&'r GpuRef, &'r GpuRef)>>;
    let mut conflicts: Pairs<'_> = BTreeMap::new();
    let mut shared: BTreeMap<Vec<usize>, Vec<&str>> = BTreeMap::new();
    for ((_, _, gpu), users) in &by_gpu {
        let Some(&first) = users.first() else {
            continue;
        };
        if users.len() < 2 {
            continue;
        }
        let mut first_exclusive: Option<(usize, &GpuRef)> = None;
        for &(index, entry) in users {
            let owner = if sharing(index) {
                first_exclusive
            } else {
                Some(first)
            };
            if let Some((owner, owner_entry)) = owner
                && owner != index
            {
                conflicts
                    .entry((index, owner))
                    .or_default()
                    .push((entry, owner_entry));
            }
            if first_exclusive.is_none() && !sharing(index) {
                first_exclusive = Some((index, entry));
            }
        }
        let sharers: Vec<usize> = users
            .iter()
            .map(|(h, _)| *h)
            .filter(|h| sharing(*h))
            .collect();
        if sharers.len() >= 2 {
            shared.entry(sharers).or_default().push(gpu);
        }
    }
    for ((index, owner_index), refs) in conflicts {
        let (Some(holder), Some(owner)) = (holders.get(index), holders.get(owner_index)) else {
            continue;
        };
        let Some((primary, _)) = refs.first() else {
            continue;
        };
        let ids: Vec<&str> = refs.iter().map(|(r, _)| r.id.as_str()).collect();
        let message = format!(
            "{} {} on {} {} held by both {} and {}",
            plural(ids.len(), "GPU", "GPUs"),
            list(&ids),
            machine.name,
            plural(ids.len(), "is", "are"),
            holder.name(),
            owner.name()
        );
        let mut finding = Finding::new(
            Rule::Gpu001,
            Some(&machine.name),
            [owner.id(), holder.id()],
            ids.iter().map(|s| (*s).to_owned()),
            primary.pos.clone(),
            message,
        );
        for (_, theirs) in &refs {
            finding.related.push(Related {
                location: theirs.pos.clone(),
                message: format!("GPU {} is held by {} here", theirs.id, owner.name()),
            });
        }
        findings.push(finding);
    }
    for (sharers, gpus) in shared {
        mem002(machine, holders, &sharers, &gpus, findings);
    }
}

/// MEM002 for one set of sharing services (`sharers`, holder indices in
/// order) on `gpus`.
fn mem002(
    machine: &Machine,
    holders: &[Holder<'_>],
    sharers: &[usize],
    gpus: &[&str],
    findings: &mut Vec<Finding>,
) {
    let members: Vec<Holder<'_>> = sharers
        .iter()
        .filter_map(|h| holders.get(*h).copied())
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
        machine.name,
        plural(gpus.len(), "is", "are"),
    );
    let at = |h: &Holder<'_>| {
        h.service
            .memory_utilization_at
            .clone()
            .unwrap_or_else(|| h.claim_at())
    };
    let mut finding = Finding::new(
        Rule::Mem002,
        Some(&machine.name),
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

/// GPU002: a pinned decimal GPU id at or above the inventory's `gpus`. UUIDs
/// and MIG ids cannot be checked against a count and are left alone; without
/// inventory the rule is skipped (INV001).
fn gpu002(machine: &Machine, holders: &[Holder<'_>], findings: &mut Vec<Finding>) {
    let Some(inventory) = &machine.inventory else {
        return;
    };
    for holder in holders {
        let GpuClaim::Pinned(refs) = &holder.service.gpus else {
            continue;
        };
        for gpu in refs {
            let Some(n) = decimal_gpu_id(&gpu.id) else {
                continue;
            };
            if n < u64::from(inventory.gpus) {
                continue;
            }
            let range = if inventory.gpus == 0 {
                "none".to_owned()
            } else {
                format!("0-{}", inventory.gpus - 1)
            };
            let mut finding = Finding::new(
                Rule::Gpu002,
                Some(&machine.name),
                [holder.id()],
                [gpu.id.clone()],
                gpu.pos.clone(),
                format!(
                    "{} uses GPU {} but {} has {} GPU(s) (ids {range})",
                    holder.name(),
                    gpu.id,
                    machine.name,
                    inventory.gpus
                ),
            );
            let inventory_at = inventory.gpus_at.clone().or_else(|| {
                machine
                    .inventory_path
                    .as_ref()
                    .map(|path| Location::file(path.clone()))
            });
            if let Some(location) = inventory_at {
                finding.related.push(Related {
                    location,
                    message: format!("the inventory of {}", machine.name),
                });
            }
            findings.push(finding);
        }
    }
}

/// GPU003: a service with unpinned GPUs (`count: N`, `count: all`, `gpus: all`,
/// `runtime: nvidia` without a device list) on a machine where any other
/// service also holds GPUs. Every unpinned service is reported (two unpinned
/// services give two findings); a lone unpinned service is fine. `count: 0`
/// holds nothing and is never GPU003.
///
/// The finding is against the first other GPU holder (its owner: the related
/// location and the second deployment); the message names the first few
/// others and how many more there are.
fn gpu003(machine: &Machine, holders: &[Holder<'_>], findings: &mut Vec<Finding>) {
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
            machine.name,
            plural(count, "holds", "hold")
        );
        let mut finding = Finding::new(
            Rule::Gpu003,
            Some(&machine.name),
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

/// TP001-TP004 for one service.
///
/// - TP001 fires when the service holds GPUs, or needs more than one, and
///   TP x PP x DP differs from what it holds; a sidecar without GPUs and
///   without parallelism is not an inference server. `count: all` /
///   `gpus: all` without inventory: the held count is unknown, skipped.
/// - TP002 needs the inventory, and like TP001 ignores services that hold no
///   GPUs and need at most one (a CPU-only gateway on a `gpus: 0` machine).
///   When TP002 fires, TP001 is not reported for the same service.
/// - TP003 needs the label `catapult.num_attention_heads`.
/// - TP004 (pcie machines with `numa_domains`): GPUs are ranked in the order
///   the container numbers them; each run of TP consecutive ranks is a TP
///   group and must stay in one domain. Needs a known GPU set (pinned or all).
///
/// TP x PP x DP is computed in `u64` (saturating) and shown exactly: absurd
/// sizes such as `--tensor-parallel-size 4294967295` are TP001/TP002, never
/// an overflow.
fn tp_rules(
    machine: &Machine,
    holder: &Holder<'_>,
    numa: &[Option<usize>],
    findings: &mut Vec<Finding>,
) {
    let service = holder.service;
    let needed = service.gpus_needed();
    let inventory = machine.inventory.as_deref();
    let parallel_at = service
        .tensor_parallel_at
        .clone()
        .or_else(|| service.pipeline_parallel_at.clone())
        .or_else(|| service.data_parallel_at.clone());
    // Exact: three u32 factors fit in u128.
    let product = u128::from(service.tensor_parallel)
        * u128::from(service.pipeline_parallel)
        * u128::from(service.data_parallel);
    let shape = format!(
        "TP {} x PP {} x DP {} = {product}",
        service.tensor_parallel, service.pipeline_parallel, service.data_parallel
    );
    let held = service.gpus.count_on(inventory.map(|i| i.gpus));
    // A sidecar without GPUs and without parallelism is not an inference server.
    let is_gpu_server = service.gpus.holds_gpus() || needed > 1;
    // When the shape cannot fit the machine at all, TP002 says so; TP001 on top
    // of it would only repeat the same mistake.
    let exceeds_machine = inventory.is_some_and(|i| needed > u64::from(i.gpus));
    if let Some(held) = held
        && is_gpu_server
        && !exceeds_machine
        && u64::from(held) != needed
    {
        let mut finding = Finding::new(
            Rule::Tp001,
            Some(&machine.name),
            [holder.id()],
            [holder.subject()],
            parallel_at.clone().unwrap_or_else(|| holder.claim_at()),
            format!(
                "{} runs {shape} GPU(s) but holds {held} ({})",
                holder.name(),
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
    if let Some(inventory) = inventory
        && is_gpu_server
        && exceeds_machine
    {
        findings.push(Finding::new(
            Rule::Tp002,
            Some(&machine.name),
            [holder.id()],
            [holder.subject()],
            parallel_at.clone().unwrap_or_else(|| holder.claim_at()),
            format!(
                "{} runs {shape} GPU(s) but {} has only {}",
                holder.name(),
                machine.name,
                inventory.gpus
            ),
        ));
    }
    if let Some(heads) = service.num_attention_heads
        && heads % service.tensor_parallel != 0
    {
        let mut finding = Finding::new(
            Rule::Tp003,
            Some(&machine.name),
            [holder.id()],
            [holder.subject()],
            service
                .num_attention_heads_at
                .clone()
                .unwrap_or_else(|| service.location.clone()),
            format!(
                "{}: {heads} attention heads cannot be split evenly over tensor parallel size {}",
                holder.name(),
                service.tensor_parallel
            ),
        );
        if let Some(at) = &service.tensor_parallel_at {
            finding.related.push(Related {
                location: at.clone(),
                message: "tensor parallel size set here".into(),
            });
        }
        findings.push(finding);
    }
    tp004(machine, holder, numa, findings);
}

/// `numa`: the NUMA domain of each inventory GPU id (see [`check_machine`]).
fn tp004(
    machine: &Machine,
    holder: &Holder<'_>,
    numa: &[Option<usize>],
    findings: &mut Vec<Finding>,
) {
    let Some(inventory) = &machine.inventory else {
        return;
    };
    let service = holder.service;
    let tp = usize::try_from(service.tensor_parallel).unwrap_or(usize::MAX);
    if inventory.interconnect != Some(Interconnect::Pcie)
        || inventory.numa_domains.is_empty()
        || tp < 2
    {
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
                    .and_then(|g| numa.get(g).copied().flatten())
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
            Some(&machine.name),
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
                machine.name
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
        // One finding per service: the first group that crosses says enough.
        return;
    }
}

/// MEM001: weights per GPU = params_b x bytes per parameter / (TP x PP) (data
/// parallel replicas each hold a full copy), compared with gpu_memory_gb x the
/// server's memory fraction. Needs `catapult.params_b`, the inventory's
/// `gpu_memory_gb` and a known dtype (none given means `auto`, 2 bytes).
fn mem001(machine: &Machine, holder: &Holder<'_>, findings: &mut Vec<Finding>) {
    let service = holder.service;
    let (Some(params_b), Some(memory_gb)) = (
        service.params_b,
        machine.inventory.as_deref().and_then(|i| i.gpu_memory_gb),
    ) else {
        return;
    };
    let Some(bytes) = service.bytes_per_param() else {
        return;
    };
    // Exact in f64 (a u32 product could overflow).
    let split = f64::from(service.tensor_parallel) * f64::from(service.pipeline_parallel);
    let per_gpu = params_b * bytes / split;
    let budget = memory_gb * service.memory_utilization;
    if per_gpu <= budget {
        return;
    }
    let dtype = service.dtype.as_deref().unwrap_or("auto");
    let mut finding = Finding::new(
        Rule::Mem001,
        Some(&machine.name),
        [holder.id()],
        [holder.subject()],
        service
            .params_b_at
            .clone()
            .unwrap_or_else(|| service.location.clone()),
        format!(
            "{}: {params_b}B parameters in {dtype} over TP {} x PP {} need {per_gpu:.1} GB of weights per GPU, more than {memory_gb} GB x {} = {budget:.1} GB on {}",
            holder.name(),
            service.tensor_parallel,
            service.pipeline_parallel,
            service.memory_utilization,
            machine.name
        ),
    );
    if let Some(at) = &service.tensor_parallel_at {
        finding.related.push(Related {
            location: at.clone(),
            message: "tensor parallel size set here".into(),
        });
    }
    findings.push(finding);
}

/// PORT001: one host port published by two services of the machine, in two
/// deployments or in one (Docker cannot bind it twice either way). Bindings to
/// different specific addresses, or different protocols, do not clash.
///
/// Each service publishing a port is checked against the first earlier
/// service (its owner) one of its bindings clashes with; one finding per
/// (service, owner), naming every port they clash on, at the service's
/// binding of the first, the owner's bindings as related locations. A
/// service binding one port twice itself is not PORT001.
fn port001(machine: &Machine, holders: &[Holder<'_>], findings: &mut Vec<Finding>) {
    /// The earliest binding of one port and protocol, by earlier services.
    #[derive(Default)]
    struct Earliest<'p> {
        /// Of any address: what a binding of every address clashes with first.
        any: Option<(usize, &'p PublishedPort)>,
        /// Of every address: clashes with any later binding.
        every_address: Option<(usize, &'p PublishedPort)>,
        /// Of each specific address.
        by_address: BTreeMap<&'p str, (usize, &'p PublishedPort)>,
    }
    let mut by_port: BTreeMap<u16, Vec<(usize, &PublishedPort)>> = BTreeMap::new();
    for (index, holder) in holders.iter().enumerate() {
        for port in &holder.service.ports {
            by_port.entry(port.host).or_default().push((index, port));
        }
    }
    type Pairs<'p> = BTreeMap<(usize, usize), Vec<(&'p PublishedPort, &'p PublishedPort)>>;
    let mut pairs: Pairs<'_> = BTreeMap::new();
    for users in by_port.values() {
        if users.len() < 2 {
            continue;
        }
        let mut earliest: BTreeMap<&str, Earliest<'_>> = BTreeMap::new();
        // `users` is in holder order: one chunk per service.
        for own in users.chunk_by(|a, b| a.0 == b.0) {
            let Some(&(index, _)) = own.first() else {
                continue;
            };
            // (owner, owner's binding, own binding) of the earliest clash.
            let mut clash: Option<(usize, &PublishedPort, &PublishedPort)> = None;
            for &(_, port) in own {
                let Some(seen) = earliest.get(port.protocol.as_str()) else {
                    continue;
                };
                let first = if port.binds_every_address() {
                    seen.any
                } else {
                    let same = port
                        .host_ip
                        .as_deref()
                        .and_then(|ip| seen.by_address.get(ip).copied());
                    [seen.every_address, same]
                        .into_iter()
                        .flatten()
                        .min_by_key(|(h, _)| *h)
                };
                if let Some((owner, theirs)) = first
                    && clash.is_none_or(|(o, _, _)| owner < o)
                {
                    clash = Some((owner, theirs, port));
                }
            }
            if let Some((owner, theirs, port)) = clash {
                pairs
                    .entry((index, owner))
                    .or_default()
                    .push((port, theirs));
            }
            for &(_, port) in own {
                let seen = earliest.entry(port.protocol.as_str()).or_default();
                seen.any.get_or_insert((index, port));
                if port.binds_every_address() {
                    seen.every_address.get_or_insert((index, port));
                } else if let Some(ip) = port.host_ip.as_deref() {
                    seen.by_address.entry(ip).or_insert((index, port));
                }
            }
        }
    }
    for ((index, owner_index), ports) in pairs {
        let (Some(holder), Some(owner)) = (holders.get(index), holders.get(owner_index)) else {
            continue;
        };
        let Some((primary, _)) = ports.first() else {
            continue;
        };
        let numbers: Vec<String> = ports.iter().map(|(p, _)| p.host.to_string()).collect();
        let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let mut finding = Finding::new(
            Rule::Port001,
            Some(&machine.name),
            [owner.id(), holder.id()],
            numbers.iter().cloned(),
            primary.pos.clone(),
            format!(
                "host {} {} on {} {} published by both {} and {}",
                plural(refs.len(), "port", "ports"),
                list(&refs),
                machine.name,
                plural(refs.len(), "is", "are"),
                holder.name(),
                owner.name()
            ),
        );
        for (_, theirs) in &ports {
            finding.related.push(Related {
                location: theirs.pos.clone(),
                message: format!("port {} is published by {} here", theirs.host, owner.name()),
            });
        }
        findings.push(finding);
    }
}

/// PORT002: no service of the deployment publishes the port its directory
/// names. Any service counts (a proxy sidecar may front the model server).
/// Deployments without services (unreadable files) are left to RC001/RC002.
fn port002(machine: &Machine, deployment: &Deployment, findings: &mut Vec<Finding>) {
    let port = deployment.id.port;
    if deployment.services.is_empty()
        || deployment
            .services
            .iter()
            .any(|s| s.ports.iter().any(|p| p.host == port))
    {
        return;
    }
    let Some(main) = deployment.main_service() else {
        return;
    };
    let published: Vec<String> = deployment
        .services
        .iter()
        .flat_map(|s| s.ports.iter().map(|p| p.host.to_string()))
        .collect();
    let what = if published.is_empty() {
        "publishes no host port".to_owned()
    } else {
        format!(
            "publishes host {} {}",
            plural(published.len(), "port", "ports"),
            published.join(", ")
        )
    };
    let location = main
        .ports
        .first()
        .map_or_else(|| main.location.clone(), |p| p.pos.clone());
    findings.push(Finding::new(
        Rule::Port002,
        Some(&machine.name),
        [deployment.id.to_string()],
        [port.to_string()],
        location,
        format!(
            "deployment {} lives in port directory {port} but {}",
            deployment.id,
            if deployment.services.len() == 1 {
                format!("its service {what}")
            } else {
                format!("no service publishes it (it {what})")
            }
        ),
    ));
}
