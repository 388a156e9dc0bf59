//! `find_placement` over MCP against a fleet served as a local Git remote: ranked placements,
//! the model read from production's labels, open proposals' claims left out, bad arguments
//! named.

use serde_json::{Value, json};

use registry_emulator::Role;

use crate::emu::Registry;
use crate::support::{FixtureRepo, Server, as_refs, call_err, call_ok, repo_with, start};

/// A compose file serving `model` on `gpus` at `port`, with `labels` (YAML lines).
fn compose(model: &str, port: u16, gpus: &[u32], labels: &str) -> String {
    let ids: Vec<String> = gpus.iter().map(|g| format!("\"{g}\"")).collect();
    format!(
        "services:\n  vllm:\n    image: vllm/vllm-openai:v0.8.5\n    labels:\n      \
         catapult.model: {model}\n      catapult.model_path: /models/{model}\n{labels}    \
         command: [\"--model\", \"/models/{model}\", \"--tensor-parallel-size\", \"{tp}\"]\n    \
         ports: [\"{port}:8000\"]\n    deploy:\n      resources:\n        reservations:\n          \
         devices:\n            - driver: nvidia\n              capabilities: [gpu]\n              \
         device_ids: [{}]\n",
        ids.join(", "),
        tp = gpus.len()
    )
}

const PAIRS: &str = "gpus: 4\ngpu_model: NVIDIA H100 PCIe\ngpu_memory_gb: 85.5\ninterconnect: pcie\nlinks:\n  - [X, NV12, SYS, SYS]\n  - [NV12, X, SYS, SYS]\n  - [SYS, SYS, X, NV12]\n  - [SYS, SYS, NV12, X]\n";
const SWITCH: &str = "gpus: 8\ngpu_model: NVIDIA H100 80GB HBM3\ngpu_memory_gb: 85.5\ninterconnect: nvlink\nlabels: {pool: prod}\n";
const SOCKETS: &str = "gpus: 8\ngpu_model: NVIDIA L40S\ngpu_memory_gb: 48.3\ninterconnect: pcie\nnuma_domains: [[0, 1, 2, 3], [4, 5, 6, 7]]\nlabels: {pool: batch}\n";

/// Three machine types; llama-3-70b runs on `switch` with its size and heads labelled.
fn fleet() -> FixtureRepo {
    let llama = compose(
        "llama-3-70b",
        8000,
        &[0, 1, 2, 3],
        "      catapult.params_b: \"70.6\"\n      catapult.num_attention_heads: \"64\"\n      \
         catapult.num_kv_heads: \"8\"\n",
    );
    let small = compose("qwen-2-7b", 8001, &[4, 5], "");
    let on_pairs = compose("bge-m3", 8000, &[0], "");
    let files = [
        ("machines/pairs/machine.yaml", PAIRS.to_owned()),
        ("machines/pairs/8000/docker-compose.yml", on_pairs),
        ("machines/switch/machine.yaml", SWITCH.to_owned()),
        ("machines/switch/8000/docker-compose.yml", llama),
        ("machines/switch/8001/docker-compose.yml", small),
        ("machines/sockets/machine.yaml", SOCKETS.to_owned()),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    repo_with(&refs).bare_clone()
}

/// The server over `repo` as its release-config remote (branch-only: no GitHub).
async fn serve(repo: &FixtureRepo) -> Server {
    start(
        &[("REGISTRY_RELEASE_CONFIG_REPO", repo.url().as_str())],
        &[],
    )
    .await
}

/// `machine [gpus] TP n port p` of each placement, best first.
fn ranked(answer: &Value) -> Vec<String> {
    answer["placements"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let gpus: Vec<String> = p["gpus"]
                .as_array()
                .into_iter()
                .flatten()
                .map(Value::to_string)
                .collect();
            format!(
                "{} [{}] TP {} port {}",
                p["machine"].as_str().unwrap_or_default(),
                gpus.join(","),
                p["tp"],
                p["port"]
            )
        })
        .collect()
}

fn reasons(answer: &Value, rank: usize) -> String {
    answer["placements"][rank]["reasons"].to_string()
}

