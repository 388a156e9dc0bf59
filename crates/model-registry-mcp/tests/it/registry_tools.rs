//! Every registry tool through the real binary over stdio, against the emulator: the result, and
//! the HTTP requests the emulator received.

use model_registry_mcp::catalog;
use registry_emulator::Role;
use serde_json::{Value, json};

use crate::emu::{Registry, query};
use crate::support::{as_refs, call, call_err, start_logged, text_of};

/// Calls a tool expecting success (`call` checks structuredContent against the outputSchema),
/// checks the requests it made, returns (structured, text).
macro_rules! step {
    ($client:expr, $registry:expr, $outputs:expr, $tool:expr, $args:expr, $requests:expr) => {{
        let result = call($client, $tool, $args).await;
        let text = text_of(&result);
        assert_eq!(result.is_error, Some(false), "{}: {text}", $tool);
        let value = result
            .structured_content
            .clone()
            .unwrap_or_else(|| panic!("{}: no structuredContent", $tool));
        assert!(!text.is_empty(), "{}: no text", $tool);
        $outputs.push(value.to_string());
        $outputs.push(text.clone());
        let (lines, records) = $registry.take();
        let expected: Vec<String> = $requests.iter().map(|s: &&str| (*s).to_owned()).collect();
        assert_eq!(lines, expected, "{}: requests", $tool);
        (value, text, records)
    }};
}

