//! Turns the topology engine's analysis of a snapshot into a [`FleetView`], once per revision.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use topology::Finding;
use topology::engine::{DeploymentSummary, Engine, Fleet};
use topology::repo::Snapshot;

use super::state::rfc3339_secs;
use super::view::{
    DeploymentBrief, DeploymentEntry, Deployments, FindingCounts, FindingView, FleetView,
    GpuHolders, MachineTopology, Machines, ModelDeployments, NumaFree, PortView,
    ReleaseConfigDetail, RevisionView, ServiceView, SharedText,
};

/// The compose file text returned by get_release_config is cut here.
const MAX_COMPOSE_TEXT: usize = 64 * 1024;

/// The long-lived engine (its parse cache survives between revisions), on one thread: a load
/// is rare and off the request path, and one thread keeps the server's memory peak low (see
/// [`Engine::set_threads`]).
pub struct EngineSlot(Engine);

impl EngineSlot {
    pub fn engine(&mut self) -> &mut Engine {
        &mut self.0
    }
}

impl Default for EngineSlot {
    fn default() -> EngineSlot {
        let mut engine = Engine::new();
        engine.set_threads(1);
        EngineSlot(engine)
    }
}

/// Analyses `snapshot`. With `git_dir` (the snapshot is a commit of that repository) the
/// snapshot is dropped before the view is built and compose files are read on request
/// ([`compose_text`]), so that neither the listing nor every compose file stays in memory.
pub fn analyze(
    engine: &mut EngineSlot,
    snapshot: Snapshot,
    git_dir: Option<&Path>,
) -> Result<FleetView, String> {
    let fleet = engine.0.analyze(&snapshot).map_err(|e| {
        format!(
            "cannot analyse {} of the release-config repository: {e}",
            snapshot.describe()
        )
    })?;
    match git_dir {
        Some(git_dir) => {
            drop(snapshot);
            let mut view = view_of(fleet, None);
            view.blob_source = Some(git_dir.to_path_buf());
            Ok(view)
        }
        None => Ok(view_of(fleet, Some(&snapshot))),
    }
}

/// The full detail of one deployment of `view`, its compose file read back from Git when the
/// view does not keep it.
pub fn detail(view: &FleetView, entry: &DeploymentEntry) -> ReleaseConfigDetail {
    let deployment = &entry.parsed;
    let services = deployment
        .services
        .iter()
        .map(|s| ServiceView {
            name: s.name.to_string(),
            image: s.image.as_deref().map(str::to_owned),
            gpu_request: s.gpus.describe(),
            host_gpus: s.host_gpus.iter().map(|id| id.to_string()).collect(),
            tensor_parallel: s.tensor_parallel,
            pipeline_parallel: s.pipeline_parallel,
            data_parallel: s.data_parallel,
            model_name: s.model_name.as_deref().map(str::to_owned),
            model_path: s.model_path.as_deref().map(str::to_owned),
            params_b: s.params_b,
            dtype: s.dtype.as_deref().map(str::to_owned),
            memory_utilization: s.memory_utilization,
            gpu_sharing: s.gpu_sharing,
            ports: s
                .ports
                .iter()
                .map(|p| PortView {
                    host: p.host,
                    container: p.container,
                    host_ip: p.host_ip.clone(),
                })
                .collect(),
            server: s.server.map(|k| k.as_str().to_owned()),
        })
        .collect();
    let (compose_file, compose_file_truncated) = compose_text(view, entry);
    ReleaseConfigDetail {
        deployment: DeploymentBrief::clone(&entry.brief),
        compose_path: deployment.compose_path.clone(),
        env_path: deployment.env_path.clone(),
        services,
        findings: entry.findings.clone(),
        compose_file,
        compose_file_truncated,
    }
}

/// The compose file of `entry` as `(text, truncated)`: as kept, or read from the Git directory
/// the view names. `(None, false)` when it cannot be read (e.g. the mirror lost the object).
fn compose_text(view: &FleetView, entry: &DeploymentEntry) -> (Option<String>, bool) {
    let blob = entry.parsed.content.map(|(compose, _env)| compose);
    let (Some(git_dir), Some(blob)) = (&view.blob_source, blob) else {
        return match &entry.compose_text {
            Some((text, truncated)) => (Some(text.clone()), *truncated),
            None => (None, false),
        };
    };
    let path = &entry.parsed.compose_path;
    // Through the engine's Git seam: only `topology::repo` touches git2.
    let read = || -> Result<Vec<u8>, String> {
        let repository = topology::repo::Repository::open(git_dir).map_err(|e| e.to_string())?;
        repository
            .read_blob(&blob, path, MAX_COMPOSE_READ)
            .map_err(|e| e.to_string())
    };
    match read() {
        Ok(bytes) => {
            let (text, truncated) = cut(&bytes);
            (Some(text), truncated)
        }
        Err(error) => {
            tracing::warn!(%error, %path, "compose file unreadable");
            (None, false)
        }
    }
}

