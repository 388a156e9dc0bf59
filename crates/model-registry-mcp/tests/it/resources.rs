//! Resources, resource templates, completion and prompts.

use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, GetPromptRequestParams, ReadResourceRequestParams,
    Reference, ResourceContents,
};
use serde_json::Value;

use crate::support::{FLEET, args, as_refs, fixture_env, repo_with, start};

fn json_of(contents: &[ResourceContents]) -> Value {
    match contents.first() {
        Some(ResourceContents::TextResourceContents {
            text, mime_type, ..
        }) => {
            assert_eq!(mime_type.as_deref(), Some("application/json"));
            serde_json::from_str(text).unwrap_or_else(|e| panic!("resource JSON: {e}"))
        }
        other => panic!("expected text contents, got {other:?}"),
    }
}

#[tokio::test]
async fn topology_resources_templates_and_completion() {
    let repo = repo_with(FLEET);
    let env = fixture_env(&repo);
    let server = start(&as_refs(&env), &[]).await;
    let client = &server.client;

    let resources = client
        .list_all_resources()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let uris: Vec<&str> = resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["topology://machines", "health://status"]);
    let templates = client
        .list_all_resource_templates()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let templates: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert_eq!(
        templates.get(..2),
        Some(&["topology://machines", "topology://machine/{machine}"][..])
    );

    let all = client
        .read_resource(ReadResourceRequestParams::new("topology://machines"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let all = json_of(&all.contents);
    assert_eq!(all["source"]["commit"]["commit"], repo.head());
    assert_eq!(all["machines"].as_array().map(Vec::len), Some(3));

    let one = client
        .read_resource(ReadResourceRequestParams::new("topology://machine/gpu-b"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let one = json_of(&one.contents);
    assert_eq!(one["machine"]["machine"], "gpu-b");
    assert_eq!(one["machine"]["free_gpus"], serde_json::json!([]));

    for uri in [
        "topology://machine/../../etc/passwd",
        "topology://machine/gpu-z",
        "file:///etc/passwd",
    ] {
        let error = client
            .read_resource(ReadResourceRequestParams::new(uri))
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("unknown"), "{uri}: {error}");
    }

    let completion = client
        .complete(CompleteRequestParams::new(
            Reference::for_resource("topology://machine/{machine}"),
            ArgumentInfo::new("machine", "gpu"),
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(completion.completion.values, ["gpu-a", "gpu-b"]);
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn prompts_name_real_tools() {
    let server = start(&[], &[]).await;
    let client = &server.client;
    let prompts = client
        .list_all_prompts()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "deploy_workflow",
            "troubleshoot_workflow",
            "production_deployment_workflow",
            "capacity_planning_workflow",
            "model_comparison_workflow"
        ]
    );
    let mut request = GetPromptRequestParams::new("production_deployment_workflow");
    request.arguments = Some(args(
        serde_json::json!({"model_name": "llama-3-70b", "tensor_parallel": 4}),
    ));
    let prompt = client
        .get_prompt(request)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = serde_json::to_string(&prompt.messages).unwrap_or_default();
    for tool in [
        "get_machine_topology",
        "list_docker_templates",
        "propose_release_config",
        "dry_run",
    ] {
        assert!(text.contains(tool), "{tool} missing: {text}");
    }
    // Every action the tool takes, as its input schema lists them.
    let tools = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let propose = tools
        .iter()
        .find(|t| t.name == "propose_release_config")
        .expect("propose_release_config listed");
    let actions = propose.input_schema["properties"]["action"]["enum"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let engine_actions: Vec<&str> = topology::proposal::ProposalAction::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(
        actions, engine_actions,
        "the schema lists the engine's actions"
    );
    for action in actions {
        let action = format!("action=\\\"{}\\\"", action.as_str().unwrap_or_default());
        assert!(text.contains(&action), "{action} missing: {text}");
    }
    let missing = client
        .get_prompt(GetPromptRequestParams::new("deploy_workflow"))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(missing.contains("model_name"), "{missing}");
    let _ = server.client.cancel().await;
}

/// `topology://machines` of a fleet too big for one answer is a summary under ~25k tokens: the
/// fleet's totals, a line per machine as far as the budget goes, and where the rest is; a small
/// fleet's stays whole.
#[tokio::test]
async fn the_machines_resource_of_a_big_fleet_is_a_summary_within_budget() {
    let compose = |port: u16, gpus: &str| {
        format!(
            "services:\n  vllm:\n    image: vllm/vllm-openai:v0.8.5\n    labels:\n      \
             catapult.model: llama-3-8b\n      catapult.model_path: /models/llama-3-8b\n    \
             ports: [\"{port}:8000\"]\n    deploy:\n      resources:\n        reservations:\n          \
             devices:\n            - driver: nvidia\n              capabilities: [gpu]\n              \
             device_ids: [{gpus}]\n"
        )
    };
    let mut files: Vec<(String, String)> = Vec::new();
    for machine in 0..800 {
        files.push((
            format!("machines/node-{machine:04}/machine.yaml"),
            "gpus: 8\ngpu_model: H100-80GB\ninterconnect: nvlink\n".to_owned(),
        ));
        files.push((
            format!("machines/node-{machine:04}/8000/docker-compose.yml"),
            compose(8000, "\"0\", \"1\""),
        ));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let repo = repo_with(&refs);
    let server = start(
        &[("REGISTRY_RELEASE_CONFIG_REPO", repo.url().as_str())],
        &[],
    )
    .await;
    let read = server
        .client
        .read_resource(ReadResourceRequestParams::new("topology://machines"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = match read.contents.first() {
        Some(ResourceContents::TextResourceContents { text, .. }) => text.clone(),
        other => panic!("{other:?}"),
    };
    assert!(text.len() < 80 * 1024, "{} bytes", text.len());
    let summary: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary["fleet"]["machines"], 800, "{}", &text[..300]);
    assert_eq!(summary["fleet"]["gpus_used"], 1600);
    let shown = summary["machines"].as_array().map_or(0, Vec::len);
    assert!(shown > 10, "{shown}");
    assert_eq!(summary["machines_left_out"], 800 - shown);
    let next = summary["next"].as_str().unwrap_or_default();
    assert!(
        next.contains(&format!("get_machine_topology({{\"offset\": {shown}}})"))
            && next.contains("topology://machine/{machine}"),
        "{next}"
    );
    assert!(
        summary["summarised"]
            .as_str()
            .is_some_and(|s| s.contains("KB"))
    );
    let _ = server.client.cancel().await;
}
