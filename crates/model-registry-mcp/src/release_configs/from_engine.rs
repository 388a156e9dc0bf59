//! Turns the topology engine's analysis of a snapshot into a [`FleetView`], once per revision.

use std::collections::BTreeMap;
use std::path::Path;

use topology::Finding;
use topology::engine::{DeploymentSummary, Engine, Fleet};
use topology::repo::Snapshot;

use super::state::rfc3339_secs;
use super::view::{
    DeploymentBrief, FindingCounts, FindingView, FleetView, GpuHolders, MachineTopology,
    ModelDeployments, NumaFree, PortView, ReleaseConfigDetail, RevisionView, ServiceView,
};

/// The compose file text returned by get_release_config is cut here.
const MAX_COMPOSE_TEXT: usize = 64 * 1024;

/// The long-lived engine (its parse cache survives between revisions).
#[derive(Default)]
pub struct EngineSlot(Engine);

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
            let mut view = view_of(&fleet, None);
            view.blob_source = Some(git_dir.to_path_buf());
            Ok(view)
        }
        None => Ok(view_of(&fleet, Some(&snapshot))),
    }
}

/// The compose file of `detail` as `(text, truncated)`: as kept, or read from the Git directory
/// the view names. `(None, false)` when it cannot be read (e.g. the mirror lost the object).
pub fn compose_text(view: &FleetView, detail: &ReleaseConfigDetail) -> (Option<String>, bool) {
    let (Some(git_dir), Some(blob)) = (&view.blob_source, &detail.compose_blob) else {
        return (detail.compose_file.clone(), detail.compose_file_truncated);
    };
    // Through the engine's Git seam: only `topology::repo` touches git2.
    let read = || -> Result<Vec<u8>, String> {
        let id = topology::repo::ContentId::from_hex(blob)
            .ok_or_else(|| format!("`{blob}` is not a blob id"))?;
        let repository = topology::repo::Repository::open(git_dir).map_err(|e| e.to_string())?;
        repository
            .read_blob(&id, &detail.compose_path, MAX_COMPOSE_READ)
            .map_err(|e| e.to_string())
    };
    match read() {
        Ok(bytes) => cut(&bytes),
        Err(error) => {
            tracing::warn!(%error, path = %detail.compose_path, "compose file unreadable");
            (None, false)
        }
    }
}

/// Compose files larger than this are not read back at all (the engine's own
/// YAML size bound is 4 MiB).
const MAX_COMPOSE_READ: u64 = 4 << 20;

/// The text of `bytes`, cut at [`MAX_COMPOSE_TEXT`] on a character boundary.
fn cut(bytes: &[u8]) -> (Option<String>, bool) {
    let text = String::from_utf8_lossy(bytes);
    if text.len() > MAX_COMPOSE_TEXT {
        let mut end = MAX_COMPOSE_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        (Some(text.get(..end).unwrap_or_default().to_owned()), true)
    } else {
        (Some(text.into_owned()), false)
    }
}

fn finding_view(finding: &Finding) -> FindingView {
    FindingView {
        code: finding.rule.code().to_owned(),
        severity: finding.severity.as_str().to_owned(),
        message: finding.message.clone(),
        location: finding.location.to_string(),
        deployments: finding.deployments.clone(),
        related: finding
            .related
            .iter()
            .map(|r| format!("{}: {}", r.location, r.message))
            .collect(),
    }
}

fn counts(findings: &[FindingView]) -> FindingCounts {
    let mut counts = FindingCounts::default();
    for finding in findings {
        match finding.severity.as_str() {
            "error" => counts.errors += 1,
            "warning" => counts.warnings += 1,
            _ => counts.infos += 1,
        }
    }
    counts
}

