//! The engine end to end: a repository in a temporary directory (and as Git
//! commits), cache reuse after a one-file change, the fleet queries,
//! PENDING001, and properties of generated fleets.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use tempfile::TempDir;
use topology::capacity::PortBinding;
use topology::compose::{self, Deployment, DeploymentId};
use topology::engine::{Engine, ExtraDeployment, Fleet, pending_conflicts};
use topology::graph::AllocationGraph;
use topology::inventory::{Inventory, Machine};
use topology::repo::{DirReader, Repository, Snapshot};
use topology::yaml::Limits;
use topology::{Rule, Severity, rules};

use crate::support::{FixtureRepo, write_files};

fn vllm(port: u16, ids: &str, tp: u32, model: &str) -> String {
    format!(
        "services:
  llm:
    image: vllm/vllm-openai
    command: --model {model} --tensor-parallel-size {tp}
    ports: ['{port}:8000']
    deploy:
      resources:
        reservations:
          devices: [{{capabilities: [gpu], device_ids: [{ids}]}}]
"
    )
}

fn repo_files() -> Vec<(String, String)> {
    vec![
        (
            "machines/gpu-01/machine.yaml".into(),
            "gpus: 4\ngpu_memory_gb: 80\ninterconnect: pcie\nnuma_domains: [[0, 1], [2, 3]]\n"
                .into(),
        ),
        (
            "machines/gpu-01/8000/docker-compose.yml".into(),
            vllm(8000, "'0', '1'", 2, "/models/llama"),
        ),
        (
            "machines/gpu-01/8001/compose.yaml".into(),
            vllm(8001, "'${GPU}'", 1, "/models/qwen"),
        ),
        ("machines/gpu-01/8001/.env".into(), "GPU=1\n".into()),
        (
            "machines/gpu-02/9000/docker-compose.yml".into(),
            vllm(9000, "'0'", 1, "/models/llama"),
        ),
        (
            "release-config.toml".into(),
            "[rules]\nINV001 = \"warning\"\nTP004 = \"off\"\n".into(),
        ),
    ]
}

fn write(root: &std::path::Path, files: &[(String, String)]) {
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    write_files(root, &refs);
}

fn lines(fleet: &Fleet) -> Vec<String> {
    fleet
        .findings
        .iter()
        .map(|f| format!("{} {} {}", f.rule, f.severity, f.location))
        .collect()
}

#[test]
fn analyze_a_directory() {
    let dir = TempDir::new().expect("temp dir");
    write(dir.path(), &repo_files());
    let snapshot = Snapshot::from_dir(dir.path()).expect("snapshot");
    let fleet = Engine::new().analyze(&snapshot).expect("analyze");

    assert_eq!(
        lines(&fleet),
        [
            "GPU001 error machines/gpu-01/8001/compose.yaml:9:56",
            "INV001 warning machines/gpu-02",
        ]
    );
    let gpu001 = &fleet.findings[0];
    assert_eq!(gpu001.deployments, ["gpu-01:8000", "gpu-01:8001"]);
    assert_eq!(
        gpu001.related[0].location.to_string(),
        "machines/gpu-01/8000/docker-compose.yml:9:61"
    );
    assert_eq!(fleet.summary().errors, 1);
    assert_eq!(fleet.summary().warnings, 1);

    let topology = fleet.machine_topology("gpu-01").expect("gpu-01");
    assert_eq!(topology.gpu_count, Some(4));
    assert_eq!(topology.gpus_used, ["0", "1"]);
    assert_eq!(topology.free_gpus, Some(vec![2, 3]));
    assert_eq!(topology.free_by_numa, Some(vec![vec![], vec![2, 3]]));
    let holders: Vec<String> = topology
        .holders_of("1")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(holders, ["gpu-01:8000/llm", "gpu-01:8001/llm"]);
    assert_eq!(topology.deployments.len(), 2);
    assert_eq!(topology.deployments[0].tp, 2);
    assert_eq!(
        topology.deployments[0].model_path.as_deref(),
        Some("/models/llama")
    );
    assert_eq!(topology.findings.errors, 1);

    assert_eq!(fleet.free_gpus("gpu-02"), None);
    assert_eq!(fleet.free_gpus("nope"), None);
    assert!(fleet.machine_topology("nope").is_none());
    assert_eq!(fleet.topology().len(), 2);
    let by_path = fleet.deployments_by_model_path();
    assert_eq!(
        by_path["/models/llama"],
        [
            DeploymentId::new("gpu-01", 8000),
            DeploymentId::new("gpu-02", 9000)
        ]
    );
    assert_eq!(fleet.findings_for_machine("gpu-02").count(), 1);
    assert!(fleet.revision.is_none());
    let json = serde_json::to_value(fleet.topology()).expect("serialize topology");
    assert_eq!(json[0]["machine"], "gpu-01");
}

