//! Findings: what validation reports, with stable fingerprints.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Error` sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub use crate::rules::Rule;

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A position in a file of the repository. `path` is repository-relative with `/`
/// separators; `line` and `column` are 1-based (0 when the finding concerns the
/// file or directory as a whole).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Location {
    /// Shared: a compose file's many positions (every service key, GPU claim,
    /// port) name one path, stored once.
    pub path: Arc<str>,
    pub line: u32,
    pub column: u32,
}

impl Location {
    pub fn new(path: impl LocationPath, line: u32, column: u32) -> Location {
        Location {
            path: path.into_path(),
            line,
            column,
        }
    }

    /// A location naming a whole file or directory.
    pub fn file(path: impl LocationPath) -> Location {
        Location {
            path: path.into_path(),
            line: 0,
            column: 0,
        }
    }
}

/// What a [`Location`]'s path is made from: an `Arc<str>` is shared, any
/// other string copied once.
pub trait LocationPath {
    fn into_path(self) -> Arc<str>;
}

impl LocationPath for Arc<str> {
    fn into_path(self) -> Arc<str> {
        self
    }
}

impl LocationPath for &Arc<str> {
    fn into_path(self) -> Arc<str> {
        Arc::clone(self)
    }
}

impl LocationPath for &str {
    fn into_path(self) -> Arc<str> {
        Arc::from(self)
    }
}

impl LocationPath for String {
    fn into_path(self) -> Arc<str> {
        Arc::from(self)
    }
}

impl LocationPath for &String {
    fn into_path(self) -> Arc<str> {
        Arc::from(self.as_str())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.path)
        } else {
            write!(f, "{}:{}:{}", self.path, self.line, self.column)
        }
    }
}

/// The other side of a finding (e.g. the other holder of a GPU).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Related {
    pub location: Location,
    pub message: String,
}

/// One validation finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub message: String,
    /// The machine concerned, when there is one.
    pub machine: Option<String>,
    /// Deployments involved, as `machine:port`, sorted.
    pub deployments: Vec<String>,
    /// The offending node.
    pub location: Location,
    /// The other side(s) of a conflict.
    pub related: Vec<Related>,
    /// What the finding is about, for the fingerprint: GPU ids, ports, variable
    /// names, a pending ref (sorted, canonical).
    pub subjects: Vec<String>,
    /// Stable identity across runs: rule + machine + deployments + subjects.
    pub fingerprint: String,
    /// Accepted where it happens (`# release-config: ignore CODE -- reason`): the reason. A
    /// suppressed finding is reported as such and never fails a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
}

impl Finding {
    /// Builds a finding with the rule's default severity; `subjects` and
    /// `deployments` are sorted and deduplicated, and the fingerprint computed.
    pub fn new(
        rule: Rule,
        machine: Option<&str>,
        deployments: impl IntoIterator<Item = String>,
        subjects: impl IntoIterator<Item = String>,
        location: Location,
        message: impl Into<String>,
    ) -> Finding {
        let mut deployments: Vec<String> = deployments.into_iter().collect();
        deployments.sort();
        deployments.dedup();
        let mut subjects: Vec<String> = subjects.into_iter().collect();
        subjects.sort();
        subjects.dedup();
        let fingerprint = fingerprint(rule, machine, &deployments, &subjects, &location);
        Finding {
            rule,
            severity: rule.default_severity(),
            message: message.into(),
            machine: machine.map(str::to_owned),
            deployments,
            location,
            related: Vec::new(),
            subjects,
            fingerprint,
            suppressed: None,
        }
    }

    pub fn with_related(mut self, location: Location, message: impl Into<String>) -> Finding {
        self.related.push(Related {
            location,
            message: message.into(),
        });
        self
    }
}

/// rule + machine + sorted deployments + subjects. When a finding names no
/// deployment and no subject (a parse error, a layout problem), the file path
/// stands in so that two such findings in different files stay distinct. Line
/// numbers are deliberately not part of it: editing an unrelated line above a
/// finding must not make it "new".
fn fingerprint(
    rule: Rule,
    machine: Option<&str>,
    deployments: &[String],
    subjects: &[String],
    location: &Location,
) -> String {
    let mut key = String::new();
    key.push_str(rule.code());
    key.push('|');
    key.push_str(machine.unwrap_or(""));
    key.push('|');
    key.push_str(&deployments.join(","));
    key.push('|');
    key.push_str(&subjects.join(","));
    if deployments.is_empty() && subjects.is_empty() {
        key.push('|');
        key.push_str(&location.path);
    }
    // FNV-1a 64: stable across platforms and releases (unlike std's hasher).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{}:{hash:016x}", rule.code())
}

/// Counts by severity; suppressed findings are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

impl Summary {
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Summary {
        let mut summary = Summary::default();
        for finding in findings {
            if finding.suppressed.is_some() {
                continue;
            }
            match finding.severity {
                Severity::Error => summary.errors += 1,
                Severity::Warning => summary.warnings += 1,
                Severity::Info => summary.infos += 1,
            }
        }
        summary
    }
}
