//! The release-config tools against a fixture repository served as a local Git remote.

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

use crate::support::{
    FLEET, FixtureRepo, args, as_refs, call_err, call_ok, fixture_env, repo_with, start, text_of,
};

fn ids(deployments: &Value) -> Vec<String> {
    deployments
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|d| d["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn every_tool_answers_from_the_fixture_fleet() {
    let repo = repo_with(FLEET);
    let env = fixture_env(&repo);
    let server = start(&as_refs(&env), &[]).await;
    let client = &server.client;

    let all = call_ok(client, "list_release_configs", json!({})).await;
    assert_eq!(all["total"], 4);
    assert_eq!(
        ids(&all["deployments"]),
        ["cpu-x:7000", "gpu-a:8000", "gpu-a:8001", "gpu-b:9000"]
    );
    assert_eq!(
        all["source"]["commit"]["commit"],
        repo.head(),
        "answers name the commit"
    );
    assert_eq!(all["source"]["branch"], "main");
    assert_eq!(all["source"]["stale"], false);
    assert!(
        all["source"]["fetched_at"]
            .as_str()
            .is_some_and(|t| t.contains('T'))
    );

    let on_a = call_ok(client, "list_release_configs", json!({"machine": "gpu-a"})).await;
    assert_eq!(ids(&on_a["deployments"]), ["gpu-a:8000", "gpu-a:8001"]);
    let llama = call_ok(
        client,
        "list_release_configs",
        json!({"model_name": "LLAMA"}),
    )
    .await;
    assert_eq!(ids(&llama["deployments"]), ["gpu-a:8000", "gpu-b:9000"]);
    let limited = call_ok(client, "list_release_configs", json!({"limit": 1})).await;
    assert_eq!(
        (limited["total"].clone(), limited["truncated"].clone()),
        (json!(4), json!(true))
    );
    assert!(
        limited["hint"]
            .as_str()
            .is_some_and(|h| h.contains("3 more")),
        "{limited}"
    );
    assert_eq!(
        (limited["has_more"].clone(), limited["next_offset"].clone()),
        (json!(true), json!(1))
    );
    assert_eq!(
        limited["next_call"],
        r#"list_release_configs({"limit":1,"offset":1})"#
    );
    // Following next_offset pages through every row exactly once.
    let mut seen = Vec::new();
    let mut offset = Some(0);
    while let Some(at) = offset {
        let page = call_ok(
            client,
            "list_release_configs",
            json!({"limit": 3, "offset": at}),
        )
        .await;
        seen.extend(ids(&page["deployments"]));
        offset = page["next_offset"].as_u64();
    }
    assert_eq!(
        seen,
        ["cpu-x:7000", "gpu-a:8000", "gpu-a:8001", "gpu-b:9000"]
    );
    let machines = call_ok(
        client,
        "get_machine_topology",
        json!({"limit": 2, "offset": 2}),
    )
    .await;
    assert_eq!(
        (
            machines["total"].clone(),
            machines["returned"].clone(),
            machines["has_more"].clone()
        ),
        (json!(3), json!(1), json!(false))
    );
    let models = call_ok(client, "get_models_by_deployment", json!({"limit": 1})).await;
    assert_eq!(models["next_offset"], 1, "{models}");

    let one = call_ok(
        client,
        "get_release_config",
        json!({"machine": "gpu-a", "port": 8000}),
    )
    .await;
    let config = &one["release_config"];
    assert_eq!(config["deployment"]["model_name"], "llama-3-70b");
    assert_eq!(config["deployment"]["tensor_parallel"], 2);
    assert_eq!(config["deployment"]["gpus"], json!(["0", "1"]));
    assert_eq!(
        config["compose_path"],
        "machines/gpu-a/8000/docker-compose.yml"
    );
    assert!(
        config["compose_file"]
            .as_str()
            .is_some_and(|f| f.contains("vllm/vllm-openai"))
    );
    let codes: Vec<&str> = config["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert!(codes.contains(&"GPU001"), "GPU 1 is held twice: {codes:?}");

    let fleet = call_ok(client, "get_machine_topology", json!({})).await;
    assert_eq!(fleet["fleet"]["machines"], 3);
    assert_eq!(fleet["fleet"]["machines_without_inventory"], 1);
    // The fleet answer is one line per machine: capacity, not the holders and findings.
    let a_line = &fleet["machines"][1];
    assert_eq!(
        a_line,
        &json!({
            "machine": "gpu-a",
            "has_inventory": true,
            "gpu_count": 8,
            "gpu_model": "H100-SXM-80GB",
            "gpu_memory_gb": a_line["gpu_memory_gb"],
            "interconnect": a_line["interconnect"],
            "gpus_used": ["0", "1", "2"],
            "free_gpus": [3, 4, 5, 6, 7],
            "free_gpus_by_numa": [[3], [4, 5, 6, 7]],
            "unpinned_gpus": 0,
            "deployment_ports": [8000, 8001],
            "finding_counts": a_line["finding_counts"],
        })
    );
    // `detail` gives every machine of the page in full, as `machine` gives one.
    let detailed = call_ok(
        client,
        "get_machine_topology",
        json!({"detail": true, "limit": 2}),
    )
    .await;
    assert_eq!(detailed["machines"][1]["machine"], "gpu-a");
    assert_eq!(
        ids(&detailed["machines"][1]["deployments"]),
        ["gpu-a:8000", "gpu-a:8001"]
    );
    assert_eq!(
        detailed["next_call"],
        r#"get_machine_topology({"detail":true,"limit":2,"offset":2})"#
    );
    let a = call_ok(client, "get_machine_topology", json!({"machine": "gpu-a"})).await;
    let a = &a["machines"][0];
    assert_eq!(a["gpu_count"], 8);
    assert_eq!(a["gpu_model"], "H100-SXM-80GB");
    assert_eq!(a["gpus_used"], json!(["0", "1", "2"]));
    assert_eq!(a["free_gpus"], json!([3, 4, 5, 6, 7]));
    assert_eq!(a["free_gpus_by_numa"][0]["free"], json!([3]));
    assert_eq!(a["free_gpus_by_numa"][1]["free"], json!([4, 5, 6, 7]));
    let holders_of_1 = a["gpu_holders"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["gpu"] == "1")
        .cloned();
    assert_eq!(
        holders_of_1.map(|h| h["holders"].clone()),
        Some(json!(["gpu-a:8000/vllm", "gpu-a:8001/sglang"]))
    );
    assert!(
        a["finding_counts"]["errors"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    );
    let cpu = call_ok(client, "get_machine_topology", json!({"machine": "cpu-x"})).await;
    assert_eq!(
        (
            cpu["machines"][0]["has_inventory"].clone(),
            cpu["machines"][0]["free_gpus"].clone()
        ),
        (json!(false), Value::Null)
    );

    let models = call_ok(client, "get_models_by_deployment", json!({})).await;
    let llama = models["models"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["model"] == "/models/llama-3-70b")
        .cloned();
    let llama = llama.unwrap_or_else(|| panic!("llama group missing: {models}"));
    assert_eq!(ids(&llama["deployments"]), ["gpu-a:8000", "gpu-b:9000"]);
    assert_eq!(llama["total_gpus"], 6);

    let templates = call_ok(client, "list_docker_templates", json!({})).await;
    let rows: Vec<(String, String, bool)> = templates["templates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default().to_owned(),
                t["origin"].as_str().unwrap_or_default().to_owned(),
                t["in_effect"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    let row =
        |name: &str, origin: &str, in_effect: bool| (name.to_owned(), origin.to_owned(), in_effect);
    assert_eq!(
        rows,
        [
            row("custom", "repository", true),
            row("vllm", "repository", true),
            row("sglang", "shipped", true),
            row("tgi", "shipped", true),
            row("vllm", "shipped", false),
        ]
    );
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn unknown_and_hostile_names_are_tool_errors_with_suggestions() {
    let repo = repo_with(FLEET);
    let env = fixture_env(&repo);
    let server = start(&as_refs(&env), &[]).await;
    let client = &server.client;

    let text = call_err(client, "get_machine_topology", json!({"machine": "gpu-c"})).await;
    assert!(
        text.contains("unknown machine \"gpu-c\"") && text.contains("gpu-a"),
        "{text}"
    );
    for hostile in [
        "../../etc",
        "/etc/passwd",
        "gpu-a/../../..",
        "machines/gpu-a",
        "\u{0}\n",
    ] {
        let text = call_err(
            client,
            "get_release_config",
            json!({"machine": hostile, "port": 8000}),
        )
        .await;
        assert!(text.contains("unknown machine"), "{hostile:?}: {text}");
        assert!(!text.contains("root:"), "{text}");
    }
    let text = call_err(
        client,
        "get_release_config",
        json!({"machine": "gpu-a", "port": 8002}),
    )
    .await;
    assert!(
        text.contains("no deployment at gpu-a:8002") && text.contains("8000, 8001"),
        "{text}"
    );
    let text = call_err(client, "list_release_configs", json!({"machine": "gpu"})).await;
    assert!(text.contains("closest machine names"), "{text}");

    // Protocol misuse: JSON-RPC errors naming the argument; the server keeps serving.
    let misuse = [
        (
            "get_release_config",
            json!({"machine": "gpu-a", "port": "eight thousand"}),
            "port",
        ),
        (
            "get_release_config",
            json!({"machine": "gpu-a", "port": 70000}),
            "port",
        ),
        ("get_release_config", json!({"machine": "gpu-a"}), "port"),
        (
            "list_release_configs",
            json!({"machines": "gpu-a"}),
            "machines",
        ),
        (
            "get_machine_topology",
            json!({"machine": "x".repeat(100_000)}),
            "limit",
        ),
        ("no_such_tool", json!({}), "unknown tool"),
    ];
    for (tool, arguments, expected) in misuse {
        let mut params = CallToolRequestParams::new(tool);
        params.arguments = Some(args(arguments));
        let error = client
            .call_tool(params)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains(expected), "{tool}: {error}");
    }
    call_ok(client, "get_machine_topology", json!({"machine": "gpu-a"})).await;
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn disabled_tools_say_which_setting_disables_them() {
    let server = start(&[("REGISTRY_READ_ONLY", "true")], &[]).await;
    let text = call_err(&server.client, "create_model", json!({})).await;
    assert!(text.contains("REGISTRY_READ_ONLY"), "{text}");
    let _ = server.client.cancel().await;

    let server = start(&[("REGISTRY_ALLOW_PRODUCTION_CHANGES", "false")], &[]).await;
    let text = call_err(&server.client, "propose_release_config", json!({})).await;
    assert!(text.contains("REGISTRY_ALLOW_PRODUCTION_CHANGES"), "{text}");
    let _ = server.client.cancel().await;

    let server = start(&[], &["--toolsets", "models"]).await;
    let text = call_err(&server.client, "list_release_configs", json!({})).await;
    assert!(
        text.contains("--toolsets") && text.contains("release_configs"),
        "{text}"
    );
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn without_a_repository_the_tools_say_what_to_configure() {
    // No API key and no repository: the server starts, and explains.
    let server = start(&[], &[]).await;
    let text = call_err(&server.client, "get_machine_topology", json!({})).await;
    assert!(text.contains("REGISTRY_RELEASE_CONFIG_REPO"), "{text}");
    let templates = call_ok(&server.client, "list_docker_templates", json!({})).await;
    assert_eq!(
        templates["templates"].as_array().map(Vec::len),
        Some(3),
        "shipped templates still listed"
    );
    let _ = server.client.cancel().await;
}

#[tokio::test]
async fn follows_new_commits_and_serves_the_last_state_when_the_remote_is_gone() {
    let repo = repo_with(FLEET);
    let mut env = fixture_env(&repo);
    env.push(("REGISTRY_CACHE_TTL_SECONDS", "0".to_owned()));
    let server = start(&as_refs(&env), &[]).await;
    let client = &server.client;
    let first = call_ok(client, "list_release_configs", json!({})).await;
    assert_eq!(first["total"], 4);

    repo.commit_work_tree(
        &[(
            "machines/gpu-b/9001/docker-compose.yml",
            "services:\n  web:\n    image: nginx\n    ports: [\"9001:80\"]\n",
        )],
        "add gpu-b:9001",
    );
    let second = call_ok(client, "list_release_configs", json!({})).await;
    assert_eq!(second["total"], 5);
    assert_eq!(second["source"]["commit"]["commit"], repo.head());

    let head = repo.head();
    let moved = repo.path().with_extension("gone");
    std::fs::rename(repo.path(), &moved).unwrap_or_else(|e| panic!("rename: {e}"));
    let third = call_ok(client, "list_release_configs", json!({})).await;
    let rendered = text_of(&crate::support::call(client, "get_machine_topology", json!({})).await);
    std::fs::rename(&moved, repo.path()).unwrap_or_else(|e| panic!("rename back: {e}"));
    assert_eq!(third["total"], 5, "last known state");
    assert_eq!(third["source"]["stale"], true);
    assert_eq!(third["source"]["commit"]["commit"], head);
    assert!(
        third["source"]["stale_reason"]
            .as_str()
            .is_some_and(|r| r.contains("fetch")),
        "{third}"
    );
    assert!(rendered.contains("STALE"), "{rendered}");
    // Reachable again: fresh again.
    let fourth = call_ok(client, "list_release_configs", json!({})).await;
    assert_eq!(fourth["source"]["stale"], false);
    let _ = server.client.cancel().await;
}

/// The shared fixture repository (fixtures/release-config), committed to a temp Git repository:
/// every machine and every deployment it lists can be fetched by name.
#[tokio::test]
async fn the_shared_fixture_repository_is_served_whole() {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/release-config");
    let mut files: Vec<(String, String)> = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let (Ok(relative), Ok(text)) =
                (path.strip_prefix(&root), std::fs::read_to_string(&path))
            {
                files.push((relative.to_string_lossy().into_owned(), text));
            }
        }
    }
    if !files.iter().any(|(path, _)| path.starts_with("machines/")) {
        return; // The fixture is not there (yet): nothing to check.
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let repo = repo_with(&refs);
    let mut env = fixture_env(&repo);
    env.push(("REGISTRY_MAX_RESULTS", "10000".to_owned()));
    let server = start(&as_refs(&env), &[]).await;
    let client = &server.client;
    let fleet = call_ok(client, "get_machine_topology", json!({})).await;
    let machines: Vec<String> = fleet["machines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["machine"].as_str().map(str::to_owned))
        .collect();
    assert!(!machines.is_empty());
    for machine in &machines {
        call_ok(client, "get_machine_topology", json!({"machine": machine})).await;
    }
    let all = call_ok(client, "list_release_configs", json!({})).await;
    for deployment in all["deployments"].as_array().into_iter().flatten() {
        let detail = call_ok(
            client,
            "get_release_config",
            json!({"machine": deployment["machine"], "port": deployment["port"]}),
        )
        .await;
        assert_eq!(
            detail["release_config"]["deployment"]["id"],
            deployment["id"]
        );
    }
    call_ok(client, "get_models_by_deployment", json!({})).await;
    let _ = server.client.cancel().await;
}

/// A TCP relay to `target` that can turn silent: it then accepts connections and never answers
/// (a remote that hangs), and relays again when told.
struct SilentableRelay {
    address: std::net::SocketAddr,
    silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentableRelay {
    fn start(target: std::net::SocketAddr) -> SilentableRelay {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let silent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mode = std::sync::Arc::clone(&silent);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for client in listener.incoming().flatten() {
                if mode.load(Ordering::SeqCst) {
                    held.push(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ]
                .into_iter()
                .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        SilentableRelay { address, silent }
    }

    fn set_silent(&self, silent: bool) {
        self.silent
            .store(silent, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A remote that accepts and never answers: calls keep answering from the last state, marked
/// stale, within seconds (not the request timeout); once the remote answers again, the new main
/// is served as fresh (the old state never stands for the new commit).
#[tokio::test]
async fn a_silent_remote_gets_the_last_state_at_once_and_never_an_old_state_as_fresh() {
    let repo = repo_with(FLEET);
    let daemon =
        test_support::git_daemon::GitDaemon::serve(repo.path()).unwrap_or_else(|e| panic!("{e}"));
    let daemon_address: std::net::SocketAddr = daemon
        .url("")
        .trim_start_matches("git://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let relay = SilentableRelay::start(daemon_address);
    let url = format!("git://{}/", relay.address);
    let env = [
        ("REGISTRY_RELEASE_CONFIG_REPO", url.as_str()),
        ("REGISTRY_CACHE_TTL_SECONDS", "0"),
        ("REGISTRY_REQUEST_TIMEOUT_SECONDS", "20"),
    ];
    let server = start(&env, &[]).await;
    let client = &server.client;
    let first = call_ok(client, "list_release_configs", json!({})).await;
    assert_eq!(first["source"]["stale"], false, "{first}");
    let old_head = repo.head();

    repo.commit_work_tree(
        &[(
            "machines/gpu-b/9001/docker-compose.yml",
            "services:\n  web:\n    image: nginx\n    ports: [\"9001:80\"]\n",
        )],
        "add gpu-b:9001",
    );
    relay.set_silent(true);
    for call in 0..3 {
        let started = std::time::Instant::now();
        let answer = call_ok(client, "list_release_configs", json!({})).await;
        let took = started.elapsed();
        eprintln!("silent remote: call {call} answered in {took:?}");
        assert!(
            took < std::time::Duration::from_secs(6),
            "call {call} waited {took:?} for a silent remote"
        );
        assert_eq!(answer["source"]["stale"], true, "call {call}: {answer}");
        assert_eq!(answer["source"]["commit"]["commit"], old_head.as_str());
        assert_eq!(answer["total"], 4);
        let templates = call_ok(client, "list_docker_templates", json!({})).await;
        assert!(templates["templates"].is_array(), "{templates}");
    }

    // The remote answers again: once the hung fetch has given up (its read timeout is half the
    // request timeout), the new main is what is served, as fresh.
    relay.set_silent(false);
    let recovered = std::time::Instant::now();
    let deadline = recovered + std::time::Duration::from_secs(40);
    loop {
        let answer = call_ok(client, "list_release_configs", json!({})).await;
        if answer["source"]["stale"] == false {
            assert_eq!(
                answer["source"]["commit"]["commit"],
                repo.head(),
                "{answer}"
            );
            assert_eq!(answer["total"], 5, "{answer}");
            eprintln!(
                "silent remote: fresh again {:?} after it answered",
                recovered.elapsed()
            );
            break;
        }
        assert_eq!(
            answer["source"]["commit"]["commit"],
            old_head.as_str(),
            "a new commit is never shown stale, an old one never fresh: {answer}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "never fresh again: {answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let _ = server.client.cancel().await;
}

/// Files under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// The server's mirror directory.
fn mirror_of(server: &crate::support::Server) -> std::path::PathBuf {
    let mirrors = server._cache.path().join("mirrors");
    std::fs::read_dir(&mirrors)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no mirror in {}", mirrors.display()))
}

/// One more commit on the bare `repo`'s main (gpu-b:9001), pushed from a clone.
fn move_main_on(repo: &FixtureRepo) {
    let work = repo_with(FLEET);
    work.git(&["fetch", "--quiet", &repo.url(), "main"]);
    work.git(&["reset", "--quiet", "--hard", "FETCH_HEAD"]);
    work.commit_work_tree(
        &[(
            "machines/gpu-b/9001/docker-compose.yml",
            "services:\n  web:\n    image: nginx\n    ports: [\"9001:80\"]\n",
        )],
        "add gpu-b:9001",
    );
    work.git(&["push", "--quiet", &repo.url(), "HEAD:main"]);
}

/// A damaged mirror (truncated packs and objects, or its `HEAD` deleted) is moved aside and
/// cloned again, with a warning naming what was wrong; the new main is then served as fresh.
#[tokio::test]
async fn a_damaged_mirror_heals_itself() {
    for damage in ["truncated objects", "deleted HEAD"] {
        let repo = repo_with(FLEET).bare_clone();
        let env = [
            ("REGISTRY_RELEASE_CONFIG_REPO", repo.url()),
            ("REGISTRY_CACHE_TTL_SECONDS", "0".to_owned()),
        ];
        let (server, log) = crate::support::start_logged(&as_refs(&env), &[]).await;
        let client = &server.client;
        let first = call_ok(client, "list_release_configs", json!({})).await;
        assert_eq!(first["source"]["stale"], false, "{damage}: {first}");
        let mirror = mirror_of(&server);
        match damage {
            "truncated objects" => {
                for file in files_under(&mirror.join("objects")) {
                    let bytes = std::fs::read(&file).unwrap_or_default();
                    let _ = std::fs::write(&file, &bytes[..bytes.len() / 2]);
                }
            }
            _ => std::fs::remove_file(mirror.join("HEAD")).unwrap_or_else(|e| panic!("{e}")),
        }
        // Main moves on upstream, so the next answer needs objects the mirror must read.
        move_main_on(&repo);

        let healed = call_ok(client, "list_release_configs", json!({})).await;
        assert_eq!(healed["source"]["stale"], false, "{damage}: {healed}");
        assert_eq!(
            healed["source"]["commit"]["commit"],
            repo.head(),
            "{damage}"
        );
        assert_eq!(healed["total"], 5, "{damage}");
        let dry = call_ok(
            client,
            "propose_release_config",
            json!({
                "machine": "gpu-a", "port": 8002, "template_name": "sglang",
                "model_name": "qwen-2-72b", "model_path": "/models/qwen-2-72b",
                "gpu_ids": [4, 5], "tensor_parallel": 2, "description": "after healing",
                "dry_run": true,
            }),
        )
        .await;
        assert_eq!(dry["base_commit"], repo.head(), "{damage}: {dry}");
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            stderr.contains("the release-config mirror is damaged: moved aside"),
            "{damage}: {stderr}"
        );
        let _ = server.client.cancel().await;
    }
}

/// A mirror left half-written by a killed process (a ref's lock file left behind, a
/// `packed-refs` cut short, the index of a pack removed) heals too.
#[tokio::test]
async fn a_mirror_left_half_written_heals_itself() {
    for damage in [
        "stale ref lock",
        "truncated packed-refs",
        "pack index removed",
    ] {
        let repo = repo_with(FLEET).bare_clone();
        let env = [
            ("REGISTRY_RELEASE_CONFIG_REPO", repo.url()),
            ("REGISTRY_CACHE_TTL_SECONDS", "0".to_owned()),
        ];
        let (server, _log) = crate::support::start_logged(&as_refs(&env), &[]).await;
        let client = &server.client;
        let first = call_ok(client, "list_release_configs", json!({})).await;
        assert_eq!(first["source"]["stale"], false, "{damage}: {first}");
        let mirror = mirror_of(&server);
        match damage {
            "stale ref lock" => {
                // Left an hour ago by a process that was killed.
                let lock = mirror.join("refs/heads/main.lock");
                std::fs::write(&lock, "").unwrap_or_else(|e| panic!("{e}"));
                let touched = std::process::Command::new("touch")
                    .args(["-d", "1 hour ago"])
                    .arg(&lock)
                    .status();
                assert!(touched.is_ok_and(|s| s.success()), "touch -d");
            }
            "truncated packed-refs" => {
                std::fs::write(
                    mirror.join("packed-refs"),
                    "# pack-refs with: peeled \n12ab",
                )
                .unwrap_or_else(|e| panic!("{e}"));
            }
            _ => {
                for file in files_under(&mirror.join("objects/pack")) {
                    if file.extension().is_some_and(|e| e == "idx") {
                        let _ = std::fs::remove_file(&file);
                    }
                }
            }
        }
        move_main_on(&repo);
        let healed = call_ok(client, "list_release_configs", json!({})).await;
        assert_eq!(healed["source"]["stale"], false, "{damage}: {healed}");
        assert_eq!(
            healed["source"]["commit"]["commit"],
            repo.head(),
            "{damage}"
        );
        let _ = server.client.cancel().await;
    }
}
