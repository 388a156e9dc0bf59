use registry_emulator::Role;
use serde_json::json;

use crate::{Emu, field_of_items, pairs, validation_errors};

#[tokio::test]
async fn lists_are_newest_first_with_total_and_paging() {
    let emu = Emu::start().await;
    let all = emu.get("/v1/models").await;
    assert_eq!(all["total"], 5);
    assert_eq!(
        field_of_items(&all, "name"),
        [
            "qwen2.5-7b-instruct",
            "bge-m3",
            "whisper-large-v3",
            "llama-3-70b-instruct",
            "mistral-7b-ft-support"
        ]
    );
    let page = emu.get("/v1/models?limit=2&offset=1").await;
    assert_eq!(page["total"], 5);
    assert_eq!(
        field_of_items(&page, "name"),
        ["bge-m3", "whisper-large-v3"]
    );
    let past_end = emu.get("/v1/models?offset=10").await;
    assert_eq!(
        (
            past_end["total"].clone(),
            field_of_items(&past_end, "name").len()
        ),
        (json!(5), 0)
    );
}

#[tokio::test]
async fn model_filters() {
    let emu = Emu::start().await;
    let cases: [(&str, &[&str]); 5] = [
        ("server_type=vllm", &["llama-3-70b-instruct"]),
        ("source=internal", &["bge-m3"]),
        (
            "search=CHAT",
            &["qwen2.5-7b-instruct", "llama-3-70b-instruct"],
        ),
        ("search=speech", &["whisper-large-v3"]),
        ("search=nothing-like-this", &[]),
    ];
    for (query, expected) in cases {
        let list = emu.get(&format!("/v1/models?{query}")).await;
        assert_eq!(field_of_items(&list, "name"), expected, "{query}");
        assert_eq!(list["total"], expected.len(), "{query}");
    }
}

#[tokio::test]
async fn invalid_queries_answer_fastapi_422_with_every_finding() {
    let emu = Emu::start().await;
    let cases: [(&str, &[(&str, &str)]); 6] = [
        ("limit=501", &[("query.limit", "less_than_equal")]),
        ("limit=0", &[("query.limit", "greater_than_equal")]),
        ("limit=ten", &[("query.limit", "int_parsing")]),
        ("offset=-1", &[("query.offset", "greater_than_equal")]),
        (
            "server_type=bogus&source=nowhere",
            &[("query.server_type", "enum"), ("query.source", "enum")],
        ),
        (
            "limit=999&server_type=x",
            &[
                ("query.server_type", "enum"),
                ("query.limit", "less_than_equal"),
            ],
        ),
    ];
    for (query, expected) in cases {
        let (status, body) = emu
            .call(
                "GET",
                &format!("/v1/models?{query}"),
                Some(Role::Viewer),
                None,
            )
            .await;
        assert_eq!(status, 422, "{query}");
        assert_eq!(validation_errors(&body), pairs(expected), "{query}: {body}");
        assert!(body["detail"][0]["msg"].is_string());
    }
    assert_eq!(emu.get("/v1/models?limit=500").await["total"], 5);
}

