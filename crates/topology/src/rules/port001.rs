//! PORT001: one host port published by two services of the machine, in two deployments
//! or in one (Docker cannot bind it twice either way).
//!
//! Bindings to different specific addresses, or different protocols, do not clash (the
//! predicate is `capacity`'s, which a proptest holds this rule to). Each service
//! publishing a port is checked against the first earlier service (its owner) one of its
//! bindings clashes with; one finding per (service, owner), naming every port they clash
//! on, at the service's binding of the first, the owner's bindings as related locations.
//! A service binding one port twice itself is not PORT001.

use super::*;
use crate::compose::PublishedPort;
use crate::finding::Related;

pub(super) const SEVERITY: Severity = Severity::Error;
pub(super) const SUMMARY: &str = "one host port published by two deployments on one machine";
pub(super) const NOT_REPORTED_WHEN: &str =
    "different specific host addresses, or different protocols";
pub(super) const EXPLANATION: &str = include_str!("port001.md");
pub(super) const CHECK: Check = Check::Machine(check);

fn check(cx: &MachineContext<'_>, findings: &mut Vec<Finding>) {
    let (machine, holders) = (cx.machine, &cx.holders);
    /// The earliest binding of one port and protocol, by earlier services.
    #[derive(Default)]
    struct Earliest<'p> {
        /// Of any address: what a binding of every address clashes with first.
        any: Option<(usize, &'p PublishedPort)>,
        /// Of every address: clashes with any later binding.
        every_address: Option<(usize, &'p PublishedPort)>,
        /// Of each specific address.
        by_address: BTreeMap<&'p str, (usize, &'p PublishedPort)>,
    }
    let mut by_port: BTreeMap<u16, Vec<(usize, &PublishedPort)>> = BTreeMap::new();
    for (index, holder) in holders.iter().enumerate() {
        for port in &holder.service.ports {
            by_port.entry(port.host).or_default().push((index, port));
        }
    }
    type Pairs<'p> = BTreeMap<(usize, usize), Vec<(&'p PublishedPort, &'p PublishedPort)>>;
    let mut pairs: Pairs<'_> = BTreeMap::new();
    for users in by_port.values() {
        if users.len() < 2 {
            continue;
        }
        let mut earliest: BTreeMap<&str, Earliest<'_>> = BTreeMap::new();
        // `users` is in holder order: one chunk per service.
        for own in users.chunk_by(|a, b| a.0 == b.0) {
            let Some(&(index, _)) = own.first() else {
                continue;
            };
            // (owner, owner's binding, own binding) of the earliest clash.
            let mut clash: Option<(usize, &PublishedPort, &PublishedPort)> = None;
            for &(_, port) in own {
                let Some(seen) = earliest.get(&*port.protocol) else {
                    continue;
                };
                let first = if port.binds_every_address() {
                    seen.any
                } else {
                    let same = port
                        .host_ip
                        .as_deref()
                        .and_then(|ip| seen.by_address.get(ip).copied());
                    [seen.every_address, same]
                        .into_iter()
                        .flatten()
                        .min_by_key(|(h, _)| *h)
                };
                if let Some((owner, theirs)) = first
                    && clash.is_none_or(|(o, _, _)| owner < o)
                {
                    clash = Some((owner, theirs, port));
                }
            }
            if let Some((owner, theirs, port)) = clash {
                pairs
                    .entry((index, owner))
                    .or_default()
                    .push((port, theirs));
            }
            for &(_, port) in own {
                let seen = earliest.entry(&*port.protocol).or_default();
                seen.any.get_or_insert((index, port));
                if port.binds_every_address() {
                    seen.every_address.get_or_insert((index, port));
                } else if let Some(ip) = port.host_ip.as_deref() {
                    seen.by_address.entry(ip).or_insert((index, port));
                }
            }
        }
    }
    for ((index, owner_index), ports) in pairs {
        let (Some(holder), Some(owner)) = (holders.get(index), holders.get(owner_index)) else {
            continue;
        };
        let Some((primary, _)) = ports.first() else {
            continue;
        };
        let numbers: Vec<String> = ports.iter().map(|(p, _)| p.host.to_string()).collect();
        let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let mut finding = Finding::new(
            Rule::Port001,
            Some(&machine.name),
            [owner.id(), holder.id()],
            numbers.iter().cloned(),
            primary.pos.clone(),
            format!(
                "host {} {} on {} {} published by both {} and {}",
                plural(refs.len(), "port", "ports"),
                list(&refs),
                machine.name,
                plural(refs.len(), "is", "are"),
                holder.name(),
                owner.name()
            ),
        );
        for (_, theirs) in &ports {
            finding.related.push(Related {
                location: theirs.pos.clone(),
                message: format!("port {} is published by {} here", theirs.host, owner.name()),
            });
        }
        findings.push(finding);
    }
}
