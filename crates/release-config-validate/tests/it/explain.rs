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

const TABLE_START: &str =
    "<!-- generated from the rule units, crates/topology/src/rules/: edit them, not this table -->";
const TABLE_END: &str = "<!-- end of the generated rule table -->";

/// The rule table of docs/release-config.md, made from the catalogue: code (a link to the
/// explanation), default severity, summary, and what keeps the rule silent.
fn rule_table() -> String {
    let mut table =
        String::from("| code | default | fires when | not reported when |\n|---|---|---|---|\n");
    for rule in Rule::ALL {
        let silent = match rule.not_reported_when() {
            "" => "—",
            text => text,
        };
        table.push_str(&format!(
            "| [{code}](../{path}) | {severity} | {summary} | {silent} |\n",
            code = rule.code(),
            path = rule.explanation_path(),
            severity = rule.default_severity(),
            summary = rule.summary(),
        ));
    }
    table
}

/// The docs' rule table is generated from the rule units (rust-analyzer's sourcegen tests
/// are the model): when a unit changes, this test rewrites the table and fails once, so
/// the change shows in `git diff` like an updated snapshot.
#[test]
fn the_docs_rule_table_is_generated_from_the_rule_units() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/release-config.md");
    let docs = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = docs
        .find(TABLE_START)
        .unwrap_or_else(|| panic!("{}: no line {TABLE_START}", path.display()))
        + TABLE_START.len();
    let end = docs
        .find(TABLE_END)
        .unwrap_or_else(|| panic!("{}: no line {TABLE_END}", path.display()));
    let wanted = format!("\n{}", rule_table());
    if docs.get(start..end) == Some(wanted.as_str()) {
        return;
    }
    let updated = format!("{}{wanted}{}", &docs[..start], &docs[end..]);
    std::fs::write(&path, updated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    panic!(
        "{}: the rule table was not the rule units'; it has been regenerated: review it with `git diff` and commit it",
        path.display()
    );
}
