//! Streamable HTTP: the rmcp client end to end, and the DNS-rebinding checks on Host and Origin.

use std::process::Stdio;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Child;

use crate::support::{FLEET, as_refs, call_ok, command, fixture_env, repo_with};

/// Starts `--transport http` on a free loopback port; returns the child and the port (read from
/// its log).
pub async fn start_http(
    env: &[(&str, &str)],
    extra: &[&str],
    cache: &std::path::Path,
) -> (Child, u16) {
    start_http_at("127.0.0.1:0", env, extra, cache).await
}

/// [`start_http`] bound to `bind` (port 0: a free one).
pub async fn start_http_at(
    bind: &str,
    env: &[(&str, &str)],
    extra: &[&str],
    cache: &std::path::Path,
) -> (Child, u16) {
    let mut args = vec!["--transport", "http", "--bind", bind];
    args.extend_from_slice(extra);
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "model_registry_mcp=info"));
    let mut child = command(&env, &args, cache)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let mut lines = BufReader::new(child.stderr.take().unwrap_or_else(|| panic!("stderr"))).lines();
    let port = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("address=").nth(1) {
                let address = rest.split_whitespace().next().unwrap_or_default();
                if let Some(port) = address
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                {
                    return port;
                }
            }
        }
        panic!("the server never said where it listens");
    })
    .await
    .unwrap_or_else(|_| panic!("timeout waiting for the HTTP server"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

/// One raw HTTP/1.1 POST of an initialize request; returns the status code.
async fn post_status(port: u16, host: &str, origin: Option<&str>) -> u16 {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
    .to_string();
    post_body_status(port, host, origin, body).await
}

/// One raw HTTP/1.1 POST of `body`; returns the status code. A server that answers before it
/// has read the whole body may close the connection under the writer: that is not a failure.
async fn post_body_status(port: u16, host: &str, origin: Option<&str>, body: String) -> u16 {
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(request.as_bytes()).await;
        writer
    });
    let mut head = [0u8; 12];
    reader
        .read_exact(&mut head)
        .await
        .unwrap_or_else(|e| panic!("read: {e}"));
    writing.abort();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0)
}

#[tokio::test]
async fn streamable_http_serves_tools() {
    let repo = repo_with(FLEET);
    let env = fixture_env(&repo);
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_child, port) = start_http(&as_refs(&env), &[], cache.path()).await;
    let transport = StreamableHttpClientTransport::from_uri(format!("http://127.0.0.1:{port}/mcp"));
    let client = ().serve(transport).await.unwrap_or_else(|e| panic!("initialize over HTTP: {e}"));
    let tools = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tools.len(), model_registry_mcp::catalog::CATALOG.len());
    let topology = call_ok(&client, "get_machine_topology", json!({"machine": "gpu-b"})).await;
    assert_eq!(topology["machines"][0]["gpu_count"], 4);
    let _ = client.cancel().await;
}

#[tokio::test]
async fn host_and_origin_are_checked_against_dns_rebinding() {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_child, port) = start_http(&[], &["--allowed-host", "mcp.internal"], cache.path()).await;
    let local = format!("127.0.0.1:{port}");
    let cases: &[(&str, Option<&str>, bool)] = &[
        (&local, None, true),
        ("localhost", Some("http://localhost:3000"), true),
        ("mcp.internal", Some("https://mcp.internal"), true),
        ("evil.example.com", None, false),
        ("attacker.test:80", Some("http://attacker.test"), false),
        (&local, Some("http://evil.example.com"), false),
        (&local, Some("null"), false),
    ];
    for (host, origin, allowed) in cases {
        let status = post_status(port, host, *origin).await;
        assert_eq!(
            status != 403,
            *allowed,
            "Host {host}, Origin {origin:?}: status {status}"
        );
    }
}

/// A body over the limit is refused with 413 before it is parsed; the server keeps serving.
#[tokio::test]
async fn oversized_bodies_are_refused() {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_child, port) = start_http(&[], &[], cache.path()).await;
    let local = format!("127.0.0.1:{port}");
    let padding = "x".repeat(model_registry_mcp::MAX_REQUEST_BODY_BYTES + 1);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": padding, "version": "0"}}})
    .to_string();
    assert_eq!(post_body_status(port, &local, None, body).await, 413);
    assert_eq!(post_status(port, &local, None).await, 200);
}
