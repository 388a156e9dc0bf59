//! Switchable faults (slow answers, error statuses, dropped connections) and the request log.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;

use crate::error::ApiError;

/// What to do to matching requests. All fields optional; an empty spec does nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSpec {
    /// Delay before answering (or before the status/drop below).
    pub slow_ms: Option<u64>,
    /// Answer this status with `{"detail": "injected fault: HTTP <status>"}` instead of the real answer.
    pub status: Option<u16>,
    /// Close the TCP connection without answering.
    pub drop_connection: bool,
    /// Affect only the next N matching requests; absent = until cleared.
    pub for_next_n: Option<u32>,
    /// Only these HTTP methods (e.g. `["GET"]`); absent = all.
    pub methods: Option<Vec<String>>,
    /// Only paths starting with this (relative to the API base, e.g. `/v1/models`); absent = all.
    pub path_prefix: Option<String>,
}

#[derive(Debug, Clone)]
struct ActiveFault {
    spec: FaultSpec,
    remaining: Option<u32>,
}

/// The fault switch shared by the server and tests.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    active: Arc<Mutex<Option<ActiveFault>>>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Option<ActiveFault>> {
        self.active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the active fault. `for_next_n: Some(0)` affects nothing (it clears).
    pub fn set(&self, spec: FaultSpec) {
        let remaining = spec.for_next_n;
        *self.lock() = (remaining != Some(0)).then_some(ActiveFault { spec, remaining });
    }

    pub fn clear(&self) {
        *self.lock() = None;
    }

    pub fn current(&self) -> Option<FaultSpec> {
        self.lock().as_ref().map(|a| a.spec.clone())
    }

    /// The fault to apply to this request, counting it against `for_next_n`.
    fn take(&self, method: &Method, path: &str) -> Option<FaultSpec> {
        let mut guard = self.lock();
        let active = guard.as_mut()?;
        let spec = &active.spec;
        if let Some(methods) = &spec.methods
            && !methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method.as_str()))
        {
            return None;
        }
        if let Some(prefix) = &spec.path_prefix
            && !path.starts_with(prefix.as_str())
        {
            return None;
        }
        let spec = spec.clone();
        if let Some(remaining) = active.remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                *guard = None;
            }
        }
        Some(spec)
    }
}

/// Per-connection switch the server loop watches; notifying it drops the connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectionKill(pub Arc<Notify>);

/// One request as it arrived. The API key itself is never recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Relative to the API base (`/v1/models`), as the contract writes paths.
    pub path: String,
    pub query: Option<String>,
    /// The body as JSON when it parses, else as a string; absent when empty.
    pub body: Option<Value>,
    pub api_key_present: bool,
    /// The name of the seeded key it authenticated with (the audit log's name for the caller);
    /// `None` without a key or with an unknown one.
    #[serde(default)]
    pub api_key_name: Option<String>,
}

/// The request log shared by the server and tests.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    entries: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl RequestLog {
    fn lock(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a request; beyond [`MAX_LOG_ENTRIES`] the oldest entries are dropped.
    pub fn push(&self, request: RecordedRequest) {
        let mut entries = self.lock();
        if entries.len() >= MAX_LOG_ENTRIES {
            let excess = entries.len() + 1 - MAX_LOG_ENTRIES;
            entries.drain(..excess);
        }
        entries.push(request);
    }

    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many recorded requests have this method and path.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.lock()
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
            .count()
    }
}

/// The request log keeps the newest this many requests (a long demo run stays bounded).
pub const MAX_LOG_ENTRIES: usize = 10_000;
/// Bodies up to this size are recorded; bigger ones are noted by size only.
pub const MAX_RECORDED_BODY: usize = 64 * 1024;

fn too_large() -> Response {
    ApiError::Status(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "Request body too large (limit {} bytes)",
            crate::MAX_BODY_BYTES
        ),
    )
    .into_response()
}

fn recorded_body(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        None
    } else if bytes.len() > MAX_RECORDED_BODY {
        Some(Value::String(format!(
            "<{} bytes, not recorded>",
            bytes.len()
        )))
    } else {
        Some(
            serde_json::from_slice(bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())),
        )
    }
}

/// Records the request (buffering its body), then applies any matching fault.
pub async fn record_and_inject(
    State((log, faults, state)): State<(RequestLog, Faults, crate::state::EmulatorState)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    // Refuse a declared oversize body before reading any of it; cap the rest while reading.
    let declared = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > crate::MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let Ok(bytes) = axum::body::to_bytes(body, crate::MAX_BODY_BYTES).await else {
        return too_large();
    };
    let path = parts.uri.path().to_owned();
    log.push(RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        body: recorded_body(&bytes),
        api_key_present: parts.headers.contains_key("x-api-key"),
        api_key_name: parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .and_then(|key| state.db().authenticate(key))
            .map(|caller| caller.name),
    });
    if let Some(fault) = faults.take(&parts.method, &path) {
        if let Some(ms) = fault.slow_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if fault.drop_connection {
            match parts.extensions.get::<ConnectionKill>() {
                Some(kill) => {
                    kill.0.notify_one();
                    // The connection task drops this future; never answer.
                    std::future::pending::<()>().await;
                }
                None => {
                    return ApiError::Status(
                        StatusCode::BAD_GATEWAY,
                        "injected fault: connection drop unsupported here".to_owned(),
                    )
                    .into_response();
                }
            }
        }
        if let Some(status) = fault.status {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return ApiError::Status(status, format!("injected fault: HTTP {}", status.as_u16()))
                .into_response();
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Records only (for the fake model servers).
pub async fn record_only(State(log): State<RequestLog>, request: Request, next: Next) -> Response {
    log.push(RecordedRequest {
        method: request.method().as_str().to_owned(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().map(str::to_owned),
        body: None,
        api_key_present: request.headers().contains_key("x-api-key"),
        api_key_name: None,
    });
    next.run(request).await
}
