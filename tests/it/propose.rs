//! A production change as an agent makes it and as CI then checks it: the agent proposes a
//! deployment on free GPUs (a pull request on a new branch of the release-config remote); the
//! validator, run on that branch against `main` as CI runs it, finds nothing new; and a
//! colleague's branch that takes the same GPUs is warned about the open proposal (PENDING001).

use serde_json::{Value, json};

use crate::support::{Server, release_repo, validate};

const TOKEN: &str = "ghp_e2e_token_0123456789abcdef";

#[tokio::test]
async fn an_agents_proposal_passes_ci_and_holds_its_gpus_for_other_branches() {
    let remote = release_repo().bare_clone();
    let main = remote.head();
    let github = github_emulator::FakeGitHub::start(
        TOKEN,
        "acme",
        "release-configs",
        remote.path().to_owned(),
    )
    .await
    .unwrap_or_else(|e| panic!("GitHub double: {e}"));
    let server = Server::start(&[
        ("REGISTRY_RELEASE_CONFIG_REPO", remote.url()),
        ("REGISTRY_GITHUB_TOKEN", TOKEN.to_owned()),
        ("REGISTRY_GITHUB_API_URL", github.url.clone()),
        (
            "REGISTRY_GITHUB_REPOSITORY",
            "acme/release-configs".to_owned(),
        ),
    ])
    .await;

    // The agent looks for two free GPUs, as the production prompt tells it to.
    let topology = server
        .call_ok("get_machine_topology", json!({"machine": "gpu-rtx-01"}))
        .await;
    let free: Vec<u64> = topology["machines"][0]["free_gpus"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    assert!(free.len() >= 2, "{topology}");
    let gpus = &free[..2];
    let proposal = json!({
        "machine": "gpu-rtx-01",
        "port": 8100,
        "template_name": "vllm",
        "model_name": "qwen-2-7b",
        "model_path": "/models/qwen-2-7b",
        "gpu_ids": gpus,
        "tensor_parallel": 2,
        "description": "Qwen 2 7B for the support bot.",
    });
    let mut dry = proposal.clone();
    dry["dry_run"] = json!(true);
    let preview = server.call_ok("propose_release_config", dry).await;
    assert_eq!(preview["status"], "dry_run");
    let opened = server.call_ok("propose_release_config", proposal).await;
    assert_eq!(opened["status"], "pending_review");
    assert_eq!(opened["compose_file"], preview["compose_file"]);
    let branch = opened["branch"].as_str().unwrap_or_default().to_owned();
    assert_eq!(github.pulls().len(), 1);
    assert_eq!(remote.head(), main, "main is never written");
    server.stop().await;

    // CI on the pull request: the branch against main, diff-aware.
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = remote.path().to_string_lossy().into_owned();
    let ci = validate(
        &[
            &path, "--rev", &branch, "--base", "main", "--format", "json",
        ],
        home.path(),
    )
    .await;
    assert_eq!(ci.code, Some(0), "{}\n{}", ci.stdout, ci.stderr);
    let report = ci.json();
    let new_errors: Vec<&Value> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["new"] == true && f["severity"] == "error")
        .collect();
    assert!(new_errors.is_empty(), "{new_errors:?}");

    // A colleague's branch pins the same GPUs on another port; CI reads the open proposals.
    let work = remote.work_clone();
    let clash = format!(
        "services:\n  llm:\n    image: vllm/vllm-openai:v0.6.3\n    command: [\"--model\", \"/models/phi-3\", \"--tensor-parallel-size\", \"2\"]\n    ports: [\"8200:8000\"]\n    deploy:\n      resources:\n        reservations:\n          devices: [{{driver: nvidia, capabilities: [gpu], device_ids: [\"{}\", \"{}\"]}}]\n",
        gpus[0], gpus[1]
    );
    work.commit_on_branch(
        "colleague",
        &[("machines/gpu-rtx-01/8200/docker-compose.yml", &clash)],
        "phi-3 on rtx",
    );
    work.git(&[
        "fetch",
        "--quiet",
        "origin",
        "refs/heads/catapult/*:refs/heads/catapult/*",
    ]);
    let work_path = work.path().to_string_lossy().into_owned();
    let warned = validate(
        &[
            &work_path,
            "--rev",
            "colleague",
            "--pending",
            "refs/heads/catapult/*",
            "--format",
            "json",
        ],
        home.path(),
    )
    .await;
    let report = warned.json();
    let pending: Vec<&Value> = report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["code"] == "PENDING001")
        .collect();
    assert!(!pending.is_empty(), "{}", warned.stdout);
    assert!(
        pending
            .iter()
            .any(|f| f["message"].as_str().is_some_and(|m| m.contains(&branch))),
        "{pending:?}"
    );
}
