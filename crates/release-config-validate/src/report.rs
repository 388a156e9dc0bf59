//! The report every format renders: findings (with their "new" flag in
//! diff-aware mode), what was validated, and the topology.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use topology::engine::Fleet;
use topology::{Finding, Severity, Summary};

/// One finding as reported. `new` is `None` without `--base`; with `--base` it
/// says whether the finding's fingerprint is absent at the base revision.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedFinding {
    pub finding: Finding,
    pub new: Option<bool>,
    /// The ref whose files the related locations point into, when that is
    /// not the head: a PENDING001 finding's other side is in the proposal.
    pub related_at: Option<String>,
}

impl ReportedFinding {
    /// A finding of the head, without diff-aware information.
    pub fn new(finding: Finding) -> ReportedFinding {
        ReportedFinding {
            finding,
            new: None,
            related_at: None,
        }
    }

    /// Whether this finding counts against the run: pre-existing findings
    /// (`new == Some(false)`) never do.
    pub fn counts(&self) -> bool {
        self.new != Some(false) && self.finding.suppressed.is_none()
    }
}

/// The Git revision a report is about (absent for a plain directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevisionInfo {
    /// The name the user gave (`main`, `origin/pr/12`, a commit id), if any.
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub refname: Option<String>,
    pub commit: String,
    pub short: String,
    pub summary: String,
}

/// Everything a renderer needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Sorted the way the engine sorts: path, line, column, rule.
    pub findings: Vec<ReportedFinding>,
    /// The head: `None` when read from a directory.
    pub revision: Option<RevisionInfo>,
    /// The base of a diff-aware run (`--base`).
    pub base: Option<RevisionInfo>,
    /// The baseline file of the run (`--baseline`), and its entries that no longer occur.
    pub baseline: Option<crate::baseline::BaselineUse>,
    /// How many machines and deployments were checked (after `--machine`).
    pub machines: usize,
    pub deployments: usize,
    /// The engine's topology (all machines, or the one of `--machine`).
    pub topology: Topology,
    /// `--format markdown`: the machines the change touches, before and after.
    pub changes: Vec<crate::markdown::MachineChange>,
}

/// The topology the JSON report carries. It is serialised from the analysed
/// fleet machine by machine as the report is written, never built whole: at
/// 20,000 machines it is 25 of a 47 MB report, and as one `serde_json::Value`
/// it was most of the run's peak memory.
#[derive(Clone, Default)]
pub enum Topology {
    /// Not asked for (every format but JSON): `null`.
    #[default]
    None,
    /// The analysed head: every machine (an array), or the one of `--machine`
    /// (an object).
    Fleet {
        fleet: Arc<Fleet>,
        machine: Option<String>,
    },
    /// Given as data (a report built by hand).
    Value(serde_json::Value),
}

impl Serialize for Topology {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Topology::None => serializer.serialize_unit(),
            Topology::Fleet {
                fleet,
                machine: Some(machine),
            } => fleet.machine_topology(machine).serialize(serializer),
            Topology::Fleet {
                fleet,
                machine: None,
            } => serializer.collect_seq(fleet.each_machine_topology()),
            Topology::Value(value) => value.serialize(serializer),
        }
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topology::None => f.write_str("None"),
            Topology::Fleet { fleet, machine } => f
                .debug_struct("Fleet")
                .field("machines", &fleet.machines.len())
                .field("machine", machine)
                .finish(),
            Topology::Value(value) => f.debug_tuple("Value").field(value).finish(),
        }
    }
}

/// The same fleet (not compared machine by machine), or equal data.
impl PartialEq for Topology {
    fn eq(&self, other: &Topology) -> bool {
        match (self, other) {
            (Topology::None, Topology::None) => true,
            (
                Topology::Fleet { fleet, machine },
                Topology::Fleet {
                    fleet: other_fleet,
                    machine: other_machine,
                },
            ) => Arc::ptr_eq(fleet, other_fleet) && machine == other_machine,
            (Topology::Value(a), Topology::Value(b)) => a == b,
            _ => false,
        }
    }
}

