//! The allocation graph of a fleet: machines, their GPUs, deployments and
//! services, with `has-gpu`, `holds` and `belongs-to` edges, plus indexes so
//! that the questions asked of it (who holds this GPU, which GPUs are free on
//! a machine or NUMA domain, which deployments serve a model path) cost no
//! scan of the whole fleet.

use std::collections::BTreeMap;
use std::sync::Arc;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use rustc_hash::FxHashMap;

use crate::compose::{Deployment, DeploymentId, GpuClaim};
use crate::inventory::{GpuIdentity, Inventory, Machine};
use crate::rules::{decimal_gpu_id, gpu_sort_key};

#[derive(Debug, Clone, PartialEq)]
pub enum GraphNode {
    Machine {
        name: Arc<str>,
    },
    /// A GPU of a machine: one per inventory id, plus any id a compose file
    /// names that the inventory does not list (`in_inventory: false`).
    Gpu {
        machine: Arc<str>,
        id: GpuId,
        in_inventory: bool,
    },
    Deployment {
        deployment: Arc<Deployment>,
    },
    /// The service at `index` of the deployment's services.
    Service {
        deployment: Arc<Deployment>,
        index: usize,
    },
}

/// A GPU's id: an inventory index, or an id only a compose file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuId {
    Index(u32),
    Named(crate::compose::GpuText),
}

impl std::fmt::Display for GpuId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuId::Index(n) => write!(f, "{n}"),
            GpuId::Named(name) => f.write_str(name),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphEdge {
    /// machine -> GPU
    HasGpu,
    /// service -> GPU
    Holds,
    /// service -> deployment, deployment -> machine
    BelongsTo,
}

/// A service holding a GPU.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HolderRef {
    pub deployment: DeploymentId,
    pub service: String,
}

impl HolderRef {
    /// `machine:port/service`.
    pub fn display_name(&self) -> String {
        self.to_string()
    }
}

impl std::fmt::Display for HolderRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.deployment, self.service)
    }
}

/// Shown as `machine:port/service`, the form every answer names a holder in.
impl serde::Serialize for HolderRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One held GPU of a machine and the services holding it (more than one is GPU001, or
/// `catapult.gpu_sharing`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GpuHolders {
    /// The GPU id as the compose files write it (an index, a UUID, a MIG id).
    pub gpu: String,
    /// In (deployment, service) order.
    pub holders: Vec<HolderRef>,
}

#[derive(Debug)]
struct MachineIndex {
    name: Arc<str>,
    node: NodeIndex,
    /// Inventory GPU count; `None` without inventory.
    gpu_count: Option<u32>,
    numa_domains: Vec<Vec<u32>>,
    /// GPU nodes of the inventory's ids, indexed by id.
    inventory_gpus: Vec<NodeIndex>,
    /// GPU nodes of ids the inventory does not list, in numeric order.
    other_gpus: BTreeMap<(u8, u64, String), NodeIndex>,
    /// What names a GPU by UUID (devices, MIG slices).
    inventory: Option<Arc<Inventory>>,
    deployments: Vec<(Arc<Deployment>, NodeIndex)>,
    /// Sum of `count: N` claims: GPUs held, but which is unknown.
    unpinned: u32,
    /// Its place in [`AllocationGraph::capacities`].
    capacity: usize,
}

/// What the placement planner asks of every machine in each query, kept
/// apart from [`MachineIndex`] in the machines' name order: a pass over the
/// fleet reads them in sequence instead of looking each machine up (a
/// cache miss per machine, 14 % of a 20,000-machine query).
#[derive(Debug)]
struct MachineGpus {
    name: Arc<str>,
    /// Inventory GPUs nobody holds, ascending, computed once the holds are
    /// in (walking each GPU's edges per ask was a third of a query); `None`
    /// without inventory.
    free: Option<Vec<u32>>,
    /// Sum of `count: N` claims.
    unpinned: u32,
}

impl MachineIndex {
    fn new(graph: &mut DiGraph<GraphNode, GraphEdge>, name: &str) -> MachineIndex {
        let name: Arc<str> = Arc::from(name);
        let node = graph.add_node(GraphNode::Machine { name: name.clone() });
        MachineIndex {
            name,
            node,
            gpu_count: None,
            numa_domains: Vec::new(),
            inventory_gpus: Vec::new(),
            other_gpus: BTreeMap::new(),
            inventory: None,
            deployments: Vec::new(),
            unpinned: 0,
            capacity: 0,
        }
    }

