//! SARIF 2.1.0, in the shape GitHub code scanning accepts.

use serde_json::{Map, Value, json};
use topology::{Location, Rule, Severity};

use crate::report::Report;

pub const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";
pub const TOOL_NAME: &str = "release-config-validate";
/// Where the rules are documented.
pub const INFORMATION_URI: &str = match option_env!("CARGO_PKG_REPOSITORY") {
    Some(uri) if !uri.is_empty() => uri,
    _ => "https://github.com/catapult-ai/model-registry-mcp",
};
/// Key of our fingerprint in `partialFingerprints`; bump the version when the
/// fingerprint's recipe changes.
pub const FINGERPRINT_KEY: &str = "releaseConfig/v1";

/// A stable URL of the rule's explanation: its file in the repository's main branch.
pub fn help_uri(rule: Rule) -> String {
    format!("{INFORMATION_URI}/blob/main/{}", rule.explanation_path())
}

/// The SARIF log for the report; `version` is the tool's version.
pub fn to_value(report: &Report, version: &str) -> Value {
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|rule| {
            json!({
                "id": rule.code(),
                "name": rule.code(),
                "shortDescription": { "text": rule.summary() },
                "fullDescription": { "text": rule.summary() },
                "defaultConfiguration": { "level": level(rule.default_severity()) },
                "help": { "text": rule.explanation(), "markdown": rule.explanation() },
                "helpUri": help_uri(*rule),
                "properties": { "tags": ["release-config"] },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|reported| {
            let finding = &reported.finding;
            let mut result = Map::new();
            result.insert("ruleId".to_owned(), json!(finding.rule.code()));
            if let Some(index) = Rule::ALL.iter().position(|r| *r == finding.rule) {
                result.insert("ruleIndex".to_owned(), json!(index));
            }
            result.insert("level".to_owned(), json!(level(finding.severity)));
            result.insert("message".to_owned(), json!({ "text": finding.message }));
            result.insert(
                "locations".to_owned(),
                json!([physical_location(&finding.location)]),
            );
            if !finding.related.is_empty() {
                let related: Vec<Value> = finding
                    .related
                    .iter()
                    .enumerate()
                    .map(|(id, related)| {
                        let mut location = physical_location(&related.location);
                        if let Value::Object(map) = &mut location {
                            map.insert("id".to_owned(), json!(id));
                            if !related.message.is_empty() {
                                map.insert(
                                    "message".to_owned(),
                                    json!({ "text": related.message }),
                                );
                            }
                            // PENDING001: the other side is a file of the
                            // proposal's revision, not of the analysed one.
                            if let Some(at) = &reported.related_at {
                                map.insert("properties".to_owned(), json!({ "ref": at }));
                            }
                        }
                        location
                    })
                    .collect();
                result.insert("relatedLocations".to_owned(), Value::Array(related));
            }
            result.insert(
                "partialFingerprints".to_owned(),
                json!({ FINGERPRINT_KEY: finding.fingerprint }),
            );
            if let Some(new) = reported.new {
                result.insert(
                    "baselineState".to_owned(),
                    json!(if new { "new" } else { "unchanged" }),
                );
            }
            if let Some(reason) = &finding.suppressed {
                result.insert(
                    "suppressions".to_owned(),
                    json!([{ "kind": "inSource", "justification": reason }]),
                );
            }
            let mut properties = Map::new();
            if let Some(machine) = &finding.machine {
                properties.insert("machine".to_owned(), json!(machine));
            }
            if !finding.deployments.is_empty() {
                properties.insert("deployments".to_owned(), json!(finding.deployments));
            }
            if !properties.is_empty() {
                result.insert("properties".to_owned(), Value::Object(properties));
            }
            Value::Object(result)
        })
        .collect();

    let mut run = Map::new();
    run.insert(
        "tool".to_owned(),
        json!({
            "driver": {
                "name": TOOL_NAME,
                "informationUri": INFORMATION_URI,
                "version": version,
                "semanticVersion": version,
                "rules": rules,
            }
        }),
    );
    run.insert("columnKind".to_owned(), json!("unicodeCodePoints"));
    if let Some(revision) = &report.revision {
        // `versionControlProvenance` would need the repository's URI, which a
        // local validation does not know; the commit goes in the property bag.
        run.insert("properties".to_owned(), json!({ "revision": revision }));
    }
    run.insert("results".to_owned(), Value::Array(results));
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [Value::Object(run)],
    })
}

/// Pretty-printed, with a trailing newline.
pub fn render(report: &Report, version: &str) -> String {
    let mut text = serde_json::to_string_pretty(&to_value(report, version))
        .unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn physical_location(location: &Location) -> Value {
    let mut physical = Map::new();
    physical.insert(
        "artifactLocation".to_owned(),
        json!({ "uri": uri(&location.path), "uriBaseId": "%SRCROOT%" }),
    );
    if location.line > 0 {
        physical.insert(
            "region".to_owned(),
            json!({ "startLine": location.line, "startColumn": location.column.max(1) }),
        );
    }
    json!({ "physicalLocation": Value::Object(physical) })
}

/// A relative URI reference for a repository path: unreserved characters and
/// `/` kept, everything else percent-encoded.
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_relative_and_encoded() {
        assert_eq!(
            uri("machines/m1/8000/docker-compose.yml"),
            "machines/m1/8000/docker-compose.yml"
        );
        assert_eq!(uri("machines/bad name/x#y"), "machines/bad%20name/x%23y");
        assert_eq!(uri("machines/é"), "machines/%C3%A9");
    }
}
