//! The bench hook that `cargo xtask bench` drives: it must work against the real
//! binary and report every figure. Timing targets are checked by the benchmark,
//! not here; this only proves the measurement itself runs.

use model_registry_mcp::bench::{BenchOptions, ConfirmTarget, run};
use registry_emulator::Role;

use crate::support::{BINARY, FLEET, repo_with};

#[tokio::test]
async fn bench_hook_reports_every_figure_for_the_fixture_fleet() {
    let repo = repo_with(FLEET);
    let registry = crate::emu::Registry::start().await;
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let options = BenchOptions {
        binary: BINARY.into(),
        repository: Some(repo.url()),
        calls: 20,
        env: vec![(
            "REGISTRY_RELEASE_CONFIG_CACHE_DIR".to_owned(),
            cache.path().display().to_string(),
        )],
        confirm_on: Some(ConfirmTarget {
            registry_url: registry.emu.base_url().to_owned(),
            api_key: registry.key(Role::Operator),
            deployment_id: registry.deployment_id("qwen2.5-7b-instruct", "2024.10"),
        }),
    };
    let report = run(&options).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(report.topology_p50.is_some(), "{report}");
    assert!(report.tools_list_bytes > 0, "{report}");
    assert!(report.peak_rss_kib.is_some(), "{report}");
    let revisions: Vec<&str> = report
        .startup_by_revision
        .iter()
        .map(|(revision, _)| revision.as_str())
        .collect();
    assert_eq!(
        revisions,
        ["2025-06-18", "2025-11-25", "2026-07-28"],
        "{report}"
    );
    assert!(report.confirm_p99.is_some(), "{report}");
    // Declined every time: the registry saw reads only.
    assert!(registry.take().0.iter().all(|r| r.starts_with("GET ")));
}

/// The HTTP service's bench (authentication on): sessions held and authenticated requests.
#[tokio::test]
async fn the_http_bench_opens_sessions_and_counts_authenticated_requests() {
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let options = BenchOptions {
        binary: BINARY.into(),
        ..BenchOptions::default()
    };
    let report = model_registry_mcp::bench::http::run(&options, work.path(), 50, 200, 4)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.sessions, report.requests), (50, 200));
    assert!(
        report.rss_after_kib >= report.rss_before_kib && report.rss_before_kib > 0,
        "{report:?}"
    );
    assert!(report.requests_per_second() > 0.0);
}
