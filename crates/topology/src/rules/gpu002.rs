//! GPU002: a pinned GPU the machine does not have: a decimal id at or above the
//! inventory's `gpus`, or a GPU or MIG UUID that `devices` does not list.
//!
//! UUIDs are checked only when `machine.yaml` lists UUIDs (its `devices`, as `inventory
//! import` writes them); without inventory the rule is skipped (INV001).

use super::*;
use crate::finding::Related;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "GPU id not on the machine";
pub(super) const NOT_REPORTED_WHEN: &str =
    "no usable inventory; UUIDs on a machine whose machine.yaml lists none; other names";
pub(super) const EXPLANATION: &str = include_str!("gpu002.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    let machine = cx.machine;
    let Some(inventory) = cx.inventory() else {
        return;
    };
    for holder in &cx.holders {
        let GpuClaim::Pinned(refs) = &holder.service.gpus else {
            continue;
        };
        for gpu in refs {
            let Some(n) = decimal_gpu_id(&gpu.id) else {
                if inventory.lists_uuids()
                    && inventory.identify(&gpu.id) == GpuIdentity::UnknownUuid
                {
                    let mut finding = Finding::new(
                        Rule::Gpu002,
                        Some(&machine.name),
                        [holder.id()],
                        [gpu.id.clone()],
                        gpu.pos.clone(),
                        format!(
                            "{} uses GPU {}, which is not a GPU or MIG slice of {} (its machine.yaml lists their UUIDs)",
                            holder.name(),
                            gpu.id,
                            machine.name
                        ),
                    );
                    if let Some(path) = &machine.inventory_path {
                        finding.related.push(Related {
                            location: Location::file(path.clone()),
                            message: format!("the inventory of {}", machine.name),
                        });
                    }
                    findings.push(finding);
                }
                continue;
            };
            if n < u64::from(inventory.gpus) {
                continue;
            }
            let range = if inventory.gpus == 0 {
                "none".to_owned()
            } else {
                format!("0-{}", inventory.gpus - 1)
            };
            let mut finding = Finding::new(
                Rule::Gpu002,
                Some(&machine.name),
                [holder.id()],
                [gpu.id.clone()],
                gpu.pos.clone(),
                format!(
                    "{} uses GPU {} but {} has {} GPU(s) (ids {range})",
                    holder.name(),
                    gpu.id,
                    machine.name,
                    inventory.gpus
                ),
            );
            let inventory_at = inventory.gpus_at.clone().or_else(|| {
                machine
                    .inventory_path
                    .as_ref()
                    .map(|path| Location::file(path.clone()))
            });
            if let Some(location) = inventory_at {
                finding.related.push(Related {
                    location,
                    message: format!("the inventory of {}", machine.name),
                });
            }
            findings.push(finding);
        }
    }
}