/// The view of `fleet`; compose files are kept when `snapshot` is given, else only their blob ids.
pub fn view_of(fleet: &Fleet, snapshot: Option<&Snapshot>) -> FleetView {
    let summary = fleet.summary();
    let revision = fleet.revision.as_ref().map(|r| RevisionView {
        commit: r.id.to_string(),
        short_commit: r.short_id.clone(),
        summary: r.summary.clone(),
        committed_at: rfc3339_secs(r.time),
    });

    // Findings by deployment id, in one pass.
    let mut by_deployment: BTreeMap<&str, Vec<FindingView>> = BTreeMap::new();
    for finding in &fleet.findings {
        for id in &finding.deployments {
            by_deployment
                .entry(id.as_str())
                .or_default()
                .push(finding_view(finding));
        }
    }

    let mut machines = BTreeMap::new();
    let mut deployments = BTreeMap::new();
    for topology in fleet.topology() {
        let name = topology.machine.clone();
        let inventory = fleet.machines.get(&name).and_then(|m| m.inventory.as_ref());
        let briefs: Vec<DeploymentBrief> = topology
            .deployments
            .iter()
            .map(|s| brief(fleet, &name, s))
            .collect();
        let free_gpus_by_numa = match (inventory, &topology.free_by_numa) {
            (Some(inventory), Some(free)) if !inventory.numa_domains.is_empty() => Some(
                inventory
                    .numa_domains
                    .iter()
                    .zip(free)
                    .enumerate()
                    .map(|(domain, (gpus, free))| NumaFree {
                        domain,
                        gpus: gpus.clone(),
                        free: free.clone(),
                    })
                    .collect(),
            ),
            _ => None,
        };
        let findings: Vec<FindingView> = fleet
            .findings_for_machine(&name)
            .map(finding_view)
            .collect();
        for brief in &briefs {
            if let Some(deployment) = fleet.deployments.get(&topology::compose::DeploymentId::new(
                name.clone(),
                brief.port,
            )) {
                deployments.insert(
                    (name.clone(), brief.port),
                    detail(snapshot, deployment, brief.clone(), &by_deployment),
                );
            }
        }
        machines.insert(
            name.clone(),
            MachineTopology {
                machine: name,
                has_inventory: inventory.is_some(),
                gpu_count: topology.gpu_count,
                gpu_model: topology.gpu_model,
                gpu_memory_gb: topology.gpu_memory_gb,
                interconnect: topology.interconnect.map(|i| i.as_str().to_owned()),
                gpus_used: topology.gpus_used,
                free_gpus: topology.free_gpus,
                free_gpus_by_numa,
                unpinned_gpus: topology.unpinned_gpus,
                gpu_holders: topology
                    .gpu_holders
                    .into_iter()
                    .map(|(gpu, holders)| GpuHolders { gpu, holders })
                    .collect(),
                deployments: briefs,
                finding_counts: counts(&findings),
                findings,
            },
        );
    }

    // Grouped by model path, else model name.
    let mut groups: BTreeMap<String, Vec<DeploymentBrief>> = BTreeMap::new();
    for detail in deployments.values() {
        let d: &DeploymentBrief = &detail.deployment;
        let key = d
            .model_path
            .clone()
            .or_else(|| d.model_name.clone())
            .unwrap_or_else(|| "(unknown)".to_owned());
        groups.entry(key).or_default().push(d.clone());
    }
    let models = groups
        .into_iter()
        .map(|(model, deployments)| {
            let mut model_names: Vec<String> = deployments
                .iter()
                .filter_map(|d| d.model_name.clone())
                .collect();
            model_names.sort();
            model_names.dedup();
            ModelDeployments {
                model,
                model_names,
                deployment_count: deployments.len(),
                total_gpus: deployments.iter().map(|d| d.gpus.len()).sum(),
                deployments,
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

fn brief(fleet: &Fleet, machine: &str, summary: &DeploymentSummary) -> DeploymentBrief {
    let id = topology::compose::DeploymentId::new(machine, summary.port);
    let image = fleet
        .deployments
        .get(&id)
        .and_then(|d| d.main_service())
        .and_then(|s| s.image.clone());
    DeploymentBrief {
        id: summary.id.clone(),
        machine: machine.to_owned(),
        port: summary.port,
        model_name: summary.model_name.clone(),
        model_path: summary.model_path.clone(),
        tensor_parallel: summary.tp,
        pipeline_parallel: summary.pp,
        data_parallel: summary.dp,
        gpus: summary.gpus.clone(),
        gpu_claim: summary.gpu_claim.clone(),
        published_ports: summary.ports.clone(),
        services: summary.services.clone(),
        image,
        server: summary.server.map(|s| s.as_str().to_owned()),
    }
}

fn detail(
    snapshot: Option<&Snapshot>,
    deployment: &topology::compose::Deployment,
    brief: DeploymentBrief,
    findings: &BTreeMap<&str, Vec<FindingView>>,
) -> ReleaseConfigDetail {
    let services = deployment
        .services
        .iter()
        .map(|s| ServiceView {
            name: s.name.clone(),
            image: s.image.clone(),
            gpu_request: s.gpus.describe(),
            host_gpus: s.host_gpus.clone(),
            tensor_parallel: s.tensor_parallel,
            pipeline_parallel: s.pipeline_parallel,
            data_parallel: s.data_parallel,
            model_name: s.model_name.clone(),
            model_path: s.model_path.clone(),
            params_b: s.params_b,
            dtype: s.dtype.clone(),
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
    // Read generously, return at most MAX_COMPOSE_TEXT.
    let (compose_file, compose_file_truncated) = match snapshot {
        Some(snapshot) => match snapshot.read(&deployment.compose_path, 16 * 1024 * 1024) {
            Ok(bytes) => cut(&bytes),
            Err(_) => (None, false),
        },
        None => (None, false),
    };
    let compose_blob = match snapshot {
        Some(_) => None,
        None => deployment
            .content
            .as_ref()
            .map(|(compose, _env)| compose.clone()),
    };
    ReleaseConfigDetail {
        findings: findings.get(brief.id.as_str()).cloned().unwrap_or_default(),
        deployment: brief,
        compose_path: deployment.compose_path.clone(),
        env_path: deployment.env_path.clone(),
        services,
        compose_file,
        compose_file_truncated,
        compose_blob,
    }
}
