//! Measurements of the real binary for `cargo xtask bench` (or by hand): start-up to the
//! `initialize` result, start-up to the first answer on each protocol revision, `tools/list`
//! size, `get_machine_topology` latency, a confirming tool's two rounds on 2026-07-28, and peak
//! memory; [`http`]: the shared HTTP service with authentication, sessions and throughput.
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

pub mod http;

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::TokioChildProcess;
use serde::Serialize;

/// Timed `find_placement` calls: each is a pass over the whole fleet.
const PLACEMENT_CALLS: usize = 50;

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
    /// A registry (`REGISTRY_URL`, an operator key) and one of its deployments: the confirming
    /// tool `stop_deployment` is then timed on 2026-07-28, both rounds, the user declining (so
    /// nothing changes between calls).
    pub confirm_on: Option<ConfirmTarget>,
}

/// Where the confirming tool is timed.
#[derive(Debug, Clone)]
pub struct ConfirmTarget {
    pub registry_url: String,
    pub api_key: String,
    pub deployment_id: String,
}

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            binary: PathBuf::from("model-registry-mcp"),
            repository: None,
            calls: 200,
            env: Vec::new(),
            confirm_on: None,
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
    /// Timed `find_placement` calls (70 B parameters at TP 2 over the whole fleet).
    pub placement_p50: Option<Duration>,
    pub placement_p99: Option<Duration>,
    /// Peak resident memory of the server (Linux `VmHWM`), in KiB.
    pub peak_rss_kib: Option<u64>,
    /// Process spawn to the first answer (`initialize`, or `server/discover` then `tools/list`
    /// on 2026-07-28), per revision.
    pub startup_by_revision: Vec<(String, Duration)>,
    /// `stop_deployment` on 2026-07-28, both rounds (input required, then declined).
    pub confirm_p50: Option<Duration>,
    pub confirm_p99: Option<Duration>,
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
        writeln!(
            f,
            "find_placement p50: {}, p99: {}",
            ms(self.placement_p50),
            ms(self.placement_p99)
        )?;
        for (revision, took) in &self.startup_by_revision {
            writeln!(
                f,
                "start-up to first answer, {revision}: {}",
                ms(Some(*took))
            )?;
        }
        writeln!(
            f,
            "stop_deployment on 2026-07-28, both rounds, p50: {}, p99: {}",
            ms(self.confirm_p50),
            ms(self.confirm_p99)
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
    let repository: Vec<(&str, &str)> = options
        .repository
        .as_deref()
        .map(|repository| ("REGISTRY_RELEASE_CONFIG_REPO", repository))
        .into_iter()
        .collect();
    let started = Instant::now();
    let transport = spawn_server(options, &repository)?;
    let pid = transport.id();
    let client = ().serve(transport).await.map_err(|e| BenchError::Mcp(e.to_string()))?;
    let startup_to_initialize = started.elapsed();
    let tools = client
        .list_tools(None)
        .await
        .map_err(|e| BenchError::Mcp(e.to_string()))?;
    let tools_list_bytes = serde_json::to_vec(&tools).map_or(0, |bytes| bytes.len());

    let (mut first, mut p50, mut p99) = (None, None, None);
    let mut placement = (None, None);
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
        p50 = quantile(&samples, 0.5);
        p99 = quantile(&samples, 0.99);
        let mut samples = Vec::with_capacity(PLACEMENT_CALLS);
        for _ in 0..PLACEMENT_CALLS {
            let mut request = CallToolRequestParams::new("find_placement");
            request.arguments = serde_json::json!({"params_b": 70, "tensor_parallel": 2})
                .as_object()
                .cloned();
            let t = Instant::now();
            client
                .call_tool(request)
                .await
                .map_err(|e| BenchError::Mcp(e.to_string()))?;
            samples.push(t.elapsed());
        }
        placement = (quantile(&samples, 0.5), quantile(&samples, 0.99));
    }
    let peak_rss_kib = pid.and_then(peak_rss_kib);
    let _ = client.cancel().await;
    let mut startup_by_revision = Vec::new();
    for revision in REVISIONS {
        let took = first_answer(options, &revision).await?;
        startup_by_revision.push((revision.to_string(), took));
    }
    let (confirm_p50, confirm_p99) = match &options.confirm_on {
        Some(target) => {
            let samples = confirm_rounds(options, target).await?;
            (quantile(&samples, 0.5), quantile(&samples, 0.99))
        }
        None => (None, None),
    };
    Ok(BenchReport {
        startup_to_initialize,
        tools_list_bytes,
        first_topology_call: first,
        topology_p50: p50,
        topology_p99: p99,
        placement_p50: placement.0,
        placement_p99: placement.1,
        peak_rss_kib,
        startup_by_revision,
        confirm_p50,
        confirm_p99,
    })
}

