//! The fixture repositories: one per rule (each triggers exactly that rule),
//! and the realistic fleet (no error). Every format is snapshotted.

use release_config_validate::Format;

use crate::sarif_shape::assert_sarif_shape;
use crate::support::{args, fixtures, validate};

fn rule_cases() -> Vec<String> {
    let mut cases: Vec<String> = std::fs::read_dir(fixtures().join("rules"))
        .expect("fixtures/rules")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    cases.sort();
    cases
}

#[test]
fn every_rule_has_a_fixture() {
    let expected: Vec<&str> = topology::Rule::ALL
        .iter()
        .map(|rule| rule.code())
        // PENDING001 needs refs: see git::pending_claims_are_reported.
        .filter(|code| *code != "PENDING001")
        .collect();
    let mut expected: Vec<String> = expected.into_iter().map(str::to_owned).collect();
    expected.sort();
    assert_eq!(rule_cases(), expected);
}

/// Rules that cannot fire alone (none today: TP002 suppresses the TP001 it
/// implies). Kept so that a future pair is declared, not silently accepted.
const COMPANIONS: &[(&str, &[&str])] = &[];

#[test]
fn each_rule_fixture_triggers_exactly_its_rule() {
    let mut failures = Vec::new();
    for code in rule_cases() {
        let path = fixtures().join("rules").join(&code);
        let outcome = validate(&args(&path, Format::Json));
        let mut codes = outcome.codes();
        codes.sort();
        codes.dedup();
        let expected: Vec<String> = match COMPANIONS.iter().find(|(c, _)| *c == code) {
            Some((_, set)) => set.iter().map(|c| (*c).to_owned()).collect(),
            None => vec![code.clone()],
        };
        if codes != expected {
            failures.push(format!("{code}: got {codes:?}"));
        }
        let severity = topology::Rule::from_code(&code)
            .expect("rule")
            .default_severity();
        let expected_exit = if severity == topology::Severity::Error {
            1
        } else {
            0
        };
        if outcome.exit as u8 != expected_exit {
            failures.push(format!(
                "{code}: exit {:?}, stderr {}",
                outcome.exit, outcome.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rule_fixture_snapshots() {
    for code in rule_cases() {
        let path = fixtures().join("rules").join(&code);
        for (format, name) in [
            (Format::Human, "human"),
            (Format::Json, "json"),
            (Format::Github, "github"),
            (Format::Sarif, "sarif"),
        ] {
            let outcome = validate(&args(&path, format));
            assert!(outcome.stderr.is_empty(), "{code}: {}", outcome.stderr);
            if format == Format::Sarif {
                // The rule catalogue is the same in every log: snapshotted once (`sarif_diff`).
                // So is a result's index into it, which the shape check holds to its
                // `ruleId`: a new rule changes neither in another rule's snapshot.
                let mut log = outcome.json();
                assert_sarif_shape(&log);
                log["runs"][0]["tool"]["driver"]["rules"] =
                    serde_json::json!("(every rule: see the sarif_diff snapshot)");
                if let Some(results) = log["runs"][0]["results"].as_array_mut() {
                    for result in results {
                        result["ruleIndex"] = serde_json::json!("(points at ruleId)");
                    }
                }
                insta::assert_json_snapshot!(format!("rule_{code}_{name}"), log);
                continue;
            }
            insta::assert_snapshot!(format!("rule_{code}_{name}"), outcome.stdout);
        }
    }
}

#[test]
fn clean_fleet_has_no_error() {
    let path = fixtures().join("release-config");
    let outcome = validate(&args(&path, Format::Json));
    assert_eq!(
        outcome.exit as u8, 0,
        "{}\n{}",
        outcome.stdout, outcome.stderr
    );
    let report = outcome.json();
    assert_eq!(report["summary"]["errors"], 0);
    // Deliberate: the one machine without inventory.
    assert_eq!(
        outcome.codes(),
        ["INV001"],
        "{}",
        validate(&args(&path, Format::Human)).stdout
    );
    assert!(report["summary"]["machines"].as_u64().unwrap() >= 8);
    for format in [Format::Human, Format::Github, Format::Sarif] {
        let outcome = validate(&args(&path, format));
        assert_eq!(outcome.exit as u8, 0);
        let name = match format {
            Format::Human => "human",
            Format::Github => "github",
            _ => "sarif",
        };
        if format == Format::Sarif {
            assert_sarif_shape(&outcome.json());
        } else {
            insta::assert_snapshot!(format!("fleet_{name}"), outcome.stdout);
        }
    }
}

/// The JSON report's topology is written machine by machine as the report is
/// (never built whole); what it writes is the engine's own topology.
#[test]
fn json_topology_is_the_engines() {
    let path = fixtures().join("release-config");
    let outcome = validate(&args(&path, Format::Json));
    assert_eq!(outcome.exit as u8, 0, "{}", outcome.stderr);
    let report = outcome.json();
    let snapshot = topology::repo::Snapshot::from_dir(&path).unwrap();
    let fleet = topology::engine::Engine::new().analyze(&snapshot).unwrap();
    let expected = serde_json::to_value(fleet.topology()).unwrap();
    assert_eq!(report["topology"], expected);
    let machines = report["topology"].as_array().unwrap();
    assert_eq!(machines.len(), fleet.machines.len());
    // The machine with the INV001 finding counts it in its topology.
    let without_inventory = machines
        .iter()
        .find(|m| m["machine"] == "gpu-h100-03")
        .unwrap();
    assert_eq!(without_inventory["findings"]["infos"], 1);
}

#[test]
fn machine_filter_narrows_findings_and_topology() {
    let path = fixtures().join("release-config");
    let mut filtered = args(&path, Format::Json);
    filtered.machine = Some("gpu-h100-01".to_owned());
    let outcome = validate(&filtered);
    assert_eq!(outcome.exit as u8, 0, "{}", outcome.stderr);
    let report = outcome.json();
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "INV001 is about gpu-h100-03"
    );
    assert_eq!(report["summary"]["machines"], 1);
    assert_eq!(report["summary"]["deployments"], 3);
    assert_eq!(report["topology"]["machine"], "gpu-h100-01");

    filtered.machine = Some("gpu-h100-03".to_owned());
    assert_eq!(validate(&filtered).codes(), ["INV001"]);
}
