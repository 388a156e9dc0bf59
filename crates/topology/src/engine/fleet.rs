//! The analysed state of one revision ([`Fleet`]) and the views tools read
//! of it: a machine's topology, each deployment's summary.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The analysed state of one revision. Cheap to query; `Send + Sync`; share
/// it in an `Arc`.
#[derive(Debug)]
pub struct Fleet {
    pub revision: Option<Revision>,
    /// Overrides from release-config.toml applied, "off" rules removed,
    /// sorted by (path, line, column, rule).
    pub findings: Vec<Finding>,
    /// Every machine directory, with or without inventory.
    pub machines: BTreeMap<String, Machine>,
    pub deployments: BTreeMap<DeploymentId, Arc<Deployment>>,
    /// Built on first use (see [`Fleet::graph`]): validation needs none.
    graph: OnceLock<AllocationGraph>,
    /// The release-config.toml in force (default when absent).
    pub config: Config,
    /// `templates/<name>.yml.j2` entries of the snapshot.
    pub templates: Vec<Entry>,
    /// Indices into `findings` by machine.
    findings_by_machine: FxHashMap<String, Vec<usize>>,
}

/// One deployment in a machine's topology.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentSummary {
    /// `machine:port`.
    pub id: String,
    pub port: u16,
    pub services: Vec<String>,
    pub server: Option<ServerKind>,
    pub model_name: Option<String>,
    pub model_path: Option<String>,
    pub tp: u32,
    pub pp: u32,
    pub dp: u32,
    /// Host GPU ids the deployment holds (all of the machine's for `all`).
    pub gpus: Vec<String>,
    /// `GPUs 0,1` / `count: 2` / `all GPUs` / `no GPUs`, per GPU-holding service.
    pub gpu_claim: String,
    pub ports: Vec<u16>,
}

/// One machine's allocation, as tools show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineTopology {
    pub machine: String,
    pub gpu_count: Option<u32>,
    pub gpu_model: Option<String>,
    pub gpu_memory_gb: Option<f64>,
    pub interconnect: Option<Interconnect>,
    /// Held GPU ids, numeric order.
    pub gpus_used: Vec<String>,
    /// `None` without inventory.
    pub free_gpus: Option<Vec<u32>>,
    pub free_by_numa: Option<Vec<Vec<u32>>>,
    /// GPUs held through `count: N` (which ones is unknown).
    pub unpinned_gpus: u32,
    /// Each held GPU and its holders, in GPU order (numeric, then the other ids).
    /// Serialised as an object, GPU id -> holders (the report's shape), in that order.
    #[serde(serialize_with = "holders_by_gpu")]
    pub gpu_holders: Vec<GpuHolders>,
    pub deployments: Vec<DeploymentSummary>,
    pub findings: Summary,
}

/// `{"0": ["m1:8000/llm"], "2": [...], "10": [...]}`.
fn holders_by_gpu<S: serde::Serializer>(
    held: &[GpuHolders],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(held.iter().map(|h| (&h.gpu, &h.holders)))
}

impl MachineTopology {
    /// The holders of `gpu` (empty when nobody holds it).
    pub fn holders_of(&self, gpu: &str) -> &[HolderRef] {
        self.gpu_holders
            .iter()
            .find(|held| held.gpu == gpu)
            .map_or(&[], |held| held.holders.as_slice())
    }
}

impl Fleet {
    pub(super) fn new(
        revision: Option<Revision>,
        findings: Vec<Finding>,
        machines: BTreeMap<String, Machine>,
        deployments: BTreeMap<DeploymentId, Arc<Deployment>>,
        config: Config,
        templates: Vec<Entry>,
    ) -> Fleet {
        let mut findings_by_machine: FxHashMap<String, Vec<usize>> = FxHashMap::default();
        for (index, finding) in findings.iter().enumerate() {
            if let Some(machine) = &finding.machine {
                findings_by_machine
                    .entry(machine.clone())
                    .or_default()
                    .push(index);
            }
        }
        Fleet {
            revision,
            findings,
            machines,
            deployments,
            graph: OnceLock::new(),
            config,
            templates,
            findings_by_machine,
        }
    }

    /// The allocation graph of machines, GPUs and deployments, built on the
    /// first call (a validation run never asks; a topology query does).
    pub fn graph(&self) -> &AllocationGraph {
        self.graph
            .get_or_init(|| AllocationGraph::build(&self.machines, &self.deployments))
    }

    pub fn summary(&self) -> Summary {
        Summary::of(&self.findings)
    }

