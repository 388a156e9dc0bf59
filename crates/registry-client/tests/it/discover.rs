use axum::Router;
use registry_client::{ApiType, RegistryError};
use registry_emulator::{
    Role, audio_like_router, fastapi_like_router, openai_like_router, spawn_model_server,
};

use crate::{Env, closed_port, must};

fn paths(discovery: &registry_client::ApiDiscovery) -> Vec<(String, Vec<String>)> {
    discovery
        .endpoints
        .iter()
        .map(|e| (e.path.clone(), e.methods.clone()))
        .collect()
}

fn owned(expected: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    expected
        .iter()
        .map(|(p, m)| ((*p).to_owned(), m.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

#[tokio::test]
async fn classifies_fake_model_servers() {
    let env = Env::start().await;
    let client = env.client(Role::Viewer);
    let deployment = env.deployment_id("llama-3-70b-instruct", "1.1.0");

    let openai = must(
        spawn_model_server(openai_like_router()).await,
        "openai server",
    );
    must(
        env.emu
            .state()
            .set_endpoint_url(&deployment, Some(&openai.url())),
        "url",
    );
    let found = must(
        client.discover_api_spec(&deployment).await,
        "discover openai",
    );
    assert!(found.reachable);
    assert_eq!(found.api_type, ApiType::Openai);
    assert_eq!(found.openapi.as_ref().map(|o| o.path_count), Some(5));
    assert_eq!(
        paths(&found),
        owned(&[
            ("/health", &["GET"]),
            ("/v1/chat/completions", &["POST"]),
            ("/v1/completions", &["POST"]),
            ("/v1/embeddings", &["POST"]),
            ("/v1/models", &["GET"]),
        ])
    );
    let chat = found
        .endpoints
        .iter()
        .find(|e| e.path == "/v1/chat/completions");
    assert_eq!(
        chat.and_then(|e| e.status),
        Some(405),
        "405 means the path exists"
    );
    // The registry key is never sent to the deployment.
    let probes = openai.requests.snapshot();
    assert_eq!(probes.len(), 7, "openapi.json plus six probes");
    assert!(
        probes
            .iter()
            .all(|r| !r.api_key_present && r.method == "GET")
    );

    // Audio server under a path prefix: probes are joined to it.
    let audio = must(
        spawn_model_server(Router::new().nest("/audio", audio_like_router())).await,
        "audio server",
    );
    must(
        env.emu
            .state()
            .set_endpoint_url(&deployment, Some(&format!("{}/audio/", audio.url()))),
        "url",
    );
    let found = must(
        client.discover_api_spec(&deployment).await,
        "discover audio",
    );
    assert_eq!(found.api_type, ApiType::Audio);
    assert_eq!(
        paths(&found),
        owned(&[
            ("/health", &["GET"]),
            ("/v1/audio/transcriptions", &["POST"])
        ])
    );
    assert!(
        audio
            .requests
            .snapshot()
            .iter()
            .all(|r| r.path.starts_with("/audio/"))
    );

    let fastapi = must(
        spawn_model_server(fastapi_like_router()).await,
        "fastapi server",
    );
    must(
        env.emu
            .state()
            .set_endpoint_url(&deployment, Some(&fastapi.url())),
        "url",
    );
    let found = must(
        client.discover_api_spec(&deployment).await,
        "discover fastapi",
    );
    assert_eq!(found.api_type, ApiType::Fastapi);
    assert_eq!(
        found.openapi.as_ref().and_then(|o| o.title.as_deref()),
        Some("Custom Predictor")
    );
    assert_eq!(
        paths(&found),
        owned(&[("/health", &["GET"]), ("/predict", &["POST"])])
    );

    let bare = must(spawn_model_server(Router::new()).await, "bare server");
    must(
        env.emu
            .state()
            .set_endpoint_url(&deployment, Some(&bare.url())),
        "url",
    );
    let found = must(client.discover_api_spec(&deployment).await, "discover bare");
    assert_eq!(
        (found.reachable, found.api_type, found.endpoints.len()),
        (true, ApiType::Unknown, 0)
    );
}

#[tokio::test]
async fn unreachable_deployments_are_reported_not_raised() {
    let env = Env::start().await;
    let client = env.client(Role::Viewer);
    let deployment = env.deployment_id("whisper-large-v3", "3.0.0");
    let port = closed_port().await;
    must(
        env.emu
            .state()
            .set_endpoint_url(&deployment, Some(&format!("http://127.0.0.1:{port}"))),
        "url",
    );
    let started = std::time::Instant::now();
    let found = must(
        client.discover_api_spec(&deployment).await,
        "discover closed",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!((found.reachable, found.api_type), (false, ApiType::Unknown));
    assert!(
        found
            .error
            .as_deref()
            .is_some_and(|e| e.contains(&format!("127.0.0.1:{port}/openapi.json"))),
        "{found:?}"
    );

    // A listener that never accepts: bounded by the probe timeout.
    let listener = must(tokio::net::TcpListener::bind("127.0.0.1:0").await, "bind");
    let silent_url = format!("http://{}", must(listener.local_addr(), "addr"));
    must(
        env.emu
            .state()
            .set_endpoint_url(&deployment, Some(&silent_url)),
        "url",
    );
    let started = std::time::Instant::now();
    let found = must(
        client.discover_api_spec(&deployment).await,
        "discover silent",
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "one probe timeout, not seven"
    );
    assert!(!found.reachable);
    assert!(
        found
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no answer within 0.8s")),
        "{found:?}"
    );
    drop(listener);

    must(env.emu.state().set_endpoint_url(&deployment, None), "url");
    let found = must(client.discover_api_spec(&deployment).await, "discover none");
    assert!(
        found
            .error
            .as_deref()
            .is_some_and(|e| e.contains("has no endpoint_url"))
    );

    let missing = client.discover_api_spec("nope").await;
    assert!(
        matches!(missing, Err(RegistryError::NotFound { .. })),
        "{missing:?}"
    );
}

/// A deployment whose server answers 503 to everything (a model still loading) is reported
/// unavailable, not as an OpenAI server with every probed path found; one 503 among real
/// answers is named, not listed as found.
#[tokio::test]
async fn server_errors_are_not_endpoints() {
    let env = Env::start().await;
    let client = env.client(Role::Viewer);
    let deployment = env.deployment_id("llama-3-70b-instruct", "1.1.0");
    let unavailable = Router::new()
        .fallback(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "loading") });
    let server = must(spawn_model_server(unavailable).await, "503 server");
    must(
        env.emu
            .state()
            .set_endpoint_url(&deployment, Some(&server.url())),
        "url",
    );
    let found = must(client.discover_api_spec(&deployment).await, "discover 503");
    assert_eq!((found.reachable, found.api_type), (false, ApiType::Unknown));
    assert!(found.endpoints.is_empty(), "{found:?}");
    let error = found.error.unwrap_or_default();
    assert!(
        error.contains("is unavailable") && error.contains("503"),
        "{error}"
    );

    let half = openai_like_router().route(
        "/v1/embeddings",
        axum::routing::get(|| async { axum::http::StatusCode::BAD_GATEWAY }),
    );
    let server = must(spawn_model_server(half).await, "half server");
    must(
        env.emu
            .state()
            .set_endpoint_url(&deployment, Some(&server.url())),
        "url",
    );
    let found = must(client.discover_api_spec(&deployment).await, "discover half");
    assert_eq!((found.reachable, found.api_type), (true, ApiType::Openai));
    let probed: Vec<&str> = found
        .endpoints
        .iter()
        .filter(|e| e.source == "probe")
        .map(|e| e.path.as_str())
        .collect();
    assert!(!probed.contains(&"/v1/embeddings"), "{probed:?}");
    assert!(
        found
            .error
            .as_deref()
            .is_some_and(|e| e.contains("/v1/embeddings 502")),
        "{found:?}"
    );
}
