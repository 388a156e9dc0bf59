use registry_emulator::Role;
use serde_json::json;

use crate::{Emu, field_of_items, pairs, validation_errors};

#[tokio::test]
async fn build_lifecycle_and_logs() {
    let emu = Emu::start().await;
    let version_id = emu.version_id("bge-m3", "1.0.0");
    let (status, build) = emu
        .post(
            "/v1/docker/builds",
            json!({"version_id": version_id, "build_type": "embedding"}),
        )
        .await;
    assert_eq!(status, 201, "{build}");
    assert_eq!(
        (build["status"].clone(), build["image_tag"].clone()),
        (json!("pending"), json!("registry.local/bge-m3:1.0.0"))
    );
    let id = build["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        emu.get(&format!("/v1/docker/builds/{id}")).await["status"],
        "building"
    );
    let logs = emu.get(&format!("/v1/docker/builds/{id}/logs")).await;
    assert_eq!(logs["truncated"], false);
    assert!(
        logs["lines"]
            .to_string()
            .contains("Successfully tagged registry.local/bge-m3:1.0.0"),
        "{logs}"
    );
    let done = emu.get(&format!("/v1/docker/builds/{id}")).await;
    assert_eq!(done["status"], "success");
    assert!(done["completed_at"].is_string());
    let short = emu
        .get(&format!("/v1/docker/builds/{id}/logs?lines=2"))
        .await;
    assert_eq!(
        (
            short["lines"].as_array().map(Vec::len),
            short["truncated"].clone()
        ),
        (Some(2), json!(true))
    );

    let (status, body) = emu
        .post(
            "/v1/docker/builds",
            json!({"version_id": "nope", "build_type": "vllm"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "version 'nope' not found"}))
    );
    let (status, body) = emu.post("/v1/docker/builds", json!({"image_tag": 1})).await;
    assert_eq!(status, 422);
    assert_eq!(
        validation_errors(&body),
        pairs(&[
            ("body.version_id", "missing"),
            ("body.build_type", "missing"),
            ("body.image_tag", "string_type")
        ])
    );
    let audit = emu
        .get("/v1/system/audit-logs?action=build.trigger&limit=1")
        .await;
    assert_eq!(audit["items"][0]["resource_id"], id.as_str());
}

#[tokio::test]
async fn build_filters_and_disk_usage() {
    let emu = Emu::start().await;
    let cases = [("status=failed", 1), ("status=success", 4), ("", 7)];
    for (query, total) in cases {
        assert_eq!(
            emu.get(&format!("/v1/docker/builds?{query}")).await["total"],
            total,
            "{query}"
        );
    }
    let (status, _) = emu
        .call(
            "GET",
            "/v1/docker/builds?status=done",
            Some(Role::Viewer),
            None,
        )
        .await;
    assert_eq!(status, 422);
    let (status, body) = emu
        .call("GET", "/v1/docker/builds/nope", Some(Role::Viewer), None)
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "build 'nope' not found"}))
    );
    let usage = emu.get("/v1/docker/disk-usage").await;
    let sum: u64 = [
        "images_bytes",
        "containers_bytes",
        "volumes_bytes",
        "build_cache_bytes",
    ]
    .iter()
    .map(|k| usage[*k].as_u64().unwrap_or(0))
    .sum();
    assert_eq!(usage["total_bytes"], sum);
}

#[tokio::test]
async fn benchmarks_run_list_and_summarize() {
    let emu = Emu::start().await;
    let qwen = emu.deployment_id("qwen2.5-7b-instruct", "2024.10");
    let stopped = emu.deployment_id("qwen2.5-7b-instruct", "2024.09");
    let before = emu
        .get(&format!("/v1/deployments/{qwen}/benchmark-summary"))
        .await;
    assert_eq!(before["runs"], 1);

    let (status, run) = emu
        .post(
            "/v1/benchmarks",
            json!({"deployment_id": qwen, "endpoint_path": "/v1/chat/completions", "concurrent_requests": 4,
                   "total_requests": 50, "request_body": {"messages": []}}),
        )
        .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(
        (run["status"].clone(), run["successful_requests"].clone()),
        (json!("completed"), json!(50))
    );
    assert!(run["latency_ms"]["p99"].as_f64() > run["latency_ms"]["p50"].as_f64());
    let after = emu
        .get(&format!("/v1/deployments/{qwen}/benchmark-summary"))
        .await;
    assert_eq!(
        (after["runs"].clone(), after["latest"]["id"].clone()),
        (json!(2), run["id"].clone())
    );
    assert_eq!(after["best_rps"], 41.3);
    let listed = emu
        .get(&format!("/v1/benchmarks?deployment_id={qwen}"))
        .await;
    assert_eq!(
        field_of_items(&listed, "id")[0],
        run["id"].as_str().unwrap_or("")
    );
    assert_eq!(
        emu.get(&format!(
            "/v1/benchmarks/{}",
            run["id"].as_str().unwrap_or("")
        ))
        .await,
        run
    );

    let (status, body) = emu
        .post(
            "/v1/benchmarks",
            json!({"deployment_id": stopped, "endpoint_path": "/v1/completions", "concurrent_requests": 1, "total_requests": 1}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = emu
        .post(
            "/v1/benchmarks",
            json!({"deployment_id": qwen, "endpoint_path": "v1", "concurrent_requests": 0, "total_requests": "many", "request_body": 3}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        validation_errors(&body),
        pairs(&[
            ("body.endpoint_path", "string_pattern_mismatch"),
            ("body.concurrent_requests", "greater_than_equal"),
            ("body.total_requests", "int_type"),
            ("body.request_body", "dict_type"),
        ])
    );
    let empty = emu
        .get(&format!("/v1/deployments/{stopped}/benchmark-summary"))
        .await;
    assert_eq!(
        empty,
        json!({"latest": null, "runs": 0, "best_rps": null, "best_p50_ms": null})
    );
    let (status, _) = emu
        .call(
            "GET",
            "/v1/deployments/nope/benchmark-summary",
            Some(Role::Viewer),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = emu
        .call("GET", "/v1/benchmarks/nope", Some(Role::Viewer), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn artifact_filters() {
    let emu = Emu::start().await;
    let llama = emu.model_id("llama-3-70b-instruct");
    let whisper_version = emu.version_id("whisper-large-v3", "3.0.0");
    let cases = [
        ("artifact_type=wheel".to_owned(), 2),
        (format!("model_id={llama}"), 3),
        (format!("version_id={whisper_version}"), 2),
        (
            format!("version_id={whisper_version}&artifact_type=weights"),
            1,
        ),
        (String::new(), 7),
    ];
    for (query, total) in cases {
        assert_eq!(
            emu.get(&format!("/v1/artifacts?{query}")).await["total"],
            total,
            "{query}"
        );
    }
    let first = emu.get("/v1/artifacts?limit=1").await;
    let id = first["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        emu.get(&format!("/v1/artifacts/{id}")).await,
        first["items"][0]
    );
    let (status, body) = emu
        .call("GET", "/v1/artifacts/nope", Some(Role::Viewer), None)
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "artifact 'nope' not found"}))
    );
}
