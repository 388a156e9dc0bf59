use registry_client::{
    ArtifactFilter, AuditFilter, BenchmarkFilter, BuildFilter, BuildStatus, NewBenchmark, NewBuild,
    RegistryError, SearchQuery, SearchType,
};
use registry_emulator::Role;

use crate::{Env, must};

#[tokio::test]
async fn docker_builds() {
    let env = Env::start().await;
    let client = env.client(Role::Operator);
    let failed = must(
        client
            .list_docker_builds(&BuildFilter {
                status: Some(BuildStatus::Failed),
                ..Default::default()
            })
            .await,
        "list",
    );
    assert_eq!(failed.items.len(), 1);
    assert!(
        failed.items[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("pip install failed"))
    );
    let build = must(
        client
            .trigger_docker_build(&NewBuild {
                version_id: env.version_id("llama-3-70b-instruct", "1.0.0"),
                build_type: "vllm".into(),
                image_tag: Some("registry.local/llama:test".into()),
            })
            .await,
        "trigger",
    );
    assert_eq!(
        (build.status.as_str(), build.image_tag.as_deref()),
        ("pending", Some("registry.local/llama:test"))
    );
    assert_eq!(
        must(client.get_docker_build(&build.id).await, "get").status,
        "building"
    );
    let logs = must(client.get_docker_build_logs(&build.id, None).await, "logs");
    assert!(
        logs.lines
            .iter()
            .any(|l| l == "Successfully tagged registry.local/llama:test")
    );
    let usage = must(client.get_docker_disk_usage().await, "disk");
    assert_eq!(
        usage.total_bytes,
        usage.images_bytes + usage.containers_bytes + usage.volumes_bytes + usage.build_cache_bytes
    );
}

#[tokio::test]
async fn benchmarks_and_artifacts() {
    let env = Env::start().await;
    let client = env.client(Role::Operator);
    let qwen = env.deployment_id("qwen2.5-7b-instruct", "2024.10");
    let listed = must(
        client
            .list_benchmarks(&BenchmarkFilter {
                deployment_id: Some(qwen.clone()),
                ..Default::default()
            })
            .await,
        "list",
    );
    assert_eq!(listed.total, 1);
    let one = must(client.get_benchmark(&listed.items[0].id).await, "get");
    assert_eq!(one.latency_ms.p50, 352.0);
    let mut body = serde_json::Map::new();
    body.insert(
        "messages".into(),
        serde_json::json!([{"role": "user", "content": "hi"}]),
    );
    let run = must(
        client
            .run_benchmark(&NewBenchmark {
                deployment_id: qwen.clone(),
                endpoint_path: "/v1/chat/completions".into(),
                concurrent_requests: 8,
                total_requests: 100,
                request_body: Some(body),
            })
            .await,
        "run",
    );
    assert_eq!(run.status, "completed");
    let summary = must(client.get_benchmark_summary(&qwen).await, "summary");
    assert_eq!(
        (summary.runs, summary.latest.map(|b| b.id)),
        (2, Some(run.id))
    );

    let wheels = must(
        client
            .list_artifacts(&ArtifactFilter {
                artifact_type: Some("wheel".into()),
                ..Default::default()
            })
            .await,
        "artifacts",
    );
    assert_eq!(wheels.total, 2);
    let artifact = must(client.get_artifact(&wheels.items[0].id).await, "artifact");
    assert!(artifact.name.ends_with(".whl"));
    let missing = client.get_artifact("nope").await.map_err(|e| e.to_string());
    assert_eq!(
        missing,
        Err("GET /v1/artifacts/nope: 404: artifact 'nope' not found".to_owned())
    );
}

#[tokio::test]
async fn system_search_and_storage() {
    let env = Env::start().await;
    let client = env.client(Role::Viewer);
    let me = must(client.me().await, "me");
    assert_eq!(
        (me.name.as_str(), me.role.as_str()),
        ("demo-viewer", "viewer")
    );
    let health = must(client.health_check().await, "health");
    assert_eq!(health.status, "ok");
    assert_eq!(health.components.len(), 4);
    let audit = must(
        client
            .get_audit_logs(&AuditFilter {
                action: Some("version.promote".into()),
                ..Default::default()
            })
            .await,
        "audit",
    );
    assert_eq!(audit.items[0].actor, "release-bot");

    let usage = must(client.get_storage_usage().await, "storage");
    assert!(usage.used_bytes > 0 && usage.free_bytes < usage.total_bytes);
    // A leading '/' is stripped: the path is always relative to the storage root.
    let listing = must(
        client
            .browse_model_storage("/models/whisper-large-v3/3.0.0")
            .await,
        "browse",
    );
    assert_eq!(
        listing
            .entries
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["model.safetensors", "preprocessor_config.json"]
    );
    assert_eq!(listing.entries[0].entry_type, "file");
    let root = must(client.browse_model_storage("").await, "browse root");
    assert_eq!(root.entries.len(), 3);
    let escape = client.browse_model_storage("models/../..").await;
    assert!(
        matches!(&escape, Err(RegistryError::BadRequest { detail, .. }) if detail.contains("escapes the storage root")),
        "{escape:?}"
    );

    let found = must(
        client
            .search(&SearchQuery {
                q: "whisper".into(),
                types: vec![SearchType::Models, SearchType::Deployments],
                limit: None,
            })
            .await,
        "search",
    );
    assert_eq!(
        (
            found.models.len(),
            found.versions.len(),
            found.deployments.len()
        ),
        (1, 0, 1)
    );
    let sent = env
        .emu
        .requests()
        .snapshot()
        .into_iter()
        .rfind(|r| r.path == "/v1/search")
        .and_then(|r| r.query);
    assert_eq!(
        sent.as_deref(),
        Some("q=whisper&types=models%2Cdeployments&limit=50")
    );
}
