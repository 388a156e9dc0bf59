//! PENDING001: claims of the head that an open proposal makes too.

#[allow(clippy::wildcard_imports)]
use super::*;

/// PENDING001: where `head` claims a GPU or port that an open proposal
/// (`pending`, the fleet at ref `refname`) claims too. The proposal's own
/// claims are its deployments whose compose/env content differs from (or is
/// absent in) `head`; identical content gives nothing. A proposal changing a
/// deployment does not conflict with that same deployment in `head`.
///
/// One finding per (head deployment, proposal deployment) pair, at the head's
/// claim, naming the ref like a lock names its holder.
pub fn pending_conflicts(head: &Fleet, pending: &Fleet, refname: &str) -> Vec<Finding> {
    pending_conflicts_of(head, pending, refname, None)
}

/// [`pending_conflicts`] with the proposal's claims limited to the
/// deployments it `changed` since it forked (`None`: all that differ from
/// `head`). A proposal based on an older main then does not claim what main
/// changed since, and a removal in it claims nothing.
pub fn pending_conflicts_of(
    head: &Fleet,
    pending: &Fleet,
    refname: &str,
    changed: Option<&BTreeSet<DeploymentId>>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    // The head's claims, computed once per deployment however many proposed
    // deployments share its machine.
    let mut head_claims: FxHashMap<&DeploymentId, DeploymentClaims<'_>> = FxHashMap::default();
    for (id, proposed) in &pending.deployments {
        if changed.is_some_and(|changed| !changed.contains(id)) {
            continue;
        }
        let unchanged = head.deployments.get(id).is_some_and(|current| {
            match (&current.content, &proposed.content) {
                (Some(a), Some(b)) => a == b,
                _ => **current == **proposed,
            }
        });
        if unchanged {
            continue;
        }
        let theirs = DeploymentClaims::of(pending, proposed);
        for current_id in head.graph().deployments_on(&id.machine) {
            if current_id == id {
                continue;
            }
            let Some(current) = head.deployments.get(current_id) else {
                continue;
            };
            let ours = head_claims
                .entry(current_id)
                .or_insert_with(|| DeploymentClaims::of(head, current));
            let mut subjects: Vec<String> = Vec::new();
            let mut primary: Option<Location> = None;
            let mut related: Vec<Related> = Vec::new();
            let mut gpu_ids: Vec<&str> = Vec::new();
            for (held, there) in ours.conflicting_gpus(&theirs) {
                let gpu = held.gpu.as_str();
                gpu_ids.push(gpu);
                subjects.push(format!("gpu:{gpu}"));
                primary.get_or_insert_with(|| held.at.clone());
                related.push(Related {
                    location: there.at.clone(),
                    message: format!("GPU {gpu} is claimed by {refname} ({}) here", proposed.id),
                });
            }
            let mut port_numbers: Vec<String> = Vec::new();
            for (held, there) in ours.clashing_ports(&theirs) {
                let port = held.binding.port;
                port_numbers.push(port.to_string());
                subjects.push(format!("port:{port}"));
                primary.get_or_insert_with(|| held.at.clone());
                related.push(Related {
                    location: there.at.clone(),
                    message: format!("port {port} is claimed by {refname} ({}) here", proposed.id),
                });
            }
            let Some(primary) = primary else { continue };
            let mut what = Vec::new();
            if !gpu_ids.is_empty() {
                what.push(format!("GPU {}", gpu_ids.join(", ")));
            }
            if !port_numbers.is_empty() {
                what.push(format!("port {}", port_numbers.join(", ")));
            }
            subjects.push(format!("ref:{refname}"));
            let mut finding = Finding::new(
                Rule::Pending001,
                Some(&id.machine),
                [current_id.to_string(), proposed.id.to_string()],
                subjects,
                primary,
                format!(
                    "{} on {} is held by {} here and claimed by the open proposal {refname} ({})",
                    what.join(" and "),
                    id.machine,
                    current_id,
                    proposed.id
                ),
            );
            finding.related = related;
            // release-config.toml of the head decides PENDING001's severity too.
            if let Some(severity) = head.config.severity(Rule::Pending001) {
                finding.severity = severity;
                out.push(finding);
            }
        }
    }
    out.sort_by(|a, b| {
        a.location
            .cmp(&b.location)
            .then_with(|| a.message.cmp(&b.message))
    });
    out
}
