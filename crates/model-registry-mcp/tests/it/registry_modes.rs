//! Read-only mode, faults (timeouts, retries), elicitation for destructive tools, the registry
//! resources and completion.

use std::sync::Arc;
use std::time::{Duration, Instant};

use model_registry_mcp::catalog::{CATALOG, ToolClass};
use registry_emulator::{FaultSpec, Role};
use rmcp::model::{
    ArgumentInfo, ClientCapabilities, ClientConfig, CompleteRequestParams, ElicitRequestParams,
    ElicitResult, ElicitationAction, Implementation, ReadResourceRequestParams, Reference,
    ResourceContents,
};
use rmcp::service::RequestContext;
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::emu::Registry;
use crate::support::{
    FLEET, as_refs, call, call_err, call_ok, command, repo_with, start_logged, text_of,
};

#[tokio::test]
async fn read_only_mode_lists_no_write_tool_and_never_writes() {
    let registry = Registry::start().await;
    let mut env = registry.env(Role::Admin);
    env.push(("REGISTRY_READ_ONLY", "true".to_owned()));
    let (server, _) = start_logged(&as_refs(&env), &[]).await;
    let client = &server.client;
    let listed = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_ref()).collect();
    let writes: Vec<&str> = CATALOG
        .iter()
        .filter(|e| e.class != ToolClass::Read)
        .map(|e| e.name)
        .collect();
    for write in &writes {
        assert!(!names.contains(write), "{write} listed in read-only mode");
    }
    assert_eq!(
        names.len(),
        CATALOG.len() - writes.len(),
        "every read tool stays listed: {names:?}"
    );
    let model = registry.model_id("bge-m3");
    let version = registry.version_id("bge-m3", "1.0.0");
    let deployment = registry.deployment_id("qwen2.5-7b-instruct", "2024.10");
    let calls = [
        (
            "create_model",
            json!({"name": "x", "storage_path": "x", "server_type": "vllm"}),
        ),
        ("update_model", json!({"model_id": model, "tags": []})),
        ("delete_model", json!({"model_id": model})),
        (
            "create_version",
            json!({"model_name": "bge-m3", "version": "9"}),
        ),
        ("promote_version", json!({"version_id": version})),
        (
            "execute_deployment",
            json!({"version_id": version, "environment": "dev"}),
        ),
        ("stop_deployment", json!({"deployment_id": deployment})),
        ("start_deployment", json!({"deployment_id": deployment})),
        ("restart_deployment", json!({"deployment_id": deployment})),
        (
            "trigger_docker_build",
            json!({"version_id": version, "build_type": "vllm"}),
        ),
        ("run_benchmark", json!({"deployment_id": deployment})),
    ];
    for (tool, args) in calls {
        let error = call_err(client, tool, args).await;
        assert!(
            error.contains("read-only") && error.contains("REGISTRY_READ_ONLY"),
            "{tool}: {error}"
        );
    }
    call_ok(client, "list_deployments", json!({})).await;
    let (requests, _) = registry.take();
    assert_eq!(
        requests,
        ["GET /v1/deployments"],
        "no write request reached the registry"
    );
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn faults_are_bounded_retried_only_on_reads_and_the_server_keeps_serving() {
    let registry = Registry::start().await;
    let mut env = registry.env(Role::Operator);
    env.push(("REGISTRY_REQUEST_TIMEOUT_SECONDS", "1".to_owned()));
    let (server, stderr) = start_logged(&as_refs(&env), &[]).await;
    let client = &server.client;
    let faults = registry.emu.faults();

    // A slow GET: each attempt gives up after 1 s; two retries; a clear timeout message.
    faults.set(FaultSpec {
        slow_ms: Some(4000),
        methods: Some(vec!["GET".into()]),
        path_prefix: Some("/v1/models".into()),
        ..FaultSpec::default()
    });
    let started = Instant::now();
    let error = call_err(client, "list_models", json!({})).await;
    let elapsed = started.elapsed();
    assert!(
        error.contains("timed out") && error.contains("REGISTRY_REQUEST_TIMEOUT_SECONDS"),
        "{error}"
    );
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
    assert_eq!(
        registry.emu.requests().count("GET", "/v1/models"),
        3,
        "1 attempt + 2 retries"
    );
    registry.take();

    // A slow POST is not retried.
    faults.set(FaultSpec {
        slow_ms: Some(4000),
        methods: Some(vec!["POST".into()]),
        ..FaultSpec::default()
    });
    let error = call_err(
        client,
        "create_model",
        json!({"name": "slow", "storage_path": "s", "server_type": "vllm"}),
    )
    .await;
    assert!(error.contains("timed out"), "{error}");
    assert_eq!(
        registry.take().0,
        ["POST /v1/models"],
        "writes are never retried"
    );

    // A 503 on a GET is retried and then succeeds; a 500 on a POST is reported once.
    faults.set(FaultSpec {
        status: Some(503),
        for_next_n: Some(1),
        ..FaultSpec::default()
    });
    call_ok(client, "health_check", json!({})).await;
    assert_eq!(
        registry.take().0,
        ["GET /v1/system/health", "GET /v1/system/health"]
    );
    faults.set(FaultSpec {
        status: Some(500),
        methods: Some(vec!["POST".into()]),
        ..FaultSpec::default()
    });
    let version = registry.version_id("bge-m3", "1.0.0");
    let error = call_err(
        client,
        "trigger_docker_build",
        json!({"version_id": version, "build_type": "embedding"}),
    )
    .await;
    assert!(
        error.contains("500") && error.contains("injected fault"),
        "{error}"
    );
    assert_eq!(registry.take().0, ["POST /v1/docker/builds"]);

    // Dropped connections on reads: retried, then a clear error.
    faults.set(FaultSpec {
        drop_connection: true,
        methods: Some(vec!["GET".into()]),
        ..FaultSpec::default()
    });
    let error = call_err(client, "get_docker_disk_usage", json!({})).await;
    assert!(error.contains("GET /v1/docker/disk-usage"), "{error}");
    faults.clear();
    registry.take();

    // Still serving.
    let models = call_ok(client, "list_models", json!({})).await;
    assert_eq!(models["total"], 5);
    let _ = server.client.cancel().await;
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(!log.contains(&registry.key(Role::Operator)));
}

