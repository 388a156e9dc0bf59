//! The release-config remote over smart HTTPS (`git http-backend` behind a TLS server of the
//! test's own): the token goes to the configured remote, in its `Authorization` header, for
//! fetches and pushes alike, and to no one else, not even after a redirect.

use serde_json::json;
use test_support::smart_http::{Behaviour, SmartHttp, basic_authorization};

use crate::support::{FLEET, FixtureRepo, as_refs, call_err, call_ok, repo_with, start};

const TOKEN: &str = "ghp_smart_http_token_0123456789abcdefghij";

/// The directory `git http-backend` serves and the repository's name in it.
fn served(repo: &FixtureRepo) -> (std::path::PathBuf, String) {
    let path = repo.path();
    let root = path.parent().unwrap_or(path).to_path_buf();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (root, name)
}

fn https(credentials: Option<(&str, &str)>, redirect_to: Option<String>) -> Behaviour {
    Behaviour {
        tls: true,
        credentials: credentials.map(|(user, password)| (user.to_owned(), password.to_owned())),
        redirect_to,
        ..Behaviour::default()
    }
}

#[tokio::test]
async fn the_token_goes_to_the_https_remote_for_fetch_and_push_and_nowhere_else() {
    let repo = repo_with(FLEET).bare_clone();
    let (root, name) = served(&repo);
    let remote = SmartHttp::serve(&root, https(Some(("x-access-token", TOKEN)), None))
        .unwrap_or_else(|e| panic!("{e}"));
    let ca = remote
        .ca_file()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let (fake, mut env) = crate::support::github_double(&repo, remote.url(&name), TOKEN).await;
    env.push(("SSL_CERT_FILE", ca.clone()));
    let server = start(&as_refs(&env), &[]).await;
    let client = &server.client;

    let listed = call_ok(client, "list_release_configs", json!({})).await;
    assert_eq!(listed["source"]["stale"], false, "{listed}");
    assert_eq!(listed["total"], 4, "{listed}");
    assert!(
        !listed.to_string().contains(TOKEN),
        "the token is in an answer"
    );
    let proposed = call_ok(
        client,
        "propose_release_config",
        json!({
            "machine": "gpu-a", "port": 8002, "template_name": "sglang",
            "model_name": "qwen-2-72b", "model_path": "/models/qwen-2-72b",
            "gpu_ids": [4, 5], "tensor_parallel": 2,
            "description": "Serve qwen-2-72b over a smart-HTTP remote.",
        }),
    )
    .await;
    assert_eq!(proposed["status"], "pending_review", "{proposed}");
    let branch = proposed["branch"].as_str().unwrap_or_default();
    assert!(
        repo.git(&["branch", "--list", branch]).contains(branch),
        "the proposal branch was not pushed over HTTPS"
    );

    let seen = remote.seen();
    let expected = basic_authorization("x-access-token", TOKEN);
    assert!(
        seen.iter()
            .any(|s| s.target.contains("git-receive-pack") && s.authorization.is_some()),
        "no authenticated push: {seen:?}"
    );
    for request in &seen {
        if let Some(sent) = &request.authorization {
            assert_eq!(sent, &expected, "{} {}", request.method, request.target);
        }
    }
    let _ = server.client.cancel().await;
    drop(fake);

    // A remote that redirects to another origin (another port of the same host): the fetch
    // fails saying where the token goes, and neither server ever sees it.
    let elsewhere = SmartHttp::serve(&root, https(Some(("x-access-token", TOKEN)), None))
        .unwrap_or_else(|e| panic!("{e}"));
    let redirecting = SmartHttp::serve(&root, https(None, Some(elsewhere.origin())))
        .unwrap_or_else(|e| panic!("{e}"));
    let url = redirecting.url(&name);
    let env = [
        ("REGISTRY_RELEASE_CONFIG_REPO", url.as_str()),
        ("REGISTRY_GITHUB_TOKEN", TOKEN),
        ("SSL_CERT_FILE", ca.as_str()),
    ];
    let server = start(&env, &[]).await;
    let error = call_err(&server.client, "list_release_configs", json!({})).await;
    assert!(error.contains(&format!("cannot fetch {url}")), "{error}");
    assert!(
        error.contains(&format!(
            "the token is offered only over HTTPS to {}",
            redirecting.origin()
        )),
        "{error}"
    );
    assert!(!error.contains(TOKEN), "{error}");
    assert!(
        !elsewhere.seen().is_empty(),
        "the redirect was never followed"
    );
    for request in redirecting.seen().iter().chain(&elsewhere.seen()) {
        assert_eq!(
            request.authorization, None,
            "credentials sent to {} {}",
            request.method, request.target
        );
    }
    let _ = server.client.cancel().await;
}
