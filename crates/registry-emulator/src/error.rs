//! FastAPI-shaped error answers: `{"detail": "..."}` and 422 `{"detail": [{loc, msg, type}]}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// One entry of a 422 `detail` list, as pydantic reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub loc: Vec<Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    pub fn new(loc: Vec<Value>, msg: impl Into<String>, kind: &str) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }
}

/// An error answer of the emulated server.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    Status(StatusCode, String),
    Validation(Vec<FieldError>),
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::Status(StatusCode::BAD_REQUEST, detail.into())
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::Status(StatusCode::UNAUTHORIZED, detail.into())
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Status(StatusCode::FORBIDDEN, detail.into())
    }
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::Status(StatusCode::NOT_FOUND, format!("{kind} '{id}' not found"))
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Status(StatusCode::CONFLICT, detail.into())
    }
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::Status(StatusCode::INTERNAL_SERVER_ERROR, detail.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Status(status, detail) => {
                (status, Json(json!({ "detail": detail }))).into_response()
            }
            ApiError::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "detail": errors })),
            )
                .into_response(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
