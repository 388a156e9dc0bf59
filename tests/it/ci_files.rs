//! What a release-config team wires in: the workflow and action files (linted by actionlint and
//! zizmor, the tools GitHub users run), the pre-commit hook, and the action's script run as
//! GitHub runs it (a fake `GITHUB_*` environment, the workspace's GitHub double for the API,
//! a bare repository as `origin`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{VALIDATE_BINARY, release_repo};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every workflow and action file the workspace ships.
fn workflow_files() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut workflows = Vec::new();
    for dir in ["docs/ci", ".github/workflows"] {
        if let Ok(entries) = std::fs::read_dir(workspace().join(dir)) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                    workflows.push(path);
                }
            }
        }
    }
    workflows.sort();
    (workflows, vec![workspace().join("action.yml")])
}

#[test]
fn every_workflow_and_action_file_passes_zizmor_and_actionlint() {
    let (workflows, actions) = workflow_files();
    assert!(!workflows.is_empty() && actions.iter().all(|a| a.is_file()));
    let zizmor = test_support::reference::zizmor().unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(zizmor)
        .args([
            "--offline",
            "--persona=pedantic",
            "--no-progress",
            "--format",
            "plain",
        ])
        .args(workflows.iter().chain(&actions))
        .output()
        .unwrap_or_else(|e| panic!("zizmor: {e}"));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.contains("No findings"),
        "zizmor:\n{report}"
    );

    // actionlint checks workflows (not action metadata).
    let actionlint = test_support::actionlint::actionlint().unwrap_or_else(|e| panic!("{e}"));
    let output = actionlint
        .command()
        .args(&workflows)
        .output()
        .unwrap_or_else(|e| panic!("actionlint: {e}"));
    assert!(
        output.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // And it is a real linter: a broken workflow is caught.
    let broken = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = broken.path().join("broken.yml");
    std::fs::write(&file, "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.event.nope.nope }\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let output = actionlint
        .command()
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// The hook as pre-commit runs it (entry and args from .pre-commit-hooks.yaml, the release-config
/// repository as working directory), on the bundled fleet.
#[test]
fn the_pre_commit_hook_validates_the_work_tree_in_well_under_a_second() {
    let hooks = std::fs::read_to_string(workspace().join(".pre-commit-hooks.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let field = |name: &str| {
        hooks
            .lines()
            .find_map(|line| line.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in .pre-commit-hooks.yaml"))
            .to_owned()
    };
    assert_eq!(field("language"), "script");
    let entry = workspace().join(field("entry"));
    let args: Vec<String> = field("args")
        .trim_matches(['[', ']'])
        .split(',')
        .map(|a| a.trim().to_owned())
        .collect();
    let fleet = workspace().join("fixtures/release-config");
    let started = Instant::now();
    let output = Command::new(&entry)
        .args(&args)
        .current_dir(&fleet)
        .env("RELEASE_CONFIG_VALIDATE", VALIDATE_BINARY)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", entry.display()));
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("validation passed"), "{stdout}");
    assert!(took < Duration::from_secs(1), "the hook took {took:?}");
}

const TOKEN: &str = "ghs_action_token";

const INVENTORY: &str = "gpus: 4\ngpu_model: L40S\ngpu_memory_gb: 48\ninterconnect: pcie\nnuma_domains: [[0, 1], [2, 3]]\n";

fn deployment(port: u16, gpu: u32) -> String {
    format!(
        "services:\n  server:\n    image: vllm/vllm-openai:v0.6.3\n    command: --model /models/m{port}\n    \
         ports:\n      - \"{port}:8000\"\n    deploy:\n      resources:\n        reservations:\n          \
         devices:\n            - capabilities: [gpu]\n              device_ids: [\"{gpu}\"]\n"
    )
}

/// The action's script (`action/validate.sh`) on a pull request whose new deployment takes a GPU
/// another open pull request also takes: annotations, SARIF, one sticky comment updated in place,
/// and the verdict `fail-on` asks for.
// Multi-threaded: the script is run blocking while the GitHub double answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_action_reports_and_keeps_one_sticky_comment() {
    let upstream = release_repo();
    upstream.commit_on_branch(
        "proposal",
        &[
            ("machines/gpu-new-01/machine.yaml", INVENTORY),
            (
                "machines/gpu-new-01/8000/docker-compose.yml",
                &deployment(8000, 0),
            ),
        ],
        "gpu-new-01:8000 on GPU 0",
    );
    upstream.commit_on_branch(
        "other",
        &[
            ("machines/gpu-new-01/machine.yaml", INVENTORY),
            (
                "machines/gpu-new-01/8001/docker-compose.yml",
                &deployment(8001, 0),
            ),
        ],
        "gpu-new-01:8001 on GPU 0",
    );
    let origin = upstream.bare_clone();
    let github = github_emulator::FakeGitHub::start(
        TOKEN,
        "acme",
        "release-configs",
        origin.path().to_owned(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let this = github.open_pull("proposal", "main", "gpu-new-01:8000");
    let other = github.open_pull("other", "main", "gpu-new-01:8001");
    origin.git(&[
        "update-ref",
        &format!("refs/pull/{this}/head"),
        "refs/heads/proposal",
    ]);
    origin.git(&[
        "update-ref",
        &format!("refs/pull/{other}/head"),
        "refs/heads/other",
    ]);
    let work = origin.work_clone();
    work.git(&["checkout", "--quiet", "proposal"]);
    let runner = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let summary = runner.path().join("step-summary.md");
    let sarif = runner.path().join("release-config.sarif");
    // The event file GitHub writes for a pull_request event (the fields the script reads).
    let event = runner.path().join("event.json");
    std::fs::write(
        &event,
        serde_json::json!({
            "action": "synchronize",
            "number": this,
            "pull_request": {"number": this, "base": {"ref": "main"}, "head": {"ref": "proposal"}},
        })
        .to_string(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let run = |fail_on: &str| {
        let output = Command::new("bash")
            .arg(workspace().join("action/validate.sh"))
            .current_dir(runner.path())
            .env("VALIDATOR", VALIDATE_BINARY)
            .env("REPO_PATH", work.path())
            .env("FAIL_ON", fail_on)
            .env("COMMENT", "true")
            .env("SARIF_FILE", &sarif)
            .env("GH_TOKEN", TOKEN)
            .env("EVENT_NAME", "pull_request")
            .env("GITHUB_EVENT_PATH", &event)
            .env("GITHUB_API_URL", &github.url)
            .env("GITHUB_REPOSITORY", "acme/release-configs")
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("RUNNER_TEMP", runner.path())
            .env("HOME", runner.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap_or_else(|e| panic!("validate.sh: {e}"));
        (
            output.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let (status, log) = run("error");
    assert_eq!(
        status,
        Some(0),
        "a warning does not fail fail-on=error:\n{log}"
    );
    assert!(
        log.contains("::warning file=machines/gpu-new-01/8000/docker-compose.yml"),
        "{log}"
    );
    assert!(
        log.contains("PENDING001"),
        "the other open pull request was read:\n{log}"
    );
    let comments = github.comments();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert!(
        comments[0]
            .body
            .starts_with("<!-- release-config-validate -->"),
        "{}",
        comments[0].body
    );
    assert!(
        comments[0].body.contains("PENDING001"),
        "{}",
        comments[0].body
    );
    assert!(
        comments[0].body.contains("### `gpu-new-01` (new machine)")
            && comments[0].body.contains("| GPU | before | after |"),
        "the comment is the GPU map of the touched machine: {}",
        comments[0].body
    );
    let sarif_log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap_or_default())
            .unwrap_or_default();
    assert_eq!(sarif_log["version"], "2.1.0");
    assert!(
        std::fs::read_to_string(&summary)
            .unwrap_or_default()
            .contains("Release-config validation")
    );

    let (status, log) = run("warning");
    assert_eq!(
        status,
        Some(1),
        "fail-on=warning fails on the warning:\n{log}"
    );
    let comments = github.comments();
    assert_eq!(
        comments.len(),
        1,
        "updated in place, not a second comment: {comments:?}"
    );
    assert!(
        log.contains(&format!("updated comment {}", comments[0].id)),
        "{log}"
    );
}
