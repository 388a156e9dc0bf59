//! Baselines: record today's findings, then report them as pre-existing and list the entries
//! that no longer occur.

use release_config_validate::{Exit, Format};

use crate::support::{GitRepo, INVENTORY, args, deployment, validate};

/// m1 with GPU 0 held twice (8000, 8001) and GPU 1 held twice (8002, 8003): two GPU001.
fn fleet() -> GitRepo {
    let repo = GitRepo::init();
    repo.write("machines/m1/machine.yaml", INVENTORY);
    for (port, gpu) in [(8000, 0), (8001, 0), (8002, 1), (8003, 1)] {
        repo.write(
            &format!("machines/m1/{port}/docker-compose.yml"),
            &deployment(port, gpu),
        );
    }
    repo
}

#[test]
fn a_baseline_round_trip_shrinks_as_findings_are_fixed() {
    let repo = fleet();
    let file = repo.path().join("release-config-baseline.json");
    let write = |format| {
        let mut run = args(repo.path(), format);
        run.write_baseline = Some(file.clone());
        validate(&run)
    };
    let written = write(Format::Human);
    assert_eq!(
        written.exit,
        Exit::Clean,
        "recorded means accepted: {}",
        written.stdout
    );
    assert!(
        written.stdout.contains("2 errors (none new)"),
        "{}",
        written.stdout
    );
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    insta::assert_snapshot!("baseline_file", text);
    // Stable: a second run writes the same bytes.
    write(Format::Human);
    assert_eq!(std::fs::read_to_string(&file).unwrap_or_default(), text);

    let with_baseline = |format| {
        let mut run = args(repo.path(), format);
        run.baseline = Some(file.clone());
        validate(&run)
    };
    let same = with_baseline(Format::Json);
    assert_eq!(same.exit, Exit::Clean);
    assert_eq!(same.json()["baseline"]["stale"], serde_json::json!([]));
    assert!(
        same.json()["findings"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["new"] == false))
    );

    // Fix one conflict (8003 moves to GPU 2): its entry is stale, the other still matches.
    repo.write("machines/m1/8003/docker-compose.yml", &deployment(8003, 2));
    let fixed = with_baseline(Format::Human);
    assert_eq!(fixed.exit, Exit::Clean, "{}", fixed.stdout);
    let lines: Vec<&str> = fixed.stdout.lines().collect();
    let tail = lines[lines.len().saturating_sub(3)..]
        .join("\n")
        .replace(&repo.path().display().to_string(), "<repo>");
    insta::assert_snapshot!("baseline_one_fixed", tail);
    let json = with_baseline(Format::Json).json();
    assert_eq!(json["baseline"]["entries"], 2);
    assert_eq!(json["baseline"]["stale"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["baseline"]["stale"][0]["rule"], "GPU001");

    // A new conflict is new, and fails the run.
    repo.write("machines/m1/8004/docker-compose.yml", &deployment(8004, 2));
    let worse = with_baseline(Format::Sarif);
    assert_eq!(worse.exit, Exit::Findings);
    let sarif: serde_json::Value = serde_json::from_str(&worse.stdout).unwrap_or_default();
    crate::sarif_shape::assert_sarif_shape(&sarif);
    let states: Vec<&str> = sarif["runs"][0]["results"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter_map(|r| r["baselineState"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        states.iter().filter(|s| **s == "new").count(),
        1,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "unchanged").count(),
        1,
        "{states:?}"
    );
}

#[test]
fn a_bad_baseline_file_is_named() {
    let repo = fleet();
    let file = repo.path().join("baseline.json");
    for (text, says) in [
        (
            "{\"version\": 1, \"findings\": [{\"fingerprint\": 3}]}",
            "line 1: invalid type",
        ),
        (
            "{\"version\": 7, \"findings\": []}",
            "version 7 is not the version 1",
        ),
    ] {
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        let mut run = args(repo.path(), Format::Human);
        run.baseline = Some(file.clone());
        let outcome = validate(&run);
        assert_eq!(outcome.exit, Exit::Failure);
        assert!(
            outcome
                .stderr
                .contains(&format!("baseline {}: ", file.display()))
                && outcome.stderr.contains(says),
            "{}",
            outcome.stderr
        );
    }
    let mut run = args(repo.path(), Format::Human);
    run.baseline = Some(repo.path().join("missing.json"));
    assert!(
        validate(&run)
            .stderr
            .contains("missing.json: cannot read it")
    );
}
