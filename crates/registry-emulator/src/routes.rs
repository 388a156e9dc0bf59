//! The HTTP surface: every endpoint of the contract under `/api`, plus `/_emulator` controls.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{AdminRole, Auth, JsonBody, OperatorRole, Params, ViewerRole};
use crate::faults::{FaultSpec, Faults, RequestLog};
use crate::model::{
    BUILD_STATUSES, DEPLOYMENT_STATUSES, ENVIRONMENTS, SEARCH_TYPES, SERVER_TYPES, SOURCES,
};
use crate::state::{
    EmulatorState, ModelUpdate, NewBenchmark, NewBuild, NewDeployment, NewModel, NewVersion,
};
use crate::storage;
use crate::validate::BodyCheck;

type Reply = ApiResult<Json<Value>>;
type Created = ApiResult<(StatusCode, Json<Value>)>;

/// A single path segment; undecodable segments answer 404 rather than axum's text.
struct Id(String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| Id(id))
            .map_err(|_| ApiError::Status(StatusCode::NOT_FOUND, "Not Found".to_owned()))
    }
}

const LOG_LINES_DEFAULT: i64 = 100;
const LOG_LINES_MAX: i64 = 10_000;
const SEARCH_LIMIT_DEFAULT: i64 = 20;

fn lines_param(q: &mut crate::validate::QueryCheck) -> usize {
    usize::try_from(q.int("lines", LOG_LINES_DEFAULT, 1, LOG_LINES_MAX)).unwrap_or(100)
}

fn to_u32(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]*$";

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

// ----- auth -----

async fn me(Auth(caller, _): Auth<ViewerRole>) -> Reply {
    Ok(Json(json!({ "name": caller.name, "role": caller.role })))
}

// ----- models -----

async fn list_models(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Params(mut q): Params,
) -> Reply {
    let search = q.opt_str("search");
    let server_type = q.opt_enum("server_type", SERVER_TYPES);
    let source = q.opt_enum("source", SOURCES);
    let page = q.page();
    q.finish()?;
    Ok(Json(s.db().list_models(
        search.as_deref(),
        server_type.as_deref(),
        source.as_deref(),
        page,
    )?))
}

async fn get_model(_: Auth<ViewerRole>, State(s): State<EmulatorState>, Id(id): Id) -> Reply {
    Ok(Json(s.db().get_model(&id)?))
}

async fn create_model(
    Auth(caller, _): Auth<OperatorRole>,
    State(s): State<EmulatorState>,
    JsonBody(body): JsonBody,
) -> Created {
    let mut c = BodyCheck::new(body)?;
    let name = c.req_str("name");
    if !name.is_empty() && !valid_name(&name) {
        c.invalid(
            "name",
            format!("String should match pattern '{NAME_PATTERN}'"),
            "string_pattern_mismatch",
        );
    }
    let new = NewModel {
        name,
        storage_path: c.req_str("storage_path"),
        server_type: c.req_enum("server_type", SERVER_TYPES),
        source: c.opt_enum("source", SOURCES),
        description: c.opt_str("description"),
        tags: c.opt_str_list("tags"),
        requires_gpu: c.opt_bool("requires_gpu"),
    };
    c.finish()?;
    Ok((
        StatusCode::CREATED,
        Json(s.db().create_model(&caller, new)?),
    ))
}

async fn update_model(
    Auth(caller, _): Auth<OperatorRole>,
    State(s): State<EmulatorState>,
    Id(id): Id,
    JsonBody(body): JsonBody,
) -> Reply {
    let mut c = BodyCheck::new(body)?;
    let update = ModelUpdate {
        description: c.opt_str("description"),
        tags: c.opt_str_list("tags"),
        metadata: c.opt_object("metadata"),
    };
    c.finish()?;
    Ok(Json(s.db().update_model(&caller, &id, update)?))
}

async fn delete_model(
    Auth(caller, _): Auth<AdminRole>,
    State(s): State<EmulatorState>,
    Id(id): Id,
) -> Reply {
    Ok(Json(s.db().delete_model(&caller, &id)?))
}

// ----- versions -----

async fn list_versions(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Params(mut q): Params,
) -> Reply {
    let model_name = q.opt_str("model_name");
    let is_release = q.opt_bool("is_release");
    let page = q.page();
    q.finish()?;
    Ok(Json(s.db().list_versions(
        model_name.as_deref(),
        is_release,
        page,
    )?))
}

async fn get_version(_: Auth<ViewerRole>, State(s): State<EmulatorState>, Id(id): Id) -> Reply {
    Ok(Json(s.db().get_version(&id)?))
}

async fn latest_version(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Id(name): Id,
) -> Reply {
    Ok(Json(s.db().latest_version(&name)?))
}

