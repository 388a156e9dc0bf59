//! `release-config-validate place`, the real binary: ranked placements of the
//! bundled example fleet (text snapshot, JSON), from Git objects with --rev,
//! exit 1 when nothing fits, exit 2 naming every bad argument.

use std::process::{Command, Output};

use crate::support::{GitRepo, INVENTORY, deployment, fixtures};

fn place(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_release-config-validate"))
        .arg("place")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_example_fleet_is_ranked_with_reasons() {
    let fleet = fixtures().join("release-config");
    let fleet = fleet.to_str().unwrap();
    let output = place(&[fleet, "--tp", "2", "--params-b", "8"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    insta::assert_snapshot!("place_example_tp2", text(&output.stdout));

    let json = place(&[
        fleet,
        "--tp",
        "2",
        "--params-b",
        "8",
        "--json",
        "--limit",
        "1",
    ]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["placements"].as_array().map(Vec::len), Some(1));
    assert_eq!(value["candidates"], 2);
    assert_eq!(value["placements"][0]["gpus"], serde_json::json!([0, 1]));

    // 70 B read from the name: nothing in the example fleet can take it; exit 1, and why.
    let none = place(&[fleet, "--model", "llama-3-70b-instruct"]);
    assert_eq!(none.status.code(), Some(1));
    let said = text(&none.stdout);
    assert!(
        said.contains("70 B parameters read from the name"),
        "{said}"
    );
    assert!(said.contains("0 placement(s)"), "{said}");
    assert!(said.contains("machines left out:"), "{said}");
}

#[test]
fn bad_arguments_are_named_all_at_once() {
    let output = place(&[
        ".",
        "--params-b",
        "lots",
        "--tp",
        "0",
        "--label",
        "pool",
        "--dtype",
        "fp5",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let said = text(&output.stderr);
    for part in [
        "--params-b `lots` is not a positive number",
        "--tp must be at least 1",
        "--label `pool` is not KEY=VALUE",
        "--dtype `fp5` is not known",
    ] {
        assert!(said.contains(part), "{part}: {said}");
    }
}

/// With --rev the fleet is read from Git objects, not the work tree.
#[test]
fn a_revision_is_read_from_git() {
    let repo = GitRepo::init();
    repo.commit_files(
        "main",
        &[
            ("machines/gpu-a/machine.yaml", INVENTORY),
            (
                "machines/gpu-a/8000/docker-compose.yml",
                &deployment(8000, 0),
            ),
        ],
        "one machine",
    );
    let path = repo.path().to_str().unwrap();
    let output = place(&[
        path,
        "--rev",
        "main",
        "--tp",
        "4",
        "--params-b",
        "8",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        value["placements"][0]["gpus"],
        serde_json::json!([4, 5, 6, 7]),
        "GPU 0 is held: the NUMA domain with four free"
    );
    assert_eq!(value["placements"][0]["port"], 8001);
}

/// The README's usage block of `place` names exactly its flags.
#[test]
fn the_readme_names_the_place_flags() {
    let command = <release_config_validate::Args as clap::CommandFactory>::command();
    let place = command.find_subcommand("place").unwrap();
    assert_eq!(
        crate::support::readme_usage_flags("release-config-validate place"),
        crate::support::long_flags(place)
    );
}
