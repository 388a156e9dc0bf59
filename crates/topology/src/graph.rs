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
use crate::inventory::Machine;
use crate::rules::gpu_sort_key;

#[derive(Debug, Clone, PartialEq)]
pub enum GraphNode {
    Machine {
        name: String,
    },
    /// A GPU of a machine: one per inventory id, plus any id a compose file
    /// names that the inventory does not list (`in_inventory: false`).
    Gpu {
        machine: String,
        id: String,
        in_inventory: bool,
    },
    Deployment {
        id: DeploymentId,
    },
    Service {
        deployment: DeploymentId,
        name: String,
    },
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
        format!("{}/{}", self.deployment, self.service)
    }
}

#[derive(Debug, Default)]
struct MachineIndex {
    node: NodeIndex,
    /// Inventory GPU count; `None` without inventory.
    gpu_count: Option<u32>,
    numa_domains: Vec<Vec<u32>>,
    /// GPU nodes by id, in numeric order (inventory ids and named ones).
    gpus: BTreeMap<(u8, u64, String), NodeIndex>,
    deployments: Vec<DeploymentId>,
    /// Sum of `count: N` claims: GPUs held, but which is unknown.
    unpinned: u32,
}

#[derive(Debug, Default)]
pub struct AllocationGraph {
    graph: DiGraph<GraphNode, GraphEdge>,
    machines: FxHashMap<String, MachineIndex>,
    deployments: FxHashMap<DeploymentId, NodeIndex>,
    by_model_path: BTreeMap<String, Vec<DeploymentId>>,
}

impl AllocationGraph {
    pub fn build(
        machines: &BTreeMap<String, Machine>,
        deployments: &BTreeMap<DeploymentId, Arc<Deployment>>,
    ) -> AllocationGraph {
        let gpu_nodes: usize = machines
            .values()
            .map(|m| m.gpu_count().unwrap_or(0) as usize)
            .sum();
        let service_nodes: usize = deployments.values().map(|d| d.services.len()).sum();
        let mut graph = DiGraph::with_capacity(
            machines.len() + gpu_nodes + deployments.len() + service_nodes,
            gpu_nodes + deployments.len() + service_nodes * 3,
        );
        let mut index: FxHashMap<String, MachineIndex> = FxHashMap::default();
        for machine in machines.values() {
            let node = graph.add_node(GraphNode::Machine {
                name: machine.name.clone(),
            });
            let mut entry = MachineIndex {
                node,
                ..MachineIndex::default()
            };
            if let Some(inventory) = &machine.inventory {
                entry.gpu_count = Some(inventory.gpus);
                entry.numa_domains = inventory.numa_domains.clone();
                for gpu in 0..inventory.gpus {
                    let id = gpu.to_string();
                    let gpu_node = graph.add_node(GraphNode::Gpu {
                        machine: machine.name.clone(),
                        id: id.clone(),
                        in_inventory: true,
                    });
                    graph.add_edge(node, gpu_node, GraphEdge::HasGpu);
                    entry.gpus.insert((0, u64::from(gpu), id), gpu_node);
                }
            }
            index.insert(machine.name.clone(), entry);
        }
        let mut by_deployment = FxHashMap::default();
        let mut by_model_path: BTreeMap<String, Vec<DeploymentId>> = BTreeMap::new();
        for (id, deployment) in deployments {
            // A deployment under a machine directory the caller did not list
            // still gets its machine node.
            let machine = index
                .entry(id.machine.clone())
                .or_insert_with(|| MachineIndex {
                    node: graph.add_node(GraphNode::Machine {
                        name: id.machine.clone(),
                    }),
                    ..MachineIndex::default()
                });
            let deployment_node = graph.add_node(GraphNode::Deployment { id: id.clone() });
            graph.add_edge(deployment_node, machine.node, GraphEdge::BelongsTo);
            by_deployment.insert(id.clone(), deployment_node);
            machine.deployments.push(id.clone());
            if let Some(path) = deployment
                .services
                .iter()
                .find_map(|s| s.model_path.clone())
            {
                by_model_path.entry(path).or_default().push(id.clone());
            }
            for service in &deployment.services {
                let service_node = graph.add_node(GraphNode::Service {
                    deployment: id.clone(),
                    name: service.name.clone(),
                });
                graph.add_edge(service_node, deployment_node, GraphEdge::BelongsTo);
                let held: Vec<String> = match &service.gpus {
                    GpuClaim::None => Vec::new(),
                    GpuClaim::Pinned(_) => service.host_gpus.clone(),
                    GpuClaim::Count(n) => {
                        machine.unpinned = machine.unpinned.saturating_add(*n);
                        Vec::new()
                    }
                    GpuClaim::All => machine
                        .gpus
                        .iter()
                        .filter(|(k, _)| k.0 == 0)
                        .map(|(k, _)| k.2.clone())
                        .collect(),
                };
                for gpu in held {
                    let (a, b, _) = gpu_sort_key(&gpu);
                    let key = (a, b, gpu.clone());
                    let gpu_node = match machine.gpus.get(&key) {
                        Some(node) => *node,
                        None => {
                            let node = graph.add_node(GraphNode::Gpu {
                                machine: id.machine.clone(),
                                id: gpu.clone(),
                                in_inventory: false,
                            });
                            graph.add_edge(machine.node, node, GraphEdge::HasGpu);
                            machine.gpus.insert(key, node);
                            node
                        }
                    };
                    graph.add_edge(service_node, gpu_node, GraphEdge::Holds);
                }
            }
        }
        AllocationGraph {
            graph,
            machines: index,
            deployments: by_deployment,
            by_model_path,
        }
    }

