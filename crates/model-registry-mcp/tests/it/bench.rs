//! The bench hook that `cargo xtask bench` drives: it must work against the real
//! binary and report every figure. Timing targets are checked by the benchmark,
//! not here; this only proves the measurement itself runs.

use model_registry_mcp::bench::{BenchOptions, run};

use crate::support::{BINARY, FLEET, FixtureRepo};

#[tokio::test]
async fn bench_hook_reports_every_figure_for_the_fixture_fleet() {
    let repo = FixtureRepo::new(FLEET);
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let options = BenchOptions {
        binary: BINARY.into(),
        repository: Some(repo.url()),
        calls: 20,
        env: vec![(
            "REGISTRY_RELEASE_CONFIG_CACHE_DIR".to_owned(),
            cache.path().display().to_string(),
        )],
    };
    let report = run(&options).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(report.topology_p50.is_some(), "{report}");
    assert!(report.tools_list_bytes > 0, "{report}");
    assert!(report.peak_rss_kib.is_some(), "{report}");
}
