//! What the release-config tools and resources answer: plain serialisable views of one analysed
//! revision, computed once per revision so that every call is a lookup.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Serialize;

/// One analysed revision of the release-config repository. Each deployment's brief and each
/// finding is stored once and shared (`Arc`) by the machine, model and deployment indexes; a
/// deployment's full detail is built on request from the engine's parse, which the engine's cache
/// holds anyway: the view adds little to what analysis already keeps.
#[derive(Debug, Clone, Default)]
pub struct FleetView {
    /// The commit analysed; `None` when the repository is a plain directory.
    pub revision: Option<RevisionView>,
    pub counts: FindingCounts,
    pub machines: Machines,
    pub deployments: Deployments,
    /// Deployments grouped by model path (or model name when no path is known).
    pub models: Vec<ModelDeployments>,
    /// Templates in the repository's `templates/` directory.
    pub repository_templates: Vec<String>,
    /// The Git directory compose files are read from on request (see
    /// [`DeploymentEntry::compose_text`]); `None` for a plain directory, whose compose files
    /// are kept in the view as read.
    pub blob_source: Option<std::path::PathBuf>,
}

/// One production deployment of the view: what lists show, and what its detail is built from.
#[derive(Debug, Clone)]
pub struct DeploymentEntry {
    pub brief: Arc<DeploymentBrief>,
    /// The engine's parse (shared with the engine's cache).
    pub parsed: Arc<topology::compose::Deployment>,
    /// Findings that name this deployment.
    pub findings: Vec<Arc<FindingView>>,
    /// The compose file as read, `(text cut at 64 KiB, truncated)`, for a plain directory. From
    /// Git it is read on request by its blob id (`parsed.content`): thousands of compose files
    /// need not stay in memory for the few asked for.
    pub compose_text: Option<(String, bool)>,
}

/// Every machine of the view, sorted by name: a lookup is a binary search. (A map's nodes were
/// 11 MB at 20,000 machines, beside 7 MB of topologies.)
#[derive(Debug, Clone, Default)]
pub struct Machines(Vec<MachineTopology>);

impl Machines {
    /// `machines` in any order; a name given twice keeps the last.
    pub fn new(mut machines: Vec<MachineTopology>) -> Machines {
        machines.reverse();
        machines.sort_by(|a, b| a.machine.cmp(&b.machine));
        machines.dedup_by(|later, kept| later.machine == kept.machine);
        machines.shrink_to_fit();
        Machines(machines)
    }

    pub fn get(&self, name: &str) -> Option<&MachineTopology> {
        let at = self
            .0
            .binary_search_by(|m| m.machine.as_str().cmp(name))
            .ok()?;
        self.0.get(at)
    }

    /// In name order.
    pub fn values(&self) -> std::slice::Iter<'_, MachineTopology> {
        self.0.iter()
    }

    /// In name order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|m| m.machine.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every deployment of the view, sorted by (machine, port): a lookup is a binary search and a
/// machine's deployments are one slice. (A map keyed by `(String, u16)` was 12 MB of nodes and
/// key copies at 20,000 machines.)
#[derive(Debug, Clone, Default)]
pub struct Deployments(Vec<DeploymentEntry>);

impl Deployments {
    /// `entries` in any order; a (machine, port) given twice keeps the last.
    pub fn new(mut entries: Vec<DeploymentEntry>) -> Deployments {
        entries.reverse();
        entries.sort_by(|a, b| a.key().cmp(&b.key()));
        entries.dedup_by(|later, kept| later.key() == kept.key());
        entries.shrink_to_fit();
        Deployments(entries)
    }

    pub fn get(&self, machine: &str, port: u16) -> Option<&DeploymentEntry> {
        let at = self
            .0
            .binary_search_by(|e| e.key().cmp(&(machine, port)))
            .ok()?;
        self.0.get(at)
    }

    /// The deployments of `machine`, by port.
    pub fn of_machine(&self, machine: &str) -> &[DeploymentEntry] {
        let start = self.0.partition_point(|e| e.key().0 < machine);
        let end = self.0.partition_point(|e| e.key().0 <= machine);
        self.0.get(start..end).unwrap_or_default()
    }

