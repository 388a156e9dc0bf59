//! Release-config tools: the production GPU fleet as committed to the release-config repository.
//! Read-only views; production changes go through `propose_release_config` (a pull request).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use registry_client::Page;

use super::{Render, ToolError, ToolSpec, effective_limit, fleet_tool, tool};
use crate::catalog::{CatalogEntry, ToolClass, Toolset, entry};
use crate::context::Ctx;
use crate::registry::{BULK_BUDGET_BYTES, LIMIT_NAME, Paging};
use crate::release_configs::from_engine;
use crate::release_configs::state::Answer;
use crate::release_configs::view::{
    DeploymentBrief, FleetView, MachineSummary, MachineTopology, ModelDeployments,
    ReleaseConfigDetail, SourceInfo, closest,
};
use crate::templates;

/// This group's rows of the tool catalog (`crate::catalog`), in the contract's order.
pub const CATALOG: &[CatalogEntry] = &[
    entry(
        "list_release_configs",
        Toolset::ReleaseConfigs,
        ToolClass::Read,
    ),
    entry(
        "get_release_config",
        Toolset::ReleaseConfigs,
        ToolClass::Read,
    ),
    entry(
        "get_machine_topology",
        Toolset::ReleaseConfigs,
        ToolClass::Read,
    ),
    entry(
        "get_models_by_deployment",
        Toolset::ReleaseConfigs,
        ToolClass::Read,
    ),
    entry(
        "list_docker_templates",
        Toolset::ReleaseConfigs,
        ToolClass::Read,
    ),
];

