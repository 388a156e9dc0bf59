//! Repository layout (contract section 1): every case is read both from a
//! directory and from a Git commit, and must give the same answer.

use tempfile::TempDir;
use topology::layout::{Layout, template_name};
use topology::repo::{Repository, Snapshot};
use topology::{Rule, Severity};

use crate::support::{Change, FixtureRepo, write_files};

const C: &str = "services: {}\n";

/// What a layout says, in a form that is identical for both sources.
#[derive(Debug, PartialEq)]
struct Summary {
    /// `machine:port=compose file name[+env]`, in layout order.
    deployments: Vec<String>,
    /// `machine[inventory]`, in layout order.
    machines: Vec<String>,
    templates: Vec<String>,
    config: bool,
    /// (path, deployments, message) of each finding.
    findings: Vec<(String, Vec<String>, String)>,
}

fn summarize(layout: &Layout) -> Summary {
    for finding in &layout.findings {
        assert_eq!(finding.rule, Rule::Rc004, "{finding:?}");
        assert_eq!(finding.severity, Severity::Error, "{finding:?}");
    }
    Summary {
        deployments: layout
            .deployments()
            .map(|d| {
                let env = if d.env.is_some() { "+env" } else { "" };
                format!("{}={}{env}", d, d.compose.name())
            })
            .collect(),
        machines: layout
            .machines
            .iter()
            .map(|m| {
                if m.inventory.is_some() {
                    format!("{}[inventory]", m.name)
                } else {
                    m.name.clone()
                }
            })
            .collect(),
        templates: layout
            .templates
            .iter()
            .filter_map(|t| template_name(t).map(str::to_owned))
            .collect(),
        config: layout.config.is_some(),
        findings: layout
            .findings
            .iter()
            .map(|f| {
                (
                    f.location.path.to_string(),
                    f.deployments.clone(),
                    f.message.clone(),
                )
            })
            .collect(),
    }
}

fn layout_of_dir(files: &[(&str, &str)]) -> Summary {
    let dir = TempDir::new().unwrap();
    write_files(dir.path(), files);
    summarize(&Layout::read(&Snapshot::from_dir(dir.path()).unwrap()))
}

fn layout_of_git(files: &[(&str, &str)]) -> Summary {
    let fixture = FixtureRepo::init();
    // A commit needs at least one file; README.md is outside the snapshot.
    let mut all = files.to_vec();
    all.push(("README.md", "readme\n"));
    fixture.commit_files("main", &all, "fixture");
    let snapshot = Repository::open(fixture.path())
        .unwrap()
        .snapshot("main")
        .unwrap();
    summarize(&Layout::read(&snapshot))
}

/// Reads `files` from a directory and from Git; both must give the expected
/// deployments and findings (`(path, message fragment)`, in order).
fn check(
    name: &str,
    files: &[(&str, &str)],
    deployments: &[&str],
    findings: &[(&str, &str)],
) -> Summary {
    let from_dir = layout_of_dir(files);
    let from_git = layout_of_git(files);
    assert_eq!(
        from_dir, from_git,
        "case {name}: directory and Git disagree"
    );
    assert_eq!(from_dir.deployments, deployments, "case {name}");
    let got: Vec<&str> = from_dir
        .findings
        .iter()
        .map(|(path, _, _)| path.as_str())
        .collect();
    let expected: Vec<&str> = findings.iter().map(|(path, _)| *path).collect();
    assert_eq!(
        got, expected,
        "case {name}: finding paths; all: {:#?}",
        from_dir.findings
    );
    for ((_, _, message), (path, fragment)) in from_dir.findings.iter().zip(findings) {
        assert!(
            message.contains(fragment),
            "case {name}: finding at {path}: `{message}` lacks `{fragment}`"
        );
    }
    from_dir
}

