//! `--transport http` as a shared service, through the real binary on loopback: who may call
//! (bearer tokens from the auth file, JWTs from an OAuth issuer the test starts) and with which
//! registry key (checked in the emulator's request log), and every limit with its status code
//! while the server keeps serving others.

use std::time::{Duration, Instant};

use registry_emulator::Role;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use test_support::oauth_issuer::{Issuer, base64url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::emu::Registry;
use crate::http::{start_http, start_http_at};
use crate::support::{call_ok, command};

const TOKEN_A: &str = "mrm_token-of-the-planner-agent-0123456789";
const TOKEN_B: &str = "mrm_token-of-the-operator-agent-987654321";

fn sha256_hex(token: &str) -> String {
    model_registry_mcp::token_digest(token)
}

/// An auth file with tokens A and B (keys from PLANNER_KEY and OPERATOR_KEY) and `extra`.
fn auth_file(dir: &std::path::Path, extra: &str) -> String {
    let path = dir.join("auth.toml");
    let text = format!(
        "[[token]]\nname = \"planner\"\nsha256 = \"{}\"\nregistry_api_key_env = \"PLANNER_KEY\"\n\n\
         [[token]]\nname = \"operator\"\nsha256 = \"{}\"\nregistry_api_key_env = \"OPERATOR_KEY\"\n\n{extra}",
        sha256_hex(TOKEN_A),
        sha256_hex(TOKEN_B)
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path.display().to_string()
}

/// A raw HTTP/1.1 exchange: `request` as written (it should say `Connection: close`); the
/// status, the head and the body of the answer.
async fn exchange(port: u16, request: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let _ = stream.write_all(request.as_bytes()).await;
    read_answer(&mut stream).await
}

async fn read_answer(stream: &mut TcpStream) -> (u16, String, String) {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

fn initialize_body() -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
    .to_string()
}

/// A POST of `body` to /mcp with these extra header lines.
fn post(port: u16, headers: &str, body: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

/// Opens a session with `token` over raw HTTP; its id.
async fn open_session(port: u16, token: &str) -> String {
    let (status, head, body) =
        exchange(port, &post(port, &bearer(token), &initialize_body())).await;
    assert_eq!(status, 200, "initialize: {head}\n{body}");
    header(&head, "mcp-session-id").unwrap_or_else(|| panic!("no session id: {head}"))
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// A request in session `id` (tools/list); its status.
async fn use_session(port: u16, token: &str, id: &str) -> u16 {
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string();
    let headers = format!(
        "{}Mcp-Session-Id: {id}\r\nMcp-Protocol-Version: 2025-06-18\r\n",
        bearer(token)
    );
    exchange(port, &post(port, &headers, &body)).await.0
}

async fn delete_session(port: u16, token: &str, id: &str) -> u16 {
    let request = format!(
        "DELETE /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{}Mcp-Session-Id: {id}\r\n\
         Mcp-Protocol-Version: 2025-06-18\r\nConnection: close\r\n\r\n",
        bearer(token)
    );
    exchange(port, &request).await.0
}

async fn client_with(
    port: u16,
    token: &str,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("http://127.0.0.1:{port}/mcp"))
            .auth_header(token);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap_or_else(|e| panic!("initialize with a token: {e}"))
}

/// The env of a server with the tokens of `auth` (their registry keys made up: these tests do
/// not reach a registry) and `limits`.
fn token_env(auth: &str, limits: &[(&'static str, &'static str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PLANNER_KEY", "sk-planner".to_owned()),
        ("OPERATOR_KEY", "sk-operator".to_owned()),
        ("REGISTRY_MCP_AUTH_FILE", auth.to_owned()),
    ];
    env.extend(limits.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

/// The env of a server whose callers act with the emulator's viewer and operator keys.
fn keyed_env(registry: &Registry, auth: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REGISTRY_URL", registry.emu.base_url().to_owned()),
        ("REGISTRY_CACHE_TTL_SECONDS", "0".to_owned()),
        ("PLANNER_KEY", registry.key(Role::Viewer)),
        ("OPERATOR_KEY", registry.key(Role::Operator)),
        ("REGISTRY_MCP_AUTH_FILE", auth.to_owned()),
    ]
}

fn refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The names of the keys the emulator saw on its requests since the last look (not the
/// server's own start-up lookups of each key's role).
fn keys_seen(registry: &Registry) -> Vec<String> {
    let (_, records) = registry.take();
    let mut names: Vec<String> = records
        .iter()
        .map(|r| {
            r.api_key_name
                .clone()
                .unwrap_or_else(|| "(none)".to_owned())
        })
        .collect();
    names.dedup();
    names
}

/// Start-up that must refuse: its exit status and stderr.
async fn refused_start(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let output = command(env, args, cache.path())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_bind_beyond_loopback_needs_authentication() {
    let beyond = ["--transport", "http", "--bind", "0.0.0.0:0"];
    let (status, stderr) = refused_start(&[], &beyond).await;
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains("--bind: 0.0.0.0:0 is reachable beyond this machine")
            && stderr.contains("REGISTRY_MCP_AUTH_FILE"),
        "{stderr}"
    );
    // Authenticated, but tokens would cross the network in clear: refused too.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let auth = auth_file(dir.path(), "");
    let (_, stderr) = refused_start(&[("REGISTRY_MCP_AUTH_FILE", &auth)], &beyond).await;
    assert!(
        stderr.contains("must not cross the network in clear")
            && stderr.contains("REGISTRY_MCP_TLS_CERT"),
        "{stderr}"
    );
    // With REGISTRY_API_KEY beside an auth file, which key would a caller act with? Refused.
    let with_key = [
        ("REGISTRY_MCP_AUTH_FILE", auth.as_str()),
        ("REGISTRY_API_KEY", "sk-shared"),
    ];
    let (_, stderr) = refused_start(&with_key, &["--transport", "http"]).await;
    assert!(
        stderr.contains("REGISTRY_API_KEY: is not used when REGISTRY_MCP_AUTH_FILE is set"),
        "{stderr}"
    );
    assert!(!stderr.contains("sk-shared"), "{stderr}");
    // An auth file naming an unset variable: start-up says which entry and which variable.
    let loopback = ["--transport", "http", "--bind", "127.0.0.1:0"];
    let (_, stderr) = refused_start(&[("REGISTRY_MCP_AUTH_FILE", &auth)], &loopback).await;
    assert!(
        stderr.contains("[[token]] \"planner\": registry_api_key_env \"PLANNER_KEY\" is not set"),
        "{stderr}"
    );
}

#[tokio::test]
async fn each_token_acts_with_its_own_registry_key() {
    let registry = Registry::start().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let auth = auth_file(dir.path(), "");
    let env = keyed_env(&registry, &auth);
    let (_child, port) = start_http(&refs(&env), &[], dir.path()).await;

    let (status, head, body) = exchange(port, &post(port, "", &initialize_body())).await;
    assert_eq!(status, 401, "{head}");
    assert!(
        header(&head, "www-authenticate").is_some_and(|v| v.starts_with("Bearer")),
        "{head}"
    );
    assert!(body.contains("authentication required"), "{body}");
    let (status, head, _) = exchange(
        port,
        &post(port, &bearer("mrm_guessed"), &initialize_body()),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        header(&head, "www-authenticate").is_some_and(|v| v.contains("error=\"invalid_token\"")),
        "{head}"
    );
    let (status, _, _) = exchange(
        port,
        &post(
            port,
            &format!("Authorization: Basic {TOKEN_A}\r\n"),
            &initialize_body(),
        ),
    )
    .await;
    assert_eq!(status, 401, "only the Bearer scheme");

    let planner = client_with(port, TOKEN_A).await;
    let operator = client_with(port, TOKEN_B).await;
    registry.take();
    let models = call_ok(&planner, "list_models", json!({})).await;
    assert!(models["models"].as_array().is_some_and(|m| !m.is_empty()));
    assert_eq!(keys_seen(&registry), ["demo-viewer"]);
    let model_id = registry.model_id("bge-m3");
    call_ok(
        &operator,
        "update_model",
        json!({"model_id": model_id, "tags": ["shared"]}),
    )
    .await;
    assert_eq!(keys_seen(&registry), ["demo-operator"]);
    let audit = registry.emu.state().audit_log();
    assert_eq!(
        audit.last().map(|a| (a.actor.as_str(), a.action.as_str())),
        Some(("demo-operator", "model.update")),
        "the registry's audit log names the operator's key"
    );
    // The planner's key is a viewer's: the write is refused, naming the key it acts with.
    let refused = planner
        .call_tool(
            rmcp::model::CallToolRequestParams::new("update_model").with_arguments(
                json!({"model_id": model_id, "tags": []})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await;
    let text = format!("{refused:?}");
    assert!(
        text.contains("demo-viewer") || text.contains("403"),
        "{text}"
    );
    let _ = planner.cancel().await;
    let _ = operator.cancel().await;

    // A session answers only the caller that opened it; ended and unknown sessions are 404.
    let session = open_session(port, TOKEN_A).await;
    assert_eq!(use_session(port, TOKEN_A, &session).await, 200);
    assert_eq!(
        use_session(port, TOKEN_B, &session).await,
        404,
        "another caller's session"
    );
    assert_eq!(delete_session(port, TOKEN_B, &session).await, 404);
    assert_eq!(delete_session(port, TOKEN_A, &session).await, 202);
    assert_eq!(
        delete_session(port, TOKEN_A, &session).await,
        404,
        "an ended session"
    );
    assert_eq!(use_session(port, TOKEN_A, &session).await, 404);
    assert_eq!(delete_session(port, TOKEN_A, "not-a-session").await, 404);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[tokio::test]
async fn jwts_from_the_issuer_are_checked_and_never_reach_the_registry() {
    let issuer = Issuer::start().unwrap_or_else(|e| panic!("{e}"));
    let registry = Registry::start().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let auth = auth_file(
        dir.path(),
        "[[jwt]]\nname = \"readers\"\nscope = \"fleet:read\"\nregistry_api_key_env = \"PLANNER_KEY\"\n\n\
         [[jwt]]\nname = \"ops\"\nsubject = \"agent-ops\"\nregistry_api_key_env = \"OPERATOR_KEY\"\n",
    );
    let audience = "https://mcp.example.test/mcp";
    let mut env = keyed_env(&registry, &auth);
    env.push(("REGISTRY_MCP_OAUTH_ISSUER", issuer.url()));
    env.push(("REGISTRY_MCP_PUBLIC_URL", audience.to_owned()));
    let (_child, port) = start_http(&refs(&env), &[], dir.path()).await;

    // Protected resource metadata, public, at the RFC 9728 path for /mcp and at the root.
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let (status, head, body) = exchange(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 200, "{path}: {head}");
        let metadata: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(metadata["resource"], audience);
        assert_eq!(metadata["authorization_servers"], json!([issuer.url()]));
        assert_eq!(metadata["scopes_supported"], json!(["fleet:read"]));
    }
    let (status, head, _) = exchange(port, &post(port, "", &initialize_body())).await;
    assert_eq!(status, 401);
    assert!(
        header(&head, "www-authenticate").is_some_and(|v| v.contains(
            "resource_metadata=\"https://mcp.example.test/.well-known/oauth-protected-resource/mcp\""
        )),
        "{head}"
    );

    let claims = |sub: &str, scope: &str, aud: &str, iss: &str, exp: u64| {
        json!({"iss": iss, "sub": sub, "aud": aud, "scope": scope, "exp": exp, "iat": now()})
            .to_string()
    };
    let mint = |text: String| issuer.mint(&text).unwrap_or_else(|e| panic!("{e}"));
    let later = now() + 600;
    let reader = mint(claims(
        "agent-7",
        "openid fleet:read",
        audience,
        &issuer.url(),
        later,
    ));
    let ops = mint(claims("agent-ops", "", audience, &issuer.url(), later));

    // The public URL's host is accepted as a Host (a proxy in front forwards it).
    let proxied = format!(
        "POST /mcp HTTP/1.1\r\nHost: mcp.example.test\r\n{}Content-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        bearer(&reader),
        initialize_body().len(),
        initialize_body()
    );
    let (status, head, _) = exchange(port, &proxied).await;
    assert_eq!(status, 200, "{head}");
    let client = client_with(port, &reader).await;
    registry.take();
    call_ok(&client, "list_models", json!({})).await;
    assert_eq!(
        keys_seen(&registry),
        ["demo-viewer"],
        "the rule's key, not the JWT"
    );
    let _ = client.cancel().await;
    let client = client_with(port, &ops).await;
    call_ok(&client, "list_models", json!({})).await;
    assert_eq!(keys_seen(&registry), ["demo-operator"]);
    let _ = client.cancel().await;

    let none_header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let none_claims = base64url(claims("agent-ops", "", audience, &issuer.url(), later).as_bytes());
    let refused: Vec<(&str, String, u16, &str)> = vec![
        (
            "expired",
            mint(claims(
                "agent-7",
                "fleet:read",
                audience,
                &issuer.url(),
                now() - 120,
            )),
            401,
            "expired",
        ),
        (
            "another audience",
            mint(claims(
                "agent-7",
                "fleet:read",
                "https://other.example/mcp",
                &issuer.url(),
                later,
            )),
            401,
            "audience",
        ),
        (
            "another issuer",
            mint(claims(
                "agent-7",
                "fleet:read",
                audience,
                "https://evil.example",
                later,
            )),
            401,
            "issuer",
        ),
        (
            "forged signature",
            issuer
                .forge(&claims("agent-ops", "", audience, &issuer.url(), later))
                .unwrap_or_default(),
            401,
            "signature",
        ),
        (
            "unpublished key",
            issuer
                .mint_unknown_key(&claims("agent-ops", "", audience, &issuer.url(), later))
                .unwrap_or_default(),
            401,
            "does not publish",
        ),
        (
            "alg none",
            format!("{none_header}.{none_claims}."),
            401,
            "invalid_token",
        ),
        (
            "no rule",
            mint(claims(
                "stranger",
                "fleet:write",
                audience,
                &issuer.url(),
                later,
            )),
            403,
            "insufficient_scope",
        ),
    ];
    for (case, token, status, says) in refused {
        let (got, head, body) =
            exchange(port, &post(port, &bearer(&token), &initialize_body())).await;
        assert_eq!(got, status, "{case}: {head}\n{body}");
        assert!(
            head.contains(says) || body.contains(says),
            "{case}: {head}\n{body}"
        );
        assert!(!body.contains(&token), "{case}: the token is not echoed");
    }
    assert_eq!(
        keys_seen(&registry),
        Vec::<String>::new(),
        "refused tokens reach nothing"
    );
    // One fetch at start, one more for the unpublished key id (then no more for 30 s).
    assert!(
        issuer.jwks_requests() <= 2,
        "{} JWKS fetches",
        issuer.jwks_requests()
    );
}

/// Seconds since `start`, for messages.
fn since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

#[tokio::test]
async fn slow_clients_are_cut_off_with_408_and_others_are_served_meanwhile() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let auth = auth_file(dir.path(), "");
    let env = token_env(
        &auth,
        &[
            ("REGISTRY_MCP_HEADER_TIMEOUT_SECONDS", "2"),
            ("REGISTRY_MCP_BODY_TIMEOUT_SECONDS", "2"),
        ],
    );
    let (_child, port) = start_http(&refs(&env), &[], dir.path()).await;

    let start = Instant::now();
    let mut slow_headers = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = slow_headers
        .write_all(format!("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n").as_bytes())
        .await;
    let mut slow_body = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let partial = post(port, &bearer(TOKEN_A), &initialize_body());
    let _ = slow_body
        .write_all(&partial.as_bytes()[..partial.len() - 20])
        .await;
    // Meanwhile others are served.
    open_session(port, TOKEN_B).await;
    let (status, _, body) = read_answer(&mut slow_headers).await;
    assert_eq!(status, 408, "after {:.1} s: {body}", since(start));
    assert!(
        body.contains("REGISTRY_MCP_HEADER_TIMEOUT_SECONDS"),
        "{body}"
    );
    let (status, _, body) = read_answer(&mut slow_body).await;
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("REGISTRY_MCP_BODY_TIMEOUT_SECONDS"), "{body}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:.1} s",
        since(start)
    );

    // A body announced far beyond the limit is refused at once, before any of it is read.
    let start = Instant::now();
    let huge = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{}Content-Type: application/json\r\n\
         Content-Length: 104857600\r\nConnection: close\r\n\r\n{{",
        bearer(TOKEN_A)
    );
    let (status, _, _) = exchange(port, &huge).await;
    assert_eq!(status, 413);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:.1} s",
        since(start)
    );
    // Two Host headers: 400, whatever the first says.
    let twice = post(
        port,
        &format!("{}Host: evil.example\r\n", bearer(TOKEN_A)),
        &initialize_body(),
    );
    assert_eq!(exchange(port, &twice).await.0, 400);
}

#[tokio::test]
async fn connections_sessions_and_rates_are_capped_with_their_status() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let auth = auth_file(dir.path(), "");
    let env = token_env(
        &auth,
        &[
            ("REGISTRY_MCP_MAX_CONNECTIONS", "4"),
            ("REGISTRY_MCP_MAX_SESSIONS", "3"),
            ("REGISTRY_MCP_SESSION_IDLE_SECONDS", "10"),
            ("REGISTRY_MCP_RATE_LIMIT_PER_MINUTE", "60"),
        ],
    );
    let (_child, port) = start_http(&refs(&env), &[], dir.path()).await;

    // Connections: four held open, the fifth is told 503 at once; one closed, service resumes.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, head, body) =
        exchange(port, &post(port, &bearer(TOKEN_B), &initialize_body())).await;
    assert_eq!(status, 503, "{head}");
    assert!(
        header(&head, "retry-after").is_some() && body.contains("REGISTRY_MCP_MAX_CONNECTIONS"),
        "{head}\n{body}"
    );
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let first = open_session(port, TOKEN_A).await;
    drop(held);

    // Sessions: three live; a fourth is 503 until one has been idle long enough (half the
    // idle timeout), then the idlest gives way.
    let second = open_session(port, TOKEN_A).await;
    let third = open_session(port, TOKEN_B).await;
    let (status, head, body) =
        exchange(port, &post(port, &bearer(TOKEN_B), &initialize_body())).await;
    assert_eq!(status, 503, "{head}\n{body}");
    assert!(
        body.contains("REGISTRY_MCP_MAX_SESSIONS") && header(&head, "retry-after").is_some(),
        "{head}\n{body}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(use_session(port, TOKEN_A, &second).await, 200);
    assert_eq!(use_session(port, TOKEN_B, &third).await, 200);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let fourth = open_session(port, TOKEN_B).await;
    assert_eq!(
        use_session(port, TOKEN_A, &first).await,
        404,
        "the idlest gave way"
    );
    assert_eq!(use_session(port, TOKEN_A, &second).await, 200);
    assert_eq!(use_session(port, TOKEN_B, &fourth).await, 200);

    // Rate: a quarter-minute burst (15 of 60 a minute), then 429 with Retry-After; the other
    // token is served meanwhile. (Token A's bucket holds at most 15, whatever it used above.)
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(delete_session(port, TOKEN_A, "no-such-session").await);
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        refused >= 5 && statuses[..5].iter().all(|s| *s == 404),
        "{statuses:?}"
    );
    let request = format!(
        "DELETE /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{}Mcp-Session-Id: x\r\nConnection: close\r\n\r\n",
        bearer(TOKEN_A)
    );
    let (status, head, body) = exchange(port, &request).await;
    assert_eq!(status, 429, "{head}");
    assert!(
        header(&head, "retry-after").is_some() && body.contains("token:planner"),
        "{head}\n{body}"
    );
    assert_eq!(
        use_session(port, TOKEN_B, &fourth).await,
        200,
        "another caller is not limited"
    );
    // Guessing tokens is limited too: failed attempts count against the peer's address.
    let mut statuses = Vec::new();
    for guess in 0..20 {
        let request = post(
            port,
            &bearer(&format!("mrm_guess_{guess}")),
            &initialize_body(),
        );
        statuses.push(exchange(port, &request).await.0);
    }
    assert!(
        statuses[..5].iter().all(|s| *s == 401)
            && statuses.iter().filter(|s| **s == 429).count() >= 5,
        "{statuses:?}"
    );
    assert_eq!(
        use_session(port, TOKEN_B, &fourth).await,
        200,
        "callers with tokens are served"
    );
}

#[tokio::test]
async fn idle_sessions_end_and_are_404_after() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let auth = auth_file(dir.path(), "");
    let env = token_env(&auth, &[("REGISTRY_MCP_SESSION_IDLE_SECONDS", "2")]);
    let (_child, port) = start_http(&refs(&env), &[], dir.path()).await;
    let session = open_session(port, TOKEN_A).await;
    assert_eq!(use_session(port, TOKEN_A, &session).await, 200);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(use_session(port, TOKEN_A, &session).await, 404);
    assert_eq!(delete_session(port, TOKEN_A, &session).await, 404);
}

/// Beyond loopback with TLS of its own: agents reach it over HTTPS with their tokens; plain
/// HTTP to the port gets no answer.
#[tokio::test]
async fn beyond_loopback_the_service_speaks_https() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let auth = auth_file(dir.path(), "");
    let (cert_pem, key_pem) =
        test_support::smart_http::certificate_pem().unwrap_or_else(|e| panic!("{e}"));
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key, key_pem).unwrap_or_else(|e| panic!("{e}"));
    let (cert_path, key_path) = (cert.display().to_string(), key.display().to_string());
    let env = [
        ("PLANNER_KEY", "sk-planner"),
        ("OPERATOR_KEY", "sk-operator"),
        ("REGISTRY_MCP_AUTH_FILE", auth.as_str()),
        ("REGISTRY_MCP_TLS_CERT", cert_path.as_str()),
        ("REGISTRY_MCP_TLS_KEY", key_path.as_str()),
    ];
    let (_child, port) = start_http_at("0.0.0.0:0", &env, &[], dir.path()).await;
    let trusted =
        reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let https = reqwest::Client::builder()
        .add_root_certificate(trusted)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("https://127.0.0.1:{port}/mcp"))
            .auth_header(TOKEN_A);
    let client =
        ().serve(StreamableHttpClientTransport::with_client(https, config))
            .await
            .unwrap_or_else(|e| panic!("initialize over HTTPS: {e}"));
    let tools = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!tools.is_empty());
    let _ = client.cancel().await;
    let (status, head, _) = exchange(port, &post(port, &bearer(TOKEN_A), &initialize_body())).await;
    assert_eq!(
        status, 0,
        "plain HTTP to the TLS port is not answered in HTTP: {head}"
    );
}
