use std::time::{Duration, Instant};

use registry_client::{
    ClientConfig, ModelFilter, NewModel, RegistryClient, RegistryError, Secret, ServerType,
};
use registry_emulator::{FaultSpec, Role};

use crate::{Env, closed_port, must};

fn new_model(name: &str) -> NewModel {
    NewModel {
        name: name.into(),
        storage_path: format!("models/{name}"),
        server_type: ServerType::Other,
        description: None,
        tags: None,
        requires_gpu: None,
    }
}

#[tokio::test]
async fn status_codes_map_to_variants_naming_request_and_detail() {
    let env = Env::start().await;
    let viewer = env.client(Role::Viewer);
    let operator = env.client(Role::Operator);

    let forbidden = viewer.create_model(&new_model("x")).await;
    match &forbidden {
        Err(RegistryError::Forbidden {
            required_role,
            endpoint,
            ..
        }) => {
            assert_eq!(required_role.as_deref(), Some("operator"));
            assert_eq!(endpoint.to_string(), "POST /v1/models");
        }
        other => panic!("{other:?}"),
    }
    let admin_only = operator
        .delete_model(&env.model_id("mistral-7b-ft-support"))
        .await;
    assert!(
        matches!(&admin_only, Err(RegistryError::Forbidden { required_role: Some(r), .. }) if r == "admin"),
        "{admin_only:?}"
    );

    let not_found = viewer.get_model("abc").await;
    assert!(
        matches!(&not_found, Err(RegistryError::NotFound { resource: Some(r), .. }) if r.kind == "model" && r.id == "abc")
    );
    assert_eq!(
        not_found.map_err(|e| e.to_string()),
        Err("GET /v1/models/abc: 404: model 'abc' not found".to_owned())
    );

    must(operator.create_model(&new_model("dup")).await, "create");
    let conflict = operator
        .create_model(&new_model("dup"))
        .await
        .map_err(|e| e.to_string());
    assert_eq!(
        conflict,
        Err("POST /v1/models: 409: model 'dup' already exists".to_owned())
    );

    let invalid = operator.create_model(&new_model("bad name!")).await;
    match &invalid {
        Err(RegistryError::Validation { errors, .. }) => {
            assert_eq!(errors.len(), 1);
            assert_eq!(
                (errors[0].location(), errors[0].kind.as_str()),
                ("body.name".to_owned(), "string_pattern_mismatch")
            );
        }
        other => panic!("{other:?}"),
    }

    env.emu.faults().set(FaultSpec {
        status: Some(500),
        for_next_n: Some(1),
        ..FaultSpec::default()
    });
    let server = viewer.health_check().await;
    assert!(
        matches!(&server, Err(RegistryError::Server { status: 500, .. })),
        "{server:?}"
    );
    assert_eq!(
        server.map_err(|e| e.to_string()),
        Err("GET /v1/system/health: 500: injected fault: HTTP 500".to_owned())
    );

    let bad_key = env.client_with(ClientConfig::new(
        env.emu.base_url(),
        Some(Secret::new("nope")),
    ));
    let unauthorized = bad_key.me().await.map_err(|e| e.to_string());
    assert_eq!(
        unauthorized,
        Err("GET /v1/auth/me: 401: Invalid API key".to_owned())
    );
}

#[tokio::test]
async fn missing_key_and_bad_urls_fail_before_any_request() {
    let env = Env::start().await;
    for key in [None, Some(Secret::new(""))] {
        let client = env.client_with(ClientConfig::new(env.emu.base_url(), key));
        let result = client.list_models(&ModelFilter::default()).await;
        assert!(
            matches!(result, Err(RegistryError::MissingApiKey)),
            "{result:?}"
        );
    }
    assert!(env.emu.requests().snapshot().is_empty());
    for url in ["not a url", "ftp://host/api", "mailto:x@y"] {
        let result = RegistryClient::new(ClientConfig::new(url, None));
        assert!(
            matches!(result, Err(RegistryError::InvalidUrl { .. })),
            "{url}"
        );
    }
}

#[tokio::test]
async fn connect_and_timeout_errors_are_bounded_and_named() {
    let env = Env::start().await;
    let port = closed_port().await;
    let mut config = env.config(Role::Viewer);
    config.base_url = format!("http://127.0.0.1:{port}/api");
    config.retries = 1;
    let unreachable = env.client_with(config);
    let err = unreachable.get_model("m1").await.map_err(|e| e.to_string());
    let text = err.err().unwrap_or_default();
    assert!(
        text.starts_with(&format!(
            "GET /v1/models/m1: cannot reach http://127.0.0.1:{port}/api/v1/models/m1"
        )),
        "{text}"
    );

    let mut config = env.config(Role::Viewer);
    config.timeout = Duration::from_millis(200);
    config.retries = 0;
    let impatient = env.client_with(config);
    env.emu.faults().set(FaultSpec {
        slow_ms: Some(2_000),
        ..FaultSpec::default()
    });
    let started = Instant::now();
    let timed_out = impatient.me().await;
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "bounded by the timeout"
    );
    match &timed_out {
        Err(RegistryError::Timeout { after, url, .. }) => {
            assert_eq!(*after, Duration::from_millis(200));
            assert!(url.ends_with("/api/v1/auth/me"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        timed_out
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default(),
        format!(
            "GET /v1/auth/me: timed out after 0.2s waiting for {}/v1/auth/me",
            env.emu.base_url()
        )
    );
    env.emu.faults().clear();
}

#[tokio::test]
async fn the_api_key_never_appears_in_errors_or_debug() {
    let env = Env::start().await;
    let key = env.key(Role::Viewer);
    let client = env.client(Role::Viewer);
    assert!(!format!("{client:?}").contains(&key));
    assert!(!format!("{:?}", env.config(Role::Viewer)).contains(&key));

    let mut errors = Vec::new();
    errors.push(client.get_model("abc").await.err());
    errors.push(client.create_model(&new_model("x")).await.err());
    let running = env.deployment_id("llama-3-70b-instruct", "1.1.0");
    errors.push(client.get_deployment_logs(&running, Some(0)).await.err());
    errors.push(client.browse_model_storage("..").await.err());
    env.emu.faults().set(FaultSpec {
        status: Some(503),
        ..FaultSpec::default()
    });
    errors.push(client.me().await.err());
    env.emu.faults().set(FaultSpec {
        drop_connection: true,
        ..FaultSpec::default()
    });
    errors.push(client.me().await.err());
    env.emu.faults().clear();
    let mut config = env.config(Role::Viewer);
    config.base_url = format!("http://127.0.0.1:{}/api", closed_port().await);
    config.retries = 0;
    errors.push(env.client_with(config).me().await.err());
    let bad_key = env.client_with(ClientConfig::new(
        env.emu.base_url(),
        Some(Secret::new(key.clone() + "x")),
    ));
    errors.push(bad_key.me().await.err());

    assert_eq!(
        errors.iter().filter(|e| e.is_some()).count(),
        8,
        "{errors:?}"
    );
    for error in errors.into_iter().flatten() {
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(&key), "key leaked in {shown}");
    }
}