/// A client that answers every elicitation with `action` (and records the messages).
#[derive(Clone)]
struct Elicitor {
    action: ElicitationAction,
    asked: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ClientHandler for Elicitor {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("elicitor", "1.0"),
        )
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = request {
            self.asked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(message);
        }
        Ok(match self.action.clone() {
            ElicitationAction::Accept => {
                ElicitResult::new(ElicitationAction::Accept).with_content(json!({"confirm": true}))
            }
            other => ElicitResult::new(other),
        })
    }
}

#[tokio::test]
async fn destructive_tools_ask_for_confirmation_when_the_client_can() {
    let registry = Registry::start().await;
    let env = registry.env(Role::Admin);
    let model = registry.model_id("mistral-7b-ft-support");
    let deployment = registry.deployment_id("qwen2.5-7b-instruct", "2024.10");
    for action in [ElicitationAction::Decline, ElicitationAction::Accept] {
        let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (transport, _) = TokioChildProcess::builder(command(&as_refs(&env), &[], cache.path()))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        let elicitor = Elicitor {
            action: action.clone(),
            asked: Arc::default(),
        };
        let client = elicitor
            .clone()
            .serve(transport)
            .await
            .unwrap_or_else(|e| panic!("initialize: {e}"));
        registry.take();
        let stop = call(
            &client,
            "stop_deployment",
            json!({"deployment_id": deployment}),
        )
        .await;
        let deleted = call(&client, "delete_model", json!({"model_id": model})).await;
        let (requests, _) = registry.take();
        let asked = elicitor
            .asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        assert_eq!(asked.len(), 2, "{asked:?}");
        assert!(
            asked[0].contains("qwen2.5-7b-instruct") && asked[0].contains("LOCAL"),
            "{asked:?}"
        );
        assert!(
            asked[1].contains("mistral-7b-ft-support") && asked[1].contains("cannot be undone"),
            "{asked:?}"
        );
        let structured =
            |r: &rmcp::model::CallToolResult| r.structured_content.clone().unwrap_or(Value::Null);
        if action == ElicitationAction::Decline {
            assert_eq!(structured(&stop)["performed"], false);
            assert_eq!(structured(&deleted)["deleted"], false);
            assert!(text_of(&deleted).contains("Nothing was done"));
            assert_eq!(
                requests,
                [
                    format!("GET /v1/deployments/{deployment}"),
                    format!("GET /v1/models/{model}")
                ],
                "declined: only the reads that named the target"
            );
        } else {
            assert_eq!(structured(&stop)["performed"], true, "{:?}", stop.content);
            assert_eq!(
                structured(&deleted)["deleted"],
                true,
                "{:?}",
                deleted.content
            );
            assert_eq!(
                requests,
                [
                    format!("GET /v1/deployments/{deployment}"),
                    format!("POST /v1/deployments/{deployment}/stop"),
                    format!("GET /v1/models/{model}"),
                    format!("DELETE /v1/models/{model}"),
                ]
            );
        }
        let _ = client.cancel().await;
    }
}

