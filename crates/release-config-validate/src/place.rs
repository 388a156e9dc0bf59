//! `release-config-validate place`: where a model could go in the fleet of a
//! directory or a Git revision, ranked with reasons (topology's planner, as
//! the MCP tool `find_placement` serves it), for operators and scripts.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;
use topology::compose::bytes_per_param;
use topology::engine::Engine;
use topology::placement::{ModelFacts, Placement, PlacementQuery, find_placement, parse_labels};
use topology::repo::{Repository, Snapshot};

use crate::{Exit, ValidateError};

/// `place`: the planner's question. Numbers are taken as text and checked here, so that a
/// wrong one is named with what it should be.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct PlaceArgs {
    /// The release-config repository (a Git work tree for --rev).
    #[arg(value_name = "PATH", default_value = ".")]
    pub path: PathBuf,
    /// Read this revision from Git objects instead of the work tree.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Model name or path: its size, dtype and heads come from its deployments' labels, else
    /// from its name (an estimate).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Billions of parameters.
    #[arg(long = "params-b", value_name = "B")]
    pub params_b: Option<String>,
    /// Weight dtype or quantisation: bf16, fp8, awq, ... (default auto: 2 bytes).
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Option<String>,
    /// Tensor-parallel size; left out: the smallest valid one whose weights fit.
    #[arg(long = "tp", value_name = "N")]
    pub tensor_parallel: Option<u32>,
    /// Only machines whose GPU model contains this (any case), e.g. H100.
    #[arg(long = "gpu-model", value_name = "TEXT")]
    pub gpu_model: Option<String>,
    /// Only GPUs with at least this much memory (GB).
    #[arg(long = "min-memory-gb", value_name = "GB")]
    pub min_memory_gb: Option<String>,
    /// Only machines with this label, KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Most placements to print.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub limit: usize,
    /// Print JSON (model facts, placements, candidates, machines left out).
    #[arg(long)]
    pub json: bool,
}

/// What `place` prints with `--json`.
#[derive(Debug, Serialize)]
struct PlaceOutput<'a> {
    model: Option<&'a ModelFacts>,
    placements: &'a [Placement],
    candidates: usize,
    excluded: &'a BTreeMap<&'static str, usize>,
}

/// Prints the ranked placements; exit 0 when there is one, 1 when none fits.
pub fn run(args: &PlaceArgs, out: &mut dyn Write) -> Result<Exit, ValidateError> {
    let mut query = query_of(args)?;
    let snapshot = match &args.rev {
        Some(rev) => {
            let repo = Repository::open(&args.path).map_err(|e| ValidateError::NotGit {
                option: "--rev",
                path: args.path.clone(),
                message: e.to_string(),
            })?;
            repo.snapshot(rev).map_err(ValidateError::Repo)?
        }
        None => Snapshot::from_dir(&args.path).map_err(|e| ValidateError::Unreadable {
            path: args.path.clone(),
            reason: e.to_string(),
        })?,
    };
    let fleet = Engine::new()
        .analyze(&snapshot)
        .map_err(|e| ValidateError::Place {
            message: format!("cannot analyse {}: {e}", snapshot.describe()),
        })?;
    let model = args.model.as_deref().map(|model| {
        let facts = ModelFacts::of(model, fleet.deployments.values().map(|d| &**d));
        facts.fill(&mut query);
        facts
    });
    let plan = find_placement(&fleet, &query);
    let written = if args.json {
        let output = PlaceOutput {
            model: model.as_ref(),
            placements: &plan.placements,
            candidates: plan.candidates,
            excluded: &plan.excluded,
        };
        serde_json::to_string_pretty(&output)
            .map(|mut text| {
                text.push('\n');
                text
            })
            .unwrap_or_default()
    } else {
        human(model.as_ref(), &query, &plan)
    };
    out.write_all(written.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| ValidateError::Output { source })?;
    Ok(if plan.placements.is_empty() {
        Exit::Findings
    } else {
        Exit::Clean
    })
}

/// The query of `args`, every value checked (all problems at once).
fn query_of(args: &PlaceArgs) -> Result<PlacementQuery, ValidateError> {
    let mut problems = Vec::new();
    let mut positive = |flag: &str, text: &Option<String>| -> Option<f64> {
        let text = text.as_deref()?;
        match text.trim().parse::<f64>() {
            Ok(value) if value.is_finite() && value > 0.0 => Some(value),
            _ => {
                problems.push(format!("{flag} `{text}` is not a positive number"));
                None
            }
        }
    };
    let params_b = positive("--params-b", &args.params_b);
    let min_memory_gb = positive("--min-memory-gb", &args.min_memory_gb);
    if let Some(dtype) = &args.dtype
        && bytes_per_param(dtype).is_none()
    {
        problems.push(format!(
            "--dtype `{dtype}` is not known; known: fp32, bf16, fp16, auto, fp8, int8, int4, \
             awq, gptq"
        ));
    }
    if args.tensor_parallel == Some(0) {
        problems.push("--tp must be at least 1".to_owned());
    }
    if args.limit == 0 {
        problems.push("--limit must be at least 1".to_owned());
    }
    let (labels, wrong) = parse_labels(args.labels.iter().map(String::as_str));
    for label in wrong {
        problems.push(format!("--label `{label}` is not KEY=VALUE"));
    }
    if !problems.is_empty() {
        return Err(ValidateError::Place {
            message: problems.join("; "),
        });
    }
    Ok(PlacementQuery {
        tp: args.tensor_parallel,
        params_b,
        dtype: args.dtype.clone(),
        gpu_model: args.gpu_model.clone().filter(|m| !m.trim().is_empty()),
        min_memory_gb,
        labels,
        limit: args.limit,
        ..PlacementQuery::default()
    })
}

/// The text report: the model, then one line per placement, then what was left out.
fn human(
    model: Option<&ModelFacts>,
    query: &PlacementQuery,
    plan: &topology::placement::PlacementPlan,
) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    if let Some(model) = model {
        let _ = writeln!(
            text,
            "{}",
            model.summary(&crate::source::printable(&model.model))
        );
    }
    if query.params_b.is_none() {
        text.push_str("the model's size is unknown (--params-b): memory is not checked\n");
    }
    for line in plan.lines() {
        let _ = writeln!(text, "{line}");
    }
    text.push_str(
        "GPUs are free as main has them; open proposals' claims are not counted here \
         (find_placement and propose_release_config count them).\n",
    );
    text
}