/// Counts by severity, plus how many of them are new in diff-aware mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Not counting suppressed findings.
    pub all: Summary,
    /// `Some` with `--base`: counts of the new findings only.
    pub new: Option<Summary>,
    /// Findings suppressed in the files (with a reason).
    pub suppressed: usize,
}

impl Counts {
    /// Error-severity findings that fail the run (new ones with `--base`).
    pub fn failing_errors(&self) -> usize {
        self.new.unwrap_or(self.all).errors
    }
}

impl Report {
    /// A report without diff-aware information.
    pub fn new(findings: Vec<Finding>) -> Report {
        Report {
            findings: findings.into_iter().map(ReportedFinding::new).collect(),
            revision: None,
            base: None,
            baseline: None,
            machines: 0,
            deployments: 0,
            topology: Topology::None,
            changes: Vec::new(),
        }
    }

    pub fn counts(&self) -> Counts {
        let all = Summary::of(self.findings.iter().map(|f| &f.finding));
        let new = self.diff_aware().then(|| {
            Summary::of(
                self.findings
                    .iter()
                    .filter(|f| f.new == Some(true))
                    .map(|f| &f.finding),
            )
        });
        Counts {
            all,
            new,
            suppressed: self.suppressed(),
        }
    }

    /// Findings accepted in the file with a reason.
    pub fn suppressed(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.finding.suppressed.is_some())
            .count()
    }

    /// Whether findings are told new from pre-existing (`--base`, `--baseline`).
    pub fn diff_aware(&self) -> bool {
        self.base.is_some() || self.baseline.is_some()
    }

    /// True when the run fails: at least one error-severity finding that counts.
    pub fn failed(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.counts() && f.finding.severity == Severity::Error)
    }
}

/// Marks each head finding new unless a finding with the same fingerprint
/// exists at the base.
pub fn mark_new(head: Vec<Finding>, base: &[Finding]) -> Vec<ReportedFinding> {
    let mut reported: Vec<ReportedFinding> = head.into_iter().map(ReportedFinding::new).collect();
    mark_new_in(&mut reported, base);
    reported
}

/// [`mark_new`] on findings already wrapped.
pub fn mark_new_in(head: &mut [ReportedFinding], base: &[Finding]) {
    let known: HashSet<&str> = base.iter().map(|f| f.fingerprint.as_str()).collect();
    for reported in head {
        reported.new = Some(!known.contains(reported.finding.fingerprint.as_str()));
    }
}

/// `3 errors, 1 warning`; `no findings` when there are none. In diff-aware
/// mode the new ones follow, so that a passing run with errors says why:
/// `2 errors, 1 warning (1 new: 1 warning)`, `1 error (none new)`.
pub fn summary_line(counts: &Counts) -> String {
    let mut line = count_list(counts.all).unwrap_or_else(|| "no findings".to_owned());
    if let Some(new) = counts.new
        && count_list(counts.all).is_some()
    {
        let fresh = new.errors + new.warnings + new.infos;
        match count_list(new) {
            Some(list) => line.push_str(&format!(" ({fresh} new: {list})")),
            None => line.push_str(" (none new)"),
        }
    }
    if counts.suppressed > 0 {
        line.push_str(&format!("; {} suppressed", counts.suppressed));
    }
    line
}

