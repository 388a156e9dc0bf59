//! The planner (`topology::placement`): small fleets with known best answers,
//! and a property test that no placement uses a held or claimed GPU, that each
//! machine's set is its best free one, and that the ranking never puts a
//! worse-linked set above a better one.

use std::collections::BTreeMap;

use proptest::prelude::*;
use tempfile::TempDir;
use topology::engine::{Engine, Fleet};
use topology::inventory::Link;
use topology::placement::{PlacementQuery, find_placement};
use topology::repo::Snapshot;

use crate::support::write_files;

/// A deployment of one vLLM service on `gpus` (e.g. `'0', '1'`), TP their count.
fn deployment(port: u16, gpus: &[u32]) -> String {
    let ids: Vec<String> = gpus.iter().map(|g| format!("'{g}'")).collect();
    format!(
        "services:\n  llm:\n    image: vllm/vllm-openai\n    command: vllm serve m -tp {}\n    ports: ['{port}:8000']\n    gpus: [{{device_ids: [{}]}}]\n",
        gpus.len(),
        ids.join(", ")
    )
}

/// A machine: name, machine.yaml, deployments as (port, GPUs).
type MachineSpec<'a> = (&'a str, &'a str, &'a [(u16, &'a [u32])]);

/// A fleet of `machines`.
fn fleet(machines: &[MachineSpec<'_>]) -> Fleet {
    let dir = TempDir::new().unwrap();
    let mut files: Vec<(String, String)> = Vec::new();
    for (name, inventory, deployments) in machines {
        files.push((
            format!("machines/{name}/machine.yaml"),
            (*inventory).to_owned(),
        ));
        for (port, gpus) in *deployments {
            files.push((
                format!("machines/{name}/{port}/docker-compose.yml"),
                deployment(*port, gpus),
            ));
        }
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    write_files(dir.path(), &refs);
    Engine::new()
        .analyze(&Snapshot::from_dir(dir.path()).unwrap())
        .unwrap()
}

const PAIRS: &str = "gpus: 4\ngpu_model: NVIDIA H100 PCIe\ngpu_memory_gb: 85.5\ninterconnect: pcie\nlinks:\n  - [X, NV12, SYS, SYS]\n  - [NV12, X, SYS, SYS]\n  - [SYS, SYS, X, NV12]\n  - [SYS, SYS, NV12, X]\n";
const SOCKETS: &str = "gpus: 8\ngpu_model: NVIDIA L40S\ngpu_memory_gb: 48.3\ninterconnect: pcie\nnuma_domains: [[0, 1, 2, 3], [4, 5, 6, 7]]\nlabels: {pool: batch}\n";
const NVSWITCH: &str = "gpus: 8\ngpu_model: NVIDIA H100 80GB HBM3\ngpu_memory_gb: 85.5\ninterconnect: nvlink\nlabels: {pool: prod}\n";

fn query(tp: Option<u32>) -> PlacementQuery {
    PlacementQuery {
        tp,
        limit: 10,
        ..PlacementQuery::default()
    }
}

/// `machine [gpus] link` per placement, best first.
fn ranked(fleet: &Fleet, query: &PlacementQuery) -> Vec<String> {
    find_placement(fleet, query)
        .placements
        .iter()
        .map(|p| {
            let gpus: Vec<String> = p.gpus.iter().map(u32::to_string).collect();
            format!(
                "{} [{}] {}",
                p.machine,
                gpus.join(","),
                p.worst_link
                    .map_or_else(|| "-".to_owned(), |l| l.to_string())
            )
        })
        .collect()
}

#[test]
fn known_best_answers() {
    // GPU 0 of the pairs machine is taken: the free NVLink pair is 2-3, not 1-2.
    let pairs = fleet(&[("pairs", PAIRS, &[(8000, &[0])])]);
    assert_eq!(ranked(&pairs, &query(Some(2))), ["pairs [2,3] NV12"]);

    // Two sockets, GPUs 0, 1 and 4 taken: 2-3 and 5-6 are both within a
    // socket (NODE); of equal sets the lowest ids.
    let sockets = fleet(&[("sockets", SOCKETS, &[(8000, &[0, 1]), (8001, &[4])])]);
    assert_eq!(ranked(&sockets, &query(Some(2))), ["sockets [2,3] NODE"]);
    // TP 4: no socket has four free (socket 1 has 5, 6, 7): the group crosses.
    assert_eq!(ranked(&sockets, &query(Some(4))), ["sockets [2,3,5,6] SYS"]);

    // NVLink everywhere with two NUMA domains, GPUs 0-2 taken: 3-4 is linked as well as 4-5,
    // but crosses the domains; the set stays inside one.
    let numa = "gpus: 8\ngpu_memory_gb: 80\ninterconnect: nvlink\nnuma_domains: [[0, 1, 2, 3], [4, 5, 6, 7]]\n";
    let nvlink_numa = fleet(&[("numa", numa, &[(8000, &[0, 1, 2])])]);
    assert_eq!(ranked(&nvlink_numa, &query(Some(2))), ["numa [4,5] NV"]);

    // A machine shared by ten deployments (two GPUs each, 16-GPU machine): the reason names
    // eight, `neighbours` all ten.
    let big = "gpus: 24\ngpu_memory_gb: 80\ninterconnect: nvlink\n";
    let pairs: Vec<[u32; 2]> = (0..10).map(|i| [2 * i, 2 * i + 1]).collect();
    let busy: Vec<(u16, &[u32])> = pairs
        .iter()
        .zip(8000u16..)
        .map(|(gpus, port)| (port, &gpus[..]))
        .collect();
    let shared = find_placement(&fleet(&[("busy", big, &busy)]), &query(Some(2)));
    let placement = &shared.placements[0];
    assert_eq!(placement.neighbours.len(), 10);
    assert_eq!(placement.port, 8010);
    assert!(
        placement
            .reasons
            .iter()
            .any(|r| r.ends_with("busy:8007 and 2 more")),
        "{:?}",
        placement.reasons
    );

    // Across machines: NVLink first, then the NVLink pair, then PCIe in a socket.
    let mixed = fleet(&[
        ("a-sockets", SOCKETS, &[]),
        ("b-pairs", PAIRS, &[]),
        ("c-nvswitch", NVSWITCH, &[(8000, &[0, 1, 2, 3, 4, 5])]),
    ]);
    assert_eq!(
        ranked(&mixed, &query(Some(2))),
        [
            "b-pairs [0,1] NV12",
            "c-nvswitch [6,7] NV",
            "a-sockets [0,1] NODE"
        ],
        "a count nvidia-smi gives (NV12) ranks above the shorthand's unknown one"
    );
    let plan = find_placement(&mixed, &query(Some(2)));
    assert_eq!(plan.placements[0].port, 8000);
    assert_eq!(plan.placements[1].port, 8001, "8000 is taken on c-nvswitch");
    assert_eq!(
        plan.placements[1].ranked_below_because.as_deref(),
        Some("its worst link is NV where b-pairs's is NV12")
    );
    assert_eq!(
        plan.placements[2].ranked_below_because.as_deref(),
        Some("its worst link is NODE where c-nvswitch's is NV")
    );
    assert_eq!(plan.placements[1].neighbours, ["c-nvswitch:8000"]);

    // Filters: GPU model, labels, memory.
    let h100 = PlacementQuery {
        gpu_model: Some("h100".into()),
        ..query(Some(2))
    };
    assert_eq!(
        ranked(&mixed, &h100),
        ["b-pairs [0,1] NV12", "c-nvswitch [6,7] NV"]
    );
    let batch = PlacementQuery {
        labels: BTreeMap::from([("pool".to_owned(), "batch".to_owned())]),
        ..query(Some(2))
    };
    assert_eq!(ranked(&mixed, &batch), ["a-sockets [0,1] NODE"]);
    let big = PlacementQuery {
        min_memory_gb: Some(80.0),
        ..query(Some(2))
    };
    let plan = find_placement(&mixed, &big);
    assert_eq!(plan.placements.len(), 2);
    assert_eq!(plan.excluded.get("less GPU memory"), Some(&1));
}

#[test]
fn any_valid_tp_is_the_smallest_that_fits() {
    let mixed = fleet(&[("a-sockets", SOCKETS, &[]), ("b-nvswitch", NVSWITCH, &[])]);
    // 70B in bf16: 140 GB of weights. 85.5 GB x 0.9 takes it on 2 GPUs; 48.3 GB
    // on 4 (35 GB each); 3 would do on memory but 64 heads do not split in 3.
    let llama70 = PlacementQuery {
        params_b: Some(70.0),
        dtype: Some("bf16".into()),
        num_attention_heads: Some(64),
        num_kv_heads: Some(8),
        ..query(None)
    };
    let plan = find_placement(&mixed, &llama70);
    let shapes: Vec<(String, u32)> = plan
        .placements
        .iter()
        .map(|p| (p.machine.clone(), p.tp))
        .collect();
    assert_eq!(
        shapes,
        [("b-nvswitch".to_owned(), 2), ("a-sockets".to_owned(), 4)]
    );
    let first = &plan.placements[0];
    assert_eq!(first.weights_gb_per_gpu, Some(70.0));
    assert!((first.headroom_gb_per_gpu.unwrap() - 6.95).abs() < 1e-9);
    assert_eq!(
        plan.placements[1].ranked_below_because.as_deref(),
        Some("it needs TP 4 where b-nvswitch takes it on 2 GPU(s)")
    );
    // TP 2 asked for: the L40S machine cannot hold 70 GB per GPU.
    let plan = find_placement(
        &mixed,
        &PlacementQuery {
            tp: Some(2),
            ..llama70.clone()
        },
    );
    assert_eq!(plan.placements.len(), 1);
    assert_eq!(
        plan.excluded.get("no valid TP fits the free GPUs"),
        Some(&1)
    );
}

#[test]
fn held_claimed_full_and_mig_gpus_are_never_offered() {
    let mig = "gpus: 2\ngpu_memory_gb: 42.9\ninterconnect: nvlink\ndevices:\n  - index: 0\n    mig: [{profile: 3g.20gb, uuid: MIG-11111111-0000-0000-0000-000000000000}]\n";
    let fleet = fleet(&[
        ("full", NVSWITCH, &[(8000, &[0, 1, 2, 3, 4, 5, 6, 7])]),
        ("mig", mig, &[]),
        ("pairs", PAIRS, &[]),
    ]);
    let mut claimed = query(Some(1));
    claimed
        .held_elsewhere
        .insert("pairs".to_owned(), holders(&[0, 1, 2], "pull request #7"));
    let plan = find_placement(&fleet, &claimed);
    let offered: Vec<(String, Vec<u32>)> = plan
        .placements
        .iter()
        .map(|p| (p.machine.clone(), p.gpus.clone()))
        .collect();
    assert_eq!(
        offered,
        [("mig".to_owned(), vec![1]), ("pairs".to_owned(), vec![3])],
        "GPU 0 of mig is split in slices; 0-2 of pairs are claimed by open proposals"
    );
    assert_eq!(plan.excluded.get("no free GPU"), Some(&1));
    assert!(
        plan.placements[1]
            .reasons
            .contains(&"GPUs 0, 1, 2 are claimed by pull request #7".to_owned())
    );
}

/// A machine.yaml of 8 GPUs with a random link matrix built from pair links
/// (symmetric): each pair NV12, PIX, NODE or SYS.
fn matrix_inventory(cells: &[u8]) -> String {
    let names = ["SYS", "NODE", "PIX", "NV12"];
    // The pairs (a < b) in order, each with its cell.
    let pairs: Vec<(usize, usize)> = (0..8)
        .flat_map(|a| (a + 1..8).map(move |b| (a, b)))
        .collect();
    let link_of = |a: usize, b: usize| -> &str {
        let (a, b) = (a.min(b), a.max(b));
        let k = pairs.iter().position(|p| *p == (a, b)).unwrap();
        names[usize::from(cells[k] % 4)]
    };
    let rows: Vec<Vec<&str>> = (0..8)
        .map(|a| {
            (0..8)
                .map(|b| if a == b { "X" } else { link_of(a, b) })
                .collect()
        })
        .collect();
    let mut text = String::from("gpus: 8\ngpu_memory_gb: 80\nlinks:\n");
    for row in rows {
        text.push_str(&format!("  - [{}]\n", row.join(", ")));
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn placements_are_free_best_and_ranked(
        machines in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 28), prop::collection::btree_set(0u32..8, 0..5), prop::collection::btree_set(0u32..8, 0..3)),
            1..5,
        ),
        tp in prop::sample::select(vec![2u32, 3, 4]),
    ) {
        let names: Vec<String> = (0..machines.len()).map(|i| format!("m{i}")).collect();
        let inventories: Vec<String> = machines.iter().map(|(cells, _, _)| matrix_inventory(cells)).collect();
        let held: Vec<Vec<u32>> = machines.iter().map(|(_, held, _)| held.iter().copied().collect()).collect();
        // Each machine's main deployment holds its `held` GPUs (if any).
        let deployments: Vec<Vec<(u16, &[u32])>> = held
            .iter()
            .map(|h| if h.is_empty() { Vec::new() } else { vec![(8000, h.as_slice())] })
            .collect();
        let spec_refs: Vec<MachineSpec<'_>> = names
            .iter()
            .zip(&inventories)
            .zip(&deployments)
            .map(|((n, i), d)| (n.as_str(), i.as_str(), d.as_slice()))
            .collect();
        let fleet = fleet(&spec_refs);
        let mut q = query(Some(tp));
        for (name, (_, _, pending)) in names.iter().zip(&machines) {
            q.held_elsewhere
                .insert(name.clone(), holders(&pending.iter().copied().collect::<Vec<_>>(), "a proposal"));
        }
        let plan = find_placement(&fleet, &q);
        let mut previous: Option<Link> = None;
        for placement in &plan.placements {
            let index = names.iter().position(|n| *n == placement.machine).unwrap();
            let (_, main_held, pending) = &machines[index];
            for gpu in &placement.gpus {
                prop_assert!(!main_held.contains(gpu), "{placement:?} uses a GPU main holds");
                prop_assert!(!pending.contains(gpu), "{placement:?} uses a claimed GPU");
            }
            // Its set is the machine's best free one: no free set of that size links better.
            let inventory = fleet.machines[&placement.machine].inventory.clone().unwrap();
            let links = inventory.link_matrix().unwrap();
            let free: Vec<usize> = (0..8usize)
                .filter(|g| !main_held.contains(&(*g as u32)) && !pending.contains(&(*g as u32)))
                .collect();
            let best = subsets(&free, tp as usize)
                .into_iter()
                .filter_map(|set| links.worst_in(&set))
                .max();
            prop_assert_eq!(placement.worst_link, best);
            // Ranked: never a better-linked set below a worse one.
            if let Some(previous) = previous {
                prop_assert!(placement.worst_link <= Some(previous));
            }
            previous = placement.worst_link;
        }
    }
}

fn subsets(items: &[usize], size: usize) -> Vec<Vec<usize>> {
    if size == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for (i, &first) in items.iter().enumerate() {
        for mut rest in subsets(&items[i + 1..], size - 1) {
            rest.insert(0, first);
            out.push(rest);
        }
    }
    out
}

/// `gpus`, each held by `holder`.
fn holders(gpus: &[u32], holder: &str) -> BTreeMap<u32, String> {
    gpus.iter().map(|g| (*g, holder.to_owned())).collect()
}

/// What a model's name says of its size and dtype, and what it does not.
#[test]
fn model_names_state_size_and_dtype() {
    use topology::placement::{dtype_from_name, params_from_name};
    let cases: &[(&str, Option<f64>, Option<&str>)] = &[
        ("meta-llama/Llama-3.1-70B-Instruct", Some(70.0), None),
        ("llama-3-70b-instruct-fp8", Some(70.0), Some("fp8")),
        ("Qwen2.5-0.5B", Some(0.5), None),
        ("mistralai/Mixtral-8x7B-v0.1", Some(56.0), None),
        ("TheBloke/Llama-2-13B-AWQ", Some(13.0), Some("AWQ")),
        ("gpt-oss-120b", Some(120.0), None),
        ("whisper-large-v3", None, None),
        ("bge-m3", None, None),
        ("model-b", None, None),
        ("x-.5b", None, None),
        ("qwen-1e3b", None, None),
    ];
    for (name, params, dtype) in cases {
        assert_eq!(params_from_name(name), *params, "{name}");
        assert_eq!(dtype_from_name(name), *dtype, "{name}");
    }
}

/// A model named by the caller is read from its production deployments' labels first, then
/// from its name; the query keeps what the caller gave.
#[test]
fn model_facts_come_from_production_labels_then_the_name() {
    use topology::placement::ModelFacts;
    let labelled = "services:\n  vllm:\n    image: vllm/vllm-openai:v0.8.5\n    command: [\"--model\", \"/models/llama-3-70b\", \"--served-model-name\", \"llama-3-70b\", \"--tensor-parallel-size\", \"4\"]\n    labels:\n      catapult.params_b: \"70.6\"\n      catapult.num_attention_heads: \"64\"\n      catapult.num_kv_heads: \"8\"\n    deploy:\n      resources:\n        reservations:\n          devices:\n            - driver: nvidia\n              device_ids: [\"0\", \"1\", \"2\", \"3\"]\n              capabilities: [gpu]\n";
    let dir = TempDir::new().unwrap();
    write_files(
        dir.path(),
        &[
            ("machines/a/machine.yaml", NVSWITCH),
            ("machines/a/8000/docker-compose.yml", labelled),
        ],
    );
    let snapshot = Snapshot::from_dir(dir.path()).unwrap();
    let fleet = Engine::new().analyze(&snapshot).unwrap();
    for asked in ["llama-3-70b", "/models/llama-3-70b", "LLAMA-3-70B"] {
        let facts = ModelFacts::of(asked, fleet.deployments.values().map(|d| &**d));
        assert_eq!(facts.params_b, Some(70.6), "{asked}: labels beat the name");
        assert_eq!(
            (facts.num_attention_heads, facts.num_kv_heads),
            (Some(64), Some(8))
        );
        assert_eq!(facts.deployments, ["a:8000"]);
        assert_eq!(facts.tensor_parallel_in_use, [4]);
    }
    let unknown = ModelFacts::of(
        "qwen2.5-72b-instruct-awq",
        fleet.deployments.values().map(|d| &**d),
    );
    assert_eq!(unknown.params_b, Some(72.0));
    assert_eq!(unknown.dtype.as_deref(), Some("awq"));
    assert!(unknown.deployments.is_empty());
    assert!(
        unknown.basis.iter().any(|b| b.contains("an estimate")),
        "{:?}",
        unknown.basis
    );
    let mut query = PlacementQuery {
        params_b: Some(7.0),
        ..PlacementQuery::default()
    };
    unknown.fill(&mut query);
    assert_eq!(query.params_b, Some(7.0), "the caller's figure stays");
    assert_eq!(query.dtype.as_deref(), Some("awq"));
}
