//! The MCP server: tools (filtered by the selection), resources, completion and prompts.

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    CompletionInfo, ContentBlock, CustomRequest, CustomResult, ErrorCode, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Reference, Resource, ResourceContents,
    ResourceTemplate, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde::Serialize;

use crate::catalog::{self, KeyRole};
use crate::context::{Caller, Ctx};
use crate::prompts;
use crate::registry::{BULK_BUDGET_BYTES, LIMIT_NAME, MAX_RESULT_BYTES};
use crate::release_configs::view::{MachineSummary, MachineTopology, SourceInfo};
use crate::resources::{self, RegistryUri};
use crate::selection;
use crate::tools::{self, Session, ToolSpec, release_configs::unknown_machine};

pub const MACHINES_URI: &str = "topology://machines";
pub const MACHINE_TEMPLATE: &str = "topology://machine/{machine}";
const MACHINE_PREFIX: &str = "topology://machine/";

const INSTRUCTIONS: &str = "Model registry and its GPU fleet. Two deployment domains must not be confused: \
LOCAL deployments are containers on the registry host for dev/staging/testing (list_deployments, \
execute_deployment, stop_deployment); PRODUCTION deployments live in the release-config Git repository and are \
only read here (list_release_configs, get_machine_topology) or changed through a pull request for human review \
(propose_release_config). Every production answer names the commit it describes. Lists take `limit` (at \
least 1, capped at REGISTRY_MAX_RESULTS) and `offset` (a previous `next_offset`); paged answers say `has_more` and \
give the exact `next_call` for the next page, and also carry `offset`, `returned`, `next_offset` and `cut` (why a \
page is shorter than asked).";

/// Everything the server serves; built once, shared by every session.
pub struct Surface {
    ctx: Ctx,
    enabled: Vec<ToolSpec>,
    by_name: HashMap<&'static str, usize>,
    listed: Vec<Tool>,
    implemented: HashMap<&'static str, ()>,
}

impl Surface {
    pub fn new(ctx: Ctx) -> Surface {
        Surface::with_tools(ctx, tools::all())
    }

    /// `implemented`: every tool this build has; the settings decide which are enabled.
    pub fn with_tools(ctx: Ctx, implemented: Vec<ToolSpec>) -> Surface {
        let implemented_names: HashMap<&'static str, ()> =
            implemented.iter().map(|t| (t.name(), ())).collect();
        let mut enabled: Vec<ToolSpec> = implemented
            .into_iter()
            .filter(|spec| selection::decide(&ctx.settings, spec.entry, true).is_ok())
            .collect();
        // Catalog order, so listings are stable whatever order groups register in.
        let position = |name: &str| {
            catalog::CATALOG
                .iter()
                .position(|e| e.name == name)
                .unwrap_or(usize::MAX)
        };
        enabled.sort_by_key(|spec| position(spec.name()));
        let by_name = enabled
            .iter()
            .enumerate()
            .map(|(i, spec)| (spec.name(), i))
            .collect();
        let listed = enabled.iter().map(|spec| spec.tool.clone()).collect();
        Surface {
            ctx,
            enabled,
            by_name,
            listed,
            implemented: implemented_names,
        }
    }

    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The tools as `tools/list` shows them.
    pub fn listed_tools(&self) -> &[Tool] {
        &self.listed
    }

    /// The tools a key of `role` can use (all of them when the role is not known).
    pub fn tools_for(&self, role: Option<KeyRole>) -> Vec<Tool> {
        match role {
            None => self.listed.clone(),
            Some(role) => self
                .enabled
                .iter()
                .zip(&self.listed)
                .filter(|(spec, _)| spec.entry.needs_role() <= role)
                .map(|(_, tool)| tool.clone())
                .collect(),
        }
    }

    pub fn is_implemented(&self, name: &str) -> bool {
        self.implemented.contains_key(name)
    }