/// Compose files larger than this are not read back at all (the engine's own
/// YAML size bound is 4 MiB).
const MAX_COMPOSE_READ: u64 = 4 << 20;

/// The text of `bytes`, cut at [`MAX_COMPOSE_TEXT`] on a character boundary.
fn cut(bytes: &[u8]) -> (String, bool) {
    let text = String::from_utf8_lossy(bytes);
    if text.len() > MAX_COMPOSE_TEXT {
        let mut end = MAX_COMPOSE_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        (text.get(..end).unwrap_or_default().to_owned(), true)
    } else {
        (text.into_owned(), false)
    }
}

pub fn finding_view(finding: &Finding) -> FindingView {
    FindingView {
        code: finding.rule.code().to_owned(),
        rule: finding.rule.summary(),
        severity: finding.severity.as_str().to_owned(),
        message: finding.message.clone(),
        location: finding.location.to_string(),
        deployments: finding.deployments.clone(),
        related: finding
            .related
            .iter()
            .map(|r| format!("{}: {}", r.location, r.message))
            .collect(),
        suppressed: finding.suppressed.clone(),
    }
}

fn counts(findings: &[Arc<FindingView>]) -> FindingCounts {
    let mut counts = FindingCounts::default();
    for finding in findings.iter().filter(|f| f.suppressed.is_none()) {
        match finding.severity.as_str() {
            "error" => counts.errors += 1,
            "warning" => counts.warnings += 1,
            _ => counts.infos += 1,
        }
    }
    counts
}

/// The view of `fleet`, consumed. Built machine by machine, each from a graph of that machine
/// alone, so that neither the fleet's allocation graph nor every machine's topology is ever
/// held whole, and with one shared copy of each repeated string ([`Interner`]): the first
/// load's memory peak. Compose files are kept when `snapshot` is given, else only their blob
/// ids.
pub fn view_of(fleet: Fleet, snapshot: Option<&Snapshot>) -> FleetView {
    let summary = fleet.summary();
    let revision = fleet.revision.as_ref().map(|r| RevisionView {
        commit: r.id.to_string(),
        short_commit: r.short_id.clone(),
        summary: r.summary.clone(),
        committed_at: rfc3339_secs(r.time),
    });
    // Each finding once, shared by its machine's and its deployments' lists.
    let finding_views: Vec<Arc<FindingView>> = fleet
        .findings
        .iter()
        .map(|f| Arc::new(finding_view(f)))
        .collect();
    let mut by_deployment: FxHashMap<&str, Vec<Arc<FindingView>>> = FxHashMap::default();
    let mut by_machine: FxHashMap<&str, Vec<Arc<FindingView>>> = FxHashMap::default();
    for (finding, view) in fleet.findings.iter().zip(&finding_views) {
        for id in &finding.deployments {
            by_deployment
                .entry(id.as_str())
                .or_default()
                .push(Arc::clone(view));
        }
        // As `Fleet::findings_for_machine`: the findings whose machine it is.
        if let Some(machine) = &finding.machine {
            by_machine
                .entry(machine.as_str())
                .or_default()
                .push(Arc::clone(view));
        }
    }

    let mut machines = Vec::with_capacity(fleet.machines.len());
    let mut deployments = Vec::with_capacity(fleet.deployments.len());
    let mut shared = Interner::default();
    for topology in fleet.each_machine_topology() {
        let name = topology.machine;
        let machine_name = shared.of(&name);
        let shared_inventory = fleet.machines.get(&name).and_then(|m| m.inventory.clone());
        let inventory = shared_inventory.as_deref();
        // Not `collect`ed: collecting in place would keep the summaries' allocation, twenty
        // times the size of the pointers (15 MB at 20,000 machines).
        let mut briefs: Vec<Arc<DeploymentBrief>> = Vec::with_capacity(topology.deployments.len());
        briefs.extend(
            topology
                .deployments
                .into_iter()
                .map(|s| Arc::new(brief(&fleet, &machine_name, s, &mut shared))),
        );
        let free_gpus_by_numa = match (inventory, topology.free_by_numa) {
            (Some(inventory), Some(free)) if !inventory.numa_domains.is_empty() => Some(
                inventory
                    .numa_domains
                    .iter()
                    .zip(free)
                    .enumerate()
                    .map(|(domain, (gpus, free))| NumaFree {
                        domain,
                        gpus: gpus.clone(),
                        free,
                    })
                    .collect(),
            ),
            _ => None,
        };
        let findings = by_machine.remove(name.as_str()).unwrap_or_default();
        for brief in &briefs {
            let id = topology::compose::DeploymentId::new(name.clone(), brief.port);
            if let Some(parsed) = fleet.deployments.get(&id) {
                deployments.push(entry(snapshot, parsed, Arc::clone(brief), &by_deployment));
            }
        }
        machines.push(MachineTopology {
            has_inventory: inventory.is_some(),
            machine: name,
            gpu_count: topology.gpu_count,
            gpu_model: topology.gpu_model.map(|m| shared.of(&m)),
            gpu_memory_gb: topology.gpu_memory_gb,
            interconnect: topology.interconnect.map(|i| i.as_str()),
            gpus_used: topology.gpus_used.iter().map(|g| shared.of(g)).collect(),
            free_gpus: topology.free_gpus,
            free_gpus_by_numa,
            unpinned_gpus: topology.unpinned_gpus,
            gpu_holders: topology
                .gpu_holders
                .into_iter()
                .map(|held| GpuHolders {
                    gpu: shared.of(&held.gpu),
                    holders: held
                        .holders
                        .iter()
                        .map(|h| shared.of(&h.to_string()))
                        .collect(),
                })
                .collect(),
            deployments: briefs,
            finding_counts: counts(&findings),
            findings,
            inventory: shared_inventory.clone(),
        });
    }
    let machines = Machines::new(machines);
    let deployments = Deployments::new(deployments);

    // Grouped by model path, else model name.
    let mut groups: BTreeMap<String, Vec<Arc<DeploymentBrief>>> = BTreeMap::new();
    for entry in deployments.values() {
        let d: &DeploymentBrief = &entry.brief;
        let key = d
            .model_path
            .as_deref()
            .or(d.model_name.as_deref())
            .unwrap_or("(unknown)")
            .to_owned();
        groups
            .entry(key)
            .or_default()
            .push(Arc::clone(&entry.brief));
    }
    let models = groups
        .into_iter()
        .map(|(model, deployments)| {
            let mut model_names: Vec<String> = deployments
                .iter()
                .filter_map(|d| d.model_name.as_deref().map(str::to_owned))
                .collect();
            model_names.sort();
            model_names.dedup();
            ModelDeployments {
                model,
                model_names,
                deployment_count: deployments.len(),
                total_gpus: deployments.iter().map(|d| d.gpus.len()).sum(),
                deployments,
                deployments_left_out: None,
            }
        })
        .collect();

    let repository_templates = fleet
        .templates
        .iter()
        .map(|entry| entry.name().to_owned())
        .collect();
    FleetView {
        revision,
        counts: FindingCounts {
            errors: summary.errors,
            warnings: summary.warnings,
            infos: summary.infos,
        },
        machines,
        deployments,
        models,
        repository_templates,
        blob_source: None,
    }
}

