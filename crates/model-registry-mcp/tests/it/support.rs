//! Fixtures: a small release-config repository built as a Git repository in a temp dir (served
//! to the server as a `file://` remote), and the real binary started over stdio.

use std::path::Path;

use rmcp::RoleClient;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::{Peer, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::Value;
use tempfile::TempDir;

pub const BINARY: &str = env!("CARGO_BIN_EXE_model-registry-mcp");

/// Two inventoried machines and one without inventory; GPU 1 of gpu-a is held twice (GPU001).
pub const FLEET: &[(&str, &str)] = &[
    (
        "machines/gpu-a/machine.yaml",
        "gpus: 8\ngpu_model: H100-SXM-80GB\ngpu_memory_gb: 80\ninterconnect: nvlink\nnuma_domains: [[0,1,2,3],[4,5,6,7]]\n",
    ),
    (
        "machines/gpu-a/8000/docker-compose.yml",
        r#"services:
  vllm:
    image: vllm/vllm-openai:v0.8.5
    labels:
      catapult.model: llama-3-70b
      catapult.model_path: /models/llama-3-70b
    command: ["--model", "/models/llama-3-70b", "--tensor-parallel-size", "2"]
    ports: ["8000:8000"]
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              capabilities: [gpu]
              device_ids: ["0", "1"]
"#,
    ),
    (
        "machines/gpu-a/8001/docker-compose.yml",
        r#"services:
  sglang:
    image: lmsysorg/sglang:v0.4.6
    labels:
      catapult.model: qwen-2-7b
      catapult.model_path: /models/qwen-2-7b
    command: ["python3", "-m", "sglang.launch_server", "--model-path", "/models/qwen-2-7b", "--tp-size", "2"]
    ports: ["8001:30000"]
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              capabilities: [gpu]
              device_ids: ["1", "2"]
"#,
    ),
    (
        "machines/gpu-b/machine.yaml",
        "gpus: 4\ngpu_model: A100-80GB\ninterconnect: pcie\n",
    ),
    (
        "machines/gpu-b/9000/docker-compose.yml",
        r#"services:
  tgi:
    image: ghcr.io/huggingface/text-generation-inference:3.2.3
    labels:
      catapult.model: llama-3-70b
      catapult.model_path: /models/llama-3-70b
    command: ["--model-id", "/models/llama-3-70b", "--num-shard", "4"]
    ports: ["9000:80"]
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              capabilities: [gpu]
              device_ids: ["0", "1", "2", "3"]
"#,
    ),
    (
        "machines/cpu-x/7000/docker-compose.yml",
        "services:\n  router:\n    image: nginx:1.27\n    ports: [\"7000:80\"]\n",
    ),
    ("templates/vllm.yml.j2", "services: {}\n"),
    ("templates/custom.yml.j2", "services: {}\n"),
];

pub use test_support::fixture_repo::{FixtureRepo, repo_with};

/// The binary's command with a clean environment (nothing from the developer's shell).
pub fn command(env: &[(&str, &str)], args: &[&str], cache: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BINARY);
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
        .env("HOME", cache)
        .env("REGISTRY_RELEASE_CONFIG_CACHE_DIR", cache.join("mirrors"))
        .env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command.args(args);
    command
}

pub type Client = RunningService<RoleClient, ()>;

/// A server over stdio, with its temp cache dir.
pub struct Server {
    pub client: Client,
    pub _cache: TempDir,
}

/// A server whose stderr goes to a file (read it with [`Server::stderr`]).
pub async fn start_logged(env: &[(&str, &str)], args: &[&str]) -> (Server, std::path::PathBuf) {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let log = cache.path().join("stderr.log");
    let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("stderr file: {e}"));
    let (transport, _stderr) = TokioChildProcess::builder(command(env, args, cache.path()))
        .stderr(std::process::Stdio::from(file))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BINARY}: {e}"));
    let client = ().serve(transport).await.unwrap_or_else(|e| panic!("initialize: {e}"));
    (
        Server {
            client,
            _cache: cache,
        },
        log,
    )
}

pub async fn start(env: &[(&str, &str)], args: &[&str]) -> Server {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (transport, _stderr) = TokioChildProcess::builder(command(env, args, cache.path()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BINARY}: {e}"));
    let client = ().serve(transport).await.unwrap_or_else(|e| panic!("initialize: {e}"));
    Server {
        client,
        _cache: cache,
    }
}

pub fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(object) => object,
        other => panic!("arguments must be an object, got {other}"),
    }
}

