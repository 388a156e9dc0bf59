//! Every renderer on hand-built findings (independent of the engine).

use std::collections::BTreeMap;

use release_config_validate::{Report, RevisionInfo, github, human, json, mark_new, sarif};
use topology::{Finding, Location, Rule, Severity};

use crate::sarif_shape::assert_sarif_shape;

const COMPOSE_8000: &str = "services:
  vllm:
    image: vllm/vllm-openai:v0.6.3
    deploy:
      resources:
        reservations:
          devices:
            - capabilities: [gpu]
              device_ids: [\"2\", \"3\"]
";

const COMPOSE_8001: &str = "services:
  sglang:
    image: lmsysorg/sglang:latest
    command: python3 -m sglang.launch_server --model-path /models/qwen --tp 2
    deploy:
      resources:
        reservations:
          devices:
            - capabilities: [gpu]
              device_ids: [\"3\", \"4\"]
";

fn sources() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("machines/m1/8000/docker-compose.yml", COMPOSE_8000),
        ("machines/m1/8001/docker-compose.yml", COMPOSE_8001),
    ])
}

fn findings() -> Vec<Finding> {
    let gpu = Finding::new(
        Rule::Gpu001,
        Some("m1"),
        ["m1:8000".to_owned(), "m1:8001".to_owned()],
        ["3".to_owned()],
        Location::new("machines/m1/8001/docker-compose.yml", 10, 28),
        "GPU 3 on m1 is held by m1:8000/vllm and m1:8001/sglang",
    )
    .with_related(
        Location::new("machines/m1/8000/docker-compose.yml", 9, 33),
        "also held here",
    );
    let mut tp = Finding::new(
        Rule::Tp004,
        Some("m1"),
        ["m1:8001".to_owned()],
        ["3".to_owned(), "4".to_owned()],
        Location::new("machines/m1/8001/docker-compose.yml", 4, 14),
        "TP group of m1:8001/sglang (GPUs 3, 4) spans NUMA domains [0-3] and [4-7] on a pcie machine",
    );
    tp.severity = Severity::Warning;
    let inv = Finding::new(
        Rule::Inv001,
        Some("m9"),
        Vec::new(),
        Vec::new(),
        Location::file("machines/m9"),
        "machine m9 has no inventory (machines/m9/machine.yaml): GPU range and capacity checks are skipped",
    );
    vec![tp, gpu, inv]
}

fn report() -> Report {
    let mut report = Report::new(findings());
    report.machines = 2;
    report.deployments = 2;
    report.topology = serde_json::json!([{ "machine": "m1", "gpu_count": 8 }, { "machine": "m9" }]);
    report
}

fn diff_report() -> Report {
    let mut all = findings();
    let base: Vec<Finding> = all.drain(1..).collect(); // GPU001 and INV001 pre-exist
    let mut report = report();
    report.findings = mark_new(findings(), &base);
    report.revision = Some(RevisionInfo {
        refname: Some("HEAD".into()),
        commit: "1111111111111111111111111111111111111111".into(),
        short: "1111111".into(),
        summary: "Add sglang on m1:8001".into(),
    });
    report.base = Some(RevisionInfo {
        refname: Some("origin/main".into()),
        commit: "2222222222222222222222222222222222222222".into(),
        short: "2222222".into(),
        summary: "main".into(),
    });
    let _ = all;
    report
}

fn lookup(path: &str) -> Option<String> {
    sources().get(path).map(|s| (*s).to_owned())
}

#[test]
fn human() {
    insta::assert_snapshot!("human", human::render(&report(), &lookup, false));
    insta::assert_snapshot!("human_diff", human::render(&diff_report(), &lookup, false));
}

#[test]
fn human_without_sources_still_names_locations() {
    let text = human::render(&report(), &|_| None, false);
    assert!(
        text.contains(" --> machines/m1/8001/docker-compose.yml:10:28\n"),
        "{text}"
    );
    assert!(
        text.contains("= note: also held here: machines/m1/8000/docker-compose.yml:9:33"),
        "{text}"
    );
}

#[test]
fn human_colour_only_when_asked() {
    let plain = human::render(&report(), &lookup, false);
    let coloured = human::render(&report(), &lookup, true);
    assert!(!plain.contains('\x1b'));
    assert!(coloured.contains("\x1b[1;31merror[GPU001]\x1b[0m"));
    let stripped = strip_ansi(&coloured);
    assert_eq!(stripped, plain);
}

#[test]
fn human_clean_report() {
    let mut report = Report::new(Vec::new());
    report.machines = 8;
    report.deployments = 1;
    assert_eq!(
        human::render(&report, &|_| None, false),
        "checked 8 machines, 1 deployment\nvalidation passed: no findings\n"
    );
}

#[test]
fn json() {
    insta::assert_snapshot!("json", json::render(&report()));
    let value = json::to_value(&diff_report());
    insta::assert_json_snapshot!("json_diff_summary", value["summary"]);
    let news: Vec<_> = value["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["new"].clone())
        .collect();
    assert_eq!(
        news,
        [
            serde_json::json!(true),
            serde_json::json!(false),
            serde_json::json!(false)
        ]
    );
    assert!(
        json::to_value(&report())["findings"][0]
            .get("new")
            .is_none()
    );
}

#[test]
fn github() {
    insta::assert_snapshot!("github", github::render(&report()));
    insta::assert_snapshot!("github_diff", github::render(&diff_report()));
    insta::assert_snapshot!("github_step_summary", github::step_summary(&diff_report()));
}

#[test]
fn github_escapes_messages_and_properties() {
    let finding = Finding::new(
        Rule::Rc004,
        None,
        Vec::new(),
        Vec::new(),
        Location::new("machines/a,b:c", 0, 0),
        "bad name 100%\nsecond line",
    );
    let text = github::render(&Report::new(vec![finding]));
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "::error file=machines/a%2Cb%3Ac,title=RC004::bad name 100%25%0Asecond line"
    );
}

#[test]
fn sarif() {
    let value = sarif::to_value(&diff_report(), "0.1.0");
    assert_sarif_shape(&value);
    insta::assert_json_snapshot!("sarif_diff", value);
    let plain = sarif::to_value(&report(), "0.1.0");
    assert_sarif_shape(&plain);
    let results = plain["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r.get("baselineState").is_none()));
    // INV001 names a directory: no region.
    let inv = results.iter().find(|r| r["ruleId"] == "INV001").unwrap();
    assert!(
        inv["locations"][0]["physicalLocation"]
            .get("region")
            .is_none()
    );
    assert_eq!(inv["level"], "note");
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
