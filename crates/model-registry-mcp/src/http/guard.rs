//! What every request passes before rmcp sees it: one `Host` header, a body within its size
//! and its deadline, an authenticated caller within its rate, and a session that is live and the
//! caller's own. Each refusal is its own status: 400, 401/403, 404, 408, 413, 429, 503.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Authenticator;
use super::rate::RateLimit;
use super::sessions::{Lookup, Sessions};

const SESSION_HEADER: &str = "mcp-session-id";

/// The peer of the connection a request came on (put in by the accept loop).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

pub struct Gate {
    pub auth: Authenticator,
    pub rate: Option<RateLimit>,
    pub sessions: Arc<Sessions>,
    pub body_timeout: Duration,
    pub max_body_bytes: usize,
}

pub async fn guard(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    if parts.headers.get_all(header::HOST).iter().count() != 1 {
        return refuse(
            StatusCode::BAD_REQUEST,
            "a request must carry exactly one Host header",
        );
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > gate.max_body_bytes as u64) {
        return too_large(gate.max_body_bytes);
    }
    let peer = parts
        .extensions
        .get::<Peer>()
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0);
    let caller = match gate.auth.authenticate(&parts.headers, peer).await {
        Ok(caller) => caller,
        Err(refusal) => {
            tracing::info!(%peer, ?refusal, "request refused: not authenticated");
            // Failed attempts count against the peer's address, so that guessing tokens (or
            // making the server check JWTs) is rate limited like everything else.
            if let Some(rate) = &gate.rate
                && let Err(wait) = rate.admit(&format!("peer:{}", peer.ip()))
            {
                return too_many(&format!("peer {}", peer.ip()), wait);
            }
            return gate.auth.refuse(&refusal);
        }
    };
    if let Some(rate) = &gate.rate
        && let Err(wait) = rate.admit(&caller.name)
    {
        return too_many(&caller.name, wait);
    }
    let session = parts
        .headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &session
        && gate.sessions.touch(id, &caller.name) == Lookup::NotFound
    {
        return refuse(
            StatusCode::NOT_FOUND,
            "no such session (it ended, or never was): initialize a new one",
        );
    }
    let bytes = if parts.method == Method::POST {
        match tokio::time::timeout(
            gate.body_timeout,
            axum::body::to_bytes(body, gate.max_body_bytes),
        )
        .await
        {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => return too_large(gate.max_body_bytes),
            Err(_) => {
                let mut response = refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "the request body did not arrive within {} s (REGISTRY_MCP_BODY_TIMEOUT_SECONDS)",
                        gate.body_timeout.as_secs()
                    ),
                );
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return response;
            }
        }
    } else {
        axum::body::Bytes::new()
    };
    let reservation = if parts.method == Method::POST && session.is_none() && is_initialize(&bytes)
    {
        match gate.sessions.reserve(&caller.name) {
            Ok(reservation) => Some(reservation),
            Err(full) => {
                let seconds = full.retry_after.as_secs().max(1);
                let mut response = refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "the server holds its most sessions (REGISTRY_MCP_MAX_SESSIONS), none idle \
                         long enough to give way; retry in {seconds} s"
                    ),
                );
                if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                return response;
            }
        }
    } else {
        None
    };
    tracing::debug!(caller = %caller.name, method = %parts.method, "request");
    parts.extensions.insert(caller);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if let Some(reservation) = reservation
        && let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        reservation.commit(id);
    }
    response
}

/// Whether a POST body is an `initialize` request (the only message that opens a session).
fn is_initialize(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Method {
        method: Option<String>,
    }
    serde_json::from_slice::<Method>(body).is_ok_and(|m| m.method.as_deref() == Some("initialize"))
}

fn too_many(who: &str, wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0);
    let mut response = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "{who} is over its rate limit (REGISTRY_MCP_RATE_LIMIT_PER_MINUTE); retry in {seconds} s"
        ),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("{seconds}")) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, message.to_owned()).into_response()
}

fn too_large(max: usize) -> Response {
    let mut response = refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("a request body may hold at most {max} bytes"),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