    /// Calls a tool by name with a caller's context (its registry API key and role), within an MCP
    /// session whose client may be asked to confirm. Unknown names are JSON-RPC errors; known but
    /// disabled tools answer an error result naming the setting that disables them.
    pub async fn call_as(
        &self,
        ctx: &Ctx,
        name: &str,
        arguments: Option<rmcp::model::JsonObject>,
        session: Session,
    ) -> Result<rmcp::model::CallToolResult, ErrorData> {
        if let Some(index) = self.by_name.get(name)
            && let Some(spec) = self.enabled.get(*index)
        {
            if let Some((key, role)) = ctx.key_role().await
                && spec.entry.needs_role() > role
            {
                return Ok(rmcp::model::CallToolResult::error(vec![
                    ContentBlock::text(format!(
                        "{name} needs an API key with role '{}'; the registry API key this caller \
                         acts with is '{key}', with role '{}', so this tool is not listed for it",
                        spec.entry.needs_role().as_str(),
                        role.as_str()
                    )),
                ]));
            }
            return spec.call_in(Arc::clone(ctx), session, arguments).await;
        }
        match catalog::lookup(name) {
            Some(entry) => {
                let reason =
                    selection::decide(&self.ctx.settings, entry, self.is_implemented(name))
                        .err()
                        .unwrap_or(selection::Disabled::NotImplemented);
                Ok(rmcp::model::CallToolResult::error(vec![
                    ContentBlock::text(reason.explain(entry)),
                ]))
            }
            None => {
                let shown: String = name.chars().take(64).collect();
                Err(ErrorData::invalid_params(
                    format!(
                        "unknown tool {shown:?}; tools/list shows the tools this server offers"
                    ),
                    None,
                ))
            }
        }
    }

    /// Reads a resource with a caller's context.
    pub async fn read_as(&self, ctx: &Ctx, uri: &str) -> Result<ReadResourceResult, ErrorData> {
        #[derive(Serialize)]
        struct Machines<'a> {
            source: &'a SourceInfo,
            machines: Vec<&'a MachineTopology>,
        }
        #[derive(Serialize)]
        struct OneMachine<'a> {
            source: &'a SourceInfo,
            machine: &'a MachineTopology,
        }
        let json = |value: &dyn erased::Json| -> Result<ReadResourceResult, ErrorData> {
            let text = value
                .to_json()
                .map_err(|e| ErrorData::internal_error(format!("encoding {uri}: {e}"), None))?;
            Ok(ReadResourceResult::new(vec![
                ResourceContents::text(text, uri).with_mime_type("application/json"),
            ]))
        };
        if uri == MACHINES_URI {
            let answer = self.ctx.release_configs.get().await.map_err(unavailable)?;
            let whole = Machines {
                source: &answer.source,
                machines: answer.view.machines.values().collect(),
            };
            let size = serde_json::to_string(&whole).map_or(usize::MAX, |text| text.len());
            if size <= MAX_RESULT_BYTES {
                return json(&whole);
            }
            return json(&machines_summary(&answer.source, &answer.view, size));
        }
        if let Some(encoded) = uri.strip_prefix(MACHINE_PREFIX) {
            let machine = percent_decode(encoded);
            let answer = self.ctx.release_configs.get().await.map_err(unavailable)?;
            return match answer.view.machines.get(&machine) {
                Some(topology) => json(&OneMachine {
                    source: &answer.source,
                    machine: topology,
                }),
                None => Err(ErrorData::resource_not_found(
                    unknown_machine(&answer.view, &machine),
                    Some(uri_data(uri)),
                )),
            };
        }
        if let Some(resource) = RegistryUri::parse(uri) {
            return resources::read(ctx, uri, resource).await;
        }
        let shown: String = uri.chars().take(128).collect();
        Err(ErrorData::resource_not_found(
            format!(
                "unknown resource {shown:?}; resources: {MACHINES_URI}, {MACHINE_TEMPLATE}, {}, {}, {}, {}, {}, {}",
                resources::MODEL_TEMPLATE,
                resources::MODEL_VERSIONS_TEMPLATE,
                resources::VERSION_TEMPLATE,
                resources::DEPLOYMENT_TEMPLATE,
                resources::DEPLOYMENT_LOGS_TEMPLATE,
                resources::HEALTH_URI
            ),
            Some(uri_data(uri)),
        ))
    }

    /// Completes an argument with a caller's context (registry ids are the key's to see).
    pub async fn complete_as(&self, ctx: &Ctx, request: &CompleteRequestParams) -> CompletionInfo {
        let target = match &request.r#ref {
            Reference::Resource(reference) => reference.uri.as_str(),
            Reference::Prompt(prompt) => prompt.name.as_str(),
            _ => "",
        };
        if let Some(kind) = resources::id_kind(target, &request.argument.name) {
            let matching = resources::complete_ids(ctx, kind, &request.argument.value).await;
            return completion(matching);
        }
        let wants_machine = match &request.r#ref {
            Reference::Resource(reference) => {
                reference.uri == MACHINE_TEMPLATE && request.argument.name == "machine"
            }
            Reference::Prompt(prompt) => {
                prompt.name == "production_deployment_workflow"
                    && request.argument.name == "machine"
            }
            _ => false,
        };
        if !wants_machine {
            return CompletionInfo::default();
        }
        let Ok(answer) = self.ctx.release_configs.get().await else {
            return CompletionInfo::default();
        };
        let prefix = request.argument.value.to_lowercase();
        let matching: Vec<String> = answer
            .view
            .machines
            .names()
            .filter(|name| name.to_lowercase().starts_with(&prefix))
            .map(str::to_owned)
            .collect();
        completion(matching)
    }
}