    /// By (machine, port).
    pub fn values(&self) -> std::slice::Iter<'_, DeploymentEntry> {
        self.0.iter()
    }

    /// By (machine, port).
    pub fn all(&self) -> &[DeploymentEntry] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl DeploymentEntry {
    /// (machine, port): the view's order.
    pub fn key(&self) -> (&str, u16) {
        (&self.brief.machine, self.brief.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RevisionView {
    /// Full commit id.
    pub commit: String,
    pub short_commit: String,
    /// First line of the commit message.
    pub summary: String,
    /// Commit time, RFC 3339.
    pub committed_at: String,
}

/// Findings by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FindingCounts {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

/// Where an answer comes from. Every release-config answer carries one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SourceInfo {
    /// The repository (a path, or a URL without credentials).
    pub repository: String,
    /// The production branch analysed.
    pub branch: String,
    /// The commit this answer describes; null for a plain directory.
    pub commit: Option<RevisionView>,
    /// When the repository was last fetched (or read, for a local path), RFC 3339.
    pub fetched_at: String,
    /// True when the latest fetch failed and this is the last known state.
    pub stale: bool,
    /// Why the state is stale (the fetch error), when it is.
    pub stale_reason: Option<String>,
    /// Validation findings of the whole revision.
    pub findings: FindingCounts,
}

/// A validation finding, flattened for agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FindingView {
    /// Rule code, e.g. GPU001.
    pub code: String,
    /// What the rule checks, in one line (the validator's `--explain CODE` says more).
    pub rule: &'static str,
    /// error, warning or info.
    pub severity: String,
    pub message: String,
    /// `path:line:column` in the repository.
    pub location: String,
    /// Deployments involved, as `machine:port`.
    pub deployments: Vec<String>,
    /// The other side(s) of a conflict, as `path:line:column: message`.
    pub related: Vec<String>,
    /// Accepted in the file (`# release-config: ignore CODE -- reason`): the reason. Not counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
}

/// A string the view holds many times (GPU ids, holders, model names, images): one shared
/// copy each (see `from_engine::Interner`), which at 20,000 machines is tens of megabytes.
pub type SharedText = Arc<str>;

/// A GPU of a machine and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct GpuHolders {
    /// Canonical GPU id (`3`, or a UUID / MIG id as written).
    pub gpu: SharedText,
    /// Holders as `machine:port/service`. More than one is a conflict unless shared on purpose.
    pub holders: Box<[SharedText]>,
}

/// Free GPUs of one NUMA domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct NumaFree {
    /// Index of the domain in the inventory's `numa_domains`.
    pub domain: usize,
    pub gpus: Vec<u32>,
    pub free: Vec<u32>,
}

/// One deployment in a line: what serves where, on which GPUs.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
/// (Lists as boxed slices: a brief is never grown, and 50,000 of them are kept.)
pub struct DeploymentBrief {
    /// `machine:port`.
    pub id: String,
    pub machine: SharedText,
    /// Host port (the port directory).
    pub port: u16,
    pub model_name: Option<SharedText>,
    pub model_path: Option<SharedText>,
    pub tensor_parallel: u32,
    pub pipeline_parallel: u32,
    pub data_parallel: u32,
    /// Host GPUs held, canonical ids (empty for `count: N` claims, whose GPUs Docker picks).
    pub gpus: Box<[SharedText]>,
    /// How the GPUs are claimed: `GPUs 0,1`, `count: 2`, `all GPUs`, `no GPUs`.
    pub gpu_claim: SharedText,
    /// Host ports published.
    pub published_ports: Box<[u16]>,
    pub services: Box<[SharedText]>,
    pub image: Option<SharedText>,
    /// vllm, sglang, tgi or trtllm, when recognised.
    pub server: Option<SharedText>,
}

/// A machine's GPU map, deployments and findings.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct MachineTopology {
    pub machine: String,
    /// False when the machine has no `machine.yaml`: GPU count and free GPUs are then unknown.
    pub has_inventory: bool,
    pub gpu_count: Option<u32>,
    pub gpu_model: Option<SharedText>,
    pub gpu_memory_gb: Option<f64>,
    /// nvlink or pcie.
    pub interconnect: Option<&'static str>,
    /// GPUs held by some deployment.
    pub gpus_used: Vec<SharedText>,
    /// GPUs nobody holds; null without inventory.
    pub free_gpus: Option<Vec<u32>>,
    /// Free GPUs per NUMA domain; null without NUMA information.
    pub free_gpus_by_numa: Option<Vec<NumaFree>>,
    /// GPUs taken by `count: N` claims: Docker picks which, so they are not in `gpus_used`.
    pub unpinned_gpus: u32,
    pub gpu_holders: Vec<GpuHolders>,
    pub deployments: Vec<Arc<DeploymentBrief>>,
    /// Findings that touch this machine.
    pub findings: Vec<Arc<FindingView>>,
    pub finding_counts: FindingCounts,
    /// The inventory as read (devices, link matrix, labels), shared with the engine's: what
    /// find_placement plans with. Not part of the answer.
    #[serde(skip)]
    #[schemars(skip)]
    pub inventory: Option<Arc<topology::inventory::Inventory>>,
}