async fn create_version(
    Auth(caller, _): Auth<OperatorRole>,
    State(s): State<EmulatorState>,
    JsonBody(body): JsonBody,
) -> Created {
    let mut c = BodyCheck::new(body)?;
    let new = NewVersion {
        model_name: c.req_str("model_name"),
        version: c.req_str("version"),
        tag: c.opt_str("tag"),
        digest: c.opt_str("digest"),
        ceph_path: c.opt_str("ceph_path"),
        quantization: c.opt_str("quantization"),
        is_release: c.opt_bool("is_release"),
        auto_build: c.opt_bool("auto_build"),
    };
    c.finish()?;
    Ok((
        StatusCode::CREATED,
        Json(s.db().create_version(&caller, new)?),
    ))
}

async fn promote_version(
    Auth(caller, _): Auth<OperatorRole>,
    State(s): State<EmulatorState>,
    Id(id): Id,
    JsonBody(body): JsonBody,
) -> Reply {
    let mut c = BodyCheck::new(body)?;
    let is_release = c.req_bool("is_release");
    c.finish()?;
    Ok(Json(s.db().promote_version(&caller, &id, is_release)?))
}

// ----- deployments -----

async fn list_deployments(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Params(mut q): Params,
) -> Reply {
    let status = q.opt_enum("status", DEPLOYMENT_STATUSES);
    let environment = q.opt_enum("environment", ENVIRONMENTS);
    let model_name = q.opt_str("model_name");
    let page = q.page();
    q.finish()?;
    Ok(Json(s.db().list_deployments(
        status.as_deref(),
        environment.as_deref(),
        model_name.as_deref(),
        page,
    )?))
}

async fn get_deployment(_: Auth<ViewerRole>, State(s): State<EmulatorState>, Id(id): Id) -> Reply {
    Ok(Json(s.db().get_deployment(&id)?))
}

async fn deployment_status(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Id(id): Id,
) -> Reply {
    Ok(Json(s.db().deployment_status(&id)?))
}

async fn deployment_logs(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Id(id): Id,
    Params(mut q): Params,
) -> Reply {
    let lines = lines_param(&mut q);
    q.finish()?;
    Ok(Json(s.db().deployment_logs(&id, lines)?))
}

async fn deployment_health(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Id(id): Id,
) -> Reply {
    Ok(Json(s.db().deployment_health(&id)?))
}

async fn benchmark_summary(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Id(id): Id,
) -> Reply {
    Ok(Json(s.db().benchmark_summary(&id)?))
}

async fn execute_deployment(
    Auth(caller, _): Auth<OperatorRole>,
    State(s): State<EmulatorState>,
    JsonBody(body): JsonBody,
) -> Created {
    let mut c = BodyCheck::new(body)?;
    let new = NewDeployment {
        version_id: c.req_str("version_id"),
        environment: c.req_enum("environment", ENVIRONMENTS),
        gpu_enabled: c.opt_bool("gpu_enabled"),
        deployment_type: c.opt_enum("deployment_type", SERVER_TYPES),
    };
    c.finish()?;
    Ok((
        StatusCode::CREATED,
        Json(s.db().execute_deployment(&caller, new)?),
    ))
}

async fn stop_deployment(
    Auth(caller, _): Auth<OperatorRole>,
    State(s): State<EmulatorState>,
    Id(id): Id,
) -> Reply {
    Ok(Json(s.db().stop_deployment(&caller, &id)?))
}

async fn start_deployment(
    Auth(caller, _): Auth<OperatorRole>,
    State(s): State<EmulatorState>,
    Id(id): Id,
) -> Reply {
    Ok(Json(s.db().start_deployment(&caller, &id)?))
}

async fn restart_deployment(
    Auth(caller, _): Auth<OperatorRole>,
    State(s): State<EmulatorState>,
    Id(id): Id,
) -> Reply {
    Ok(Json(s.db().restart_deployment(&caller, &id)?))
}

// ----- docker -----

async fn list_builds(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Params(mut q): Params,
) -> Reply {
    let version_id = q.opt_str("version_id");
    let status = q.opt_enum("status", BUILD_STATUSES);
    let page = q.page();
    q.finish()?;
    Ok(Json(s.db().list_builds(
        version_id.as_deref(),
        status.as_deref(),
        page,
    )?))
}

async fn get_build(_: Auth<ViewerRole>, State(s): State<EmulatorState>, Id(id): Id) -> Reply {
    Ok(Json(s.db().get_build(&id)?))
}

async fn build_logs(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Id(id): Id,
    Params(mut q): Params,
) -> Reply {
    let lines = lines_param(&mut q);
    q.finish()?;
    Ok(Json(s.db().build_logs(&id, lines)?))
}

