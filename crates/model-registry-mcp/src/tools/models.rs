//! Model tools: the registry's catalogue of models (name, storage path, serving engine).

use std::fmt::Write as _;

use registry_client::{Model, ModelFilter, ModelUpdate, NewModel, ServerType, Source};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    Confirmation, Render, Session, ToolError, ToolSpec, effective_limit, tool, tool_in_session,
};
use crate::catalog::{CatalogEntry, ToolClass, Toolset, entry};
use crate::context::Ctx;
use crate::registry::{self, JsonMap, Paging, client, failed, fit_page, id, non_blank};

/// This group's rows of the tool catalog (`crate::catalog`), in the contract's order.
pub const CATALOG: &[CatalogEntry] = &[
    entry("list_models", Toolset::Models, ToolClass::Read),
    entry("get_model", Toolset::Models, ToolClass::Read),
    entry("create_model", Toolset::Models, ToolClass::Write),
    entry("update_model", Toolset::Models, ToolClass::Write),
    entry("delete_model", Toolset::Models, ToolClass::Destructive),
];

pub fn tools() -> Vec<ToolSpec> {
    vec![
        tool(
            "list_models",
            "List registry models",
            "List registry models (name, storage path, serving engine, tags). Start here to find \
             a model's id or exact name; filter by `search` text, `server_type`, `source`. Where \
             a model runs: list_deployments (local), list_release_configs (production).",
            list_models,
        ),
        tool(
            "get_model",
            "Get a model",
            "Full record of one registry model by `model_id` (from list_models or search): \
             storage path, server type, source, tags, metadata, GPU need. Versions: \
             list_versions.",
            get_model,
        ),
        tool(
            "create_model",
            "Register a model",
            "Register a new model (write; operator key): a unique `name`, its `storage_path` on \
             model storage (see browse_model_storage) and `server_type`. Metadata only: uploads \
             and deploys nothing; add versions with create_version.",
            create_model,
        ),
        tool(
            "update_model",
            "Update a model",
            "Change a model's description, tags (replaced as a whole) or metadata (merged shallowly). \
             Write, idempotent; needs an operator key. Does not rename a model or touch its versions.",
            update_model,
        ),
        tool_in_session(
            "delete_model",
            "Delete a model",
            "DESTRUCTIVE: delete a model with ALL its versions, builds and artifacts; cannot be \
             undone. Admin key; refused (409) while a local deployment of it runs. Asks the user to \
             confirm when the client can. Production is not affected.",
            delete_model,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Parameters

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListModelsParams {
    /// Text in the model's name or description.
    #[serde(default)]
    pub search: Option<String>,
    #[serde(default)]
    #[schemars(extend("enum" = ["vllm", "sglang", "tgi", "tensorrt-llm", "audio", "embedding", "other"]))]
    pub server_type: Option<String>,
    #[serde(default)]
    #[schemars(extend("enum" = ["huggingface", "internal", "ceph", "other"]))]
    pub source: Option<String>,
    // Described once, in the server's instructions.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelIdParams {
    /// Model id (UUID) from list_models.
    pub model_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModelParams {
    /// Unique model name, e.g. `llama-3-70b-instruct`.
    pub name: String,
    /// Path of its files on model storage, e.g. `models/llama-3-70b-instruct`.
    pub storage_path: String,
    #[schemars(extend("enum" = ["vllm", "sglang", "tgi", "tensorrt-llm", "audio", "embedding", "other"]))]
    pub server_type: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Whether serving needs a GPU (server default: true).
    #[serde(default)]
    pub requires_gpu: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateModelParams {
    pub model_id: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Replaces all tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Merged into the existing metadata (top-level keys).
    #[serde(default)]
    pub metadata: Option<JsonMap>,
}

// ---------------------------------------------------------------------------------------------
// Outputs

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListModelsOutput {
    #[schemars(with = "Vec<JsonMap>")]
    pub models: Vec<Model>,
    #[serde(flatten)]
    pub paging: Paging,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelOutput {
    /// The model record.
    #[schemars(with = "JsonMap")]
    pub model: Model,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DeleteModelOutput {
    pub model_id: String,
    /// False: declined, nothing done.
    pub deleted: bool,
    pub versions_deleted: Option<u64>,
    pub message: String,
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn list_models(ctx: Ctx, params: ListModelsParams) -> Result<ListModelsOutput, ToolError> {
    let registry = client(&ctx)?;
    let filter = ModelFilter {
        search: non_blank(&params.search),
        server_type: registry::parse_enum::<ServerType>(params.server_type.as_deref())?,
        source: registry::parse_enum::<Source>(params.source.as_deref())?,
        limit: Some(effective_limit(params.limit, ctx.settings.max_results) as u32),
        offset: params.offset,
    };
    let page = registry.list_models(&filter).await.map_err(failed)?;
    let (models, paging) = fit_page("list_models", &params, page);
    Ok(ListModelsOutput { models, paging })
}

async fn get_model(ctx: Ctx, params: ModelIdParams) -> Result<ModelOutput, ToolError> {
    let model_id = id("model_id", &params.model_id)?;
    let model = client(&ctx)?.get_model(model_id).await.map_err(failed)?;
    Ok(ModelOutput { model })
}

async fn create_model(ctx: Ctx, params: CreateModelParams) -> Result<ModelOutput, ToolError> {
    let registry = client(&ctx)?;
    let server_type = registry::parse_enum::<ServerType>(Some(&params.server_type))?
        .ok_or_else(|| ToolError("server_type is empty".to_owned()))?;
    let new = NewModel {
        name: params.name,
        storage_path: params.storage_path.trim_start_matches('/').to_owned(),
        server_type,
        description: params.description,
        tags: params.tags,
        requires_gpu: params.requires_gpu,
    };
    let model = registry.create_model(&new).await.map_err(failed)?;
    Ok(ModelOutput { model })
}

async fn update_model(ctx: Ctx, params: UpdateModelParams) -> Result<ModelOutput, ToolError> {
    let model_id = id("model_id", &params.model_id)?;
    if params.description.is_none() && params.tags.is_none() && params.metadata.is_none() {
        return Err(ToolError(
            "nothing to update: give description, tags or metadata".to_owned(),
        ));
    }
    let update = ModelUpdate {
        description: params.description,
        tags: params.tags,
        metadata: params.metadata,
    };
    let model = client(&ctx)?
        .update_model(model_id, &update)
        .await
        .map_err(failed)?;
    Ok(ModelOutput { model })
}

async fn delete_model(
    ctx: Ctx,
    session: Session,
    params: ModelIdParams,
) -> Result<DeleteModelOutput, ToolError> {
    let model_id = id("model_id", &params.model_id)?.to_owned();
    let registry = client(&ctx)?;
    let question = if session.can_confirm() {
        // Show the user what they are deleting, by name.
        let model = registry.get_model(&model_id).await.map_err(failed)?;
        format!(
            "Delete model '{}' ({model_id}) with ALL its versions, builds and artifacts? This cannot be undone.",
            model.name
        )
    } else {
        String::new()
    };
    if session.confirm(question, &model_id).await? == Confirmation::Declined {
        return Ok(DeleteModelOutput {
            model_id,
            deleted: false,
            versions_deleted: None,
            message: "Nothing was done: the user declined the deletion.".to_owned(),
        });
    }
    let answer = registry.delete_model(&model_id).await.map_err(failed)?;
    Ok(DeleteModelOutput {
        message: format!(
            "Deleted model {model_id} and {} version(s) with their builds and artifacts.",
            answer.versions_deleted
        ),
        model_id,
        deleted: answer.deleted,
        versions_deleted: Some(answer.versions_deleted),
    })
}

// ---------------------------------------------------------------------------------------------
// Text renderings

pub fn model_line(m: &Model) -> String {
    let mut line = format!(
        "{} ({}) {} from {}, storage {}",
        m.name, m.id, m.server_type, m.source, m.storage_path
    );
    if !m.tags.is_empty() {
        let _ = write!(line, ", tags [{}]", m.tags.join(", "));
    }
    line
}

impl Render for ListModelsOutput {
    fn render(&self) -> String {
        let mut text = self.paging.line("models");
        for m in &self.models {
            let _ = write!(text, "\n- {}", model_line(m));
        }
        text
    }
}

impl Render for ModelOutput {
    fn render(&self) -> String {
        let m = &self.model;
        let mut text = model_line(m);
        if let Some(d) = &m.description {
            let _ = write!(text, "\n{d}");
        }
        let _ = write!(
            text,
            "\nrequires GPU: {}; created {}; updated {}",
            m.requires_gpu,
            m.created_at.as_deref().unwrap_or("?"),
            m.updated_at.as_deref().unwrap_or("?")
        );
        text
    }
}

impl Render for DeleteModelOutput {
    fn render(&self) -> String {
        self.message.clone()
    }
}
