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

macro_rules! rules {
    ($($variant:ident => $code:literal, $sev:ident, $summary:literal;)*) => {
        /// Every validation rule of the release-config contract (section 4), plus
        /// PENDING001 (section 5, `--pending`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Rule {
            $(#[serde(rename = $code)] $variant,)*
        }

        impl Rule {
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            /// The rule's code, e.g. `GPU001`.
            pub fn code(self) -> &'static str {
                match self { $(Rule::$variant => $code,)* }
            }

            pub fn default_severity(self) -> Severity {
                match self { $(Rule::$variant => Severity::$sev,)* }
            }

            /// One line saying when the rule fires (SARIF `shortDescription`, docs).
            pub fn summary(self) -> &'static str {
                match self { $(Rule::$variant => $summary,)* }
            }

            /// The rule's explanation (Markdown): what it checks, why it matters on a GPU
            /// fleet, an example that fires, and its fix. One file per rule,
            /// `crates/topology/rules/<CODE>.md` (`--explain`, SARIF `help`).
            pub fn explanation(self) -> &'static str {
                match self { $(Rule::$variant => include_str!(concat!("../rules/", $code, ".md")),)* }
            }

            pub fn from_code(code: &str) -> Option<Rule> {
                match code { $($code => Some(Rule::$variant),)* _ => None }
            }
        }
    };
}

rules! {
    Rc001 => "RC001", Error, "YAML does not parse, or exceeds the alias / depth / size bounds";
    Rc002 => "RC002", Error, "compose structure of the wrong type";
    Rc003 => "RC003", Error, "interpolation: missing required variable or malformed expression";
    Rc004 => "RC004", Error, "layout: bad machine or port name, no compose file in a port directory, link leaving the repo";
    Rc005 => "RC005", Warning, "interpolation of an unset variable without default (it becomes empty)";
    Gpu001 => "GPU001", Error, "one host GPU held by two services on one machine";
    Gpu002 => "GPU002", Error, "GPU id not on the machine";
    Gpu003 => "GPU003", Error, "unpinned GPUs on a machine where another service also holds GPUs";
    Gpu004 => "GPU004", Error, "CUDA_VISIBLE_DEVICES inconsistent with pinned GPUs";
    Gpu005 => "GPU005", Error, "several GPU ids packed into one device_ids string";
    Gpu006 => "GPU006", Warning, "host ids in CUDA_VISIBLE_DEVICES without CUDA_DEVICE_ORDER=PCI_BUS_ID";
    Tp001 => "TP001", Error, "TP x PP x DP differs from the number of GPUs the service holds";
    Tp002 => "TP002", Error, "TP x PP x DP exceeds the machine's GPU count";
    Tp003 => "TP003", Error, "num_attention_heads not divisible by TP";
    Tp004 => "TP004", Warning, "TP group spans more than one NUMA domain on a pcie machine";
    Mem001 => "MEM001", Warning, "weight bytes per GPU exceed gpu_memory_gb x memory utilisation";
    Mem002 => "MEM002", Error, "services sharing a GPU on purpose claim more than 0.95 of its memory together";
    Port001 => "PORT001", Error, "one host port published by two deployments on one machine";
    Port002 => "PORT002", Warning, "the port directory is not among the host ports the service publishes";
    Inv001 => "INV001", Info, "machine has no inventory";
    Pending001 => "PENDING001", Warning, "a GPU or port claimed by the head is also claimed by an open proposal";
    Sup001 => "SUP001", Warning, "a suppression comment without a reason, naming no rule, or accepting no finding";
}

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
