//! The local deploy workflow, step by step as the deploy_workflow prompt tells an agent.

use registry_emulator::Role;
use serde_json::json;

use crate::support::{Registry, Server, str_of};

#[tokio::test]
async fn deploy_workflow_from_model_to_benchmark() {
    let registry = Registry::start().await;
    let server = Server::start(&registry.env(Role::Operator)).await;

    // 1. Find the model.
    let models = server
        .call_ok("list_models", json!({"search": "bge"}))
        .await;
    assert_eq!(models["total"], 1, "{models}");
    let model_name = str_of(&models, "/models/0/name").to_owned();
    assert_eq!(model_name, "bge-m3");

    // 2. Its latest version.
    let latest = server
        .call_ok("get_latest_version", json!({"model_name": model_name}))
        .await;
    let version_id = str_of(&latest, "/version/id").to_owned();
    assert_eq!(str_of(&latest, "/version/version"), "1.1.0");

    // 3. A successful image build: none yet, so build one and poll it.
    let builds = server
        .call_ok(
            "list_docker_builds",
            json!({"version_id": version_id, "status": "success"}),
        )
        .await;
    assert_eq!(builds["total"], 0, "{builds}");
    let build = server
        .call_ok(
            "trigger_docker_build",
            json!({"version_id": version_id, "build_type": "embedding"}),
        )
        .await;
    let build_id = str_of(&build, "/build/id").to_owned();
    let mut status = str_of(&build, "/build/status").to_owned();
    for _ in 0..10 {
        if status == "success" || status == "failed" {
            break;
        }
        let polled = server
            .call_ok("get_docker_build", json!({"build_id": build_id}))
            .await;
        status = str_of(&polled, "/build/status").to_owned();
    }
    assert_eq!(status, "success");

    // 4. A LOCAL deployment in staging; production would be refused.
    let started = server
        .call_ok(
            "execute_deployment",
            json!({"version_id": version_id, "environment": "staging"}),
        )
        .await;
    assert_eq!(started["scope"], "local");
    let deployment_id = str_of(&started, "/deployment_id").to_owned();

    // 5. Poll until running, then check health.
    let mut status = str_of(&started, "/deployment/status").to_owned();
    let mut polls = 0;
    while status != "running" {
        assert!(
            polls < 10 && status != "failed",
            "status {status} after {polls} polls"
        );
        let polled = server
            .call_ok(
                "get_deployment_status",
                json!({"deployment_id": deployment_id}),
            )
            .await;
        status = str_of(&polled, "/status").to_owned();
        polls += 1;
    }
    let health = server
        .call_ok(
            "get_deployment_health",
            json!({"deployment_id": deployment_id}),
        )
        .await;
    assert_eq!(health["healthy"], true, "{health}");

    // 6. Benchmark it.
    let benchmark = server.call_ok("run_benchmark",
        json!({"deployment_id": deployment_id, "endpoint_path": "/v1/embeddings", "concurrent_requests": 8, "total_requests": 200}),
    )
    .await;
    assert_eq!(benchmark["benchmark"]["successful_requests"], 200);
    assert!(
        benchmark["benchmark"]["requests_per_second"]
            .as_f64()
            .is_some_and(|rps| rps > 0.0)
    );
    let summary = server
        .call_ok(
            "get_benchmark_summary",
            json!({"deployment_id": deployment_id}),
        )
        .await;
    assert_eq!(summary["runs"], 1);

    // The writes the registry saw, in order: build, deployment, benchmark. Nothing else wrote.
    let writes: Vec<String> = registry
        .requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET "))
        .collect();
    assert_eq!(
        writes,
        [
            "POST /v1/docker/builds",
            "POST /v1/deployments",
            "POST /v1/benchmarks"
        ]
    );
    server.stop().await;
}
