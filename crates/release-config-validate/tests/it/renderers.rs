//! Every renderer on hand-built findings (independent of the engine).

use std::collections::BTreeMap;

use release_config_validate::{
    Report, RevisionInfo, Topology, github, human, json, mark_new, sarif,
};
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
    report.topology = Topology::Value(serde_json::json!([
        { "machine": "m1", "gpu_count": 8 },
        { "machine": "m9" }
    ]));
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

fn lookup(at: Option<&str>, path: &str) -> Option<String> {
    match at {
        None => sources().get(path).map(|s| (*s).to_owned()),
        Some(_) => None,
    }
}

#[test]
fn human() {
    insta::assert_snapshot!("human", human::render(&report(), &lookup, false));
    insta::assert_snapshot!("human_diff", human::render(&diff_report(), &lookup, false));
}

#[test]
fn human_without_sources_still_names_locations() {
    let text = human::render(&report(), &|_, _| None, false);
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
        human::render(&report, &|_, _| None, false),
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
    insta::assert_snapshot!("github", github::render(&report(), false));
    insta::assert_snapshot!("github_diff", github::render(&diff_report(), true));
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
    let text = github::render(&Report::new(vec![finding]), false);
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

/// Tabs, wide characters, control characters and a very long line in the
/// source: the caret stays under the node, the terminal gets no escapes.
#[test]
fn human_source_lines_are_displayed_safely() {
    let long_flags = "--enable-chunked-prefill --max-num-seqs 256 ".repeat(6);
    let source = format!(
        "services:\n\tllm:\n    labels:\n      catapult.model: \"通义千问-72B\"\n      catapult.tensor_parallel: \"3\"\n    command: --model /models/q {long_flags}--tensor-parallel-size 4 {long_flags}\n      x: \"\u{1b}[2J\"\n"
    );
    let path = "machines/m1/8000/docker-compose.yml";
    let tp_column = source
        .lines()
        .nth(5)
        .and_then(|l| l.find("4 --enable"))
        .map(|i| u32::try_from(i + 1).unwrap())
        .unwrap();
    let findings = vec![
        Finding::new(
            Rule::Tp003,
            Some("m1"),
            ["m1:8000".to_owned()],
            Vec::new(),
            Location::new(path, 4, 23),
            "a model name of wide characters",
        )
        .with_related(Location::new(path, 2, 2), "service with a tab before it"),
        Finding::new(
            Rule::Tp001,
            Some("m1"),
            ["m1:8000".to_owned()],
            Vec::new(),
            Location::new(path, 6, tp_column),
            "a flag in the middle of a 570-column command",
        ),
        Finding::new(
            Rule::Rc002,
            None,
            Vec::new(),
            Vec::new(),
            Location::new(path, 7, 10),
            "a message carrying \u{1b}[31m an escape",
        ),
    ];
    let mut report = Report::new(findings);
    report.machines = 1;
    report.deployments = 1;
    let text = human::render(
        &report,
        &|at, p| (at.is_none() && p == path).then(|| source.clone()),
        false,
    );
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        text.lines().all(|l| l.chars().count() <= 140),
        "long lines are cut:\n{text}"
    );
    insta::assert_snapshot!("human_unusual_source_lines", text);
}

