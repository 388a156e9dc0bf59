//! Baselines: a repository adopting the validator with old findings records them once
//! (`--write-baseline FILE`), and later runs (`--baseline FILE`) report those as pre-existing,
//! like `--base` does, and list the entries that no longer occur, so the file shrinks as things
//! are fixed. Entries are matched by fingerprint (rule, machine, deployments, subjects: stable
//! across runs and line moves); rule, machine, path and message are there for the humans
//! reading the file in review.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use topology::Rule;

use crate::pipeline::ValidateError;
use crate::report::ReportedFinding;

/// The file format's version; a file of another version is refused with a message.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineFile {
    pub version: u32,
    pub findings: Vec<BaselineEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineEntry {
    pub fingerprint: String,
    pub rule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    pub path: String,
    pub message: String,
}

/// A baseline as a run used it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineUse {
    /// As given on the command line.
    pub path: String,
    /// Entries in the file.
    pub entries: usize,
    /// Entries no finding of this run matches (fixed since): to be dropped from the file.
    pub stale: Vec<BaselineEntry>,
}

/// The entries for these findings: sorted by path, rule, machine and fingerprint, one per
/// fingerprint. PENDING001 is left out: it is about proposals in flight, not debt.
pub fn entries(findings: &[ReportedFinding]) -> Vec<BaselineEntry> {
    let mut entries: Vec<BaselineEntry> = findings
        .iter()
        .map(|reported| &reported.finding)
        .filter(|finding| finding.rule != Rule::Pending001)
        .map(|finding| BaselineEntry {
            fingerprint: finding.fingerprint.clone(),
            rule: finding.rule.code().to_owned(),
            machine: finding.machine.clone(),
            path: finding.location.path.to_string(),
            message: finding.message.clone(),
        })
        .collect();
    entries.sort_by(|a, b| {
        (&a.path, &a.rule, &a.machine, &a.fingerprint).cmp(&(
            &b.path,
            &b.rule,
            &b.machine,
            &b.fingerprint,
        ))
    });
    let mut seen = HashSet::new();
    entries.retain(|entry| seen.insert(entry.fingerprint.clone()));
    entries
}

/// The file's text: pretty JSON, one entry per few lines, a trailing newline (diffs stay small).
pub fn render(entries: Vec<BaselineEntry>) -> String {
    let file = BaselineFile {
        version: VERSION,
        findings: entries,
    };
    let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
    text.push('\n');
    text
}

pub fn write(path: &Path, entries: Vec<BaselineEntry>) -> Result<(), ValidateError> {
    std::fs::write(path, render(entries)).map_err(|source| ValidateError::Baseline {
        path: path.to_owned(),
        problem: format!("cannot write it: {source}"),
    })
}

pub fn read(path: &Path) -> Result<Vec<BaselineEntry>, ValidateError> {
    let problem = |problem: String| ValidateError::Baseline {
        path: path.to_owned(),
        problem,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| problem(format!("cannot read it: {e}")))?;
    let file: BaselineFile = serde_json::from_str(&text).map_err(|e| {
        problem(format!(
            "line {}: {e} (write it with --write-baseline)",
            e.line()
        ))
    })?;
    if file.version != VERSION {
        return Err(problem(format!(
            "version {} is not the version {VERSION} this validator reads",
            file.version
        )));
    }
    Ok(file.findings)
}

/// Marks the findings the baseline lists as pre-existing (the others new, unless `--base`
/// already said they are not), and returns the entries nothing matched.
pub fn apply(findings: &mut [ReportedFinding], baseline: Vec<BaselineEntry>) -> Vec<BaselineEntry> {
    let listed: HashSet<&str> = baseline.iter().map(|e| e.fingerprint.as_str()).collect();
    let mut matched = HashSet::new();
    for reported in findings.iter_mut() {
        if listed.contains(reported.finding.fingerprint.as_str()) {
            reported.new = Some(false);
            matched.insert(reported.finding.fingerprint.clone());
        } else if reported.new.is_none() {
            reported.new = Some(true);
        }
    }
    baseline
        .into_iter()
        .filter(|entry| !matched.contains(&entry.fingerprint))
        .collect()
}
