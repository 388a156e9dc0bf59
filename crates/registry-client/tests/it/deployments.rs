use registry_client::{
    DeploymentFilter, DeploymentStatus, Environment, NewDeployment, RegistryError,
};
use registry_emulator::Role;

use crate::{Env, must};

#[tokio::test]
async fn deployment_lifecycle_through_the_client() {
    let env = Env::start().await;
    let client = env.client(Role::Operator);
    let running = must(
        client
            .list_deployments(&DeploymentFilter {
                status: Some(DeploymentStatus::Running),
                ..Default::default()
            })
            .await,
        "list",
    );
    assert_eq!(running.total, 3);
    let staging = must(
        client
            .list_deployments(&DeploymentFilter {
                environment: Some(Environment::Staging),
                ..Default::default()
            })
            .await,
        "list staging",
    );
    assert_eq!(staging.total, 2);

    let version_id = env.version_id("qwen2.5-7b-instruct", "2024.09");
    let new = NewDeployment {
        version_id,
        environment: Environment::Staging,
        gpu_enabled: None,
        deployment_type: None,
    };
    let created = must(client.execute_deployment(&new).await, "execute");
    assert_eq!(created.status, "pending");
    // Deployments are never cached: each poll reaches the server and sees progress.
    let first = must(client.get_deployment_status(&created.id).await, "status");
    let second = must(client.get_deployment(&created.id).await, "get");
    assert_eq!(
        (first.status.as_str(), second.status.as_str()),
        ("starting", "running")
    );
    let again = client.execute_deployment(&new).await;
    assert!(
        matches!(again, Err(RegistryError::Conflict { .. })),
        "{again:?}"
    );

    let restarted = must(client.restart_deployment(&created.id).await, "restart");
    assert_eq!(restarted.status, "starting");
    let status = must(client.get_deployment_status(&created.id).await, "status");
    assert_eq!(
        (status.status.as_str(), status.restart_count),
        ("running", 1)
    );
    let stopped = must(client.stop_deployment(&created.id).await, "stop");
    assert!(stopped.stopped_at.is_some());
    let twice = client
        .stop_deployment(&created.id)
        .await
        .map_err(|e| e.to_string());
    assert_eq!(
        twice,
        Err(format!(
            "POST /v1/deployments/{0}/stop: 409: deployment '{0}' is already stopped",
            created.id
        ))
    );
    let started = must(client.start_deployment(&created.id).await, "start");
    assert_eq!(started.status, "starting");
}

#[tokio::test]
async fn logs_and_health() {
    let env = Env::start().await;
    let client = env.client(Role::Viewer);
    let running = env.deployment_id("llama-3-70b-instruct", "1.1.0");
    let logs = must(client.get_deployment_logs(&running, Some(20)).await, "logs");
    assert_eq!((logs.lines.len(), logs.truncated), (20, true));
    let default = must(
        client.get_deployment_logs(&running, None).await,
        "default logs",
    );
    assert_eq!(default.lines.len(), 100);
    let health = must(client.get_deployment_health(&running).await, "health");
    assert!(health.healthy);
    let stopped = env.deployment_id("qwen2.5-7b-instruct", "2024.09");
    let down = must(
        client.get_deployment_health(&stopped).await,
        "health stopped",
    );
    assert!(!down.healthy && down.error.is_some());
    let bad = client.get_deployment_logs(&running, Some(0)).await;
    assert!(
        matches!(&bad, Err(RegistryError::Validation { errors, .. }) if errors[0].location() == "query.lines"),
        "{bad:?}"
    );
}
