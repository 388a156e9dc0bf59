use std::time::{Duration, Instant};

use registry_emulator::{FaultSpec, Role};
use serde_json::json;

use crate::Emu;

#[tokio::test]
async fn status_fault_for_next_n_matching_requests() {
    let emu = Emu::start().await;
    emu.emu.faults().set(FaultSpec {
        status: Some(503),
        for_next_n: Some(2),
        methods: Some(vec!["GET".into()]),
        ..FaultSpec::default()
    });
    let (status, body) = emu
        .call("GET", "/v1/models", Some(Role::Viewer), None)
        .await;
    assert_eq!(
        (status, body),
        (503, json!({"detail": "injected fault: HTTP 503"}))
    );
    // POST does not match the methods filter and does not use up the count.
    let (status, _) = emu
        .post("/v1/versions/nope/promote", json!({"is_release": true}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = emu
        .call("GET", "/v1/models", Some(Role::Viewer), None)
        .await;
    assert_eq!(status, 503);
    let (status, _) = emu
        .call("GET", "/v1/models", Some(Role::Viewer), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(emu.emu.faults().current(), None);
}

#[tokio::test]
async fn path_prefix_and_http_control_endpoint() {
    let emu = Emu::start().await;
    let http = reqwest::Client::new();
    let control = format!("{}/_emulator/faults", emu.emu.root_url());
    let set = http
        .post(&control)
        .json(&json!({"status": 500, "path_prefix": "/v1/deployments"}))
        .send()
        .await;
    assert_eq!(crate::must(set, "set").status().as_u16(), 200);
    assert_eq!(
        emu.call("GET", "/v1/deployments", Some(Role::Viewer), None)
            .await
            .0,
        500
    );
    assert_eq!(
        emu.call("GET", "/v1/models", Some(Role::Viewer), None)
            .await
            .0,
        200
    );
    assert_eq!(
        emu.call("GET", "/v1/deployments", Some(Role::Viewer), None)
            .await
            .0,
        500,
        "until cleared"
    );
    let current: serde_json::Value = crate::must(
        crate::must(http.get(&control).send().await, "get")
            .json()
            .await,
        "json",
    );
    assert_eq!(current["active"]["path_prefix"], "/v1/deployments");
    crate::must(http.delete(&control).send().await, "clear");
    assert_eq!(
        emu.call("GET", "/v1/deployments", Some(Role::Viewer), None)
            .await
            .0,
        200
    );

    let bad = crate::must(
        http.post(&control).json(&json!({"slow": 1})).send().await,
        "bad",
    );
    assert_eq!(bad.status().as_u16(), 422);
}

#[tokio::test]
async fn slow_and_dropped_connections() {
    let emu = Emu::start().await;
    emu.emu.faults().set(FaultSpec {
        slow_ms: Some(300),
        for_next_n: Some(1),
        ..FaultSpec::default()
    });
    let started = Instant::now();
    assert_eq!(
        emu.call("GET", "/v1/auth/me", Some(Role::Viewer), None)
            .await
            .0,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    emu.emu.faults().set(FaultSpec {
        drop_connection: true,
        for_next_n: Some(1),
        ..FaultSpec::default()
    });
    let url = format!("{}/v1/auth/me", emu.emu.base_url());
    let client = reqwest::Client::new();
    let dropped = client
        .get(&url)
        .header("X-API-Key", emu.key(Role::Viewer))
        .send()
        .await;
    assert!(
        dropped.is_err(),
        "the connection must close without an answer"
    );
    let again = crate::must(
        client
            .get(&url)
            .header("X-API-Key", emu.key(Role::Viewer))
            .send()
            .await,
        "again",
    );
    assert_eq!(again.status().as_u16(), 200);
}

#[tokio::test]
async fn request_log_records_requests_but_never_the_key() {
    let emu = Emu::start().await;
    emu.call("GET", "/v1/models?limit=2", Some(Role::Viewer), None)
        .await;
    emu.call("GET", "/v1/models", None, None).await;
    emu.post(
        "/v1/versions",
        json!({"model_name": "bge-m3", "version": "9"}),
    )
    .await;
    let log = emu.emu.requests().snapshot();
    assert_eq!(log.len(), 3);
    assert_eq!(
        (
            log[0].method.as_str(),
            log[0].path.as_str(),
            log[0].query.as_deref()
        ),
        ("GET", "/v1/models", Some("limit=2"))
    );
    assert!(log[0].api_key_present);
    assert_eq!(log[0].api_key_name.as_deref(), Some("demo-viewer"));
    assert!(!log[1].api_key_present);
    assert_eq!(log[1].api_key_name, None);
    assert_eq!(
        log[2].body,
        Some(json!({"model_name": "bge-m3", "version": "9"}))
    );
    assert_eq!(emu.emu.requests().count("GET", "/v1/models"), 2);

    let over_http = crate::must(
        reqwest::get(format!("{}/_emulator/requests", emu.emu.root_url())).await,
        "get",
    );
    let text = crate::must(over_http.text().await, "text");
    for role in [Role::Viewer, Role::Operator] {
        assert!(
            !text.contains(&emu.key(role)),
            "the key must not be recorded"
        );
    }
    let recorded: Vec<serde_json::Value> = crate::must(serde_json::from_str(&text), "json");
    assert_eq!(recorded.len(), 3, "control requests are not recorded");
    crate::must(
        reqwest::Client::new()
            .delete(format!("{}/_emulator/requests", emu.emu.root_url()))
            .send()
            .await,
        "clear",
    );
    assert!(emu.emu.requests().snapshot().is_empty());
}
