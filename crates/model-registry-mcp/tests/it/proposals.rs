//! `propose_release_config` through the real binary over stdio: a `file://` Git remote it
//! fetches from and pushes to, and the GitHub double for pull requests. Also the double's own
//! contract, through the server's GitHub client.

use std::time::Duration;

use github_emulator::FakeGitHub;
use model_registry_mcp::{CreateError, GitHub};
use model_registry_mcp::{GitHubRepository, Secret};
use serde_json::{Value, json};

use crate::support::{
    FLEET, FixtureRepo, as_refs, call, call_err, call_ok, repo_with, start, text_of,
};

const TOKEN: &str = "ghp_fake_token_for_tests_0123456789";

fn proposal(port: u16, gpus: &[u32]) -> Value {
    json!({
        "machine": "gpu-a",
        "port": port,
        "template_name": "sglang",
        "model_name": "qwen-2-72b",
        "model_path": "/models/qwen-2-72b",
        "gpu_ids": gpus,
        "tensor_parallel": gpus.len(),
        "description": "Serve qwen-2-72b next to llama for the search team.",
    })
}

fn with(mut value: Value, key: &str, new: Value) -> Value {
    value[key] = new;
    value
}

/// The fleet as a bare repository: the remote the server fetches from and pushes to.
fn remote() -> FixtureRepo {
    repo_with(FLEET).bare_clone()
}

