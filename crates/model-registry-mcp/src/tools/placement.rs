//! `find_placement`: where a model could go in PRODUCTION, ranked, with reasons. The engine's
//! planner (`topology::placement`) over the analysed revision, with the GPUs that open
//! proposals claim left out. Read-only: it proposes nothing.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use registry_client::{Model, ModelFilter};
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use topology::compose::bytes_per_param;
use topology::placement::{
    MachineCapacity, ModelFacts, Neighbours, Placement, PlacementQuery, dtype_from_name,
    find_placement_in, parse_labels, plan_lines,
};
use topology::proposal::Claimed;

use super::proposals::pending_of;
use super::release_configs::{shown, source_line};
use super::{Render, ToolError, ToolSpec, tool};
use crate::catalog::{CatalogEntry, ToolClass, Toolset, entry};
use crate::context::Ctx;
use crate::registry::{BULK_BUDGET_BYTES, LIMIT_NAME};
use crate::release_configs::state::Pending;
use crate::release_configs::view::{FleetView, SourceInfo};

/// This group's row of the tool catalog: the one tool beyond the design.
pub const CATALOG: &[CatalogEntry] = &[entry(
    "find_placement",
    Toolset::ReleaseConfigs,
    ToolClass::Read,
)];

/// Placements returned when `limit` is not given.
const DEFAULT_PLACEMENTS: u32 = 5;
/// The smallest memory fraction the planner takes (below it nothing fits anyway).
const MIN_UTILIZATION: f64 = 0.01;
/// Deployments a placement lists in `neighbours` (the reasons count the rest).
const LISTED_NEIGHBOURS: usize = 20;
/// How long the registry (what it knows of a model) or GitHub (the open pull requests) may
/// take: a planning answer goes on without them, saying so.
const LOOKUP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest model name or path taken (as proposals take).
const MAX_MODEL_LEN: usize = 512;

