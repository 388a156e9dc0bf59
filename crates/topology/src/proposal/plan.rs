//! Checking a proposal against main and the open proposals (section 6
//! steps 2 to 4), per action: an addition needs a free port and free GPUs; a
//! replacement may reuse what the deployment it replaces holds, and nothing
//! else; a removal frees nothing until it is merged.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::{
    Plan, Previous, ProposalAction, ProposalError, ProposalRequest, TemplateSource, branch_name,
    gpu_map, join, render,
};
use crate::capacity::{DeploymentClaims, PortBinding, free_ports_after, machine_claims};
use crate::compose::{Deployment, DeploymentId, GpuClaim};
use crate::engine::{Engine, EngineError, ExtraDeployment, Fleet, pending_conflicts_of};
use crate::finding::{Finding, Severity};
use crate::layout::{closest, parse_port_name};
use crate::placement::{Placement, PlacementQuery, capacity_of, find_placement_in, is_partitioned};
use crate::repo::{Snapshot, TreeChange};

/// The largest compose or `.env` file read back for a diff.
const MAX_PREVIOUS_BYTES: u64 = 4 << 20;

/// An open proposal to count as allocated: its label (how messages name it,
/// e.g. `pull request #12 (catapult/...)`), the tree of its head, and which
/// deployments it changes.
pub struct PendingProposal<'a> {
    pub label: String,
    pub head_ref: String,
    pub fleet: &'a Fleet,
    /// The deployments it adds, replaces or removes, from where it forked
    /// from main (`changed_deployments` of `Repository::changed_since_fork`).
    /// `None`: unknown; then whatever differs from main counts, which makes a
    /// proposal on an older main seem to undo what main changed since.
    pub changed: Option<BTreeSet<DeploymentId>>,
}

/// The deployments a set of changed paths touches: `machines/<m>/<port>/...`.
pub fn changed_deployments<'p>(paths: impl IntoIterator<Item = &'p str>) -> BTreeSet<DeploymentId> {
    paths
        .into_iter()
        .filter_map(|path| {
            let mut parts = path.split('/');
            (parts.next() == Some("machines")).then_some(())?;
            let machine = parts.next()?;
            let port = parse_port_name(parts.next()?).ok()?;
            // `machines/<m>/<port>` itself (a file named like a port) is no deployment.
            parts.next()?;
            Some(DeploymentId::new(machine, port))
        })
        .collect()
}

/// The deployments `head` has differently from `main`, or only one of them has.
fn differs_from_main(main: &Fleet, head: &Fleet) -> BTreeSet<DeploymentId> {
    let same = |a: &Deployment, b: &Deployment| match (&a.content, &b.content) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    };
    let mut changed: BTreeSet<DeploymentId> = head
        .deployments
        .iter()
        .filter(|(id, d)| !main.deployments.get(*id).is_some_and(|m| same(m, d)))
        .map(|(id, _)| id.clone())
        .collect();
    changed.extend(
        main.deployments
            .keys()
            .filter(|id| !head.deployments.contains_key(*id))
            .cloned(),
    );
    changed
}

