//! Secrets never leave the process: not on stdout (which carries only JSON-RPC), not in tool
//! results or errors, not in logs even at RUST_LOG=trace.

use std::process::Stdio;

use registry_emulator::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::emu::Registry;
use crate::support::{FLEET, command, repo_with};

const GITHUB_TOKEN: &str = "ghp_trace_secret_0123456789";

/// Runs one raw stdio session: initialize, then each call; returns every stdout line and stderr.
async fn session(env: &[(&str, &str)], calls: &[(&str, Value)]) -> (Vec<String>, String) {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = cache.path().join("stderr.log");
    let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
    let mut child = command(env, &[], cache.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(file))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let mut stdin = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
    let mut stdout =
        BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout"))).lines();
    let mut lines = Vec::new();
    let mut send = async |message: Value| {
        stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        stdin.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
    };
    send(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}))
    .await;
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
    for (id, (tool, arguments)) in calls.iter().enumerate() {
        send(
            json!({"jsonrpc": "2.0", "id": id + 1, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}}),
        )
        .await;
    }
    send(
        json!({"jsonrpc": "2.0", "id": calls.len() + 1, "method": "resources/read",
        "params": {"uri": "health://status"}}),
    )
    .await;
    // Every request answered (ids 0..=calls+1), then stdin closes and the server exits.
    let mut answered = 0;
    while answered < calls.len() + 2 {
        let Ok(Ok(Some(line))) =
            tokio::time::timeout(std::time::Duration::from_secs(30), stdout.next_line()).await
        else {
            panic!("no answer after {answered}: {lines:#?}");
        };
        let message: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON-RPC ({e}): {line}"));
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
        if message.get("id").is_some() {
            answered += 1;
        }
        lines.push(line);
    }
    drop(stdin);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait()).await;
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    (lines, stderr)
}

#[tokio::test]
async fn secrets_stay_out_of_stdout_results_and_trace_logs() {
    let registry = Registry::start().await;
    let repo = repo_with(FLEET);
    let key = registry.key(Role::Admin);
    let deployment = registry.deployment_id("llama-3-70b-instruct", "1.1.0");
    let calls = [
        ("list_models", json!({"limit": 2})),
        ("get_model", json!({"model_id": "no-such-model"})),
        (
            "create_model",
            json!({"name": "", "storage_path": "", "server_type": "vllm"}),
        ),
        (
            "get_deployment_logs",
            json!({"deployment_id": deployment, "lines": 5}),
        ),
        ("health_check", json!({})),
        ("list_release_configs", json!({})),
        ("get_machine_topology", json!({"machine": "../../etc"})),
    ];
    let url = registry.emu.base_url().to_owned();
    let repo_url = repo.url();
    let base = [
        ("REGISTRY_URL", url.as_str()),
        ("REGISTRY_CACHE_TTL_SECONDS", "0"),
        ("REGISTRY_RELEASE_CONFIG_REPO", repo_url.as_str()),
        ("REGISTRY_GITHUB_TOKEN", GITHUB_TOKEN),
        ("RUST_LOG", "trace"),
    ];
    // The right key, and a wrong one (401 answers) that must not be echoed either.
    for (secret, status) in [
        (key.as_str(), "404"),
        ("sk-wrong-but-secret-0123456789", "401"),
    ] {
        let mut env = base.to_vec();
        env.push(("REGISTRY_API_KEY", secret));
        let (stdout, stderr) = session(&env, &calls).await;
        assert!(
            stderr.lines().count() > 20,
            "trace logging should be on: {stderr}"
        );
        let everything = format!("{}\n{stderr}", stdout.join("\n"));
        for leaked in [secret, GITHUB_TOKEN] {
            assert!(
                !everything.contains(leaked),
                "{leaked} leaked:\n{}",
                everything
                    .lines()
                    .filter(|l| l.contains(leaked))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        // The calls did reach the registry (answers are not all "no key" errors).
        assert!(stdout.iter().any(|l| l.contains(status)), "{stdout:#?}");
    }
}

/// Credentials written into URLs (user-info, a token query parameter) stay out of every answer
/// and of trace logs too, including the errors of remotes that cannot be reached.
#[tokio::test]
async fn credentials_in_urls_stay_out_of_answers_and_trace_logs() {
    let registry = Registry::start().await;
    let key = registry.key(Role::Viewer);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let registry_url = registry
        .emu
        .base_url()
        .replacen("http://", "http://svc:pw_in_url_4567@", 1);
    let repo_url = format!("https://{closed}/rc.git?access_token=tok_in_query_1234&ref=main");
    let api_url = format!("http://api-user:ghe_pw_7890@{closed}/api/v3");
    let env = [
        ("REGISTRY_URL", registry_url.as_str()),
        ("REGISTRY_API_KEY", key.as_str()),
        ("REGISTRY_RELEASE_CONFIG_REPO", repo_url.as_str()),
        ("REGISTRY_REQUEST_TIMEOUT_SECONDS", "5"),
        ("REGISTRY_GITHUB_TOKEN", GITHUB_TOKEN),
        ("REGISTRY_GITHUB_API_URL", api_url.as_str()),
        ("REGISTRY_GITHUB_REPOSITORY", "acme/rc"),
        ("RUST_LOG", "trace"),
    ];
    let calls = [
        ("list_models", json!({"limit": 1})),
        ("health_check", json!({})),
        ("list_release_configs", json!({})),
        (
            "propose_release_config",
            json!({
                "machine": "gpu-a", "port": 8002, "template_name": "sglang",
                "model_name": "m", "model_path": "/m", "gpu_ids": [4],
                "tensor_parallel": 1, "description": "d",
            }),
        ),
    ];
    let (stdout, stderr) = session(&env, &calls).await;
    let everything = format!("{}\n{stderr}", stdout.join("\n"));
    for leaked in [
        "pw_in_url_4567",
        "tok_in_query_1234",
        "ghe_pw_7890",
        GITHUB_TOKEN,
        key.as_str(),
    ] {
        assert!(
            !everything.contains(leaked),
            "{leaked} leaked:\n{}",
            everything
                .lines()
                .filter(|l| l.contains(leaked))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // The answers did name the remote, redacted.
    assert!(
        everything.contains("rc.git?access_token=***"),
        "the remote is named, its token masked"
    );
}
