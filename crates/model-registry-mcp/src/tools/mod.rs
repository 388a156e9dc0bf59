//! Tool groups. Each group is one module exposing `pub fn tools() -> Vec<ToolSpec>`; [`all`]
//! gathers them. A [`ToolSpec`] is built from a typed handler with [`tool`], which derives the
//! input and output schemas, the annotations (from the catalog class) and the argument checking,
//! so that a group only writes `async fn(Ctx, Params) -> Result<Output, ToolError>` (or, for tools
//! that ask the user to confirm, `async fn(Ctx, Session, Params)`, built with [`tool_in_session`]).
//!
//! Schemas are kept compact so that `tools/list` with every tool stays well under 40 KB: output
//! schemas keep only their top-level properties (type and description; nested objects and array
//! items are not spelled out; a page's bookkeeping fields are named once, in the server's
//! instructions) and no `$defs`; input schemas lose `$schema`, `title` and `format`.

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
use crate::registry::{LIMIT_NAME, MAX_RESULT_BYTES};
use crate::release_configs::state::Answer;

pub mod artifacts;
pub mod benchmarks;
pub mod deployments;
pub mod docker;
pub mod models;
pub mod placement;
pub mod proposals;
pub mod release_configs;
pub mod search;
pub mod system;
pub mod versions;

/// Every implemented tool of every group. Add a group here (one line) when its module exists.
pub fn all() -> Vec<ToolSpec> {
    let mut tools = Vec::new();
    tools.extend(models::tools());
    tools.extend(versions::tools());
    tools.extend(deployments::tools());
    tools.extend(docker::tools());
    tools.extend(benchmarks::tools());
    tools.extend(release_configs::tools());
    tools.extend(proposals::tools());
    tools.extend(placement::tools());
    tools.extend(artifacts::tools());
    tools.extend(system::tools());
    tools.extend(search::tools());
    tools
}

/// The least text a successful result keeps beside its structured part.
const MIN_TEXT_BYTES: usize = 1024;
/// Room for the note `clip` appends.
const CLIP_NOTE_BYTES: usize = 64;

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

pub use crate::session::{Confirmation, Session};

type BoxFuture = Pin<Box<dyn Future<Output = Result<CallToolResult, ErrorData>> + Send>>;
type Handler = Arc<dyn Fn(Ctx, Session, JsonObject) -> BoxFuture + Send + Sync>;

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

    /// Runs the tool within an MCP session (destructive tools may ask the user to confirm). `Err`
    /// is a JSON-RPC error (arguments that do not fit the schema); a failure of the tool itself is
    /// `Ok` with `isError: true`.
    pub async fn call_in(
        &self,
        ctx: Ctx,
        session: Session,
        arguments: Option<JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        (self.handler)(ctx, session, arguments.unwrap_or_default()).await
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
    let handler = Arc::new(handler);
    tool_in_session(name, title, description, move |ctx, _session, params| {
        handler(ctx, params)
    })
}