#[test]
fn git_revision_gives_the_same_answer_as_the_directory() {
    let files = repo_files();
    let dir = TempDir::new().expect("temp dir");
    write(dir.path(), &files);
    let from_dir = Engine::new()
        .analyze(&Snapshot::from_dir(dir.path()).expect("snapshot"))
        .expect("analyze");

    let fixture = FixtureRepo::init();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    fixture.commit_files("main", &refs, "initial");
    let repo = Repository::open(fixture.path()).expect("open");
    let snapshot = repo.snapshot("main").expect("snapshot of main");
    let from_git = Engine::new().analyze(&snapshot).expect("analyze");
    assert_eq!(lines(&from_git), lines(&from_dir));
    let prints = |f: &Fleet| {
        f.findings
            .iter()
            .map(|f| f.fingerprint.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(prints(&from_git), prints(&from_dir));
    assert!(from_git.revision.is_some());
}

#[test]
fn an_engine_without_caching_keeps_nothing_and_gives_what_a_cold_one_gives() {
    let dir = TempDir::new().expect("temp dir");
    write(dir.path(), &repo_files());
    let reader = DirReader::new(dir.path()).expect("reader");
    let cold = Engine::new()
        .analyze(&reader.snapshot().expect("snapshot"))
        .expect("analyze");
    let mut engine = Engine::new();
    engine.set_caching(false);
    for _ in 0..2 {
        let fleet = engine
            .analyze(&reader.snapshot().expect("snapshot"))
            .expect("analyze");
        assert_eq!(lines(&fleet), lines(&cold));
        assert_eq!(fleet.deployments, cold.deployments);
        let stats = engine.stats().last;
        // The second analysis too parses and checks everything afresh.
        assert_eq!((stats.compose_parsed, stats.compose_reused), (3, 0));
        assert_eq!((stats.inventories_parsed, stats.inventories_reused), (1, 0));
        assert_eq!((stats.machines_checked, stats.machines_reused), (2, 0));
    }
}

#[test]
fn second_analysis_reparses_only_the_changed_file() {
    let dir = TempDir::new().expect("temp dir");
    write(dir.path(), &repo_files());
    let reader = DirReader::new(dir.path()).expect("reader");
    let mut engine = Engine::new();
    let first = engine
        .analyze(&reader.snapshot().expect("snapshot"))
        .expect("analyze");
    let stats = engine.stats().last;
    assert_eq!((stats.compose_parsed, stats.compose_reused), (3, 0));
    assert_eq!(stats.machines_checked, 2);

    // Fix the conflict: only gpu-01:8001's .env changes.
    write(
        dir.path(),
        &[("machines/gpu-01/8001/.env".into(), "GPU=2\n".into())],
    );
    let second = engine
        .analyze(&reader.snapshot().expect("snapshot"))
        .expect("analyze");
    let stats = engine.stats().last;
    assert_eq!((stats.compose_parsed, stats.compose_reused), (1, 2));
    assert_eq!((stats.inventories_parsed, stats.inventories_reused), (0, 1));
    assert_eq!((stats.machines_checked, stats.machines_reused), (1, 1));
    assert_eq!(lines(&second), ["INV001 warning machines/gpu-02"]);
    assert!(lines(&first).len() > lines(&second).len());
    // The unchanged deployment is the very same parse.
    let id = DeploymentId::new("gpu-02", 9000);
    assert!(Arc::ptr_eq(
        &first.deployments[&id],
        &second.deployments[&id]
    ));

    // Nothing changed: nothing parsed, nothing checked.
    engine
        .analyze(&reader.snapshot().expect("snapshot"))
        .expect("analyze");
    let stats = engine.stats().last;
    assert_eq!((stats.compose_parsed, stats.machines_checked), (0, 0));
    assert_eq!(engine.stats().analyses, 3);
}

#[test]
fn oversized_and_non_utf8_files_are_rc001() {
    let dir = TempDir::new().expect("temp dir");
    write_files(
        dir.path(),
        &[
            ("machines/m1/machine.yaml", "gpus: 2\n"),
            (
                "machines/m1/8000/docker-compose.yml",
                &format!("# {}\nservices: {{}}\n", "x".repeat(300)),
            ),
        ],
    );
    std::fs::create_dir_all(dir.path().join("machines/m1/8001")).expect("mkdir");
    std::fs::write(
        dir.path().join("machines/m1/8001/docker-compose.yml"),
        b"services:\n  s: \xff\n",
    )
    .expect("write");
    let limits = Limits {
        max_bytes: 200,
        ..Limits::default()
    };
    let fleet = Engine::with_limits(limits)
        .analyze(&Snapshot::from_dir(dir.path()).expect("snapshot"))
        .expect("analyze");
    assert_eq!(
        lines(&fleet),
        [
            "RC001 error machines/m1/8000/docker-compose.yml",
            "RC001 error machines/m1/8001/docker-compose.yml:2:6"
        ]
    );
    assert!(
        fleet.findings[0]
            .message
            .contains("more than the limit of 200 bytes"),
        "{}",
        fleet.findings[0].message
    );
    assert!(
        fleet.findings[1].message.contains("offset 15"),
        "{}",
        fleet.findings[1].message
    );
    // Unreadable deployments still exist (their port is taken).
    assert_eq!(fleet.deployments.len(), 2);
}

#[test]
fn release_config_problems_do_not_stop_the_run() {
    let dir = TempDir::new().expect("temp dir");
    write_files(
        dir.path(),
        &[
            (
                "machines/m1/8000/docker-compose.yml",
                "services:\n  s:\n    ports: ['8000:80']\n",
            ),
            (
                "release-config.toml",
                "[rules]\nINV001 = \"off\"\nXYZ001 = \"off\"\n",
            ),
        ],
    );
    let fleet = Engine::new()
        .analyze(&Snapshot::from_dir(dir.path()).expect("snapshot"))
        .expect("analyze");
    assert_eq!(lines(&fleet), ["RC002 error release-config.toml:3:1"]);
}

#[test]
fn extra_deployments_are_validated_with_the_tree() {
    let dir = TempDir::new().expect("temp dir");
    write(dir.path(), &repo_files());
    let snapshot = Snapshot::from_dir(dir.path()).expect("snapshot");
    let mut engine = Engine::new();
    let proposal = ExtraDeployment::new(
        DeploymentId::new("gpu-01", 8002),
        vllm(8002, "'3'", 1, "/models/new"),
    );
    let fleet = engine
        .analyze_with(&snapshot, &[proposal])
        .expect("analyze");
    assert_eq!(fleet.deployments.len(), 4);
    assert_eq!(fleet.free_gpus("gpu-01"), Some(vec![2]));
    // The proposal itself adds no finding.
    assert!(
        !fleet
            .findings
            .iter()
            .any(|f| f.deployments.contains(&"gpu-01:8002".to_owned()))
    );
}

#[test]
fn pending_proposals_conflict_with_the_head() {
    let fixture = FixtureRepo::init();
    let base: Vec<(String, String)> = vec![
        ("machines/m1/machine.yaml".into(), "gpus: 4\n".into()),
        (
            "machines/m1/8000/docker-compose.yml".into(),
            vllm(8000, "'0'", 1, "/a"),
        ),
    ];
    let refs: Vec<(&str, &str)> = base.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    let main = fixture.commit_files("main", &refs, "base");
    // The proposal adds m1:8001 on GPU 0 (held by main's m1:8000).
    let proposal = vllm(8001, "'0'", 1, "/b");
    let pr = fixture.commit_files(
        "pr",
        &[("machines/m1/8001/docker-compose.yml", &proposal)],
        "propose",
    );
    fixture.set_ref("refs/pull/7/head", pr);
    let repo = Repository::open(fixture.path()).expect("open");
    let mut engine = Engine::new();
    let head = engine
        .analyze(&repo.snapshot("main").expect("main"))
        .expect("analyze");
    let pending = engine
        .analyze(&repo.snapshot("refs/pull/7/head").expect("pr"))
        .expect("analyze");

    let found = pending_conflicts(&head, &pending, "refs/pull/7/head");
    assert_eq!(found.len(), 1, "{found:#?}");
    let finding = &found[0];
    assert_eq!(finding.rule, Rule::Pending001);
    assert_eq!(finding.severity, Severity::Warning);
    assert_eq!(
        finding.location.to_string(),
        "machines/m1/8000/docker-compose.yml:9:56"
    );
    assert!(
        finding.message.contains("refs/pull/7/head"),
        "{}",
        finding.message
    );
    assert!(finding.message.contains("GPU 0"), "{}", finding.message);
    assert_eq!(
        finding.related[0].location.to_string(),
        "machines/m1/8001/docker-compose.yml:9:56"
    );

    // Identical content claims nothing.
    fixture.set_ref("refs/pull/8/head", main);
    let same = engine
        .analyze(&repo.snapshot("refs/pull/8/head").expect("pr 8"))
        .expect("analyze");
    assert!(pending_conflicts(&head, &same, "refs/pull/8/head").is_empty());
    // A head that already contains the proposal does not conflict with itself.
    assert!(pending_conflicts(&pending, &pending, "refs/pull/7/head").is_empty());
}

// --- properties ------------------------------------------------------------------

/// Deployments (GPU sets, on a 4-GPU machine) generated per machine.
fn fleet_strategy() -> impl Strategy<Value = Vec<Vec<Vec<u8>>>> {
    let gpus = proptest::collection::btree_set(0u8..6, 0..4)
        .prop_map(|s| s.into_iter().collect::<Vec<_>>());
    let machine = proptest::collection::vec(gpus, 0..5);
    proptest::collection::vec(machine, 1..4)
}

fn build(
    fleet: &[Vec<Vec<u8>>],
) -> (
    BTreeMap<String, Machine>,
    BTreeMap<DeploymentId, Arc<Deployment>>,
) {
    let mut machines = BTreeMap::new();
    let mut deployments = BTreeMap::new();
    for (m, deps) in fleet.iter().enumerate() {
        let name = format!("m{m}");
        let inventory = Inventory {
            gpus: 4,
            numa_domains: vec![vec![0, 1], vec![2, 3]],
            ..Inventory::default()
        };
        machines.insert(
            name.clone(),
            Machine {
                name: name.clone(),
                inventory: Some(Arc::new(inventory)),
                inventory_path: None,
            },
        );
        for (d, gpus) in deps.iter().enumerate() {
            let port = 8000 + u16::try_from(d).expect("small");
            let ids: Vec<String> = gpus.iter().map(|g| format!("'{g}'")).collect();
            let yaml = vllm(port, &ids.join(", "), 1, "/m");
            let id = DeploymentId::new(name.clone(), port);
            let (deployment, _) =
                compose::read_deployment(id.clone(), "c.yml", &yaml, None, &Limits::default());
            deployments.insert(id, Arc::new(deployment));
        }
    }
    (machines, deployments)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn gpu001_exactly_when_a_gpu_is_held_twice(fleet in fleet_strategy()) {
        let (machines, deployments) = build(&fleet);
        for (m, deps) in fleet.iter().enumerate() {
            let machine = &machines[&format!("m{m}")];
            let on: Vec<&Deployment> = deployments.values().filter(|d| d.id.machine == machine.name).map(|d| &**d).collect();
            let found = rules::check_machine(machine, &on);
            let mut count = BTreeMap::<u8, usize>::new();
            for gpus in deps {
                for g in gpus {
                    *count.entry(*g).or_default() += 1;
                }
            }
            let doubly: Vec<String> = count.iter().filter(|(_, n)| **n > 1).map(|(g, _)| g.to_string()).collect();
            let mut reported: Vec<String> = found
                .iter()
                .filter(|f| f.rule == Rule::Gpu001)
                .flat_map(|f| f.subjects.clone())
                .collect();
            reported.sort_by_key(|g| g.parse::<u32>().unwrap_or(u32::MAX));
            reported.dedup();
            prop_assert_eq!(reported, doubly);
        }
    }

    #[test]
    fn free_gpus_are_never_held(fleet in fleet_strategy()) {
        let (machines, deployments) = build(&fleet);
        let graph = AllocationGraph::build(&machines, &deployments);
        for name in machines.keys() {
            let free = graph.free_gpus(name).expect("inventory");
            for gpu in &free {
                prop_assert!(graph.holders(name, &gpu.to_string()).is_empty());
                prop_assert!(*gpu < 4);
            }
            let used = graph.gpus_used(name);
            for gpu in 0..4u32 {
                prop_assert!(free.contains(&gpu) != used.contains(&gpu.to_string()));
            }
            let by_numa: Vec<u32> = graph.free_by_numa(name).expect("inventory").concat();
            prop_assert_eq!(by_numa, free);
        }
        // The planner's pass over every machine, in the fleet's order, says
        // what asking each machine says.
        let passed: Vec<(String, Option<Vec<u32>>, u32)> = graph
            .capacities()
            .map(|(name, free, unpinned)| (name.to_owned(), free.map(<[u32]>::to_vec), unpinned))
            .collect();
        let asked: Vec<(String, Option<Vec<u32>>, u32)> = machines
            .keys()
            .map(|name| (name.clone(), graph.free_gpus(name), graph.unpinned_gpus(name)))
            .collect();
        prop_assert_eq!(passed, asked);
    }
}

// --- absurd GPU counts ------------------------------------------------------------

#[test]
fn an_absurd_gpu_count_leaves_the_machine_without_inventory() {
    let dir = TempDir::new().expect("temp dir");
    let all = "services:\n  llm:\n    image: vllm/vllm-openai\n    command: --model /m -tp 2\n    ports: ['8000:8000']\n    gpus: all\n";
    write_files(
        dir.path(),
        &[
            (
                "machines/m1/machine.yaml",
                "gpus: 4294967295\ninterconnect: pcie\nnuma_domains: [[0, 1], [2, 3]]\n",
            ),
            ("machines/m1/8000/docker-compose.yml", all),
        ],
    );
    let snapshot = Snapshot::from_dir(dir.path()).expect("snapshot");
    let fleet = Engine::new().analyze(&snapshot).expect("analyze");
    // RC002 says why; not INV001 as well, and no check that needs the count.
    assert_eq!(lines(&fleet), ["RC002 error machines/m1/machine.yaml:1:7"]);
    assert!(
        fleet.findings[0].message.contains("more than 1024"),
        "{}",
        fleet.findings[0].message
    );
    fleet.graph();
    let topology = fleet.machine_topology("m1").expect("m1");
    let alone = fleet
        .each_machine_topology()
        .find(|t| t.machine == "m1")
        .expect("m1");
    assert_eq!(alone, topology, "from the machine's own graph");
    assert_eq!(topology.gpu_count, None);
    assert_eq!(topology.free_gpus, None);
    assert!(topology.deployments[0].gpus.is_empty());
}

#[test]
fn a_hand_built_inventory_is_bounded_in_the_graph() {
    let mut machines = BTreeMap::new();
    machines.insert(
        "m1".to_owned(),
        Machine {
            name: "m1".into(),
            inventory: Some(Arc::new(Inventory {
                gpus: u32::MAX,
                ..Inventory::default()
            })),
            inventory_path: None,
        },
    );
    let graph = AllocationGraph::build(&machines, &BTreeMap::new());
    let free = graph.free_gpus("m1").expect("inventory");
    assert_eq!(free.len(), 1024);
    assert_eq!(free.last(), Some(&1023));
}

/// A fleet large enough for every parallel path of the engine (a second
/// layout thread from 256 machines, parse workers from 32 compose files), with
/// a conflict, an unknown GPU id and a port clash among the clean machines.
fn large_fleet_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for m in 0..300 {
        let machine = format!("machines/node-{m:03}");
        files.push((
            format!("{machine}/machine.yaml"),
            "gpus: 4\ngpu_memory_gb: 80\ninterconnect: nvlink\n".to_owned(),
        ));
        files.push((
            format!("{machine}/8000/docker-compose.yml"),
            vllm(8000, "'0', '1'", 2, "/models/llama"),
        ));
        let second = match m % 50 {
            0 => vllm(8001, "'1'", 1, "/models/qwen"), // GPU001 with 8000
            1 => vllm(8001, "'7'", 1, "/models/qwen"), // GPU002
            2 => vllm(8000, "'2'", 1, "/models/qwen"), // PORT001, PORT002
            _ => vllm(8001, "'2', '3'", 2, "/models/qwen"),
        };
        files.push((format!("{machine}/8001/docker-compose.yml"), second));
    }
    files
}

#[test]
fn one_thread_gives_the_same_fleet_as_several() {
    let dir = TempDir::new().expect("temp dir");
    write(dir.path(), &large_fleet_files());
    let snapshot = Snapshot::from_dir(dir.path()).expect("snapshot");
    let parallel = Engine::new().analyze(&snapshot).expect("analyze");
    let mut engine = Engine::new();
    engine.set_threads(1);
    let serial = engine.analyze(&snapshot).expect("analyze on one thread");

    assert_eq!(lines(&serial), lines(&parallel));
    let codes: std::collections::BTreeSet<String> =
        serial.findings.iter().map(|f| f.rule.to_string()).collect();
    for code in ["GPU001", "GPU002", "PORT001"] {
        assert!(codes.contains(code), "{code} missing from {codes:?}");
    }
    assert_eq!(serial.deployments.len(), 600);
    assert_eq!(serial.topology(), parallel.topology());
    // Machine by machine, each from its own graph: the same as from the fleet's.
    serial.graph();
    let one_by_one: Vec<_> = serial.each_machine_topology().collect();
    assert_eq!(one_by_one, serial.topology());
}

/// Identical files are parsed once per analysis and the parse is relabeled
/// for the other machines. The oracle: the same fleet with every file made
/// unique by a trailing comment (nothing to share), which must read the same,
/// finding by finding and deployment by deployment. Shared content with
/// parse findings (an unset variable) or a suppression is read at each path.
#[test]
fn identical_files_read_as_each_would_be_alone() {
    let mut files = large_fleet_files();
    for m in 0..40 {
        let machine = format!("machines/node-{m:03}");
        files.push((
            format!("{machine}/8002/docker-compose.yml"),
            vllm(8002, "'${GPU}'", 1, "/models/${MODEL}"),
        ));
        files.push((format!("{machine}/8002/.env"), "GPU=3\n".to_owned()));
        files.push((
            format!("{machine}/8003/docker-compose.yml"),
            vllm(8003, "'0'", 1, "/models/qwen").replace(
                "          devices:",
                "          # release-config: ignore GPU001 -- a test of suppressions\n          devices:",
            ),
        ));
    }
    let unique: Vec<(String, String)> = files
        .iter()
        .enumerate()
        .map(|(i, (path, text))| (path.clone(), format!("{text}# file {i}\n")))
        .collect();
    let analyze = |files: &[(String, String)]| {
        let dir = TempDir::new().expect("temp dir");
        write(dir.path(), files);
        let mut engine = Engine::new();
        let fleet = engine
            .analyze(&Snapshot::from_dir(dir.path()).expect("snapshot"))
            .expect("analyze");
        (fleet, engine.stats().last)
    };
    let (shared, shared_stats) = analyze(&files);
    let (alone, alone_stats) = analyze(&unique);

    assert_same_text(
        &format!("{:#?}", shared.findings),
        &format!("{:#?}", alone.findings),
        "findings",
    );
    assert_same_text(
        &format!("{:#?}", shared.machines),
        &format!("{:#?}", alone.machines),
        "machines",
    );
    // JSON: the deployments' content ids (not serialized) differ by design.
    let json = |fleet: &Fleet| {
        serde_json::to_string_pretty(&fleet.deployments.values().collect::<Vec<_>>())
            .expect("deployments as JSON")
    };
    assert_same_text(&json(&shared), &json(&alone), "deployments");
    assert_eq!(shared.topology(), alone.topology());
    let codes: std::collections::BTreeSet<String> =
        shared.findings.iter().map(|f| f.rule.to_string()).collect();
    for code in ["GPU001", "RC005"] {
        assert!(codes.contains(code), "{code} missing from {codes:?}");
    }
    assert!(
        shared.findings.iter().any(|f| f.suppressed.is_some()),
        "the suppression took effect"
    );
    // All but the first of each content were shared; none of the unique files.
    assert_eq!(
        (shared_stats.compose_parsed, shared_stats.compose_shared),
        (680, 680 - 5 - 40 - 40),
        "{shared_stats:?}"
    );
    assert_eq!(shared_stats.inventories_shared, 299, "{shared_stats:?}");
    assert_eq!(
        (alone_stats.compose_shared, alone_stats.inventories_shared),
        (0, 0)
    );
}

/// One published binding: (port, udp, address: 0 every, 1 127.0.0.1, 2 10.0.0.1).
type Binding = (u16, bool, u8);

fn bindings_strategy() -> impl Strategy<Value = Vec<Vec<Binding>>> {
    let binding = (8000u16..8003, any::<bool>(), 0u8..3);
    proptest::collection::vec(proptest::collection::vec(binding, 0..4), 2..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// PORT001's index and `capacity::PortBinding::clashes` are one rule: per
    /// host port, a service's owner is the earliest service one of its bindings
    /// of that port clashes with, and PORT001 reports each (service, owner) once.
    #[test]
    fn port001_is_the_clash_predicate(services in bindings_strategy()) {
        let mut deployments = Vec::new();
        for (index, bindings) in services.iter().enumerate() {
            let ports: Vec<String> = bindings
                .iter()
                .map(|(port, udp, address)| {
                    let address = ["", "127.0.0.1:", "10.0.0.1:"][usize::from(*address)];
                    let protocol = if *udp { "/udp" } else { "" };
                    format!("'{address}{port}:80{protocol}'")
                })
                .collect();
            let yaml = format!(
                "services:\n  s:\n    image: nginx\n    ports: [{}]\n",
                ports.join(", ")
            );
            let id = DeploymentId::new("m1", 9000 + u16::try_from(index).unwrap_or(0));
            let (deployment, _) =
                compose::read_deployment(id, "c.yml", &yaml, None, &Limits::default());
            deployments.push(deployment);
        }
        let machine = Machine {
            name: "m1".into(),
            inventory: None,
            inventory_path: None,
        };
        let refs: Vec<&Deployment> = deployments.iter().collect();
        let reported = rules::check_machine(&machine, &refs)
            .iter()
            .filter(|f| f.rule == Rule::Port001)
            .count();
        let bindings: Vec<Vec<PortBinding<'_>>> = deployments
            .iter()
            .map(|d| d.services.iter().flat_map(|s| &s.ports).map(PortBinding::published).collect())
            .collect();
        // Per port, a service's owner is the earliest service it clashes with there; one
        // finding per (service, owner).
        let expected: usize = (0..bindings.len())
            .map(|later| {
                let owners: std::collections::BTreeSet<usize> = bindings[later]
                    .iter()
                    .filter_map(|own| {
                        (0..later).find(|&earlier| {
                            bindings[earlier].iter().any(|theirs| {
                                bindings[later]
                                    .iter()
                                    .filter(|mine| mine.port == own.port)
                                    .any(|mine| mine.clashes(theirs))
                            })
                        })
                    })
                    .collect();
                owners.len()
            })
            .sum();
        prop_assert_eq!(reported, expected);
    }
}

/// A compose file for PENDING001's cases: one service publishing `ports` (YAML
/// flow items), on GPUs `ids`, sharing them on purpose when `sharing`.
fn claimant(ports: &str, ids: &str, sharing: bool) -> String {
    let labels = if sharing {
        "    labels: {catapult.gpu_sharing: 'true'}\n"
    } else {
        ""
    };
    format!(
        "services:\n  llm:\n    image: vllm/vllm-openai\n    ports: [{ports}]\n{labels}    deploy:\n      resources:\n        reservations:\n          devices: [{{capabilities: [gpu], device_ids: [{ids}]}}]\n"
    )
}

/// A PENDING001 case: its name, main's (port, compose), the proposal's, and
/// the subjects expected.
type PendingCase = (
    &'static str,
    (u16, String),
    (u16, String),
    &'static [&'static str],
);

/// PENDING001 reads claims as PORT001 and GPU001 do (`capacity`): ports clash
/// as Docker binds them, a GPU both sides share on purpose is no conflict, and
/// the head's port directory is held as the proposal's is. Each case: main's
/// `machines/m1/<port>` compose, the proposal's, and the subjects expected.
#[test]
fn pending_conflicts_read_claims_as_the_machine_rules_do() {
    let cases: &[PendingCase] = &[
        (
            "the same GPU",
            (8000, claimant("'8000:80'", "'0'", false)),
            (8001, claimant("'8001:80'", "'0'", false)),
            &["gpu:0"],
        ),
        (
            "a GPU both share on purpose",
            (8000, claimant("'8000:80'", "'0'", true)),
            (8001, claimant("'8001:80'", "'0'", true)),
            &[],
        ),
        (
            "a GPU only one side shares",
            (8000, claimant("'8000:80'", "'0'", true)),
            (8001, claimant("'8001:80'", "'0'", false)),
            &["gpu:0"],
        ),
        (
            "UDP beside TCP on one port",
            (8000, claimant("'8000:80', '9000:90/udp'", "'0'", false)),
            (8001, claimant("'8001:80', '9000:90'", "'1'", false)),
            &[],
        ),
        (
            "two specific addresses",
            (
                8000,
                claimant("'8000:80', '127.0.0.1:9000:90'", "'0'", false),
            ),
            (
                8001,
                claimant("'8001:80', '10.0.0.1:9000:90'", "'1'", false),
            ),
            &[],
        ),
        (
            "every address against one",
            (8000, claimant("'8000:80', '9000:90'", "'0'", false)),
            (
                8001,
                claimant("'8001:80', '10.0.0.1:9000:90'", "'1'", false),
            ),
            &["port:9000"],
        ),
        (
            "the head's port directory, which it does not publish",
            (8000, claimant("'9100:80'", "'0'", false)),
            (8001, claimant("'8001:80', '8000:81'", "'1'", false)),
            &["port:8000"],
        ),
    ];
    for (name, (head_port, head), (proposal_port, proposal), expected) in cases {
        let fixture = FixtureRepo::init();
        let head_path = format!("machines/m1/{head_port}/docker-compose.yml");
        fixture.commit_files(
            "main",
            &[
                ("machines/m1/machine.yaml", "gpus: 4\n"),
                (&head_path, head),
            ],
            "base",
        );
        let proposal_path = format!("machines/m1/{proposal_port}/docker-compose.yml");
        let pr = fixture.commit_files("pr", &[(&proposal_path, proposal)], "propose");
        fixture.set_ref("refs/pull/1/head", pr);
        let repo = Repository::open(fixture.path()).expect("open");
        let mut engine = Engine::new();
        let main = engine
            .analyze(&repo.snapshot("main").expect("main"))
            .expect("analyze");
        let pending = engine
            .analyze(&repo.snapshot("refs/pull/1/head").expect("pr"))
            .expect("analyze");
        let subjects: Vec<String> = pending_conflicts(&main, &pending, "refs/pull/1/head")
            .iter()
            .flat_map(|f| f.subjects.clone())
            .filter(|s| !s.starts_with("ref:"))
            .collect();
        assert_eq!(subjects, *expected, "{name}");
    }
}

/// A machine's GPU holders come in GPU order, 2 before 10, as `gpus_used` and every GPU
/// map list them (ordering them as strings put 10 first).
#[test]
fn gpu_holders_are_in_gpu_order() {
    let dir = TempDir::new().expect("temp dir");
    let compose = |port: u16, gpu: u32| {
        format!(
            "services:\n  llm:\n    image: vllm/vllm-openai\n    ports: ['{port}:8000']\n    gpus: [{{device_ids: ['{gpu}']}}]\n"
        )
    };
    let files: Vec<(String, String)> = vec![
        ("machines/big/machine.yaml".into(), "gpus: 16\n".into()),
        (
            "machines/big/8000/docker-compose.yml".into(),
            compose(8000, 10),
        ),
        (
            "machines/big/8001/docker-compose.yml".into(),
            compose(8001, 2),
        ),
    ];
    write(dir.path(), &files);
    let snapshot = Snapshot::from_dir(dir.path()).expect("snapshot");
    let fleet = Engine::new().analyze(&snapshot).expect("analyze");
    fleet.graph();
    let topology = fleet.machine_topology("big").expect("big");
    let alone = fleet
        .each_machine_topology()
        .find(|t| t.machine == "big")
        .expect("big");
    assert_eq!(alone, topology, "from the machine's own graph");
    let order: Vec<(&str, String)> = topology
        .gpu_holders
        .iter()
        .map(|held| (held.gpu.as_str(), held.holders[0].to_string()))
        .collect();
    assert_eq!(
        order,
        [
            ("2", "big:8001/llm".to_owned()),
            ("10", "big:8000/llm".to_owned())
        ]
    );
}

/// A GPU claimed by its UUID, or through one of its MIG slices, is that GPU:
/// not free, shown by index, held by the deployment.
#[test]
fn gpus_claimed_by_uuid_are_held_by_index() {
    let dir = TempDir::new().expect("temp dir");
    let claim = |port: u16, id: &str| {
        format!(
            "services:\n  llm:\n    image: vllm/vllm-openai\n    ports: ['{port}:8000']\n    gpus: [{{device_ids: ['{id}']}}]\n"
        )
    };
    let machine_yaml = "gpus: 4\ninterconnect: nvlink\ndevices:\n  - {index: 2, uuid: GPU-22222222-0000-0000-0000-000000000000}\n  - index: 3\n    mig: [{profile: 3g.40gb, uuid: MIG-33333333-0000-0000-0000-000000000000}]\n";
    let by_uuid = claim(8000, "GPU-22222222-0000-0000-0000-000000000000");
    let by_slice = claim(8001, "MIG-33333333-0000-0000-0000-000000000000");
    write(
        dir.path(),
        &[
            (
                "machines/m1/machine.yaml".to_owned(),
                machine_yaml.to_owned(),
            ),
            ("machines/m1/8000/docker-compose.yml".to_owned(), by_uuid),
            ("machines/m1/8001/docker-compose.yml".to_owned(), by_slice),
        ],
    );
    let fleet = Engine::new()
        .analyze(&Snapshot::from_dir(dir.path()).expect("snapshot"))
        .expect("analyze");
    assert_eq!(lines(&fleet), Vec::<String>::new());
    fleet.graph();
    let topology = fleet.machine_topology("m1").expect("m1");
    let alone = fleet
        .each_machine_topology()
        .find(|t| t.machine == "m1")
        .expect("m1");
    assert_eq!(alone, topology, "from the machine's own graph");
    assert_eq!(topology.free_gpus, Some(vec![0, 1]));
    assert_eq!(topology.deployments[0].gpus, ["2"]);
    let holders: Vec<String> = topology
        .holders_of("2")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(holders, ["m1:8000/llm"]);
    let holders: Vec<String> = topology
        .holders_of("3")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(holders, ["m1:8001/llm"]);
}

/// Panics at the first line where two long texts differ, showing a few lines
/// around it (the whole of a 300-machine fleet is too long to read).
fn assert_same_text(got: &str, expected: &str, what: &str) {
    let (got, expected): (Vec<&str>, Vec<&str>) =
        (got.lines().collect(), expected.lines().collect());
    if let Some(line) = (0..got.len().max(expected.len())).find(|&i| got.get(i) != expected.get(i))
    {
        let around =
            |lines: &[&str]| lines[line.saturating_sub(8)..(line + 4).min(lines.len())].join("\n");
        panic!(
            "{what}: line {line} differs\n--- got:\n{}\n--- expected:\n{}",
            around(&got),
            around(&expected)
        );
    }
}

/// Everything a fleet says, for comparing two analyses of one revision.
fn whole(fleet: &Fleet) -> String {
    format!(
        "{:#?}\n{:#?}\n{:#?}\n{:#?}",
        fleet.findings,
        fleet.machines,
        fleet.deployments,
        fleet.topology()
    )
}

/// A warm engine reuses each machine whose directory's Git tree is unchanged
/// (its layout, files and rules not looked at again). The oracle is a cold
/// engine on a repository without listing cache (so without tree ids): after
/// every kind of change, and for a proposal touching a reused machine, both
/// say exactly the same, finding by finding, in the same order.
#[test]
fn reused_machines_give_what_a_cold_analysis_gives() {
    use crate::support::Change;
    let fixture = FixtureRepo::init();
    let mut files = large_fleet_files();
    files.push(("machines/node-007/notes.txt".into(), "stray\n".into()));
    files.push((
        "machines/node-008/80x/docker-compose.yml".into(),
        "services: {}\n".into(),
    ));
    files.push(("machines/node-009/8001/.env".into(), "GPU=1\n".into()));
    files.push((
        "release-config.toml".into(),
        "[rules]\nINV001 = \"warning\"\n".into(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let first = fixture.commit_files("main", &refs, "fleet").to_string();
    let conflict = vllm(8001, "'0'", 1, "/models/qwen");
    let small = "gpus: 1\ngpu_memory_gb: 80\n";
    let steps: Vec<(&str, Vec<(&str, Change<'_>)>)> = vec![
        (
            "one compose file",
            vec![(
                "machines/node-100/8001/docker-compose.yml",
                Change::File(&conflict),
            )],
        ),
        (
            "an inventory",
            vec![("machines/node-101/machine.yaml", Change::File(small))],
        ),
        (
            "a link into another machine",
            vec![(
                "machines/node-102/8002/docker-compose.yml",
                Change::Link("../../node-103/8001/docker-compose.yml"),
            )],
        ),
        (
            "the linked file, in the other machine",
            vec![(
                "machines/node-103/8001/docker-compose.yml",
                Change::File(&conflict),
            )],
        ),
        (
            "a removed deployment and a new machine",
            vec![
                ("machines/node-104/8000/docker-compose.yml", Change::Delete),
                (
                    "machines/node-999/8000/docker-compose.yml",
                    Change::File(&conflict),
                ),
            ],
        ),
        (
            "the rules' overrides",
            vec![(
                "release-config.toml",
                Change::File("[rules]\nGPU001 = \"warning\"\n"),
            )],
        ),
    ];
    let mut revisions = vec![("the first revision".to_owned(), first.clone())];
    for (what, changes) in &steps {
        let id = fixture.commit("main", changes, what);
        revisions.push(((*what).to_owned(), id.to_string()));
    }
    revisions.push(("the first revision again".to_owned(), first));

    let warm_repo = Repository::open(fixture.path()).expect("open");
    let cold_repo = Repository::open(fixture.path()).expect("open");
    cold_repo.set_listing_cache(false);
    let mut warm = Engine::new();
    for (index, (what, rev)) in revisions.iter().enumerate() {
        let snapshot = warm_repo.snapshot(rev).expect("snapshot");
        let fleet = warm.analyze(&snapshot).expect("analyze");
        let stats = warm.stats().last;
        let cold = Engine::new()
            .analyze(&cold_repo.snapshot(rev).expect("snapshot"))
            .expect("analyze");
        assert_same_text(&whole(&fleet), &whole(&cold), &format!("after {what}"));
        if index > 0 && what != "the rules' overrides" {
            assert!(stats.machines_reused >= 295, "{what}: {stats:?}");
            assert!(stats.compose_parsed <= 2, "{what}: {stats:?}");
        }

        // A proposal on a machine the warm engine reuses.
        let extra = ExtraDeployment::new(DeploymentId::new("node-200", 8005), conflict.clone());
        let removed = [DeploymentId::new("node-201", 8000)];
        let proposed = warm
            .analyze_changes(&snapshot, std::slice::from_ref(&extra), &removed)
            .expect("analyze");
        let cold = Engine::new()
            .analyze_changes(
                &cold_repo.snapshot(rev).expect("snapshot"),
                std::slice::from_ref(&extra),
                &removed,
            )
            .expect("analyze");
        assert_same_text(
            &whole(&proposed),
            &whole(&cold),
            &format!("a proposal after {what}"),
        );
        assert!(proposed.deployments.contains_key(&extra.id));
        assert!(!proposed.deployments.contains_key(&removed[0]));
    }
}

/// A kept `DirReader` watches the tree from its second listing on and then
/// takes a stat only of what an inotify event names; a warm engine reuses
/// every machine whose listing id is unchanged. The oracle is a fresh
/// listing and a cold engine: after each kind of change (files rewritten in
/// place with their old mtime, appended, created, renamed, touched,
/// directories created, removed, renamed, replaced by a file), both say the
/// same. The tree is settled first, so unchanged files are trusted.
#[test]
fn a_watched_directory_gives_what_a_fresh_listing_gives() {
    let dir = TempDir::new().expect("temp dir");
    let root = dir.path();
    let mut files = Vec::new();
    for m in 0..10 {
        let machine = format!("machines/m{m}");
        files.push((
            format!("{machine}/machine.yaml"),
            "gpus: 4\ngpu_memory_gb: 80\n".to_owned(),
        ));
        files.push((
            format!("{machine}/8000/docker-compose.yml"),
            vllm(8000, "'0', '1'", 2, "/models/llama"),
        ));
        files.push((
            format!("{machine}/8001/docker-compose.yml"),
            vllm(8001, "'2'", 1, "/models/qwen"),
        ));
    }
    write(root, &files);
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let set_old = move |path: &std::path::Path| {
        std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(old))
            .expect("set mtime");
    };
    for (path, _) in &files {
        set_old(&root.join(path));
    }
    // Past the racy window: every file's stamp may now be trusted.
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let reader = DirReader::new(root).expect("reader");
    let mut warm = Engine::new();
    let same_size = vllm(8000, "'0', '3'", 2, "/models/llama");
    type Step<'a> = Box<dyn Fn(&std::path::Path) + 'a>;
    let steps: Vec<(&str, Step<'_>)> = vec![
        ("nothing (first listing)", Box::new(|_| {})),
        (
            "nothing (second listing, which starts watching)",
            Box::new(|_| {}),
        ),
        ("nothing", Box::new(|_| {})),
        (
            "a file rewritten in place, same size and mtime",
            Box::new(move |root| {
                let path = root.join("machines/m0/8000/docker-compose.yml");
                std::fs::write(&path, &same_size).expect("write");
                set_old(&path);
            }),
        ),
        (
            "a file appended to",
            Box::new(|root| {
                use std::io::Write;
                let mut file = std::fs::File::options()
                    .append(true)
                    .open(root.join("machines/m1/8001/docker-compose.yml"))
                    .expect("open");
                writeln!(file, "    environment: [A=1]").expect("append");
            }),
        ),
        (
            "a new .env",
            Box::new(|root| {
                std::fs::write(root.join("machines/m2/8001/.env"), "GPU=1\n").expect("write");
            }),
        ),
        (
            "a deployment directory removed",
            Box::new(|root| {
                std::fs::remove_dir_all(root.join("machines/m3/8001")).expect("remove");
            }),
        ),
        (
            "a new machine",
            Box::new(|root| {
                std::fs::create_dir_all(root.join("machines/m10/8000")).expect("mkdir");
                std::fs::write(
                    root.join("machines/m10/8000/docker-compose.yml"),
                    vllm(8000, "'0'", 1, "/models/qwen"),
                )
                .expect("write");
            }),
        ),
        (
            "a compose file renamed",
            Box::new(|root| {
                std::fs::rename(
                    root.join("machines/m4/8000/docker-compose.yml"),
                    root.join("machines/m4/8000/compose.yaml"),
                )
                .expect("rename");
            }),
        ),
        (
            "a deployment directory renamed",
            Box::new(|root| {
                std::fs::rename(root.join("machines/m5/8001"), root.join("machines/m5/8002"))
                    .expect("rename");
            }),
        ),
        (
            "an inventory changed after the rename",
            Box::new(|root| {
                std::fs::write(root.join("machines/m6/machine.yaml"), "gpus: 2\n").expect("write");
            }),
        ),
        (
            "another inventory changed",
            Box::new(|root| {
                std::fs::write(root.join("machines/m9/machine.yaml"), "gpus: 1\n").expect("write");
            }),
        ),
        (
            "a deployment directory replaced by a file",
            Box::new(|root| {
                std::fs::remove_dir_all(root.join("machines/m7/8000")).expect("remove");
                std::fs::write(root.join("machines/m7/8000"), "not a directory\n").expect("write");
            }),
        ),
        (
            "a file touched",
            Box::new(|root| {
                std::fs::File::options()
                    .write(true)
                    .open(root.join("machines/m8/8000/docker-compose.yml"))
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()))
                    .expect("touch");
            }),
        ),
        (
            "a machine removed",
            Box::new(|root| {
                std::fs::remove_dir_all(root.join("machines/m8")).expect("remove");
            }),
        ),
    ];
    let shape = |s: &Snapshot| -> Vec<String> {
        s.entries()
            .iter()
            .map(|e| format!("{} {} {:?} {:?}", e.path, e.kind.describe(), e.size, e.id))
            .collect()
    };
    for (what, change) in &steps {
        change(root);
        let snapshot = reader.snapshot().expect("snapshot");
        let fresh = Snapshot::from_dir(root).expect("fresh listing");
        assert_same_text(
            &shape(&snapshot).join("\n"),
            &shape(&fresh).join("\n"),
            &format!("after {what}"),
        );
        let fleet = warm.analyze(&snapshot).expect("analyze");
        let cold = Engine::new().analyze(&fresh).expect("analyze");
        assert_same_text(&whole(&fleet), &whole(&cold), &format!("after {what}"));
    }
    // The last listings reused the machines nothing changed.
    assert!(
        warm.stats().last.machines_reused >= 7,
        "{:?}",
        warm.stats().last
    );
}
