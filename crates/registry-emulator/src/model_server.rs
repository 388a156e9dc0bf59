//! Fake model servers for `discover_api_spec` tests: an OpenAI-compatible one, an audio one
//! and a plain FastAPI one. Mount them under a prefix with `Router::nest` to emulate
//! endpoint URLs such as `http://host:9002/audio`.

use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

fn openapi(title: &str, paths: Value) -> Json<Value> {
    Json(json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": "0.4.2" },
        "paths": paths,
    }))
}

/// Looks like vLLM's OpenAI-compatible server. `GET /v1/chat/completions` answers 405.
pub fn openai_like_router() -> Router {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async {
                openapi(
                    "vLLM OpenAI-Compatible Server",
                    json!({
                        "/health": { "get": {} },
                        "/v1/models": { "get": {} },
                        "/v1/chat/completions": { "post": {} },
                        "/v1/completions": { "post": {} },
                        "/v1/embeddings": { "post": {} },
                    }),
                )
            }),
        )
        .route("/health", get(|| async { "" }))
        .route(
            "/v1/models",
            get(|| async {
                Json(json!({
                    "object": "list",
                    "data": [{ "id": "llama-3-70b-instruct", "object": "model", "owned_by": "vllm" }],
                }))
            }),
        )
        .route(
            "/v1/chat/completions",
            post(|| async {
                Json(json!({
                    "id": "chatcmpl-1", "object": "chat.completion",
                    "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hello." }, "finish_reason": "stop" }],
                }))
            }),
        )
        .route(
            "/v1/completions",
            post(|| async { Json(json!({ "id": "cmpl-1", "object": "text_completion", "choices": [] })) }),
        )
        .route(
            "/v1/embeddings",
            post(|| async { Json(json!({ "object": "list", "data": [] })) }),
        )
}

/// Looks like the internal Whisper audio server (FastAPI with an OpenAPI document).
pub fn audio_like_router() -> Router {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async {
                openapi(
                    "Audio Server",
                    json!({
                        "/health": { "get": {} },
                        "/v1/audio/transcriptions": { "post": {} },
                    }),
                )
            }),
        )
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route(
            "/v1/audio/transcriptions",
            post(|| async { Json(json!({ "text": "" })) }),
        )
}

/// A plain FastAPI service: an OpenAPI document, `/health` and `POST /predict`.
pub fn fastapi_like_router() -> Router {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async {
                openapi(
                    "Custom Predictor",
                    json!({ "/health": { "get": {} }, "/predict": { "post": {} } }),
                )
            }),
        )
        .route("/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/predict", post(|| async { Json(json!({ "score": 0.5 })) }))
}
