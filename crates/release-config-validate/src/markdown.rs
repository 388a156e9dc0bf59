//! `--format markdown`: what a reviewer of a production change wants to see, as the action's
//! sticky pull-request comment. For each machine the change touches, its GPU map before and
//! after (who holds each GPU, free GPUs per NUMA domain, ports), then the new findings, with the
//! pre-existing ones folded away. Without `--base` every machine with a finding is shown, as it
//! is now.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use topology::Severity;
use topology::engine::MachineTopology;

use crate::github::{code_span, markdown_text as text};
use crate::report::{Report, ReportedFinding};

/// GitHub refuses a comment over 65,536 characters; the maps stop well before.
pub const MAX_BYTES: usize = 60_000;
/// Machines shown at most (the job summary and SARIF have everything).
pub const MAX_MACHINES: usize = 25;

/// One machine as the base had it and as the head has it (`None`: absent there).
#[derive(Debug, Clone, PartialEq)]
pub struct MachineChange {
    pub machine: String,
    pub before: Option<MachineTopology>,
    pub after: Option<MachineTopology>,
}

pub fn render(report: &Report) -> String {
    let mut out = crate::github::heading(report);
    if report.changes.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            if report.base.is_some() {
                "No machine's GPUs, ports or findings change."
            } else {
                "No machine has a finding."
            }
        );
    }
    let mut shown_findings = BTreeSet::new();
    for (index, change) in report.changes.iter().enumerate() {
        if index == MAX_MACHINES || out.len() > MAX_BYTES {
            let _ = writeln!(
                out,
                "\n_{} more machines change; the job summary and the SARIF report list every finding._",
                report.changes.len() - index
            );
            break;
        }
        machine(&mut out, change, report, &mut shown_findings);
    }
    let rest: Vec<&ReportedFinding> = report
        .findings
        .iter()
        .enumerate()
        .filter(|(i, f)| !shown_findings.contains(i) && f.counts())
        .map(|(_, f)| f)
        .collect();
    if !rest.is_empty() && out.len() <= MAX_BYTES {
        let _ = writeln!(out, "\n### Other findings\n");
        for finding in rest {
            line(&mut out, finding);
        }
    }
    out
}

fn machine(out: &mut String, change: &MachineChange, report: &Report, shown: &mut BTreeSet<usize>) {
    let current = change.after.as_ref().or(change.before.as_ref());
    let what = match (&change.before, &change.after) {
        (None, Some(_)) if report.base.is_some() => " (new machine)",
        (Some(_), None) => " (removed)",
        _ => "",
    };
    let hardware = current
        .and_then(|t| {
            Some(format!(
                "{}× {}{}",
                t.gpu_count?,
                t.gpu_model.as_deref().unwrap_or("GPU"),
                t.interconnect
                    .map(|i| format!(", {}", i.as_str()))
                    .unwrap_or_default()
            ))
        })
        .unwrap_or_else(|| "no inventory".to_owned());
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "### {}{what}: {}\n",
        code_span(&change.machine),
        text(&hardware)
    );

    let gpus: BTreeSet<u32> = [&change.before, &change.after]
        .into_iter()
        .flatten()
        .flat_map(|t| {
            let counted = (0..t.gpu_count.unwrap_or(0)).collect::<Vec<u32>>();
            let held: Vec<u32> = t
                .gpu_holders
                .iter()
                .filter_map(|held| held.gpu.parse().ok())
                .collect();
            counted.into_iter().chain(held)
        })
        .collect();
    let holders = |t: &Option<MachineTopology>, gpu: u32| -> String {
        match t {
            None => "—".to_owned(),
            Some(t) => match t.holders_of(&gpu.to_string()) {
                [] => "free".to_owned(),
                holders => holders
                    .iter()
                    .map(|h| code_span(&h.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
            },
        }
    };
    let diff_aware = report.base.is_some();
    if !gpus.is_empty() {
        if diff_aware {
            let _ = writeln!(out, "| GPU | before | after |\n|---|---|---|");
        } else {
            let _ = writeln!(out, "| GPU | held by |\n|---|---|");
        }
        for gpu in &gpus {
            let after = holders(&change.after, *gpu);
            if diff_aware {
                let before = holders(&change.before, *gpu);
                let after = if before == after {
                    after
                } else {
                    format!("**{after}**")
                };
                let _ = writeln!(out, "| {gpu} | {before} | {after} |");
            } else {
                let _ = writeln!(out, "| {gpu} | {after} |");
            }
        }
        out.push('\n');
    }
    let free = |t: &Option<MachineTopology>| -> String {
        let domains: Option<Vec<Vec<u32>>> = t.as_ref().and_then(|t| {
            t.free_by_numa
                .clone()
                .or_else(|| t.free_gpus.clone().map(|free| vec![free]))
        });
        match domains {
            Some(domains) => domains
                .iter()
                .map(|d| {
                    format!(
                        "[{}]",
                        d.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
            None => "unknown".to_owned(),
        }
    };
    let ports = |t: &Option<MachineTopology>| -> String {
        let ports: BTreeSet<u16> = t
            .iter()
            .flat_map(|t| t.deployments.iter().flat_map(|d| d.ports.iter().copied()))
            .collect();
        if ports.is_empty() {
            "none".to_owned()
        } else {
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    if diff_aware {
        let _ = writeln!(
            out,
            "Free GPUs per NUMA domain: {} → {}  \nPorts: {} → {}\n",
            free(&change.before),
            free(&change.after),
            ports(&change.before),
            ports(&change.after)
        );
    } else {
        let _ = writeln!(
            out,
            "Free GPUs per NUMA domain: {}  \nPorts: {}\n",
            free(&change.after),
            ports(&change.after)
        );
    }
    let mine: Vec<(usize, &ReportedFinding)> = report
        .findings
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            f.finding.machine.as_deref() == Some(change.machine.as_str())
                || f.finding
                    .location
                    .path
                    .starts_with(&format!("machines/{}/", change.machine))
        })
        .collect();
    let (new, old): (Vec<_>, Vec<_>) = mine.iter().partition(|(_, f)| f.counts());
    for (index, _) in &mine {
        shown.insert(*index);
    }
    if new.is_empty() && old.is_empty() {
        let _ = writeln!(out, "No findings.");
    }
    if !new.is_empty() {
        let _ = writeln!(
            out,
            "{}:\n",
            if diff_aware {
                "New findings"
            } else {
                "Findings"
            }
        );
        for (_, finding) in &new {
            line(out, finding);
        }
    }
    if !old.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} pre-existing or suppressed</summary>\n",
            old.len()
        );
        for (_, finding) in &old {
            line(out, finding);
        }
        let _ = writeln!(out, "\n</details>");
    }
}

fn line(out: &mut String, reported: &ReportedFinding) {
    let finding = &reported.finding;
    let icon = match finding.severity {
        Severity::Error => ":x:",
        Severity::Warning => ":warning:",
        Severity::Info => ":information_source:",
    };
    let mut note = String::new();
    if let Some(reason) = &finding.suppressed {
        note = format!(" _(suppressed: {})_", text(reason));
    }
    let _ = writeln!(
        out,
        "- {icon} **{}** {}: {}{note}",
        finding.rule.code(),
        code_span(&finding.location.to_string()),
        text(&finding.message)
    );
}
