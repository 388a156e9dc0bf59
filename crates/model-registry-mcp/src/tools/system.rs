//! System tools: registry health, audit log, model storage usage and browsing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use registry_client::{AuditFilter, AuditLog, ComponentHealth, ModelStorage, StorageEntry};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::docker::NoParams;
use super::{Render, ToolError, ToolSpec, effective_limit, tool};
use crate::catalog::{CatalogEntry, ToolClass, Toolset, entry};
use crate::context::Ctx;
use crate::registry::{
    BULK_BUDGET_BYTES, JsonMap, LIMIT_NAME, Paging, bytes, client, failed, fit, fit_page, non_blank,
};

/// This group's rows of the tool catalog (`crate::catalog`), in the contract's order.
pub const CATALOG: &[CatalogEntry] = &[
    entry("health_check", Toolset::System, ToolClass::Read),
    entry("get_audit_logs", Toolset::System, ToolClass::Read),
    entry("get_storage_usage", Toolset::System, ToolClass::Read),
    entry("browse_model_storage", Toolset::System, ToolClass::Read),
];

pub fn tools() -> Vec<ToolSpec> {
    vec![
        tool(
            "health_check",
            "Registry health",
            "Health of the registry system: overall `ok` or `degraded`, and each component \
             (database, docker, storage, release_configs). Call first when other tools fail \
             unexpectedly. For one local deployment use get_deployment_health.",
            health_check,
        ),
        tool(
            "get_audit_logs",
            "Registry audit log",
            "Audit log of registry changes, newest first: who did what to which resource and when \
             (e.g. deployment.execute, model.create). Filter by `action` and `resource_type`. Use to \
             answer 'who changed this?'.",
            get_audit_logs,
        ),
        tool(
            "get_storage_usage",
            "Model storage usage",
            "Usage of model file storage: root, total, used and free bytes, and size per model \
             directory. Check before registering large models; Docker images: \
             get_docker_disk_usage.",
            get_storage_usage,
        ),
        tool(
            "browse_model_storage",
            "Browse model storage",
            "List a directory of model storage (size, modification time). `relative_path` is \
             below the storage root ('' lists the root; paths outside are refused). Check a \
             model's files before create_model or create_version.",
            browse_model_storage,
        ),
    ]
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditLogsParams {
    /// E.g. deployment.execute, model.create.
    #[serde(default)]
    pub action: Option<String>,
    /// E.g. model, version, deployment, build, benchmark.
    #[serde(default)]
    pub resource_type: Option<String>,
    // Described once, in the server's instructions.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    #[serde(default)]
    pub offset: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrowseParams {
    /// Directory under the storage root, e.g. `models/llama-3-70b-instruct`; '' for the root.
    #[serde(default)]
    pub relative_path: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HealthOutput {
    /// ok or degraded.
    pub status: String,
    /// Each component's status and detail.
    #[schemars(with = "JsonMap")]
    pub components: BTreeMap<String, ComponentHealth>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AuditLogsOutput {
    #[schemars(with = "Vec<JsonMap>")]
    pub entries: Vec<AuditLog>,
    #[serde(flatten)]
    pub paging: Paging,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StorageUsageOutput {
    pub root: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub free_bytes: u64,
    /// path and size_bytes per model directory.
    #[schemars(with = "Vec<JsonMap>")]
    pub models: Vec<ModelStorage>,
    pub cut: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BrowseOutput {
    /// The directory listed, relative to the storage root.
    pub path: String,
    /// name, type (file or directory), size_bytes, modified_at.
    #[schemars(with = "Vec<JsonMap>")]
    pub entries: Vec<StorageEntry>,
    pub cut: Option<String>,
}

async fn health_check(ctx: Ctx, _params: NoParams) -> Result<HealthOutput, ToolError> {
    let health = client(&ctx)?.health_check().await.map_err(failed)?;
    Ok(HealthOutput {
        status: health.status,
        components: health.components,
    })
}

async fn get_audit_logs(ctx: Ctx, params: AuditLogsParams) -> Result<AuditLogsOutput, ToolError> {
    let filter = AuditFilter {
        action: non_blank(&params.action),
        resource_type: non_blank(&params.resource_type),
        limit: Some(effective_limit(params.limit, ctx.settings.max_results) as u32),
        offset: params.offset,
    };
    let page = client(&ctx)?
        .get_audit_logs(&filter)
        .await
        .map_err(failed)?;
    let (entries, paging) = fit_page("get_audit_logs", &params, page);
    Ok(AuditLogsOutput { entries, paging })
}

fn cut_note(total: usize, kept: usize, what: &str) -> Option<String> {
    (kept < total).then(|| {
        format!(
            "{} of {total} {what} left out to keep the result under {LIMIT_NAME}",
            total - kept
        )
    })
}

async fn get_storage_usage(ctx: Ctx, _params: NoParams) -> Result<StorageUsageOutput, ToolError> {
    let usage = client(&ctx)?.get_storage_usage().await.map_err(failed)?;
    let total = usage.models.len();
    let models = fit(usage.models, BULK_BUDGET_BYTES);
    Ok(StorageUsageOutput {
        root: usage.root,
        total_bytes: usage.total_bytes,
        used_bytes: usage.used_bytes,
        free_bytes: usage.free_bytes,
        cut: cut_note(total, models.len(), "model directories"),
        models,
    })
}

async fn browse_model_storage(ctx: Ctx, params: BrowseParams) -> Result<BrowseOutput, ToolError> {
    let raw = params.relative_path.unwrap_or_default();
    let relative = raw.trim().trim_start_matches('/');
    if relative.chars().any(char::is_control) {
        return Err(ToolError(
            "relative_path contains control characters".to_owned(),
        ));
    }
    let listing = client(&ctx)?
        .browse_model_storage(relative)
        .await
        .map_err(failed)?;
    let total = listing.entries.len();
    let entries = fit(listing.entries, BULK_BUDGET_BYTES);
    Ok(BrowseOutput {
        path: listing.path,
        cut: cut_note(total, entries.len(), "entries"),
        entries,
    })
}

impl Render for HealthOutput {
    fn render(&self) -> String {
        let mut text = format!("registry health: {}", self.status);
        for (name, component) in &self.components {
            let _ = write!(
                text,
                "\n- {name}: {}{}",
                component.status,
                component
                    .detail
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            );
        }
        text
    }
}

impl Render for AuditLogsOutput {
    fn render(&self) -> String {
        let mut text = self.paging.line("audit entries");
        for e in &self.entries {
            let _ = write!(
                text,
                "\n- {} {} {} {} {}",
                e.timestamp.as_deref().unwrap_or("-"),
                e.actor,
                e.action,
                e.resource_type,
                e.resource_id.as_deref().unwrap_or("-")
            );
        }
        text
    }
}

impl Render for StorageUsageOutput {
    fn render(&self) -> String {
        let mut text = format!(
            "storage {}: {} used of {}, {} free",
            self.root,
            bytes(self.used_bytes),
            bytes(self.total_bytes),
            bytes(self.free_bytes)
        );
        for m in &self.models {
            let _ = write!(text, "\n- {} {}", m.path, bytes(m.size_bytes));
        }
        if let Some(cut) = &self.cut {
            let _ = write!(text, "\n({cut})");
        }
        text
    }
}

impl Render for BrowseOutput {
    fn render(&self) -> String {
        let shown = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        let mut text = format!("{shown}: {} entries", self.entries.len());
        for e in &self.entries {
            let size = e.size_bytes.map(bytes).unwrap_or_default();
            let _ = write!(
                text,
                "\n- {}{} {size}",
                e.name,
                if e.entry_type == "directory" { "/" } else { "" }
            );
        }
        if let Some(cut) = &self.cut {
            let _ = write!(text, "\n({cut})");
        }
        text
    }
}