/// Calls a tool; panics on a JSON-RPC error. A successful result must carry `structuredContent`
/// valid against the tool's listed `outputSchema` (what MCP clients check).
pub async fn call(client: &Peer<RoleClient>, name: &str, arguments: Value) -> CallToolResult {
    let mut params = CallToolRequestParams::new(name.to_owned());
    params.arguments = Some(args(arguments));
    let result = client
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    if result.is_error != Some(true) {
        let tools = client
            .list_all_tools()
            .await
            .unwrap_or_else(|e| panic!("tools/list: {e}"));
        let schema = tools
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.output_schema.clone())
            .unwrap_or_else(|| panic!("{name}: no outputSchema"));
        let structured = result
            .structured_content
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: outputSchema but no structuredContent"));
        let problems = validate(&Value::Object((*schema).clone()), structured, "$");
        assert!(problems.is_empty(), "{name}: {problems:#?}\n{structured}");
    }
    result
}

/// Validates `value` against `schema`, for the JSON Schema keywords this server's schemas use
/// (type, properties, required, additionalProperties, items, enum, minimum, maximum). Any other
/// keyword that constrains values is reported, so that a schema this check cannot judge fails.
pub fn validate(schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(schema) = schema.as_object() else {
        return vec![format!("{at}: schema is not an object")];
    };
    for key in schema.keys() {
        if !matches!(
            key.as_str(),
            "type"
                | "properties"
                | "required"
                | "additionalProperties"
                | "items"
                | "enum"
                | "minimum"
                | "maximum"
                | "description"
                | "title"
                | "default"
        ) {
            problems.push(format!("{at}: keyword `{key}` is not checked here"));
        }
    }
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let declared = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !declared {
        problems.push(format!("{at}: is {kind}, schema says {types:?}"));
        return problems;
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(n) = value.as_f64() {
        if schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            problems.push(format!("{at}: {n} below minimum"));
        }
        if schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            problems.push(format!("{at}: {n} above maximum"));
        }
    }
    if let Value::Object(object) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(key) = required.as_str()
                && !object.contains_key(key)
            {
                problems.push(format!("{at}: required `{key}` missing"));
            }
        }
        for (key, field) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => problems.extend(validate(sub, field, &format!("{at}.{key}"))),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    problems.push(format!("{at}: `{key}` is not allowed"));
                }
                // A page's bookkeeping, named once in the server's instructions.
                None if at == "$"
                    && properties.is_some_and(|p| p.contains_key("next_call"))
                    && ["offset", "returned", "next_offset", "cut"].contains(&key.as_str()) => {}
                // Stricter than JSON Schema: where properties are spelled out, an undeclared
                // key means the listed schema is stale.
                None if properties.is_some() => {
                    problems.push(format!("{at}: `{key}` is not declared in the schema"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (index, item) in items.iter().enumerate() {
            problems.extend(validate(item_schema, item, &format!("{at}[{index}]")));
        }
    }
    problems
}

/// Calls a tool expected to succeed; returns its structured content.
pub async fn call_ok(client: &Peer<RoleClient>, name: &str, arguments: Value) -> Value {
    let result = call(client, name, arguments).await;
    assert_eq!(result.is_error, Some(false), "{name}: {:?}", result.content);
    assert!(
        !text_of(&result).is_empty(),
        "{name}: text rendering missing"
    );
    result
        .structured_content
        .unwrap_or_else(|| panic!("{name}: no structuredContent"))
}

/// The text content of a result.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Calls a tool expected to fail as a tool (isError); returns its text.
pub async fn call_err(client: &Peer<RoleClient>, name: &str, arguments: Value) -> String {
    let result = call(client, name, arguments).await;
    assert_eq!(
        result.is_error,
        Some(true),
        "{name} should fail: {:?}",
        result.structured_content
    );
    text_of(&result)
}

pub fn fixture_env(repo: &FixtureRepo) -> Vec<(&'static str, String)> {
    vec![("REGISTRY_RELEASE_CONFIG_REPO", repo.url())]
}

pub fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The GitHub double over `repo` (which it reads branches from) and the settings that point a
/// server at it and at `url`, the remote the server fetches from and pushes to.
pub async fn github_double(
    repo: &FixtureRepo,
    url: String,
    token: &str,
) -> (github_emulator::FakeGitHub, Vec<(&'static str, String)>) {
    let fake = github_emulator::FakeGitHub::start(
        token,
        "acme",
        "release-configs",
        repo.path().to_owned(),
    )
    .await
    .unwrap_or_else(|e| panic!("GitHub double: {e}"));
    let env = vec![
        ("REGISTRY_RELEASE_CONFIG_REPO", url),
        ("REGISTRY_GITHUB_TOKEN", token.to_owned()),
        ("REGISTRY_GITHUB_API_URL", fake.url.clone()),
        (
            "REGISTRY_GITHUB_REPOSITORY",
            "acme/release-configs".to_owned(),
        ),
    ];
    (fake, env)
}
