//! INV001: machine has no inventory.
//!
//! Once per machine without `machine.yaml`. A machine whose inventory exists but cannot
//! be read gets RC001/RC002 instead, not INV001 too.

use super::*;

pub(super) const SEVERITY: Severity = Severity::Info;
pub(super) const SUMMARY: &str = "machine has no inventory";
pub(super) const NOT_REPORTED_WHEN: &str =
    "`machine.yaml` exists but is unusable (RC001/RC002 say why instead)";
pub(super) const EXPLANATION: &str = include_str!("inv001.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    let machine = cx.machine;
    if machine.inventory.is_some() || machine.inventory_path.is_some() {
        return;
    }
    findings.push(Finding::new(
        Rule::Inv001,
        Some(&machine.name),
        Vec::new(),
        Vec::new(),
        Location::file(machine.dir_path()),
        format!(
            "machine {} has no inventory ({}/machine.yaml): GPU ids, GPU counts and memory on it are not checked",
            machine.name,
            machine.dir_path()
        ),
    ));
}