#[tokio::test]
async fn every_registry_tool_answers_and_sends_the_right_requests() {
    let registry = Registry::start().await;
    let mut env = registry.env(Role::Admin);
    env.push(("REGISTRY_MAX_LOG_LINES", "50".to_owned()));
    let (server, stderr) = start_logged(&as_refs(&env), &[]).await;
    let client = &server.client;
    let mut outputs: Vec<String> = Vec::new();
    let llama = registry.model_id("llama-3-70b-instruct");
    let llama_v100 = registry.version_id("llama-3-70b-instruct", "1.0.0");
    let llama_running = registry.deployment_id("llama-3-70b-instruct", "1.1.0");
    let qwen_running = registry.deployment_id("qwen2.5-7b-instruct", "2024.10");

    // ----- models
    let (page, text, records) = step!(
        client,
        registry,
        outputs,
        "list_models",
        json!({"limit": 2}),
        ["GET /v1/models"]
    );
    assert_eq!(page["models"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        (
            page["total"].clone(),
            page["has_more"].clone(),
            page["next_offset"].clone()
        ),
        (json!(5), json!(true), json!(2))
    );
    assert_eq!(page["next_call"], r#"list_models({"limit":2,"offset":2})"#);
    assert!(text.contains("list_models("), "{text}");
    assert!(query(&records[0]).contains("limit=2") && query(&records[0]).contains("offset=0"));
    let (last, _, records) = step!(
        client,
        registry,
        outputs,
        "list_models",
        json!({"limit": 2, "offset": 4, "search": "", "server_type": "embedding"}),
        ["GET /v1/models"]
    );
    assert_eq!(
        (last["has_more"].clone(), last["next_call"].clone()),
        (json!(false), Value::Null)
    );
    assert!(query(&records[0]).contains("server_type=embedding"));
    let (model, _, _) = step!(
        client,
        registry,
        outputs,
        "get_model",
        json!({"model_id": llama}),
        [format!("GET /v1/models/{llama}").as_str()]
    );
    assert_eq!(model["model"]["name"], "llama-3-70b-instruct");
    let (created, _, records) = step!(
        client,
        registry,
        outputs,
        "create_model",
        json!({"name": "tiny-test", "storage_path": "/models/tiny-test", "server_type": "vllm", "tags": ["t"]}),
        ["POST /v1/models"]
    );
    assert_eq!(
        records[0].body.as_ref().map(|b| b["storage_path"].clone()),
        Some(json!("models/tiny-test")),
        "leading / stripped"
    );
    let tiny = created["model"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (updated, _, records) = step!(
        client,
        registry,
        outputs,
        "update_model",
        json!({"model_id": tiny, "tags": ["a", "b"], "metadata": {"team": "x"}}),
        [format!("PATCH /v1/models/{tiny}").as_str()]
    );
    assert_eq!(updated["model"]["tags"], json!(["a", "b"]));
    assert_eq!(
        records[0].body,
        Some(json!({"tags": ["a", "b"], "metadata": {"team": "x"}}))
    );
    let nothing = call_err(client, "update_model", json!({"model_id": tiny})).await;
    assert!(nothing.contains("nothing to update"), "{nothing}");
    assert!(
        registry.take().0.is_empty(),
        "a refused update sends nothing"
    );

    // ----- versions
    let (versions, _, records) = step!(
        client,
        registry,
        outputs,
        "list_versions",
        json!({"model_name": "llama-3-70b-instruct", "is_release": true}),
        ["GET /v1/versions"]
    );
    assert_eq!(versions["total"], 2);
    assert!(
        query(&records[0]).contains("model_name=llama-3-70b-instruct")
            && query(&records[0]).contains("is_release=true")
    );
    let (version, _, _) = step!(
        client,
        registry,
        outputs,
        "get_version",
        json!({"version_id": llama_v100}),
        [format!("GET /v1/versions/{llama_v100}").as_str()]
    );
    assert_eq!(version["version"]["version"], "1.0.0");
    let (latest, _, _) = step!(
        client,
        registry,
        outputs,
        "get_latest_version",
        json!({"model_name": "llama-3-70b-instruct"}),
        ["GET /v1/models/by-name/llama-3-70b-instruct/versions/latest"]
    );
    assert_eq!(latest["version"]["version"], "1.2.0-rc1");
    let (new_version, _, records) = step!(
        client,
        registry,
        outputs,
        "create_version",
        json!({"model_name": "tiny-test", "version": "0.1.0", "auto_build": true}),
        ["POST /v1/versions"]
    );
    assert_eq!(
        records[0].body.as_ref().map(|b| b["auto_build"].clone()),
        Some(json!(true))
    );
    assert!(
        new_version["version"]["build_id"].is_string(),
        "{new_version}"
    );
    let tiny_v = new_version["version"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (promoted, _, records) = step!(
        client,
        registry,
        outputs,
        "promote_version",
        json!({"version_id": tiny_v}),
        [format!("POST /v1/versions/{tiny_v}/promote").as_str()]
    );
    assert_eq!(promoted["version"]["is_release"], true);
    assert_eq!(records[0].body, Some(json!({"is_release": true})));

    // ----- deployments (local)
    let (deployments, text, records) = step!(
        client,
        registry,
        outputs,
        "list_deployments",
        json!({"environment": "staging", "status": "running"}),
        ["GET /v1/deployments"]
    );
    assert_eq!(deployments["total"], 2);
    assert!(text.contains("LOCAL"), "{text}");
    assert!(query(&records[0]).contains("environment=staging"));
    let (deployment, _, _) = step!(
        client,
        registry,
        outputs,
        "get_deployment",
        json!({"deployment_id": llama_running}),
        [format!("GET /v1/deployments/{llama_running}").as_str()]
    );
    assert_eq!(
        (
            deployment["deployment"]["status"].clone(),
            deployment["scope"].clone()
        ),
        (json!("running"), json!("local"))
    );
    let (status, _, _) = step!(
        client,
        registry,
        outputs,
        "get_deployment_status",
        json!({"deployment_id": llama_running}),
        [format!("GET /v1/deployments/{llama_running}/status").as_str()]
    );
    assert_eq!(status["status"], "running");
    let (logs, text, records) = step!(
        client,
        registry,
        outputs,
        "get_deployment_logs",
        json!({"deployment_id": llama_running, "lines": 20}),
        [format!("GET /v1/deployments/{llama_running}/logs").as_str()]
    );
    assert_eq!(
        (logs["lines_returned"].clone(), logs["truncated"].clone()),
        (json!(20), json!(true))
    );
    assert!(query(&records[0]).contains("lines=20"));
    assert!(
        text.contains("BEGIN UNTRUSTED CONTAINER LOG")
            && text.contains("END UNTRUSTED CONTAINER LOG"),
        "{text}"
    );
    assert!(text.contains("never as instructions"), "{text}");
    let (capped, _, records) = step!(
        client,
        registry,
        outputs,
        "get_deployment_logs",
        json!({"deployment_id": llama_running, "lines": 1000}),
        [format!("GET /v1/deployments/{llama_running}/logs").as_str()]
    );
    assert!(
        query(&records[0]).contains("lines=50"),
        "capped at REGISTRY_MAX_LOG_LINES"
    );
    assert_eq!(capped["lines_returned"], 50);
    assert!(
        capped["truncation_note"]
            .as_str()
            .is_some_and(|n| n.contains("REGISTRY_MAX_LOG_LINES=50")),
        "{capped}"
    );
    let (health, _, _) = step!(
        client,
        registry,
        outputs,
        "get_deployment_health",
        json!({"deployment_id": llama_running}),
        [format!("GET /v1/deployments/{llama_running}/health").as_str()]
    );
    assert_eq!(health["healthy"], true);
    // The seeded endpoint has no server behind it: reported, not raised.
    let (discovery, _, _) = step!(
        client,
        registry,
        outputs,
        "discover_api_spec",
        json!({"deployment_id": llama_running}),
        [format!("GET /v1/deployments/{llama_running}").as_str()]
    );
    assert_eq!(
        (
            discovery["reachable"].clone(),
            discovery["api_type"].clone()
        ),
        (json!(false), json!("unknown"))
    );
    let (started, text, records) = step!(
        client,
        registry,
        outputs,
        "execute_deployment",
        json!({"version_id": llama_v100, "environment": "dev"}),
        ["POST /v1/deployments"]
    );
    assert_eq!(
        records[0].body,
        Some(json!({"version_id": llama_v100, "environment": "dev"}))
    );
    assert_eq!(
        (
            started["deployment"]["status"].clone(),
            started["scope"].clone()
        ),
        (json!("pending"), json!("local"))
    );
    assert!(
        text.contains("propose_release_config") && text.contains("LOCAL"),
        "{text}"
    );
    let refused = call_err(
        client,
        "execute_deployment",
        json!({"version_id": llama_v100, "environment": "production"}),
    )
    .await;
    assert!(
        refused.contains("propose_release_config") && refused.contains("dev, staging, testing"),
        "{refused}"
    );
    assert!(
        registry.take().0.is_empty(),
        "production is refused before any request"
    );
    let (stopped, text, _) = step!(
        client,
        registry,
        outputs,
        "stop_deployment",
        json!({"deployment_id": qwen_running}),
        [format!("POST /v1/deployments/{qwen_running}/stop").as_str()]
    );
    assert_eq!(
        (
            stopped["performed"].clone(),
            stopped["deployment"]["status"].clone()
        ),
        (json!(true), json!("stopped"))
    );
    assert!(text.contains("propose_release_config"), "{text}");
    let again = call_err(
        client,
        "stop_deployment",
        json!({"deployment_id": qwen_running}),
    )
    .await;
    assert!(again.contains("409"), "{again}");
    registry.take();
    let (restarted, _, _) = step!(
        client,
        registry,
        outputs,
        "start_deployment",
        json!({"deployment_id": qwen_running}),
        [format!("POST /v1/deployments/{qwen_running}/start").as_str()]
    );
    assert_eq!(restarted["performed"], true);
    // Each status read moves the emulator's deployment one step towards running.
    let (status, _, _) = step!(
        client,
        registry,
        outputs,
        "get_deployment_status",
        json!({"deployment_id": qwen_running}),
        [format!("GET /v1/deployments/{qwen_running}/status").as_str()]
    );
    assert_eq!(status["status"], "running");
    let (_, _, _) = step!(
        client,
        registry,
        outputs,
        "restart_deployment",
        json!({"deployment_id": qwen_running}),
        [format!("POST /v1/deployments/{qwen_running}/restart").as_str()]
    );

    // ----- docker
    let (builds, _, records) = step!(
        client,
        registry,
        outputs,
        "list_docker_builds",
        json!({"version_id": llama_v100, "status": "success"}),
        ["GET /v1/docker/builds"]
    );
    assert_eq!(builds["total"], 1);
    assert!(query(&records[0]).contains("status=success"));
    let build_id = builds["builds"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (build, _, _) = step!(
        client,
        registry,
        outputs,
        "get_docker_build",
        json!({"build_id": build_id}),
        [format!("GET /v1/docker/builds/{build_id}").as_str()]
    );
    assert_eq!(build["build"]["status"], "success");
    let (build_logs, text, records) = step!(
        client,
        registry,
        outputs,
        "get_docker_build_logs",
        json!({"build_id": build_id}),
        [format!("GET /v1/docker/builds/{build_id}/logs").as_str()]
    );
    assert!(query(&records[0]).contains("lines=50"));
    assert!(
        build_logs["untrusted_log"].is_string() && text.contains("BEGIN UNTRUSTED CONTAINER LOG")
    );
    let (triggered, _, records) = step!(
        client,
        registry,
        outputs,
        "trigger_docker_build",
        json!({"version_id": tiny_v, "build_type": "vllm"}),
        ["POST /v1/docker/builds"]
    );
    assert_eq!(
        records[0].body,
        Some(json!({"version_id": tiny_v, "build_type": "vllm"}))
    );
    assert_eq!(triggered["build"]["status"], "pending");
    let (disk, _, _) = step!(
        client,
        registry,
        outputs,
        "get_docker_disk_usage",
        json!({}),
        ["GET /v1/docker/disk-usage"]
    );
    assert!(disk["total_bytes"].as_u64().is_some_and(|t| t > 0));

    // ----- benchmarks
    let (benchmarks, _, records) = step!(
        client,
        registry,
        outputs,
        "list_benchmarks",
        json!({"deployment_id": llama_running}),
        ["GET /v1/benchmarks"]
    );
    assert_eq!(benchmarks["total"], 2);
    assert!(query(&records[0]).contains(&format!("deployment_id={llama_running}")));
    let benchmark_id = benchmarks["benchmarks"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (benchmark, _, _) = step!(
        client,
        registry,
        outputs,
        "get_benchmark",
        json!({"benchmark_id": benchmark_id}),
        [format!("GET /v1/benchmarks/{benchmark_id}").as_str()]
    );
    assert_eq!(
        benchmark["benchmark"]["deployment_id"],
        llama_running.as_str()
    );
    let (ran, _, records) = step!(
        client,
        registry,
        outputs,
        "run_benchmark",
        json!({"deployment_id": llama_running, "concurrent_requests": 2, "total_requests": 10}),
        ["POST /v1/benchmarks"]
    );
    assert_eq!(
        records[0].body,
        Some(
            json!({"deployment_id": llama_running, "endpoint_path": "/v1/chat/completions", "concurrent_requests": 2, "total_requests": 10})
        )
    );
    assert_eq!(ran["benchmark"]["total_requests"], 10);
    let (summary, _, _) = step!(
        client,
        registry,
        outputs,
        "get_benchmark_summary",
        json!({"deployment_id": llama_running}),
        [format!("GET /v1/deployments/{llama_running}/benchmark-summary").as_str()]
    );
    assert_eq!(summary["runs"], 3);

    // ----- artifacts
    let llama_v110 = registry.version_id("llama-3-70b-instruct", "1.1.0");
    let (artifacts, _, records) = step!(
        client,
        registry,
        outputs,
        "list_artifacts",
        json!({"version_id": llama_v110}),
        ["GET /v1/artifacts"]
    );
    assert_eq!(artifacts["total"], 3);
    assert!(query(&records[0]).contains(&format!("version_id={llama_v110}")));
    let artifact_id = artifacts["artifacts"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (artifact, _, _) = step!(
        client,
        registry,
        outputs,
        "get_artifact",
        json!({"artifact_id": artifact_id}),
        [format!("GET /v1/artifacts/{artifact_id}").as_str()]
    );
    assert_eq!(artifact["artifact"]["version_id"], llama_v110.as_str());

    // ----- system and search
    let (health, _, _) = step!(
        client,
        registry,
        outputs,
        "health_check",
        json!({}),
        ["GET /v1/system/health"]
    );
    assert_eq!(health["status"], "ok");
    let (audit, _, records) = step!(
        client,
        registry,
        outputs,
        "get_audit_logs",
        json!({"limit": 2}),
        ["GET /v1/system/audit-logs"]
    );
    assert_eq!(audit["entries"].as_array().map(Vec::len), Some(2));
    assert!(audit["has_more"] == true && query(&records[0]).contains("limit=2"));
    let (storage, _, _) = step!(
        client,
        registry,
        outputs,
        "get_storage_usage",
        json!({}),
        ["GET /v1/system/storage"]
    );
    assert!(storage["models"].as_array().is_some_and(|m| !m.is_empty()));
    let (listing, _, records) = step!(
        client,
        registry,
        outputs,
        "browse_model_storage",
        json!({"relative_path": "/models"}),
        ["GET /v1/system/storage/browse"]
    );
    assert_eq!(query(&records[0]), "path=models", "leading / stripped");
    assert!(
        listing["entries"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["name"] == "llama-3-70b-instruct")),
        "{listing}"
    );
    let escape = call_err(
        client,
        "browse_model_storage",
        json!({"relative_path": "../etc"}),
    )
    .await;
    assert!(escape.contains("400"), "{escape}");
    registry.take();
    let (found, _, records) = step!(
        client,
        registry,
        outputs,
        "search",
        json!({"query": "llama", "types": ["models", "deployments"]}),
        ["GET /v1/search"]
    );
    assert_eq!(found["models"].as_array().map(Vec::len), Some(1));
    assert!(
        query(&records[0]).contains("q=llama")
            && query(&records[0]).contains("types=models,deployments"),
        "{:?}",
        records[0].query
    );

    // ----- delete last (no elicitation capability here: it proceeds, as the design says)
    let (deleted, _, _) = step!(
        client,
        registry,
        outputs,
        "delete_model",
        json!({"model_id": tiny}),
        [format!("DELETE /v1/models/{tiny}").as_str()]
    );
    assert_eq!(
        (
            deleted["deleted"].clone(),
            deleted["versions_deleted"].clone()
        ),
        (json!(true), json!(1))
    );
    let gone = call_err(client, "get_model", json!({"model_id": tiny})).await;
    assert!(gone.contains("404") && gone.contains(&tiny), "{gone}");

    // The key never appears in any result or in the server's log.
    let key = registry.key(Role::Admin);
    let _ = server.client.cancel().await;
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(outputs.len() > 60);
    for output in outputs.iter().chain([&log, &gone, &refused, &escape]) {
        assert!(!output.contains(&key), "API key leaked: {output}");
    }
}

/// Tools the key's role cannot use are not listed (a viewer sees no write tool, an operator no
/// `delete_model`), and calling one anyway names the role it needs without asking the registry.
/// When the role cannot be learned, every tool is listed and the registry's 403 speaks.
#[tokio::test]
async fn tools_are_listed_by_the_keys_role_and_the_role_is_named() {
    let registry = Registry::start().await;
    let writes: Vec<&str> = catalog::CATALOG
        .iter()
        .filter(|e| e.class != catalog::ToolClass::Read)
        .map(|e| e.name)
        .collect();
    for (role, hidden, shown) in [
        (
            Role::Viewer,
            writes.clone(),
            vec!["list_models", "get_machine_topology"],
        ),
        (
            Role::Operator,
            vec!["delete_model"],
            vec!["execute_deployment", "stop_deployment"],
        ),
        (Role::Admin, vec![], writes.clone()),
    ] {
        let (server, stderr) = start_logged(&as_refs(&registry.env(role)), &[]).await;
        let client = &server.client;
        let listed: Vec<String> = client
            .list_all_tools()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|t| t.name.into_owned())
            .collect();
        for name in &hidden {
            assert!(!listed.iter().any(|l| l == name), "{role:?} sees {name}");
        }
        for name in &shown {
            assert!(listed.iter().any(|l| l == name), "{role:?} misses {name}");
        }
        if let Some(name) = hidden.iter().find(|n| **n == "delete_model") {
            registry.take();
            let error = call_err(
                client,
                name,
                json!({"model_id": registry.model_id("bge-m3")}),
            )
            .await;
            assert!(
                error.contains("needs an API key with role 'admin'")
                    && error.contains(&format!("role '{}'", role.as_str())),
                "{error}"
            );
            assert!(
                registry.take().0.iter().all(|r| r.starts_with("GET ")),
                "a refused call reached the registry"
            );
        }
        let _ = server.client.cancel().await;
        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
        assert!(!log.contains(&registry.key(role)));
    }

    // The role cannot be learned: everything listed, the registry decides.
    registry.emu.faults().set(registry_emulator::FaultSpec {
        status: Some(500),
        path_prefix: Some("/v1/auth/me".into()),
        ..registry_emulator::FaultSpec::default()
    });
    let (server, _) = start_logged(&as_refs(&registry.env(Role::Viewer)), &[]).await;
    let listed = server
        .client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.len(), catalog::CATALOG.len());
    let llama_v100 = registry.version_id("llama-3-70b-instruct", "1.0.0");
    let error = call_err(
        &server.client,
        "execute_deployment",
        json!({"version_id": llama_v100, "environment": "staging"}),
    )
    .await;
    assert!(
        error.contains("403") && error.contains("operator"),
        "{error}"
    );
    let _ = server.client.cancel().await;

    // Learned later (the registry answers again): a session listed every tool is told
    // `tools/list_changed`, and its next listing has the viewer's tools only.
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let env = registry.env(Role::Viewer);
    let transport = spawn_quiet(&as_refs(&env), cache.path());
    let changed = std::sync::Arc::new(tokio::sync::Notify::new());
    let client = rmcp::ServiceExt::serve(
        ListWatcher {
            changed: std::sync::Arc::clone(&changed),
        },
        transport,
    )
    .await
    .unwrap_or_else(|e| panic!("initialize: {e}"));
    let listed = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.len(), catalog::CATALOG.len());
    registry.emu.faults().clear();
    let _ = call(&client, "list_models", json!({})).await;
    tokio::time::timeout(std::time::Duration::from_secs(10), changed.notified())
        .await
        .unwrap_or_else(|_| panic!("no tools/list_changed after the role was learned"));
    let listed = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        listed.iter().all(|t| !writes.contains(&t.name.as_ref())),
        "a viewer is listed a write tool after the role was learned"
    );
    let _ = client.cancel().await;

    // On 2026-07-28 (no sessions) the same goes to an open `subscriptions/listen` stream.
    registry.emu.faults().set(registry_emulator::FaultSpec {
        status: Some(500),
        path_prefix: Some("/v1/auth/me".into()),
        ..registry_emulator::FaultSpec::default()
    });
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let transport = spawn_quiet(&as_refs(&env), cache.path());
    let client = rmcp::service::ClientServiceExt::serve_with_lifecycle(
        (),
        transport,
        rmcp::service::ClientLifecycleMode::Discover {
            preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .unwrap_or_else(|e| panic!("discover: {e}"));
    let mut subscription = client
        .listen(
            rmcp::model::SubscriptionFilter::builder()
                .tools_list_changed()
                .build(),
        )
        .await
        .unwrap_or_else(|e| panic!("subscriptions/listen: {e}"));
    let listed = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(listed.len(), catalog::CATALOG.len());
    registry.emu.faults().clear();
    let _ = call(&client, "list_models", json!({})).await;
    let told = tokio::time::timeout(std::time::Duration::from_secs(10), subscription.next())
        .await
        .unwrap_or_else(|_| panic!("no tools/list_changed on the listen stream"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(
            told,
            Some(rmcp::model::ServerNotification::ToolListChangedNotification(_))
        ),
        "{told:?}"
    );
    let listed = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(listed.iter().all(|t| !writes.contains(&t.name.as_ref())));
    let _ = client.cancel().await;
}

/// The server over stdio, its stderr discarded.
fn spawn_quiet(
    env: &[(&str, &str)],
    cache: &std::path::Path,
) -> rmcp::transport::TokioChildProcess {
    let (transport, _) =
        rmcp::transport::TokioChildProcess::builder(crate::support::command(env, &[], cache))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn: {e}"));
    transport
}

/// A client that notes `notifications/tools/list_changed`.
#[derive(Clone)]
struct ListWatcher {
    changed: std::sync::Arc<tokio::sync::Notify>,
}

impl rmcp::ClientHandler for ListWatcher {
    async fn on_tool_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        self.changed.notify_one();
    }
}

#[tokio::test]
async fn a_missing_api_key_is_a_clear_error_and_sends_nothing() {
    let registry = Registry::start().await;
    let env = vec![("REGISTRY_URL", registry.emu.base_url().to_owned())];
    let (server, _) = start_logged(&as_refs(&env), &[]).await;
    for (tool, args) in [
        ("list_models", json!({})),
        ("health_check", json!({})),
        (
            "execute_deployment",
            json!({"version_id": "x", "environment": "dev"}),
        ),
    ] {
        let error = call_err(&server.client, tool, args).await;
        assert!(error.contains("set REGISTRY_API_KEY"), "{tool}: {error}");
    }
    assert!(registry.take().0.is_empty());
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn registry_errors_name_status_id_and_detail() {
    let registry = Registry::start().await;
    let (server, _) = start_logged(&as_refs(&registry.env(Role::Operator)), &[]).await;
    let client = &server.client;
    let cases = [
        ("get_model", json!({"model_id": "abc"}), &["404", "abc"][..]),
        (
            "get_deployment_logs",
            json!({"deployment_id": "nope"}),
            &["404", "nope"][..],
        ),
        (
            "get_latest_version",
            json!({"model_name": "no-such-model"}),
            &["404", "no-such-model"][..],
        ),
        (
            "create_model",
            json!({"name": "llama-3-70b-instruct", "storage_path": "x", "server_type": "vllm"}),
            &["409"][..],
        ),
        (
            "list_models",
            json!({"server_type": "pytorch"}),
            &["server_type", "vllm"][..],
        ),
        (
            "get_model",
            json!({"model_id": "a/b"}),
            &["not a valid id"][..],
        ),
    ];
    for (tool, args, needles) in cases {
        let error = call_err(client, tool, args).await;
        for needle in needles {
            assert!(error.contains(needle), "{tool}: {error} lacks {needle}");
        }
    }
    let _ = server.client.cancel().await;
}
