//! Review fixes: key hygiene against hostile servers, bounded retries and bodies, and a
//! cache that a concurrent write invalidates.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use registry_client::{
    ClientConfig, MAX_RESPONSE_BYTES, ModelUpdate, RegistryClient, RegistryError, Secret,
};
use registry_emulator::{FaultSpec, Role, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Env, closed_port, must};

const KEY: &str = "cat_live_s3cr3t_Zx81";

/// Serves `router` on a free local port.
async fn serve(router: Router) -> Server {
    must(
        registry_emulator::serve_router(SocketAddr::from(([127, 0, 0, 1], 0)), router).await,
        "serve",
    )
}

fn client_for(base_url: String, key: &str) -> RegistryClient {
    let mut config = ClientConfig::new(base_url, Some(Secret::new(key)));
    config.timeout = Duration::from_secs(5);
    config.retries = 0;
    must(RegistryClient::new(config), "client")
}

/// Answers every request with the caller's `X-API-Key` echoed back in some shape.
async fn echo_key(request: Request) -> axum::response::Response {
    let key = request
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let path = request.uri().path().to_owned();
    let json =
        |status: StatusCode, body: serde_json::Value| (status, axum::Json(body)).into_response();
    if path.ends_with("/system/health") {
        // 200 with an answer that does not decode: serde quotes the string in its message.
        json(
            StatusCode::OK,
            serde_json::json!({ "status": "ok", "components": key }),
        )
    } else if path.ends_with("/v1/models") {
        json(
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({ "detail": [{ "loc": ["header", key], "msg": format!("bad key {key}"), "type": "x" }] }),
        )
    } else if path.contains("/v1/models/") {
        json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "detail": format!("no model for key {key}") }),
        )
    } else if path.ends_with("/disk-usage") {
        (StatusCode::BAD_GATEWAY, format!("upstream said: {key}")).into_response()
    } else {
        json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({ "detail": format!("Invalid API key '{key}'") }),
        )
    }
}