/// `3 errors, 1 warning`, or `None` for no finding at all.
fn count_list(summary: Summary) -> Option<String> {
    let parts: Vec<String> = [
        (summary.errors, "error", "errors"),
        (summary.warnings, "warning", "warnings"),
        (summary.infos, "info", "infos"),
    ]
    .into_iter()
    .filter(|(n, _, _)| *n > 0)
    .map(|(n, one, many)| format!("{n} {}", if n == 1 { one } else { many }))
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// `8 machines, 23 deployments`, with the revision when there is one.
pub fn scope_line(report: &Report) -> String {
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut line = format!(
        "checked {}, {}",
        plural(report.machines, "machine", "machines"),
        plural(report.deployments, "deployment", "deployments")
    );
    if let Some(revision) = &report.revision {
        line.push_str(" at ");
        line.push_str(&describe_revision(revision));
    }
    if let Some(base) = &report.base {
        line.push_str(" against base ");
        line.push_str(&describe_revision(base));
    }
    if let Some(baseline) = &report.baseline {
        line.push_str(&format!(" and baseline {}", baseline.path));
    }
    line
}

/// With `--baseline`: the entries that no longer occur, as lines for humans (none when every
/// entry still matches).
pub fn stale_lines(report: &Report) -> Vec<String> {
    let Some(baseline) = &report.baseline else {
        return Vec::new();
    };
    if baseline.stale.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!(
        "baseline {}: {} of {} entries no longer occur (fixed); `--write-baseline {}` drops them:",
        baseline.path,
        baseline.stale.len(),
        baseline.entries,
        baseline.path
    )];
    for entry in &baseline.stale {
        lines.push(format!(
            "  {} {}{}: {}",
            entry.rule,
            entry.path,
            entry
                .machine
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            entry.message
        ));
    }
    lines
}

/// `main (1a2b3c4)` or just `1a2b3c4`.
pub fn describe_revision(revision: &RevisionInfo) -> String {
    match &revision.refname {
        Some(name) if name != &revision.commit && name != &revision.short => {
            format!("{name} ({})", revision.short)
        }
        _ => revision.short.clone(),
    }
}

#[cfg(test)]
mod tests {
    use topology::{Location, Rule};

    use super::*;

    fn finding(rule: Rule, subject: &str) -> Finding {
        Finding::new(
            rule,
            Some("m1"),
            ["m1:8000".to_owned()],
            [subject.to_owned()],
            Location::new("a", 1, 1),
            "x",
        )
    }

    #[test]
    fn summary_lines() {
        let check = |all: Summary, new: Option<Summary>, expected: &str| {
            assert_eq!(
                summary_line(&Counts {
                    all,
                    new,
                    suppressed: 0
                }),
                expected
            );
        };
        let s = |errors, warnings, infos| Summary {
            errors,
            warnings,
            infos,
        };
        check(s(0, 0, 0), None, "no findings");
        check(s(0, 0, 0), Some(s(0, 0, 0)), "no findings");
        check(s(1, 0, 0), None, "1 error");
        check(
            s(3, 1, 0),
            Some(s(1, 1, 0)),
            "3 errors, 1 warning (2 new: 1 error, 1 warning)",
        );
        check(s(0, 2, 2), None, "2 warnings, 2 infos");
        check(s(2, 0, 1), Some(s(0, 0, 0)), "2 errors, 1 info (none new)");
        check(
            s(2, 1, 0),
            Some(s(0, 1, 0)),
            "2 errors, 1 warning (1 new: 1 warning)",
        );
    }

    #[test]
    fn new_is_decided_by_fingerprint() {
        let base = vec![finding(Rule::Gpu001, "3")];
        let head = vec![finding(Rule::Gpu001, "3"), finding(Rule::Gpu001, "4")];
        let marked = mark_new(head, &base);
        assert_eq!(
            marked.iter().map(|f| f.new).collect::<Vec<_>>(),
            [Some(false), Some(true)]
        );
        let mut report = Report::new(Vec::new());
        report.findings = marked;
        report.base = Some(RevisionInfo {
            refname: Some("main".into()),
            commit: "c".into(),
            short: "c".into(),
            summary: String::new(),
        });
        assert!(report.failed());
        assert_eq!(report.counts().failing_errors(), 1);
        report.findings.truncate(1);
        assert!(!report.failed());
    }
}
