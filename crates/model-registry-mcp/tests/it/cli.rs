//! Command line: --print-config, `tools`, and start-up errors.

use std::process::Stdio;

use crate::support::command;

async fn output(env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let cache = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = command(env, args, cache.path())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn print_config_masks_secrets() {
    let env = [
        ("REGISTRY_API_KEY", "sk-live-123456"),
        ("REGISTRY_GITHUB_TOKEN", "ghp_abcdef"),
        ("REGISTRY_URL", "https://u:pw@registry.example/api"),
        (
            "REGISTRY_RELEASE_CONFIG_REPO",
            "https://git.example/rc.git?access_token=tok_in_query_987",
        ),
        (
            "REGISTRY_GITHUB_API_URL",
            "https://api-user:api_pw_654@ghe.example/api/v3",
        ),
    ];
    let (code, stdout, _) = output(&env, &["--print-config"]).await;
    assert_eq!(code, 0);
    for secret in [
        "sk-live-123456",
        "ghp_abcdef",
        "u:pw",
        "tok_in_query_987",
        "api_pw_654",
    ] {
        assert!(!stdout.contains(secret), "{secret} leaked: {stdout}");
    }
    let row = |name: &str, value: &str| {
        stdout.lines().any(|line| {
            line.split_once(" = ")
                .is_some_and(|(n, v)| n.trim_end() == name && v == value)
        })
    };
    assert!(row("REGISTRY_API_KEY", "**** (set)"), "{stdout}");
    assert!(
        row("REGISTRY_URL", "https://***@registry.example/api"),
        "{stdout}"
    );
    assert!(
        row(
            "REGISTRY_MCP_AUTH_FILE",
            "(not set: no authentication, loopback only)"
        ),
        "{stdout}"
    );
}

#[tokio::test]
async fn bad_settings_stop_start_up_with_one_line() {
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
        &'static str,
    );
    let cases: &[Case] = &[
        (
            &[("REGISTRY_READ_ONLY", "yes please")],
            &[],
            "model-registry-mcp: REGISTRY_READ_ONLY: expected true or false, got \"yes please\"\n",
        ),
        (
            &[("REGISTRY_CACHE_TTL_SECONDS", "-1")],
            &[],
            "model-registry-mcp: REGISTRY_CACHE_TTL_SECONDS: expected a whole number of seconds from 0 to 86400, got \"-1\"\n",
        ),
        (
            &[],
            &["--tools", "get_modle"],
            "model-registry-mcp: --tools: unknown tool \"get_modle\"; valid tools: list_models,",
        ),
    ];
    for (env, args, expected) in cases {
        let (code, stdout, stderr) = output(env, args).await;
        assert_eq!(code, 2, "{stderr}");
        assert!(stdout.is_empty());
        assert!(stderr.starts_with(expected), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[tokio::test]
async fn tools_command_prints_the_surface() {
    let (code, stdout, _) = output(&[("REGISTRY_READ_ONLY", "true")], &["tools"]).await;
    assert_eq!(code, 0);
    assert!(
        stdout.contains(
            "get_machine_topology       release_configs  R     yes        no         enabled"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("delete_model               models           D     no         no         off (read-only)"), "{stdout}");
    let catalog = model_registry_mcp::catalog::CATALOG;
    let reads = catalog
        .iter()
        .filter(|e| e.class == model_registry_mcp::catalog::ToolClass::Read)
        .count();
    assert!(
        stdout.ends_with(&format!("{reads} of {} tools enabled\n", catalog.len())),
        "{stdout}"
    );
    let (code, stdout, _) = output(&[], &["tools", "--json"]).await;
    assert_eq!(code, 0);
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.as_array().map(Vec::len), Some(catalog.len()));
    assert_eq!(rows[31]["name"], "get_machine_topology");
    assert_eq!(rows[31]["definition"]["annotations"]["readOnlyHint"], true);
}

/// The README's configuration table and the command line name the same settings: every
/// `REGISTRY_*` variable clap reads is documented, and every documented one is read.
#[test]
fn the_readme_configuration_table_matches_the_command_line() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|line| !line.starts_with("| variable | default | meaning |"))
        .take_while(|line| line.starts_with('|'))
        .collect();
    let mut documented: Vec<String> = table
        .iter()
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(|cell| {
            cell.split('`')
                .filter(|part| part.starts_with("REGISTRY_"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    documented.sort();
    documented.dedup();
    let command = <model_registry_mcp::Cli as clap::CommandFactory>::command();
    let mut read: Vec<String> = command
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .filter_map(|env| env.to_str())
        .map(str::to_owned)
        .collect();
    read.sort();
    read.dedup();
    assert!(
        !documented.is_empty(),
        "no configuration table in README.md"
    );
    assert_eq!(
        documented, read,
        "README.md's configuration table vs the command line"
    );
}