/// At most `CompletionInfo::MAX_VALUES` values, with the total and whether more exist.
fn completion(matching: Vec<String>) -> CompletionInfo {
    let total = matching.len();
    let values: Vec<String> = matching
        .into_iter()
        .take(CompletionInfo::MAX_VALUES)
        .collect();
    let has_more = total > values.len();
    CompletionInfo::with_pagination(
        values,
        Some(u32::try_from(total).unwrap_or(u32::MAX)),
        has_more,
    )
    .unwrap_or_default()
}

/// `Serialize` is not object-safe; this small shim lets `read` encode different shapes.
/// `data` of a "resource not found" error: the URI asked for (as much of it as is sane).
fn uri_data(uri: &str) -> serde_json::Value {
    serde_json::json!({ "uri": uri.chars().take(2048).collect::<String>() })
}

/// `topology://machines` of a fleet too big for one answer: the totals, a line per machine as
/// far as the budget goes, and where the rest is.
#[derive(Serialize)]
struct MachinesSummary<'a> {
    source: &'a SourceInfo,
    fleet: tools::release_configs::FleetTotals,
    summarised: String,
    machines: Vec<MachineSummary>,
    machines_left_out: usize,
    next: String,
}

fn machines_summary<'a>(
    source: &'a SourceInfo,
    view: &crate::release_configs::view::FleetView,
    whole_size: usize,
) -> MachinesSummary<'a> {
    let mut used = 0usize;
    let machines: Vec<MachineSummary> = view
        .machines
        .values()
        .map(MachineSummary::of)
        .take_while(|line| {
            used += serde_json::to_string(line).map_or(usize::MAX, |s| s.len() + 1);
            used <= BULK_BUDGET_BYTES
        })
        .collect();
    let shown = machines.len();
    MachinesSummary {
        source,
        fleet: tools::release_configs::fleet_totals(view),
        summarised: format!(
            "every machine in full would be {} KB, over the {LIMIT_NAME} an answer may be: a \
             line per machine instead (the first {shown} of {})",
            whole_size / 1024,
            view.machines.len()
        ),
        machines_left_out: view.machines.len() - shown,
        next: format!(
            "one machine in full: {MACHINE_TEMPLATE}; the rest of the lines: \
             get_machine_topology({{\"offset\": {shown}}})"
        ),
        machines,
    }
}

