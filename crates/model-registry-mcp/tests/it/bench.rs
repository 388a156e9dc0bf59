//! The bench hook against the fixture fleet. Ignored by default (timing, not correctness):
//! `cargo test -p model-registry-mcp --release --test it bench -- --ignored --nocapture`.

use model_registry_mcp::bench::{BenchOptions, run};

use crate::support::{BINARY, FLEET, FixtureRepo};

#[tokio::test]
#[ignore = "measurement; run explicitly"]
async fn bench_fixture_fleet() {
    let repo = FixtureRepo::new(FLEET);
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let options = BenchOptions {
        binary: BINARY.into(),
        repository: Some(repo.url()),
        calls: 500,
        env: vec![(
            "REGISTRY_RELEASE_CONFIG_CACHE_DIR".to_owned(),
            cache.path().display().to_string(),
        )],
    };
    let report = run(&options).await.unwrap_or_else(|e| panic!("{e}"));
    println!("{report}");
    assert!(report.topology_p50.is_some());
}
