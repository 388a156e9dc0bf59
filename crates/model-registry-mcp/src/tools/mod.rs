//! Tool groups. Each group is one module exposing `pub fn tools() -> Vec<ToolSpec>`; [`all`]
//! gathers them. A [`ToolSpec`] is built from a typed handler with [`tool`], which derives the
//! input and output schemas, the annotations (from the catalog class) and the argument checking,
//! so that a group only writes `async fn(Ctx, Params) -> Result<Output, ToolError>`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::catalog::{self, CatalogEntry};
use crate::context::Ctx;

pub mod release_configs;

/// Every implemented tool of every group. Add a group here (one line) when its module exists.
pub fn all() -> Vec<ToolSpec> {
    let mut tools = Vec::new();
    tools.extend(release_configs::tools());
    tools
}

/// Arguments larger than this (serialised) are refused before deserialisation.
pub const MAX_ARGUMENT_BYTES: usize = 64 * 1024;

/// A tool failure the caller should read: becomes a result with `isError: true`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolError(pub String);

impl From<String> for ToolError {
    fn from(message: String) -> ToolError {
        ToolError(message)
    }
}

/// A short text rendering of a structured result, for clients that read text only.
pub trait Render {
    fn render(&self) -> String;
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<CallToolResult, ErrorData>> + Send>>;
type Handler = Arc<dyn Fn(Ctx, JsonObject) -> BoxFuture + Send + Sync>;

/// One implemented tool: its catalog row, its MCP definition and its handler.
#[derive(Clone)]
pub struct ToolSpec {
    pub entry: &'static CatalogEntry,
    pub tool: Tool,
    handler: Handler,
}

impl std::fmt::Debug for ToolSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolSpec")
            .field("name", &self.entry.name)
            .finish_non_exhaustive()
    }
}

impl ToolSpec {
    pub fn name(&self) -> &'static str {
        self.entry.name
    }

    /// Runs the tool. `Err` is a JSON-RPC error (arguments that do not fit the schema); a failure
    /// of the tool itself is `Ok` with `isError: true`.
    pub async fn call(
        &self,
        ctx: Ctx,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        (self.handler)(ctx, arguments.unwrap_or_default()).await
    }
}

/// Builds a tool from a typed handler.
///
/// # Panics
/// When `name` is not in the catalog or `P`'s schema is not an object: both are mistakes in this
/// crate's source, caught by its unit tests, never by input.
pub fn tool<P, O, F, Fut>(
    name: &'static str,
    title: &'static str,
    description: &'static str,
    handler: F,
) -> ToolSpec
where
    P: DeserializeOwned + JsonSchema + 'static,
    O: Serialize + JsonSchema + Render + 'static,
    F: Fn(Ctx, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
{
    let Some(entry) = catalog::lookup(name) else {
        panic!("tool {name} is not in the catalog")
    };
    let input_schema = match rmcp::handler::server::tool::schema_for_input::<P>() {
        Ok(schema) => normalize_input_schema(&schema),
        Err(error) => panic!("input schema of {name}: {error}"),
    };
    let output_schema = rmcp::handler::server::tool::schema_for_output::<O>();
    let tool = Tool::new(name, description, input_schema)
        .with_title(title)
        .with_raw_output_schema(output_schema)
        .with_annotations(entry.annotations(title));
    let handler = Arc::new(handler);
    let handler: Handler = Arc::new(move |ctx: Ctx, arguments: JsonObject| {
        let handler = Arc::clone(&handler);
        Box::pin(async move {
            let params: P = parse_arguments(name, arguments)?;
            Ok(match handler(ctx, params).await {
                Ok(output) => success(&output),
                Err(error) => CallToolResult::error(vec![ContentBlock::text(format!(
                    "{name} failed: {error}"
                ))]),
            })
        }) as BoxFuture
    });
    ToolSpec {
        entry,
        tool,
        handler,
    }
}

fn parse_arguments<P: DeserializeOwned>(name: &str, arguments: JsonObject) -> Result<P, ErrorData> {
    let size = serde_json::to_string(&arguments).map_or(usize::MAX, |text| text.len());
    if size > MAX_ARGUMENT_BYTES {
        return Err(ErrorData::invalid_params(
            format!("arguments of {name} are {size} bytes; the limit is {MAX_ARGUMENT_BYTES}"),
            None,
        ));
    }
    serde_path_to_error::deserialize(Value::Object(arguments)).map_err(|error| {
        let path = error.path().to_string();
        let message = if path == "." {
            format!("invalid arguments for {name}: {}", error.inner())
        } else {
            format!("invalid arguments for {name}: {path}: {}", error.inner())
        };
        ErrorData::invalid_params(message, None)
    })
}

fn success<O: Serialize + Render>(output: &O) -> CallToolResult {
    match serde_json::to_value(output) {
        Ok(value) => {
            let mut result = CallToolResult::structured(value);
            result.content = vec![ContentBlock::text(output.render())];
            result
        }
        Err(error) => CallToolResult::error(vec![ContentBlock::text(format!(
            "the result could not be encoded: {error}"
        ))]),
    }
}

/// Strict clients reject `"type": ["string", "null"]` and `"default": null` in input schemas.
/// An optional argument is expressed by leaving it out of `required`, so `null` is dropped.
pub fn normalize_input_schema(schema: &JsonObject) -> Arc<JsonObject> {
    let mut value = Value::Object(schema.clone());
    strip_null(&mut value);
    match value {
        Value::Object(mut object) => {
            object
                .entry("properties")
                .or_insert_with(|| Value::Object(JsonObject::new()));
            Arc::new(object)
        }
        _ => Arc::new(schema.clone()),
    }
}

fn strip_null(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(Value::Array(types)) = object.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1
                    && let Some(single) = types.pop()
                {
                    object.insert("type".to_owned(), single);
                }
            }
            if object.get("default").is_some_and(Value::is_null) {
                object.remove("default");
            }
            for child in object.values_mut() {
                strip_null(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// Caps a requested `limit` at `max` (`REGISTRY_MAX_RESULTS`); no limit means `max`.
pub fn effective_limit(limit: Option<u32>, max: u32) -> usize {
    usize::try_from(limit.unwrap_or(max).clamp(1, max)).unwrap_or(usize::MAX)
}
