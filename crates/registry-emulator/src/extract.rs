//! Extractors: API-key roles, query parameters and JSON bodies, all answering FastAPI-shaped errors.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::Value;

use crate::error::{ApiError, FieldError};
use crate::model::Role;
use crate::state::{Caller, EmulatorState};
use crate::validate::QueryCheck;

pub trait RequiredRole {
    const ROLE: Role;
}
pub struct ViewerRole;
pub struct OperatorRole;
pub struct AdminRole;
impl RequiredRole for ViewerRole {
    const ROLE: Role = Role::Viewer;
}
impl RequiredRole for OperatorRole {
    const ROLE: Role = Role::Operator;
}
impl RequiredRole for AdminRole {
    const ROLE: Role = Role::Admin;
}

/// An authenticated caller whose role is at least `R::ROLE` (401 / 403 otherwise).
pub struct Auth<R>(pub Caller, pub PhantomData<R>);

impl<R: RequiredRole> FromRequestParts<EmulatorState> for Auth<R> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &EmulatorState,
    ) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Not authenticated: missing X-API-Key header"))?;
        let caller = state
            .db()
            .authenticate(key)
            .ok_or_else(|| ApiError::unauthorized("Invalid API key"))?;
        if caller.role < R::ROLE {
            return Err(ApiError::forbidden(format!(
                "Insufficient permissions: requires role '{}' (API key '{}' has role '{}')",
                R::ROLE,
                caller.name,
                caller.role
            )));
        }
        Ok(Auth(caller, PhantomData))
    }
}

/// Raw query pairs; a malformed query string answers 422 like FastAPI.
pub struct Params(pub QueryCheck);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|Query(pairs)| Params(QueryCheck::new(pairs)))
            .map_err(|e| {
                ApiError::Validation(vec![FieldError::new(
                    vec!["query".into()],
                    format!("Invalid query string: {}", e.body_text()),
                    "value_error",
                )])
            })
    }
}

/// A JSON body (any JSON value); empty or malformed bodies answer 422 like FastAPI.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::Status(status, "Request body too large".to_owned())
            } else {
                ApiError::bad_request(format!("cannot read request body: {}", e.body_text()))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::Validation(vec![FieldError::new(
                vec!["body".into()],
                "Field required",
                "missing",
            )]));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::Validation(vec![FieldError::new(
                vec!["body".into(), e.column().into()],
                format!("JSON decode error: {e}"),
                "json_invalid",
            )])
        })
    }
}
