//! The planner: where a model could go in the fleet, ranked, with reasons
//! (docs/release-config.md, "Placement"). One pass over the machines of an
//! analysed [`Fleet`]: cheap filters first (labels, GPU model, memory, free
//! GPU count), then the best free GPU set of each machine by its link matrix.
//!
//! Ranked by: fewer GPUs (with "any valid" TP), the better worst link in the
//! group, fewer NUMA domains spanned, more memory headroom per GPU, then the
//! machine name. Each placement says why it ranks below the one before.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::compose::bytes_per_param;
use crate::engine::Fleet;
use crate::inventory::{Inventory, Link, Machine};
use crate::rules::tp_fits_heads;

mod model;

pub use model::{ModelFacts, dtype_from_name, params_from_name};

/// What to place, and where it may go.
#[derive(Debug, Clone, Default)]
pub struct PlacementQuery {
    /// Tensor parallel size; `None`: the smallest valid one that fits.
    pub tp: Option<u32>,
    /// Billions of parameters, for the weights per GPU.
    pub params_b: Option<f64>,
    /// Weight dtype or quantisation (`bf16`, `fp8`, `awq`); `None` is `auto` (2 bytes).
    pub dtype: Option<String>,
    /// The server's memory fraction (default 0.9).
    pub memory_utilization: Option<f64>,
    pub num_attention_heads: Option<u32>,
    pub num_kv_heads: Option<u32>,
    /// Only machines whose GPU model contains this (case-insensitive).
    pub gpu_model: Option<String>,
    /// Only GPUs with at least this much memory (GB).
    pub min_memory_gb: Option<f64>,
    /// Only machines with every one of these labels.
    pub labels: BTreeMap<String, String>,
    /// GPUs held outside main, by machine: GPU to its holder (an open
    /// proposal, a live claim), as messages name it.
    pub held_elsewhere: BTreeMap<String, BTreeMap<u32, String>>,
    /// Host ports held outside main, by machine (claims of open proposals).
    pub ports_held_elsewhere: BTreeMap<String, BTreeSet<u16>>,
    /// Most placements to return.
    pub limit: usize,
}

/// One place the model could go.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    pub machine: String,
    pub tp: u32,
    pub gpus: Vec<u32>,
    /// The lowest host port from 8000 that no deployment of the machine uses.
    pub port: u16,
    /// The slowest link between two GPUs of the set (`None` for one GPU, or a
    /// machine without link information).
    pub worst_link: Option<Link>,
    /// NUMA domains the set spans (0: the machine names none).
    pub numa_domains: usize,
    pub memory_gb_per_gpu: Option<f64>,
    pub weights_gb_per_gpu: Option<f64>,
    /// Memory x utilisation - weights, per GPU.
    pub headroom_gb_per_gpu: Option<f64>,
    /// Deployments already on the machine.
    pub neighbours: Vec<String>,
    /// GPUs of the machine that open proposals or pending claims hold.
    pub held_elsewhere: Vec<u32>,
    /// Why it is a candidate, in words.
    pub reasons: Vec<String>,
    /// Why it ranks below the placement before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranked_below_because: Option<String>,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementPlan {
    pub placements: Vec<Placement>,
    /// Machines that could take it (before `limit`).
    pub candidates: usize,
    /// Machines left out, by reason.
    pub excluded: BTreeMap<&'static str, usize>,
}

/// Deployments a placement's reason names (the rest are counted).
const NAMED_NEIGHBOURS: usize = 8;

/// The ports from which a free one is chosen.
const FIRST_PORT: u16 = 8000;

/// What the planner needs of one machine: its inventory and what main
/// leaves of it. The engine's [`Fleet`] gives it ([`find_placement`]); so
/// can any view of one that keeps the inventories (the MCP server's).
pub struct MachineCapacity<'m> {
    pub name: &'m str,
    pub inventory: Option<&'m Inventory>,
    /// GPUs main leaves free (a GPU with a MIG slice in use is not);
    /// borrowed where the fleet has them (no copy per machine and query).
    pub free_gpus: Cow<'m, [u32]>,
    /// GPUs taken by `count:` claims (which ones is unknown).
    pub unpinned: u32,
    /// Asked only of the machines returned: `machine:port` of the
    /// deployments on it, and the host ports in use (port directories and
    /// published ports).
    pub neighbours: Neighbours<'m>,
}