#[test]
fn human_shows_the_other_side_of_a_pending_claim_from_its_ref() {
    let mut finding = Finding::new(
        Rule::Pending001,
        Some("m1"),
        ["m1:8000".to_owned(), "m1:8002".to_owned()],
        ["gpu:3".to_owned(), "ref:refs/pull/7/head".to_owned()],
        Location::new("machines/m1/8000/docker-compose.yml", 9, 33),
        "GPU 3 on m1 is held by m1:8000 here and claimed by the open proposal refs/pull/7/head (m1:8002)",
    )
    .with_related(
        Location::new("machines/m1/8002/docker-compose.yml", 2, 20),
        "GPU 3 is claimed by refs/pull/7/head (m1:8002) here",
    );
    finding.severity = Severity::Warning;
    let mut report = Report::new(vec![finding]);
    report.findings[0].related_at = Some("refs/pull/7/head".to_owned());
    let text = human::render(
        &report,
        &|at, path| match (at, path) {
            (None, "machines/m1/8000/docker-compose.yml") => Some(COMPOSE_8000.to_owned()),
            (Some("refs/pull/7/head"), "machines/m1/8002/docker-compose.yml") => {
                Some("services:\n  x: {device_ids: [\"3\"]}\n".to_owned())
            }
            _ => None,
        },
        false,
    );
    insta::assert_snapshot!("human_pending", text);
    let json = json::to_value(&report);
    assert_eq!(json["findings"][0]["related"][0]["ref"], "refs/pull/7/head");
    let github = github::render(&report, false);
    assert!(
        github.contains("here: refs/pull/7/head:machines/m1/8002/docker-compose.yml:2:20"),
        "{github}"
    );
    let sarif = sarif::to_value(&report, "0.1.0");
    assert_sarif_shape(&sarif);
    assert_eq!(
        sarif["runs"][0]["results"][0]["relatedLocations"][0]["properties"]["ref"],
        "refs/pull/7/head"
    );
}

fn many(rule: Rule, severity: Severity, n: u32) -> Vec<Finding> {
    (0..n)
        .map(|i| {
            let mut finding = Finding::new(
                rule,
                Some("m1"),
                [format!("m1:{}", 8000 + i)],
                [i.to_string()],
                Location::new(format!("machines/m1/{}/docker-compose.yml", 8000 + i), 3, 5),
                format!("finding {i}"),
            );
            finding.severity = severity;
            finding
        })
        .collect()
}

#[test]
fn github_says_when_annotations_are_dropped() {
    // (errors, warnings, expected note)
    let cases = [
        (10, 10, None),
        (
            12,
            3,
            Some("this run has 12 errors: the job summary lists every finding"),
        ),
        (
            11,
            11,
            Some("this run has 11 errors, 11 warnings: the job summary lists every finding"),
        ),
    ];
    for (errors, warnings, expected) in cases {
        let mut findings = many(Rule::Gpu001, Severity::Error, errors);
        findings.extend(many(Rule::Port002, Severity::Warning, warnings));
        let text = github::render(&Report::new(findings), true);
        let first = text.lines().next().unwrap();
        match expected {
            None => assert!(first.starts_with("::error "), "{first}"),
            Some(tail) => {
                assert!(
                    first.starts_with("::notice title=release-config%3A more findings than annotations::GitHub shows only 10 annotations of each kind per step and "),
                    "{first}"
                );
                assert!(first.ends_with(tail), "{first}");
                assert!(text.lines().nth(1).unwrap().starts_with("::error "));
            }
        }
        let commands = text.lines().filter(|l| l.starts_with("::")).count();
        let expected_commands = errors + warnings + u32::from(expected.is_some());
        assert_eq!(commands, expected_commands as usize);
    }
    // Without a step summary the note points at the log.
    let text = github::render(&Report::new(many(Rule::Gpu001, Severity::Error, 11)), false);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("the step log lists every finding")
    );
}

#[test]
fn github_step_summary_cells_cannot_break_the_table() {
    let finding = Finding::new(
        Rule::Rc004,
        None,
        Vec::new(),
        Vec::new(),
        Location::file("machines/a|b"),
        "bad | name\nsecond line with *stars* and <b>html</b>",
    );
    let text = github::step_summary(&Report::new(vec![finding]));
    let row = text.lines().find(|l| l.contains("RC004")).unwrap();
    assert_eq!(
        row,
        "| :x: error | `RC004` | machines/a\\|b | bad \\| name<br>second line with \\*stars\\* and &lt;b&gt;html&lt;/b&gt; |"
    );
}

#[test]
fn github_step_summary_stays_under_githubs_limit() {
    let mut findings = many(Rule::Gpu001, Severity::Error, 20_000);
    for finding in &mut findings {
        finding.message = format!("{} {}", finding.message, "x".repeat(100));
    }
    let text = github::step_summary(&Report::new(findings));
    assert!(text.len() < 1024 * 1024, "{}", text.len());
    let last = text.trim_end().lines().last().unwrap();
    assert!(
        last.ends_with("more findings are left out: GitHub limits the job summary to 1 MiB. Run the validator with `--format json` for all of them."),
        "{last}"
    );
}
