//! Version tools: the versions of a model (tag, digest, storage path, quantisation, release flag).

use std::fmt::Write as _;

use registry_client::{NewVersion, Version, VersionFilter};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Render, ToolError, ToolSpec, effective_limit, tool};
use crate::catalog::{CatalogEntry, ToolClass, Toolset, entry};
use crate::context::Ctx;
use crate::registry::{JsonMap, Paging, client, failed, fit_page, id, non_blank};

/// This group's rows of the tool catalog (`crate::catalog`), in the contract's order.
pub const CATALOG: &[CatalogEntry] = &[
    entry("list_versions", Toolset::Versions, ToolClass::Read),
    entry("get_version", Toolset::Versions, ToolClass::Read),
    entry("get_latest_version", Toolset::Versions, ToolClass::Read),
    entry("create_version", Toolset::Versions, ToolClass::Write),
    entry("promote_version", Toolset::Versions, ToolClass::Write),
];

pub fn tools() -> Vec<ToolSpec> {
    vec![
        tool(
            "list_versions",
            "List model versions",
            "List versions of registry models, newest first; filter by exact `model_name` and/or \
             `is_release`. Use to pick a version_id for trigger_docker_build or \
             execute_deployment. Newest of one model: get_latest_version.",
            list_versions,
        ),
        tool(
            "get_version",
            "Get a version",
            "Full record of one model version by `version_id`: tag, digest, storage (ceph) path, \
             quantization, release flag and when it was promoted. Newest: get_latest_version.",
            get_version,
        ),
        tool(
            "get_latest_version",
            "Latest version of a model",
            "The newest version (by creation time, release or not) of the model with this exact \
             `model_name` (not its id). Check `is_release` before deploying it; use list_versions \
             with is_release=true for the newest release.",
            get_latest_version,
        ),
        tool(
            "create_version",
            "Create a model version",
            "Register a new version of an existing model (write; operator key). `auto_build` also \
             starts a Docker image build and returns its `build_id` (poll get_docker_build). \
             Uploads no files: `ceph_path` must already exist on storage.",
            create_version,
        ),
        tool(
            "promote_version",
            "Promote a version",
            "Mark a version as a release (`is_release` true, the default) or take the mark away \
             (false). Write, idempotent; operator key. Other versions keep their flags. Deploys \
             nothing.",
            promote_version,
        ),
    ]
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListVersionsParams {
    /// Exact model name.
    #[serde(default)]
    pub model_name: Option<String>,
    #[serde(default)]
    pub is_release: Option<bool>,
    // Described once, in the server's instructions.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionIdParams {
    /// Version id (UUID).
    pub version_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelNameParams {
    /// Exact model name, e.g. `llama-3-70b-instruct`.
    pub model_name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVersionParams {
    /// Exact name of an existing model.
    pub model_name: String,
    /// Version string, unique per model, e.g. `1.2.0`.
    pub version: String,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub ceph_path: Option<String>,
    /// E.g. `fp8`, `awq`.
    #[serde(default)]
    pub quantization: Option<String>,
    #[serde(default)]
    pub is_release: Option<bool>,
    /// Also start a Docker image build.
    #[serde(default)]
    pub auto_build: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteVersionParams {
    pub version_id: String,
    /// True to mark as release (default), false to unmark.
    #[serde(default)]
    pub is_release: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListVersionsOutput {
    #[schemars(with = "Vec<JsonMap>")]
    pub versions: Vec<Version>,
    #[serde(flatten)]
    pub paging: Paging,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct VersionOutput {
    /// With `build_id` if a build started.
    #[schemars(with = "JsonMap")]
    pub version: Version,
}

async fn list_versions(
    ctx: Ctx,
    params: ListVersionsParams,
) -> Result<ListVersionsOutput, ToolError> {
    let filter = VersionFilter {
        model_name: non_blank(&params.model_name),
        is_release: params.is_release,
        limit: Some(effective_limit(params.limit, ctx.settings.max_results) as u32),
        offset: params.offset,
    };
    let page = client(&ctx)?.list_versions(&filter).await.map_err(failed)?;
    let (versions, paging) = fit_page("list_versions", &params, page);
    Ok(ListVersionsOutput { versions, paging })
}

async fn get_version(ctx: Ctx, params: VersionIdParams) -> Result<VersionOutput, ToolError> {
    let version_id = id("version_id", &params.version_id)?;
    let version = client(&ctx)?
        .get_version(version_id)
        .await
        .map_err(failed)?;
    Ok(VersionOutput { version })
}

async fn get_latest_version(ctx: Ctx, params: ModelNameParams) -> Result<VersionOutput, ToolError> {
    let name = id("model_name", &params.model_name)?;
    let version = client(&ctx)?
        .get_latest_version(name)
        .await
        .map_err(failed)?;
    Ok(VersionOutput { version })
}

async fn create_version(ctx: Ctx, params: CreateVersionParams) -> Result<VersionOutput, ToolError> {
    let new = NewVersion {
        model_name: params.model_name,
        version: params.version,
        tag: params.tag,
        digest: params.digest,
        ceph_path: params.ceph_path,
        quantization: params.quantization,
        is_release: params.is_release,
        auto_build: params.auto_build,
    };
    let version = client(&ctx)?.create_version(&new).await.map_err(failed)?;
    Ok(VersionOutput { version })
}

async fn promote_version(
    ctx: Ctx,
    params: PromoteVersionParams,
) -> Result<VersionOutput, ToolError> {
    let version_id = id("version_id", &params.version_id)?;
    let version = client(&ctx)?
        .promote_version(version_id, params.is_release.unwrap_or(true))
        .await
        .map_err(failed)?;
    Ok(VersionOutput { version })
}

pub fn version_line(v: &Version) -> String {
    let mut line = format!(
        "{} {} ({}){}",
        v.model_name,
        v.version,
        v.id,
        if v.is_release { " release" } else { "" }
    );
    if let Some(q) = &v.quantization {
        let _ = write!(line, ", {q}");
    }
    if let Some(at) = &v.created_at {
        let _ = write!(line, ", created {at}");
    }
    line
}

impl Render for ListVersionsOutput {
    fn render(&self) -> String {
        let mut text = self.paging.line("versions");
        for v in &self.versions {
            let _ = write!(text, "\n- {}", version_line(v));
        }
        text
    }
}

impl Render for VersionOutput {
    fn render(&self) -> String {
        let v = &self.version;
        let mut text = version_line(v);
        for (label, value) in [
            ("tag", &v.tag),
            ("digest", &v.digest),
            ("path", &v.ceph_path),
            ("promoted", &v.promoted_at),
            ("build started", &v.build_id),
        ] {
            if let Some(value) = value {
                let _ = write!(text, "\n{label}: {value}");
            }
        }
        text
    }
}
