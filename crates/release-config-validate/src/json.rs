//! The JSON report: one object with `findings`, `summary`, `topology`,
//! `revision` (and `base` in diff-aware mode). It is written as it is
//! serialised: findings one by one, the topology machine by machine (see
//! [`Topology`](crate::Topology)), so a 20,000-machine report is never in
//! memory whole.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::{Map, Value, json};
use topology::Summary;

use crate::report::{Report, ReportedFinding, RevisionInfo, Topology};

/// The report object, borrowing everything large so that writing it copies
/// nothing.
#[derive(Serialize)]
struct JsonReport<'a> {
    revision: Option<&'a RevisionInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<&'a RevisionInfo>,
    /// With `--baseline`: the file, its entry count and the entries no longer occurring.
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<Value>,
    summary: Value,
    findings: Findings<'a>,
    topology: &'a Topology,
}

/// Each finding made a JSON object as it is written.
struct Findings<'a>(&'a [ReportedFinding]);

impl Serialize for Findings<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(finding_value))
    }
}

fn json_report(report: &Report) -> JsonReport<'_> {
    let counts = report.counts();
    let mut summary = summary_value(counts.all);
    if let Value::Object(map) = &mut summary {
        if let Some(new) = counts.new {
            map.insert("new".to_owned(), summary_value(new));
        }
        map.insert("machines".to_owned(), json!(report.machines));
        map.insert("deployments".to_owned(), json!(report.deployments));
        map.insert("passed".to_owned(), json!(!report.failed()));
    }
    JsonReport {
        revision: report.revision.as_ref(),
        base: report.base.as_ref(),
        baseline: report
            .baseline
            .as_ref()
            .map(|b| json!({"path": b.path, "entries": b.entries, "stale": b.stale})),
        summary,
        findings: Findings(&report.findings),
        topology: &report.topology,
    }
}

/// The report as a JSON value (see the module doc for its shape).
pub fn to_value(report: &Report) -> Value {
    serde_json::to_value(json_report(report)).unwrap_or(Value::Null)
}

/// Pretty-printed, with a trailing newline.
pub fn render(report: &Report) -> String {
    let mut text = Vec::new();
    // Writing into memory fails only on a map key that is not a string,
    // which the report's shape never has.
    if write(report, &mut text).is_err() {
        return "{}\n".to_owned();
    }
    String::from_utf8(text).unwrap_or_default()
}

/// Writes the report pretty-printed, with a trailing newline, as it is
/// serialised (`out` should be buffered).
pub fn write(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &json_report(report))?;
    out.write_all(b"\n")
}

fn summary_value(summary: Summary) -> Value {
    json!({ "errors": summary.errors, "warnings": summary.warnings, "infos": summary.infos })
}

fn finding_value(reported: &ReportedFinding) -> Value {
    let finding = &reported.finding;
    let mut object = Map::new();
    object.insert("code".to_owned(), json!(finding.rule.code()));
    object.insert("severity".to_owned(), json!(finding.severity.as_str()));
    object.insert("message".to_owned(), json!(finding.message));
    object.insert("path".to_owned(), json!(finding.location.path));
    object.insert("line".to_owned(), json!(finding.location.line));
    object.insert("column".to_owned(), json!(finding.location.column));
    object.insert(
        "related".to_owned(),
        Value::Array(
            finding
                .related
                .iter()
                .map(|r| {
                    let mut related = json!({
                        "path": r.location.path,
                        "line": r.location.line,
                        "column": r.location.column,
                        "message": r.message,
                    });
                    // The other side of a PENDING001 is in the proposal's files.
                    if let (Some(at), Value::Object(map)) = (&reported.related_at, &mut related) {
                        map.insert("ref".to_owned(), json!(at));
                    }
                    related
                })
                .collect(),
        ),
    );
    object.insert("fingerprint".to_owned(), json!(finding.fingerprint));
    object.insert("machine".to_owned(), json!(finding.machine));
    object.insert("deployments".to_owned(), json!(finding.deployments));
    if let Some(new) = reported.new {
        object.insert("new".to_owned(), json!(new));
    }
    if let Some(reason) = &finding.suppressed {
        object.insert("suppressed".to_owned(), json!({ "reason": reason }));
    }
    Value::Object(object)
}
