//! The production side: the GPU map from a release-config Git repository, never the registry.

use registry_emulator::Role;
use rmcp::model::{ReadResourceRequestParams, ResourceContents};
use serde_json::{Value, json};

use crate::support::{Registry, Server, release_repo};

#[tokio::test]
async fn production_topology_from_the_release_config_repository() {
    let repo = release_repo();
    let registry = Registry::start().await;
    let mut env = registry.env(Role::Viewer);
    env.push(("REGISTRY_RELEASE_CONFIG_REPO", repo.url()));
    let server = Server::start(&env).await;

    let fleet = server.call_ok("get_machine_topology", json!({})).await;
    assert_eq!(fleet["source"]["commit"]["commit"], repo.head().as_str());
    assert_eq!(fleet["source"]["stale"], false);
    let machines = fleet["machines"].as_array().cloned().unwrap_or_default();
    assert!(machines.len() >= 10, "{} machines", machines.len());
    assert!(machines.iter().any(|m| m["machine"] == "gpu-h100-01"));
    assert!(
        fleet["fleet"]["gpus"].as_u64().is_some_and(|g| g > 0),
        "{}",
        fleet["fleet"]
    );

    let one = server
        .call_ok("get_machine_topology", json!({"machine": "gpu-h100-01"}))
        .await;
    let machine = &one["machines"][0];
    assert_eq!(machine["machine"], "gpu-h100-01");
    assert!(
        machine["deployments"]
            .as_array()
            .is_some_and(|d| d.len() == 3),
        "{machine}"
    );

    let production = server
        .call_ok("list_release_configs", json!({"machine": "gpu-h100-01"}))
        .await;
    assert_eq!(production["total"], 3);

    // health://status joins the registry's health and the repository's state.
    let health = server
        .client
        .read_resource(ReadResourceRequestParams::new("health://status"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = match health.contents.first() {
        Some(ResourceContents::TextResourceContents { text, .. }) => text.clone(),
        other => panic!("{other:?}"),
    };
    let health: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(health["registry"]["status"], "ok");
    assert_eq!(health["release_configs"]["commit"], repo.head().as_str());

    // Production answers never touch the registry's deployment endpoints (the server asks only
    // for its key's role and for the health).
    assert!(
        registry
            .requests()
            .iter()
            .all(|r| r == "GET /v1/system/health" || r == "GET /v1/auth/me"),
        "{:?}",
        registry.requests()
    );
    server.stop().await;
}