async fn trigger_build(
    Auth(caller, _): Auth<OperatorRole>,
    State(s): State<EmulatorState>,
    JsonBody(body): JsonBody,
) -> Created {
    let mut c = BodyCheck::new(body)?;
    let new = NewBuild {
        version_id: c.req_str("version_id"),
        build_type: c.req_str("build_type"),
        image_tag: c.opt_str("image_tag"),
    };
    c.finish()?;
    Ok((
        StatusCode::CREATED,
        Json(s.db().trigger_build(&caller, new)?),
    ))
}

async fn disk_usage(_: Auth<ViewerRole>, State(s): State<EmulatorState>) -> Reply {
    Ok(Json(s.db().disk_usage()))
}

// ----- benchmarks -----

async fn list_benchmarks(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Params(mut q): Params,
) -> Reply {
    let deployment_id = q.opt_str("deployment_id");
    let page = q.page();
    q.finish()?;
    Ok(Json(
        s.db().list_benchmarks(deployment_id.as_deref(), page)?,
    ))
}

async fn get_benchmark(_: Auth<ViewerRole>, State(s): State<EmulatorState>, Id(id): Id) -> Reply {
    Ok(Json(s.db().get_benchmark(&id)?))
}

async fn run_benchmark(
    Auth(caller, _): Auth<OperatorRole>,
    State(s): State<EmulatorState>,
    JsonBody(body): JsonBody,
) -> Created {
    let mut c = BodyCheck::new(body)?;
    let deployment_id = c.req_str("deployment_id");
    let endpoint_path = c.req_str("endpoint_path");
    if !endpoint_path.is_empty() && !endpoint_path.starts_with('/') {
        c.invalid(
            "endpoint_path",
            "String should match pattern '^/'",
            "string_pattern_mismatch",
        );
    }
    let concurrent_requests = to_u32(c.req_int("concurrent_requests", 1, 256));
    let total_requests = to_u32(c.req_int("total_requests", 1, 100_000));
    c.opt_object("request_body");
    c.finish()?;
    let new = NewBenchmark {
        deployment_id,
        endpoint_path,
        concurrent_requests,
        total_requests,
    };
    Ok((
        StatusCode::CREATED,
        Json(s.db().run_benchmark(&caller, new)?),
    ))
}

// ----- artifacts -----

async fn list_artifacts(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Params(mut q): Params,
) -> Reply {
    let version_id = q.opt_str("version_id");
    let model_id = q.opt_str("model_id");
    let artifact_type = q.opt_str("artifact_type");
    let page = q.page();
    q.finish()?;
    Ok(Json(s.db().list_artifacts(
        version_id.as_deref(),
        model_id.as_deref(),
        artifact_type.as_deref(),
        page,
    )?))
}

async fn get_artifact(_: Auth<ViewerRole>, State(s): State<EmulatorState>, Id(id): Id) -> Reply {
    Ok(Json(s.db().get_artifact(&id)?))
}

// ----- system -----

async fn system_health(_: Auth<ViewerRole>, State(s): State<EmulatorState>) -> Reply {
    let root_ok = s.storage_root().is_dir();
    Ok(Json(s.db().system_health(root_ok)))
}

async fn audit_logs(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Params(mut q): Params,
) -> Reply {
    let action = q.opt_str("action");
    let resource_type = q.opt_str("resource_type");
    let page = q.page();
    q.finish()?;
    Ok(Json(s.db().audit_logs(
        action.as_deref(),
        resource_type.as_deref(),
        page,
    )?))
}

async fn storage_usage(_: Auth<ViewerRole>, State(s): State<EmulatorState>) -> Reply {
    let root = s.storage_root().to_path_buf();
    let capacity = s.db().storage_capacity_bytes;
    let usage = tokio::task::spawn_blocking(move || storage::usage(&root, capacity))
        .await
        .map_err(|e| ApiError::internal(format!("storage scan failed: {e}")))?;
    Ok(Json(usage))
}

async fn storage_browse(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Params(q): Params,
) -> Reply {
    let path = q.opt_str("path").unwrap_or_default();
    let root = s.storage_root().to_path_buf();
    let listing = tokio::task::spawn_blocking(move || storage::browse(&root, &path))
        .await
        .map_err(|e| ApiError::internal(format!("storage scan failed: {e}")))??;
    Ok(Json(listing))
}