/// One machine in a line: what capacity planning across the fleet needs, without the GPU
/// holders, deployment details and findings of [`MachineTopology`].
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct MachineSummary {
    pub machine: String,
    pub has_inventory: bool,
    pub gpu_count: Option<u32>,
    pub gpu_model: Option<SharedText>,
    pub gpu_memory_gb: Option<f64>,
    pub interconnect: Option<&'static str>,
    pub gpus_used: Vec<SharedText>,
    /// Null without inventory.
    pub free_gpus: Option<Vec<u32>>,
    /// Free GPUs of each NUMA domain, in domain order; null without NUMA information.
    pub free_gpus_by_numa: Option<Vec<Vec<u32>>>,
    pub unpinned_gpus: u32,
    /// Host ports of the machine's deployments (each is `machine:port`).
    pub deployment_ports: Vec<u16>,
    pub finding_counts: FindingCounts,
}

impl MachineSummary {
    pub fn of(topology: &MachineTopology) -> MachineSummary {
        MachineSummary {
            machine: topology.machine.clone(),
            has_inventory: topology.has_inventory,
            gpu_count: topology.gpu_count,
            gpu_model: topology.gpu_model.clone(),
            gpu_memory_gb: topology.gpu_memory_gb,
            interconnect: topology.interconnect,
            gpus_used: topology.gpus_used.clone(),
            free_gpus: topology.free_gpus.clone(),
            free_gpus_by_numa: topology
                .free_gpus_by_numa
                .as_ref()
                .map(|domains| domains.iter().map(|d| d.free.clone()).collect()),
            unpinned_gpus: topology.unpinned_gpus,
            deployment_ports: topology.deployments.iter().map(|d| d.port).collect(),
            finding_counts: topology.finding_counts,
        }
    }
}

/// A published port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct PortView {
    pub host: u16,
    pub container: Option<u16>,
    pub host_ip: Option<String>,
}

/// One service of a compose file, as the engine read it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ServiceView {
    pub name: String,
    pub image: Option<String>,
    /// How GPUs are requested: `none`, `device_ids 0,1`, `count 2` or `all`.
    pub gpu_request: String,
    /// Host GPUs the service ends up with (after CUDA_VISIBLE_DEVICES etc.).
    pub host_gpus: Vec<String>,
    pub tensor_parallel: u32,
    pub pipeline_parallel: u32,
    pub data_parallel: u32,
    pub model_name: Option<String>,
    pub model_path: Option<String>,
    /// Billions of parameters, when labelled.
    pub params_b: Option<f64>,
    pub dtype: Option<String>,
    pub memory_utilization: f64,
    pub gpu_sharing: bool,
    pub ports: Vec<PortView>,
    pub server: Option<String>,
}

/// Everything about one production deployment.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ReleaseConfigDetail {
    pub deployment: DeploymentBrief,
    /// Repository path of the compose file.
    pub compose_path: String,
    /// Repository path of the `.env` file, if any (its content is not returned: it may hold secrets).
    pub env_path: Option<String>,
    pub services: Vec<ServiceView>,
    /// Findings that name this deployment.
    pub findings: Vec<Arc<FindingView>>,
    /// The compose file as committed (cut at 64 KiB).
    pub compose_file: Option<String>,
    pub compose_file_truncated: bool,
}

/// Production deployments of one model.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ModelDeployments {
    /// The model path (or the model name when no path is declared; `(unknown)` when neither).
    pub model: String,
    pub model_names: Vec<String>,
    pub deployment_count: usize,
    pub total_gpus: usize,
    pub deployments: Vec<Arc<DeploymentBrief>>,
    /// Set when `deployments` shows only the first ones (the model alone would exceed an
    /// answer's budget): how many were left out and how to list them all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployments_left_out: Option<String>,
}

/// Closest names (shared with the engine's proposal refusals).
pub use topology::layout::closest;
