//! TP003: `catapult.num_attention_heads` not divisible by the tensor parallel size.
//!
//! Needs the label; without it the model's heads are unknown and the rule is skipped.

use super::*;
use crate::finding::Related;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "num_attention_heads not divisible by TP";
pub(super) const NOT_REPORTED_WHEN: &str = "label absent";
pub(super) const EXPLANATION: &str = include_str!("tp003.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    for holder in &cx.holders {
        let service = holder.service;
        let Some(heads) = service.num_attention_heads else {
            continue;
        };
        if heads % service.tensor_parallel == 0 {
            continue;
        }
        let mut finding = Finding::new(
            Rule::Tp003,
            Some(&cx.machine.name),
            [holder.id()],
            [holder.subject()],
            service
                .num_attention_heads_at
                .clone()
                .unwrap_or_else(|| service.location.clone()),
            format!(
                "{}: {heads} attention heads cannot be split evenly over tensor parallel size {}",
                holder.name(),
                service.tensor_parallel
            ),
        );
        if let Some(at) = &service.tensor_parallel_at {
            finding.related.push(Related {
                location: at.clone(),
                message: "tensor parallel size set here".into(),
            });
        }
        findings.push(finding);
    }
}