/// Checks `request` against `main`, the newest production tree analysed by
/// `engine` from `snapshot`, and against the open proposals; renders it
/// (`template`: required to add or replace). `claimed`: GPUs live claims hold
/// (of proposals other than this one), which a chosen set leaves out.
pub fn plan(
    engine: &mut Engine,
    snapshot: &Snapshot,
    main: &Fleet,
    request: &ProposalRequest,
    template: Option<&TemplateSource>,
    pending: &[PendingProposal<'_>],
    claimed: &HeldGpus,
) -> Result<Plan, ProposalError> {
    super::check_request(request)?;
    let refuse = |message: String| Err(ProposalError::Refused { message });
    let machine = &request.machine;
    if !main.machines.contains_key(machine) {
        return Err(unknown_machine(main, machine));
    }
    let id = request.id();
    let existing = main.deployments.get(&id);
    match (request.action, existing) {
        (ProposalAction::Add, Some(existing)) => {
            return refuse(format!(
                "port {} on {machine} is taken by {} ({}): to change that deployment propose \
                 action `replace`, to retire it `remove`; free ports near it: {}",
                request.port,
                describe_deployment(existing),
                existing.compose_path,
                ports_text(&free_ports_after(
                    &machine_claims(main, machine),
                    request.port,
                    3
                ))
            ));
        }
        (ProposalAction::Replace | ProposalAction::Remove, None) => {
            let on_machine: Vec<String> = main
                .graph()
                .deployments_on(machine)
                .filter_map(|other| main.deployments.get(other))
                .map(|d| describe_deployment(d))
                .collect();
            return refuse(format!(
                "there is no deployment on {id} to {}; {machine} has {}; to create one there \
                 propose action `add`",
                request.action.as_str(),
                if on_machine.is_empty() {
                    "none".to_owned()
                } else {
                    on_machine.join(", ")
                }
            ));
        }
        _ => {}
    }
    let previous = existing
        .map(|d| previous_of(snapshot, main, d))
        .transpose()?;
    // The request with its GPUs chosen, when it names none.
    let mut completed = request.clone();
    let mut chosen = None;
    let (rendered, after, changes, branch) = match (request.action, &previous) {
        (ProposalAction::Remove, Some(previous)) => {
            let after = engine.analyze_changes(snapshot, &[], std::slice::from_ref(&id))?;
            let directory = format!("machines/{}/{}", id.machine, id.port);
            let branch = branch_name(request, &previous.compose);
            (
                String::new(),
                after,
                vec![TreeChange::Remove { path: directory }],
                branch,
            )
        }
        _ => {
            let template = template.ok_or_else(|| {
                ProposalError::Invalid(vec![
                    "template_name is empty (list_docker_templates lists them)".to_owned(),
                ])
            })?;
            // What the replaced deployment holds is free for its replacement, and for nothing
            // else: the replacement is checked against main without it.
            let without;
            let capacity = if previous.is_some() {
                without = engine.analyze_changes(snapshot, &[], std::slice::from_ref(&id))?;
                &without
            } else {
                main
            };
            // Held elsewhere: what open proposals' files claim (a proposal of this very
            // deployment aside: `check_pending` judges it, and asking again must choose the
            // same set) and live claims of proposals not yet open.
            let mut held = open_proposal_holders(main, pending, &id);
            for (machine, gpus) in claimed {
                let on_machine = held.entry(machine.clone()).or_default();
                for (gpu, holder) in gpus {
                    on_machine.entry(*gpu).or_insert_with(|| holder.clone());
                }
            }
            if request.gpu_ids.is_empty() {
                // The machine, port and TP first: their refusals say more than "no set".
                check_against(capacity, main, request, &held)?;
                let found =
                    best_here(capacity, request, &held).map_err(|why| ProposalError::Refused {
                        message: format!(
                            "no GPU set for TP {} can be chosen: {why}{}",
                            request.tensor_parallel,
                            elsewhere(main, request, &held)
                        ),
                    })?;
                completed.gpu_ids.clone_from(&found.gpus);
                chosen = Some(found);
            }
            let request = &completed;
            check_against(capacity, main, request, &held)?;
            let rendered = render(template, request)?;
            let mut extra = ExtraDeployment::new(id.clone(), rendered.clone());
            if let (Some(previous), Some(existing)) = (&previous, existing) {
                if previous.compose == rendered {
                    return refuse(format!(
                        "the rendering is exactly {}: the replacement changes nothing",
                        previous.compose_path
                    ));
                }
                // A replacement keeps the file's name and its `.env`.
                if let Some(name) = previous.compose_path.rsplit('/').next() {
                    name.clone_into(&mut extra.file_name);
                }
                extra.env = existing
                    .env_path
                    .as_ref()
                    .map(|path| read_text(snapshot, path))
                    .transpose()?;
            }
            let after = engine.analyze_with(snapshot, std::slice::from_ref(&extra))?;
            let claimed = after
                .deployments
                .get(&id)
                .is_some_and(|d| d.services.iter().any(|s| s.gpus.holds_gpus()));
            if !claimed {
                return refuse(format!(
                    "template `{}` rendered a deployment that claims no GPUs; a proposal must \
                     pin its gpu_ids",
                    template.name
                ));
            }
            let changes = vec![TreeChange::Write {
                path: extra.compose_path(),
                contents: rendered.clone().into_bytes(),
            }];
            let branch = branch_name(request, &rendered);
            (rendered, after, changes, branch)
        }
    };
    let compose_path = match (&previous, changes.first()) {
        (Some(previous), _) => previous.compose_path.clone(),
        (None, Some(change)) => change.path().to_owned(),
        (None, None) => request.compose_path(),
    };
    let main_prints: BTreeSet<&str> = main
        .findings
        .iter()
        .map(|f| f.fingerprint.as_str())
        .collect();
    let id_text = id.to_string();
    let names_it = |f: &Finding| f.deployments.contains(&id_text);
    // An addition answers for every error naming it; a replacement or removal only for what
    // main does not already have broken.
    let new_errors: Vec<&Finding> = after
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .filter(|f| {
            !main_prints.contains(f.fingerprint.as_str())
                || (request.action == ProposalAction::Add && names_it(f))
        })
        .collect();
    if !new_errors.is_empty() {
        let mut message = match request.action {
            ProposalAction::Remove => format!(
                "removing {id} breaks what main does not have broken; the proposal is refused:"
            ),
            _ => format!("the rendered {compose_path} does not validate; the proposal is refused:"),
        };
        for finding in &new_errors {
            let _ = write!(
                message,
                "\n  {} {} at {}",
                finding.rule, finding.message, finding.location
            );
        }
        return refuse(message);
    }
    check_pending(main, &after, &id, pending)?;
    let on_machine = |f: &&Finding| f.machine.as_deref() == Some(machine.as_str());
    let after_prints: BTreeSet<&str> = after
        .findings
        .iter()
        .map(|f| f.fingerprint.as_str())
        .collect();
    let appeared: Vec<Finding> = after
        .findings
        .iter()
        .filter(on_machine)
        .filter(|f| !main_prints.contains(f.fingerprint.as_str()))
        .cloned()
        .collect();
    let resolved: Vec<Finding> = main
        .findings
        .iter()
        .filter(on_machine)
        .filter(|f| !after_prints.contains(f.fingerprint.as_str()))
        .cloned()
        .collect();
    let preexisting_errors = after
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error && main_prints.contains(f.fingerprint.as_str()))
        .count();
    Ok(Plan {
        action: request.action,
        compose_path,
        findings: after
            .findings
            .iter()
            .filter(|f| names_it(f))
            .cloned()
            .collect(),
        appeared,
        resolved,
        preexisting_errors,
        gpu_map_before: gpu_map(main, machine),
        gpu_map_after: gpu_map(&after, machine),
        branch,
        template_origin: template.map_or("", |t| t.origin),
        chosen,
        rendered,
        changes,
        previous,
    })
}