#[test]
fn layout_cases() {
    check(
        "complete repository",
        &[
            ("machines/gpu-01/machine.yaml", "gpus: 8\n"),
            ("machines/gpu-01/8000/docker-compose.yml", C),
            ("machines/gpu-01/8000/.env", "A=1\n"),
            ("machines/gpu-01/8000/config/model.json", "{}"),
            ("machines/gpu-01/8000/README.md", "assets are allowed"),
            ("templates/vllm.yml.j2", "x"),
            ("release-config.toml", ""),
        ],
        &["gpu-01:8000=docker-compose.yml+env"],
        &[],
    );
    for compose in [
        "docker-compose.yml",
        "docker-compose.yaml",
        "compose.yml",
        "compose.yaml",
    ] {
        let path = format!("machines/a/8000/{compose}");
        check(
            compose,
            &[(path.as_str(), C)],
            &[&format!("a:8000={compose}")],
            &[],
        );
    }
    check(
        "several compose files: the first in the contract's order wins",
        &[
            ("machines/a/8000/compose.yaml", C),
            ("machines/a/8000/docker-compose.yaml", C),
            ("machines/a/8000/compose.yml", C),
        ],
        &["a:8000=docker-compose.yaml"],
        &[
            (
                "machines/a/8000/compose.yaml",
                "is ignored: `docker-compose.yaml` is read",
            ),
            (
                "machines/a/8000/compose.yml",
                "keep exactly one compose file",
            ),
        ],
    );
    check(
        "override files are merged by docker compose but not validated",
        &[
            ("machines/a/8000/docker-compose.yml", C),
            ("machines/a/8000/docker-compose.override.yml", C),
        ],
        &["a:8000=docker-compose.yml"],
        &[(
            "machines/a/8000/docker-compose.override.yml",
            "merges override files automatically",
        )],
    );
    check(
        "port directory without compose file",
        &[
            ("machines/a/8000/.env", "A=1\n"),
            ("machines/a/8000/docker-compose.yml.bak", C),
            ("machines/a/8001/compose.yml", C),
        ],
        &["a:8001=compose.yml"],
        &[(
            "machines/a/8000",
            "has no compose file (expected one of docker-compose.yml, docker-compose.yaml",
        )],
    );
    check(
        "bad port names",
        &[
            ("machines/a/08000/compose.yml", C),
            ("machines/a/0/compose.yml", C),
            ("machines/a/70000/compose.yml", C),
            ("machines/a/65536/compose.yml", C),
            ("machines/a/http/compose.yml", C),
            ("machines/a/-1/compose.yml", C),
            ("machines/a/65535/compose.yml", C),
        ],
        &["a:65535=compose.yml"],
        &[
            ("machines/a/-1", "port `-1` is not a decimal number"),
            ("machines/a/0", "port `0` is outside 1..65535"),
            ("machines/a/08000", "port `08000` has a leading zero"),
            ("machines/a/65536", "is outside 1..65535"),
            ("machines/a/70000", "is outside 1..65535"),
            ("machines/a/http", "is not a decimal number"),
        ],
    );
    check(
        "bad machine names",
        &[
            ("machines/-gpu/8000/compose.yml", C),
            ("machines/.hidden/8000/compose.yml", C),
            ("machines/..x/8000/compose.yml", C),
            ("machines/gpu 01/8000/compose.yml", C),
            ("machines/gpü/8000/compose.yml", C),
            (&format!("machines/{}/8000/compose.yml", "a".repeat(64)), C),
            ("machines/ok.rack_1-a/8000/compose.yml", C),
        ],
        &["ok.rack_1-a:8000=compose.yml"],
        &[
            (
                "machines/-gpu",
                "machine name `-gpu` must start with a letter or a digit",
            ),
            ("machines/..x", "must start with a letter or a digit"),
            ("machines/.hidden", "must start with a letter or a digit"),
            (&format!("machines/{}", "a".repeat(64)), "more than 63"),
            ("machines/gpu 01", "contains ' '"),
            ("machines/gpü", "contains 'ü'"),
        ],
    );
    check(
        "stray files under machines/ and in machine directories",
        &[
            ("machines/README.md", "x"),
            ("machines/.gitkeep", ""),
            ("machines/a/notes.txt", "x"),
            ("machines/a/machine.yml", "gpus: 8\n"),
            ("machines/a/8000/compose.yml", C),
            ("machines/a/8001", "a file named like a port"),
        ],
        &["a:8000=compose.yml"],
        &[
            (
                "machines/README.md",
                "`machines/` holds only machine directories",
            ),
            (
                "machines/a/8001",
                "is a file; a machine directory holds only port directories",
            ),
            (
                "machines/a/machine.yml",
                "the inventory is read from `machine.yaml`",
            ),
            (
                "machines/a/notes.txt",
                "holds only port directories and `machine.yaml`",
            ),
        ],
    );
    check(
        "machine.yaml and .env must be files",
        &[
            ("machines/a/machine.yaml/x", "x"),
            ("machines/a/8000/compose.yml", C),
            ("machines/a/8000/.env/x", "x"),
            ("machines/a/8001/docker-compose.yml/x", "x"),
            ("machines/a/8001/compose.yaml", C),
        ],
        &["a:8000=compose.yml", "a:8001=compose.yaml"],
        &[
            ("machines/a/8000/.env", "is a directory, not a file"),
            (
                "machines/a/8001/docker-compose.yml",
                "is a directory, not a compose file",
            ),
            (
                "machines/a/machine.yaml",
                "is a directory, not a file; the inventory is not read",
            ),
        ],
    );
    check(
        "templates",
        &[
            ("templates/vllm.yml.j2", "x"),
            ("templates/sglang.yml.j2", "x"),
            ("templates/README.md", "x"),
            ("templates/.yml.j2", "x"),
            ("templates/nested/x.yml.j2", "x"),
            ("release-config.toml", ""),
        ],
        &[],
        &[
            (
                "templates/.yml.j2",
                "holds only `<name>.yml.j2` template files",
            ),
            (
                "templates/README.md",
                "holds only `<name>.yml.j2` template files",
            ),
            ("templates/nested", "is a directory"),
        ],
    );
    check(
        "not a release-config repository",
        &[("src/main.rs", "fn main() {}")],
        &[],
        &[("machines", "does not look like a release-config repository")],
    );
    check(
        "configuration only: no deployments yet",
        &[("release-config.toml", "")],
        &[],
        &[],
    );
    check(
        "machines/ and release-config.toml of the wrong kind",
        &[("machines", "a file"), ("release-config.toml/x", "")],
        &[],
        &[
            ("machines", "`machines` is a file, not a directory"),
            (
                "release-config.toml",
                "`release-config.toml` is a directory, not a file",
            ),
        ],
    );
}

