//! `propose_release_config` with `action: replace` and `remove`, through the real binary over
//! stdio, with a bare `file://` remote and the GitHub double: each kind of change, its refusals,
//! its idempotency, the pull request's text (snapshots), and the validator passing each resulting
//! branch diff-aware against main.

use github_emulator::FakeGitHub;
use release_config_validate::{Args, Environment, Exit, Format};
use serde_json::{Value, json};

use crate::support::{FLEET, FixtureRepo, as_refs, call_err, call_ok, repo_with, start};

const TOKEN: &str = "ghp_fake_token_for_tests_0123456789";

fn replace(machine: &str, port: u16, model: &str, gpus: &[u32]) -> Value {
    json!({
        "action": "replace",
        "machine": machine,
        "port": port,
        "template_name": "sglang",
        "model_name": model,
        "model_path": format!("/models/{model}"),
        "gpu_ids": gpus,
        "tensor_parallel": gpus.len(),
        "description": format!("Move {machine}:{port} to {model}."),
    })
}

fn remove(machine: &str, port: u16) -> Value {
    json!({
        "action": "remove",
        "machine": machine,
        "port": port,
        "description": format!("Drain {machine}:{port}."),
    })
}

fn add(port: u16, gpus: &[u32]) -> Value {
    json!({
        "machine": "gpu-a",
        "port": port,
        "template_name": "sglang",
        "model_name": "qwen-2-72b",
        "model_path": "/models/qwen-2-72b",
        "gpu_ids": gpus,
        "tensor_parallel": gpus.len(),
        "description": "More qwen.",
    })
}

async fn setup() -> (FixtureRepo, FakeGitHub, crate::support::Server) {
    let repo = repo_with(FLEET).bare_clone();
    let (fake, env) = crate::support::github_double(&repo, repo.url(), TOKEN).await;
    let server = start(&as_refs(&env), &[]).await;
    (repo, fake, server)
}

/// `release-config-validate PATH --rev BRANCH --base main`: no new error.
fn validator_passes(repo: &FixtureRepo, branch: &str) {
    let mut args = Args::for_path(repo.path());
    args.rev = Some(branch.to_owned());
    args.base = Some("main".to_owned());
    args.format = Format::Json;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let exit = release_config_validate::run(&args, &Environment::default(), &mut out, &mut err);
    assert_eq!(
        exit,
        Exit::Clean,
        "{branch}: {}{}",
        String::from_utf8_lossy(&err),
        String::from_utf8_lossy(&out)
    );
}

/// The text without what changes from run to run: commit ids (the fixture's commit times).
fn stable(text: &str, repo: &FixtureRepo) -> String {
    let head = repo.head();
    let mut text = text.replace(&head, "<base commit>");
    // The short id, however many digits it took.
    for digits in (7..=12).rev() {
        let short = format!("`{}`", head.get(..digits).unwrap_or_default());
        text = text.replace(&short, "`<base>`");
    }
    text
}

