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

use std::collections::BTreeMap;

use crate::compose::{Deployment, GpuClaim, GpuRef, PublishedPort, Service};
use crate::finding::{Finding, Location, Related, Rule};
use crate::inventory::{Interconnect, Machine};

/// Sum of memory fractions that services sharing one GPU may claim (MEM002).
pub const SHARED_MEMORY_LIMIT: f64 = 0.95;

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
    let holders: Vec<Holder<'_>> = sorted
        .iter()
        .flat_map(|d| {
            d.services.iter().map(move |s| Holder {
                deployment: d,
                service: s,
            })
        })
        .collect();
    let mut findings = Vec::new();
    inv001(machine, &mut findings);
    gpu001_mem002(machine, &holders, &mut findings);
    gpu002(machine, &holders, &mut findings);
    gpu003(machine, &holders, &mut findings);
    for holder in &holders {
        tp_rules(machine, holder, &mut findings);
        mem001(machine, holder, &mut findings);
    }
    port001(machine, &holders, &mut findings);
    for deployment in &sorted {
        port002(machine, deployment, &mut findings);
    }
    findings
}

/// Sort key putting decimal GPU ids in numeric order, then the others.
pub fn gpu_sort_key(id: &str) -> (u8, u64, &str) {
    match id.parse::<u64>() {
        Ok(n) => (0, n, id),
        Err(_) => (1, 0, id),
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
/// One GPU001 per pair of services, naming every GPU the two share; the
/// primary location is the later service's (by deployment id, then file order)
/// entry for the first shared GPU, the related locations the earlier one's.
fn gpu001_mem002(machine: &Machine, holders: &[Holder<'_>], findings: &mut Vec<Finding>) {
    type GpuKey<'k> = (u8, u64, &'k str);
    let mut by_gpu: BTreeMap<GpuKey<'_>, Vec<(usize, &GpuRef)>> = BTreeMap::new();
    for (index, holder) in holders.iter().enumerate() {
        if let GpuClaim::Pinned(refs) = &holder.service.gpus {
            for gpu in refs {
                by_gpu
                    .entry(gpu_sort_key(&gpu.id))
                    .or_default()
                    .push((index, gpu));
            }
        }
    }
    type Pair<'r> = Vec<(&'r GpuRef, &'r GpuRef)>;
    let mut conflicts: BTreeMap<(usize, usize), Pair<'_>> = BTreeMap::new();
    let mut shared: BTreeMap<Vec<usize>, Vec<&str>> = BTreeMap::new();
    for ((_, _, gpu), users) in &by_gpu {
        if users.len() < 2 {
            continue;
        }
        for (i, (a, a_ref)) in users.iter().enumerate() {
            for (b, b_ref) in users.iter().skip(i + 1) {
                let (Some(ha), Some(hb)) = (holders.get(*a), holders.get(*b)) else {
                    continue;
                };
                if !(ha.service.gpu_sharing && hb.service.gpu_sharing) {
                    conflicts.entry((*a, *b)).or_default().push((a_ref, b_ref));
                }
            }
        }
        let sharers: Vec<usize> = users
            .iter()
            .map(|(h, _)| *h)
            .filter(|h| holders.get(*h).is_some_and(|h| h.service.gpu_sharing))
            .collect();
        if sharers.len() >= 2 {
            shared.entry(sharers).or_default().push(gpu);
        }
    }
    for ((a, b), refs) in conflicts {
        let (Some(first), Some(second)) = (holders.get(a), holders.get(b)) else {
            continue;
        };
        let Some((_, primary)) = refs.first() else {
            continue;
        };
        let ids: Vec<&str> = refs.iter().map(|(r, _)| r.id.as_str()).collect();
        let message = format!(
            "{} {} on {} {} held by both {} and {}",
            plural(ids.len(), "GPU", "GPUs"),
            list(&ids),
            machine.name,
            plural(ids.len(), "is", "are"),
            second.name(),
            first.name()
        );
        let mut finding = Finding::new(
            Rule::Gpu001,
            Some(&machine.name),
            [first.id(), second.id()],
            ids.iter().map(|s| (*s).to_owned()),
            primary.pos.clone(),
            message,
        );
        for (other, _) in &refs {
            finding.related.push(Related {
                location: other.pos.clone(),
                message: format!("GPU {} is held by {} here", other.id, first.name()),
            });
        }
        findings.push(finding);
    }
    for (sharers, gpus) in shared {
        let members: Vec<Holder<'_>> = sharers
            .iter()
            .filter_map(|h| holders.get(*h).copied())
            .collect();
        let total: f64 = members.iter().map(|h| h.service.memory_utilization).sum();
        if total <= SHARED_MEMORY_LIMIT + 1e-9 {
            continue;
        }
        let Some(last) = members.last() else { continue };
        let parts: Vec<String> = members
            .iter()
            .map(|h| format!("{} {}", h.name(), h.service.memory_utilization))
            .collect();
        let message = format!(
            "{} {} on {} {} shared by {} whose memory fractions add up to {:.2} (> {SHARED_MEMORY_LIMIT}): {}",
            plural(gpus.len(), "GPU", "GPUs"),
            list(&gpus),
            machine.name,
            plural(gpus.len(), "is", "are"),
            members
                .iter()
                .map(Holder::name)
                .collect::<Vec<_>>()
                .join(" and "),
            total,
            parts.join(", ")
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
        for other in &members[..members.len() - 1] {
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
            let Ok(n) = gpu.id.parse::<u64>() else {
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
            if let Some(path) = &machine.inventory_path {
                finding.related.push(Related {
                    location: Location::file(path.clone()),
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
fn gpu003(machine: &Machine, holders: &[Holder<'_>], findings: &mut Vec<Finding>) {
    for (index, holder) in holders.iter().enumerate() {
        if !holder.service.gpus.is_unpinned() {
            continue;
        }
        let others: Vec<&Holder<'_>> = holders
            .iter()
            .enumerate()
            .filter(|(i, h)| *i != index && h.service.gpus.holds_gpus())
            .map(|(_, h)| h)
            .collect();
        if others.is_empty() {
            continue;
        }
        let names: Vec<String> = others.iter().map(|h| h.name()).collect();
        let message = format!(
            "{} takes unpinned GPUs ({}) on {}, where {} also {} GPUs: nobody can prove they do not collide; pin them with device_ids",
            holder.name(),
            holder.service.gpus.describe(),
            machine.name,
            names.join(", "),
            plural(names.len(), "holds", "hold")
        );
        let mut finding = Finding::new(
            Rule::Gpu003,
            Some(&machine.name),
            std::iter::once(holder.id()).chain(others.iter().map(|h| h.id())),
            [holder.subject()],
            holder.claim_at(),
            message,
        );
        for other in others {
            finding.related.push(Related {
                location: other.claim_at(),
                message: format!("{} holds {}", other.name(), other.service.gpus.describe()),
            });
        }
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
fn tp_rules(machine: &Machine, holder: &Holder<'_>, findings: &mut Vec<Finding>) {
    let service = holder.service;
    let needed = service.gpus_needed();
    let inventory = machine.inventory.as_ref();
    let parallel_at = service
        .tensor_parallel_at
        .clone()
        .or_else(|| service.pipeline_parallel_at.clone())
        .or_else(|| service.data_parallel_at.clone());
    let shape = format!(
        "TP {} x PP {} x DP {} = {}",
        service.tensor_parallel, service.pipeline_parallel, service.data_parallel, needed
    );
    let held = service.gpus.count_on(inventory.map(|i| i.gpus));
    // A sidecar without GPUs and without parallelism is not an inference server.
    let is_gpu_server = service.gpus.holds_gpus() || needed > 1;
    // When the shape cannot fit the machine at all, TP002 says so; TP001 on top
    // of it would only repeat the same mistake.
    let exceeds_machine = inventory.is_some_and(|i| needed > i.gpus);
    if let Some(held) = held
        && is_gpu_server
        && !exceeds_machine
        && held != needed
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
    tp004(machine, holder, findings);
}

fn tp004(machine: &Machine, holder: &Holder<'_>, findings: &mut Vec<Finding>) {
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
        GpuClaim::All => (0..inventory.gpus).collect(),
        GpuClaim::None | GpuClaim::Count(_) => return,
    };
    for group in ranked.chunks(tp) {
        let mut domains: Vec<usize> = group
            .iter()
            .filter_map(|g| inventory.numa_domain_of(*g))
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
        machine.inventory.as_ref().and_then(|i| i.gpu_memory_gb),
    ) else {
        return;
    };
    let Some(bytes) = service.bytes_per_param() else {
        return;
    };
    let split = f64::from(
        service
            .tensor_parallel
            .saturating_mul(service.pipeline_parallel)
            .max(1),
    );
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
/// different specific addresses, or different protocols, do not clash. One
/// finding per pair of services, naming every port they share; the primary
/// location is the later service's binding.
fn port001(machine: &Machine, holders: &[Holder<'_>], findings: &mut Vec<Finding>) {
    let mut by_port: BTreeMap<u16, Vec<(usize, &PublishedPort)>> = BTreeMap::new();
    for (index, holder) in holders.iter().enumerate() {
        for port in &holder.service.ports {
            by_port.entry(port.host).or_default().push((index, port));
        }
    }
    let mut pairs: BTreeMap<(usize, usize), Vec<(&PublishedPort, &PublishedPort)>> =
        BTreeMap::new();
    for users in by_port.values() {
        if users.len() < 2 {
            continue;
        }
        for (i, (a, pa)) in users.iter().enumerate() {
            for (b, pb) in users.iter().skip(i + 1) {
                if a != b && pa.clashes_with(pb) {
                    let list = pairs.entry((*a, *b)).or_default();
                    if !list.iter().any(|(x, _)| x.host == pa.host) {
                        list.push((pa, pb));
                    }
                }
            }
        }
    }
    for ((a, b), ports) in pairs {
        let (Some(first), Some(second)) = (holders.get(a), holders.get(b)) else {
            continue;
        };
        let Some((_, primary)) = ports.first() else {
            continue;
        };
        let numbers: Vec<String> = ports.iter().map(|(p, _)| p.host.to_string()).collect();
        let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let mut finding = Finding::new(
            Rule::Port001,
            Some(&machine.name),
            [first.id(), second.id()],
            numbers.iter().cloned(),
            primary.pos.clone(),
            format!(
                "host {} {} on {} {} published by both {} and {}",
                plural(refs.len(), "port", "ports"),
                list(&refs),
                machine.name,
                plural(refs.len(), "is", "are"),
                second.name(),
                first.name()
            ),
        );
        for (other, _) in &ports {
            finding.related.push(Related {
                location: other.pos.clone(),
                message: format!("port {} is published by {} here", other.host, first.name()),
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