/// The deployments of a machine and the host ports they use, made on demand.
pub type Neighbours<'m> = Box<dyn FnOnce() -> (Vec<String>, BTreeSet<u16>) + 'm>;

/// The ranked placements of `query` in `fleet`.
pub fn find_placement(fleet: &Fleet, query: &PlacementQuery) -> PlacementPlan {
    // The graph's capacities and the fleet's machines are both in name
    // order: walked side by side, not looked up machine by machine.
    let mut capacities = fleet.graph().capacities().peekable();
    find_placement_in(
        fleet.machines.iter().map(|(name, machine)| {
            while capacities.next_if(|(at, ..)| *at < name.as_str()).is_some() {}
            let (free, unpinned) = capacities
                .next_if(|(at, ..)| *at == name.as_str())
                .map_or((None, 0), |(_, free, unpinned)| (free, unpinned));
            capacity_with(fleet, name, machine, free, unpinned)
        }),
        query,
    )
}

/// What main leaves of machine `name` of `fleet`; `None` for a machine it
/// does not have.
pub fn capacity_of<'f>(fleet: &'f Fleet, name: &'f str) -> Option<MachineCapacity<'f>> {
    let machine = fleet.machines.get(name)?;
    let (free, unpinned) = fleet.graph().free_and_unpinned(name);
    Some(capacity_with(fleet, name, machine, free, unpinned))
}

/// [`capacity_of`] with the machine and its free GPUs and `count:` claims
/// already in hand (a pass over the fleet looks none of them up).
fn capacity_with<'f>(
    fleet: &'f Fleet,
    name: &'f str,
    machine: &'f Machine,
    free: Option<&'f [u32]>,
    unpinned: u32,
) -> MachineCapacity<'f> {
    let graph = fleet.graph();
    // Asked only of the machines returned.
    let neighbours: Neighbours<'f> = Box::new(move || {
        let mut used_ports = BTreeSet::new();
        let mut deployments = Vec::new();
        for id in graph.deployments_on(name) {
            used_ports.insert(id.port);
            deployments.push(id.to_string());
            if let Some(deployment) = fleet.deployments.get(id) {
                for service in &deployment.services {
                    used_ports.extend(service.ports.iter().map(|p| p.host));
                }
            }
        }
        (deployments, used_ports)
    });
    MachineCapacity {
        name,
        inventory: machine.inventory.as_deref(),
        free_gpus: Cow::Borrowed(free.unwrap_or_default()),
        unpinned,
        neighbours,
    }
}

impl PlacementPlan {
    /// The plan as text lines (see [`plan_lines`]).
    pub fn lines(&self) -> Vec<String> {
        plan_lines(&self.placements, self.candidates, &self.excluded)
    }
}

/// A plan as text lines: how many placements of how many candidates, one
/// line per placement (rank, machine and set, TP, reasons, why it ranks
/// below), then the machines left out by reason.
pub fn plan_lines(
    placements: &[Placement],
    candidates: usize,
    excluded: &BTreeMap<&'static str, usize>,
) -> Vec<String> {
    let mut lines = vec![format!(
        "{} placement(s) of {candidates} candidate machine(s)",
        placements.len()
    )];
    for (rank, p) in placements.iter().enumerate() {
        let mut line = format!(
            "{}. {} TP {}: {}",
            rank + 1,
            p.brief(),
            p.tp,
            p.reasons.join("; ")
        );
        if let Some(because) = &p.ranked_below_because {
            let _ = write!(line, " (below: {because})");
        }
        lines.push(line);
    }
    if !excluded.is_empty() {
        let left_out: Vec<String> = excluded
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect();
        lines.push(format!("machines left out: {}", left_out.join(", ")));
    }
    lines
}

/// Machine labels given as `key=value`: the map, and the ones of another
/// shape (for the caller's message).
pub fn parse_labels<'l>(
    labels: impl IntoIterator<Item = &'l str>,
) -> (BTreeMap<String, String>, Vec<&'l str>) {
    let mut parsed = BTreeMap::new();
    let mut wrong = Vec::new();
    for label in labels {
        match label.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                parsed.insert(key.trim().to_owned(), value.trim().to_owned());
            }
            _ => wrong.push(label),
        }
    }
    (parsed, wrong)
}

