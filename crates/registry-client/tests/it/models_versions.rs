use registry_client::{
    ModelFilter, ModelUpdate, NewModel, NewVersion, RegistryError, ServerType, Source,
    VersionFilter,
};
use registry_emulator::Role;
use serde_json::json;

use crate::{Env, must};

#[tokio::test]
async fn model_methods() {
    let env = Env::start().await;
    let client = env.client(Role::Admin);
    let all = must(client.list_models(&ModelFilter::default()).await, "list");
    assert_eq!(
        (all.total, all.items.len(), all.limit, all.offset),
        (5, 5, 50, 0)
    );
    assert_eq!(all.items[0].name, "qwen2.5-7b-instruct");
    let vllm = must(
        client
            .list_models(&ModelFilter {
                server_type: Some(ServerType::Vllm),
                source: Some(Source::Huggingface),
                ..Default::default()
            })
            .await,
        "filter",
    );
    assert_eq!(
        vllm.items
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["llama-3-70b-instruct"]
    );
    let search = must(
        client
            .list_models(&ModelFilter {
                search: Some("speech".into()),
                ..Default::default()
            })
            .await,
        "search",
    );
    assert_eq!(search.items[0].name, "whisper-large-v3");

    let llama_id = env.model_id("llama-3-70b-instruct");
    let llama = must(client.get_model(&llama_id).await, "get");
    assert_eq!(
        (llama.server_type.as_str(), llama.requires_gpu),
        ("vllm", true)
    );
    assert_eq!(llama.metadata.get("context_length"), Some(&json!(8192)));

    let created = must(
        client
            .create_model(&NewModel {
                name: "phi-3-mini".into(),
                storage_path: "models/phi-3-mini".into(),
                server_type: ServerType::Vllm,
                description: Some("small".into()),
                tags: Some(vec!["llm".into()]),
                requires_gpu: None,
            })
            .await,
        "create",
    );
    assert_eq!(
        (created.name.as_str(), created.source.as_str()),
        ("phi-3-mini", "internal")
    );
    let mut metadata = serde_json::Map::new();
    metadata.insert("owner".into(), json!("ml"));
    let updated = must(
        client
            .update_model(
                &created.id,
                &ModelUpdate {
                    tags: Some(vec!["small".into()]),
                    metadata: Some(metadata),
                    ..Default::default()
                },
            )
            .await,
        "update",
    );
    assert_eq!(
        (updated.tags.clone(), updated.description.clone()),
        (vec!["small".to_owned()], Some("small".to_owned()))
    );
    assert_eq!(updated.metadata.get("owner"), Some(&json!("ml")));
    // Only the fields given were sent.
    let sent = env
        .emu
        .requests()
        .snapshot()
        .into_iter()
        .rfind(|r| r.method == "PATCH")
        .and_then(|r| r.body);
    assert_eq!(
        sent,
        Some(json!({"tags": ["small"], "metadata": {"owner": "ml"}}))
    );

    let deleted = must(client.delete_model(&created.id).await, "delete");
    assert_eq!((deleted.deleted, deleted.versions_deleted), (true, 0));
    let gone = client.get_model(&created.id).await;
    assert!(
        matches!(gone, Err(RegistryError::NotFound { .. })),
        "{gone:?}"
    );
    let busy = client.delete_model(&env.model_id("bge-m3")).await;
    assert!(
        matches!(&busy, Err(RegistryError::Conflict { detail, .. }) if detail.contains("active deployments")),
        "{busy:?}"
    );
}

#[tokio::test]
async fn version_methods() {
    let env = Env::start().await;
    let client = env.client(Role::Operator);
    let releases = must(
        client
            .list_versions(&VersionFilter {
                model_name: Some("llama-3-70b-instruct".into()),
                is_release: Some(true),
                ..Default::default()
            })
            .await,
        "list",
    );
    assert_eq!(
        releases
            .items
            .iter()
            .map(|v| v.version.as_str())
            .collect::<Vec<_>>(),
        ["1.1.0", "1.0.0"]
    );
    let id = env.version_id("whisper-large-v3", "3.0.0");
    let version = must(client.get_version(&id).await, "get");
    assert_eq!(
        (version.model_name.as_str(), version.quantization.as_deref()),
        ("whisper-large-v3", Some("fp16"))
    );
    let latest = must(
        client.get_latest_version("llama-3-70b-instruct").await,
        "latest",
    );
    assert_eq!(
        (latest.version.as_str(), latest.is_release),
        ("1.2.0-rc1", false)
    );

    let created = must(
        client
            .create_version(&NewVersion {
                model_name: "bge-m3".into(),
                version: "1.2.0".into(),
                auto_build: Some(true),
                ..Default::default()
            })
            .await,
        "create",
    );
    let build_id = created.build_id.clone().unwrap_or_default();
    let build = must(client.get_docker_build(&build_id).await, "build");
    assert_eq!(build.version_id, created.id);
    let plain = must(
        client
            .create_version(&NewVersion {
                model_name: "bge-m3".into(),
                version: "1.3.0".into(),
                ..Default::default()
            })
            .await,
        "create plain",
    );
    assert_eq!(plain.build_id, None);
    let promoted = must(client.promote_version(&plain.id, true).await, "promote");
    assert!(promoted.is_release && promoted.promoted_at.is_some());
    let dup = client
        .create_version(&NewVersion {
            model_name: "bge-m3".into(),
            version: "1.3.0".into(),
            ..Default::default()
        })
        .await;
    assert!(
        matches!(dup, Err(RegistryError::Conflict { .. })),
        "{dup:?}"
    );
    let missing = client
        .get_latest_version("ghost")
        .await
        .map_err(|e| e.to_string());
    assert_eq!(
        missing,
        Err(
            "GET /v1/models/by-name/ghost/versions/latest: 404: model 'ghost' not found".to_owned()
        )
    );
}