#[tokio::test]
async fn a_server_echoing_the_key_never_gets_it_into_errors() {
    let server = serve(Router::new().fallback(echo_key)).await;
    let client = client_for(format!("http://{}/api", server.addr()), KEY);
    let errors = vec![
        client.me().await.err(),
        client
            .list_models(&registry_client::ModelFilter::default())
            .await
            .err(),
        client.get_model(KEY).await.err(),
        client.health_check().await.err(),
        client.get_docker_disk_usage().await.err(),
    ];
    assert_eq!(errors.iter().flatten().count(), 5, "{errors:?}");
    for error in errors.into_iter().flatten() {
        let shown = format!("{error} | {error:?}");
        assert!(!shown.contains(KEY), "key leaked: {shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}

#[tokio::test]
async fn a_key_that_is_no_header_value_fails_without_sending() {
    let env = Env::start().await;
    let key = format!("{}\n", env.key(Role::Viewer));
    let client = client_for(env.emu.base_url().to_owned(), &key);
    let result = client.me().await;
    assert!(
        matches!(result, Err(RegistryError::InvalidApiKey)),
        "{result:?}"
    );
    let shown = result.map_err(|e| e.to_string()).err().unwrap_or_default();
    assert!(!shown.contains(key.trim()), "{shown}");
    assert!(env.emu.requests().snapshot().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn passwords_in_the_base_url_stay_out_of_transport_errors() {
    let port = closed_port().await;
    let client = client_for(format!("http://svc:hunter2@127.0.0.1:{port}/api"), KEY);
    let error = client.me().await.err();
    let shown = format!(
        "{error:?} {}",
        error.as_ref().map(ToString::to_string).unwrap_or_default()
    );
    assert!(
        matches!(error, Some(RegistryError::Connect { .. })),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(!format!("{client:?}").contains("hunter2"));
}

#[tokio::test]
async fn retries_stop_when_the_budget_is_spent() {
    let env = Env::start().await;
    let mut config = env.config(Role::Viewer);
    config.timeout = Duration::from_millis(300);
    config.retries = 10;
    config.retry_base_delay = Duration::from_millis(10);
    config.retry_budget = Duration::from_millis(500);
    let client = env.client_with(config);
    env.emu.faults().set(FaultSpec {
        slow_ms: Some(2_000),
        ..FaultSpec::default()
    });
    let started = Instant::now();
    let result = client.health_check().await;
    let took = started.elapsed();
    env.emu.faults().clear();
    assert!(
        matches!(result, Err(RegistryError::Timeout { .. })),
        "{result:?}"
    );
    // First attempt 300 ms, then one retry cut to the ~190 ms left; never ten.
    assert!(took < Duration::from_millis(900), "took {took:?}");
    assert_eq!(env.count("GET", "/v1/system/health"), 2);
}

#[tokio::test]
async fn a_read_in_flight_during_a_write_is_not_cached() {
    let env = Env::start().await;
    let client = env.client(Role::Operator);
    let id = env.model_id("bge-m3");
    let path = format!("/v1/models/{id}");
    // The read waits at the server while the write completes.
    env.emu.faults().set(FaultSpec {
        slow_ms: Some(400),
        for_next_n: Some(1),
        methods: Some(vec!["GET".into()]),
        path_prefix: Some(path.clone()),
        ..FaultSpec::default()
    });
    let reader = client.clone();
    let read_id = id.clone();
    let slow_read = tokio::spawn(async move { reader.get_model(&read_id).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let update = ModelUpdate {
        description: Some("changed during the read".into()),
        ..Default::default()
    };
    must(client.update_model(&id, &update).await, "update");
    must(must(slow_read.await, "join"), "slow read");
    must(client.get_model(&id).await, "read after");
    assert_eq!(
        env.count("GET", &path),
        2,
        "the answer that raced the write must not be served from the cache"
    );
}

#[tokio::test]
async fn oversized_answers_are_refused_not_buffered() {
    // Declared length: refused before reading.
    let big = Router::new().fallback(|| async {
        (
            [("content-type", "application/json")],
            vec![b' '; MAX_RESPONSE_BYTES + 1],
        )
    });
    let server = serve(big).await;
    let client = client_for(format!("http://{}/api", server.addr()), KEY);
    let result = client.me().await;
    assert!(
        matches!(&result, Err(RegistryError::Decode { msg, .. }) if msg.contains("exceeds the client's limit")),
        "{result:?}"
    );

    // No declared length: an endless chunked body is cut at the limit.
    let listener = must(tokio::net::TcpListener::bind("127.0.0.1:0").await, "bind");
    let addr = must(listener.local_addr(), "addr");
    let endless = tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b' '; 1 << 20];
        let framed = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk,
            b"\r\n".to_vec(),
        ]
        .concat();
        // Stops once the client hangs up.
        while stream.write_all(&framed).await.is_ok() {}
    });
    let client = client_for(format!("http://{addr}/api"), KEY);
    let result = client.me().await;
    assert!(
        matches!(&result, Err(RegistryError::Decode { msg, .. }) if msg.contains("exceeds the client's limit")),
        "{result:?}"
    );
    drop(client);
    must(
        tokio::time::timeout(Duration::from_secs(5), endless).await,
        "the endless server notices the hang-up",
    )
    .ok();
}

#[tokio::test]
async fn ids_that_a_url_would_swallow_are_refused_before_sending() {
    let env = Env::start().await;
    let client = env.client(Role::Admin);
    for id in ["", ".", ".."] {
        let results = [
            client.get_model(id).await.err(),
            client.delete_model(id).await.err(),
            client.get_deployment_logs(id, None).await.err(),
            client.stop_deployment(id).await.err(),
            client.get_latest_version(id).await.err(),
        ];
        for result in results {
            assert!(
                matches!(&result, Some(RegistryError::InvalidId { id: got, .. }) if got == id),
                "{id:?}: {result:?}"
            );
        }
    }
    assert!(env.emu.requests().snapshot().is_empty(), "nothing was sent");
    // Other odd ids travel as one segment and get the server's own 404.
    for id in ["a/b", "..x", "%2e%2e", "a?b#c"] {
        let error = client.get_model(id).await.err().map(|e| e.to_string());
        assert_eq!(
            error,
            Some(format!("GET /v1/models/{id}: 404: model '{id}' not found")),
            "{id}"
        );
    }
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn retry_logs_never_carry_an_echoed_key() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = serve(Router::new().fallback(echo_key)).await;
    let mut config = ClientConfig::new(
        format!("http://{}/api", server.addr()),
        Some(Secret::new(KEY)),
    );
    config.retries = 2;
    config.retry_base_delay = Duration::from_millis(1);
    let client = must(RegistryClient::new(config), "client");
    // 502 with the key in the body: transient, so it is logged and retried.
    let error = client.get_docker_disk_usage().await.err();
    assert!(
        matches!(error, Some(RegistryError::Server { status: 502, .. })),
        "{error:?}"
    );
    let log = String::from_utf8_lossy(
        &captured
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_owned();
    assert!(log.contains("retrying"), "{log}");
    assert!(!log.contains(KEY), "key in the log: {log}");
}
