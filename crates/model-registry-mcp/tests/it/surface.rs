//! The tool surface: snapshots of tools/list per mode, and the contract every tool meets.

use model_registry_mcp::catalog::{self, ToolClass};
use serde_json::Value;

use crate::support::start;

async fn tools_list(env: &[(&str, &str)], args: &[&str]) -> Value {
    let server = start(env, args).await;
    let tools = server
        .client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("tools/list: {e}"));
    let _ = server.client.cancel().await;
    serde_json::to_value(tools).unwrap_or_default()
}

#[tokio::test]
async fn tools_list_default_mode() {
    insta::assert_json_snapshot!("tools_list_default", tools_list(&[], &[]).await);
}

#[tokio::test]
async fn tools_list_read_only_mode() {
    insta::assert_json_snapshot!(
        "tools_list_read_only",
        tools_list(&[("REGISTRY_READ_ONLY", "true")], &[]).await
    );
}

#[tokio::test]
async fn tools_list_production_gated_mode() {
    insta::assert_json_snapshot!(
        "tools_list_production_gated",
        tools_list(&[("REGISTRY_ALLOW_PRODUCTION_CHANGES", "false")], &[]).await
    );
}

#[tokio::test]
async fn toolset_and_tool_selection() {
    let names = |list: Value| -> Vec<String> {
        list.as_array()
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(
        names(tools_list(&[], &["--toolsets", "models"]).await),
        [
            "list_models",
            "get_model",
            "create_model",
            "update_model",
            "delete_model"
        ]
    );
    assert_eq!(
        names(
            tools_list(
                &[],
                &["--tools", "get_machine_topology,list_release_configs"]
            )
            .await
        ),
        ["list_release_configs", "get_machine_topology"]
    );
    assert_eq!(
        names(
            tools_list(
                &[("REGISTRY_EXCLUDE_TOOLS", "list_docker_templates")],
                &["--toolsets", "release_configs"]
            )
            .await
        ),
        [
            "list_release_configs",
            "get_release_config",
            "get_machine_topology",
            "get_models_by_deployment",
            "propose_release_config",
            "find_placement"
        ]
    );
}

/// Every listed tool: title, AI-first description, annotations equal to its class, object input
/// schema without top-level combinators or `null` types, object output schema.
#[tokio::test]
async fn every_tool_meets_the_surface_contract() {
    let list = tools_list(&[], &[]).await;
    let tools = list.as_array().cloned().unwrap_or_default();
    assert!(!tools.is_empty());
    for tool in &tools {
        let name = tool["name"].as_str().unwrap_or_default();
        let entry = catalog::lookup(name).unwrap_or_else(|| panic!("{name} is not in the catalog"));
        assert!(
            tool["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: title"
        );
        assert!(
            tool["description"].as_str().is_some_and(|d| d.len() > 150),
            "{name}: description too short"
        );
        let hints = &tool["annotations"];
        assert_eq!(
            hints["readOnlyHint"],
            Value::Bool(entry.class == ToolClass::Read),
            "{name}"
        );
        assert_eq!(
            hints["destructiveHint"],
            Value::Bool(entry.class == ToolClass::Destructive),
            "{name}"
        );
        assert_eq!(
            hints["idempotentHint"],
            Value::Bool(entry.idempotent),
            "{name}"
        );
        assert_eq!(
            hints["openWorldHint"],
            Value::Bool(entry.open_world),
            "{name}"
        );
        let input = &tool["inputSchema"];
        assert_eq!(input["type"], "object", "{name}");
        assert!(input["properties"].is_object(), "{name}");
        for combinator in ["oneOf", "anyOf", "allOf"] {
            assert!(
                input.get(combinator).is_none(),
                "{name}: top-level {combinator}"
            );
        }
        assert!(
            !input.to_string().contains("\"null\""),
            "{name}: null type in input schema: {input}"
        );
        assert_eq!(
            tool["outputSchema"]["type"], "object",
            "{name}: output schema"
        );
    }
}

/// The whole surface must fit an agent's context cheaply: `tools/list` (compact JSON, as sent)
/// with every tool stays under 40 KB, and the modes differ by exactly the tools they switch off.
#[tokio::test]
async fn tools_list_is_compact_and_modes_differ() {
    let all = tools_list(&[], &[]).await;
    let size = serde_json::to_string(&all).map_or(usize::MAX, |s| s.len());
    let count = all.as_array().map_or(0, Vec::len);
    // With room for three more tools of the average size.
    let average = size / count.max(1);
    assert!(
        size + 3 * average < 40_000,
        "tools/list is {size} bytes ({average} per tool): no room for three more under 40 KB"
    );
    assert_eq!(
        count,
        catalog::CATALOG.len(),
        "every tool of the surface is listed"
    );
    assert!(size / count < 1000, "{} bytes per tool", size / count);
    for tool in all.as_array().into_iter().flatten() {
        let output = tool["outputSchema"].to_string();
        assert!(
            !output.contains("$defs") && !output.contains("$ref"),
            "{}: {output}",
            tool["name"]
        );
    }
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    };
    let read_only = tools_list(&[("REGISTRY_READ_ONLY", "true")], &[]).await;
    let gated = tools_list(&[("REGISTRY_ALLOW_PRODUCTION_CHANGES", "false")], &[]).await;
    let missing = |mode: &Value| -> Vec<String> {
        let kept = names(mode);
        names(&all)
            .into_iter()
            .filter(|n| !kept.contains(n))
            .collect()
    };
    let writes: Vec<String> = catalog::CATALOG
        .iter()
        .filter(|e| e.class.is_write() && names(&all).iter().any(|n| n == e.name))
        .map(|e| e.name.to_owned())
        .collect();
    assert_eq!(missing(&read_only), writes);
    assert!(
        missing(&gated)
            .iter()
            .all(|n| n == catalog::PRODUCTION_TOOL)
    );
    assert_ne!(all, read_only);
}

/// Input schemas in the subset every major client accepts (Claude, OpenAI function calling,
/// Gemini, VS Code): each property has one JSON `type` (no `["string","null"]`: optional means
/// "not in `required`"), arrays say their item type, and no `$ref`, combinator, `format`,
/// `additionalProperties` or `nullable` anywhere.
#[tokio::test]
async fn input_schemas_fit_strict_clients() {
    fn check(name: &str, at: &str, schema: &Value, problems: &mut Vec<String>) {
        let Some(object) = schema.as_object() else {
            problems.push(format!("{name} {at}: not an object"));
            return;
        };
        for key in object.keys() {
            if !matches!(
                key.as_str(),
                "type"
                    | "description"
                    | "properties"
                    | "required"
                    | "items"
                    | "enum"
                    | "minimum"
                    | "maximum"
            ) {
                problems.push(format!("{name} {at}: keyword `{key}`"));
            }
        }
        let kind = object.get("type").and_then(Value::as_str);
        if !matches!(
            kind,
            Some("string" | "integer" | "number" | "boolean" | "array" | "object")
        ) {
            problems.push(format!("{name} {at}: type {:?}", object.get("type")));
        }
        if kind == Some("array") {
            match object.get("items") {
                Some(items) => check(name, &format!("{at}[]"), items, problems),
                None => problems.push(format!("{name} {at}: array without items")),
            }
        }
        let properties = object.get("properties").and_then(Value::as_object);
        for (key, property) in properties.into_iter().flatten() {
            check(name, &format!("{at}.{key}"), property, problems);
        }
        for required in object
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = required.as_str().unwrap_or_default();
            if !properties.is_some_and(|p| p.contains_key(key)) {
                problems.push(format!("{name} {at}: required `{key}` is not a property"));
            }
        }
    }
    let list = tools_list(&[], &[]).await;
    let mut problems = Vec::new();
    for tool in list.as_array().into_iter().flatten() {
        let name = tool["name"].as_str().unwrap_or_default();
        check(name, "$", &tool["inputSchema"], &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // The types the spec fixes for arguments the design leaves open.
    let property = |tool: &str, key: &str| -> Value {
        list.as_array()
            .into_iter()
            .flatten()
            .find(|t| t["name"] == tool)
            .map(|t| t["inputSchema"]["properties"][key].clone())
            .unwrap_or(Value::Null)
    };
    let cases: &[(&str, &str, &str)] = &[
        ("get_release_config", "port", "integer"),
        ("get_deployment_logs", "lines", "integer"),
        ("search", "types", "array"),
        ("run_benchmark", "request_body", "object"),
        ("run_benchmark", "concurrent_requests", "integer"),
        ("list_versions", "is_release", "boolean"),
        ("create_version", "is_release", "boolean"),
        ("create_version", "auto_build", "boolean"),
        ("promote_version", "is_release", "boolean"),
        ("execute_deployment", "gpu_enabled", "boolean"),
        ("execute_deployment", "environment", "string"),
    ];
    for (tool, key, kind) in cases {
        assert_eq!(property(tool, key)["type"], *kind, "{tool}.{key}");
    }
    assert_eq!(
        property("search", "types")["items"],
        serde_json::json!({"type": "string", "enum": ["models", "versions", "deployments"]})
    );
    assert_eq!(
        property("execute_deployment", "environment")["enum"],
        serde_json::json!(["dev", "staging", "testing"])
    );
}
