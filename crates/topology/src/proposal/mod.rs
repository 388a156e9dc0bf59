//! Proposals (spec section 6), the engine's part: check a request (add,
//! replace or remove one deployment), render its template, check it against
//! the newest production tree (port, GPUs, tensor parallelism, open
//! proposals) and validate the whole resulting tree. Committing, pushing and
//! opening the pull request are the caller's; nothing here writes anywhere.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::compose::DeploymentId;
use crate::engine::{EngineError, Fleet, HolderRef};
use crate::finding::Finding;
use crate::layout::{check_machine_name, parse_port_name};
use crate::placement::Placement;
use crate::repo::{ContentId, TreeChange};

mod claims;
mod plan;
mod render;

pub use plan::{HeldGpus, PendingProposal, changed_deployments, plan};

pub(crate) use claims::CLAIMS_NAMESPACE;
pub use claims::{
    ClaimHolder, ClaimRef, Claimed, Claims, OpenProposal, Taken, claim_refs, proposal_of,
};

/// Longest model name or path a proposal accepts.
const MAX_NAME_LEN: usize = 512;
/// Longest description (it becomes the pull request's text).
const MAX_DESCRIPTION_LEN: usize = 16 * 1024;
/// Template evaluation budget (minijinja fuel): a hostile repository template
/// that loops stops here instead of hanging the server.
const TEMPLATE_FUEL: u64 = 200_000;
/// Prefix of every proposal branch (and how open proposals are recognised).
pub const BRANCH_PREFIX: &str = "catapult/";

/// What a proposal does to the deployment at `machines/<machine>/<port>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProposalAction {
    /// A new deployment on a free port.
    #[default]
    Add,
    /// A new rendering of the deployment on that port (model, version, TP,
    /// GPUs); what it holds is free for its replacement only.
    Replace,
    /// Retire the deployment: its directory goes. Nothing it holds is free
    /// for others until the removal is merged.
    Remove,
}

impl ProposalAction {
    pub const ALL: [ProposalAction; 3] = [
        ProposalAction::Add,
        ProposalAction::Replace,
        ProposalAction::Remove,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProposalAction::Add => "add",
            ProposalAction::Replace => "replace",
            ProposalAction::Remove => "remove",
        }
    }

    pub fn parse(text: &str) -> Option<ProposalAction> {
        ProposalAction::ALL
            .into_iter()
            .find(|action| action.as_str() == text)
    }
}

/// What an agent asks for: one deployment at `machines/<machine>/<port>/`.
/// A removal uses only `machine`, `port` and `description`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProposalRequest {
    pub action: ProposalAction,
    pub machine: String,
    pub port: u16,
    pub template_name: String,
    pub model_name: String,
    pub model_path: String,
    /// Host GPU indices; empty for an addition or replacement: the best
    /// free set of `tensor_parallel` GPUs on the machine (the planner's).
    pub gpu_ids: Vec<u32>,
    pub tensor_parallel: u32,
    pub description: String,
}

impl ProposalRequest {
    pub fn id(&self) -> DeploymentId {
        DeploymentId::new(self.machine.clone(), self.port)
    }

    /// `machines/<machine>/<port>/docker-compose.yml`.
    pub fn compose_path(&self) -> String {
        format!("machines/{}/{}/docker-compose.yml", self.machine, self.port)
    }
}

