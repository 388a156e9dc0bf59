//! The official MCP conformance suite against the real binary over HTTP, on 2025-06-18,
//! 2025-11-25 and 2026-07-28: every server scenario the suite lists
//! for the revision runs, but those in `tools/conformance/not-applicable.txt` (they need the
//! suite's own fixture tools, resources or prompts, or an extension this server does not
//! implement; each line says which). Checks that need a fixture inside a scenario that otherwise
//! applies are in `tools/conformance/expected-failures.yml`; the suite fails the run on any other
//! failure or warning, and on a listed check that now passes.

use std::collections::BTreeMap;

use registry_emulator::Role;

use crate::emu::Registry;
use crate::support::{FLEET, as_refs, repo_with};

/// `not-applicable.txt`: scenario → reason.
fn not_applicable(suite: &test_support::conformance::Suite) -> BTreeMap<String, String> {
    let path = suite.dir.join("not-applicable.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (scenario, reason) = line.split_once('#').unwrap_or((line, ""));
            (scenario.trim().to_owned(), reason.trim().to_owned())
        })
        .collect()
}

/// The server scenarios the suite lists for `revision`.
fn scenarios(suite: &test_support::conformance::Suite, revision: &str) -> Vec<String> {
    let output = suite
        .command()
        .args(["list", "--server", "--spec-version", revision])
        .output()
        .unwrap_or_else(|e| panic!("cannot run the conformance suite: {e}"));
    let text = String::from_utf8_lossy(&output.stdout);
    let listed: Vec<String> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(!listed.is_empty(), "the suite listed no scenario: {text}");
    listed
}

#[tokio::test]
async fn the_official_conformance_suite_passes_on_every_revision() {
    let suite = test_support::conformance::suite().unwrap_or_else(|e| panic!("{e}"));
    let skipped = not_applicable(&suite);
    let registry = Registry::start().await;
    let repo = repo_with(FLEET);
    let mut env = registry.env(Role::Admin);
    env.push(("REGISTRY_RELEASE_CONFIG_REPO", repo.url()));
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_server, port) = crate::http::start_http(&as_refs(&env), &[], cache.path()).await;
    // `localhost`: the DNS-rebinding scenario needs a localhost URL.
    let url = format!("http://localhost:{port}/mcp");
    let baseline = suite.dir.join("expected-failures.yml");
    let mut ran = Vec::new();
    let mut failed = Vec::new();
    for revision in ["2025-06-18", "2025-11-25", "2026-07-28"] {
        for scenario in scenarios(&suite, revision) {
            if skipped.contains_key(&scenario) {
                continue;
            }
            let mut command = suite.command();
            command
                .args(["server", "--url", &url, "--scenario", &scenario])
                .args(["--spec-version", revision])
                .arg("--expected-failures")
                .arg(&baseline);
            let output = tokio::task::spawn_blocking(move || command.output())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("cannot run the conformance suite: {e}"));
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            let result = stdout
                .lines()
                .find(|line| line.starts_with("Passed:"))
                .unwrap_or("no result")
                .to_owned();
            ran.push(format!("{revision} {scenario}: {result}"));
            if !output.status.success() {
                failed.push(format!("{revision} {scenario}: {result}\n{stdout}"));
            }
        }
    }
    eprintln!("conformance:\n{}", ran.join("\n"));
    assert!(ran.len() >= 20, "too few scenarios ran: {ran:?}");
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