#[tokio::test]
async fn auth_and_roles() {
    let emu = Emu::start().await;
    let (status, body) = emu.call("GET", "/v1/models", None, None).await;
    assert_eq!((status, body["detail"].as_str().is_some()), (401, true));

    let url = format!("{}/v1/models", emu.emu.base_url());
    let response = reqwest::Client::new()
        .get(url)
        .header("X-API-Key", "wrong")
        .send()
        .await;
    let response = crate::must(response, "send");
    assert_eq!(response.status().as_u16(), 401);
    let text = crate::must(response.text().await, "text");
    assert_eq!(text, r#"{"detail":"Invalid API key"}"#);

    let new_model = json!({"name": "m1", "storage_path": "models/m1", "server_type": "vllm"});
    // (role, method, path, expected status): viewer reads, operator writes, only admin deletes.
    let mistral = emu.model_id("mistral-7b-ft-support");
    let cases = [
        (Role::Viewer, "POST", "/v1/models".to_owned(), 403),
        (Role::Operator, "POST", "/v1/models".to_owned(), 201),
        (Role::Viewer, "GET", format!("/v1/models/{mistral}"), 200),
        (
            Role::Operator,
            "DELETE",
            format!("/v1/models/{mistral}"),
            403,
        ),
        (Role::Admin, "DELETE", format!("/v1/models/{mistral}"), 200),
    ];
    for (role, method, path, expected) in cases {
        let body = (method == "POST").then(|| new_model.clone());
        let (status, answer) = emu.call(method, &path, Some(role), body).await;
        assert_eq!(status, expected, "{role} {method} {path}: {answer}");
        if status == 403 {
            let detail = answer["detail"].as_str().unwrap_or("");
            assert!(detail.contains("requires role '"), "{detail}");
        }
    }
    // 401 comes before validation: a bad body without a key is still 401.
    let (status, _) = emu.call("POST", "/v1/models", None, Some(json!([]))).await;
    assert_eq!(status, 401);
    // 403 comes before validation too.
    let (status, _) = emu
        .call("POST", "/v1/models", Some(Role::Viewer), Some(json!([])))
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn create_model_validates_and_conflicts() {
    let emu = Emu::start().await;
    let (status, created) = emu
        .post(
            "/v1/models",
            json!({"name": "phi-3-mini", "storage_path": "models/phi-3-mini", "server_type": "vllm",
                   "description": "small", "tags": ["llm"], "requires_gpu": false}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["source"], "internal");
    assert_eq!(created["requires_gpu"], false);
    assert_eq!(created["metadata"], json!({}));
    assert!(created["id"].as_str().is_some_and(|id| id.len() == 36));
    assert_eq!(
        emu.get("/v1/models").await["items"][0]["name"],
        "phi-3-mini"
    );

    let (status, body) = emu
        .post(
            "/v1/models",
            json!({"name": "phi-3-mini", "storage_path": "x", "server_type": "vllm"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (409, json!({"detail": "model 'phi-3-mini' already exists"}))
    );

    let cases: [(serde_json::Value, &[(&str, &str)]); 5] = [
        (
            json!({}),
            &[
                ("body.name", "missing"),
                ("body.storage_path", "missing"),
                ("body.server_type", "missing"),
            ],
        ),
        (
            json!({"name": "bad name", "storage_path": "", "server_type": "onnx", "tags": "x", "requires_gpu": "yes"}),
            &[
                ("body.name", "string_pattern_mismatch"),
                ("body.storage_path", "string_too_short"),
                ("body.server_type", "enum"),
                ("body.tags", "list_type"),
                ("body.requires_gpu", "bool_type"),
            ],
        ),
        (json!([1, 2]), &[("body", "model_attributes_type")]),
        (json!("text"), &[("body", "model_attributes_type")]),
        (
            json!({"name": 7, "storage_path": "p", "server_type": "vllm"}),
            &[("body.name", "string_type")],
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = emu.post("/v1/models", body.clone()).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(
            validation_errors(&answer),
            pairs(expected),
            "{body}: {answer}"
        );
    }

    // Malformed JSON and an empty body are 422 too, FastAPI style.
    let url = format!("{}/v1/models", emu.emu.base_url());
    for (raw, kind) in [("{\"name\":", "json_invalid"), ("", "missing")] {
        let response = reqwest::Client::new()
            .post(&url)
            .header("X-API-Key", emu.key(Role::Operator))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await;
        let response = crate::must(response, "send");
        assert_eq!(response.status().as_u16(), 422, "{raw:?}");
        let body: serde_json::Value = crate::must(response.json().await, "json");
        assert_eq!(body["detail"][0]["type"], kind, "{raw:?}");
    }
}

#[tokio::test]
async fn get_and_update_model() {
    let emu = Emu::start().await;
    let (status, body) = emu
        .call("GET", "/v1/models/abc", Some(Role::Viewer), None)
        .await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "model 'abc' not found"}))
    );

    let id = emu.model_id("llama-3-70b-instruct");
    let before = emu.get(&format!("/v1/models/{id}")).await;
    assert_eq!(before["metadata"]["license"], "llama3");
    let (status, updated) = emu
        .call(
            "PATCH",
            &format!("/v1/models/{id}"),
            Some(Role::Operator),
            Some(json!({"tags": ["llm"], "metadata": {"license": "llama3.1", "owner": "ml-platform"}})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    // tags replaced, metadata merged shallowly, description untouched.
    assert_eq!(updated["tags"], json!(["llm"]));
    assert_eq!(updated["metadata"]["license"], "llama3.1");
    assert_eq!(updated["metadata"]["owner"], "ml-platform");
    assert_eq!(updated["metadata"]["context_length"], 8192);
    assert_eq!(updated["description"], before["description"]);
    assert_ne!(updated["updated_at"], before["updated_at"]);

    let (status, answer) = emu
        .call(
            "PATCH",
            &format!("/v1/models/{id}"),
            Some(Role::Operator),
            Some(json!({"metadata": []})),
        )
        .await;
    assert_eq!(
        (status, validation_errors(&answer)),
        (422, pairs(&[("body.metadata", "dict_type")]))
    );
    let (status, _) = emu
        .call(
            "PATCH",
            "/v1/models/nope",
            Some(Role::Operator),
            Some(json!({"tags": []})),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn delete_model_cascades_and_refuses_while_deployed() {
    let emu = Emu::start().await;
    let bge = emu.model_id("bge-m3");
    let (status, body) = emu
        .call(
            "DELETE",
            &format!("/v1/models/{bge}"),
            Some(Role::Admin),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("active deployments")),
        "{body}"
    );

    let mistral = emu.model_id("mistral-7b-ft-support");
    let mistral_version = emu.version_id("mistral-7b-ft-support", "0.3.0");
    assert_eq!(
        emu.get(&format!("/v1/docker/builds?version_id={mistral_version}"))
            .await["total"],
        1
    );
    let (status, body) = emu
        .call(
            "DELETE",
            &format!("/v1/models/{mistral}"),
            Some(Role::Admin),
            None,
        )
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"deleted": true, "versions_deleted": 1}))
    );
    assert_eq!(
        emu.get("/v1/versions?model_name=mistral-7b-ft-support")
            .await["total"],
        0
    );
    assert_eq!(
        emu.get(&format!("/v1/docker/builds?version_id={mistral_version}"))
            .await["total"],
        0
    );
    let (status, _) = emu
        .call(
            "GET",
            &format!("/v1/models/{mistral}"),
            Some(Role::Viewer),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = emu
        .call(
            "DELETE",
            &format!("/v1/models/{mistral}"),
            Some(Role::Admin),
            None,
        )
        .await;
    assert_eq!(status, 404);

    let audit = emu.get("/v1/system/audit-logs?action=model.delete").await;
    assert_eq!(audit["total"], 1);
    assert_eq!(audit["items"][0]["actor"], "demo-admin");
    assert_eq!(audit["items"][0]["resource_id"], mistral.as_str());
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let emu = Emu::start().await;
    let (status, body) = emu
        .call("GET", "/v1/nothing", Some(Role::Viewer), None)
        .await;
    assert_eq!((status, body), (404, json!({"detail": "Not Found"})));
    let (status, body) = emu
        .call("PUT", "/v1/models", Some(Role::Viewer), None)
        .await;
    assert_eq!(
        (status, body),
        (405, json!({"detail": "Method Not Allowed"}))
    );
}