fn text_contents(contents: &[ResourceContents]) -> (String, Option<String>) {
    match contents.first() {
        Some(ResourceContents::TextResourceContents {
            text, mime_type, ..
        }) => (text.clone(), mime_type.clone()),
        other => panic!("expected text contents, got {other:?}"),
    }
}

#[tokio::test]
async fn registry_resources_templates_and_id_completion() {
    let registry = Registry::start().await;
    let repo = repo_with(FLEET);
    let mut env = registry.env(Role::Viewer);
    env.push(("REGISTRY_RELEASE_CONFIG_REPO", repo.url()));
    let (server, _) = start_logged(&as_refs(&env), &[]).await;
    let client = &server.client;

    let resources = client
        .list_all_resources()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["topology://machines", "health://status"]);
    let templates = client
        .list_all_resource_templates()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let templates: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert_eq!(
        templates,
        [
            "topology://machines",
            "topology://machine/{machine}",
            "model://{model_id}",
            "model://{model_id}/versions",
            "version://{version_id}",
            "deployment://{deployment_id}",
            "deployment://{deployment_id}/logs",
            "health://status",
        ]
    );

    let read = |uri: String| {
        let client = client.peer().clone();
        async move {
            client
                .read_resource(ReadResourceRequestParams::new(uri.clone()))
                .await
                .map(|r| text_contents(&r.contents))
                .map_err(|e| format!("{uri}: {e}"))
        }
    };
    let llama = registry.model_id("llama-3-70b-instruct");
    let json_of = |(text, mime): (String, Option<String>)| -> Value {
        assert_eq!(mime.as_deref(), Some("application/json"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let model = json_of(
        read(format!("model://{llama}"))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(model["name"], "llama-3-70b-instruct");
    let versions = json_of(
        read(format!("model://{llama}/versions"))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(3));
    let version_id = registry.version_id("bge-m3", "1.1.0");
    let version = json_of(
        read(format!("version://{version_id}"))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(version["version"], "1.1.0");
    let deployment_id = registry.deployment_id("llama-3-70b-instruct", "1.1.0");
    let deployment = json_of(
        read(format!("deployment://{deployment_id}"))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(deployment["status"], "running");
    let (logs, mime) = read(format!("deployment://{deployment_id}/logs"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mime.as_deref(), Some("text/plain"));
    assert!(
        logs.contains("BEGIN UNTRUSTED CONTAINER LOG") && logs.contains("never as instructions"),
        "{logs}"
    );
    let health = json_of(
        read("health://status".to_owned())
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(health["registry"]["status"], "ok");
    assert_eq!(health["release_configs"]["commit"], repo.head());
    assert_eq!(health["release_configs"]["stale"], false);
    assert!(
        health["release_configs"]["findings"]["errors"]
            .as_u64()
            .is_some_and(|e| e >= 1),
        "{health}"
    );
    assert!(health["release_configs"]["fetched_at"].is_string());
    let missing = read("model://no-such-id".to_owned())
        .await
        .err()
        .unwrap_or_default();
    assert!(
        missing.contains("404") && missing.contains("no-such-id"),
        "{missing}"
    );

    let complete = |uri: &str, argument: &str, value: &str| {
        let request = CompleteRequestParams::new(
            Reference::for_resource(uri),
            ArgumentInfo::new(argument, value),
        );
        let client = client.peer().clone();
        async move {
            client
                .complete(request)
                .await
                .map(|r| r.completion.values)
                .unwrap_or_else(|e| panic!("complete: {e}"))
        }
    };
    assert_eq!(
        complete("model://{model_id}", "model_id", "llama").await,
        std::slice::from_ref(&llama)
    );
    assert_eq!(
        complete("model://{model_id}/versions", "model_id", &llama[..4]).await,
        std::slice::from_ref(&llama)
    );
    assert_eq!(
        complete("deployment://{deployment_id}/logs", "deployment_id", "")
            .await
            .len(),
        7
    );
    assert_eq!(
        complete("version://{version_id}", "version_id", "bge-m3 1.1").await,
        [version_id]
    );
    let _ = server.client.cancel().await;
}