#[test]
fn machines_sorted_by_name_and_ports_numerically() {
    let summary = check(
        "sorting",
        &[
            ("machines/zeta/9000/compose.yml", C),
            ("machines/alpha/10000/compose.yml", C),
            ("machines/alpha/9000/compose.yml", C),
            ("machines/alpha/800/compose.yml", C),
            ("machines/alpha/machine.yaml", "gpus: 2\n"),
            ("machines/Beta/1/compose.yml", C),
        ],
        &[
            "Beta:1=compose.yml",
            "alpha:800=compose.yml",
            "alpha:9000=compose.yml",
            "alpha:10000=compose.yml",
            "zeta:9000=compose.yml",
        ],
        &[],
    );
    assert_eq!(summary.machines, ["Beta", "alpha[inventory]", "zeta"]);
}

#[test]
fn findings_name_their_deployment_and_have_distinct_fingerprints() {
    let dir = TempDir::new().unwrap();
    write_files(
        dir.path(),
        &[
            ("machines/a/8000/compose.yml", C),
            ("machines/a/8000/compose.override.yml", C),
            ("machines/a/8000/docker-compose.override.yml", C),
            ("machines/a/stray", "x"),
        ],
    );
    let layout = Layout::read(&Snapshot::from_dir(dir.path()).unwrap());
    let overrides: Vec<_> = layout
        .findings
        .iter()
        .filter(|f| f.message.contains("override"))
        .collect();
    assert_eq!(overrides.len(), 2);
    for finding in &overrides {
        assert_eq!(finding.machine.as_deref(), Some("a"));
        assert_eq!(finding.deployments, ["a:8000"]);
    }
    assert_ne!(overrides[0].fingerprint, overrides[1].fingerprint);
    let stray = layout
        .findings
        .iter()
        .find(|f| &*f.location.path == "machines/a/stray")
        .unwrap();
    assert_eq!(stray.machine.as_deref(), Some("a"));
    assert!(stray.deployments.is_empty());
}

#[test]
fn empty_port_directory_in_a_work_tree() {
    // Git cannot hold an empty directory, a work tree can.
    let dir = TempDir::new().unwrap();
    write_files(dir.path(), &[("machines/a/8000/compose.yml", C)]);
    std::fs::create_dir_all(dir.path().join("machines/a/8001")).unwrap();
    let layout = Layout::read(&Snapshot::from_dir(dir.path()).unwrap());
    let summary = summarize(&layout);
    assert_eq!(summary.deployments, ["a:8000=compose.yml"]);
    assert_eq!(summary.findings.len(), 1);
    assert_eq!(summary.findings[0].0, "machines/a/8001");
    assert_eq!(summary.findings[0].1, ["a:8001"]);
}

