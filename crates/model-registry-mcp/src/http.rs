//! Streamable HTTP at `/mcp` (axum + rmcp's `StreamableHttpService`), with `Host` and `Origin`
//! checked against DNS rebinding: loopback names only, plus what `--allowed-host` lists.

use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::{McpServer, Surface};

pub const MCP_PATH: &str = "/mcp";

const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Largest request body accepted (413 above it). Tool arguments are capped at 64 KiB, so 1 MiB
/// leaves room for any legitimate message while bounding what one request can make us buffer.
pub const MAX_REQUEST_BODY_BYTES: usize = 1024 * 1024;

/// The rmcp configuration: allowed `Host` values and browser origins.
pub fn http_config(
    allowed_hosts: &[String],
    cancel: CancellationToken,
) -> StreamableHttpServerConfig {
    let hosts: Vec<String> = LOOPBACK_HOSTS
        .iter()
        .map(|h| (*h).to_owned())
        .chain(allowed_hosts.iter().cloned())
        .collect();
    let mut origins: Vec<String> = Vec::new();
    for host in LOOPBACK_HOSTS
        .iter()
        .map(|h| (*h).to_owned())
        .chain(allowed_hosts.iter().cloned())
    {
        let bracketed =
            if host.contains(':') && !host.starts_with('[') && host.matches(':').count() > 1 {
                format!("[{host}]")
            } else {
                host.clone()
            };
        let has_port = bracketed
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
            && !bracketed.ends_with(']');
        for scheme in ["http", "https"] {
            origins.push(if has_port {
                format!("{scheme}://{bracketed}")
            } else {
                format!("{scheme}://{bracketed}:*")
            });
        }
    }
    StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .enforce_origin_validation()
        .with_max_request_body_bytes(MAX_REQUEST_BODY_BYTES)
        .with_cancellation_token(cancel)
}

/// Serves until `cancel` fires. Returns the bound address through `on_bound` (port 0 picks one).
pub async fn serve(
    surface: Arc<Surface>,
    bind: SocketAddr,
    allowed_hosts: &[String],
    cancel: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    if !bind.ip().is_loopback() && allowed_hosts.is_empty() {
        tracing::warn!(%bind, "listening beyond loopback, but only loopback Host names are accepted; add --allowed-host");
    }
    let config = http_config(allowed_hosts, cancel.clone());
    let service = StreamableHttpService::new(
        move || Ok(McpServer::new(Arc::clone(&surface))),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new().nest_service(MCP_PATH, service);
    let listener = TcpListener::bind(bind).await?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, path = MCP_PATH, "serving MCP over streamable HTTP");
    on_bound(local);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}
