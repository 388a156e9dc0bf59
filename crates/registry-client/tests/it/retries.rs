use registry_client::{NewModel, RegistryError, ServerType};
use registry_emulator::{FaultSpec, Role};

use crate::{Env, must};

#[tokio::test]
async fn gets_retry_transient_statuses_then_succeed() {
    let env = Env::start().await;
    let mut config = env.config(Role::Viewer);
    config.retries = 3;
    let client = env.client_with(config);
    for status in [502, 503, 504] {
        env.emu.requests().clear();
        env.emu.faults().set(FaultSpec {
            status: Some(status),
            for_next_n: Some(2),
            ..FaultSpec::default()
        });
        let health = must(client.health_check().await, "health after retries");
        assert_eq!(health.status, "ok");
        assert_eq!(
            env.count("GET", "/v1/system/health"),
            3,
            "status {status}: two failures then success"
        );
    }
}

#[tokio::test]
async fn gets_give_up_after_the_configured_retries() {
    let env = Env::start().await;
    let mut config = env.config(Role::Viewer);
    config.retries = 2;
    let client = env.client_with(config);
    env.emu.faults().set(FaultSpec {
        status: Some(503),
        ..FaultSpec::default()
    });
    let result = client.health_check().await;
    assert!(
        matches!(result, Err(RegistryError::Server { status: 503, .. })),
        "{result:?}"
    );
    assert_eq!(env.count("GET", "/v1/system/health"), 3);

    env.emu.requests().clear();
    env.emu.faults().set(FaultSpec {
        status: Some(500),
        ..FaultSpec::default()
    });
    assert!(client.health_check().await.is_err());
    assert_eq!(
        env.count("GET", "/v1/system/health"),
        1,
        "500 is not transient"
    );
}

#[tokio::test]
async fn dropped_connections_and_timeouts_retry_for_gets() {
    let env = Env::start().await;
    let mut config = env.config(Role::Viewer);
    config.retries = 2;
    config.timeout = std::time::Duration::from_millis(300);
    let client = env.client_with(config);
    env.emu.faults().set(FaultSpec {
        drop_connection: true,
        for_next_n: Some(1),
        ..FaultSpec::default()
    });
    must(client.me().await, "me after a dropped connection");
    assert_eq!(env.count("GET", "/v1/auth/me"), 2);

    env.emu.requests().clear();
    env.emu.faults().set(FaultSpec {
        slow_ms: Some(1_000),
        for_next_n: Some(2),
        ..FaultSpec::default()
    });
    must(client.health_check().await, "health after two timeouts");
    assert_eq!(env.count("GET", "/v1/system/health"), 3);
}

#[tokio::test]
async fn writes_never_retry() {
    let env = Env::start().await;
    let mut config = env.config(Role::Operator);
    config.retries = 5;
    config.timeout = std::time::Duration::from_millis(300);
    let client = env.client_with(config);
    let model = |name: &str| NewModel {
        name: name.into(),
        storage_path: "models/x".into(),
        server_type: ServerType::Other,
        description: None,
        tags: None,
        requires_gpu: None,
    };
    env.emu.faults().set(FaultSpec {
        status: Some(503),
        ..FaultSpec::default()
    });
    assert!(matches!(
        client.create_model(&model("a")).await,
        Err(RegistryError::Server { status: 503, .. })
    ));
    env.emu.faults().set(FaultSpec {
        drop_connection: true,
        ..FaultSpec::default()
    });
    assert!(matches!(
        client.create_model(&model("b")).await,
        Err(RegistryError::Connect { .. })
    ));
    env.emu.faults().set(FaultSpec {
        slow_ms: Some(1_000),
        ..FaultSpec::default()
    });
    assert!(matches!(
        client.stop_deployment("x").await,
        Err(RegistryError::Timeout { .. })
    ));
    env.emu.faults().clear();
    assert_eq!(env.count("POST", "/v1/models"), 2);
    assert_eq!(env.count("POST", "/v1/deployments/x/stop"), 1);
}
