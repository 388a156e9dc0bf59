//! TP003: the tensor parallel size does not split the model's attention heads
//! (`catapult.num_attention_heads`) evenly, or its key/value heads
//! (`catapult.num_kv_heads`, grouped-query attention) neither evenly nor by replication.
//!
//! Needs the labels; without them the model's heads are unknown and the rule is skipped.
//! The message lists the sizes that work, up to the machine's GPU count when known.

use super::*;
use crate::finding::Related;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "TP does not divide num_attention_heads (or fit num_kv_heads)";
pub(super) const NOT_REPORTED_WHEN: &str = "labels absent";
pub(super) const EXPLANATION: &str = include_str!("tp003.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    for holder in &cx.holders {
        let service = holder.service;
        let (heads, kv_heads) = (service.num_attention_heads, service.num_kv_heads);
        if heads.is_none() && kv_heads.is_none() {
            continue;
        }
        let tp = service.tensor_parallel.max(1);
        if tp_fits_heads(tp, heads, kv_heads) {
            continue;
        }
        let heads_fit = heads.is_none_or(|h| h.is_multiple_of(tp));
        let (what, at) = if heads_fit {
            (
                format!(
                    "{} KV heads can neither be split evenly over nor replicated to tensor parallel size {tp}",
                    kv_heads.unwrap_or_default()
                ),
                service.located(service.num_kv_heads_at),
            )
        } else {
            (
                format!(
                    "{} attention heads cannot be split evenly over tensor parallel size {tp}",
                    heads.unwrap_or_default()
                ),
                service.located(service.num_attention_heads_at),
            )
        };
        // Sizes that work, up to what the machine (or the model) can take.
        let limit = cx
            .inventory()
            .map(|i| i.gpus)
            .filter(|g| *g > 0)
            .or(heads)
            .unwrap_or(64)
            .min(1024);
        let valid: Vec<String> = (1..=limit)
            .filter(|t| tp_fits_heads(*t, heads, kv_heads))
            .map(|t| t.to_string())
            .collect();
        let mut finding = Finding::new(
            Rule::Tp003,
            Some(&cx.machine.name),
            [holder.id()],
            [holder.subject()],
            at.unwrap_or_else(|| service.location.clone()),
            format!(
                "{}: {what} (sizes that work{}: {})",
                holder.name(),
                cx.inventory()
                    .map(|i| format!(" on {}'s {} GPUs", cx.machine.name, i.gpus))
                    .unwrap_or_default(),
                if valid.is_empty() {
                    "none".to_owned()
                } else {
                    valid.join(", ")
                }
            ),
        );
        if let Some(at) = service.located(service.tensor_parallel_at) {
            finding.related.push(Related {
                location: at,
                message: "tensor parallel size set here".into(),
            });
        }
        findings.push(finding);
    }
}
