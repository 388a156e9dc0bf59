//! MEM001: weight bytes per GPU exceed `gpu_memory_gb` x the server's memory fraction.
//!
//! Weights per GPU = params_b x bytes per parameter / (TP x PP) (data parallel replicas
//! each hold a full copy). Needs `catapult.params_b`, the inventory's `gpu_memory_gb` and
//! a known dtype (none given means `auto`, 2 bytes).

use super::*;
use crate::finding::Related;

pub(super) const SEVERITY: Severity = Severity::Warning;
pub(super) const SUMMARY: &str = "weight bytes per GPU exceed gpu_memory_gb x memory utilisation";
pub(super) const NOT_REPORTED_WHEN: &str =
    "no `catapult.params_b`, no `gpu_memory_gb`, unknown dtype";
pub(super) const EXPLANATION: &str = include_str!("mem001.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    let Some(memory_gb) = cx.inventory().and_then(|i| i.gpu_memory_gb) else {
        return;
    };
    for holder in &cx.holders {
        let service = holder.service;
        let Some(params_b) = service.params_b else {
            continue;
        };
        let Some(bytes) = service.bytes_per_param() else {
            continue;
        };
        // Exact in f64 (a u32 product could overflow).
        let split = f64::from(service.tensor_parallel) * f64::from(service.pipeline_parallel);
        let per_gpu = params_b * bytes / split;
        let budget = memory_gb * service.memory_utilization;
        if per_gpu <= budget {
            continue;
        }
        let dtype = service.dtype.as_deref().unwrap_or("auto");
        let mut finding = Finding::new(
            Rule::Mem001,
            Some(&cx.machine.name),
            [holder.id()],
            [holder.subject()],
            service
                .located(service.params_b_at)
                .unwrap_or_else(|| service.location.clone()),
            format!(
                "{}: {params_b}B parameters in {dtype} over TP {} x PP {} need {per_gpu:.1} GB of weights per GPU, more than {memory_gb} GB x {} = {budget:.1} GB on {}",
                holder.name(),
                service.tensor_parallel,
                service.pipeline_parallel,
                service.memory_utilization,
                cx.machine.name
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
