use registry_emulator::Role;
use serde_json::json;

use crate::{Emu, field_of_items, pairs, validation_errors};

#[tokio::test]
async fn version_filters_and_order() {
    let emu = Emu::start().await;
    let llama = emu
        .get("/v1/versions?model_name=llama-3-70b-instruct")
        .await;
    assert_eq!(
        field_of_items(&llama, "version"),
        ["1.2.0-rc1", "1.1.0", "1.0.0"]
    );
    let cases = [
        ("is_release=true", 5),
        ("is_release=false", 4),
        ("is_release=1", 5),
        ("", 9),
    ];
    for (query, total) in cases {
        assert_eq!(
            emu.get(&format!("/v1/versions?{query}")).await["total"],
            total,
            "{query}"
        );
    }
    let (status, body) = emu
        .call(
            "GET",
            "/v1/versions?is_release=maybe",
            Some(Role::Viewer),
            None,
        )
        .await;
    assert_eq!(
        (status, validation_errors(&body)),
        (422, pairs(&[("query.is_release", "bool_parsing")]))
    );
}

#[tokio::test]
async fn get_and_latest_version() {
    let emu = Emu::start().await;
    let id = emu.version_id("whisper-large-v3", "3.0.0");
    let version = emu.get(&format!("/v1/versions/{id}")).await;
    assert_eq!(
        (version["model_name"].clone(), version["is_release"].clone()),
        (json!("whisper-large-v3"), json!(true))
    );
    let (status, body) = emu
        .call("GET", "/v1/versions/v-404", Some(Role::Viewer), None)
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "version 'v-404' not found"}))
    );

    // Latest is the newest created_at, release or not.
    let latest = emu
        .get("/v1/models/by-name/llama-3-70b-instruct/versions/latest")
        .await;
    assert_eq!(
        (latest["version"].clone(), latest["is_release"].clone()),
        (json!("1.2.0-rc1"), json!(false))
    );
    let (status, body) = emu
        .call(
            "GET",
            "/v1/models/by-name/ghost/versions/latest",
            Some(Role::Viewer),
            None,
        )
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "model 'ghost' not found"}))
    );
}

#[tokio::test]
async fn create_version_with_and_without_auto_build() {
    let emu = Emu::start().await;
    let (status, created) = emu
        .post("/v1/versions", json!({"model_name": "qwen2.5-7b-instruct", "version": "2024.11", "quantization": "awq"}))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["is_release"], false);
    assert_eq!(created["promoted_at"], json!(null));
    assert!(created.get("build_id").is_none());
    let latest = emu
        .get("/v1/models/by-name/qwen2.5-7b-instruct/versions/latest")
        .await;
    assert_eq!(latest["id"], created["id"]);

    let (status, built) = emu
        .post(
            "/v1/versions",
            json!({"model_name": "qwen2.5-7b-instruct", "version": "2024.12", "auto_build": true, "is_release": true}),
        )
        .await;
    assert_eq!(status, 201, "{built}");
    assert!(built["promoted_at"].is_string());
    let build_id = built["build_id"].as_str().unwrap_or_default().to_owned();
    let builds = emu
        .get(&format!(
            "/v1/docker/builds?version_id={}",
            built["id"].as_str().unwrap_or("")
        ))
        .await;
    assert_eq!(field_of_items(&builds, "id"), [build_id]);
    assert_eq!(builds["items"][0]["status"], "pending");
    assert_eq!(
        builds["items"][0]["image_tag"],
        "registry.local/qwen2.5-7b-instruct:2024.12"
    );

    let (status, body) = emu
        .post(
            "/v1/versions",
            json!({"model_name": "qwen2.5-7b-instruct", "version": "2024.11"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = emu
        .post(
            "/v1/versions",
            json!({"model_name": "ghost", "version": "1"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "model 'ghost' not found"}))
    );
    let (status, body) = emu
        .post("/v1/versions", json!({"version": 3, "auto_build": "yes"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        validation_errors(&body),
        pairs(&[
            ("body.model_name", "missing"),
            ("body.version", "string_type"),
            ("body.auto_build", "bool_type")
        ])
    );
    let audit = emu.get("/v1/system/audit-logs?resource_type=version").await;
    assert_eq!(audit["items"][0]["action"], "version.create");
    assert_eq!(audit["items"][0]["actor"], "demo-operator");
}

#[tokio::test]
async fn promote_sets_release_without_demoting_others() {
    let emu = Emu::start().await;
    let rc = emu.version_id("llama-3-70b-instruct", "1.2.0-rc1");
    let (status, promoted) = emu
        .post(
            &format!("/v1/versions/{rc}/promote"),
            json!({"is_release": true}),
        )
        .await;
    assert_eq!(status, 200, "{promoted}");
    assert_eq!(promoted["is_release"], true);
    assert!(promoted["promoted_at"].is_string());
    let releases = emu
        .get("/v1/versions?model_name=llama-3-70b-instruct&is_release=true")
        .await;
    assert_eq!(
        field_of_items(&releases, "version"),
        ["1.2.0-rc1", "1.1.0", "1.0.0"]
    );

    let (status, demoted) = emu
        .post(
            &format!("/v1/versions/{rc}/promote"),
            json!({"is_release": false}),
        )
        .await;
    assert_eq!((status, demoted["is_release"].clone()), (200, json!(false)));
    let (status, body) = emu
        .post(&format!("/v1/versions/{rc}/promote"), json!({}))
        .await;
    assert_eq!(
        (status, validation_errors(&body)),
        (422, pairs(&[("body.is_release", "missing")]))
    );
    let (status, _) = emu
        .post("/v1/versions/nope/promote", json!({"is_release": true}))
        .await;
    assert_eq!(status, 404);
    let (status, _) = emu
        .call(
            "POST",
            &format!("/v1/versions/{rc}/promote"),
            Some(Role::Viewer),
            Some(json!({"is_release": true})),
        )
        .await;
    assert_eq!(status, 403);
}