async fn github_env(repo: &FixtureRepo) -> (FakeGitHub, Vec<(&'static str, String)>) {
    crate::support::github_double(repo, repo.url(), TOKEN).await
}

fn branches(repo: &FixtureRepo) -> Vec<String> {
    repo.git(&["branch", "--list", "--format=%(refname:short)"])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_dry_run_renders_and_validates_and_pushes_nothing() {
    let repo = repo_with(FLEET);
    let head = repo.head();
    let server = start(
        &[("REGISTRY_RELEASE_CONFIG_REPO", repo.url().as_str())],
        &[],
    )
    .await;
    let answer = call_ok(
        &server.client,
        "propose_release_config",
        with(proposal(8002, &[4, 5]), "dry_run", json!(true)),
    )
    .await;
    assert_eq!(answer["status"], "dry_run");
    assert_eq!(answer["pr_url"], Value::Null);
    assert_eq!(answer["base_commit"], head.as_str());
    assert_eq!(
        answer["compose_path"],
        "machines/gpu-a/8002/docker-compose.yml"
    );
    let file = answer["compose_file"].as_str().unwrap_or_default();
    assert!(file.contains("catapult.model: \"qwen-2-72b\""), "{file}");
    assert!(file.contains("device_ids: [\"4\", \"5\"]"), "{file}");
    let after: Vec<&str> = answer["gpu_map"]["after"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(after.contains(&"GPU 4: gpu-a:8002/sglang"), "{after:?}");
    assert!(after.contains(&"GPU 3: free"), "{after:?}");
    // Main's own GPU001 (GPU 1 held twice) is not this proposal's: it does not refuse it.
    assert!(
        answer["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|f| f["severity"] != "error"),
        "{answer}"
    );
    let warnings = answer["warnings"].to_string();
    assert!(warnings.contains("REGISTRY_GITHUB_TOKEN"), "{warnings}");
    assert_eq!(branches(&repo), ["main"], "a dry run pushes nothing");
    assert_eq!(repo.head(), head);
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn a_proposal_opens_one_pull_request_and_counts_as_allocated() {
    let repo = remote();
    let head = repo.head();
    let (fake, env) = github_env(&repo).await;
    let server = start(&as_refs(&env), &[]).await;
    let client = &server.client;

    let result = call(client, "propose_release_config", proposal(8002, &[4, 5])).await;
    let text = text_of(&result);
    assert_eq!(result.is_error, Some(false), "{text}");
    let answer = result.structured_content.unwrap_or_default();
    assert_eq!(answer["status"], "pending_review", "{answer}");
    assert_eq!(answer["pr_number"], 1);
    assert_eq!(answer["existing"], false);
    let url = answer["pr_url"].as_str().unwrap_or_default();
    assert!(url.ends_with("/acme/release-configs/pull/1"), "{url}");
    let branch = answer["branch"].as_str().unwrap_or_default().to_owned();
    assert!(branch.starts_with("catapult/add-gpu-a-8002-"), "{branch}");

    // The branch is on the remote with exactly the rendered file; main is untouched.
    assert!(branches(&repo).contains(&branch), "{:?}", branches(&repo));
    assert_eq!(repo.head(), head, "main never moves");
    let pushed = repo.git(&[
        "show",
        &format!("{branch}:machines/gpu-a/8002/docker-compose.yml"),
    ]);
    assert_eq!(pushed, answer["compose_file"].as_str().unwrap_or_default());
    let parent = repo.git(&["rev-parse", &format!("{branch}^")]);
    assert_eq!(parent.trim(), head, "the proposal is one commit on main");

    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1);
    let pull = &pulls[0];
    assert_eq!(
        (pull.head.as_str(), pull.base.as_str()),
        (branch.as_str(), "main")
    );
    assert!(
        pull.title.contains("qwen-2-72b on gpu-a:8002"),
        "{}",
        pull.title
    );
    for part in [
        "Serve qwen-2-72b next to llama",
        "```yaml",
        "device_ids",
        "## Validation",
        "| GPU 4: free | GPU 4: gpu-a:8002/sglang |",
    ] {
        assert!(pull.body.contains(part), "{part:?} not in:\n{}", pull.body);
    }

    // The same proposal again: the open pull request, not a second one.
    let again = call_ok(client, "propose_release_config", proposal(8002, &[4, 5])).await;
    assert_eq!(again["existing"], true);
    assert_eq!(again["pr_number"], 1);
    assert_eq!(fake.pulls().len(), 1);

    // Its GPUs and its port are taken while it is open.
    let clash = call_err(client, "propose_release_config", proposal(8003, &[5, 6])).await;
    assert!(clash.contains("pull request #1"), "{clash}");
    assert!(clash.contains("pending allocations count"), "{clash}");
    let port_clash = call_err(client, "propose_release_config", proposal(8002, &[6, 7])).await;
    assert!(port_clash.contains("pull request #1"), "{port_clash}");
    assert_eq!(fake.pulls().len(), 1);

    // Once it is closed, they are free again.
    fake.close(1);
    let apart = call_ok(client, "propose_release_config", proposal(8003, &[5, 6])).await;
    assert_eq!(apart["pr_number"], 2);

    for output in [text, again.to_string(), clash, apart.to_string()] {
        assert!(!output.contains(TOKEN), "the token leaked: {output}");
    }
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn refusals_say_what_is_wrong_and_what_fits() {
    let repo = remote();
    let (fake, env) = github_env(&repo).await;
    let server = start(&as_refs(&env), &[]).await;
    let client = &server.client;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            proposal(8000, &[4, 5]),
            vec!["port 8000 on gpu-a is taken by gpu-a:8000 (llama-3-70b)"],
        ),
        (
            proposal(8002, &[1, 3]),
            vec![
                "GPU 1 is held by gpu-a:8000/vllm, gpu-a:8001/sglang",
                "the best free set for TP 2 on gpu-a: GPUs 4, 5 linked by NVLink",
            ],
        ),
        (
            proposal(8002, &[8, 9]),
            vec!["GPU 8,9 not on gpu-a (it has 8 GPU(s): 0-7)"],
        ),
        (
            with(proposal(8002, &[4, 5]), "tensor_parallel", json!(4)),
            vec!["tensor_parallel 4 needs 4 GPU(s), gpu_ids names 2"],
        ),
        (
            with(proposal(8002, &[4, 5]), "machine", json!("../../etc")),
            vec!["invalid proposal", "machine"],
        ),
        (
            with(proposal(8002, &[4, 5]), "machine", json!("gpu-c")),
            vec!["machine `gpu-c` is not in the release-config repository"],
        ),
        (
            with(proposal(8002, &[4, 5]), "template_name", json!("nope")),
            vec!["unknown template `nope`", "custom", "sglang", "tgi", "vllm"],
        ),
        // The repository's own vllm template wins over the shipped one, and renders nothing.
        (
            with(proposal(8002, &[4, 5]), "template_name", json!("vllm")),
            vec!["claims no GPUs"],
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
    assert_eq!(branches(&repo), ["main"]);
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn a_github_outage_after_the_push_is_recovered_by_asking_again() {
    let repo = remote();
    let (fake, env) = github_env(&repo).await;
    let server = start(&as_refs(&env), &[]).await;
    fake.fail_next_create(502);
    let message = call_err(
        &server.client,
        "propose_release_config",
        proposal(8002, &[4, 5]),
    )
    .await;
    assert!(message.contains("was pushed"), "{message}");
    assert!(
        message.contains(&format!(
            "GitHub answered 502 to POST {}/repos/acme/release-configs/pulls: Server Error",
            fake.url
        )),
        "{message}"
    );
    assert!(
        message.contains("git push origin --delete catapult/"),
        "the way to clean up: {message}"
    );
    assert!(!message.contains(TOKEN));
    assert!(fake.pulls().is_empty());
    let answer = call_ok(
        &server.client,
        "propose_release_config",
        proposal(8002, &[4, 5]),
    )
    .await;
    assert_eq!(answer["pr_number"], 1, "the pushed branch is reused");
    assert_eq!(fake.pulls().len(), 1);
    let _ = server.client.cancel().await;
}

/// Each way GitHub refuses to open the pull request, through the real binary: the message
/// names GitHub, the request, the status and GitHub's words, says what the status means and
/// what is left behind; asking again once GitHub answers opens the pull request on the pushed
/// branch.
#[tokio::test]
async fn github_refusals_say_what_failed_and_what_is_left() {
    let repo = remote();
    let (fake, env) = github_env(&repo).await;
    let server = start(&as_refs(&env), &[]).await;
    for (status, meaning) in [
        (401, "REGISTRY_GITHUB_TOKEN is missing, expired or revoked"),
        (403, "lacks `pull_requests: write`"),
        (404, "cannot reach this repository"),
        (429, "rate limit"),
        (500, "Server Error"),
    ] {
        fake.fail_next_create(status);
        let message = call_err(
            &server.client,
            "propose_release_config",
            proposal(8002, &[4, 5]),
        )
        .await;
        let answered = format!(
            "GitHub answered {status} to POST {}/repos/acme/release-configs/pulls",
            fake.url
        );
        assert!(message.contains(&answered), "{status}: {message}");
        assert!(message.contains(meaning), "{status}: {message}");
        assert!(message.contains("is left there"), "{status}: {message}");
        assert!(!message.contains(TOKEN), "{status}: {message}");
        assert!(fake.pulls().is_empty(), "{status}");
    }
    // A 403 is a rate limit or a permission, as GitHub's own words say.
    for (message, meaning) in [
        (
            "API rate limit exceeded for installation ID 4242.",
            "GitHub's rate limit: retry once it resets",
        ),
        (
            "Resource not accessible by integration",
            "lacks `pull_requests: write`",
        ),
    ] {
        fake.fail_next_create_with(403, message);
        let refused = call_err(
            &server.client,
            "propose_release_config",
            proposal(8002, &[4, 5]),
        )
        .await;
        assert!(refused.contains("answered 403 to POST"), "{refused}");
        assert!(refused.contains(message), "GitHub's words: {refused}");
        assert!(refused.contains(meaning), "{refused}");
    }
    let answer = call_ok(
        &server.client,
        "propose_release_config",
        proposal(8002, &[4, 5]),
    )
    .await;
    assert_eq!(answer["pr_number"], 1, "{answer}");
    let _ = server.client.cancel().await;
}

/// GitHub accepts the connection and drops it without an answer: the proposal is refused before
/// anything is pushed or claimed, naming GitHub and the request.
#[tokio::test]
async fn a_dropped_github_connection_refuses_before_anything_is_pushed() {
    let repo = remote();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        // Read the request's first bytes, then hang up.
        for mut stream in listener.incoming().flatten() {
            let mut buffer = [0u8; 512];
            let _ = std::io::Read::read(&mut stream, &mut buffer);
            drop(stream);
        }
    });
    let api = format!("http://{address}");
    let env = [
        ("REGISTRY_RELEASE_CONFIG_REPO", repo.url()),
        ("REGISTRY_GITHUB_TOKEN", TOKEN.to_owned()),
        ("REGISTRY_GITHUB_API_URL", api.clone()),
        (
            "REGISTRY_GITHUB_REPOSITORY",
            "acme/release-configs".to_owned(),
        ),
    ];
    let server = start(&as_refs(&env), &[]).await;
    let message = call_err(
        &server.client,
        "propose_release_config",
        proposal(8002, &[4, 5]),
    )
    .await;
    assert!(
        message.contains(&format!(
            "GitHub could not be reached for GET {api}/repos/acme/release-configs/pulls"
        )),
        "{message}"
    );
    assert!(message.contains("nothing was proposed"), "{message}");
    assert!(!message.contains(TOKEN), "{message}");
    assert_eq!(branches(&repo), ["main"], "nothing pushed");
    let claims = repo.git(&["for-each-ref", "refs/catapult/"]);
    assert!(claims.is_empty(), "nothing claimed: {claims}");
    let _ = server.client.cancel().await;
}

/// Two agents send the same proposal at the same moment: the one that opens the pull request
/// second gets GitHub's 422 "already exists", and answers with that pull request.
#[tokio::test]
async fn the_same_proposal_from_two_agents_gets_the_one_pull_request() {
    let repo = remote();
    let (fake, env) = github_env(&repo).await;
    let server = start(&as_refs(&env), &[]).await;
    fake.race_next_create();
    let answer = call_ok(
        &server.client,
        "propose_release_config",
        proposal(8002, &[4, 5]),
    )
    .await;
    assert_eq!(answer["existing"], true, "{answer}");
    assert_eq!(answer["pr_number"], 1, "{answer}");
    assert_eq!(answer["status"], "pending_review", "{answer}");
    assert_eq!(fake.pulls().len(), 1, "no second pull request");
    let _ = server.client.cancel().await;
}

/// Branch-only mode: without a GitHub token, a proposal still commits and pushes its branch
/// (same checks, same claims), says that no pull request was opened, and later proposals count
/// that branch as an open proposal.
#[tokio::test]
async fn without_github_a_proposal_pushes_its_branch_only() {
    let repo = remote();
    let head = repo.head();
    let server = start(
        &[("REGISTRY_RELEASE_CONFIG_REPO", repo.url().as_str())],
        &[],
    )
    .await;
    let client = &server.client;
    let answer = call_ok(client, "propose_release_config", proposal(8002, &[4, 5])).await;
    assert_eq!(answer["status"], "branch_pushed", "{answer}");
    assert_eq!(answer["pr_url"], Value::Null);
    assert_eq!(answer["existing"], false);
    let next = answer["next_step"].as_str().unwrap_or_default();
    assert!(next.contains("No pull request was opened"), "{next}");
    assert!(next.contains("REGISTRY_GITHUB_TOKEN"), "why: {next}");
    assert!(next.contains("into `main`"), "{next}");
    let branch = answer["branch"].as_str().unwrap_or_default().to_owned();
    assert!(branches(&repo).contains(&branch), "{:?}", branches(&repo));
    assert_eq!(repo.head(), head, "main never moves");
    let claims = repo.git(&[
        "for-each-ref",
        "--format=%(refname)",
        "refs/catapult/claims/",
    ]);
    assert_eq!(
        claims.lines().collect::<Vec<_>>(),
        [
            "refs/catapult/claims/gpu-a/gpu-4",
            "refs/catapult/claims/gpu-a/gpu-5",
            "refs/catapult/claims/gpu-a/port-8002",
        ],
        "its claims are on the remote"
    );
    let claimed = repo.git(&["rev-parse", "refs/catapult/claims/gpu-a/gpu-4^"]);
    let pushed = repo.git(&["rev-parse", &branch]);
    assert_eq!(
        claimed, pushed,
        "a claim commit sits on the proposal commit"
    );

    // The same proposal again: the branch that is there.
    let again = call_ok(client, "propose_release_config", proposal(8002, &[4, 5])).await;
    assert_eq!(again["status"], "branch_pushed", "{again}");
    assert_eq!(again["existing"], true, "{again}");
    // The pushed branch is an open proposal: its GPUs are taken.
    let clash = call_err(client, "propose_release_config", proposal(8003, &[5, 6])).await;
    assert!(clash.contains(&format!("branch `{branch}`")), "{clash}");
    let dry = call_ok(
        client,
        "propose_release_config",
        with(proposal(8004, &[6, 7]), "dry_run", json!(true)),
    )
    .await;
    assert!(
        dry["warnings"]
            .to_string()
            .contains("pushes its branch only"),
        "{dry}"
    );

    let _ = server.client.cancel().await;
}

/// The double against the contract, through the server's client: paging by `Link`, GitHub's
/// 401 and 422 answers, and only this tool's open branches counted.
#[tokio::test]
async fn the_github_double_answers_as_github_does() {
    let repo = repo_with(FLEET);
    for branch in ["catapult/a", "catapult/b", "catapult/c", "feature/docs"] {
        repo.git(&["branch", branch]);
    }
    let fake = FakeGitHub::start(TOKEN, "acme", "rc", repo.path().to_owned())
        .await
        .unwrap_or_else(|e| panic!("GitHub double: {e}"));
    fake.set_page_cap(2);
    let client = |token: &str| {
        GitHub::new(
            &fake.url,
            &Secret::new(token.to_owned()),
            GitHubRepository::parse("acme/rc").unwrap_or_else(|| panic!("repository")),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let github = client(TOKEN);
    for head in ["catapult/a", "feature/docs", "catapult/b", "catapult/c"] {
        let pr = github
            .create(&format!("t {head}"), head, "main", "body")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            pr.url.ends_with(&format!("/pull/{}", pr.number)),
            "{}",
            pr.url
        );
        assert_eq!(pr.head_ref, head);
    }
    let open = github
        .open_proposals()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let heads: Vec<&str> = open.iter().map(|p| p.head_ref.as_str()).collect();
    assert_eq!(
        heads,
        ["catapult/a", "catapult/b", "catapult/c"],
        "all pages, own branches only"
    );
    fake.close(3);
    assert_eq!(github.open_proposals().await.map(|o| o.len()), Ok(2));

    let duplicate = github.create("again", "catapult/a", "main", "").await;
    let Err(CreateError::AlreadyExists(duplicate)) = duplicate else {
        panic!("a second pull request for one head is GitHub's 422 already-exists: {duplicate:?}");
    };
    assert!(duplicate.contains("422 to POST"), "{duplicate}");
    assert!(duplicate.contains("Validation Failed"), "{duplicate}");
    assert!(
        duplicate.contains("A pull request already exists for acme:catapult/a"),
        "{duplicate}"
    );
    let missing = github.create("x", "catapult/none", "main", "").await;
    assert!(
        matches!(&missing, Err(CreateError::Failed(m)) if m.contains("422")),
        "{missing:?}"
    );

    let wrong = client("ghp_wrong")
        .open_proposals()
        .await
        .err()
        .unwrap_or_default();
    assert!(wrong.contains("GitHub answered 401 to GET"), "{wrong}");
    assert!(wrong.contains("Bad credentials"), "{wrong}");
    assert!(!wrong.contains("ghp_wrong"), "{wrong}");
}
