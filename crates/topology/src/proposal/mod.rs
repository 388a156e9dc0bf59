//! Proposals (spec section 6), the engine's part: check a request, render
//! its template, check it against the newest production tree (port, GPUs,
//! tensor parallelism, open proposals) and validate the whole resulting tree.
//! Committing, pushing and opening the pull request are the caller's; nothing
//! here writes anywhere.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::compose::DeploymentId;
use crate::engine::{Engine, EngineError, ExtraDeployment, Fleet, pending_conflicts};
use crate::finding::{Finding, Severity};
use crate::layout::{check_machine_name, closest, parse_port_name};
use crate::repo::{ContentId, Snapshot};

mod claims;
mod render;

pub use claims::{
    CLAIMS_NAMESPACE, Claims, OpenProposal, Taken, claim_refs, describe_claim, proposal_of,
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

/// What an agent asks for: one deployment at `machines/<machine>/<port>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRequest {
    pub machine: String,
    pub port: u16,
    pub template_name: String,
    pub model_name: String,
    pub model_path: String,
    /// Host GPU indices.
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

/// An open proposal to count as allocated: its label (how messages name it,
/// e.g. `pull request #12 (catapult/...)`) and the tree of its head.
pub struct PendingProposal<'a> {
    pub label: String,
    pub head_ref: String,
    pub fleet: &'a Fleet,
}

/// A proposal that passed every check, ready to be committed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub compose_path: String,
    pub rendered: String,
    /// Findings of the resulting tree that name the proposed deployment.
    pub findings: Vec<Finding>,
    /// Error findings of the resulting tree that main already had (they do
    /// not refuse the proposal: CI's diff-aware validation does not fail on
    /// them either).
    pub preexisting_errors: usize,
    /// The machine's GPUs before and after, one line each (`GPU 3: free`).
    pub gpu_map_before: Vec<String>,
    pub gpu_map_after: Vec<String>,
    /// The branch the proposal is committed on: the same proposal (same
    /// machine, port and rendered file) always gets the same branch.
    pub branch: String,
    pub template_origin: &'static str,
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
    if request.description.len() > MAX_DESCRIPTION_LEN {
        problems.push(format!(
            "description is {} bytes long, more than {MAX_DESCRIPTION_LEN}",
            request.description.len()
        ));
    }
    if request.gpu_ids.is_empty() {
        problems.push("gpu_ids is empty: a deployment needs at least one GPU".to_owned());
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
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ProposalError::Invalid(problems))
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

/// Checks `request` (rendered as `rendered`) against `main`, the newest
/// production tree analysed by `engine` from `snapshot`, and against the open
/// proposals (section 6 steps 2 to 4).
pub fn plan(
    engine: &mut Engine,
    snapshot: &Snapshot,
    main: &Fleet,
    request: &ProposalRequest,
    template: &TemplateSource,
    pending: &[PendingProposal<'_>],
) -> Result<Plan, ProposalError> {
    check_request(request)?;
    check_against(main, request)?;
    let rendered = render(template, request)?;
    let id = request.id();
    let extra = ExtraDeployment {
        id: id.clone(),
        compose: rendered.clone(),
        env: None,
    };
    let after = engine.analyze_with(snapshot, std::slice::from_ref(&extra))?;
    let main_prints: BTreeSet<&str> = main
        .findings
        .iter()
        .map(|f| f.fingerprint.as_str())
        .collect();
    let id_text = id.to_string();
    let names_it = |f: &Finding| f.deployments.contains(&id_text);
    let new_errors: Vec<&Finding> = after
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .filter(|f| names_it(f) || !main_prints.contains(f.fingerprint.as_str()))
        .collect();
    if !new_errors.is_empty() {
        let mut message = format!(
            "the rendered {} does not validate; the proposal is refused:",
            extra.compose_path()
        );
        for finding in &new_errors {
            let _ = write!(
                message,
                "\n  {} {} at {}",
                finding.rule, finding.message, finding.location
            );
        }
        return Err(ProposalError::Refused { message });
    }
    let claimed = after
        .deployments
        .get(&id)
        .is_some_and(|d| d.services.iter().any(|s| s.gpus.holds_gpus()));
    if !claimed {
        return Err(ProposalError::Refused {
            message: format!(
                "template `{}` rendered a deployment that claims no GPUs; a proposal must pin its gpu_ids",
                template.name
            ),
        });
    }
    check_pending(&after, &id, pending)?;
    let preexisting_errors = after
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error && !names_it(f))
        .count();
    Ok(Plan {
        compose_path: extra.compose_path(),
        findings: after
            .findings
            .iter()
            .filter(|f| names_it(f))
            .cloned()
            .collect(),
        preexisting_errors,
        gpu_map_before: gpu_map(main, &request.machine),
        gpu_map_after: gpu_map(&after, &request.machine),
        branch: branch_name(request, &rendered),
        template_origin: template.origin,
        rendered,
    })
}

