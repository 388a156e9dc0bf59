//! The JSON report: one object with `findings`, `summary`, `topology`,
//! `revision` (and `base` in diff-aware mode).

use serde::Serialize;
use serde_json::{Map, Value, json};
use topology::Summary;

use crate::report::{Report, ReportedFinding, RevisionInfo};

/// The report object, borrowing the (possibly large) topology so that
/// rendering does not copy it.
#[derive(Serialize)]
struct JsonReport<'a> {
    revision: Option<&'a RevisionInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<&'a RevisionInfo>,
    /// With `--baseline`: the file, its entry count and the entries no longer occurring.
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<Value>,
    summary: Value,
    findings: Vec<Value>,
    topology: &'a Value,
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
        findings: report.findings.iter().map(finding_value).collect(),
        topology: &report.topology,
    }
}

/// The report as a JSON value (see the module doc for its shape).
pub fn to_value(report: &Report) -> Value {
    serde_json::to_value(json_report(report)).unwrap_or(Value::Null)
}

/// Pretty-printed, with a trailing newline.
pub fn render(report: &Report) -> String {
    let mut text =
        serde_json::to_string_pretty(&json_report(report)).unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
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
