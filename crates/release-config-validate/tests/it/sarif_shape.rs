//! Checks of SARIF 2.1.0 logs: validation against the official JSON schema,
//! plus what GitHub code scanning needs on top of it (a rule for every
//! result, a message text and a location on every result, relative URIs
//! under `%SRCROOT%`, 1-based regions, related-location ids).
//!
//! `sarif-schema-2.1.0.json` beside this file is the OASIS SARIF 2.1.0 schema
//! (`Schemata/sarif-schema-2.1.0.json` of github.com/oasis-tcs/sarif-spec, the
//! draft-07 revision), as shipped in the `serde-sarif` 0.8.0 crate.

use serde_json::Value;

const SCHEMA: &str = include_str!("sarif-schema-2.1.0.json");
const LEVELS: &[&str] = &["none", "note", "warning", "error"];
const BASELINE_STATES: &[&str] = &["new", "unchanged", "updated", "absent"];

/// Validates `log` against the SARIF 2.1.0 JSON schema; the error lists
/// every violation.
pub fn schema_errors(log: &Value) -> Result<(), String> {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the vendored schema is JSON");
    let mut compiler = boon::Compiler::new();
    compiler
        .add_resource("https://sarif.invalid/sarif-schema-2.1.0.json", schema)
        .expect("schema resource");
    let mut schemas = boon::Schemas::new();
    let index = compiler
        .compile(
            "https://sarif.invalid/sarif-schema-2.1.0.json",
            &mut schemas,
        )
        .unwrap_or_else(|e| panic!("the SARIF schema compiles: {e:#}"));
    schemas
        .validate(log, index)
        .map_err(|error| format!("{error:#}"))
}

pub fn assert_sarif_schema(log: &Value) {
    if let Err(errors) = schema_errors(log) {
        panic!("not valid SARIF 2.1.0: {errors}\n{log:#}");
    }
}

pub fn assert_sarif_shape(log: &Value) {
    assert_sarif_schema(log);
    assert_eq!(log["version"], "2.1.0", "version");
    assert!(
        log["$schema"]
            .as_str()
            .is_some_and(|s| s.contains("sarif-2.1.0")),
        "$schema"
    );
    let runs = log["runs"].as_array().expect("runs is an array");
    assert_eq!(runs.len(), 1, "one run");
    for run in runs {
        let driver = &run["tool"]["driver"];
        assert!(
            driver["name"].as_str().is_some_and(|s| !s.is_empty()),
            "tool.driver.name"
        );
        assert!(
            driver["informationUri"]
                .as_str()
                .is_some_and(|s| s.starts_with("https://")),
            "informationUri"
        );
        let rules = driver["rules"].as_array().expect("tool.driver.rules");
        assert!(!rules.is_empty());
        for rule in rules {
            assert!(rule["id"].as_str().is_some(), "rule id: {rule}");
            assert!(
                rule["shortDescription"]["text"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{rule}"
            );
            let level = rule["defaultConfiguration"]["level"]
                .as_str()
                .expect("defaultConfiguration.level");
            assert!(LEVELS.contains(&level), "{level}");
        }
        let ids: Vec<&str> = rules.iter().filter_map(|r| r["id"].as_str()).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "rule ids are unique");
        for result in run["results"].as_array().expect("results is an array") {
            let rule_id = result["ruleId"].as_str().expect("ruleId");
            let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
            assert_eq!(ids.get(index), Some(&rule_id), "ruleIndex points at ruleId");
            assert!(LEVELS.contains(&result["level"].as_str().expect("level")));
            assert!(
                result["message"]["text"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "message.text"
            );
            let locations = result["locations"].as_array().expect("locations");
            assert_eq!(locations.len(), 1);
            for location in locations {
                assert_physical_location(location);
            }
            if let Some(related) = result.get("relatedLocations") {
                for (i, location) in related
                    .as_array()
                    .expect("relatedLocations is an array")
                    .iter()
                    .enumerate()
                {
                    assert_eq!(location["id"].as_u64(), Some(i as u64), "related ids");
                    assert_physical_location(location);
                }
            }
            let fingerprints = result["partialFingerprints"]
                .as_object()
                .expect("partialFingerprints");
            assert!(fingerprints.values().all(Value::is_string));
            assert!(fingerprints.contains_key("releaseConfig/v1"));
            if let Some(state) = result.get("baselineState") {
                assert!(
                    BASELINE_STATES.contains(&state.as_str().expect("baselineState is a string"))
                );
            }
        }
    }
}

fn assert_physical_location(location: &Value) {
    let physical = &location["physicalLocation"];
    let artifact = &physical["artifactLocation"];
    let uri = artifact["uri"].as_str().expect("artifactLocation.uri");
    assert!(
        !uri.starts_with('/') && !uri.contains("://"),
        "relative uri: {uri}"
    );
    assert_eq!(artifact["uriBaseId"], "%SRCROOT%");
    if let Some(region) = physical.get("region") {
        assert!(
            region["startLine"].as_u64().is_some_and(|n| n >= 1),
            "startLine"
        );
        assert!(
            region["startColumn"].as_u64().is_some_and(|n| n >= 1),
            "startColumn"
        );
    }
}

#[test]
fn the_schema_rejects_what_github_would() {
    // Guards the guard: the schema check must catch real mistakes.
    let valid = serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": { "name": "t", "rules": [{ "id": "R1" }] } },
            "results": [{
                "ruleId": "R1",
                "ruleIndex": 0,
                "level": "error",
                "message": { "text": "m" },
                "locations": [{ "physicalLocation": {
                    "artifactLocation": { "uri": "a/b.yml", "uriBaseId": "%SRCROOT%" },
                    "region": { "startLine": 1, "startColumn": 1 }
                }}]
            }]
        }]
    });
    assert_sarif_schema(&valid);
    let breakages: &[(&str, Value)] = &[
        ("/version", serde_json::json!("2.0.0")),
        ("/runs/0/results/0/level", serde_json::json!("fatal")),
        (
            "/runs/0/results/0/locations/0/physicalLocation/region/startLine",
            serde_json::json!(0),
        ),
        ("/runs/0/results/0/baselineState", serde_json::json!("old")),
        (
            "/runs/0/results/0/message",
            serde_json::json!("not an object"),
        ),
    ];
    for (pointer, value) in breakages {
        let mut broken = valid.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        broken
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap()
            .insert(key.to_owned(), value.clone());
        assert!(
            schema_errors(&broken).is_err(),
            "{pointer} = {value} was accepted"
        );
    }
}
