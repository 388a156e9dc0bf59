//! Both programs on one release-config repository: what CI's validator reports for a change is
//! what the MCP server shows an agent once that change is the branch it serves. And the server's
//! read-only mode against the registry.

use registry_emulator::Role;
use serde_json::{Value, json};

use crate::support::{Registry, Server, release_repo, str_of, validate};

const CONFLICT_BRANCH: &str = "bge-on-gpu-3";

/// An embedding model placed on GPU 3 of gpu-h100-01, which llama-70b (port 8000) already
/// holds as part of its tensor-parallel group 0-3.
const CONFLICTING_DEPLOYMENT: (&str, &str) = (
    "machines/gpu-h100-01/8003/docker-compose.yml",
    r#"services:
  bge-m3:
    image: vllm/vllm-openai:v0.6.3
    command: ["--model", "/models/BAAI/bge-m3", "--gpu-memory-utilization", "0.05"]
    ports:
      - "8003:8000"
    labels:
      catapult.model: bge-m3
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              capabilities: [gpu]
              device_ids: ["3"]
"#,
);

/// Error, warning and info counts of `findings` (the validator's JSON findings).
fn severity_counts<'a>(findings: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut counts = [0_u64; 3];
    for finding in findings {
        match finding["severity"].as_str() {
            Some("error") => counts[0] += 1,
            Some("warning") => counts[1] += 1,
            Some("info") => counts[2] += 1,
            other => panic!("unknown severity {other:?} in {finding}"),
        }
    }
    json!({"errors": counts[0], "warnings": counts[1], "infos": counts[2]})
}

#[tokio::test]
async fn validator_verdict_and_server_topology_agree_on_a_gpu_conflict() {
    let repo = release_repo();
    repo.commit_on_branch(
        CONFLICT_BRANCH,
        &[CONFLICTING_DEPLOYMENT],
        "bge-m3 on gpu-h100-01 GPU 3",
    );
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = repo.path().display().to_string();

    // CI on main: the production fleet is clean.
    let on_main = validate(
        &[&path, "--rev", "main", "--base", "main", "--format", "json"],
        home.path(),
    )
    .await;
    assert_eq!(on_main.code, Some(0), "{}", on_main.stderr);
    let main_report = on_main.json();
    assert_eq!(main_report["revision"]["commit"], repo.head().as_str());
    assert_eq!(main_report["summary"]["errors"], 0, "{main_report}");

    // CI on the branch: exactly one new finding, GPU001 on GPU 3, naming both deployments.
    let on_branch = validate(
        &[
            &path,
            "--rev",
            CONFLICT_BRANCH,
            "--base",
            "main",
            "--format",
            "json",
        ],
        home.path(),
    )
    .await;
    assert_eq!(on_branch.code, Some(1), "{}", on_branch.stderr);
    let report = on_branch.json();
    assert_eq!(
        report["revision"]["commit"],
        repo.rev_parse(CONFLICT_BRANCH).as_str()
    );
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    let new: Vec<&Value> = findings.iter().filter(|f| f["new"] == true).collect();
    assert_eq!(new.len(), 1, "{findings:#?}");
    assert_eq!(new[0]["code"], "GPU001");
    assert_eq!(new[0]["machine"], "gpu-h100-01");
    assert_eq!(
        new[0]["deployments"],
        json!(["gpu-h100-01:8000", "gpu-h100-01:8003"])
    );
    assert_eq!(
        report["summary"]["new"],
        json!({"errors": 1, "warnings": 0, "infos": 0})
    );

    // The server, serving that branch from a mirror of the repository.
    let server = Server::start(&[
        ("REGISTRY_RELEASE_CONFIG_REPO", repo.url()),
        ("REGISTRY_RELEASE_CONFIG_BRANCH", CONFLICT_BRANCH.to_owned()),
    ])
    .await;
    let topology = server
        .call_ok("get_machine_topology", json!({"machine": "gpu-h100-01"}))
        .await;
    let source = &topology["source"];
    assert_eq!(source["branch"], CONFLICT_BRANCH);
    assert_eq!(
        source["commit"]["commit"],
        repo.rev_parse(CONFLICT_BRANCH).as_str()
    );
    // Whole-revision counts match the validator's summary ...
    let summary = &report["summary"];
    assert_eq!(
        source["findings"],
        json!({
            "errors": summary["errors"],
            "warnings": summary["warnings"],
            "infos": summary["infos"],
        }),
        "{topology}"
    );
    // ... and the machine's counts match the validator's findings on that machine.
    let machine = &topology["machines"][0];
    assert_eq!(machine["machine"], "gpu-h100-01");
    assert_eq!(
        machine["finding_counts"],
        severity_counts(findings.iter().filter(|f| f["machine"] == "gpu-h100-01")),
        "{machine}"
    );
    let codes: Vec<&str> = machine["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| str_of(f, "/code"))
        .collect();
    assert_eq!(codes, ["GPU001"], "{machine}");
    let holders_of_3 = machine["gpu_holders"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["gpu"] == "3")
        .map(|h| h["holders"].clone());
    assert_eq!(
        holders_of_3,
        Some(json!([
            "gpu-h100-01:8000/llama-70b",
            "gpu-h100-01:8003/bge-m3"
        ])),
        "{machine}"
    );
    server.stop().await;
}

/// Tools that change the registry or production: none may be offered in read-only mode.
const WRITE_TOOLS: &[&str] = &[
    "create_model",
    "update_model",
    "delete_model",
    "create_version",
    "promote_version",
    "execute_deployment",
    "stop_deployment",
    "start_deployment",
    "restart_deployment",
    "trigger_docker_build",
    "run_benchmark",
    "propose_release_config",
];

#[tokio::test]
async fn read_only_server_offers_no_write_tool() {
    let registry = Registry::start().await;
    let mut env = registry.env(Role::Admin);
    env.push(("REGISTRY_READ_ONLY", "true".to_owned()));
    let server = Server::start(&env).await;

    let tools = server
        .client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("tools/list: {e}"));
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for write in WRITE_TOOLS {
        assert!(!names.contains(write), "{write} offered in read-only mode");
    }
    let not_read_only: Vec<&str> = tools
        .iter()
        .filter(|t| t.annotations.as_ref().and_then(|a| a.read_only_hint) != Some(true))
        .map(|t| t.name.as_ref())
        .collect();
    assert!(
        not_read_only.is_empty(),
        "tools without readOnlyHint: {not_read_only:?}"
    );
    // Reading still works, and reaches the registry.
    for read in ["list_models", "list_deployments", "get_machine_topology"] {
        assert!(names.contains(&read), "{read} missing: {names:?}");
    }
    let models = server.call_ok("list_models", json!({})).await;
    assert!(models["total"].as_u64().is_some_and(|n| n > 0), "{models}");
    assert!(
        registry.requests().iter().all(|r| r.starts_with("GET ")),
        "{:?}",
        registry.requests()
    );
    server.stop().await;
}
