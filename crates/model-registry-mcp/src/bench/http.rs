//! The shared HTTP service under load, authentication on: resident memory before and after
//! opening many sessions, and authenticated requests per second (`ping` in one session, from
//! several concurrent clients; the rate limit off, so that the figure is the server's).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{BenchError, BenchOptions};

/// The bearer token the measured server accepts (an auth file made for the run).
const TOKEN: &str = "mrm_bench-token-0123456789abcdef0123456789abcdef";

#[derive(Debug, Clone, Serialize)]
pub struct HttpBenchReport {
    pub sessions: usize,
    /// VmRSS after one session, and after all of them, in KiB.
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub sessions_took: Duration,
    pub requests: usize,
    pub concurrency: usize,
    pub requests_took: Duration,
}

impl HttpBenchReport {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.requests_took.as_secs_f64().max(1e-9)
    }

    pub fn kib_per_session(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64
            / self.sessions.saturating_sub(1).max(1) as f64
    }
}

/// Starts the server over HTTP with an auth file in `work_dir`, opens `sessions` sessions,
/// then sends `requests` authenticated pings from `concurrency` clients.
pub async fn run(
    options: &BenchOptions,
    work_dir: &Path,
    sessions: usize,
    requests: usize,
    concurrency: usize,
) -> Result<HttpBenchReport, BenchError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| BenchError::Mcp(format!("{what}: {e}"));
    let auth = work_dir.join("bench-auth.toml");
    let hash = crate::http::auth_file::hex(&crate::http::auth_file::token_sha256(TOKEN));
    std::fs::write(
        &auth,
        format!("[[token]]\nname = \"bench\"\nsha256 = \"{hash}\"\nregistry_api_key_env = \"BENCH_REGISTRY_KEY\"\n"),
    )
    .map_err(|e| failed("writing the auth file", &e))?;
    let mut command = tokio::process::Command::new(&options.binary);
    command.env_remove("REGISTRY_RELEASE_CONFIG_REPO");
    command.env_remove("REGISTRY_API_KEY");
    for (key, value) in &options.env {
        command.env(key, value);
    }
    command
        .args(["--transport", "http", "--bind", "127.0.0.1:0"])
        .env("REGISTRY_MCP_AUTH_FILE", &auth)
        .env("BENCH_REGISTRY_KEY", "sk-bench")
        .env("REGISTRY_MCP_RATE_LIMIT_PER_MINUTE", "0")
        .env("REGISTRY_MCP_MAX_SESSIONS", (sessions + 16).to_string())
        .env("RUST_LOG", "model_registry_mcp=info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| BenchError::Spawn {
        binary: options.binary.clone(),
        source,
    })?;
    let pid = child.id().unwrap_or_default();
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| BenchError::Mcp("no stderr".to_owned()))?;
    let mut lines = BufReader::new(stderr).lines();
    let port = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(port) = line
                .split("address=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|address| address.rsplit(':').next())
                .and_then(|port| port.parse::<u16>().ok())
            {
                return Some(port);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| BenchError::Mcp("the HTTP server never said where it listens".to_owned()))?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let url = format!("http://127.0.0.1:{port}/mcp");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| failed("HTTP client", &e))?;
    let first = initialize(&http, &url).await?;
    let rss_before_kib = rss_kib(pid).unwrap_or_default();
    let started = Instant::now();
    let mut opening = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (http, url) = (http.clone(), url.clone());
        let count =
            (sessions - 1) / concurrency + usize::from(worker < (sessions - 1) % concurrency);
        opening.spawn(async move {
            for _ in 0..count {
                initialize(&http, &url).await?;
            }
            Ok::<(), BenchError>(())
        });
    }
    while let Some(done) = opening.join_next().await {
        done.map_err(|e| failed("opening sessions", &e))??;
    }
    let sessions_took = started.elapsed();
    let rss_after_kib = rss_kib(pid).unwrap_or_default();

    let started = Instant::now();
    let mut pinging = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (http, url, session) = (http.clone(), url.clone(), first.clone());
        let count = requests / concurrency + usize::from(worker < requests % concurrency);
        // Ids unique within the session: a response is routed to its request by id.
        let first_id = worker * (requests / concurrency + 1);
        pinging.spawn(async move {
            for id in first_id..first_id + count {
                ping(&http, &url, &session, id).await?;
            }
            Ok::<(), BenchError>(())
        });
    }
    while let Some(done) = pinging.join_next().await {
        done.map_err(|e| failed("pinging", &e))??;
    }
    let requests_took = started.elapsed();
    let _ = child.kill().await;
    let _ = std::fs::remove_file(&auth);
    Ok(HttpBenchReport {
        sessions,
        rss_before_kib,
        rss_after_kib,
        sessions_took,
        requests,
        concurrency,
        requests_took,
    })
}

fn post(http: &reqwest::Client, url: &str, body: String) -> reqwest::RequestBuilder {
    http.post(url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
}

/// Opens a session; its id.
async fn initialize(http: &reqwest::Client, url: &str) -> Result<String, BenchError> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}});
    let response = post(http, url, body.to_string())
        .send()
        .await
        .map_err(|e| BenchError::Mcp(format!("initialize: {e}")))?;
    let status = response.status();
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = response.bytes().await;
    session
        .ok_or_else(|| BenchError::Mcp(format!("initialize answered {status} without a session")))
}

async fn ping(
    http: &reqwest::Client,
    url: &str,
    session: &str,
    id: usize,
) -> Result<(), BenchError> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id + 1, "method": "ping"});
    let response = post(http, url, body.to_string())
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .map_err(|e| BenchError::Mcp(format!("ping: {e}")))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| BenchError::Mcp(format!("ping: {e}")))?;
    if !status.is_success() || !text.contains("\"result\"") {
        return Err(BenchError::Mcp(format!("ping answered {status}: {text}")));
    }
    Ok(())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
