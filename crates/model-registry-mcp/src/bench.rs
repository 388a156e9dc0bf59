//! Measurements of the real binary for `cargo xtask bench` (or by hand): start-up to the
//! `initialize` result, `tools/list` size, `get_machine_topology` latency and peak memory.
//!
//! `cargo xtask bench` drives it; by hand (inside an async context):
//!
//! ```text
//! let report = model_registry_mcp::bench::run(&BenchOptions {
//!     binary: "target/release/model-registry-mcp".into(),
//!     repository: Some("fixtures/release-config".into()),
//!     calls: 500,
//!     ..BenchOptions::default()
//! }).await?;
//! println!("{report}");
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The `model-registry-mcp` binary to start.
    pub binary: PathBuf,
    /// Release-config repository (path or URL); without it only start-up and tools/list are measured.
    pub repository: Option<String>,
    /// Timed `get_machine_topology` calls (after one untimed call that waits for the first load).
    pub calls: usize,
    /// Extra environment for the server.
    pub env: Vec<(String, String)>,
}

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            binary: PathBuf::from("model-registry-mcp"),
            repository: None,
            calls: 200,
            env: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Process spawn to the `initialize` result.
    pub startup_to_initialize: Duration,
    /// Bytes of the `tools/list` result as JSON.
    pub tools_list_bytes: usize,
    /// The first topology call (waits for the first load of the repository).
    pub first_topology_call: Option<Duration>,
    pub topology_p50: Option<Duration>,
    pub topology_p99: Option<Duration>,
    /// Peak resident memory of the server (Linux `VmHWM`), in KiB.
    pub peak_rss_kib: Option<u64>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| {
            d.map_or_else(
                || "-".to_owned(),
                |d| format!("{:.3} ms", d.as_secs_f64() * 1e3),
            )
        };
        writeln!(
            f,
            "start-up to initialize: {}",
            ms(Some(self.startup_to_initialize))
        )?;
        writeln!(f, "tools/list: {} bytes", self.tools_list_bytes)?;
        writeln!(
            f,
            "get_machine_topology first call: {}",
            ms(self.first_topology_call)
        )?;
        writeln!(
            f,
            "get_machine_topology p50: {}, p99: {}",
            ms(self.topology_p50),
            ms(self.topology_p99)
        )?;
        match self.peak_rss_kib {
            Some(kib) => writeln!(f, "peak RSS: {kib} KiB"),
            None => writeln!(f, "peak RSS: unknown"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("MCP exchange failed: {0}")]
    Mcp(String),
}

pub async fn run(options: &BenchOptions) -> Result<BenchReport, BenchError> {
    let mut command = tokio::process::Command::new(&options.binary);
    command.env_remove("REGISTRY_RELEASE_CONFIG_REPO");
    if let Some(repository) = &options.repository {
        command.env("REGISTRY_RELEASE_CONFIG_REPO", repository);
    }
    for (key, value) in &options.env {
        command.env(key, value);
    }
    let started = Instant::now();
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|source| BenchError::Spawn {
            binary: options.binary.clone(),
            source,
        })?;
    let pid = transport.id();
    let client = ().serve(transport).await.map_err(|e| BenchError::Mcp(e.to_string()))?;
    let startup_to_initialize = started.elapsed();
    let tools = client
        .list_tools(None)
        .await
        .map_err(|e| BenchError::Mcp(e.to_string()))?;
    let tools_list_bytes = serde_json::to_vec(&tools).map_or(0, |bytes| bytes.len());

    let (mut first, mut p50, mut p99) = (None, None, None);
    if options.repository.is_some() {
        let call = || client.call_tool(CallToolRequestParams::new("get_machine_topology"));
        let t = Instant::now();
        call().await.map_err(|e| BenchError::Mcp(e.to_string()))?;
        first = Some(t.elapsed());
        let mut samples = Vec::with_capacity(options.calls);
        for _ in 0..options.calls {
            let t = Instant::now();
            call().await.map_err(|e| BenchError::Mcp(e.to_string()))?;
            samples.push(t.elapsed());
        }
        samples.sort();
        let at = |q: f64| {
            let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples.get(index).copied()
        };
        p50 = at(0.5);
        p99 = at(0.99);
    }
    let peak_rss_kib = pid.and_then(peak_rss_kib);
    let _ = client.cancel().await;
    Ok(BenchReport {
        startup_to_initialize,
        tools_list_bytes,
        first_topology_call: first,
        topology_p50: p50,
        topology_p99: p99,
        peak_rss_kib,
    })
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