/// One shared copy of each string the view repeats (see [`SharedText`]); lives for one build.
#[derive(Default)]
struct Interner(rustc_hash::FxHashSet<SharedText>);

impl Interner {
    fn of(&mut self, text: &str) -> SharedText {
        if let Some(known) = self.0.get(text) {
            return Arc::clone(known);
        }
        let new: SharedText = Arc::from(text);
        self.0.insert(Arc::clone(&new));
        new
    }
}

fn brief(
    fleet: &Fleet,
    machine: &SharedText,
    summary: DeploymentSummary,
    shared: &mut Interner,
) -> DeploymentBrief {
    let id = topology::compose::DeploymentId::new(&**machine, summary.port);
    let image = fleet
        .deployments
        .get(&id)
        .and_then(|d| d.main_service())
        .and_then(|s| s.image.as_deref())
        .map(|image| shared.of(image));
    DeploymentBrief {
        id: summary.id,
        machine: Arc::clone(machine),
        port: summary.port,
        model_name: summary.model_name.map(|m| shared.of(&m)),
        model_path: summary.model_path.map(|m| shared.of(&m)),
        tensor_parallel: summary.tp,
        pipeline_parallel: summary.pp,
        data_parallel: summary.dp,
        gpus: summary.gpus.iter().map(|g| shared.of(g)).collect(),
        gpu_claim: shared.of(&summary.gpu_claim),
        published_ports: summary.ports.into(),
        services: summary.services.iter().map(|s| shared.of(s)).collect(),
        image,
        server: summary.server.map(|s| shared.of(s.as_str())),
    }
}

fn entry(
    snapshot: Option<&Snapshot>,
    parsed: &Arc<topology::compose::Deployment>,
    brief: Arc<DeploymentBrief>,
    findings: &FxHashMap<&str, Vec<Arc<FindingView>>>,
) -> DeploymentEntry {
    // Read generously, return at most MAX_COMPOSE_TEXT.
    let compose_text = snapshot.and_then(|snapshot| {
        snapshot
            .read(&parsed.compose_path, 16 * 1024 * 1024)
            .ok()
            .map(|bytes| cut(&bytes))
    });
    DeploymentEntry {
        findings: findings.get(brief.id.as_str()).cloned().unwrap_or_default(),
        brief,
        parsed: Arc::clone(parsed),
        compose_text,
    }
}