fn paths_on(repo: &FixtureRepo, branch: &str) -> Vec<String> {
    repo.git(&["ls-tree", "-r", "--name-only", branch])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_replacement_keeps_or_moves_the_gpus_and_its_branch_validates() {
    let (repo, fake, server) = setup().await;
    let client = &server.client;
    let head = repo.head();

    // gpu-b:9000 (TGI, llama-3-70b on GPUs 0-3) becomes SGLang with a newer model on the same GPUs.
    let kept = call_ok(
        client,
        "propose_release_config",
        replace("gpu-b", 9000, "llama-3.1-70b", &[0, 1, 2, 3]),
    )
    .await;
    assert_eq!(kept["status"], "pending_review", "{kept}");
    assert_eq!(kept["action"], "replace");
    let branch = kept["branch"].as_str().unwrap_or_default().to_owned();
    assert!(
        branch.starts_with("catapult/replace-gpu-b-9000-"),
        "{branch}"
    );
    assert_eq!(
        kept["compose_path"],
        "machines/gpu-b/9000/docker-compose.yml"
    );
    let pushed = repo.git(&[
        "show",
        &format!("{branch}:machines/gpu-b/9000/docker-compose.yml"),
    ]);
    assert_eq!(pushed, kept["compose_file"].as_str().unwrap_or_default());
    assert!(pushed.contains("llama-3.1-70b"), "{pushed}");
    assert_eq!(repo.head(), head, "main never moves");
    let pull = fake.pulls().into_iter().next().expect("a pull request");
    assert_eq!(
        pull.title,
        "Replace llama-3-70b on gpu-b:9000 with llama-3.1-70b (TP 4)"
    );
    insta::assert_snapshot!("replace_keeping_gpus_body", stable(&pull.body, &repo));
    validator_passes(&repo, &branch);

    // The same replacement again: the same pull request.
    let again = call_ok(
        client,
        "propose_release_config",
        replace("gpu-b", 9000, "llama-3.1-70b", &[0, 1, 2, 3]),
    )
    .await;
    assert_eq!(
        (again["existing"].clone(), again["pr_number"].clone()),
        (json!(true), json!(1))
    );
    assert_eq!(fake.pulls().len(), 1);

    // gpu-a:8001 (qwen-2-7b on GPUs 1 and 2, GPU 1 shared with 8000) moves to GPUs 2 and 3: its
    // old GPU 1 is no obstacle, and the shared GPU's finding disappears.
    let moved = call_ok(
        client,
        "propose_release_config",
        replace("gpu-a", 8001, "qwen-2.5-7b", &[2, 3]),
    )
    .await;
    assert_eq!(moved["pr_number"], 2, "{moved}");
    let after: Vec<&str> = moved["gpu_map"]["after"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(after.contains(&"GPU 1: gpu-a:8000/vllm"), "{after:?}");
    assert!(after.contains(&"GPU 3: gpu-a:8001/sglang"), "{after:?}");
    let moved_branch = moved["branch"].as_str().unwrap_or_default().to_owned();
    let pull = fake
        .pulls()
        .into_iter()
        .nth(1)
        .expect("a second pull request");
    assert!(
        pull.body.contains("Findings that disappear"),
        "{}",
        pull.body
    );
    insta::assert_snapshot!("replace_moving_gpus_body", stable(&pull.body, &repo));
    validator_passes(&repo, &moved_branch);
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn a_replacement_colliding_with_an_open_proposal_is_refused() {
    let (_repo, fake, server) = setup().await;
    let client = &server.client;
    // Open: a new deployment on GPUs 4 and 5.
    let open = call_ok(client, "propose_release_config", add(8002, &[4, 5])).await;
    assert_eq!(open["pr_number"], 1);

    let clash = call_err(
        client,
        "propose_release_config",
        replace("gpu-a", 8001, "qwen-2.5-7b", &[4, 5]),
    )
    .await;
    assert!(clash.contains("pull request #1"), "{clash}");
    assert!(clash.contains("GPU 4, 5 on gpu-a"), "{clash}");
    // The open proposal's tree holds 8001 as main does: that is not a claim of its own.
    let apart = call_ok(
        client,
        "propose_release_config",
        replace("gpu-a", 8001, "qwen-2.5-7b", &[2, 3]),
    )
    .await;
    assert_eq!(apart["pr_number"], 2, "{apart}");
    // A second, different change of the same deployment while one is open.
    let twice = call_err(
        client,
        "propose_release_config",
        replace("gpu-a", 8001, "qwen-2.5-7b", &[6, 7]),
    )
    .await;
    assert!(
        twice.contains("proposes a change of gpu-a:8001 too"),
        "{twice}"
    );
    let removal = call_err(client, "propose_release_config", remove("gpu-a", 8001)).await;
    assert!(
        removal.contains("proposes a change of gpu-a:8001 too"),
        "{removal}"
    );
    assert_eq!(fake.pulls().len(), 2);
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn a_removal_says_what_stops_serving_and_frees_nothing_before_the_merge() {
    let (repo, fake, server) = setup().await;
    let client = &server.client;

    // qwen-2-7b runs only on gpu-a:8001: its removal warns.
    let dry = call_ok(
        client,
        "propose_release_config",
        with_dry_run(remove("gpu-a", 8001)),
    )
    .await;
    assert_eq!(dry["status"], "dry_run");
    let warnings = dry["warnings"].to_string();
    assert!(
        warnings.contains("last deployment of `qwen-2-7b`"),
        "{warnings}"
    );

    let removed = call_ok(client, "propose_release_config", remove("gpu-a", 8001)).await;
    assert_eq!(removed["action"], "remove");
    let branch = removed["branch"].as_str().unwrap_or_default().to_owned();
    assert!(
        branch.starts_with("catapult/remove-gpu-a-8001-"),
        "{branch}"
    );
    let paths = paths_on(&repo, &branch);
    assert!(
        !paths.iter().any(|p| p.starts_with("machines/gpu-a/8001/")),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"machines/gpu-a/8000/docker-compose.yml".to_owned()),
        "{paths:?}"
    );
    // One claim: the port (one change per deployment at a time); its GPUs stay held.
    let claims = repo.git(&[
        "for-each-ref",
        "--format=%(refname)",
        "refs/catapult/claims/gpu-a/",
    ]);
    assert_eq!(
        claims.trim(),
        "refs/catapult/claims/gpu-a/port-8001",
        "{claims}"
    );
    let pull = fake.pulls().into_iter().next().expect("a pull request");
    assert_eq!(pull.title, "Remove qwen-2-7b from gpu-a:8001");
    insta::assert_snapshot!("remove_last_copy_body", stable(&pull.body, &repo));
    validator_passes(&repo, &branch);

    // The same removal again: the same pull request.
    let again = call_ok(client, "propose_release_config", remove("gpu-a", 8001)).await;
    assert_eq!(
        (again["existing"].clone(), again["pr_number"].clone()),
        (json!(true), json!(1))
    );

    // Its GPU 2 is not free while the removal is open.
    let early = call_err(client, "propose_release_config", add(8002, &[2, 3])).await;
    assert!(
        early.contains("GPU 2 is held by gpu-a:8001/sglang"),
        "{early}"
    );

    // llama-3-70b also runs on gpu-b:9000: no warning, the other copy named.
    let other = call_ok(client, "propose_release_config", remove("gpu-a", 8000)).await;
    assert_eq!(other["pr_number"], 2, "{other}");
    assert!(
        !other["warnings"].to_string().contains("last deployment"),
        "{other}"
    );
    let pull = fake
        .pulls()
        .into_iter()
        .nth(1)
        .expect("a second pull request");
    assert!(
        pull.body.contains("Still served by `gpu-b:9000`"),
        "{}",
        pull.body
    );
    validator_passes(&repo, other["branch"].as_str().unwrap_or_default());
    let _ = server.client.cancel().await;
}

fn with_dry_run(mut value: Value) -> Value {
    value["dry_run"] = json!(true);
    value
}

#[tokio::test]
async fn each_action_is_refused_where_it_does_not_apply() {
    let (repo, fake, server) = setup().await;
    let client = &server.client;
    let mut bare_replace = remove("gpu-a", 8001);
    bare_replace["action"] = json!("replace");
    let mut remove_with_template = remove("gpu-a", 8001);
    remove_with_template["template_name"] = json!("sglang");
    let mut upgrade = remove("gpu-a", 8001);
    upgrade["action"] = json!("upgrade");
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            add(8000, &[4, 5]),
            vec![
                "port 8000 on gpu-a is taken by gpu-a:8000 (llama-3-70b)",
                "action `replace`",
            ],
        ),
        (
            replace("gpu-a", 8005, "qwen-2.5-7b", &[4, 5]),
            vec![
                "there is no deployment on gpu-a:8005 to replace",
                "gpu-a:8000 (llama-3-70b), gpu-a:8001 (qwen-2-7b)",
                "action `add`",
            ],
        ),
        (
            remove("gpu-b", 9001),
            vec!["no deployment on gpu-b:9001 to remove", "gpu-b:9000"],
        ),
        (
            remove("gpu-z", 9001),
            vec!["machine `gpu-z` is not in the release-config repository"],
        ),
        // What 8001 holds is free for its replacement; what 8000 holds is not.
        (
            replace("gpu-a", 8001, "qwen-2.5-7b", &[0, 2]),
            vec![
                "GPU 0 is held by gpu-a:8000/vllm",
                "the best free set for TP 2 on gpu-a: GPUs 2, 3 linked by NVLink",
            ],
        ),
        (
            bare_replace,
            vec!["action `replace` needs template_name, model_name, model_path, tensor_parallel"],
        ),
        (
            remove_with_template,
            vec![
                "action `remove` takes only machine, port and description; leave out template_name",
            ],
        ),
        (
            upgrade,
            vec!["action `upgrade` is none of add, replace, remove"],
        ),
    ];
    for (arguments, expected) in cases {
        let message = call_err(client, "propose_release_config", arguments.clone()).await;
        for part in expected {
            assert!(
                message.contains(part),
                "{part:?} not in {message:?} ({arguments})"
            );
        }
    }
    assert!(fake.pulls().is_empty());
    let branches = repo.git(&["branch", "--list", "--format=%(refname:short)"]);
    assert_eq!(branches.trim(), "main");
    let _ = server.client.cancel().await;
}