impl Placement {
    /// `gpu-07 GPUs 2, 3 port 8001 (linked NV12)`: how a refusal offers it.
    pub fn brief(&self) -> String {
        let link = match self.worst_link {
            Some(link) => format!(" (linked {link})"),
            None => String::new(),
        };
        let gpus = if self.gpus.len() == 1 { "GPU" } else { "GPUs" };
        format!(
            "{} {gpus} {} port {}{link}",
            self.machine,
            list(&self.gpus),
            self.port
        )
    }
}

/// The ranked placements of `query` on `machines`.
pub fn find_placement_in<'m>(
    machines: impl IntoIterator<Item = MachineCapacity<'m>>,
    query: &PlacementQuery,
) -> PlacementPlan {
    let mut excluded: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut candidates: Vec<Candidate<'m>> = Vec::new();
    let utilization = query.memory_utilization.unwrap_or(0.9).clamp(0.01, 1.0);
    let bytes = query.dtype.as_deref().map_or(Some(2.0), bytes_per_param);
    let model_wanted = query.gpu_model.as_deref().map(str::to_ascii_lowercase);
    for capacity in machines {
        let name = capacity.name;
        let Some(inventory) = capacity.inventory else {
            *excluded.entry("no inventory").or_default() += 1;
            continue;
        };
        if !query
            .labels
            .iter()
            .all(|(k, v)| inventory.labels.get(k) == Some(v.as_str()))
        {
            *excluded.entry("labels differ").or_default() += 1;
            continue;
        }
        if let Some(wanted) = &model_wanted
            && !inventory
                .gpu_model
                .as_deref()
                .is_some_and(|m| m.to_ascii_lowercase().contains(wanted))
        {
            *excluded.entry("another GPU model").or_default() += 1;
            continue;
        }
        let memory = inventory.gpu_memory_gb;
        if let Some(min) = query.min_memory_gb
            && memory.is_none_or(|m| m < min)
        {
            *excluded.entry("less GPU memory").or_default() += 1;
            continue;
        }
        if capacity.unpinned > 0 {
            // `count:` claims: which GPUs they take is unknown (GPU003).
            *excluded.entry("unpinned GPU claims").or_default() += 1;
            continue;
        }
        let held = query.held_elsewhere.get(name);
        let free: Vec<u32> = capacity
            .free_gpus
            .iter()
            .copied()
            .filter(|g| held.is_none_or(|h| !h.contains_key(g)))
            .filter(|g| !is_partitioned(inventory, *g))
            .collect();
        let Some(tp) = choose_tp(query, inventory, memory, bytes, utilization, free.len()) else {
            *excluded
                .entry(if free.is_empty() {
                    "no free GPU"
                } else {
                    "no valid TP fits the free GPUs"
                })
                .or_default() += 1;
            continue;
        };
        let weights = query
            .params_b
            .zip(bytes)
            .map(|(params, bytes)| params * bytes / f64::from(tp));
        let (gpus, worst_link) = best_set(inventory, &free, tp);
        let numa_domains = numa_span(inventory, &gpus);
        let headroom = memory.zip(weights).map(|(m, w)| m * utilization - w);
        candidates.push(Candidate {
            machine: name,
            neighbours: capacity.neighbours,
            tp,
            gpus,
            worst_link,
            numa_domains,
            memory,
            weights,
            headroom,
        });
    }
    let considered = candidates.len();
    // Ranked in full, described only for what is returned: the reasons,
    // neighbours and a free port of 20,000 machines are not wanted.
    candidates.sort_by(|a, b| {
        a.tp.cmp(&b.tp)
            .then_with(|| b.worst_link.cmp(&a.worst_link))
            .then_with(|| a.numa_domains.cmp(&b.numa_domains))
            .then_with(|| {
                b.headroom
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&a.headroom.unwrap_or(f64::NEG_INFINITY))
            })
            .then_with(|| a.machine.cmp(b.machine))
    });
    candidates.truncate(query.limit.max(1));
    let mut placements: Vec<Placement> = candidates
        .into_iter()
        .map(|c| describe(query, utilization, c))
        .collect();
    for i in 1..placements.len() {
        let because = placements
            .get(i - 1)
            .zip(placements.get(i))
            .map(|(better, this)| lost_because(better, this));
        if let Some(slot) = placements.get_mut(i) {
            slot.ranked_below_because = because;
        }
    }
    PlacementPlan {
        placements,
        candidates: considered,
        excluded,
    }
}

