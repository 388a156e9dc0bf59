//! Streamable HTTP at `/mcp` (axum + rmcp's `StreamableHttpService`) as a service a team can
//! share: `Host` and `Origin` checked against DNS rebinding (loopback names only, plus what
//! `--allowed-host` lists), callers authenticated ([`auth`]), and every resource a client can
//! hold bounded: connections, sessions ([`sessions`]), header and body time, request rate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::server::{McpServer, Surface};

pub mod auth;
pub mod auth_file;
mod guard;
mod io;
pub mod oauth;
pub mod rate;
pub mod sessions;
pub mod settings;
mod tls;

pub use auth::Authenticator;
use guard::{Gate, Peer};
use io::SharedIo;
use rate::RateLimit;
use sessions::Sessions;

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
/// Every setting of [`settings::ServiceSettings`] applies: authentication (see [`auth`]),
/// the caps on connections and sessions, the header and body deadlines and the rate limit.
pub async fn serve(
    surface: Arc<Surface>,
    prepared: Prepared,
    cancel: CancellationToken,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let settings = surface.ctx().settings.clone();
    let service_settings = &settings.service;
    let bind = settings.bind;
    if !bind.ip().is_loopback() && settings.allowed_hosts.is_empty() {
        tracing::warn!(%bind, "listening beyond loopback, but only loopback Host names are accepted; add --allowed-host");
    }
    // The public URL's host is where clients reach the server: accepted like --allowed-host.
    let mut allowed_hosts = settings.allowed_hosts.clone();
    if let Some(host) = service_settings
        .public_url
        .as_deref()
        .and_then(|url| url.split_once("://"))
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .filter(|host| !host.is_empty())
    {
        allowed_hosts.push(host.to_ascii_lowercase());
    }
    let config = http_config(&allowed_hosts, cancel.clone());
    let sessions = Arc::new(Sessions::new(
        service_settings.max_sessions,
        service_settings.session_idle,
    ));
    let service = StreamableHttpService::new(
        move || Ok(McpServer::new(Arc::clone(&surface))),
        Arc::clone(&sessions),
        config,
    );
    let Prepared { auth, tls } = prepared;
    let metadata = auth.resource_metadata().cloned();
    let gate = Arc::new(Gate {
        auth,
        rate: RateLimit::new(service_settings.rate_limit_per_minute),
        sessions,
        body_timeout: service_settings.body_timeout,
        max_body_bytes: MAX_REQUEST_BODY_BYTES,
    });
    let mut router = axum::Router::new()
        .nest_service(MCP_PATH, service)
        .layer(axum::middleware::from_fn_with_state(gate, guard::guard));
    if let Some(metadata) = metadata {
        // Public, as RFC 9728 means it: a client reads it to learn where to get a token.
        let resource = metadata["resource"].as_str().unwrap_or_default().to_owned();
        let (_, path) = oauth::split_origin(&resource);
        let document = axum::Json(metadata);
        let mut paths = vec![WELL_KNOWN_RESOURCE.to_owned()];
        if !path.is_empty() {
            paths.push(format!("{WELL_KNOWN_RESOURCE}{path}"));
        }
        for path in paths {
            let document = document.clone();
            router = router.route(&path, axum::routing::get(move || async move { document }));
        }
    }
    let listener = TcpListener::bind(bind).await?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, path = MCP_PATH, tls = tls.is_some(), "serving MCP over streamable HTTP");
    on_bound(local);
    accept_loop(
        listener,
        tls,
        router,
        service_settings.max_connections,
        service_settings.header_timeout,
        cancel,
    )
    .await;
    Ok(())
}

const WELL_KNOWN_RESOURCE: &str = "/.well-known/oauth-protected-resource";

/// What serving needs beyond the settings, read before the port is bound so that a bad auth
/// file or certificate stops start-up with its message.
pub struct Prepared {
    pub auth: Authenticator,
    pub tls: Option<TlsAcceptor>,
}