/// `machine` is not in the tree: the closest names that are.
fn unknown_machine(main: &Fleet, machine: &str) -> ProposalError {
    let near = closest(machine, main.machines.keys().map(String::as_str), 3);
    ProposalError::Refused {
        message: format!(
            "machine `{machine}` is not in the release-config repository; closest: {}",
            if near.is_empty() {
                "(none)".to_owned()
            } else {
                near.join(", ")
            }
        ),
    }
}

fn read_text(snapshot: &Snapshot, path: &str) -> Result<String, ProposalError> {
    let bytes = snapshot
        .read(path, MAX_PREVIOUS_BYTES)
        .map_err(|e| ProposalError::Engine(EngineError::Repo(e)))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// What main's deployment `deployment` is, for the pull request of its
/// replacement or removal.
fn previous_of(
    snapshot: &Snapshot,
    main: &Fleet,
    deployment: &Deployment,
) -> Result<Previous, ProposalError> {
    let service = deployment.main_service();
    let model_path = service.and_then(|s| s.model_path.as_deref().map(str::to_owned));
    let model = service.and_then(|s| {
        s.model_name
            .as_deref()
            .or(s.model_path.as_deref())
            .map(str::to_owned)
    });
    let mut gpus: Vec<String> = Vec::new();
    for service in &deployment.services {
        match &service.gpus {
            GpuClaim::Pinned(refs) => gpus.extend(refs.iter().map(|r| r.id.to_string())),
            GpuClaim::Count(n) => gpus.push(format!("any {n}")),
            GpuClaim::All => gpus.push("all".to_owned()),
            GpuClaim::None => {}
        }
    }
    let directory = format!("machines/{}/{}/", deployment.id.machine, deployment.id.port);
    let files: Vec<String> = snapshot
        .entries()
        .iter()
        .filter(|entry| entry.path.starts_with(&directory) && !entry.is_dir())
        .map(|entry| entry.path.clone())
        .collect();
    // The same model elsewhere: by path where both say one, else by name.
    let model_name = service.and_then(|s| s.model_name.clone());
    let same_model = |other: &Deployment| {
        let Some(theirs) = other.main_service() else {
            return false;
        };
        match (&model_path, &theirs.model_path) {
            (Some(a), Some(b)) => **a == **b,
            _ => model_name.is_some() && model_name == theirs.model_name,
        }
    };
    let other_copies: Vec<DeploymentId> = if model.is_some() {
        main.deployments
            .values()
            .filter(|other| other.id != deployment.id && same_model(other))
            .map(|other| other.id.clone())
            .collect()
    } else {
        Vec::new()
    };
    Ok(Previous {
        compose_path: deployment.compose_path.clone(),
        compose: read_text(snapshot, &deployment.compose_path)?,
        model,
        model_path,
        gpus,
        files,
        other_copies,
    })
}

/// GPUs held by open proposals (what they add or change), by machine, each
/// with the proposal's label: what suggestions leave out.
fn open_proposal_holders(
    main: &Fleet,
    pending: &[PendingProposal<'_>],
    ours: &DeploymentId,
) -> HeldGpus {
    let mut held = HeldGpus::new();
    for proposal in pending {
        let changed = proposal
            .changed
            .clone()
            .unwrap_or_else(|| differs_from_main(main, proposal.fleet));
        if changed.contains(ours) {
            continue;
        }
        for id in &changed {
            if let Some(deployment) = proposal.fleet.deployments.get(id) {
                let claims = DeploymentClaims::of(proposal.fleet, deployment);
                let on_machine = held.entry(id.machine.clone()).or_default();
                for gpu in claims.gpus.iter().filter_map(|g| g.gpu.parse::<u32>().ok()) {
                    on_machine
                        .entry(gpu)
                        .or_insert_with(|| proposal.label.clone());
                }
            }
        }
    }
    held
}

/// GPUs held outside main: machine, GPU, its holder as messages name it.
pub type HeldGpus = BTreeMap<String, BTreeMap<u32, String>>;

/// The planner's question for `request`: its TP, leaving out what `held` holds.
fn planner_query(request: &ProposalRequest, held: &HeldGpus, limit: usize) -> PlacementQuery {
    PlacementQuery {
        tp: Some(request.tensor_parallel),
        held_elsewhere: held.clone(),
        limit,
        ..PlacementQuery::default()
    }
}

/// The planner's best free set for `request` on its machine in `capacity`,
/// or why there is none.
fn best_here(
    capacity: &Fleet,
    request: &ProposalRequest,
    held: &HeldGpus,
) -> Result<Placement, String> {
    let machine = request.machine.as_str();
    let query = planner_query(request, held, 1);
    let found = capacity_of(capacity, machine)
        .map(|c| find_placement_in([c], &query).placements.into_iter().next());
    if let Some(Some(placement)) = found {
        return Ok(placement);
    }
    let graph = capacity.graph();
    let unpinned = graph.unpinned_gpus(machine);
    if unpinned > 0 {
        // Docker picks those GPUs at start: any set named could be one of them.
        return Err(format!(
            "no free GPU set on {machine} can be named while {unpinned} GPU(s) there are \
             claimed with `count:`"
        ));
    }
    let inventory = capacity
        .machines
        .get(machine)
        .and_then(|m| m.inventory.as_deref());
    let split_into_mig = |gpu: &u32| inventory.is_some_and(|i| is_partitioned(i, *gpu));
    let (split, free): (Vec<u32>, Vec<u32>) = graph
        .free_gpus(machine)
        .unwrap_or_default()
        .into_iter()
        .partition(split_into_mig);
    let mut why = format!(
        "{machine} has no {} free GPU(s) (free: {})",
        request.tensor_parallel,
        if free.is_empty() {
            "none".to_owned()
        } else {
            join(&free)
        }
    );
    if !split.is_empty() {
        let _ = write!(
            why,
            "; GPU {} split into MIG slices (not given whole)",
            join(&split)
        );
    }
    if let Some(held) = held.get(machine).filter(|h| !h.is_empty()) {
        let mut by_holder: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (gpu, holder) in held {
            by_holder.entry(holder).or_default().push(*gpu);
        }
        for (holder, gpus) in by_holder {
            let _ = write!(why, "; GPU {} claimed by {holder}", join(&gpus));
        }
    }
    Err(why)
}

/// What would fit `request` instead: the best free set on its machine (in
/// `capacity`: for a replacement, main without what it replaces) and the
/// best placements elsewhere (in `main`), leaving out what open proposals hold.
fn alternatives(
    capacity: &Fleet,
    main: &Fleet,
    request: &ProposalRequest,
    held: &HeldGpus,
) -> String {
    let here = match best_here(capacity, request, held) {
        Ok(best) => {
            // Its first reason is the set and its link: `GPUs 2, 3 linked by NVLink (NV12)`.
            let set = best
                .reasons
                .first()
                .cloned()
                .unwrap_or_else(|| format!("GPUs {}", join(&best.gpus)));
            let mut text = format!(
                "the best free set for TP {} on {}: {set}",
                request.tensor_parallel, request.machine
            );
            if !best.held_elsewhere.is_empty() {
                let _ = write!(
                    text,
                    " (GPU {} held by open proposals left out)",
                    join(&best.held_elsewhere)
                );
            }
            text
        }
        Err(why) => why,
    };
    format!("{here}{}", elsewhere(main, request, held))
}

/// Placements elsewhere a refusal offers.
const ELSEWHERE: usize = 3;

/// The planner's best placements of `request`'s TP on the other machines,
/// those with the machine's GPU model first.
fn elsewhere(main: &Fleet, request: &ProposalRequest, held: &HeldGpus) -> String {
    let tp = request.tensor_parallel;
    let machine = request.machine.as_str();
    let others = || {
        main.machines
            .keys()
            .filter(|name| name.as_str() != machine)
            .filter_map(|name| capacity_of(main, name))
    };
    // The machine's own GPU model first, then any.
    let mut query = planner_query(request, held, ELSEWHERE);
    query.gpu_model = main
        .machines
        .get(machine)
        .and_then(|m| m.inventory.as_deref())
        .and_then(|i| i.gpu_model.clone());
    let mut found = match query.gpu_model {
        Some(_) => find_placement_in(others(), &query).placements,
        None => Vec::new(),
    };
    if found.len() < ELSEWHERE {
        query.gpu_model = None;
        for placement in find_placement_in(others(), &query).placements {
            if found.len() < ELSEWHERE && !found.iter().any(|f| f.machine == placement.machine) {
                found.push(placement);
            }
        }
    }
    if found.is_empty() {
        format!("; no other machine has {tp} free GPU(s)")
    } else {
        let shown: Vec<String> = found.iter().map(Placement::brief).collect();
        format!("; best elsewhere for TP {tp}: {}", shown.join("; "))
    }
}

/// The port, GPU and TP checks against the production tree (for a
/// replacement, main without the deployment it replaces), with what would fit
/// instead (leaving out `proposed_gpus`, what open proposals hold there).
fn check_against(
    capacity: &Fleet,
    main_now: &Fleet,
    request: &ProposalRequest,
    held: &HeldGpus,
) -> Result<(), ProposalError> {
    let main = capacity;
    let machine = &request.machine;
    let refuse = |message: String| Err(ProposalError::Refused { message });
    let Some(info) = main.machines.get(machine) else {
        return Err(unknown_machine(main, machine));
    };
    let Some(inventory) = &info.inventory else {
        return refuse(format!(
            "machine `{machine}` has no inventory (machines/{machine}/machine.yaml): its GPUs \
             cannot be checked, so nothing is proposed on it; add the inventory first"
        ));
    };
    let claims = machine_claims(main, machine);
    let wanted = PortBinding::directory(request.port);
    for other in &claims {
        if other.ports.iter().any(|p| p.binding.clashes(&wanted)) {
            let file = main
                .deployments
                .get(other.id)
                .map_or("", |d| d.compose_path.as_str());
            return refuse(format!(
                "host port {} on {machine} is already published by {} ({file}); free ports near it: {}",
                request.port,
                other.id,
                ports_text(&free_ports_after(&claims, request.port, 3))
            ));
        }
    }
    let gpus = inventory.gpus;
    if request.tensor_parallel > gpus {
        return refuse(format!(
            "tensor_parallel {} does not fit {machine}, which has {gpus} GPU(s){}",
            request.tensor_parallel,
            elsewhere(main_now, request, held)
        ));
    }
    let missing: Vec<u32> = request
        .gpu_ids
        .iter()
        .copied()
        .filter(|g| *g >= gpus)
        .collect();
    let unpinned = main.graph().unpinned_gpus(machine);
    let mut held_by = Vec::new();
    for gpu in &request.gpu_ids {
        let holders = main.graph().holders(machine, &gpu.to_string());
        if !holders.is_empty() {
            let names: Vec<String> = holders.iter().map(|h| h.display_name()).collect();
            held_by.push(format!("GPU {gpu} is held by {}", names.join(", ")));
        }
    }
    if missing.is_empty() && held_by.is_empty() && unpinned == 0 {
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
    if !held_by.is_empty() {
        if !message.is_empty() {
            message.push_str("; ");
        }
        message.push_str(&held_by.join("; "));
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
        ". {}",
        alternatives(capacity, main_now, request, held)
    );
    refuse(message)
}

/// Refuses when an open proposal changes the same deployment differently, or
/// claims one of the GPUs or the port the result holds for it.
fn check_pending(
    main: &Fleet,
    after: &Fleet,
    id: &DeploymentId,
    pending: &[PendingProposal<'_>],
) -> Result<(), ProposalError> {
    let id_text = id.to_string();
    let mut conflicts = Vec::new();
    let ours = after.deployments.get(id);
    for proposal in pending {
        let changed = proposal
            .changed
            .clone()
            .unwrap_or_else(|| differs_from_main(main, proposal.fleet));
        if changed.contains(id) {
            // The same change (the same file, or both remove it) is the same proposal.
            let theirs = proposal.fleet.deployments.get(id);
            let same = match (ours, theirs) {
                (None, None) => true,
                (Some(a), Some(b)) => a.content.is_some() && a.content == b.content,
                _ => false,
            };
            if !same {
                let what = match theirs {
                    None => format!("removing {id}"),
                    Some(_) if main.deployments.contains_key(id) => format!("a change of {id}"),
                    Some(_) => id_text.clone(),
                };
                let file = theirs.map_or_else(String::new, |t| format!(" ({})", t.compose_path));
                conflicts.push(format!("{}: proposes {what} too{file}", proposal.label));
            }
            continue;
        }
        for finding in
            pending_conflicts_of(after, proposal.fleet, &proposal.head_ref, Some(&changed))
        {
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

/// Ports as a refusal lists them: `8001, 8002, 8003`.
fn ports_text(ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    ports.join(", ")
}

fn describe_deployment(deployment: &Deployment) -> String {
    let model = deployment
        .main_service()
        .and_then(|s| s.model_name.clone().or_else(|| s.model_path.clone()));
    match model {
        Some(model) => format!("{} ({model})", deployment.id),
        None => deployment.id.to_string(),
    }
}
