//! Accepting a finding where it happens: `# release-config: ignore CODE -- reason` on its line
//! or the line above. Suppressed findings stay in every report, marked; a suppression without a
//! reason, or one that accepts nothing, is SUP001.

use release_config_validate::{Exit, Format};

use crate::support::{GitRepo, args, fixtures, validate};

/// The GPU003 fixture (an unpinned `count: 2` at line 13 beside a pinned service), with
/// `comment` inserted above line 13 of the unpinned service's file.
fn gpu003_with(comment: &str) -> GitRepo {
    let repo = GitRepo::init();
    let source = fixtures().join("rules/GPU003/machines/m1");
    for file in ["machine.yaml", "8001/docker-compose.yml"] {
        let text = std::fs::read_to_string(source.join(file)).unwrap_or_else(|e| panic!("{e}"));
        repo.write(&format!("machines/m1/{file}"), &text);
    }
    let text = std::fs::read_to_string(source.join("8000/docker-compose.yml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(12, comment);
    repo.write(
        "machines/m1/8000/docker-compose.yml",
        &(lines.join("\n") + "\n"),
    );
    repo
}

#[test]
fn a_finding_accepted_with_a_reason_is_reported_as_suppressed_and_does_not_fail() {
    let repo = gpu003_with(
        "              # release-config: ignore GPU003 -- tp=2 on whichever GPUs are free; reviewed in #41",
    );
    let json = validate(&args(repo.path(), Format::Json));
    assert_eq!(json.exit, Exit::Clean, "{}", json.stdout);
    let report = json.json();
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    assert_eq!(findings.len(), 1, "it never vanishes: {findings:?}");
    assert_eq!(findings[0]["code"], "GPU003");
    assert_eq!(
        findings[0]["suppressed"]["reason"],
        "tp=2 on whichever GPUs are free; reviewed in #41"
    );
    assert_eq!(report["summary"]["errors"], 0, "not counted");

    let sarif: serde_json::Value =
        serde_json::from_str(&validate(&args(repo.path(), Format::Sarif)).stdout)
            .unwrap_or_default();
    crate::sarif_shape::assert_sarif_shape(&sarif);
    assert_eq!(
        sarif["runs"][0]["results"][0]["suppressions"],
        serde_json::json!([{"kind": "inSource", "justification": "tp=2 on whichever GPUs are free; reviewed in #41"}])
    );
    let human = validate(&args(repo.path(), Format::Human));
    assert!(
        human.stdout.contains("suppressed where it happens: tp=2"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("no findings; 1 suppressed"),
        "{}",
        human.stdout
    );
    let github = validate(&args(repo.path(), Format::Github));
    assert!(
        !github.stdout.contains("::error"),
        "no annotation for an accepted finding: {}",
        github.stdout
    );
}

#[test]
fn a_suppression_needs_a_reason_and_a_finding() {
    let cases = [
        (
            "              # release-config: ignore GPU003",
            Exit::Findings,
            vec!["GPU003", "SUP001"],
            "needs a reason",
        ),
        (
            "              # release-config: ignore GPU001 -- wrong rule named",
            Exit::Findings,
            vec!["GPU003", "SUP001"],
            "this suppression of GPU001 accepts no finding",
        ),
        (
            "              # release-config: ignore GPU03 -- typo",
            Exit::Findings,
            vec!["GPU003", "SUP001"],
            "names no rule called GPU03",
        ),
    ];
    for (comment, exit, codes, says) in cases {
        let repo = gpu003_with(comment);
        let outcome = validate(&args(repo.path(), Format::Json));
        assert_eq!(outcome.exit, exit, "{comment}: {}", outcome.stdout);
        let mut got = outcome.codes();
        got.sort();
        assert_eq!(got, codes, "{comment}");
        assert!(
            outcome.stdout.contains(says),
            "{comment}: {}",
            outcome.stdout
        );
    }
}
