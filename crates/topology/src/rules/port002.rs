//! PORT002: no service of the deployment publishes the port its directory names.
//!
//! Any service counts (a proxy sidecar may front the model server). Deployments without
//! services (unreadable files) are left to RC001/RC002.

use super::*;

pub(super) const SEVERITY: Severity = Severity::Warning;
pub(super) const SUMMARY: &str =
    "the port directory is not among the host ports the service publishes";
pub(super) const NOT_REPORTED_WHEN: &str =
    "the deployment has no services (unreadable or empty file)";
pub(super) const EXPLANATION: &str = include_str!("port002.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    for deployment in &cx.deployments {
        one_deployment(cx.machine, deployment, findings);
    }
}

fn one_deployment(machine: &Machine, deployment: &Deployment, findings: &mut Vec<Finding>) {
    let port = deployment.id.port;
    if deployment.services.is_empty()
        || deployment
            .services
            .iter()
            .any(|s| s.ports.iter().any(|p| p.host == port))
    {
        return;
    }
    let Some(main) = deployment.main_service() else {
        return;
    };
    let published: Vec<String> = deployment
        .services
        .iter()
        .flat_map(|s| s.ports.iter().map(|p| p.host.to_string()))
        .collect();
    let what = if published.is_empty() {
        "publishes no host port".to_owned()
    } else {
        format!(
            "publishes host {} {}",
            plural(published.len(), "port", "ports"),
            published.join(", ")
        )
    };
    let location = main
        .ports
        .first()
        .map_or_else(|| main.location.clone(), |p| p.pos.clone());
    findings.push(Finding::new(
        Rule::Port002,
        Some(&machine.name),
        [deployment.id.to_string()],
        [port.to_string()],
        location,
        format!(
            "deployment {} lives in port directory {port} but {}",
            deployment.id,
            if deployment.services.len() == 1 {
                format!("its service {what}")
            } else {
                format!("no service publishes it (it {what})")
            }
        ),
    ));
}