/// Why a proposal is not made. Every variant's text is the whole answer an
/// agent needs: what is wrong and what would fit.
#[derive(Debug, thiserror::Error)]
pub enum ProposalError {
    /// The request itself is malformed (all problems at once).
    #[error("invalid proposal: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("template `{name}`: {message}")]
    Template { name: String, message: String },
    /// The production tree (or an open proposal) does not allow it.
    #[error("{message}")]
    Refused { message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A template's source and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSource {
    /// `template_name` (file name without `.yml.j2`).
    pub name: String,
    /// `repository` or `shipped`.
    pub origin: &'static str,
    pub text: String,
}

/// The deployment a replacement or removal takes away, as main has it.
#[derive(Debug, Clone)]
pub struct Previous {
    pub compose_path: String,
    /// Its compose file's text (for the pull request's diff).
    pub compose: String,
    /// Its model (name, else path), if the compose file says.
    pub model: Option<String>,
    pub model_path: Option<String>,
    /// The host GPUs it holds, as written (`0`, `GPU-8f...`).
    pub gpus: Vec<String>,
    /// Every file in its directory (what a removal deletes; what a
    /// replacement keeps besides the compose file).
    pub files: Vec<String>,
    /// Other deployments in the fleet serving the same model (by path, else
    /// name): `0` means this is the last copy.
    pub other_copies: Vec<DeploymentId>,
}

/// A proposal that passed every check, ready to be committed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub action: ProposalAction,
    /// The compose file written (add, replace) or deleted (remove).
    pub compose_path: String,
    /// The rendered file; empty for a removal.
    pub rendered: String,
    /// What the commit changes in main's tree.
    pub changes: Vec<TreeChange>,
    /// The deployment replaced or removed.
    pub previous: Option<Previous>,
    /// Findings of the resulting tree that name the proposed deployment.
    pub findings: Vec<Finding>,
    /// Findings on the machine that the change makes appear, and disappear
    /// (by fingerprint, against main).
    pub appeared: Vec<Finding>,
    pub resolved: Vec<Finding>,
    /// Error findings of the resulting tree that main already had (they do
    /// not refuse the proposal: CI's diff-aware validation does not fail on
    /// them either).
    pub preexisting_errors: usize,
    /// The machine's GPUs before and after, one line each (`GPU 3: free`).
    pub gpu_map_before: Vec<String>,
    pub gpu_map_after: Vec<String>,
    /// The branch the proposal is committed on: the same proposal (same
    /// action, machine, port and rendered or removed file) always gets the
    /// same branch.
    pub branch: String,
    pub template_origin: &'static str,
    /// The GPU set the planner chose, with its reasons, when the request
    /// named none (`gpu_ids` empty): the request's `gpu_ids` from then on.
    pub chosen: Option<Placement>,
}

/// Checks the request on its own (section 6 step 1): names, GPU ids, TP.
/// Returns every problem at once.
pub fn check_request(request: &ProposalRequest) -> Result<(), ProposalError> {
    let mut problems = Vec::new();
    if let Err(e) = check_machine_name(&request.machine) {
        problems.push(e.to_string());
    }
    if let Err(e) = parse_port_name(&request.port.to_string()) {
        problems.push(e.to_string());
    }
    if request.description.len() > MAX_DESCRIPTION_LEN {
        problems.push(format!(
            "description is {} bytes long, more than {MAX_DESCRIPTION_LEN}",
            request.description.len()
        ));
    }
    if request.action != ProposalAction::Remove {
        check_rendering(request, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ProposalError::Invalid(problems))
    }
}

/// What an add or a replace needs to render: template, model, GPUs, TP.
fn check_rendering(request: &ProposalRequest, problems: &mut Vec<String>) {
    if request.template_name.trim().is_empty() {
        problems.push("template_name is empty (list_docker_templates lists them)".to_owned());
    }
    for (field, value) in [
        ("model_name", &request.model_name),
        ("model_path", &request.model_path),
    ] {
        if value.trim().is_empty() {
            problems.push(format!("{field} is empty"));
        } else if value.len() > MAX_NAME_LEN {
            problems.push(format!(
                "{field} is {} bytes long, more than {MAX_NAME_LEN}",
                value.len()
            ));
        }
    }
    let mut seen = BTreeSet::new();
    let repeated: BTreeSet<u32> = request
        .gpu_ids
        .iter()
        .filter(|id| !seen.insert(**id))
        .copied()
        .collect();
    if !repeated.is_empty() {
        problems.push(format!("gpu_ids repeats {}", join(&repeated)));
    }
    if request.tensor_parallel == 0 {
        problems.push("tensor_parallel must be at least 1".to_owned());
    } else if !request.gpu_ids.is_empty()
        && usize::try_from(request.tensor_parallel).ok() != Some(seen.len())
    {
        problems.push(format!(
            "tensor_parallel {} needs {} GPU(s), gpu_ids names {} (one TP rank per GPU)",
            request.tensor_parallel,
            request.tensor_parallel,
            seen.len()
        ));
    }
}