#[tokio::test]
async fn placements_are_ranked_with_reasons_and_claims_are_left_out() {
    let repo = fleet();
    let server = serve(&repo).await;
    let client = &server.client;

    // The model by name: its size and heads come from production's labels. TP 2 puts 70.6 GB
    // of weights on each GPU, which an L40S (48.3 GB) cannot hold.
    let tp2 = call_ok(
        client,
        "find_placement",
        json!({"model": "llama-3-70b", "tensor_parallel": 2}),
    )
    .await;
    assert_eq!(tp2["model"]["params_b"], 70.6, "{tp2}");
    assert_eq!(tp2["model"]["num_kv_heads"], 8);
    assert_eq!(tp2["model"]["deployments"], json!(["switch:8000"]));
    let offered = ranked(&tp2);
    assert_eq!(offered.len(), 2, "{offered:?}");
    assert!(
        offered.contains(&"pairs [2,3] TP 2 port 8001".to_owned()),
        "the NVLink-bridged pair, not GPU 1 across the pairs: {offered:?}"
    );
    assert!(
        offered.contains(&"switch [6,7] TP 2 port 8002".to_owned()),
        "{offered:?}"
    );
    assert_eq!(
        tp2["excluded"]["no valid TP fits the free GPUs"], 1,
        "{tp2}"
    );
    let pairs_rank = usize::from(offered[0].starts_with("switch"));
    let pairs = reasons(&tp2, pairs_rank);
    assert!(pairs.contains("GPUs 2, 3 linked by NVLink"), "{pairs}");
    assert!(pairs.contains("70.6 GB of weights per GPU"), "{pairs}");
    assert!(
        pairs.contains("shares the machine with pairs:8000"),
        "{pairs}"
    );
    assert!(
        tp2["placements"][1]["ranked_below_because"].is_string(),
        "{tp2}"
    );

    // Any valid TP: the L40S machine takes it on 4 GPUs of one socket, and ranks last for it.
    let any = call_ok(client, "find_placement", json!({"model": "llama-3-70b"})).await;
    let offered = ranked(&any);
    assert_eq!(offered.len(), 3, "{offered:?}");
    assert_eq!(offered[2], "sockets [0,1,2,3] TP 4 port 8000");
    let below = any["placements"][2]["ranked_below_because"].to_string();
    assert!(below.contains("it needs TP 4"), "{below}");

    // Labels and GPU model narrow the fleet.
    let prod = call_ok(
        client,
        "find_placement",
        json!({"params_b": 8, "labels": ["pool=prod"]}),
    )
    .await;
    assert_eq!(ranked(&prod), ["switch [6] TP 1 port 8002"]);
    assert_eq!(prod["excluded"]["labels differ"], 2, "{prod}");
    let l40s = call_ok(
        client,
        "find_placement",
        json!({"params_b": 8, "gpu_model": "l40s", "tensor_parallel": 2}),
    )
    .await;
    assert_eq!(ranked(&l40s), ["sockets [0,1] TP 2 port 8000"]);

    // A proposal without gpu_ids takes the planner's best set: the dry run says which and why.
    let proposal = json!({
        "machine": "pairs", "port": 8001, "template_name": "sglang",
        "model_name": "qwen-2-7b", "model_path": "/models/qwen-2-7b",
        "tensor_parallel": 2,
        "description": "Serve qwen next to bge for the search team.",
    });
    let mut dry = proposal.clone();
    dry["dry_run"] = json!(true);
    let dry = call_ok(client, "propose_release_config", dry).await;
    let chosen = dry["gpus_chosen"].as_str().unwrap_or_default();
    assert!(
        chosen.starts_with("GPUs 2, 3 (gpu_ids left out: the best free set)")
            && chosen.contains("linked by NVLink (NV12)"),
        "{dry}"
    );
    assert!(
        dry["gpu_map"]["after"]
            .to_string()
            .contains("GPU 3: pairs:8001"),
        "{dry}"
    );

    // Made (branch only: no GitHub), it claims pairs' GPUs 2 and 3 and port 8001: from then
    // on they are never offered, and the reasons say who holds them.
    let proposed = call_ok(client, "propose_release_config", proposal.clone()).await;
    assert_eq!(proposed["status"], "branch_pushed", "{proposed}");
    // Asked again, it chooses the same set (its own claims and branch are not in its way):
    // the same proposal, not a second one.
    let again = call_ok(client, "propose_release_config", proposal).await;
    assert_eq!(
        (again["existing"].clone(), again["branch"].clone()),
        (json!(true), proposed["branch"].clone()),
        "{again}"
    );
    assert!(
        repo.git(&[
            "for-each-ref",
            "--format=%(refname)",
            "refs/catapult/claims/"
        ])
        .contains("refs/catapult/claims/pairs/gpu-3"),
        "the chosen GPUs are claimed"
    );
    let branch = proposed["branch"].as_str().unwrap_or_default().to_owned();
    let after = call_ok(
        client,
        "find_placement",
        json!({"params_b": 8, "tensor_parallel": 1, "limit": 10}),
    )
    .await;
    let offered = ranked(&after);
    assert!(
        offered.contains(&"pairs [1] TP 1 port 8002".to_owned()),
        "GPU 1 is free; port 8001 is claimed: {offered:?}"
    );
    let rank = offered
        .iter()
        .position(|p| p.starts_with("pairs"))
        .unwrap_or_default();
    let held = reasons(&after, rank);
    assert!(
        held.contains(&format!("GPUs 2, 3 are claimed by branch `{branch}`")),
        "{held}"
    );
    assert_eq!(after["placements"][rank]["held_elsewhere"], json!([2, 3]));
    let tp2_after = call_ok(
        client,
        "find_placement",
        json!({"params_b": 8, "tensor_parallel": 2}),
    )
    .await;
    assert!(
        !ranked(&tp2_after).iter().any(|p| p.starts_with("pairs")),
        "{tp2_after}"
    );
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn bad_arguments_are_named_all_at_once() {
    let repo = fleet();
    let server = serve(&repo).await;
    let text = call_err(
        &server.client,
        "find_placement",
        json!({"labels": ["pool"], "dtype": "fp5", "params_b": -3, "memory_utilization": 1.5}),
    )
    .await;
    for expected in [
        "label \"pool\" is not `key=value`",
        "dtype \"fp5\" is not known",
        "params_b must be a positive number",
        "memory_utilization must be in [0.01, 1]",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    // Size unknown: placed by GPU count alone, and the answer says memory was not checked.
    let size_unknown = call_ok(&server.client, "find_placement", json!({"model": "bge-m3"})).await;
    let warnings = size_unknown["warnings"].to_string();
    assert!(warnings.contains("memory is not checked"), "{warnings}");
    let _ = server.client.cancel().await;
}

/// A model production does not run: its size and heads come from the registry's record
/// (metadata the operator keeps there), its dtype from its newest version's quantization; TP
/// must split its heads; metadata of the wrong kind is left out and said.
#[tokio::test]
async fn the_registry_record_says_what_production_does_not() {
    let registry = Registry::start().await;
    let repo = fleet();
    let mut env = registry.env(Role::Admin);
    env.push(("REGISTRY_RELEASE_CONFIG_REPO", repo.url()));
    let server = start(&as_refs(&env), &[]).await;
    let client = &server.client;
    let qwen = registry.model_id("qwen2.5-7b-instruct");
    let metadata = json!({"params_b": 7.6, "num_attention_heads": 28, "num_key_value_heads": 4});
    call_ok(
        client,
        "update_model",
        json!({"model_id": qwen, "metadata": metadata}),
    )
    .await;
    let answer = call_ok(
        client,
        "find_placement",
        json!({"model": "qwen2.5-7b-instruct"}),
    )
    .await;
    let model = &answer["model"];
    assert_eq!(
        (
            model["params_b"].clone(),
            model["num_attention_heads"].clone(),
            model["num_kv_heads"].clone(),
            model["dtype"].clone()
        ),
        (json!(7.6), json!(28), json!(4), json!("bf16")),
        "{answer}"
    );
    let basis = model["basis"].to_string();
    assert!(
        basis.contains("the registry's record of model \\\"qwen2.5-7b-instruct\\\"")
            && basis.contains("quantization of its version"),
        "{basis}"
    );
    assert_eq!(answer["placements"][0]["tp"], 1, "{answer}");

    // TP 3 splits neither 28 heads nor 4 KV heads: nowhere.
    let tp3 = call_ok(
        client,
        "find_placement",
        json!({"model": "qwen2.5-7b-instruct", "tensor_parallel": 3}),
    )
    .await;
    assert_eq!(tp3["placements"], json!([]), "{tp3}");
    assert_eq!(
        tp3["excluded"]["no valid TP fits the free GPUs"], 3,
        "{tp3}"
    );

    // Metadata of the wrong kind is data: left out, said, and the name's estimate used.
    call_ok(
        client,
        "update_model",
        json!({"model_id": qwen, "metadata": {"params_b": "lots"}}),
    )
    .await;
    let wrong = call_ok(
        client,
        "find_placement",
        json!({"model": "qwen2.5-7b-instruct"}),
    )
    .await;
    assert!(
        wrong["warnings"]
            .to_string()
            .contains("metadata `params_b`"),
        "{wrong}"
    );
    assert_eq!(wrong["model"]["params_b"], 7.0, "{wrong}");
    let _ = server.client.cancel().await;
}

/// A fleet where many machines fit: the answer keeps within its budget, says how many
/// placements it left out and how to ask for fewer.
#[tokio::test]
async fn a_long_answer_is_cut_to_its_budget_and_says_so() {
    let mut files: Vec<(String, String)> = Vec::new();
    for m in 0..120 {
        files.push((
            format!("machines/node-{m:03}/machine.yaml"),
            SWITCH.to_owned(),
        ));
        for (port, gpus) in [(8000u16, [0u32, 1]), (8001, [2, 3]), (8002, [4, 5])] {
            files.push((
                format!("machines/node-{m:03}/{port}/docker-compose.yml"),
                compose(&format!("model-{port}"), port, &gpus, ""),
            ));
        }
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let repo = repo_with(&refs).bare_clone();
    let server = serve(&repo).await;
    let answer = call_ok(
        &server.client,
        "find_placement",
        json!({"params_b": 8, "tensor_parallel": 2, "limit": 100}),
    )
    .await;
    let shown = answer["placements"].as_array().map_or(0, Vec::len);
    assert!((1..100).contains(&shown), "{shown} placements");
    assert_eq!(answer["candidates"], 120);
    let warnings = answer["warnings"].to_string();
    assert!(
        warnings.contains(&format!("{} placement(s) left out", 100 - shown))
            && warnings.contains("smaller limit"),
        "{warnings}"
    );
    assert!(
        answer.to_string().len() < 40 * 1024,
        "{} bytes",
        answer.to_string().len()
    );
    let _ = server.client.cancel().await;
}

/// With GitHub, a proposal's claims are held while its pull request is open, named by it; once
/// it is closed, they stay held only as a young claim (within the grace period), named so.
#[tokio::test]
async fn claims_are_named_by_their_open_pull_request() {
    const TOKEN: &str = "ghp_fake_token_for_tests_0123456789";
    let repo = fleet();
    let (github, env) = crate::support::github_double(&repo, repo.url(), TOKEN).await;
    let server = start(&as_refs(&env), &[]).await;
    let client = &server.client;
    let proposed = call_ok(
        client,
        "propose_release_config",
        json!({
            "machine": "pairs", "port": 8001, "template_name": "sglang",
            "model_name": "qwen-2-7b", "model_path": "/models/qwen-2-7b",
            "tensor_parallel": 2,
            "description": "Serve qwen next to bge for the search team.",
        }),
    )
    .await;
    assert_eq!(proposed["status"], "pending_review", "{proposed}");
    let number = proposed["pr_number"].as_u64().unwrap_or_default();
    let ask = json!({"params_b": 8, "tensor_parallel": 1, "labels": [], "limit": 10});
    let reasons_on_pairs = |answer: &Value| -> String {
        answer["placements"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["machine"] == "pairs")
            .map(|p| p["reasons"].to_string())
            .unwrap_or_default()
    };
    let open = call_ok(client, "find_placement", ask.clone()).await;
    let held = reasons_on_pairs(&open);
    assert!(
        held.contains(&format!("GPUs 2, 3 are claimed by pull request #{number}")),
        "{held}"
    );
    assert!(!open.to_string().contains(TOKEN), "the token leaked");

    github.close(number);
    let closed = call_ok(client, "find_placement", ask).await;
    let held = reasons_on_pairs(&closed);
    assert!(
        held.contains("are claimed by proposal `catapult/")
            && held.contains("not yet a pull request"),
        "{held}"
    );
    let _ = server.client.cancel().await;
}