    pub fn findings_for_machine<'a>(
        &'a self,
        machine: &str,
    ) -> impl Iterator<Item = &'a Finding> + 'a {
        let machine = machine.to_owned();
        self.findings_by_machine
            .get(&machine)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|index| self.findings.get(*index))
            .filter(move |f| f.machine.as_deref() == Some(machine.as_str()))
    }

    /// One machine's topology: from the fleet's allocation graph when it is
    /// built, else from a graph of that machine alone (the same answer,
    /// without building the fleet's for one machine).
    pub fn machine_topology(&self, machine: &str) -> Option<MachineTopology> {
        match self.graph.get() {
            Some(graph) => self.topology_in(machine, graph),
            None => self.topology_alone(machine),
        }
    }

    /// Every machine's topology in name order, one at a time, each read from
    /// an allocation graph of that machine alone (the same answer as
    /// [`Fleet::topology`]): a caller that turns each into something else
    /// never holds the fleet's graph nor every topology at once (the MCP
    /// server's first load and the JSON report, where they were a third of
    /// the memory peak).
    pub fn each_machine_topology(&self) -> impl Iterator<Item = MachineTopology> + '_ {
        self.machines
            .keys()
            .filter_map(move |machine| self.topology_alone(machine))
    }

    fn topology_alone(&self, name: &str) -> Option<MachineTopology> {
        let machine = self.machines.get(name)?;
        let one = BTreeMap::from([(machine.name.clone(), machine.clone())]);
        let on_machine = self
            .deployments
            .range(DeploymentId::new(name, 0)..=DeploymentId::new(name, u16::MAX));
        let graph = AllocationGraph::build_from(&one, on_machine);
        self.topology_in(name, &graph)
    }

    fn topology_in(&self, machine: &str, graph: &AllocationGraph) -> Option<MachineTopology> {
        let info = self.machines.get(machine)?;
        let inventory = info.inventory.as_deref();
        let gpu_holders = graph.gpu_holders(machine);
        let deployments = graph
            .deployments_on(machine)
            .filter_map(|id| self.deployments.get(id))
            .map(|d| self.summarise(d, inventory))
            .collect();
        Some(MachineTopology {
            machine: machine.to_owned(),
            gpu_count: inventory.map(|i| i.gpus),
            gpu_model: inventory.and_then(|i| i.gpu_model.clone()),
            gpu_memory_gb: inventory.and_then(|i| i.gpu_memory_gb),
            interconnect: inventory.and_then(|i| i.interconnect),
            gpus_used: graph.gpus_used(machine),
            free_gpus: graph.free_gpus(machine),
            free_by_numa: graph.free_by_numa(machine),
            unpinned_gpus: graph.unpinned_gpus(machine),
            gpu_holders,
            deployments,
            findings: Summary::of(self.findings_for_machine(machine)),
        })
    }

    fn summarise(
        &self,
        deployment: &Deployment,
        inventory: Option<&Inventory>,
    ) -> DeploymentSummary {
        let main = deployment.main_service();
        let mut gpus: Vec<String> = Vec::new();
        let mut claims: Vec<String> = Vec::new();
        for service in &deployment.services {
            match &service.gpus {
                GpuClaim::None => continue,
                GpuClaim::Pinned(_) => gpus.extend(service.host_gpus.iter().map(|id| {
                    // A GPU's UUID shown as its index, the id everything else uses.
                    inventory.map_or_else(|| id.to_string(), |i| i.canonical_gpu(id).into_owned())
                })),
                GpuClaim::All => {
                    if let Some(inventory) = inventory {
                        gpus.extend(inventory.gpu_ids().map(|g| g.to_string()));
                    }
                }
                GpuClaim::Count(_) => {}
            }
            claims.push(service.gpus.describe());
        }
        gpus.sort_by(|a, b| rules::gpu_sort_key(a).cmp(&rules::gpu_sort_key(b)));
        gpus.dedup();
        let mut ports: Vec<u16> = deployment
            .services
            .iter()
            .flat_map(|s| s.ports.iter().map(|p| p.host))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        DeploymentSummary {
            id: deployment.id.to_string(),
            port: deployment.id.port,
            services: deployment
                .services
                .iter()
                .map(|s| s.name.to_string())
                .collect(),
            server: main.and_then(|s| s.server),
            model_name: main.and_then(|s| s.model_name.as_deref().map(str::to_owned)),
            model_path: main.and_then(|s| s.model_path.as_deref().map(str::to_owned)),
            tp: main.map_or(1, |s| s.tensor_parallel),
            pp: main.map_or(1, |s| s.pipeline_parallel),
            dp: main.map_or(1, |s| s.data_parallel),
            gpus,
            gpu_claim: if claims.is_empty() {
                GpuClaim::None.describe()
            } else {
                claims.join("; ")
            },
            ports,
        }
    }

    /// Every machine's topology, sorted by machine name.
    pub fn topology(&self) -> Vec<MachineTopology> {
        self.machines
            .keys()
            .filter_map(|m| self.machine_topology(m))
            .collect()
    }

    /// `None` for an unknown machine or one without inventory.
    pub fn free_gpus(&self, machine: &str) -> Option<Vec<u32>> {
        self.graph().free_gpus(machine)
    }

    pub fn deployments_by_model_path(&self) -> BTreeMap<String, Vec<DeploymentId>> {
        self.graph().deployments_by_model_path().clone()
    }
}