impl Prepared {
    pub fn new(ctx: &crate::context::Ctx) -> Result<Prepared, String> {
        let auth = Authenticator::build(ctx)?;
        let tls = match &ctx.settings.service.tls {
            Some((cert, key)) => Some(tls::acceptor(cert, key)?),
            None => None,
        };
        Ok(Prepared { auth, tls })
    }
}

/// Accepts until cancelled: at most `max_connections` at once (503 beyond), each with hyper's
/// header-read deadline (408 when a first request's headers are late).
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: axum::Router,
    max_connections: usize,
    header_timeout: Duration,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, mostly: wait rather than spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Answers go out in several writes (headers, SSE events): without this, Nagle's
                // algorithm and the peer's delayed ACK add 40 ms to each.
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, %error, "TCP_NODELAY not set");
                }
                let slot = Arc::clone(&slots).try_acquire_owned();
                let served = slot.is_ok();
                let (router, cancel, tls) = (router.clone(), cancel.clone(), tls.clone());
                let work = async move {
                    // The handshake is bounded like the headers: a client that stalls in it
                    // holds a slot no longer than one that stalls in its request.
                    match tls {
                        None => handle(stream, slot, peer, router, header_timeout, max_connections, cancel).await,
                        Some(acceptor) => match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => handle(stream, slot, peer, router, header_timeout, max_connections, cancel).await,
                            Ok(Err(error)) => tracing::info!(%peer, %error, "TLS handshake failed"),
                            Err(_) => tracing::info!(%peer, "TLS handshake not finished in time"),
                        },
                    }
                };
                if served {
                    connections.spawn(work);
                } else {
                    // Refusals are not tracked: each ends within a second on its own.
                    tokio::spawn(work);
                }
            }
        }
    }
    connections.shutdown().await;
}

/// Serves the connection if it got a slot, else refuses it with 503.
async fn handle<T>(
    stream: T,
    slot: Result<OwnedSemaphorePermit, TryAcquireError>,
    peer: SocketAddr,
    router: axum::Router,
    header_timeout: Duration,
    max_connections: usize,
    cancel: CancellationToken,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match slot {
        Ok(slot) => {
            serve_connection(stream, peer, router, header_timeout, cancel).await;
            drop(slot);
        }
        Err(_) => {
            tracing::info!(%peer, max_connections, "connection refused: at the cap");
            refuse_connection(stream, max_connections).await;
        }
    }
}

async fn serve_connection<T>(
    stream: T,
    peer: SocketAddr,
    router: axum::Router,
    header_timeout: Duration,
    cancel: CancellationToken,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stream = SharedIo::new(stream);
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        counted.fetch_add(1, Ordering::Relaxed);
        request.extensions_mut().insert(Peer(peer));
        router.clone().oneshot(request)
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream.clone()), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::time::timeout(Duration::from_secs(1), connection).await.unwrap_or(Ok(()))
        }
    };
    if let Err(error) = result {
        // A late first request is told why; an idle kept-alive connection just closes.
        if error.is_timeout() && requests.load(Ordering::Relaxed) == 0 {
            tracing::info!(%peer, "connection closed: request headers not received in time");
            let body = format!(
                "the request headers did not arrive within {} s (REGISTRY_MCP_HEADER_TIMEOUT_SECONDS)\n",
                header_timeout.as_secs()
            );
            let response = format!(
                "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let mut stream = stream;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                stream.write_all(response.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
        } else {
            tracing::debug!(%peer, %error, "connection ended");
        }
    }
}

/// Answers 503 on a connection beyond the cap, then drains what the client sent (so that the
/// close does not reset the answer away) for at most a second.
async fn refuse_connection<T: AsyncRead + AsyncWrite + Unpin>(
    mut stream: T,
    max_connections: usize,
) {
    let body = format!(
        "the server holds its most connections ({max_connections}, REGISTRY_MCP_MAX_CONNECTIONS); retry shortly\n"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}