/// The port, GPU and TP checks against the production tree, with what would
/// fit instead.
fn check_against(main: &Fleet, request: &ProposalRequest) -> Result<(), ProposalError> {
    let machine = &request.machine;
    let refuse = |message: String| Err(ProposalError::Refused { message });
    let Some(info) = main.machines.get(machine) else {
        let near = closest(machine, main.machines.keys().map(String::as_str), 3);
        return refuse(format!(
            "machine `{machine}` is not in the release-config repository; closest: {}",
            if near.is_empty() {
                "(none)".to_owned()
            } else {
                near.join(", ")
            }
        ));
    };
    let Some(inventory) = &info.inventory else {
        return refuse(format!(
            "machine `{machine}` has no inventory (machines/{machine}/machine.yaml): its GPUs \
             cannot be checked, so nothing is proposed on it; add the inventory first"
        ));
    };
    let id = request.id();
    if let Some(existing) = main.deployments.get(&id) {
        return refuse(format!(
            "port {} on {machine} is taken by {} ({}); free ports near it: {}",
            request.port,
            describe_deployment(existing),
            existing.compose_path,
            free_ports(main, machine, request.port)
        ));
    }
    for other in main.graph.deployments_on(machine) {
        let Some(deployment) = main.deployments.get(other) else {
            continue;
        };
        if deployment
            .services
            .iter()
            .flat_map(|s| &s.ports)
            .any(|p| p.host == request.port)
        {
            return refuse(format!(
                "host port {} on {machine} is already published by {other} ({}); free ports near it: {}",
                request.port,
                deployment.compose_path,
                free_ports(main, machine, request.port)
            ));
        }
    }
    let gpus = inventory.gpus;
    if request.tensor_parallel > gpus {
        return refuse(format!(
            "tensor_parallel {} does not fit {machine}, which has {gpus} GPU(s){}",
            request.tensor_parallel,
            other_machines(main, machine, request.tensor_parallel)
        ));
    }
    let missing: Vec<u32> = request
        .gpu_ids
        .iter()
        .copied()
        .filter(|g| *g >= gpus)
        .collect();
    let unpinned = main.graph.unpinned_gpus(machine);
    let mut held = Vec::new();
    for gpu in &request.gpu_ids {
        let holders = main.graph.holders(machine, &gpu.to_string());
        if !holders.is_empty() {
            let names: Vec<String> = holders.iter().map(|h| h.display_name()).collect();
            held.push(format!("GPU {gpu} is held by {}", names.join(", ")));
        }
    }
    if missing.is_empty() && held.is_empty() && unpinned == 0 {
        return Ok(());
    }
    let mut message = String::new();
    if !missing.is_empty() {
        let _ = write!(
            message,
            "GPU {} not on {machine} (it has {gpus} GPU(s): 0-{})",
            join(&missing),
            gpus.saturating_sub(1)
        );
    }
    if !held.is_empty() {
        if !message.is_empty() {
            message.push_str("; ");
        }
        message.push_str(&held.join("; "));
    }
    if unpinned > 0 {
        if !message.is_empty() {
            message.push_str("; ");
        }
        let _ = write!(
            message,
            "{machine} has {unpinned} GPU(s) claimed with `count:` (Docker picks which): no GPU \
             there can be shown free until those claims are pinned"
        );
    }
    let _ = write!(
        message,
        ". {}{}",
        free_sets(main, machine, request.tensor_parallel),
        other_machines(main, machine, request.tensor_parallel)
    );
    refuse(message)
}

