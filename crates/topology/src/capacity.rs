//! Claims and capacity, one typed reading of "who holds what" on a machine:
//! what a deployment holds ([`DeploymentClaims`]: GPUs by id, host port
//! bindings), when two holds conflict ([`PortBinding::clashes`], and for
//! GPUs: the same id unless both sides share on purpose), and which GPUs are
//! free per NUMA domain ([`FreeGpus`]), as data.
//!
//! PENDING001 (`engine/pending.rs`), the proposal refusals and suggestions
//! (`proposal/plan.rs`) read claims through this module. PORT001 and GPU001
//! (`rules.rs`) apply the same predicates through an index of their own, for
//! speed on large machines; a test holds the two to each other. Messages are
//! made from these values at the edge.

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use crate::compose::{Deployment, DeploymentId, GpuClaim, PublishedPort};
use crate::engine::Fleet;
use crate::finding::Location;

/// A host port binding: what the machine's Docker cannot bind twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortBinding<'a> {
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: &'a str,
    /// A specific host address; `None` for every address.
    pub address: Option<&'a str>,
}

impl<'a> PortBinding<'a> {
    /// A published port of a compose service.
    pub fn published(port: &'a PublishedPort) -> PortBinding<'a> {
        PortBinding {
            port: port.host,
            protocol: &port.protocol,
            address: if port.binds_every_address() {
                None
            } else {
                port.host_ip.as_deref()
            },
        }
    }

    /// The port a deployment's directory names (`machines/<m>/<port>/`): the
    /// port its server serves on, TCP on every address.
    pub fn directory(port: u16) -> PortBinding<'static> {
        PortBinding {
            port,
            protocol: "tcp",
            address: None,
        }
    }

    /// Whether Docker refuses one of the two bindings when the other is
    /// bound: the same port and protocol, and every address on one side or
    /// the same address on both. (PORT001's rule.)
    pub fn clashes(&self, other: &PortBinding<'_>) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.address.is_none() || other.address.is_none() || self.address == other.address)
    }
}

/// One GPU a deployment holds.
#[derive(Debug, Clone)]
pub(crate) struct GpuHold {
    /// The GPU's id as the machine names it (an index, or a UUID).
    pub gpu: String,
    /// `catapult.gpu_sharing`: shares the GPU on purpose (MEM002 checks it).
    pub sharing: bool,
    pub at: Location,
}

impl GpuHold {
    /// Whether two holds of one GPU conflict: unless both share it on purpose.
    /// (GPU001's rule.)
    pub fn conflicts_with(&self, other: &GpuHold) -> bool {
        self.gpu == other.gpu && !(self.sharing && other.sharing)
    }
}

/// One host port a deployment holds.
#[derive(Debug, Clone)]
pub(crate) struct PortHold<'a> {
    pub binding: PortBinding<'a>,
    pub at: Location,
}

/// What one deployment holds on its machine: the GPUs it pins (every GPU of
/// the inventory for `all`), how many more it takes by `count:` (Docker
/// picks which), its published ports and its port directory.
#[derive(Debug, Clone)]
pub(crate) struct DeploymentClaims<'a> {
    pub id: &'a DeploymentId,
    pub gpus: Vec<GpuHold>,
    /// GPUs taken with `count:`, which no id names.
    pub unpinned: u32,
    pub ports: Vec<PortHold<'a>>,
}