/// A machine that can take the model, before it is described.
struct Candidate<'f> {
    machine: &'f str,
    neighbours: Neighbours<'f>,
    tp: u32,
    gpus: Vec<u32>,
    worst_link: Option<Link>,
    numa_domains: usize,
    memory: Option<f64>,
    weights: Option<f64>,
    headroom: Option<f64>,
}

/// NUMA domains the GPUs span.
fn numa_span(inventory: &Inventory, gpus: &[u32]) -> usize {
    let mut domains: Vec<usize> = gpus
        .iter()
        .filter_map(|g| inventory.numa_domains.iter().position(|d| d.contains(g)))
        .collect();
    domains.sort_unstable();
    domains.dedup();
    domains.len()
}

/// The placement of a candidate, with its reasons.
fn describe(query: &PlacementQuery, utilization: f64, c: Candidate<'_>) -> Placement {
    let (neighbours, mut used_ports) = (c.neighbours)();
    if let Some(held) = query.ports_held_elsewhere.get(c.machine) {
        used_ports.extend(held);
    }
    let mut reasons = Vec::new();
    reasons.push(match c.worst_link {
        Some(link) => format!("GPUs {} linked {}", list(&c.gpus), link.describe()),
        None if c.gpus.len() == 1 => format!("GPU {}", list(&c.gpus)),
        None => format!(
            "GPUs {} (the machine gives no link information)",
            list(&c.gpus)
        ),
    });
    if c.numa_domains > 1 {
        reasons.push(format!("spans {} NUMA domains", c.numa_domains));
    }
    if let (Some(weights), Some(headroom)) = (c.weights, c.headroom) {
        reasons.push(format!(
            "{weights:.1} GB of weights per GPU, {headroom:.1} GB to spare at memory utilisation {utilization}"
        ));
    }
    if !neighbours.is_empty() {
        // The reason names a few; `neighbours` has them all.
        let shown: Vec<&str> = neighbours
            .iter()
            .take(NAMED_NEIGHBOURS)
            .map(String::as_str)
            .collect();
        let more = neighbours.len().saturating_sub(NAMED_NEIGHBOURS);
        reasons.push(if more > 0 {
            format!(
                "shares the machine with {} and {more} more",
                shown.join(", ")
            )
        } else {
            format!("shares the machine with {}", shown.join(", "))
        });
    }
    let held = query.held_elsewhere.get(c.machine);
    let held_elsewhere: Vec<u32> = held
        .map(|h| h.keys().copied().collect())
        .unwrap_or_default();
    if let Some(held) = held {
        // One reason per holder: `GPUs 2, 3 are claimed by pull request #7`.
        let mut by_holder: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (gpu, holder) in held {
            by_holder.entry(holder).or_default().push(*gpu);
        }
        for (holder, gpus) in by_holder {
            reasons.push(if gpus.len() == 1 {
                format!("GPU {} is claimed by {holder}", list(&gpus))
            } else {
                format!("GPUs {} are claimed by {holder}", list(&gpus))
            });
        }
    }
    Placement {
        machine: c.machine.to_owned(),
        tp: c.tp,
        gpus: c.gpus,
        port: (FIRST_PORT..=u16::MAX)
            .find(|port| !used_ports.contains(port))
            .unwrap_or(FIRST_PORT),
        worst_link: c.worst_link,
        numa_domains: c.numa_domains,
        memory_gb_per_gpu: c.memory,
        weights_gb_per_gpu: c.weights,
        headroom_gb_per_gpu: c.headroom,
        neighbours,
        held_elsewhere,
        reasons,
        ranked_below_because: None,
    }
}

/// A GPU split into MIG slices cannot be given whole.
pub(crate) fn is_partitioned(inventory: &Inventory, gpu: u32) -> bool {
    inventory
        .devices
        .iter()
        .any(|d| d.index == gpu && !d.mig.is_empty())
}

