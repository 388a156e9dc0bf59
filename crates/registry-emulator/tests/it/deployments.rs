use registry_emulator::Role;
use serde_json::json;

use crate::{Emu, field_of_items, pairs, validation_errors};

#[tokio::test]
async fn deployment_filters() {
    let emu = Emu::start().await;
    let cases = [
        ("status=running", 3),
        ("environment=dev", 3),
        ("status=running&environment=staging", 2),
        ("model_name=bge-m3", 2),
        ("", 7),
    ];
    for (query, total) in cases {
        assert_eq!(
            emu.get(&format!("/v1/deployments?{query}")).await["total"],
            total,
            "{query}"
        );
    }
    let (status, body) = emu
        .call(
            "GET",
            "/v1/deployments?environment=production",
            Some(Role::Viewer),
            None,
        )
        .await;
    assert_eq!(
        (status, validation_errors(&body)),
        (422, pairs(&[("query.environment", "enum")]))
    );
    // Lists do not advance lifecycles.
    let pending = emu.get("/v1/deployments?status=pending").await;
    assert_eq!(emu.get("/v1/deployments?status=pending").await, pending);
}

#[tokio::test]
async fn execute_then_each_read_advances_one_step() {
    let emu = Emu::start().await;
    let version_id = emu.version_id("llama-3-70b-instruct", "1.0.0");
    let (status, created) = emu
        .post(
            "/v1/deployments",
            json!({"version_id": version_id, "environment": "staging"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["gpu_enabled"], true, "auto-detected from the model");
    assert_eq!(created["deployment_type"], "vllm");
    assert!(
        created["endpoint_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:"))
    );
    let id = created["id"].as_str().unwrap_or_default().to_owned();

    let status1 = emu.get(&format!("/v1/deployments/{id}/status")).await;
    assert_eq!(
        status1,
        json!({"status": "starting", "container_status": "created", "uptime_seconds": null, "restart_count": 0})
    );
    let running = emu.get(&format!("/v1/deployments/{id}")).await;
    assert_eq!(running["status"], "running");
    assert!(running["started_at"].is_string());
    let status3 = emu.get(&format!("/v1/deployments/{id}/status")).await;
    assert_eq!(
        (
            status3["status"].clone(),
            status3["container_status"].clone()
        ),
        (json!("running"), json!("running"))
    );
    assert!(status3["uptime_seconds"].is_u64());

    // Same version in the same environment while running: 409. Another environment: fine.
    let (status, body) = emu
        .post(
            "/v1/deployments",
            json!({"version_id": version_id, "environment": "staging"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, other) = emu
        .post(
            "/v1/deployments",
            json!({"version_id": version_id, "environment": "dev", "gpu_enabled": false}),
        )
        .await;
    assert_eq!((status, other["gpu_enabled"].clone()), (201, json!(false)));
    assert_ne!(other["host_port"], created["host_port"]);

    let cases: [(serde_json::Value, u16); 4] = [
        (
            json!({"version_id": version_id, "environment": "production"}),
            422,
        ),
        (json!({"environment": "dev"}), 422),
        (json!({"version_id": "nope", "environment": "dev"}), 404),
        (
            json!({"version_id": version_id, "environment": "testing", "deployment_type": "k8s"}),
            422,
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = emu.post("/v1/deployments", body.clone()).await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    let audit = emu
        .get("/v1/system/audit-logs?action=deployment.execute&limit=1")
        .await;
    assert_eq!(audit["items"][0]["resource_id"], other["id"]);
    assert_eq!(audit["items"][0]["actor"], "demo-operator");
}

#[tokio::test]
async fn stop_start_restart_conflicts() {
    let emu = Emu::start().await;
    let running = emu.deployment_id("llama-3-70b-instruct", "1.1.0");
    let stopped = emu.deployment_id("qwen2.5-7b-instruct", "2024.09");
    let starting = emu.deployment_id("bge-m3", "1.1.0");
    let failed = emu.deployment_id("llama-3-70b-instruct", "1.2.0-rc1");
    // (action, deployment, expected status, expected state after)
    let cases = [
        ("stop", stopped.clone(), 409, "stopped"),
        ("start", running.clone(), 409, "running"),
        ("start", starting.clone(), 409, "starting"),
        ("restart", starting.clone(), 409, "starting"),
        ("start", stopped.clone(), 200, "starting"),
        ("restart", running.clone(), 200, "starting"),
        ("stop", failed.clone(), 200, "stopped"),
        ("start", failed.clone(), 200, "starting"),
        ("stop", "nope".to_owned(), 404, ""),
    ];
    for (action, id, expected, state) in cases {
        let (status, body) = emu
            .post(&format!("/v1/deployments/{id}/{action}"), json!(null))
            .await;
        assert_eq!(status, expected, "{action} {id}: {body}");
        if status == 200 {
            assert_eq!(body["status"], state, "{action} {id}");
        } else if status == 409 {
            assert!(
                body["detail"].as_str().is_some_and(|d| d.contains(&id)),
                "{body}"
            );
        }
    }
    let status = emu.get(&format!("/v1/deployments/{running}/status")).await;
    assert_eq!(
        (status["status"].clone(), status["restart_count"].clone()),
        (json!("running"), json!(1))
    );
    let (status, _) = emu
        .call(
            "POST",
            &format!("/v1/deployments/{running}/stop"),
            Some(Role::Viewer),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let actions: Vec<String> = field_of_items(
        &emu.get("/v1/system/audit-logs?resource_type=deployment&limit=4")
            .await,
        "action",
    );
    assert_eq!(
        actions,
        [
            "deployment.start",
            "deployment.stop",
            "deployment.restart",
            "deployment.start"
        ]
    );
}

#[tokio::test]
async fn logs_honour_lines_and_report_truncation() {
    let emu = Emu::start().await;
    let running = emu.deployment_id("llama-3-70b-instruct", "1.1.0");
    let pending = emu.deployment_id("bge-m3", "1.0.0");
    let failed = emu.deployment_id("llama-3-70b-instruct", "1.2.0-rc1");
    let default = emu.get(&format!("/v1/deployments/{running}/logs")).await;
    assert_eq!(
        (
            default["lines"].as_array().map(Vec::len),
            default["truncated"].clone()
        ),
        (Some(100), json!(true))
    );
    let five = emu
        .get(&format!("/v1/deployments/{running}/logs?lines=5"))
        .await;
    assert_eq!(five["lines"].as_array().map(Vec::len), Some(5));
    let all = emu
        .get(&format!("/v1/deployments/{running}/logs?lines=10000"))
        .await;
    assert_eq!(all["truncated"], false);
    assert_eq!(
        all["lines"][all["lines"].as_array().map_or(0, Vec::len) - 1],
        five["lines"][4],
        "tail kept"
    );
    let none = emu.get(&format!("/v1/deployments/{pending}/logs")).await;
    assert_eq!(none, json!({"lines": [], "truncated": false}));
    let crashed = emu.get(&format!("/v1/deployments/{failed}/logs")).await;
    assert!(crashed["lines"].to_string().contains("CUDA out of memory"));
    for bad in ["lines=0", "lines=10001", "lines=x"] {
        let (status, _) = emu
            .call(
                "GET",
                &format!("/v1/deployments/{running}/logs?{bad}"),
                Some(Role::Viewer),
                None,
            )
            .await;
        assert_eq!(status, 422, "{bad}");
    }
    let (status, _) = emu
        .call("GET", "/v1/deployments/nope/logs", Some(Role::Viewer), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn health_is_200_even_when_not_running() {
    let emu = Emu::start().await;
    let running = emu.deployment_id("whisper-large-v3", "3.0.0");
    let stopped = emu.deployment_id("qwen2.5-7b-instruct", "2024.09");
    let healthy = emu.get(&format!("/v1/deployments/{running}/health")).await;
    assert_eq!(healthy["healthy"], true);
    assert_eq!(healthy["checked_url"], "http://127.0.0.1:9005/audio/health");
    let down = emu.get(&format!("/v1/deployments/{stopped}/health")).await;
    assert_eq!(
        (down["healthy"].clone(), down["status_code"].clone()),
        (json!(false), json!(null))
    );
    assert_eq!(down["error"], "deployment is stopped, not running");
    let (status, _) = emu
        .call(
            "GET",
            "/v1/deployments/nope/health",
            Some(Role::Viewer),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn rust_api_controls_state() {
    let emu = Emu::start().await;
    let id = emu.deployment_id("bge-m3", "1.0.0");
    crate::must(
        emu.emu.state().set_deployment_status(&id, "running"),
        "set status",
    );
    crate::must(
        emu.emu
            .state()
            .set_endpoint_url(&id, Some("http://127.0.0.1:1/x")),
        "set url",
    );
    let d = emu.get(&format!("/v1/deployments/{id}")).await;
    assert_eq!(
        (d["status"].clone(), d["endpoint_url"].clone()),
        (json!("running"), json!("http://127.0.0.1:1/x"))
    );
    emu.emu
        .state()
        .set_model_endpoint_url(Some("http://127.0.0.1:2"));
    let version_id = emu.version_id("bge-m3", "1.1.0");
    let (_, created) = emu
        .post(
            "/v1/deployments",
            json!({"version_id": version_id, "environment": "staging"}),
        )
        .await;
    assert_eq!(created["endpoint_url"], "http://127.0.0.1:2");
    assert!(
        emu.emu
            .state()
            .set_deployment_status("nope", "running")
            .is_err()
    );
}