pub fn tools() -> Vec<ToolSpec> {
    vec![tool(
        "find_placement",
        "Where a model fits in production",
        "Ranked PRODUCTION placements of a model: machine, GPU set, free port, reasons (worst \
         link, NUMA span, memory headroom, neighbours, open proposals' claims), why each ranks \
         lower. Then propose_release_config.",
        find_placement,
    )]
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FindPlacementParams {
    /// Name or path: size from its production labels or name.
    #[serde(default)]
    pub model: Option<String>,
    /// Billions of parameters.
    #[serde(default)]
    pub params_b: Option<f64>,
    /// bf16, fp8, awq, ... (default auto).
    #[serde(default)]
    pub dtype: Option<String>,
    /// Default: smallest that fits.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub tensor_parallel: Option<u32>,
    #[serde(default)]
    pub num_attention_heads: Option<u32>,
    #[serde(default)]
    pub num_kv_heads: Option<u32>,
    /// Substring, e.g. H100.
    #[serde(default)]
    pub gpu_model: Option<String>,
    #[serde(default)]
    pub min_memory_gb: Option<f64>,
    // Default 0.9.
    #[serde(default)]
    pub memory_utilization: Option<f64>,
    /// Machine labels, `key=value`, all required.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    /// Default 5.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FindPlacementOutput {
    pub source: SourceInfo,
    // The model's facts and where each came from.
    #[schemars(with = "Option<JsonObject>")]
    pub model: Option<ModelFacts>,
    /// Best first.
    #[schemars(with = "Vec<JsonObject>")]
    pub placements: Vec<Placement>,
    // Machines that could take it.
    pub candidates: usize,
    // Machines left out, by reason.
    pub excluded: BTreeMap<&'static str, usize>,
    pub warnings: Vec<String>,
}

/// The planner's query of `params`: every value checked, all problems at once.
fn query_of(params: &FindPlacementParams, max_results: u32) -> Result<PlacementQuery, ToolError> {
    let mut problems = Vec::new();
    let positive = |name: &str, value: Option<f64>, problems: &mut Vec<String>| {
        if let Some(value) = value
            && !(value.is_finite() && value > 0.0)
        {
            problems.push(format!("{name} must be a positive number, not {value}"));
        }
    };
    positive("params_b", params.params_b, &mut problems);
    positive("min_memory_gb", params.min_memory_gb, &mut problems);
    if let Some(utilization) = params.memory_utilization
        && !(MIN_UTILIZATION..=1.0).contains(&utilization)
    {
        problems.push(format!(
            "memory_utilization must be in [{MIN_UTILIZATION}, 1], not {utilization}"
        ));
    }
    if let Some(dtype) = &params.dtype
        && bytes_per_param(dtype).is_none()
    {
        problems.push(format!(
            "dtype {} is not known; known: fp32, bf16, fp16, auto, fp8, int8, int4, awq, gptq",
            shown(dtype)
        ));
    }
    for (name, value) in [
        ("tensor_parallel", params.tensor_parallel),
        ("num_attention_heads", params.num_attention_heads),
        ("num_kv_heads", params.num_kv_heads),
    ] {
        if value == Some(0) {
            problems.push(format!("{name} must be at least 1"));
        }
    }
    if params
        .model
        .as_ref()
        .is_some_and(|m| m.len() > MAX_MODEL_LEN)
    {
        problems.push(format!("model is longer than {MAX_MODEL_LEN} bytes"));
    }
    let (labels, wrong) = parse_labels(params.labels.iter().flatten().map(String::as_str));
    for label in wrong {
        problems.push(format!("label {} is not `key=value`", shown(label)));
    }
    if !problems.is_empty() {
        return Err(ToolError(format!(
            "invalid arguments for find_placement: {}",
            problems.join("; ")
        )));
    }
    Ok(PlacementQuery {
        tp: params.tensor_parallel,
        params_b: params.params_b,
        dtype: params.dtype.clone(),
        memory_utilization: params.memory_utilization,
        num_attention_heads: params.num_attention_heads,
        num_kv_heads: params.num_kv_heads,
        gpu_model: params.gpu_model.clone().filter(|m| !m.trim().is_empty()),
        min_memory_gb: params.min_memory_gb,
        labels,
        held_elsewhere: BTreeMap::new(),
        ports_held_elsewhere: BTreeMap::new(),
        limit: super::effective_limit(
            Some(params.limit.unwrap_or(DEFAULT_PLACEMENTS)),
            max_results,
        ),
    })
}

async fn find_placement(
    ctx: Ctx,
    params: FindPlacementParams,
) -> Result<FindPlacementOutput, ToolError> {
    let mut query = query_of(&params, ctx.settings.max_results)?;
    let answer = ctx.release_configs.get().await.map_err(ToolError)?;
    let view = &answer.view;
    let mut warnings = Vec::new();
    // The model's facts: production's labels, then the registry's record, then its name.
    let model = match params.model.as_deref() {
        Some(model) => {
            let mut facts =
                ModelFacts::in_production(model, view.deployments.values().map(|e| &*e.parsed));
            let complete = [
                query.params_b.or(facts.params_b).is_some(),
                query.dtype.is_some() || facts.dtype.is_some(),
                query
                    .num_attention_heads
                    .or(facts.num_attention_heads)
                    .is_some(),
                query.num_kv_heads.or(facts.num_kv_heads).is_some(),
            ]
            .iter()
            .all(|known| *known);
            if !complete {
                let lookup = registry_facts(&ctx, model, &mut warnings);
                match tokio::time::timeout(LOOKUP_DEADLINE, lookup).await {
                    Ok(Ok(Some((record, basis)))) => facts.supplement(&record, &basis),
                    Ok(Ok(None)) => {}
                    Ok(Err(error)) => warnings.push(format!(
                        "the registry's record of {} could not be read: {error}",
                        shown(model)
                    )),
                    Err(_) => warnings.push(format!(
                        "the registry did not say what it knows of {} within {} s; planned \
                         without it",
                        shown(model),
                        LOOKUP_DEADLINE.as_secs()
                    )),
                }
            }
            facts.estimate_from_name();
            facts.fill(&mut query);
            Some(facts)
        }
        None => None,
    };
    if query.params_b.is_none() {
        warnings.push(
            "the model's size is unknown (give params_b, or a model whose production labels or \
             name state it): memory is not checked"
                .to_owned(),
        );
    }
    // GPUs and ports of live claims are left out: every proposal this tool makes claims what it
    // takes before its branch exists. A claim is live while its proposal is open (with GitHub its
    // open pull request, else, or when GitHub cannot be asked, its unmerged branch) or young.
    // (propose_release_config also reads the open proposals' files, which catches a pull
    // request opened by hand without claims.)
    let pending = match ctx.github() {
        Ok(github) => match tokio::time::timeout(LOOKUP_DEADLINE, github.open_proposals()).await {
            Ok(Ok(open)) => pending_of(&open),
            Ok(Err(error)) => {
                warnings.push(format!(
                    "open pull requests were not listed ({error}): every unmerged proposal \
                     branch counts as open"
                ));
                Pending::Branches
            }
            Err(_) => {
                warnings.push(format!(
                    "GitHub did not list the open pull requests within {} s: every unmerged \
                     proposal branch counts as open",
                    LOOKUP_DEADLINE.as_secs()
                ));
                Pending::Branches
            }
        },
        Err(_) => Pending::Branches,
    };
    match ctx.release_configs.live_claims(pending).await {
        Ok(claims) => {
            for (claim, holder) in claims {
                match claim.claimed {
                    Claimed::Gpu(gpu) => {
                        query
                            .held_elsewhere
                            .entry(claim.machine)
                            .or_default()
                            .insert(gpu, holder);
                    }
                    Claimed::Port(port) => {
                        query
                            .ports_held_elsewhere
                            .entry(claim.machine)
                            .or_default()
                            .insert(port);
                    }
                }
            }
        }
        Err(error) => warnings.push(format!(
            "the claims of open proposals were not read ({error}): GPUs they hold may be offered"
        )),
    }
    let plan = find_placement_in(capacities(view), &query);
    let mut placements = plan.placements;
    for placement in &mut placements {
        placement.neighbours.truncate(LISTED_NEIGHBOURS);
    }
    // Half the bulk budget: the text rendering repeats each placement's reasons.
    let mut used = 0usize;
    let fitting = placements
        .iter()
        .take_while(|p| {
            used = used.saturating_add(serde_json::to_string(p).map_or(usize::MAX, |s| s.len()));
            used <= BULK_BUDGET_BYTES / 2
        })
        .count()
        .max(1);
    if fitting < placements.len() {
        warnings.push(format!(
            "{} placement(s) left out to keep the answer under {LIMIT_NAME}: ask with a smaller \
             limit, or narrow with labels or gpu_model",
            placements.len() - fitting
        ));
        placements.truncate(fitting);
    }
    Ok(FindPlacementOutput {
        source: answer.source.clone(),
        model,
        placements,
        candidates: plan.candidates,
        excluded: plan.excluded,
        warnings,
    })
}

/// What the registry's record of `model` (by name, or by storage path) says: its metadata's
/// `params_b` (or `num_parameters`), `num_attention_heads`, `num_key_value_heads` and
/// `dtype`, else its newest version's quantization. `None` without a registry or a record;
/// a metadata value of the wrong kind is left out with a warning (it is data, not trusted).
async fn registry_facts(
    ctx: &Ctx,
    model: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<(ModelFacts, String)>, String> {
    let Ok(registry) = crate::registry::client(ctx) else {
        return Ok(None);
    };
    let filter = ModelFilter {
        search: Some(model.to_owned()),
        limit: Some(50),
        ..ModelFilter::default()
    };
    let page = registry
        .list_models(&filter)
        .await
        .map_err(|e| crate::registry::failed(e).0)?;
    let wanted = model.trim().trim_end_matches('/').to_ascii_lowercase();
    let names_it = |record: &Model| {
        let path = record
            .storage_path
            .trim_end_matches('/')
            .to_ascii_lowercase();
        record.name.to_ascii_lowercase() == wanted
            || path == wanted
            || path.rsplit('/').next() == Some(wanted.as_str())
    };
    let Some(record) = page.items.iter().find(|record| names_it(record)) else {
        return Ok(None);
    };
    let metadata = &record.metadata;
    let mut wrong = |key: &str| {
        warnings.push(format!(
            "the registry's metadata `{key}` of model {} is not a usable number or dtype; \
             left out",
            shown(&record.name)
        ));
    };
    let number = |key: &str| {
        metadata
            .get(key)
            .map(|v| v.as_f64().filter(|n| n.is_finite() && *n > 0.0))
    };
    let mut facts = ModelFacts {
        model: model.to_owned(),
        ..ModelFacts::default()
    };
    match (number("params_b"), number("num_parameters")) {
        (Some(Some(billions)), _) => facts.params_b = Some(billions),
        (None, Some(Some(count))) if count >= 1e6 => facts.params_b = Some(count / 1e9),
        (Some(None), _) => wrong("params_b"),
        (None, Some(_)) => wrong("num_parameters"),
        (None, None) => {}
    }
    for (key, slot) in [
        ("num_attention_heads", &mut facts.num_attention_heads),
        ("num_key_value_heads", &mut facts.num_kv_heads),
    ] {
        match number(key) {
            Some(Some(n)) if n.fract() == 0.0 && n <= f64::from(u32::MAX) => {
                // Whole and in range: checked above.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let heads = n as u32;
                *slot = Some(heads);
            }
            Some(_) => wrong(key),
            None => {}
        }
    }
    match metadata
        .get("dtype")
        .map(|v| v.as_str().filter(|d| bytes_per_param(d).is_some()))
    {
        Some(Some(dtype)) => facts.dtype = Some(dtype.to_owned()),
        Some(None) => wrong("dtype"),
        None => {}
    }
    let mut basis = format!("the registry's record of model {}", shown(&record.name));
    if facts.dtype.is_none()
        && let Ok(version) = registry.get_latest_version(&record.name).await
        // `awq-int4`, `gptq-4bit`: the part that names a dtype.
        && let Some(dtype) = version.quantization.as_deref().and_then(dtype_from_name)
    {
        facts.dtype = Some(dtype.to_owned());
        let _ = write!(
            basis,
            " (dtype: the quantization of its version {})",
            shown(&version.version)
        );
    }
    Ok(Some((facts, basis)))
}

/// What the planner needs of each machine of the view.
fn capacities(view: &FleetView) -> impl Iterator<Item = MachineCapacity<'_>> {
    view.machines.values().map(|machine| {
        let neighbours: Neighbours<'_> = Box::new(move || {
            let ids = machine.deployments.iter().map(|d| d.id.clone()).collect();
            let ports = machine
                .deployments
                .iter()
                .flat_map(|d| std::iter::once(d.port).chain(d.published_ports.iter().copied()))
                .collect();
            (ids, ports)
        });
        MachineCapacity {
            name: &machine.machine,
            inventory: machine.inventory.as_deref(),
            free_gpus: Cow::Borrowed(machine.free_gpus.as_deref().unwrap_or_default()),
            unpinned: machine.unpinned_gpus,
            neighbours,
        }
    })
}

impl Render for FindPlacementOutput {
    fn render(&self) -> String {
        let mut text = source_line(&self.source);
        if let Some(model) = &self.model {
            let _ = write!(text, "\n{}", model.summary(&shown(&model.model)));
        }
        for line in plan_lines(&self.placements, self.candidates, &self.excluded) {
            let _ = write!(text, "\n{line}");
        }
        for warning in &self.warnings {
            let _ = write!(text, "\nwarning: {warning}");
        }
        if !self.placements.is_empty() {
            text.push_str(
                "\nPropose one with propose_release_config (machine, port, gpu_ids, \
                 tensor_parallel).",
            );
        }
        text
    }
}