async fn search(
    _: Auth<ViewerRole>,
    State(s): State<EmulatorState>,
    Params(mut q): Params,
) -> Reply {
    let text = q.req_str("q");
    let types: Vec<String> = q
        .opt_str("types")
        .map(|t| {
            t.split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let limit = usize::try_from(q.int("limit", SEARCH_LIMIT_DEFAULT, 1, 500)).unwrap_or(20);
    let unknown: Vec<&String> = types
        .iter()
        .filter(|t| !SEARCH_TYPES.contains(&t.as_str()))
        .collect();
    q.finish().map_err(|e| merge_unknown_types(e, &unknown))?;
    if !unknown.is_empty() {
        return Err(merge_unknown_types(
            ApiError::Validation(Vec::new()),
            &unknown,
        ));
    }
    Ok(Json(s.db().search(&text, &types, limit)?))
}

fn merge_unknown_types(error: ApiError, unknown: &[&String]) -> ApiError {
    match error {
        ApiError::Validation(mut errors) => {
            for t in unknown {
                errors.push(FieldError::new(
                    vec!["query".into(), "types".into()],
                    format!("Input should be 'models', 'versions' or 'deployments' (got '{t}')"),
                    "enum",
                ));
            }
            ApiError::Validation(errors)
        }
        other => other,
    }
}

async fn not_found() -> ApiError {
    ApiError::Status(StatusCode::NOT_FOUND, "Not Found".to_owned())
}

async fn method_not_allowed() -> ApiError {
    ApiError::Status(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed".to_owned(),
    )
}

/// The `/v1` API, to be nested under the base path (`/api`).
pub fn api_router(state: EmulatorState) -> Router {
    Router::new()
        .route("/v1/auth/me", get(me))
        .route("/v1/models", get(list_models).post(create_model))
        .route(
            "/v1/models/{model_id}",
            get(get_model).patch(update_model).delete(delete_model),
        )
        .route(
            "/v1/models/by-name/{model_name}/versions/latest",
            get(latest_version),
        )
        .route("/v1/versions", get(list_versions).post(create_version))
        .route("/v1/versions/{version_id}", get(get_version))
        .route("/v1/versions/{version_id}/promote", post(promote_version))
        .route(
            "/v1/deployments",
            get(list_deployments).post(execute_deployment),
        )
        .route("/v1/deployments/{id}", get(get_deployment))
        .route("/v1/deployments/{id}/status", get(deployment_status))
        .route("/v1/deployments/{id}/logs", get(deployment_logs))
        .route("/v1/deployments/{id}/health", get(deployment_health))
        .route(
            "/v1/deployments/{id}/benchmark-summary",
            get(benchmark_summary),
        )
        .route("/v1/deployments/{id}/stop", post(stop_deployment))
        .route("/v1/deployments/{id}/start", post(start_deployment))
        .route("/v1/deployments/{id}/restart", post(restart_deployment))
        .route("/v1/docker/builds", get(list_builds).post(trigger_build))
        .route("/v1/docker/builds/{id}", get(get_build))
        .route("/v1/docker/builds/{id}/logs", get(build_logs))
        .route("/v1/docker/disk-usage", get(disk_usage))
        .route("/v1/benchmarks", get(list_benchmarks).post(run_benchmark))
        .route("/v1/benchmarks/{id}", get(get_benchmark))
        .route("/v1/artifacts", get(list_artifacts))
        .route("/v1/artifacts/{id}", get(get_artifact))
        .route("/v1/system/health", get(system_health))
        .route("/v1/system/audit-logs", get(audit_logs))
        .route("/v1/system/storage", get(storage_usage))
        .route("/v1/system/storage/browse", get(storage_browse))
        .route("/v1/search", get(search))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

// ----- emulator controls (outside the API) -----

async fn get_faults(State(faults): State<Faults>) -> Json<Value> {
    Json(json!({ "active": faults.current() }))
}

async fn set_faults(
    State(faults): State<Faults>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let spec: FaultSpec = serde_json::from_value(body).map_err(|e| {
        ApiError::Validation(vec![FieldError::new(
            vec!["body".into()],
            e.to_string(),
            "value_error",
        )])
    })?;
    faults.set(spec.clone());
    Ok(Json(json!({ "active": spec })))
}

async fn clear_faults(State(faults): State<Faults>) -> Json<Value> {
    faults.clear();
    Json(json!({ "active": null }))
}

async fn get_requests(State(log): State<RequestLog>) -> impl IntoResponse {
    Json(log.snapshot())
}

async fn clear_requests(State(log): State<RequestLog>) -> Json<Value> {
    log.clear();
    Json(json!({ "cleared": true }))
}

/// `/_emulator/faults` (GET, POST a [`FaultSpec`], DELETE) and `/_emulator/requests` (GET, DELETE).
pub fn control_router(faults: Faults, log: RequestLog) -> Router {
    Router::new()
        .route(
            "/_emulator/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .with_state(faults)
        .merge(
            Router::new()
                .route(
                    "/_emulator/requests",
                    get(get_requests).delete(clear_requests),
                )
                .with_state(log),
        )
}