mod erased {
    pub trait Json {
        fn to_json(&self) -> Result<String, serde_json::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<String, serde_json::Error> {
            serde_json::to_string(self)
        }
    }
}

fn unavailable(reason: String) -> ErrorData {
    ErrorData::new(
        ErrorCode::INTERNAL_ERROR,
        format!("release-config state unavailable: {reason}"),
        None,
    )
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Some(value) = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(value);
            i += 3;
            continue;
        }
        out.push(byte);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rmcp handler: a cheap handle on the shared [`Surface`].
#[derive(Clone)]
pub struct McpServer {
    surface: Arc<Surface>,
}

impl McpServer {
    pub fn new(surface: Arc<Surface>) -> McpServer {
        McpServer { surface }
    }
}

/// Milliseconds, for `ttlMs`.
fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl McpServer {
    /// The context a request runs with: its caller's, as the HTTP transport authenticated it
    /// (in the request's HTTP parts), else the server's own (stdio, unauthenticated loopback).
    fn ctx_of(&self, extensions: &rmcp::model::Extensions) -> Ctx {
        extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .map_or_else(
                || Arc::clone(&self.surface.ctx),
                |caller| Arc::clone(&caller.ctx),
            )
    }

    /// Lists do not change while the process runs; say so for as long as registry answers live.
    fn list_ttl_ms(&self) -> u64 {
        millis(self.surface.ctx.settings.cache_ttl)
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        #[allow(deprecated)] // Logging: see `set_level`.
        let capabilities = ServerCapabilities::builder()
            .enable_completions()
            .enable_logging()
            .enable_prompts()
            .enable_resources()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("model-registry-mcp", env!("CARGO_PKG_VERSION"))
                    .with_title("Model Registry"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    /// `subscriptions/listen` (2026-07-28): tool-list changes only, the one kind this server has.
    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: rmcp::service::SubscriptionContext) -> Result<(), ErrorData> {
        let ctx = self.ctx_of(&context.request_context().extensions);
        ctx.listen(context).await;
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let ctx = self.ctx_of(&context.extensions);
        let role = ctx.key_role().await.map(|(_, role)| role);
        // Every tool listed for want of the role: tell this session when it is learned (the
        // 2026-07-28 revision has no session to tell).
        let initialize_revision = context
            .protocol_version()
            .is_none_or(|revision| revision.has_initialize());
        if role.is_none() && ctx.settings.registry_api_key.is_some() && initialize_revision {
            ctx.listed_without_role(context.peer.clone());
        }
        Ok(
            ListToolsResult::with_all_items(self.surface.tools_for(role))
                .with_ttl_ms(self.list_ttl_ms())
                .with_cache_scope(CacheScope::Private),
        )
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.surface
            .listed_tools()
            .iter()
            .find(|tool| tool.name == name)
            .cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let rounds = context
            .protocol_version()
            .is_some_and(|revision| !revision.has_initialize());
        let session = if rounds {
            let can_elicit = context
                .client_capabilities()
                .is_some_and(|capabilities| capabilities.elicitation.is_some());
            Session::with_rounds(
                &request.name,
                request.arguments.as_ref(),
                can_elicit,
                request.input_responses,
                request.request_state,
            )
        } else {
            Session::with_peer(context.peer)
        };
        // `notifications/cancelled` (or, on 2026-07-28 over HTTP, the client closing the response
        // stream) drops the call: no further registry request or retry is made for it.
        let ctx = self.ctx_of(&context.extensions);
        let call = self
            .surface
            .call_as(&ctx, &request.name, request.arguments, session.clone());
        let result = tokio::select! {
            result = call => result?,
            () = context.ct.cancelled() => {
                tracing::debug!(tool = %request.name, "call cancelled by the client");
                return Err(ErrorData::new(
                    ErrorCode::INTERNAL_ERROR,
                    format!("{} was cancelled by the client", request.name),
                    None,
                ));
            }
        };
        Ok(match session.take_input_required() {
            Some(input_required) => CallToolResponse::InputRequired(input_required),
            None => CallToolResponse::Complete(result),
        })
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let mut listed = vec![
            Resource::new(MACHINES_URI, "machines")
                .with_title("Production GPU map")
                .with_description(
                    "Every production machine's GPU map (GPUs, holders, free GPUs per NUMA domain), deployments \
                     and findings, from the release-config repository's production branch.",
                )
                .with_mime_type("application/json"),
        ];
        listed.extend(resources::fixed());
        Ok(ListResourcesResult::with_all_items(listed)
            .with_ttl_ms(self.list_ttl_ms())
            .with_cache_scope(CacheScope::Private))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let mut templates = vec![
            ResourceTemplate::new(MACHINES_URI, "machines")
                .with_title("Production GPU map")
                .with_description("Every production machine's GPU map, deployments and findings.")
                .with_mime_type("application/json"),
            ResourceTemplate::new(MACHINE_TEMPLATE, "machine")
                .with_title("One production machine")
                .with_description(
                    "One production machine's GPU map, deployments and findings. `machine` completes to the \
                     machine names of the release-config repository.",
                )
                .with_mime_type("application/json"),
        ];
        templates.extend(resources::templates());
        Ok(ListResourceTemplatesResult::with_all_items(templates)
            .with_ttl_ms(self.list_ttl_ms())
            .with_cache_scope(CacheScope::Private))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let ctx = self.ctx_of(&context.extensions);
        let result = self.surface.read_as(&ctx, &request.uri).await?;
        // What is true: a registry answer is cached for the TTL, a production answer until the
        // next fetch; both depend on the API key.
        let ttl = if RegistryUri::parse(&request.uri).is_some() {
            ctx.settings.cache_ttl
        } else {
            ctx.release_configs.until_next_fetch().await
        };
        Ok(ReadResourceResponse::from(
            result
                .with_ttl_ms(millis(ttl))
                .with_cache_scope(CacheScope::Private),
        ))
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let ctx = self.ctx_of(&context.extensions);
        Ok(CompleteResult::new(
            self.surface.complete_as(&ctx, &request).await,
        ))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(prompts::list())
            .with_ttl_ms(self.list_ttl_ms())
            .with_cache_scope(CacheScope::Private))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        prompts::get(&request.name, request.arguments.as_ref()).map(GetPromptResponse::from)
    }

    /// Accepted on the `initialize` revisions; the server sends no log notifications, so every
    /// level is already honoured. (Deprecated by SEP-2577, still required by 2025-11-25.)
    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    /// rmcp hands a request of a known method whose parameters do not parse (e.g. `tools/call`
    /// with `arguments` that is not an object) here, as if the method were unknown: answer -32602
    /// naming what is wrong instead of -32601.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        let expected = match request.method.as_str() {
            "tools/call" => "`name` (a string) and, if present, `arguments` (an object)",
            "resources/read" => "`uri` (a string)",
            "prompts/get" => "`name` (a string) and, if present, `arguments` (an object)",
            "completion/complete" => "`ref` and `argument` (objects)",
            "tools/list" | "resources/list" | "resources/templates/list" | "prompts/list" => {
                "at most `cursor` (a string)"
            }
            _ => {
                return Err(ErrorData::new(
                    ErrorCode::METHOD_NOT_FOUND,
                    request.method,
                    None,
                ));
            }
        };
        Err(ErrorData::invalid_params(
            format!("invalid params for {}: expected {expected}", request.method),
            None,
        ))
    }
}