/// Like [`tool`], for a handler that also gets the [`Session`] (to ask for confirmation).
///
/// # Panics
/// As [`tool`].
pub fn tool_in_session<P, O, F, Fut>(
    name: &'static str,
    title: &'static str,
    description: &'static str,
    handler: F,
) -> ToolSpec
where
    P: DeserializeOwned + JsonSchema + 'static,
    O: Serialize + JsonSchema + Render + 'static,
    F: Fn(Ctx, Session, P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ToolError>> + Send + 'static,
{
    let Some(entry) = catalog::lookup(name) else {
        panic!("tool {name} is not in the catalog")
    };
    let tool = definition::<P, O>(entry, name, title, description);
    let handler = Arc::new(handler);
    let handler: Handler = Arc::new(move |ctx: Ctx, session: Session, arguments: JsonObject| {
        let handler = Arc::clone(&handler);
        Box::pin(async move {
            let params: P = parse_arguments(name, arguments)?;
            Ok(match handler(ctx, session, params).await {
                Ok(output) => success(&output),
                Err(error) => failure(name, &error),
            })
        }) as BoxFuture
    });
    ToolSpec {
        entry,
        tool,
        handler,
    }
}

/// Like [`tool`], for a read-only view of the release-config state: the handler gets the state
/// ([`Answer`]) and answers synchronously, and its finished result is cached per (state, tool,
/// arguments as parsed) until the state changes, so that a repeated question costs a clone.
///
/// # Panics
/// As [`tool`].
pub fn fleet_tool<P, O, F>(
    name: &'static str,
    title: &'static str,
    description: &'static str,
    handler: F,
) -> ToolSpec
where
    P: DeserializeOwned + Serialize + JsonSchema + Send + 'static,
    O: Serialize + JsonSchema + Render + 'static,
    F: Fn(&Ctx, &Answer, P) -> Result<O, ToolError> + Send + Sync + 'static,
{
    let Some(entry) = catalog::lookup(name) else {
        panic!("tool {name} is not in the catalog")
    };
    let tool = definition::<P, O>(entry, name, title, description);
    let handler = Arc::new(handler);
    let handler: Handler = Arc::new(move |ctx: Ctx, _session: Session, arguments: JsonObject| {
        let handler = Arc::clone(&handler);
        Box::pin(async move {
            let params: P = parse_arguments(name, arguments)?;
            // The parsed arguments, re-encoded: `{}` and `{"limit": null}` are one question.
            let key = serde_json::to_string(&params).unwrap_or_default();
            let answer = match ctx.release_configs.get().await {
                Ok(answer) => answer,
                Err(error) => return Ok(failure(name, &ToolError(error))),
            };
            Ok(ctx
                .release_configs
                .results
                .get_or_compute(&answer, name, key, || {
                    match handler(&ctx, &answer, params) {
                        Ok(output) => success(&output),
                        Err(error) => failure(name, &error),
                    }
                }))
        }) as BoxFuture
    });
    ToolSpec {
        entry,
        tool,
        handler,
    }
}

fn failure(name: &str, error: &ToolError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!("{name} failed: {error}"))])
}

/// The MCP definition of a tool: compact schemas and the catalog's annotations.
fn definition<P: JsonSchema + 'static, O: JsonSchema + 'static>(
    entry: &'static CatalogEntry,
    name: &str,
    title: &'static str,
    description: &'static str,
) -> Tool {
    let input_schema = match rmcp::handler::server::tool::schema_for_input::<P>() {
        Ok(schema) => normalize_input_schema(&schema),
        Err(error) => panic!("input schema of {name}: {error}"),
    };
    let output_schema =
        compact_output_schema(&rmcp::handler::server::tool::schema_for_output::<O>());
    Tool::new(name.to_owned(), description, input_schema)
        .with_title(title)
        .with_raw_output_schema(output_schema)
        .with_annotations(entry.annotations())
}

/// Fields of a paged answer that its output schema leaves out (see [`compact_output_schema`]).
const PAGE_BOOKKEEPING: [&str; 4] = ["offset", "returned", "next_offset", "cut"];

fn parse_arguments<P: DeserializeOwned>(name: &str, arguments: JsonObject) -> Result<P, ErrorData> {
    if arguments.get("limit").and_then(Value::as_u64) == Some(0) {
        return Err(ErrorData::invalid_params(
            format!("invalid arguments for {name}: limit: 0 asks for nothing; the minimum is 1"),
            None,
        ));
    }
    let size = serde_json::to_string(&arguments).map_or(usize::MAX, |text| text.len());
    if size > MAX_ARGUMENT_BYTES {
        return Err(ErrorData::invalid_params(
            format!("arguments of {name} are {size} bytes; the limit is {MAX_ARGUMENT_BYTES}"),
            None,
        ));
    }
    serde_path_to_error::deserialize(Value::Object(arguments)).map_err(|error| {
        // serde quotes the offending value: keep a hostile 60 KB string out of the error.
        let path = crate::registry::clip(&error.path().to_string(), 200);
        let problem = crate::registry::clip(&error.inner().to_string(), 300);
        let message = if path == "." {
            format!("invalid arguments for {name}: {problem}")
        } else {
            format!("invalid arguments for {name}: {path}: {problem}")
        };
        ErrorData::invalid_params(message, None)
    })
}

