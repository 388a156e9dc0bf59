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
            // Why the GPU is not on the machine, and where the inventory says so.
            let (why, inventory_at) = match decimal_gpu_id(&gpu.id) {
                Some(n) if n < u64::from(inventory.gpus) => continue,
                Some(_) => {
                    let range = if inventory.gpus == 0 {
                        "none".to_owned()
                    } else {
                        format!("0-{}", inventory.gpus - 1)
                    };
                    (
                        format!(
                            " but {} has {} GPU(s) (ids {range})",
                            machine.name, inventory.gpus
                        ),
                        inventory.gpus_at.clone(),
                    )
                }
                None if inventory.lists_uuids()
                    && inventory.identify(&gpu.id) == GpuIdentity::UnknownUuid =>
                {
                    (
                        format!(
                            ", which is not a GPU or MIG slice of {} (its machine.yaml lists their UUIDs)",
                            machine.name
                        ),
                        None,
                    )
                }
                None => continue,
            };
            let mut finding = Finding::new(
                Rule::Gpu002,
                Some(&machine.name),
                [holder.id()],
                [gpu.id.to_string()],
                holder.service.at(gpu.pos),
                format!("{} uses GPU {}{why}", holder.name(), gpu.id),
            );
            let inventory_at = inventory_at.or_else(|| {
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