    fn gpu(&self, id: &str) -> Option<NodeIndex> {
        if let Some(n) = decimal_gpu_id(id).and_then(|n| usize::try_from(n).ok())
            && let Some(node) = self.inventory_gpus.get(n)
        {
            return Some(*node);
        }
        // A GPU's UUID names the GPU; a MIG slice's holds part of its GPU,
        // which is then not free for anyone else.
        if let Some(inventory) = &self.inventory
            && let GpuIdentity::Whole(n) | GpuIdentity::Slice { gpu: n, .. } =
                inventory.identify(id)
            && let Some(node) = usize::try_from(n)
                .ok()
                .and_then(|n| self.inventory_gpus.get(n))
        {
            return Some(*node);
        }
        let (a, b, _) = gpu_sort_key(id);
        self.other_gpus.get(&(a, b, id.to_owned())).copied()
    }

    /// Every GPU node with its id, in numeric order.
    fn gpus(&self) -> impl Iterator<Item = (String, NodeIndex)> + '_ {
        self.inventory_gpus
            .iter()
            .enumerate()
            .map(|(i, node)| (i.to_string(), *node))
            .chain(
                self.other_gpus
                    .iter()
                    .map(|(key, node)| (key.2.clone(), *node)),
            )
    }
}

#[derive(Debug, Default)]
pub struct AllocationGraph {
    graph: DiGraph<GraphNode, GraphEdge>,
    machines: FxHashMap<String, MachineIndex>,
    /// Each machine's free GPUs and `count:` claims, by name.
    capacities: Vec<MachineGpus>,
    by_model_path: BTreeMap<String, Vec<DeploymentId>>,
}

impl AllocationGraph {
    /// One GPU node per id of [`Inventory::gpu_ids`] (bounded, whatever
    /// `gpus` says), plus one per other id a compose file pins; one `holds`
    /// edge per pinned id, and per inventory GPU for an all-GPU claim.
    ///
    /// [`Inventory::gpu_ids`]: crate::inventory::Inventory::gpu_ids
    pub fn build(
        machines: &BTreeMap<String, Machine>,
        deployments: &BTreeMap<DeploymentId, Arc<Deployment>>,
    ) -> AllocationGraph {
        AllocationGraph::build_from(machines, deployments.iter())
    }