pub fn tools() -> Vec<ToolSpec> {
    vec![
        fleet_tool(
            "list_release_configs",
            "List production deployments",
            "PRODUCTION deployments as committed (release-config repository): a row per \
             `machine:port` (model, TP/PP/DP, GPUs, ports). Filter by `machine`, `model_name` \
             (substring): 'where does model X run in production?'. Not list_deployments (LOCAL). \
             Change production with propose_release_config.",
            list_release_configs,
        ),
        fleet_tool(
            "get_release_config",
            "Get one production deployment",
            "One PRODUCTION deployment by machine and host `port` (its port directory): per \
             service image, GPUs, parallelism, model, memory utilisation, ports; findings; the \
             committed compose file. LOCAL containers: get_deployment.",
            get_release_config,
        ),
        fleet_tool(
            "get_machine_topology",
            "Production GPU map",
            "GPU map of the PRODUCTION machines: fleet totals; per machine GPU count and model, \
             used and free GPUs (also per NUMA domain), ports, finding counts. `machine` (or \
             `detail`) adds each GPU's holders, deployments and findings. Placing: \
             find_placement. Not LOCAL containers.",
            get_machine_topology,
        ),
        fleet_tool(
            "get_models_by_deployment",
            "Production deployments by model",
            "PRODUCTION deployments grouped by model path (or name): for each model, where it \
             runs (`machine:port`) and on how many GPUs. Use to see how widely a model is \
             deployed. LOCAL containers: list_deployments.",
            get_models_by_deployment,
        ),
        tool(
            "list_docker_templates",
            "List proposal templates",
            "List the docker-compose templates propose_release_config can render (its \
             `template_name`): the repository's templates/ first, then the server's own, each \
             with its origin and whether it is in effect.",
            list_docker_templates,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Parameters

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListReleaseConfigsParams {
    /// Only this machine (exact name, e.g. `gpu-a100-01`).
    #[serde(default)]
    pub machine: Option<String>,
    /// Substring of the model name or path (any case).
    #[serde(default)]
    pub model_name: Option<String>,
    /// Most rows (cap REGISTRY_MAX_RESULTS).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetReleaseConfigParams {
    /// Machine name, e.g. `gpu-a100-01`.
    pub machine: String,
    /// Host port of the deployment (its port directory), e.g. 8000.
    pub port: u16,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetMachineTopologyParams {
    /// One machine, in full; leave out for every machine.
    #[serde(default)]
    pub machine: Option<String>,
    /// Every machine of the page in full.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detail: bool,
    /// Most machines (cap REGISTRY_MAX_RESULTS).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetModelsByDeploymentParams {
    /// Most models (cap REGISTRY_MAX_RESULTS).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDockerTemplatesParams {}

// ---------------------------------------------------------------------------------------------
// Outputs

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListReleaseConfigsOutput {
    pub source: SourceInfo,
    pub deployments: Vec<DeploymentBrief>,
    /// `total`: deployments matching the filters.
    #[serde(flatten)]
    pub paging: Paging,
    /// True when more rows exist than were returned.
    pub truncated: bool,
    /// How to see the rest, when truncated.
    pub hint: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GetReleaseConfigOutput {
    pub source: SourceInfo,
    pub release_config: ReleaseConfigDetail,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FleetTotals {
    pub machines: usize,
    /// GPUs of machines with an inventory.
    pub gpus: u64,
    pub gpus_used: u64,
    /// Free GPUs of machines with an inventory.
    pub gpus_free: u64,
    /// Machines without `machine.yaml` (their capacity is unknown).
    pub machines_without_inventory: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GetMachineTopologyOutput {
    pub source: SourceInfo,
    /// Totals of the whole fleet.
    pub fleet: FleetTotals,
    pub machines: Vec<MachineEntry>,
    #[serde(flatten)]
    pub paging: Paging,
    pub truncated: bool,
    pub hint: Option<String>,
}

/// A machine of get_machine_topology's answer: its line, or all of it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum MachineEntry {
    Summary(MachineSummary),
    Detail(MachineTopology),
}

impl MachineEntry {
    /// The machine's line of the text rendering.
    fn line(&self) -> String {
        let (machine, count, model, used, free, deployments, errors) = match self {
            MachineEntry::Summary(m) => (
                &m.machine,
                m.gpu_count,
                &m.gpu_model,
                &m.gpus_used,
                &m.free_gpus,
                m.deployment_ports.len(),
                m.finding_counts.errors,
            ),
            MachineEntry::Detail(m) => (
                &m.machine,
                m.gpu_count,
                &m.gpu_model,
                &m.gpus_used,
                &m.free_gpus,
                m.deployments.len(),
                m.finding_counts.errors,
            ),
        };
        let free = free.as_ref().map_or_else(
            || "unknown (no inventory)".to_owned(),
            |free| {
                let ids: Vec<String> = free.iter().map(u32::to_string).collect();
                format!("[{}]", ids.join(","))
            },
        );
        format!(
            "{machine}: {} x {}, used [{}], free {free}, {deployments} deployment(s), {errors} error(s)",
            count.map_or_else(|| "?".to_owned(), |c| c.to_string()),
            model.as_deref().unwrap_or("GPU"),
            used.join(","),
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GetModelsByDeploymentOutput {
    pub source: SourceInfo,
    pub models: Vec<ModelDeployments>,
    #[serde(flatten)]
    pub paging: Paging,
    pub truncated: bool,
    pub hint: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TemplateInfo {
    /// What to pass as `template_name` (file name without `.yml.j2`).
    pub name: String,
    /// `repository` (the release-config repository's templates/) or `shipped` (built into this server).
    pub origin: String,
    /// Path in the repository, or in this project for shipped templates.
    pub path: String,
    /// False for a shipped template that the repository overrides with its own of the same name.
    pub in_effect: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListDockerTemplatesOutput {
    /// Null when the repository could not be read.
    pub source: Option<SourceInfo>,
    /// Why repository templates are missing.
    pub repository_error: Option<String>,
    pub templates: Vec<TemplateInfo>,
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// A name as shown in a message: quoted, control characters escaped, at most 64 characters.
pub(crate) fn shown(name: &str) -> String {
    let short: String = name.chars().take(64).collect();
    if short.len() < name.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

/// Unknown machine: name it and the closest existing names. Never touches the filesystem.
pub fn unknown_machine(view: &FleetView, machine: &str) -> String {
    if view.machines.is_empty() {
        return format!(
            "unknown machine {}: the release-config repository defines no machines",
            shown(machine)
        );
    }
    let near = closest(machine, view.machines.names(), 3);
    format!(
        "unknown machine {}; closest machine names: {} ({} machines in total)",
        shown(machine),
        near.join(", "),
        view.machines.len()
    )
}

fn machine_of<'v>(view: &'v FleetView, machine: &str) -> Result<&'v MachineTopology, ToolError> {
    view.machines
        .get(machine)
        .ok_or_else(|| ToolError(unknown_machine(view, machine)))
}

fn list_release_configs(
    ctx: &Ctx,
    answer: &Answer,
    params: ListReleaseConfigsParams,
) -> Result<ListReleaseConfigsOutput, ToolError> {
    let view = &answer.view;
    if let Some(machine) = &params.machine {
        machine_of(view, machine)?;
    }
    let needle = params
        .model_name
        .as_deref()
        .map(str::to_lowercase)
        .filter(|n| !n.is_empty());
    let entries = match &params.machine {
        Some(machine) => view.deployments.of_machine(machine),
        None => view.deployments.all(),
    };
    let matching: Vec<&DeploymentBrief> = entries
        .iter()
        .map(|entry| &*entry.brief)
        .filter(|d| {
            needle.as_deref().is_none_or(|needle| {
                [&d.model_name, &d.model_path]
                    .into_iter()
                    .flatten()
                    .any(|text| text.to_lowercase().contains(needle))
            })
        })
        .collect();
    let (deployments, paging) = window(
        ctx,
        "list_release_configs",
        &params,
        params.offset,
        params.limit,
        matching,
    );
    Ok(ListReleaseConfigsOutput {
        source: answer.source.clone(),
        truncated: paging.has_more,
        hint: hint(&paging, "narrow with `machine` or `model_name`"),
        deployments,
        paging,
    })
}

fn get_release_config(
    _ctx: &Ctx,
    answer: &Answer,
    params: GetReleaseConfigParams,
) -> Result<GetReleaseConfigOutput, ToolError> {
    let view = &answer.view;
    let machine = machine_of(view, &params.machine)?;
    let Some(entry) = view.deployments.get(&params.machine, params.port) else {
        let ports: Vec<String> = machine
            .deployments
            .iter()
            .map(|d| d.port.to_string())
            .collect();
        let message = if ports.is_empty() {
            format!(
                "no deployment at {}:{}; machine {} has no deployments",
                params.machine, params.port, params.machine
            )
        } else {
            let near: BTreeSet<u16> = {
                let mut by_distance: Vec<u16> =
                    machine.deployments.iter().map(|d| d.port).collect();
                by_distance.sort_by_key(|p| p.abs_diff(params.port));
                by_distance.into_iter().take(3).collect()
            };
            let near: Vec<String> = near.iter().map(u16::to_string).collect();
            format!(
                "no deployment at {}:{}; closest ports on {}: {} (all ports: {})",
                params.machine,
                params.port,
                params.machine,
                near.join(", "),
                ports.join(", ")
            )
        };
        return Err(ToolError(message));
    };
    Ok(GetReleaseConfigOutput {
        source: answer.source.clone(),
        release_config: from_engine::detail(view, entry),
    })
}

/// The page of `all` from `offset`: at most `limit` items (capped at REGISTRY_MAX_RESULTS) and
/// no more than fit the size budget, with the paging facts and the call for the next page.
/// An item of a page that can be made to fit an answer's budget on its own, so that a page
/// always makes progress: when even the first item is too big, it comes summarised.
trait Fit: Sized {
    /// The item within about `budget` bytes of JSON (as it is, if nothing can be left out).
    fn fit(self, budget: usize) -> Self {
        let _ = budget;
        self
    }
}

impl Fit for DeploymentBrief {}

impl Fit for MachineEntry {
    fn fit(self, _budget: usize) -> Self {
        match self {
            MachineEntry::Detail(machine) => MachineEntry::Summary(MachineSummary::of(&machine)),
            summary => summary,
        }
    }
}

impl Fit for ModelDeployments {
    fn fit(mut self, budget: usize) -> Self {
        let total = self.deployments.len();
        let sizes: Vec<usize> = self
            .deployments
            .iter()
            .map(|d| serde_json::to_string(d).map_or(usize::MAX, |s| s.len() + 1))
            .collect();
        // Half the budget for the deployments shown: the rest is the model's own fields.
        let kept = fit_count(&sizes, budget / 2);
        if kept < total {
            self.deployments.truncate(kept);
            let name = self.model_names.first().unwrap_or(&self.model);
            self.deployments_left_out = Some(format!(
                "{} of {total} deployments left out to keep the answer under {LIMIT_NAME}; list \
                 them all with {}",
                total - kept,
                crate::registry::next_call(
                    "list_release_configs",
                    &serde_json::json!({"model_name": name}),
                    0
                )
            ));
        }
        self
    }
}

fn window<T: Clone + Serialize + Fit, P: Serialize>(
    ctx: &Ctx,
    tool: &str,
    params: &P,
    offset: Option<u32>,
    limit: Option<u32>,
    all: Vec<&T>,
) -> (Vec<T>, Paging) {
    let total = all.len();
    window_of(
        ctx.settings.max_results,
        tool,
        params,
        offset,
        limit,
        total,
        |offset, limit| all.into_iter().skip(offset).take(limit).cloned().collect(),
    )
}

/// [`window`] over `total` items of which `page(offset, limit)` builds the ones asked for.
fn window_of<T: Serialize + Fit, P: Serialize>(
    max_results: u32,
    tool: &str,
    params: &P,
    offset: Option<u32>,
    limit: Option<u32>,
    total: usize,
    page: impl FnOnce(usize, usize) -> Vec<T>,
) -> (Vec<T>, Paging) {
    let limit = effective_limit(limit, max_results);
    let offset = offset.unwrap_or(0);
    let items = page(usize::try_from(offset).unwrap_or(usize::MAX), limit);
    let sizes: Vec<usize> = items
        .iter()
        .map(|item| serde_json::to_string(item).map_or(usize::MAX, |s| s.len() + 1))
        .collect();
    let page = Page {
        items,
        total: total as u64,
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
        offset,
    };
    let mut kept_count = fit_count(&sizes, BULK_BUDGET_BYTES);
    if kept_count == 0 && !page.items.is_empty() {
        kept_count = 1;
    }
    let paging = Paging::of(tool, params, &page, kept_count);
    let mut kept = page.items;
    kept.truncate(kept_count);
    // Never an empty page that points at itself: a first item too big comes summarised.
    if sizes.first().is_some_and(|size| *size > BULK_BUDGET_BYTES) {
        kept = kept
            .into_iter()
            .map(|item| item.fit(BULK_BUDGET_BYTES))
            .collect();
    }
    (kept, paging)
}

/// How many items of these JSON sizes fit the budget, in order (as [`crate::registry::fit`]).
fn fit_count(sizes: &[usize], budget: usize) -> usize {
    let mut used = 0usize;
    sizes
        .iter()
        .take_while(|size| {
            used = used.saturating_add(**size);
            used <= budget
        })
        .count()
}

/// What to do when rows are left: continue with the next call, or narrow the question.
fn hint(paging: &Paging, narrow: &str) -> Option<String> {
    let call = paging.next_call.as_ref()?;
    let left = paging
        .total
        .saturating_sub(u64::from(paging.offset) + paging.returned as u64);
    Some(format!("{left} more; continue with {call}, or {narrow}"))
}

pub(crate) fn fleet_totals(view: &FleetView) -> FleetTotals {
    let mut totals = FleetTotals {
        machines: view.machines.len(),
        gpus: 0,
        gpus_used: 0,
        gpus_free: 0,
        machines_without_inventory: 0,
    };
    for machine in view.machines.values() {
        match (machine.gpu_count, &machine.free_gpus) {
            (Some(count), Some(free)) => {
                totals.gpus += u64::from(count);
                totals.gpus_free += free.len() as u64;
            }
            _ => totals.machines_without_inventory += 1,
        }
        totals.gpus_used += machine.gpus_used.len() as u64;
    }
    totals
}

fn get_machine_topology(
    ctx: &Ctx,
    answer: &Answer,
    params: GetMachineTopologyParams,
) -> Result<GetMachineTopologyOutput, ToolError> {
    let view = &answer.view;
    let fleet = fleet_totals(view);
    if let Some(machine) = &params.machine {
        let topology = MachineEntry::Detail(machine_of(view, machine)?.clone());
        let (machines, paging) = window(
            ctx,
            "get_machine_topology",
            &params,
            None,
            None,
            vec![&topology],
        );
        return Ok(GetMachineTopologyOutput {
            source: answer.source.clone(),
            fleet,
            machines,
            truncated: false,
            hint: None,
            paging,
        });
    }
    let entry = |m: &MachineTopology| {
        if params.detail {
            MachineEntry::Detail(m.clone())
        } else {
            MachineEntry::Summary(MachineSummary::of(m))
        }
    };
    let (machines, paging) = window_of(
        ctx.settings.max_results,
        "get_machine_topology",
        &params,
        params.offset,
        params.limit,
        view.machines.len(),
        |offset, limit| {
            view.machines
                .values()
                .skip(offset)
                .take(limit)
                .map(entry)
                .collect()
        },
    );
    Ok(GetMachineTopologyOutput {
        source: answer.source.clone(),
        fleet,
        truncated: paging.has_more,
        hint: hint(&paging, "ask for one machine with `machine`"),
        machines,
        paging,
    })
}

fn get_models_by_deployment(
    ctx: &Ctx,
    answer: &Answer,
    params: GetModelsByDeploymentParams,
) -> Result<GetModelsByDeploymentOutput, ToolError> {
    let (models, paging) = window(
        ctx,
        "get_models_by_deployment",
        &params,
        params.offset,
        params.limit,
        answer.view.models.iter().collect(),
    );
    Ok(GetModelsByDeploymentOutput {
        source: answer.source.clone(),
        truncated: paging.has_more,
        hint: hint(&paging, "use list_release_configs with `model_name`"),
        models,
        paging,
    })
}

async fn list_docker_templates(
    ctx: Ctx,
    _params: ListDockerTemplatesParams,
) -> Result<ListDockerTemplatesOutput, ToolError> {
    let (source, repository_error, repository_templates) = match ctx.release_configs.get().await {
        Ok(answer) => {
            let names = answer.view.repository_templates.clone();
            (Some(answer.source), None, names)
        }
        Err(error) => (None, Some(error), Vec::new()),
    };
    let mut templates: Vec<TemplateInfo> = repository_templates
        .iter()
        .map(|file| TemplateInfo {
            name: templates::template_name(file).to_owned(),
            origin: "repository".to_owned(),
            path: format!("templates/{file}"),
            in_effect: true,
        })
        .collect();
    for (file, _) in templates::SHIPPED {
        let name = templates::template_name(file);
        let overridden = templates
            .iter()
            .any(|t| t.origin == "repository" && t.name == name);
        templates.push(TemplateInfo {
            name: name.to_owned(),
            origin: "shipped".to_owned(),
            path: format!("templates/{file}"),
            in_effect: !overridden,
        });
    }
    Ok(ListDockerTemplatesOutput {
        source,
        repository_error,
        templates,
    })
}

// ---------------------------------------------------------------------------------------------
// Text renderings

pub(crate) fn source_line(source: &SourceInfo) -> String {
    let commit = source.commit.as_ref().map_or_else(
        || "working directory".to_owned(),
        |c| format!("commit {} ({})", c.short_commit, c.summary),
    );
    let mut line = format!(
        "{} @ {} — {commit}, fetched {}",
        source.repository, source.branch, source.fetched_at
    );
    if let Some(reason) = &source.stale_reason {
        let _ = write!(line, "\nSTALE: last known state; refresh failed: {reason}");
    }
    line
}

fn brief_line(d: &DeploymentBrief) -> String {
    format!(
        "{} {} tp={} pp={} dp={} gpus=[{}]",
        d.id,
        d.model_name
            .as_deref()
            .or(d.model_path.as_deref())
            .unwrap_or("(model unknown)"),
        d.tensor_parallel,
        d.pipeline_parallel,
        d.data_parallel,
        d.gpus.join(",")
    )
}

impl Render for ListReleaseConfigsOutput {
    fn render(&self) -> String {
        let mut text = format!(
            "{}\n{} production deployment(s)",
            source_line(&self.source),
            self.paging.total
        );
        for d in &self.deployments {
            let _ = write!(text, "\n- {}", brief_line(d));
        }
        if let Some(hint) = &self.hint {
            let _ = write!(text, "\n({hint})");
        }
        text
    }
}

impl Render for GetReleaseConfigOutput {
    fn render(&self) -> String {
        let detail = &self.release_config;
        let mut text = format!(
            "{}\n{} ({})",
            source_line(&self.source),
            brief_line(&detail.deployment),
            detail.compose_path
        );
        for finding in &detail.findings {
            let _ = write!(
                text,
                "\n{} {}: {} at {}",
                finding.severity, finding.code, finding.message, finding.location
            );
        }
        text
    }
}

impl Render for GetMachineTopologyOutput {
    fn render(&self) -> String {
        let mut text = format!(
            "{}\n{} machine(s), {} GPUs known, {} used, {} free",
            source_line(&self.source),
            self.fleet.machines,
            self.fleet.gpus,
            self.fleet.gpus_used,
            self.fleet.gpus_free
        );
        for machine in &self.machines {
            let _ = write!(text, "\n{}", machine.line());
        }
        if let Some(hint) = &self.hint {
            let _ = write!(text, "\n({hint})");
        }
        text
    }
}

impl Render for GetModelsByDeploymentOutput {
    fn render(&self) -> String {
        let mut text = format!(
            "{}\n{} model(s) in production",
            source_line(&self.source),
            self.paging.total
        );
        for model in &self.models {
            let ids: Vec<&str> = model.deployments.iter().map(|d| d.id.as_str()).collect();
            let _ = write!(
                text,
                "\n- {}: {} ({} GPUs)",
                model.model,
                ids.join(", "),
                model.total_gpus
            );
        }
        if let Some(hint) = &self.hint {
            let _ = write!(text, "\n({hint})");
        }
        text
    }
}

impl Render for ListDockerTemplatesOutput {
    fn render(&self) -> String {
        let mut text = String::from("templates for propose_release_config:");
        for t in &self.templates {
            let _ = write!(
                text,
                "\n- {} ({}, {}){}",
                t.name,
                t.origin,
                t.path,
                if t.in_effect {
                    ""
                } else {
                    " — overridden by the repository's template"
                }
            );
        }
        if let Some(error) = &self.repository_error {
            let _ = write!(text, "\nrepository templates unavailable: {error}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    fn brief(model: &str, machine: usize, port: u16) -> DeploymentBrief {
        DeploymentBrief {
            id: format!("m{machine}:{port}"),
            machine: format!("m{machine}").into(),
            port,
            model_name: Some(model.into()),
            model_path: Some(format!("/models/{model}").into()),
            tensor_parallel: 2,
            pipeline_parallel: 1,
            data_parallel: 1,
            gpus: Box::new(["0".into(), "1".into()]),
            gpu_claim: "GPUs 0,1".into(),
            published_ports: Box::new([port]),
            services: Box::new(["vllm".into()]),
            image: Some("vllm/vllm-openai:v0.8.5".into()),
            server: Some("vllm".into()),
        }
    }

    fn model(index: usize, deployments: usize) -> ModelDeployments {
        let name = format!("model-{index}");
        ModelDeployments {
            model: format!("/models/{name}"),
            model_names: vec![name.clone()],
            deployment_count: deployments,
            total_gpus: 2 * deployments,
            deployments: (0..deployments)
                .map(|d| Arc::new(brief(&name, d, 8000)))
                .collect(),
            deployments_left_out: None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Following `next_offset` from the first page visits every model exactly once and ends,
        /// whatever the sizes (a model with thousands of deployments included) and the limit;
        /// every page is within the budget.
        #[test]
        fn following_the_pages_visits_every_item_once_and_ends(
            counts in prop::collection::vec(prop_oneof![1usize..20, 300usize..2500], 1..12),
            limit in prop::option::of(1u32..10),
        ) {
            let models: Vec<ModelDeployments> =
                counts.iter().enumerate().map(|(i, n)| model(i, *n)).collect();
            let params = serde_json::json!({"limit": limit});
            let mut seen = Vec::new();
            let mut offset = None;
            for _ in 0..=models.len() {
                let (page, paging) = window_of(
                    100,
                    "get_models_by_deployment",
                    &params,
                    offset,
                    limit,
                    models.len(),
                    |offset, limit| models.iter().skip(offset).take(limit).cloned().collect(),
                );
                prop_assert!(!page.is_empty(), "an empty page at {offset:?}");
                let size = serde_json::to_string(&page).map_or(usize::MAX, |s| s.len());
                prop_assert!(size <= BULK_BUDGET_BYTES, "{size} bytes at {offset:?}");
                for item in &page {
                    if item.deployments.len() < item.deployment_count {
                        let left_out = item.deployments_left_out.as_deref().unwrap_or_default();
                        prop_assert!(left_out.contains("list_release_configs"), "{left_out}");
                    }
                    seen.push(item.model.clone());
                }
                match paging.next_offset {
                    Some(next) => {
                        prop_assert!(paging.next_call.is_some());
                        offset = Some(next);
                    }
                    None => break,
                }
            }
            let all: Vec<String> = models.iter().map(|m| m.model.clone()).collect();
            prop_assert_eq!(seen, all);
        }
    }
}