/// The TP to place with: the one asked for, if the heads allow it and enough
/// GPUs are free; else the smallest valid size whose weights fit.
fn choose_tp(
    query: &PlacementQuery,
    inventory: &Inventory,
    memory: Option<f64>,
    bytes: Option<f64>,
    utilization: f64,
    free: usize,
) -> Option<u32> {
    let fits_memory = |tp: u32| match (query.params_b, bytes, memory) {
        (Some(params), Some(bytes), Some(memory)) => {
            params * bytes / f64::from(tp) <= memory * utilization
        }
        _ => true,
    };
    let usable = |tp: u32| {
        usize::try_from(tp).is_ok_and(|t| t >= 1 && t <= free)
            && tp_fits_heads(tp, query.num_attention_heads, query.num_kv_heads)
            && fits_memory(tp)
    };
    match query.tp {
        Some(tp) => usable(tp).then_some(tp),
        None => (1..=inventory.gpus.min(1024)).find(|tp| usable(*tp)),
    }
}

/// The best set of `tp` GPUs among `free`: by the link matrix when the
/// machine has one, else consecutive free GPUs in one NUMA domain.
fn best_set(inventory: &Inventory, free: &[u32], tp: u32) -> (Vec<u32>, Option<Link>) {
    let size = usize::try_from(tp).unwrap_or(usize::MAX);
    if size == 1 {
        return (free.iter().take(1).copied().collect(), None);
    }
    if let Some(links) = inventory.link_matrix() {
        let as_indices = |gpus: &[u32]| -> Vec<usize> {
            gpus.iter()
                .filter_map(|g| usize::try_from(*g).ok())
                .collect()
        };
        let as_ids = |group: Vec<usize>| -> Vec<u32> {
            group
                .into_iter()
                .filter_map(|g| u32::try_from(g).ok())
                .collect()
        };
        if let Some((link, group)) = links.best_group(size, &as_indices(free)) {
            let group = as_ids(group);
            if numa_span(inventory, &group) <= 1 {
                return (group, Some(link));
            }
            // Among sets linked as well, one inside a NUMA domain (the `nvlink` shorthand's
            // matrix is flat: the domains are not in it).
            let inside = inventory.numa_domains.iter().find_map(|domain| {
                let members: Vec<u32> = free
                    .iter()
                    .copied()
                    .filter(|g| domain.contains(g))
                    .collect();
                links
                    .best_group(size, &as_indices(&members))
                    .filter(|(within, _)| *within == link)
            });
            let group = inside.map_or(group, |(_, within)| as_ids(within));
            return (group, Some(link));
        }
    }
    // No links: consecutive free GPUs of one NUMA domain, else the first ones.
    let domain = inventory.numa_domain_by_gpu();
    let of_domain = |d: Option<usize>| -> Vec<u32> {
        free.iter()
            .copied()
            .filter(|g| {
                usize::try_from(*g)
                    .ok()
                    .and_then(|g| domain.get(g).copied().flatten())
                    == d
            })
            .collect()
    };
    for d in 0..inventory.numa_domains.len() {
        let members = of_domain(Some(d));
        if members.len() >= size {
            return (members.into_iter().take(size).collect(), None);
        }
    }
    (free.iter().take(size).copied().collect(), None)
}

/// Why `this` ranks below `better`: the first ranking key that differs.
fn lost_because(better: &Placement, this: &Placement) -> String {
    let link = |l: Option<Link>| l.map_or_else(|| "unknown".to_owned(), |l| l.to_string());
    if this.tp != better.tp {
        return format!(
            "it needs TP {} where {} takes it on {} GPU(s)",
            this.tp, better.machine, better.tp
        );
    }
    if this.worst_link != better.worst_link {
        return format!(
            "its worst link is {} where {}'s is {}",
            link(this.worst_link),
            better.machine,
            link(better.worst_link)
        );
    }
    if this.numa_domains != better.numa_domains {
        return format!(
            "it spans {} NUMA domains where {} spans {}",
            this.numa_domains, better.machine, better.numa_domains
        );
    }
    if let (Some(a), Some(b)) = (this.headroom_gb_per_gpu, better.headroom_gb_per_gpu)
        && a < b
    {
        return format!(
            "{:.1} GB less memory headroom per GPU than {}",
            b - a,
            better.machine
        );
    }
    format!("as good as {}; ordered by machine name", better.machine)
}

fn list(gpus: &[u32]) -> String {
    gpus.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