    /// [`AllocationGraph::build`] from deployments in id order, without
    /// needing them in a map.
    pub(crate) fn build_from<'d>(
        machines: &BTreeMap<String, Machine>,
        deployments: impl Iterator<Item = (&'d DeploymentId, &'d Arc<Deployment>)> + Clone,
    ) -> AllocationGraph {
        let gpu_nodes: usize = machines
            .values()
            .filter_map(|m| m.inventory.as_deref())
            .map(|i| i.gpu_ids().len())
            .sum();
        // Exact sizes (ids missing from the inventory counted as new GPU
        // nodes, an upper bound): the vectors never grow, so the largest
        // allocation of the analysis is never copied or over-allocated.
        let machine_gpus = |machine: &str| {
            machines
                .get(machine)
                .and_then(|m| m.inventory.as_deref())
                .map_or(0, |i| i.gpu_ids().len())
        };
        let (deployment_nodes, service_nodes, hold_edges, unlisted_gpus) =
            deployments.clone().fold(
                (0usize, 0usize, 0usize, 0usize),
                |(d, s, h, u), (id, deployment)| {
                    let listed = machine_gpus(&id.machine);
                    let (mut holds, mut unlisted) = (0usize, 0usize);
                    for service in &deployment.services {
                        match &service.gpus {
                            GpuClaim::None | GpuClaim::Count(_) => {}
                            GpuClaim::All => holds += listed,
                            GpuClaim::Pinned(_) => {
                                holds += service.host_gpus.len();
                                unlisted += service
                                    .host_gpus
                                    .iter()
                                    .filter(|gpu| {
                                        decimal_gpu_id(gpu)
                                            .and_then(|n| usize::try_from(n).ok())
                                            .is_none_or(|n| n >= listed)
                                    })
                                    .count();
                            }
                        }
                    }
                    (
                        d + 1,
                        s + deployment.services.len(),
                        h.saturating_add(holds),
                        u.saturating_add(unlisted),
                    )
                },
            );
        let mut graph = DiGraph::with_capacity(
            machines.len() + gpu_nodes + unlisted_gpus + deployment_nodes + service_nodes,
            gpu_nodes + unlisted_gpus + deployment_nodes + service_nodes + hold_edges,
        );
        let mut index: FxHashMap<String, MachineIndex> = FxHashMap::default();
        index.reserve(machines.len());
        for machine in machines.values() {
            let mut entry = MachineIndex::new(&mut graph, &machine.name);
            if let Some(inventory) = &machine.inventory {
                entry.inventory = Some(Arc::clone(inventory));
                entry.gpu_count = Some(inventory.gpus);
                entry.numa_domains = inventory.numa_domains.clone();
                let ids = inventory.gpu_ids();
                entry.inventory_gpus.reserve(ids.len());
                for gpu in ids {
                    let gpu_node = graph.add_node(GraphNode::Gpu {
                        machine: entry.name.clone(),
                        id: GpuId::Index(gpu),
                        in_inventory: true,
                    });
                    graph.add_edge(entry.node, gpu_node, GraphEdge::HasGpu);
                    entry.inventory_gpus.push(gpu_node);
                }
            }
            index.insert(machine.name.clone(), entry);
        }
        // Hashed while building (few model paths, long shared prefixes), sorted once at the end.
        let mut by_model_path: FxHashMap<&str, Vec<DeploymentId>> = FxHashMap::default();
        for (id, deployment) in deployments {
            // A deployment under a machine directory the caller did not list
            // still gets its machine node.
            // Looked up before `entry`, which would allocate the key every time.
            if !index.contains_key(id.machine.as_str()) {
                let entry = MachineIndex::new(&mut graph, &id.machine);
                index.insert(id.machine.clone(), entry);
            }
            let Some(machine) = index.get_mut(id.machine.as_str()) else {
                continue;
            };
            let deployment_node = graph.add_node(GraphNode::Deployment {
                deployment: deployment.clone(),
            });
            graph.add_edge(deployment_node, machine.node, GraphEdge::BelongsTo);
            machine
                .deployments
                .push((deployment.clone(), deployment_node));
            if let Some(path) = deployment
                .services
                .iter()
                .find_map(|s| s.model_path.as_ref())
            {
                by_model_path.entry(&**path).or_default().push(id.clone());
            }
            for (service_index, service) in deployment.services.iter().enumerate() {
                let service_node = graph.add_node(GraphNode::Service {
                    deployment: deployment.clone(),
                    index: service_index,
                });
                graph.add_edge(service_node, deployment_node, GraphEdge::BelongsTo);
                match &service.gpus {
                    GpuClaim::None => {}
                    GpuClaim::Count(n) => machine.unpinned = machine.unpinned.saturating_add(*n),
                    GpuClaim::All => {
                        for gpu_node in &machine.inventory_gpus {
                            graph.add_edge(service_node, *gpu_node, GraphEdge::Holds);
                        }
                    }
                    GpuClaim::Pinned(_) => {
                        // Two slices of one GPU are one hold of that GPU.
                        let mut held: Vec<NodeIndex> = Vec::with_capacity(service.host_gpus.len());
                        for gpu in &service.host_gpus {
                            let gpu_node = match machine.gpu(gpu) {
                                Some(node) => node,
                                None => {
                                    let node = graph.add_node(GraphNode::Gpu {
                                        machine: machine.name.clone(),
                                        id: GpuId::Named(gpu.clone()),
                                        in_inventory: false,
                                    });
                                    graph.add_edge(machine.node, node, GraphEdge::HasGpu);
                                    let (a, b, _) = gpu_sort_key(gpu);
                                    machine.other_gpus.insert((a, b, gpu.to_string()), node);
                                    node
                                }
                            };
                            if !held.contains(&gpu_node) {
                                held.push(gpu_node);
                                graph.add_edge(service_node, gpu_node, GraphEdge::Holds);
                            }
                        }
                    }
                }
            }
        }
        let held = |node: NodeIndex| {
            graph
                .edges_directed(node, Direction::Incoming)
                .any(|e| *e.weight() == GraphEdge::Holds)
        };
        let mut capacities: Vec<MachineGpus> = index
            .values()
            .map(|machine| MachineGpus {
                name: Arc::clone(&machine.name),
                free: machine.gpu_count.map(|_| {
                    machine
                        .inventory_gpus
                        .iter()
                        .enumerate()
                        .filter(|(_, node)| !held(**node))
                        .filter_map(|(gpu, _)| u32::try_from(gpu).ok())
                        .collect()
                }),
                unpinned: machine.unpinned,
            })
            .collect();
        capacities.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        for (at, capacity) in capacities.iter().enumerate() {
            if let Some(machine) = index.get_mut(&*capacity.name) {
                machine.capacity = at;
            }
        }
        AllocationGraph {
            graph,
            capacities,
            machines: index,
            by_model_path: by_model_path
                .into_iter()
                .map(|(path, ids)| (path.to_owned(), ids))
                .collect(),
        }
    }

    /// The petgraph graph itself, for traversals the methods do not offer.
    pub fn graph(&self) -> &DiGraph<GraphNode, GraphEdge> {
        &self.graph
    }

    pub fn deployment_node(&self, id: &DeploymentId) -> Option<NodeIndex> {
        let machine = self.machines.get(&id.machine)?;
        machine
            .deployments
            .iter()
            .find(|(d, _)| d.id == *id)
            .map(|(_, node)| *node)
    }

    pub fn gpu_node(&self, machine: &str, gpu: &str) -> Option<NodeIndex> {
        self.machines.get(machine)?.gpu(gpu)
    }

    /// The services holding a GPU (pinned, or `all` on a machine with inventory).
    pub fn holders(&self, machine: &str, gpu: &str) -> Vec<HolderRef> {
        let Some(node) = self.gpu_node(machine, gpu) else {
            return Vec::new();
        };
        let mut holders: Vec<HolderRef> = self
            .graph
            .neighbors_directed(node, Direction::Incoming)
            .filter_map(|n| match self.graph.node_weight(n) {
                Some(GraphNode::Service { deployment, index }) => {
                    deployment.services.get(*index).map(|service| HolderRef {
                        deployment: deployment.id.clone(),
                        service: service.name.to_string(),
                    })
                }
                _ => None,
            })
            .collect();
        holders.sort();
        holders
    }

    fn is_held(&self, node: NodeIndex) -> bool {
        self.graph
            .edges_directed(node, Direction::Incoming)
            .any(|e| *e.weight() == GraphEdge::Holds)
    }

    /// Every GPU id of the machine that some service holds, in numeric order
    /// (including ids the inventory does not list).
    pub fn gpus_used(&self, machine: &str) -> Vec<String> {
        let Some(entry) = self.machines.get(machine) else {
            return Vec::new();
        };
        entry
            .gpus()
            .filter(|(_, node)| self.is_held(*node))
            .map(|(id, _)| id)
            .collect()
    }

    /// Each held GPU with its holders, in GPU order (numeric, then the other ids).
    pub fn gpu_holders(&self, machine: &str) -> Vec<GpuHolders> {
        self.gpus_used(machine)
            .into_iter()
            .map(|gpu| GpuHolders {
                holders: self.holders(machine, &gpu),
                gpu,
            })
            .collect()
    }

    /// Inventory GPUs nobody holds, ascending. `None` for an unknown machine or
    /// one without inventory. GPUs taken by `count: N` claims cannot be told
    /// apart and are not subtracted; see [`AllocationGraph::unpinned_gpus`].
    pub fn free_gpus(&self, machine: &str) -> Option<Vec<u32>> {
        self.free_and_unpinned(machine).0.map(<[u32]>::to_vec)
    }

    /// [`AllocationGraph::free_gpus`] borrowed, and
    /// [`AllocationGraph::unpinned_gpus`], in one lookup.
    pub fn free_and_unpinned(&self, machine: &str) -> (Option<&[u32]>, u32) {
        self.machines
            .get(machine)
            .and_then(|entry| self.capacities.get(entry.capacity))
            .map_or((None, 0), |c| (c.free.as_deref(), c.unpinned))
    }

    /// [`AllocationGraph::free_and_unpinned`] of every machine, in name
    /// order (the order of a fleet's machines), without a lookup each.
    pub fn capacities(&self) -> impl Iterator<Item = (&str, Option<&[u32]>, u32)> + '_ {
        self.capacities
            .iter()
            .map(|c| (&*c.name, c.free.as_deref(), c.unpinned))
    }

    /// Free GPUs grouped by the inventory's NUMA domains (one group with every
    /// free GPU when the inventory lists no domains).
    pub fn free_by_numa(&self, machine: &str) -> Option<Vec<Vec<u32>>> {
        let entry = self.machines.get(machine)?;
        let free = self.capacities.get(entry.capacity)?.free.as_deref()?;
        if entry.numa_domains.is_empty() {
            return Some(vec![free.to_vec()]);
        }
        Some(
            entry
                .numa_domains
                .iter()
                .map(|domain| {
                    domain
                        .iter()
                        .copied()
                        .filter(|g| free.binary_search(g).is_ok())
                        .collect()
                })
                .collect(),
        )
    }

    /// GPUs claimed with `count: N` on the machine (held, but which is unknown).
    pub fn unpinned_gpus(&self, machine: &str) -> u32 {
        self.free_and_unpinned(machine).1
    }

    /// The deployments of a machine, sorted by port.
    pub fn deployments_on(&self, machine: &str) -> impl Iterator<Item = &DeploymentId> + '_ {
        self.machines
            .get(machine)
            .map_or(&[][..], |m| m.deployments.as_slice())
            .iter()
            .map(|(d, _)| &d.id)
    }

    /// Model path -> the deployments serving it (sorted).
    pub fn deployments_by_model_path(&self) -> &BTreeMap<String, Vec<DeploymentId>> {
        &self.by_model_path
    }
}
