use registry_emulator::Role;
use serde_json::json;

use crate::{Emu, field_of_items, pairs, validation_errors};

#[tokio::test]
async fn me_names_the_key_and_role() {
    let emu = Emu::start().await;
    let cases = [
        (Role::Viewer, "demo-viewer"),
        (Role::Operator, "demo-operator"),
        (Role::Admin, "demo-admin"),
    ];
    for (role, name) in cases {
        let (status, body) = emu.call("GET", "/v1/auth/me", Some(role), None).await;
        assert_eq!(
            (status, body),
            (200, json!({"name": name, "role": role.as_str()}))
        );
    }
}

#[tokio::test]
async fn system_health_reflects_components() {
    let emu = Emu::start().await;
    let health = emu.get("/v1/system/health").await;
    assert_eq!(health["status"], "ok");
    let components: Vec<&String> = health["components"]
        .as_object()
        .map(|c| c.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        components,
        ["database", "docker", "release_configs", "storage"]
    );
    emu.emu
        .state()
        .set_component_health("docker", "error", Some("daemon not responding"));
    let degraded = emu.get("/v1/system/health").await;
    assert_eq!(degraded["status"], "degraded");
    assert_eq!(
        degraded["components"]["docker"],
        json!({"status": "error", "detail": "daemon not responding"})
    );
}

#[tokio::test]
async fn audit_logs_newest_first_with_filters() {
    let emu = Emu::start().await;
    let all = emu.get("/v1/system/audit-logs").await;
    assert_eq!(all["total"], 6);
    assert_eq!(all["items"][0]["action"], "benchmark.run");
    let cases = [
        ("action=deployment.stop", 1),
        ("resource_type=deployment", 2),
        ("action=none", 0),
    ];
    for (query, total) in cases {
        assert_eq!(
            emu.get(&format!("/v1/system/audit-logs?{query}")).await["total"],
            total,
            "{query}"
        );
    }
}

#[tokio::test]
async fn storage_usage_counts_the_materialized_tree() {
    let emu = Emu::start().await;
    let usage = emu.get("/v1/system/storage").await;
    let expected_used: u64 = emu.seed.storage.tree.iter().map(|f| f.size_bytes).sum();
    assert_eq!(usage["used_bytes"], expected_used);
    assert_eq!(usage["total_bytes"], emu.seed.storage.capacity_bytes);
    assert_eq!(
        usage["free_bytes"],
        emu.seed.storage.capacity_bytes - expected_used
    );
    let models: Vec<String> = usage["models"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|e| e["path"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        models.first().map(String::as_str),
        Some("models/qwen2.5-7b-instruct"),
        "largest first"
    );
    assert_eq!(models.len(), 5);
}

#[tokio::test]
async fn browse_lists_inside_the_root_only() {
    let emu = Emu::start().await;
    let root = emu.root.path().join("storage");
    let outside = emu.root.path().join("outside");
    crate::must(std::fs::create_dir_all(outside.join("secret")), "mkdir");
    crate::must(std::fs::write(outside.join("secret/key.txt"), "x"), "write");
    crate::must(
        std::os::unix::fs::symlink(&outside, root.join("escape")),
        "symlink out",
    );
    crate::must(
        std::os::unix::fs::symlink(root.join("models"), root.join("models-link")),
        "symlink in",
    );

    let top = emu.get("/v1/system/storage/browse").await;
    assert_eq!(top["path"], "");
    // The escaping symlink is not listed; the inner one is.
    assert_eq!(
        top["entries"].as_array().map(|e| e
            .iter()
            .map(|x| x["name"].as_str().unwrap_or(""))
            .collect::<Vec<_>>()),
        Some(vec!["README.md", "datasets", "models", "models-link"])
    );
    let dir = emu
        .get("/v1/system/storage/browse?path=models/llama-3-70b-instruct/1.1.0")
        .await;
    assert_eq!(
        dir["entries"][0],
        json!({
            "name": "config.json", "type": "file", "size_bytes": 654,
            "modified_at": dir["entries"][0]["modified_at"].clone(),
        })
    );
    assert!(
        dir["entries"][0]["modified_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let via_link = emu.get("/v1/system/storage/browse?path=models-link").await;
    assert_eq!(
        field_of_items(&json!({"items": via_link["entries"]}), "type")[0],
        "directory"
    );

    // (path, status, detail fragment)
    let cases = [
        ("..", 400, "escapes the storage root"),
        ("models/../../outside", 400, "escapes the storage root"),
        ("models/./../..", 400, "escapes the storage root"),
        ("/etc", 400, "must be relative"),
        ("escape", 400, "symlink target is outside"),
        ("escape/secret", 400, "symlink target is outside"),
        ("missing/dir", 404, "not found"),
        ("README.md", 400, "is not a directory"),
    ];
    for (path, expected, fragment) in cases {
        let url = format!(
            "/v1/system/storage/browse?path={}",
            path.replace('/', "%2F")
        );
        let (status, body) = emu.call("GET", &url, Some(Role::Viewer), None).await;
        assert_eq!(status, expected, "{path}: {body}");
        let detail = body["detail"].as_str().unwrap_or("");
        assert!(detail.contains(fragment), "{path}: {detail}");
        assert!(
            !detail.contains(&*emu.root.path().to_string_lossy()),
            "no host paths in {detail}"
        );
    }
}

#[tokio::test]
async fn search_across_types() {
    let emu = Emu::start().await;
    let found = emu.get("/v1/search?q=LLAMA&types=models,versions").await;
    assert_eq!(found["models"].as_array().map(Vec::len), Some(1));
    assert_eq!(found["versions"].as_array().map(Vec::len), Some(3));
    assert!(found.get("deployments").is_none());
    let everything = emu.get("/v1/search?q=bge").await;
    assert_eq!(
        ["models", "versions", "deployments"].map(|k| everything[k].as_array().map_or(0, Vec::len)),
        [1, 2, 2]
    );
    let limited = emu.get("/v1/search?q=llama&types=versions&limit=1").await;
    assert_eq!(limited["versions"][0]["version"], "1.2.0-rc1");

    let cases: [(&str, &[(&str, &str)]); 3] = [
        ("", &[("query.q", "missing")]),
        ("q=", &[("query.q", "string_too_short")]),
        ("q=x&types=models,files", &[("query.types", "enum")]),
    ];
    for (query, expected) in cases {
        let (status, body) = emu
            .call(
                "GET",
                &format!("/v1/search?{query}"),
                Some(Role::Viewer),
                None,
            )
            .await;
        assert_eq!(
            (status, validation_errors(&body)),
            (422, pairs(expected)),
            "{query}"
        );
    }
}
