//! Search across models, versions and local deployments.

use std::fmt::Write as _;

use registry_client::{Deployment, Model, SearchQuery, SearchType, Version};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::deployments::deployment_line;
use super::models::model_line;
use super::versions::version_line;
use super::{Render, ToolError, ToolSpec, effective_limit, tool};
use crate::catalog::{CatalogEntry, ToolClass, Toolset, entry};
use crate::context::Ctx;
use crate::registry::{BULK_BUDGET_BYTES, JsonMap, LIMIT_NAME, client, failed, fit};

/// This group's rows of the tool catalog (`crate::catalog`), in the contract's order.
pub const CATALOG: &[CatalogEntry] = &[entry("search", Toolset::Search, ToolClass::Read)];

pub fn tools() -> Vec<ToolSpec> {
    vec![tool(
        "search",
        "Search the registry",
        "Free-text search over registry models, versions and LOCAL deployments at once (names, \
         descriptions, tags, versions); narrow with `types`. Not production: \
         list_release_configs with model_name.",
        search,
    )]
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Text to look for.
    pub query: String,
    /// Kinds to search (default all).
    #[serde(default)]
    #[schemars(extend("items" = {"type": "string", "enum": ["models", "versions", "deployments"]}))]
    pub types: Option<Vec<String>>,
    /// Most hits per kind (cap REGISTRY_MAX_RESULTS).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchOutput {
    pub query: String,
    #[schemars(with = "Vec<JsonMap>")]
    pub models: Vec<Model>,
    #[schemars(with = "Vec<JsonMap>")]
    pub versions: Vec<Version>,
    /// Local deployments.
    #[schemars(with = "Vec<JsonMap>")]
    pub deployments: Vec<Deployment>,
    /// Set when hits were left out to keep the result small.
    pub cut: Option<String>,
}

async fn search(ctx: Ctx, params: SearchParams) -> Result<SearchOutput, ToolError> {
    let query = params.query.trim().to_owned();
    if query.is_empty() {
        return Err(ToolError(
            "query is empty: give text to search for".to_owned(),
        ));
    }
    let mut types = Vec::new();
    for t in params.types.unwrap_or_default() {
        let parsed: SearchType = t
            .trim()
            .parse()
            .map_err(|e: registry_client::UnknownValue| ToolError(e.to_string()))?;
        if !types.contains(&parsed) {
            types.push(parsed);
        }
    }
    let request = SearchQuery {
        q: query.clone(),
        types,
        limit: Some(effective_limit(params.limit, ctx.settings.max_results) as u32),
    };
    let found = client(&ctx)?.search(&request).await.map_err(failed)?;
    let total = found.models.len() + found.versions.len() + found.deployments.len();
    let third = BULK_BUDGET_BYTES / 3;
    let models = fit(found.models, third);
    let versions = fit(found.versions, third);
    let deployments = fit(found.deployments, third);
    let kept = models.len() + versions.len() + deployments.len();
    Ok(SearchOutput {
        query,
        models,
        versions,
        deployments,
        cut: (kept < total).then(|| {
            format!(
                "{} hit(s) left out to keep the result under {LIMIT_NAME}; narrow `query` or `types`",
                total - kept
            )
        }),
    })
}

impl Render for SearchOutput {
    fn render(&self) -> String {
        let mut text = format!(
            "search {:?}: {} model(s), {} version(s), {} local deployment(s)",
            self.query,
            self.models.len(),
            self.versions.len(),
            self.deployments.len()
        );
        for m in &self.models {
            let _ = write!(text, "\n- model {}", model_line(m));
        }
        for v in &self.versions {
            let _ = write!(text, "\n- version {}", version_line(v));
        }
        for d in &self.deployments {
            let _ = write!(text, "\n- deployment {}", deployment_line(d));
        }
        if let Some(cut) = &self.cut {
            let _ = write!(text, "\n({cut})");
        }
        text
    }
}
