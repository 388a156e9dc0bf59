//! Artifact tools: files registered with a version (weights, tokenizers, wheels, binaries).

use std::fmt::Write as _;

use registry_client::{Artifact, ArtifactFilter};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Render, ToolError, ToolSpec, effective_limit, tool};
use crate::catalog::{CatalogEntry, ToolClass, Toolset, entry};
use crate::context::Ctx;
use crate::registry::{JsonMap, Paging, bytes, client, failed, fit_page, id, non_blank};

/// This group's rows of the tool catalog (`crate::catalog`), in the contract's order.
pub const CATALOG: &[CatalogEntry] = &[
    entry("list_artifacts", Toolset::Artifacts, ToolClass::Read),
    entry("get_artifact", Toolset::Artifacts, ToolClass::Read),
];

pub fn tools() -> Vec<ToolSpec> {
    vec![
        tool(
            "list_artifacts",
            "List artifacts",
            "List artifacts: files registered with model versions (weights, tokenizer, wheels, \
             binaries) with size and checksum; filter by `version_id`, `model_id`, \
             `artifact_type`. Raw files: browse_model_storage.",
            list_artifacts,
        ),
        tool(
            "get_artifact",
            "Get an artifact",
            "One artifact by `artifact_id`: name, type, file path, size, SHA-256 checksum, and the \
             version and model it belongs to. Use to verify a file before deploying its version.",
            get_artifact,
        ),
    ]
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArtifactsParams {
    #[serde(default)]
    pub version_id: Option<String>,
    #[serde(default)]
    pub model_id: Option<String>,
    /// E.g. weights, tokenizer, wheel, onnx.
    #[serde(default)]
    pub artifact_type: Option<String>,
    // Described once, in the server's instructions.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactIdParams {
    pub artifact_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListArtifactsOutput {
    #[schemars(with = "Vec<JsonMap>")]
    pub artifacts: Vec<Artifact>,
    #[serde(flatten)]
    pub paging: Paging,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ArtifactOutput {
    /// The artifact record.
    #[schemars(with = "JsonMap")]
    pub artifact: Artifact,
}

async fn list_artifacts(
    ctx: Ctx,
    params: ListArtifactsParams,
) -> Result<ListArtifactsOutput, ToolError> {
    let filter = ArtifactFilter {
        version_id: non_blank(&params.version_id),
        model_id: non_blank(&params.model_id),
        artifact_type: non_blank(&params.artifact_type),
        limit: Some(effective_limit(params.limit, ctx.settings.max_results) as u32),
        offset: params.offset,
    };
    let page = client(&ctx)?
        .list_artifacts(&filter)
        .await
        .map_err(failed)?;
    let (artifacts, paging) = fit_page("list_artifacts", &params, page);
    Ok(ListArtifactsOutput { artifacts, paging })
}

async fn get_artifact(ctx: Ctx, params: ArtifactIdParams) -> Result<ArtifactOutput, ToolError> {
    let artifact_id = id("artifact_id", &params.artifact_id)?;
    let artifact = client(&ctx)?
        .get_artifact(artifact_id)
        .await
        .map_err(failed)?;
    Ok(ArtifactOutput { artifact })
}

fn artifact_line(a: &Artifact) -> String {
    format!(
        "{} {} ({}, {}) at {}, version {}",
        a.id,
        a.name,
        a.artifact_type,
        bytes(a.size_bytes),
        a.file_path,
        a.version_id
    )
}

impl Render for ListArtifactsOutput {
    fn render(&self) -> String {
        let mut text = self.paging.line("artifacts");
        for a in &self.artifacts {
            let _ = write!(text, "\n- {}", artifact_line(a));
        }
        text
    }
}

impl Render for ArtifactOutput {
    fn render(&self) -> String {
        let a = &self.artifact;
        format!(
            "{}\nmodel {}, sha256 {}, created {}",
            artifact_line(a),
            a.model_id,
            a.checksum_sha256.as_deref().unwrap_or("-"),
            a.created_at.as_deref().unwrap_or("-")
        )
    }
}
