//! The same scenarios on every MCP revision the server offers (2025-06-18 and 2025-11-25 with
//! `initialize`, 2026-07-28 with `server/discover` and per-request metadata), over stdio and over
//! HTTP, with rmcp's client: listing, a read tool of each toolset, a write, each confirming tool
//! confirmed, declined and without elicitation, a resource, a prompt and errors. On 2026-07-28
//! confirmation is an input-required round whose sealed state is checked here too: edited,
//! replayed and foreign states are refused and nothing is done.

use std::sync::{Arc, Mutex, PoisonError};

use registry_emulator::Role;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    ElicitRequestParams, ElicitResult, ElicitationAction, GetPromptRequestParams, Implementation,
    ProtocolVersion, ReadResourceRequestParams,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RequestContext, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ErrorData, RoleClient};
use serde_json::{Value, json};

use crate::emu::Registry;
use crate::support::{FLEET, args, as_refs, command, repo_with};

const REVISIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    Stdio,
    Http,
}

/// What the client's user does when asked; `None`: the client cannot ask.
type UserAnswer = Option<ElicitationAction>;

/// A client on one revision that answers every confirmation as its user would.
#[derive(Clone)]
struct Agent {
    revision: ProtocolVersion,
    answer: UserAnswer,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    fn asked(&self) -> Vec<String> {
        self.asked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ClientHandler for Agent {
    fn get_info(&self) -> ClientConfig {
        let capabilities = match self.answer {
            Some(_) => ClientCapabilities::builder().enable_elicitation().build(),
            None => ClientCapabilities::default(),
        };
        ClientConfig::new(capabilities, Implementation::new("revision-agent", "1.0"))
            .with_protocol_version(self.revision.clone())
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = request {
            self.asked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(message);
        }
        Ok(match self.answer.clone() {
            Some(ElicitationAction::Accept) => {
                ElicitResult::new(ElicitationAction::Accept).with_content(json!({"confirm": true}))
            }
            Some(other) => ElicitResult::new(other),
            None => ElicitResult::new(ElicitationAction::Decline),
        })
    }
}

/// A connected client and what keeps its server alive.
struct Connection {
    client: RunningService<RoleClient, Agent>,
    _server: Option<tokio::process::Child>,
    _cache: tempfile::TempDir,
}

async fn connect(agent: Agent, wire: Wire, env: &[(&str, &str)]) -> Connection {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let lifecycle = if agent.revision.has_initialize() {
        ClientLifecycleMode::Initialize
    } else {
        ClientLifecycleMode::Discover {
            preferred_versions: vec![agent.revision.clone()],
        }
    };
    let (client, server) = match wire {
        Wire::Stdio => {
            let (transport, _) = TokioChildProcess::builder(command(env, &[], cache.path()))
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn: {e}"));
            let client = agent.serve_with_lifecycle(transport, lifecycle).await;
            (client, None)
        }
        Wire::Http => {
            let (child, port) = crate::http::start_http(env, &[], cache.path()).await;
            let transport =
                StreamableHttpClientTransport::from_uri(format!("http://127.0.0.1:{port}/mcp"));
            let client = agent.serve_with_lifecycle(transport, lifecycle).await;
            (client, Some(child))
        }
    };
    let client = client.unwrap_or_else(|e| panic!("{wire:?}: connect: {e}"));
    Connection {
        client,
        _server: server,
        _cache: cache,
    }
}

async fn call(connection: &Connection, name: &str, arguments: Value) -> CallToolResult {
    connection
        .client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn structured(result: &CallToolResult) -> Value {
    result.structured_content.clone().unwrap_or(Value::Null)
}

fn text(result: &CallToolResult) -> String {
    crate::support::text_of(result)
}

/// The requests of the registry that change something.
fn writes(registry: &Registry) -> Vec<String> {
    registry
        .take()
        .0
        .into_iter()
        .filter(|line| !line.starts_with("GET "))
        .collect()
}

#[tokio::test]
async fn every_scenario_on_every_revision_over_stdio_and_http() {
    let repo = repo_with(FLEET);
    for wire in [Wire::Stdio, Wire::Http] {
        for revision in REVISIONS {
            for answer in [
                Some(ElicitationAction::Accept),
                Some(ElicitationAction::Decline),
                None,
            ] {
                let case = format!("{wire:?} {revision} {answer:?}");
                let registry = Registry::start().await;
                let mut env = registry.env(Role::Admin);
                env.push(("REGISTRY_RELEASE_CONFIG_REPO", repo.url()));
                let agent = Agent {
                    revision: revision.clone(),
                    answer: answer.clone(),
                    asked: Arc::default(),
                };
                let connection = connect(agent.clone(), wire, &as_refs(&env)).await;
                scenarios(&connection, &registry, &agent, &case).await;
                let _ = connection.client.cancel().await;
            }
        }
    }
}

async fn scenarios(connection: &Connection, registry: &Registry, agent: &Agent, case: &str) {
    let client = &connection.client;
    let negotiated = client
        .peer_info()
        .map(|info| info.protocol_version.clone())
        .unwrap_or_else(|| panic!("{case}: no server info"));
    assert_eq!(negotiated, agent.revision, "{case}");

    // Listing.
    let tools = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for name in [
        "delete_model",
        "list_release_configs",
        "propose_release_config",
    ] {
        assert!(names.contains(&name), "{case}: {name} not listed");
    }

    // A read tool of each toolset.
    let model = registry.model_id("bge-m3");
    let running = registry.deployment_id("llama-3-70b-instruct", "1.1.0");
    let version = registry
        .seed
        .versions
        .iter()
        .find(|v| v.model_id == model)
        .map(|v| v.id.clone())
        .unwrap_or_default();
    for (tool, arguments) in [
        ("list_models", json!({})),
        ("list_versions", json!({"model_name": "bge-m3"})),
        ("get_deployment", json!({"deployment_id": running})),
        ("list_docker_builds", json!({})),
        ("list_benchmarks", json!({})),
        ("list_release_configs", json!({})),
        ("list_artifacts", json!({"version_id": version})),
        ("health_check", json!({})),
        ("search", json!({"query": "llama"})),
    ] {
        let result = call(connection, tool, arguments).await;
        assert_eq!(
            result.is_error,
            Some(false),
            "{case}: {tool}: {}",
            text(&result)
        );
    }
    registry.take();

    // A write.
    let created = call(
        connection,
        "create_model",
        json!({"name": "revision-test", "storage_path": "/models/revision-test", "server_type": "vllm"}),
    )
    .await;
    assert_eq!(created.is_error, Some(false), "{case}: {}", text(&created));
    assert_eq!(writes(registry), ["POST /v1/models"], "{case}");

    // Each confirming tool, as the user answers.
    let stopped = registry.deployment_id("qwen2.5-7b-instruct", "2024.10");
    let restarted = registry.deployment_id("whisper-large-v3", "3.0.0");
    let deleted_model = registry.model_id("mistral-7b-ft-support");
    let stop = call(
        connection,
        "stop_deployment",
        json!({"deployment_id": stopped}),
    )
    .await;
    let restart = call(
        connection,
        "restart_deployment",
        json!({"deployment_id": restarted}),
    )
    .await;
    let delete = call(
        connection,
        "delete_model",
        json!({"model_id": deleted_model}),
    )
    .await;
    for (tool, result) in [("stop", &stop), ("restart", &restart), ("delete", &delete)] {
        assert_eq!(
            result.is_error,
            Some(false),
            "{case}: {tool}: {}",
            text(result)
        );
    }
    let asked = agent.asked();
    let done = writes(registry);
    match agent.answer {
        Some(ElicitationAction::Accept) | None => {
            assert_eq!(structured(&stop)["performed"], true, "{case}");
            assert_eq!(structured(&restart)["performed"], true, "{case}");
            assert_eq!(structured(&delete)["deleted"], true, "{case}");
            assert_eq!(
                done,
                [
                    format!("POST /v1/deployments/{stopped}/stop"),
                    format!("POST /v1/deployments/{restarted}/restart"),
                    format!("DELETE /v1/models/{deleted_model}"),
                ],
                "{case}"
            );
        }
        Some(_) => {
            assert_eq!(structured(&stop)["performed"], false, "{case}");
            assert_eq!(structured(&restart)["performed"], false, "{case}");
            assert_eq!(structured(&delete)["deleted"], false, "{case}");
            assert!(text(&delete).contains("Nothing was done"), "{case}");
            assert!(done.is_empty(), "{case}: declined, yet {done:?}");
        }
    }
    if agent.answer.is_some() {
        assert_eq!(asked.len(), 3, "{case}: {asked:?}");
        assert!(
            asked[0].contains("qwen2.5-7b-instruct"),
            "{case}: {asked:?}"
        );
        assert!(
            asked[2].contains("mistral-7b-ft-support"),
            "{case}: {asked:?}"
        );
    } else {
        assert!(asked.is_empty(), "{case}: {asked:?}");
    }

    // A resource and a prompt.
    let health = client
        .read_resource(ReadResourceRequestParams::new("health://status"))
        .await
        .unwrap_or_else(|e| panic!("{case}: health://status: {e}"));
    assert!(!health.contents.is_empty(), "{case}");
    let prompt = client
        .get_prompt(
            GetPromptRequestParams::new("troubleshoot_workflow")
                .with_arguments(args(json!({"deployment_id": running}))),
        )
        .await
        .unwrap_or_else(|e| panic!("{case}: prompt: {e}"));
    assert!(!prompt.messages.is_empty(), "{case}");

    // Errors: a tool failure is a result, an unknown tool a JSON-RPC error.
    let missing = call(
        connection,
        "get_model",
        json!({"model_id": "no-such-model"}),
    )
    .await;
    assert_eq!(missing.is_error, Some(true), "{case}");
    assert!(
        text(&missing).contains("no-such-model"),
        "{case}: {}",
        text(&missing)
    );
    let unknown = client
        .call_tool(CallToolRequestParams::new("no_such_tool"))
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("no_such_tool"), "{case}: {unknown}");
}

/// One round of `tools/call`, as sent: the raw answer.
async fn once(
    client: &RunningService<RoleClient, Agent>,
    name: &str,
    arguments: Value,
    responses: Option<Value>,
    state: Option<String>,
) -> CallToolResponse {
    let mut params = CallToolRequestParams::new(name.to_owned()).with_arguments(args(arguments));
    if let Some(Value::Object(responses)) = responses {
        params = params.with_input_responses(responses.into_iter().collect());
    }
    if let Some(state) = state {
        params = params.with_request_state(state);
    }
    client
        .call_tool_once(params)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn state_of(response: &CallToolResponse) -> String {
    match response {
        CallToolResponse::InputRequired(input) => {
            let requests = serde_json::to_value(&input.input_requests).unwrap_or_default();
            assert_eq!(
                requests["confirm"]["method"], "elicitation/create",
                "{requests}"
            );
            input.request_state.clone().unwrap_or_default()
        }
        other => panic!("expected an input-required result, got {other:?}"),
    }
}

fn completed(response: CallToolResponse) -> CallToolResult {
    match response {
        CallToolResponse::Complete(result) => result,
        other => panic!("expected a result, got {other:?}"),
    }
}

#[tokio::test]
async fn confirmation_states_are_sealed_bound_and_single_use() {
    let registry = Registry::start().await;
    let env = registry.env(Role::Admin);
    let agent = Agent {
        revision: ProtocolVersion::V_2026_07_28,
        answer: Some(ElicitationAction::Accept),
        asked: Arc::default(),
    };
    let connection = connect(agent, Wire::Http, &as_refs(&env)).await;
    let client = &connection.client;
    let model = registry.model_id("mistral-7b-ft-support");
    let other = registry.model_id("bge-m3");
    let accept = json!({"confirm": {"action": "accept", "content": {"confirm": true}}});
    registry.take();

    let first = once(
        client,
        "delete_model",
        json!({"model_id": model}),
        None,
        None,
    )
    .await;
    let state = state_of(&first);
    assert!(writes(&registry).is_empty(), "asking deletes nothing");

    // Edited (one character), for another model, for another tool: refused, nothing done.
    let mut edited: Vec<char> = state.chars().collect();
    let at = edited.len() / 2;
    edited[at] = if edited[at] == 'a' { 'b' } else { 'a' };
    let edited: String = edited.into_iter().collect();
    for (tool, arguments, state, expected) in [
        (
            "delete_model",
            json!({"model_id": model}),
            edited,
            "was altered",
        ),
        (
            "delete_model",
            json!({"model_id": other}),
            state.clone(),
            "for other arguments",
        ),
        (
            "stop_deployment",
            json!({"deployment_id": model}),
            state.clone(),
            "for delete_model, not stop_deployment",
        ),
    ] {
        let result =
            completed(once(client, tool, arguments, Some(accept.clone()), Some(state)).await);
        assert_eq!(result.is_error, Some(true), "{expected}");
        assert!(text(&result).contains(expected), "{}", text(&result));
        assert!(
            text(&result).contains("nothing was done"),
            "{}",
            text(&result)
        );
    }
    assert!(writes(&registry).is_empty());

    // Without the answer: refused. With it: done once; the same state again: refused.
    let unanswered = completed(
        once(
            client,
            "delete_model",
            json!({"model_id": model}),
            None,
            Some(state_of(
                &once(
                    client,
                    "delete_model",
                    json!({"model_id": model}),
                    None,
                    None,
                )
                .await,
            )),
        )
        .await,
    );
    assert!(
        text(&unanswered).contains("is missing"),
        "{}",
        text(&unanswered)
    );
    let done = completed(
        once(
            client,
            "delete_model",
            json!({"model_id": model}),
            Some(accept.clone()),
            Some(state.clone()),
        )
        .await,
    );
    assert_eq!(structured(&done)["deleted"], true, "{}", text(&done));
    assert_eq!(writes(&registry), [format!("DELETE /v1/models/{model}")]);
    let replayed = completed(
        once(
            client,
            "delete_model",
            json!({"model_id": model}),
            Some(accept),
            Some(state),
        )
        .await,
    );
    assert!(
        text(&replayed).contains("already used"),
        "{}",
        text(&replayed)
    );
    assert!(writes(&registry).is_empty());
    let _ = connection.client.cancel().await;
}

/// A call the client gives up on (`notifications/cancelled` on the `initialize` revisions; the
/// response stream closed on 2026-07-28 over HTTP) makes no further registry request: the slow
/// GET it was waiting for is not retried, and the session goes on serving.
#[tokio::test]
async fn a_cancelled_call_is_not_retried() {
    for (wire, revision) in [
        (Wire::Stdio, ProtocolVersion::V_2025_11_25),
        (Wire::Http, ProtocolVersion::V_2025_06_18),
        (Wire::Http, ProtocolVersion::V_2026_07_28),
    ] {
        let case = format!("{wire:?} {revision}");
        let registry = Registry::start().await;
        let mut env = registry.env(Role::Viewer);
        env.push(("REGISTRY_REQUEST_TIMEOUT_SECONDS", "1".to_owned()));
        let agent = Agent {
            revision,
            answer: None,
            asked: Arc::default(),
        };
        let connection = connect(agent, wire, &as_refs(&env)).await;
        registry.emu.faults().set(registry_emulator::FaultSpec {
            slow_ms: Some(4000),
            methods: Some(vec!["GET".into()]),
            path_prefix: Some("/v1/models".into()),
            ..registry_emulator::FaultSpec::default()
        });
        let given_up = tokio::time::timeout(
            std::time::Duration::from_millis(400),
            call(&connection, "list_models", json!({})),
        )
        .await;
        assert!(given_up.is_err(), "{case}: the slow call answered");
        // Uncancelled, the 1 s timeout and two retries would have sent 3 requests by now.
        tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
        assert_eq!(
            registry.emu.requests().count("GET", "/v1/models"),
            1,
            "{case}: the cancelled call went on"
        );
        registry.emu.faults().clear();
        let models = call(&connection, "list_models", json!({})).await;
        assert_eq!(models.is_error, Some(false), "{case}: {}", text(&models));
        let _ = connection.client.cancel().await;
    }
}

/// Cache hints say what is true: lists and registry resources live for
/// `REGISTRY_CACHE_TTL_SECONDS`, the production map until the next fetch; all private.
#[tokio::test]
async fn cache_hints_say_how_long_an_answer_holds() {
    let registry = Registry::start().await;
    let repo = repo_with(FLEET);
    let mut env = registry.env(Role::Viewer);
    env.retain(|(key, _)| *key != "REGISTRY_CACHE_TTL_SECONDS");
    env.push(("REGISTRY_CACHE_TTL_SECONDS", "45".to_owned()));
    env.push(("REGISTRY_RELEASE_CONFIG_REPO", repo.url()));
    let agent = Agent {
        revision: ProtocolVersion::V_2026_07_28,
        answer: None,
        asked: Arc::default(),
    };
    let connection = connect(agent, Wire::Http, &as_refs(&env)).await;
    let client = &connection.client;
    let private = Some(rmcp::model::CacheScope::Private);
    let tools = client
        .list_tools(None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((tools.ttl_ms, tools.cache_scope), (Some(45_000), private));
    let prompts = client
        .list_prompts(None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (prompts.ttl_ms, prompts.cache_scope),
        (Some(45_000), private)
    );
    let health = client
        .read_resource(ReadResourceRequestParams::new("health://status"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((health.ttl_ms, health.cache_scope), (Some(45_000), private));
    let machines = client
        .read_resource(ReadResourceRequestParams::new("topology://machines"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let until_fetch = machines.ttl_ms.unwrap_or_default();
    assert!(
        until_fetch > 30_000 && until_fetch <= 45_000,
        "just fetched: {until_fetch} ms"
    );
    assert_eq!(machines.cache_scope, private);
    let _ = connection.client.cancel().await;
}