impl<'a> DeploymentClaims<'a> {
    /// The claims of `deployment`, a deployment of `fleet` (whose inventory
    /// says what `all` means).
    pub fn of(fleet: &Fleet, deployment: &'a Deployment) -> DeploymentClaims<'a> {
        let inventory = fleet
            .machines
            .get(&deployment.id.machine)
            .and_then(|m| m.inventory.as_deref());
        let inventory_gpus = inventory.map(crate::inventory::Inventory::gpu_ids);
        // A GPU claimed by its UUID is the GPU of that index.
        let canonical = |id: &str| {
            inventory.map_or_else(|| id.to_owned(), |i| i.canonical_gpu(id).into_owned())
        };
        let mut claims = DeploymentClaims {
            id: &deployment.id,
            gpus: Vec::new(),
            unpinned: 0,
            ports: Vec::new(),
        };
        for service in &deployment.services {
            let hold = |gpu: String, at: Location| GpuHold {
                gpu,
                sharing: service.gpu_sharing,
                at,
            };
            match &service.gpus {
                GpuClaim::Pinned(refs) => claims.gpus.extend(
                    refs.iter()
                        .map(|r| hold(canonical(&r.id), service.at(r.pos))),
                ),
                GpuClaim::All => {
                    let at = service
                        .located(service.gpus_at)
                        .unwrap_or_else(|| service.location.clone());
                    if let Some(ids) = inventory_gpus.clone() {
                        claims
                            .gpus
                            .extend(ids.map(|g| hold(g.to_string(), at.clone())));
                    }
                }
                GpuClaim::Count(n) => claims.unpinned = claims.unpinned.saturating_add(*n),
                GpuClaim::None => {}
            }
            claims.ports.extend(service.ports.iter().map(|p| PortHold {
                binding: PortBinding::published(p),
                at: p.pos.clone(),
            }));
        }
        // The directory's port is the deployment's even before a service
        // publishes it (PORT002 asks that one does).
        let directory = PortBinding::directory(deployment.id.port);
        if !claims.ports.iter().any(|p| p.binding.clashes(&directory)) {
            claims.ports.push(PortHold {
                binding: directory,
                at: deployment.main_service().map_or_else(
                    || Location::file(deployment.compose_path.clone()),
                    |s| s.location.clone(),
                ),
            });
        }
        claims
    }

    /// The GPUs both deployments hold in conflict, each id once, at this
    /// side's first hold and the other side's first conflicting one.
    pub fn conflicting_gpus<'s, 'o>(
        &'s self,
        other: &'o DeploymentClaims<'_>,
    ) -> Vec<(&'s GpuHold, &'o GpuHold)> {
        // Other's holds by id: a deployment may pin many GPUs, so no
        // pairwise scan.
        let mut by_gpu: FxHashMap<&str, Vec<&GpuHold>> = FxHashMap::default();
        for hold in &other.gpus {
            by_gpu.entry(hold.gpu.as_str()).or_default().push(hold);
        }
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut out = Vec::new();
        for ours in &self.gpus {
            let Some(theirs) = by_gpu.get(ours.gpu.as_str()) else {
                continue;
            };
            if let Some(theirs) = theirs.iter().find(|t| ours.conflicts_with(t))
                && seen.insert(ours.gpu.as_str())
            {
                out.push((ours, *theirs));
            }
        }
        out
    }

    /// The host ports both deployments bind in conflict, each port number
    /// once, at this side's first binding and the other side's first
    /// clashing one.
    pub fn clashing_ports<'s, 'o>(
        &'s self,
        other: &'o DeploymentClaims<'_>,
    ) -> Vec<(&'s PortHold<'a>, &'o PortHold<'o>)> {
        let mut by_port: FxHashMap<u16, Vec<&PortHold<'_>>> = FxHashMap::default();
        for hold in &other.ports {
            by_port.entry(hold.binding.port).or_default().push(hold);
        }
        let mut seen: BTreeSet<u16> = BTreeSet::new();
        let mut out = Vec::new();
        for ours in &self.ports {
            let Some(theirs) = by_port.get(&ours.binding.port) else {
                continue;
            };
            if let Some(theirs) = theirs.iter().find(|t| ours.binding.clashes(&t.binding))
                && seen.insert(ours.binding.port)
            {
                out.push((ours, *theirs));
            }
        }
        out
    }
}

/// The claims of every deployment on `machine` in `fleet`, in port order.
pub(crate) fn machine_claims<'f>(fleet: &'f Fleet, machine: &str) -> Vec<DeploymentClaims<'f>> {
    fleet
        .graph()
        .deployments_on(machine)
        .filter_map(|id| fleet.deployments.get(id))
        .map(|deployment| DeploymentClaims::of(fleet, deployment))
        .collect()
}

/// Ports above `port` that nothing on the machine binds (published or as a
/// port directory), up to `n` of them: where a new deployment could go.
pub(crate) fn free_ports_after(claims: &[DeploymentClaims<'_>], port: u16, n: usize) -> Vec<u16> {
    let taken: BTreeSet<u16> = claims
        .iter()
        .flat_map(|c| &c.ports)
        .filter(|hold| {
            hold.binding
                .clashes(&PortBinding::directory(hold.binding.port))
        })
        .map(|hold| hold.binding.port)
        .collect();
    (port.saturating_add(1)..=u16::MAX)
        .filter(|p| !taken.contains(p))
        .take(n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        port: u16,
        protocol: &'static str,
        address: Option<&'static str>,
    ) -> PortBinding<'static> {
        PortBinding {
            port,
            protocol,
            address,
        }
    }

    #[test]
    fn port_bindings_clash_as_docker_binds_them() {
        let every = binding(8000, "tcp", None);
        let local = binding(8000, "tcp", Some("127.0.0.1"));
        let other = binding(8000, "tcp", Some("10.0.0.1"));
        let udp = binding(8000, "udp", None);
        assert!(every.clashes(&local) && local.clashes(&every));
        assert!(local.clashes(&local));
        assert!(!local.clashes(&other));
        assert!(!every.clashes(&udp));
        assert!(!every.clashes(&binding(8001, "tcp", None)));
        assert!(PortBinding::directory(8000).clashes(&local));
    }
}