fn success<O: Serialize + Render>(output: &O) -> CallToolResult {
    match serde_json::to_value(output) {
        Ok(value) => {
            // Tools cut their own bulk (lists, logs) so that both renderings fit; this is the
            // backstop for anything left: the text gets what the structured part leaves.
            let structured_size = value.to_string().len();
            let room = MAX_RESULT_BYTES.saturating_sub(structured_size);
            if room < MIN_TEXT_BYTES {
                return CallToolResult::error(vec![ContentBlock::text(format!(
                    "the result is {structured_size} bytes, over the {LIMIT_NAME} limit; ask for \
                     less (a smaller `limit`, a filter, or one item by id)"
                ))]);
            }
            let text = crate::registry::clip(&output.render(), room - CLIP_NOTE_BYTES);
            let mut result = CallToolResult::structured(value);
            result.content = vec![ContentBlock::text(text)];
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
    strip_noise(&mut value, true);
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

/// Removes what clients do not need from an input schema: `$schema`, the type's `title`,
/// boolean `additionalProperties`, number `format`s and the `minimum: 0` of unsigned numbers.
fn strip_noise(value: &mut Value, top: bool) {
    match value {
        Value::Object(object) => {
            object.remove("$schema");
            object.remove("format");
            if object.get("minimum").is_some_and(|m| m == 0) {
                object.remove("minimum");
            }
            // `false`: unknown arguments are refused by name anyway; `true`: the JSON Schema
            // default, and a keyword some clients (Gemini) reject.
            if object
                .get("additionalProperties")
                .is_some_and(Value::is_boolean)
            {
                object.remove("additionalProperties");
            }
            if top {
                object.remove("title");
            }
            for (key, child) in object.iter_mut() {
                // Property names such as `format` are keys of `properties`, not keywords.
                if key != "properties" {
                    strip_noise(child, false);
                } else if let Value::Object(properties) = child {
                    for property in properties.values_mut() {
                        strip_noise(property, false);
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip_noise(v, false)),
        _ => {}
    }
}

/// The output schema as listed: an object whose top-level properties keep their type and
/// description only; nested objects are `{"type":"object"}`, arrays `{"type":"array"}`; no `$defs`.
pub fn compact_output_schema(schema: &JsonObject) -> Arc<JsonObject> {
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = JsonObject::new();
    out.insert("type".to_owned(), Value::from("object"));
    let mut properties = JsonObject::new();
    if let Some(Value::Object(given)) = schema.get("properties") {
        let paged = given.contains_key("next_call");
        for (name, property) in given {
            // A page's bookkeeping is the same in every list: the server's instructions name
            // it once, which keeps `tools/list` small.
            if paged && PAGE_BOOKKEEPING.contains(&name.as_str()) {
                continue;
            }
            let mut property = shallow(property, &defs);
            if paged && name == "next_call" {
                property.remove("description");
            }
            properties.insert(name.clone(), Value::Object(property));
        }
    }
    out.insert("properties".to_owned(), Value::Object(properties));
    Arc::new(out)
}

/// One property reduced to its JSON type(s) and description.
fn shallow(property: &Value, defs: &JsonObject) -> JsonObject {
    let mut out = JsonObject::new();
    let description = property.get("description").cloned();
    let mut types: Vec<String> = Vec::new();
    collect_types(property, defs, &mut types, 0);
    types.dedup();
    match types.as_slice() {
        [] => {}
        [single] => {
            out.insert("type".to_owned(), Value::from(single.as_str()));
        }
        several => {
            out.insert(
                "type".to_owned(),
                Value::Array(several.iter().map(|t| Value::from(t.as_str())).collect()),
            );
        }
    }
    if let Some(description) = description {
        out.insert("description".to_owned(), description);
    }
    out
}

fn collect_types(schema: &Value, defs: &JsonObject, types: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    let push = |types: &mut Vec<String>, t: &str| {
        if !types.iter().any(|known| known == t) {
            types.push(t.to_owned());
        }
    };
    match schema.get("type") {
        Some(Value::String(t)) => push(types, t),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .for_each(|t| push(types, t)),
        _ => {}
    }
    if let Some(Value::String(reference)) = schema.get("$ref")
        && let Some(target) = reference
            .strip_prefix("#/$defs/")
            .and_then(|name| defs.get(name))
    {
        collect_types(target, defs, types, depth + 1);
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(options)) = schema.get(combinator) {
            for option in options {
                collect_types(option, defs, types, depth + 1);
            }
        }
    }
    if types.is_empty() && (schema.get("enum").is_some() || schema.get("const").is_some()) {
        push(types, "string");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{LOG_BUDGET_BYTES, UntrustedLog};

    #[derive(Serialize, JsonSchema)]
    struct LogOutput {
        id: String,
        #[serde(flatten)]
        log: UntrustedLog,
    }

    impl Render for LogOutput {
        fn render(&self) -> String {
            self.log.fenced("log")
        }
    }

    fn text(result: &CallToolResult) -> String {
        result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect()
    }

    /// A log at the budget: both renderings fit the limit together, and the fence keeps its end.
    #[test]
    fn a_long_log_fits_whole_and_fenced() {
        let check = |lines: Vec<String>| {
            let output = LogOutput {
                id: "d1".into(),
                log: UntrustedLog::new(lines, false, None),
            };
            let result = success(&output);
            assert_eq!(result.is_error, Some(false), "{}", text(&result));
            let structured = result
                .structured_content
                .as_ref()
                .map_or(0, |v| v.to_string().len());
            let text = text(&result);
            assert!(structured + text.len() <= MAX_RESULT_BYTES);
            let last = text.lines().last().unwrap_or_default();
            assert!(last.starts_with("END UNTRUSTED CONTAINER LOG "), "{last}");
            assert!(!text.contains("[cut:"));
            assert!(output.log.truncated);
        };
        check((0..20_000).map(|i| format!("line {i:>60}")).collect());
        // One enormous line, and lines of control characters (six bytes each in JSON).
        check(vec!["x".repeat(5 * LOG_BUDGET_BYTES)]);
        check((0..5_000).map(|_| "\u{1b}[31m\u{0}".repeat(20)).collect());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Port {
        port: u16,
    }

    /// Hostile arguments get short, specific JSON-RPC errors (never a 60 KB echo).
    #[test]
    fn hostile_arguments_get_short_errors() {
        let check = |arguments: Value, expected: &str| {
            let Value::Object(arguments) = arguments else {
                panic!("not an object")
            };
            let message = parse_arguments::<Port>("t", arguments)
                .err()
                .map(|e| e.message.to_string())
                .unwrap_or_default();
            assert!(message.contains(expected), "{message}");
            assert!(message.len() < 700, "{} bytes", message.len());
        };
        let big = "\u{1b}]0;x\u{7}".repeat(2500);
        check(
            serde_json::json!({"port": big}),
            "port: invalid type: string",
        );
        check(serde_json::json!({"port": 70000}), "port: invalid value");
        check(serde_json::json!({"port": -1}), "port: invalid value");
        check(serde_json::json!({"port": "8000"}), "invalid type");
        check(serde_json::json!({}), "missing field `port`");
        check(
            serde_json::json!({"port": 1, "x".repeat(10_000): 1}),
            "unknown field",
        );
        check(
            serde_json::json!({"port": "y".repeat(MAX_ARGUMENT_BYTES)}),
            "the limit is 65536",
        );
    }

    #[derive(Serialize, JsonSchema)]
    struct Big {
        items: Vec<String>,
    }

    impl Render for Big {
        fn render(&self) -> String {
            self.items.join("\n")
        }
    }

    #[test]
    fn an_oversized_result_is_a_clean_error_and_long_text_is_cut() {
        let huge = success(&Big {
            items: vec!["y".repeat(MAX_RESULT_BYTES)],
        });
        assert_eq!(huge.is_error, Some(true));
        assert!(text(&huge).contains("ask for less"), "{}", text(&huge));
        assert!(huge.structured_content.is_none());
        // Structured part fits, text would not: the text is cut and says so.
        let items: Vec<String> = (0..1000).map(|i| format!("{i:>40}")).collect();
        let fits = success(&Big { items });
        assert_eq!(fits.is_error, Some(false));
        let size = fits
            .structured_content
            .as_ref()
            .map_or(0, |v| v.to_string().len())
            + text(&fits).len();
        assert!(size <= MAX_RESULT_BYTES, "{size}");
    }
}