    /// The petgraph graph itself, for traversals the methods do not offer.
    pub fn graph(&self) -> &DiGraph<GraphNode, GraphEdge> {
        &self.graph
    }

    pub fn machine_node(&self, machine: &str) -> Option<NodeIndex> {
        self.machines.get(machine).map(|m| m.node)
    }

    pub fn deployment_node(&self, id: &DeploymentId) -> Option<NodeIndex> {
        self.deployments.get(id).copied()
    }

    pub fn gpu_node(&self, machine: &str, gpu: &str) -> Option<NodeIndex> {
        let (a, b, _) = gpu_sort_key(gpu);
        self.machines
            .get(machine)?
            .gpus
            .get(&(a, b, gpu.to_owned()))
            .copied()
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
                Some(GraphNode::Service { deployment, name }) => Some(HolderRef {
                    deployment: deployment.clone(),
                    service: name.clone(),
                }),
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
            .gpus
            .iter()
            .filter(|(_, node)| self.is_held(**node))
            .map(|(key, _)| key.2.clone())
            .collect()
    }

    /// Each held GPU with its holders.
    pub fn gpu_holders(&self, machine: &str) -> BTreeMap<String, Vec<HolderRef>> {
        self.gpus_used(machine)
            .into_iter()
            .map(|gpu| (gpu.clone(), self.holders(machine, &gpu)))
            .collect()
    }

    /// Inventory GPUs nobody holds, ascending. `None` for an unknown machine or
    /// one without inventory. GPUs taken by `count: N` claims cannot be told
    /// apart and are not subtracted; see [`AllocationGraph::unpinned_gpus`].
    pub fn free_gpus(&self, machine: &str) -> Option<Vec<u32>> {
        let entry = self.machines.get(machine)?;
        entry.gpu_count?;
        Some(
            entry
                .gpus
                .iter()
                .filter(|(key, node)| key.0 == 0 && !self.is_held(**node))
                .filter_map(|(key, _)| u32::try_from(key.1).ok())
                .filter(|gpu| entry.gpu_count.is_some_and(|n| *gpu < n))
                .collect(),
        )
    }

    /// Free GPUs grouped by the inventory's NUMA domains (one group with every
    /// free GPU when the inventory lists no domains).
    pub fn free_by_numa(&self, machine: &str) -> Option<Vec<Vec<u32>>> {
        let free = self.free_gpus(machine)?;
        let entry = self.machines.get(machine)?;
        if entry.numa_domains.is_empty() {
            return Some(vec![free]);
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
        self.machines.get(machine).map_or(0, |m| m.unpinned)
    }

    /// The deployments of a machine, sorted by port.
    pub fn deployments_on(&self, machine: &str) -> &[DeploymentId] {
        self.machines
            .get(machine)
            .map_or(&[], |m| m.deployments.as_slice())
    }

    /// Model path -> the deployments serving it (sorted).
    pub fn deployments_by_model_path(&self) -> &BTreeMap<String, Vec<DeploymentId>> {
        &self.by_model_path
    }

    pub fn machine_count(&self) -> usize {
        self.machines.len()
    }
}