/// Renders `template` for `request` (section 6 step 4). Every value is
/// data, whatever the template does with it (`render` module); undefined
/// names are errors, and evaluation is bounded.
pub fn render(
    template: &TemplateSource,
    request: &ProposalRequest,
) -> Result<String, ProposalError> {
    let refuse = |message: String| ProposalError::Template {
        name: template.name.clone(),
        message,
    };
    let error = |e: minijinja::Error| refuse(describe_template_error(&e));
    // The rendered text, and how many `{{ }}` it evaluated.
    let run = |pass: render::Pass| -> Result<(String, usize), ProposalError> {
        let (mut env, count) = render::environment(pass);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_recursion_limit(32);
        // No loader: a template cannot include files from anywhere.
        let compiled = env.template_from_str(&template.text).map_err(error)?;
        let rendered = compiled
            .render(minijinja::context! {
                machine => &request.machine,
                port => request.port,
                model_name => &request.model_name,
                model_path => &request.model_path,
                gpu_ids => &request.gpu_ids,
                tensor_parallel => request.tensor_parallel,
                description => &request.description,
            })
            .map_err(error)?;
        let rendered = if rendered.ends_with('\n') {
            rendered
        } else {
            rendered + "\n"
        };
        Ok((rendered, count.load(std::sync::atomic::Ordering::Relaxed)))
    };
    let (with_markers, expressions) = run(render::Pass::Markers)?;
    let (shape, places) = render::check_markers(&with_markers, expressions).map_err(refuse)?;
    let (rendered, _) = run(render::Pass::Values(std::sync::Arc::new(places)))?;
    render::check_shape(&shape, &rendered).map_err(refuse)?;
    Ok(rendered)
}

fn describe_template_error(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    if let Some(line) = e.line() {
        let _ = write!(text, " (line {line})");
    }
    text
}

/// `catapult/<action>-<machine>-<port>-<10 hex>`: of the rendered file's
/// blob id (add, replace), of the removed file's (remove).
pub(crate) fn branch_name(request: &ProposalRequest, file: &str) -> String {
    let hash = ContentId::of_bytes(file.as_bytes())
        .map(|id| id.to_string())
        .unwrap_or_default();
    let machine: String = request
        .machine
        .chars()
        .map(|c| if c == '.' { '-' } else { c })
        .collect();
    format!(
        "{BRANCH_PREFIX}{}-{machine}-{}-{}",
        request.action.as_str(),
        request.port,
        hash.get(..10).unwrap_or(&hash)
    )
}

/// `a:8000/llm, b:8001/llm`: holders as every answer names them.
fn names(holders: &[HolderRef]) -> String {
    holders
        .iter()
        .map(HolderRef::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line per GPU of the machine: `GPU 3: machine:port/service` or `GPU 3: free`.
pub(crate) fn gpu_map(fleet: &Fleet, machine: &str) -> Vec<String> {
    let Some(topology) = fleet.machine_topology(machine) else {
        return Vec::new();
    };
    let mut lines: Vec<String> = Vec::new();
    let free: BTreeSet<u32> = topology.free_gpus.iter().flatten().copied().collect();
    let count = topology.gpu_count.unwrap_or(0);
    for gpu in 0..count {
        let key = gpu.to_string();
        let holders = topology.holders_of(&key);
        let line = if !holders.is_empty() {
            format!("GPU {gpu}: {}", names(holders))
        } else if free.contains(&gpu) {
            format!("GPU {gpu}: free")
        } else {
            format!("GPU {gpu}: unknown")
        };
        lines.push(line);
    }
    for held in &topology.gpu_holders {
        if held.gpu.parse::<u32>().is_ok_and(|g| g < count) {
            continue;
        }
        lines.push(format!(
            "GPU {} (not in inventory): {}",
            held.gpu,
            names(&held.holders)
        ));
    }
    if topology.unpinned_gpus > 0 {
        lines.push(format!(
            "{} GPU(s) claimed with `count:` (which ones is up to Docker)",
            topology.unpinned_gpus
        ));
    }
    lines
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