/// Links: inside the repository a compose file may be a link; leaving it is
/// RC004 wherever it happens; linked machine or port directories are not followed.
fn check_link_layout(layout: &Layout) {
    let summary = summarize(layout);
    assert_eq!(
        summary.deployments,
        ["a:8000=docker-compose.yml", "a:8001=docker-compose.yml"]
    );
    let paths: Vec<&str> = summary
        .findings
        .iter()
        .map(|(path, _, _)| path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "machines/a/8002",
            "machines/a/8002/docker-compose.yml",
            "machines/a/8003",
            "machines/a/8003/docker-compose.yml",
            "machines/a/8010",
            "machines/b",
            "machines/x",
            "templates/evil.yml.j2",
        ],
        "{:#?}",
        summary.findings
    );
    let message = |path: &str| {
        summary
            .findings
            .iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, _, m)| m.as_str())
            .unwrap_or_default()
    };
    assert!(message("machines/a/8002/docker-compose.yml").contains("leaves the repository"));
    assert!(message("machines/a/8002").contains("has no compose file"));
    let dangling = message("machines/a/8003/docker-compose.yml");
    assert!(
        dangling.contains("points to nothing, not a compose file"),
        "{dangling}"
    );
    assert!(message("machines/a/8010").contains("linked directories are not followed"));
    assert!(message("machines/b").contains("linked directories are not followed"));
    assert!(message("machines/x").contains("leaves the repository"));
    assert!(message("templates/evil.yml.j2").contains("leaves the repository"));
    // The escaping link is attributed to its deployment.
    let escaping = layout
        .findings
        .iter()
        .find(|f| &*f.location.path == "machines/a/8002/docker-compose.yml")
        .unwrap();
    assert_eq!(escaping.deployments, ["a:8002"]);
    // The linked compose file reads as its target.
    let linked = layout.deployments().find(|d| d.port == 8001).unwrap();
    assert!(linked.compose.is_file());
}

#[test]
fn links_in_git() {
    let fixture = FixtureRepo::init();
    fixture.commit(
        "main",
        &[
            ("machines/a/8000/docker-compose.yml", Change::File(C)),
            (
                "machines/a/8001/docker-compose.yml",
                Change::Link("../8000/docker-compose.yml"),
            ),
            (
                "machines/a/8002/docker-compose.yml",
                Change::Link("../../../../../etc/passwd"),
            ),
            (
                "machines/a/8003/docker-compose.yml",
                Change::Link("missing.yml"),
            ),
            ("machines/a/8010", Change::Link("8000")),
            ("machines/b", Change::Link("a")),
            ("machines/x", Change::Link("/srv/elsewhere")),
            ("templates/evil.yml.j2", Change::Link("../../outside.j2")),
        ],
        "links",
    );
    let snapshot = Repository::open(fixture.path())
        .unwrap()
        .snapshot("main")
        .unwrap();
    check_link_layout(&Layout::read(&snapshot));
}

#[cfg(unix)]
#[test]
fn links_in_a_directory() {
    use std::os::unix::fs::symlink;
    let dir = TempDir::new().unwrap();
    let root = dir.path();
    write_files(
        root,
        &[
            ("machines/a/8000/docker-compose.yml", C),
            ("templates/ok.yml.j2", "x"),
        ],
    );
    for port in ["8001", "8002", "8003"] {
        std::fs::create_dir_all(root.join("machines/a").join(port)).unwrap();
    }
    symlink(
        "../8000/docker-compose.yml",
        root.join("machines/a/8001/docker-compose.yml"),
    )
    .unwrap();
    symlink(
        "../../../../../etc/passwd",
        root.join("machines/a/8002/docker-compose.yml"),
    )
    .unwrap();
    symlink(
        "missing.yml",
        root.join("machines/a/8003/docker-compose.yml"),
    )
    .unwrap();
    symlink("8000", root.join("machines/a/8010")).unwrap();
    symlink("a", root.join("machines/b")).unwrap();
    symlink("/srv/elsewhere", root.join("machines/x")).unwrap();
    symlink("../../outside.j2", root.join("templates/evil.yml.j2")).unwrap();
    let mut layout = Layout::read(&Snapshot::from_dir(root).unwrap());
    assert_eq!(layout.templates.len(), 1);
    layout.templates.clear();
    check_link_layout(&layout);
}
