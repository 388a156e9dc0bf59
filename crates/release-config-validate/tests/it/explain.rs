//! One rule catalogue, three faces: `--explain`, SARIF `help`, and the rule table of the docs.

use release_config_validate::{Args, Exit, Format};
use topology::Rule;

use crate::support::validate;

fn explain(code: &str, format: Format) -> crate::support::Outcome {
    validate(&Args {
        explain: Some(code.to_owned()),
        format,
        ..Args::for_path(".")
    })
}

#[test]
fn explain_prints_the_rule_as_text_and_json() {
    let text = explain("GPU004", Format::Human);
    assert_eq!(text.exit, Exit::Clean);
    insta::assert_snapshot!("explain_GPU004", text.stdout);
    let json = explain("gpu004", Format::Json);
    insta::assert_snapshot!("explain_GPU004_json", json.stdout);
    let unknown = explain("GPU404", Format::Human);
    assert_eq!(unknown.exit, Exit::Failure);
    assert!(
        unknown
            .stderr
            .contains("no rule `GPU404` (rules: RC001, RC002"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn every_rule_is_explained_in_the_same_sections() {
    for rule in Rule::ALL {
        let explanation = rule.explanation();
        for section in [
            "## What it checks",
            "## Why it matters on a GPU fleet",
            "## Example",
            "## Fix",
        ] {
            assert!(
                explanation.contains(section),
                "{}: no {section}",
                rule.code()
            );
        }
    }
}

/// The rule table of docs/release-config.md lists every rule of the catalogue, in its order,
/// with its default severity.
#[test]
fn the_docs_rule_table_matches_the_catalogue() {
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/release-config.md"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let rows: Vec<(String, String)> = docs
        .lines()
        .skip_while(|line| !line.starts_with("| code | default |"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells[1].to_owned(), cells[2].to_owned())
        })
        .collect();
    let catalogue: Vec<(String, String)> = Rule::ALL
        .iter()
        .map(|rule| {
            (
                rule.code().to_owned(),
                rule.default_severity().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(rows, catalogue);
}