/// Refuses when an open proposal claims one of the proposed GPUs or the port.
fn check_pending(
    after: &Fleet,
    id: &DeploymentId,
    pending: &[PendingProposal<'_>],
) -> Result<(), ProposalError> {
    let id_text = id.to_string();
    let mut conflicts = Vec::new();
    let ours = after.deployments.get(id).and_then(|d| d.content.clone());
    for proposal in pending {
        // The same port directory in another proposal: two pull requests would create one
        // deployment (`pending_conflicts` sees a proposal's change of a deployment as no
        // conflict with that deployment; here both are new).
        if let Some(theirs) = proposal.fleet.deployments.get(id)
            && (theirs.content.is_none() || theirs.content != ours)
        {
            conflicts.push(format!(
                "{}: proposes {} too ({})",
                proposal.label, id, theirs.compose_path
            ));
            continue;
        }
        for finding in pending_conflicts(after, proposal.fleet, &proposal.head_ref) {
            if finding.deployments.contains(&id_text) {
                conflicts.push(format!("{}: {}", proposal.label, finding.message));
            }
        }
    }
    if conflicts.is_empty() {
        return Ok(());
    }
    conflicts.dedup();
    Err(ProposalError::Refused {
        message: format!(
            "an open proposal already claims what this one asks for (pending allocations count \
             until they are merged or closed):\n  {}",
            conflicts.join("\n  ")
        ),
    })
}

/// `catapult/<machine>-<port>-<10 hex of the rendered file's blob id>`.
pub fn branch_name(request: &ProposalRequest, rendered: &str) -> String {
    let hash = ContentId::of_bytes(rendered.as_bytes())
        .map(|id| id.to_string())
        .unwrap_or_default();
    let machine: String = request
        .machine
        .chars()
        .map(|c| if c == '.' { '-' } else { c })
        .collect();
    format!(
        "{BRANCH_PREFIX}{machine}-{}-{}",
        request.port,
        hash.get(..10).unwrap_or(&hash)
    )
}

/// One line per GPU of the machine: `GPU 3: machine:port/service` or `GPU 3: free`.
pub fn gpu_map(fleet: &Fleet, machine: &str) -> Vec<String> {
    let Some(topology) = fleet.machine_topology(machine) else {
        return Vec::new();
    };
    let mut lines: Vec<String> = Vec::new();
    let free: BTreeSet<u32> = topology.free_gpus.iter().flatten().copied().collect();
    let count = topology.gpu_count.unwrap_or(0);
    for gpu in 0..count {
        let key = gpu.to_string();
        let line = match topology.gpu_holders.get(&key) {
            Some(holders) if !holders.is_empty() => format!("GPU {gpu}: {}", holders.join(", ")),
            _ if free.contains(&gpu) => format!("GPU {gpu}: free"),
            _ => format!("GPU {gpu}: unknown"),
        };
        lines.push(line);
    }
    for (gpu, holders) in &topology.gpu_holders {
        if gpu.parse::<u32>().is_ok_and(|g| g < count) {
            continue;
        }
        lines.push(format!(
            "GPU {gpu} (not in inventory): {}",
            holders.join(", ")
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

/// Free GPU sets of `size` on the machine, each inside one NUMA domain when
/// the inventory has them.
fn free_sets(fleet: &Fleet, machine: &str, size: u32) -> String {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let Some(domains) = fleet.graph.free_by_numa(machine) else {
        return String::new();
    };
    let mut sets: Vec<String> = domains
        .iter()
        .filter(|free| free.len() >= size)
        .flat_map(|free| {
            free.chunks_exact(size.max(1))
                .map(|set| format!("[{}]", join(set)))
        })
        .take(3)
        .collect();
    if sets.is_empty() {
        let all: Vec<u32> = domains.iter().flatten().copied().collect();
        if all.len() >= size {
            sets.push(format!(
                "[{}] (spans NUMA domains)",
                join(all.get(..size).unwrap_or(&all))
            ));
        }
    }
    if sets.is_empty() {
        format!("{machine} has no {size} free GPU(s)")
    } else {
        format!("free GPU sets of {size} on {machine}: {}", sets.join(", "))
    }
}

/// Other machines with at least `size` free GPUs, same GPU model first.
fn other_machines(fleet: &Fleet, machine: &str, size: u32) -> String {
    let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
    let model = fleet
        .machines
        .get(machine)
        .and_then(|m| m.inventory.as_ref())
        .and_then(|i| i.gpu_model.clone());
    let mut fits: Vec<(bool, String)> = fleet
        .machines
        .iter()
        .filter(|(name, _)| name.as_str() != machine)
        .filter(|(name, _)| fleet.graph.unpinned_gpus(name) == 0)
        .filter_map(|(name, info)| {
            let free = fleet.graph.free_gpus(name)?;
            (free.len() >= size_usize).then(|| {
                let same = info.inventory.as_ref().and_then(|i| i.gpu_model.clone()) == model;
                let shown = free.get(..size_usize).unwrap_or(&free);
                (!same, format!("{name} [{}]", join(shown)))
            })
        })
        .collect();
    fits.sort();
    let shown: Vec<String> = fits.into_iter().take(5).map(|(_, s)| s).collect();
    if shown.is_empty() {
        format!("; no other machine has {size} free GPU(s)")
    } else {
        format!(
            "; other machines with {size} free GPU(s): {}",
            shown.join(", ")
        )
    }
}

/// Ports near `port` with no deployment on the machine.
fn free_ports(fleet: &Fleet, machine: &str, port: u16) -> String {
    let taken: BTreeSet<u16> = fleet
        .graph
        .deployments_on(machine)
        .filter_map(|id| fleet.deployments.get(id))
        .flat_map(|d| {
            std::iter::once(d.id.port).chain(
                d.services
                    .iter()
                    .flat_map(|s| s.ports.iter().map(|p| p.host)),
            )
        })
        .collect();
    let free: Vec<String> = (port.saturating_add(1)..=u16::MAX)
        .filter(|p| !taken.contains(p))
        .take(3)
        .map(|p| p.to_string())
        .collect();
    free.join(", ")
}

fn describe_deployment(deployment: &crate::compose::Deployment) -> String {
    let model = deployment
        .main_service()
        .and_then(|s| s.model_name.clone().or_else(|| s.model_path.clone()));
    match model {
        Some(model) => format!("{} ({model})", deployment.id),
        None => deployment.id.to_string(),
    }
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