/// The server with the options' environment plus `extra` (no repository unless `extra` names
/// one), over stdio.
fn spawn_server(
    options: &BenchOptions,
    extra: &[(&str, &str)],
) -> Result<TokioChildProcess, BenchError> {
    let mut command = tokio::process::Command::new(&options.binary);
    command.env_remove("REGISTRY_RELEASE_CONFIG_REPO");
    for (key, value) in &options.env {
        command.env(key, value);
    }
    for (key, value) in extra {
        command.env(key, value);
    }
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|source| BenchError::Spawn {
            binary: options.binary.clone(),
            source,
        })?;
    Ok(transport)
}

const REVISIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

fn quantile(samples: &[Duration], q: f64) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(index).copied()
}

/// A client on one revision whose user declines every confirmation.
#[derive(Clone)]
struct Decliner {
    revision: ProtocolVersion,
}

impl rmcp::ClientHandler for Decliner {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("bench", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(self.revision.clone())
    }

    async fn create_elicitation(
        &self,
        _request: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        Ok(rmcp::model::ElicitResult::new(
            rmcp::model::ElicitationAction::Decline,
        ))
    }
}

async fn connect(
    options: &BenchOptions,
    revision: &ProtocolVersion,
    extra: &[(&str, &str)],
) -> Result<rmcp::service::RunningService<rmcp::RoleClient, Decliner>, BenchError> {
    let transport = spawn_server(options, extra)?;
    let lifecycle = if revision.has_initialize() {
        ClientLifecycleMode::Initialize
    } else {
        ClientLifecycleMode::Discover {
            preferred_versions: vec![revision.clone()],
        }
    };
    Decliner {
        revision: revision.clone(),
    }
    .serve_with_lifecycle(transport, lifecycle)
    .await
    .map_err(|e| BenchError::Mcp(format!("{revision}: {e}")))
}

/// Spawn to the first answer on `revision`: the `initialize` result, or on 2026-07-28 (no
/// handshake) the `server/discover` result and a `tools/list`.
async fn first_answer(
    options: &BenchOptions,
    revision: &ProtocolVersion,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let client = connect(options, revision, &[]).await?;
    if !revision.has_initialize() {
        client
            .list_tools(None)
            .await
            .map_err(|e| BenchError::Mcp(format!("{revision}: tools/list: {e}")))?;
    }
    let took = started.elapsed();
    let _ = client.cancel().await;
    Ok(took)
}

/// `stop_deployment` on 2026-07-28, both rounds, the user declining: one sample per call.
async fn confirm_rounds(
    options: &BenchOptions,
    target: &ConfirmTarget,
) -> Result<Vec<Duration>, BenchError> {
    let env = [
        ("REGISTRY_URL", target.registry_url.as_str()),
        ("REGISTRY_API_KEY", target.api_key.as_str()),
        ("REGISTRY_CACHE_TTL_SECONDS", "0"),
    ];
    let client = connect(options, &ProtocolVersion::V_2026_07_28, &env).await?;
    let mut arguments = rmcp::model::JsonObject::new();
    arguments.insert(
        "deployment_id".to_owned(),
        serde_json::Value::from(target.deployment_id.clone()),
    );
    let call = || {
        client.call_tool(
            CallToolRequestParams::new("stop_deployment").with_arguments(arguments.clone()),
        )
    };
    let first = call()
        .await
        .map_err(|e| BenchError::Mcp(format!("stop_deployment: {e}")))?;
    if first
        .structured_content
        .as_ref()
        .map(|s| s["performed"].clone())
        != Some(serde_json::Value::Bool(false))
    {
        return Err(BenchError::Mcp(format!(
            "stop_deployment was not declined: {:?}",
            first.content
        )));
    }
    let mut samples = Vec::with_capacity(options.calls);
    for _ in 0..options.calls {
        let t = Instant::now();
        call()
            .await
            .map_err(|e| BenchError::Mcp(format!("stop_deployment: {e}")))?;
        samples.push(t.elapsed());
    }
    let _ = client.cancel().await;
    Ok(samples)
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
