//! A structural check of SARIF 2.1.0 logs: the properties the schema requires,
//! the enumerations it allows, and what GitHub code scanning needs on top
//! (a message text and a location on every result, relative URIs).

use serde_json::Value;

const LEVELS: &[&str] = &["none", "note", "warning", "error"];
const BASELINE_STATES: &[&str] = &["new", "unchanged", "updated", "absent"];

pub fn assert_sarif_shape(log: &Value) {
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
