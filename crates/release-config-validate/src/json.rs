//! The JSON report: one object with `findings`, `summary`, `topology`,
//! `revision` (and `base` in diff-aware mode).

use serde_json::{Map, Value, json};
use topology::Summary;

use crate::report::{Report, ReportedFinding};

/// The report as a JSON value (see the module doc for its shape).
pub fn to_value(report: &Report) -> Value {
    let counts = report.counts();
    let mut summary = summary_value(counts.all);
    if let (Some(new), Value::Object(map)) = (counts.new, &mut summary) {
        map.insert("new".to_owned(), summary_value(new));
    }
    if let Value::Object(map) = &mut summary {
        map.insert("machines".to_owned(), json!(report.machines));
        map.insert("deployments".to_owned(), json!(report.deployments));
        map.insert("passed".to_owned(), json!(!report.failed()));
    }
    let mut root = Map::new();
    root.insert("revision".to_owned(), json!(report.revision));
    if let Some(base) = &report.base {
        root.insert("base".to_owned(), json!(base));
    }
    root.insert("summary".to_owned(), summary);
    root.insert(
        "findings".to_owned(),
        Value::Array(report.findings.iter().map(finding_value).collect()),
    );
    root.insert("topology".to_owned(), report.topology.clone());
    Value::Object(root)
}

/// Pretty-printed, with a trailing newline.
pub fn render(report: &Report) -> String {
    let mut text =
        serde_json::to_string_pretty(&to_value(report)).unwrap_or_else(|_| "{}".to_owned());
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
                    json!({
                        "path": r.location.path,
                        "line": r.location.line,
                        "column": r.location.column,
                        "message": r.message,
                    })
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
    Value::Object(object)
}
