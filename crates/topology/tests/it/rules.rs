//! Every rule of contract section 4, data-driven: a machine (optional
//! `machine.yaml`) with deployments `(port, compose yaml)`, and the exact
//! findings expected as `RULE severity deployments location`. Each rule has a
//! case that triggers exactly it and near-misses that must not.

use topology::compose::{self, DeploymentId};
use topology::inventory::{self, Machine};
use topology::rules;
use topology::yaml::Limits;

const NVLINK8: &str = "gpus: 8\ngpu_model: H100\ngpu_memory_gb: 80\ninterconnect: nvlink\n";

/// A deployment with one vLLM service on `ids` (e.g. `'0', '1'`), publishing
/// its port; `extra` lines follow (line 6 on). `device_ids` entries start at
/// column 26 of line 5, each `'N', ` 5 columns wide.
fn dep(port: u16, ids: &str, extra: &str) -> String {
    format!(
        "services:\n  llm:\n    image: vllm/vllm-openai\n    ports: ['{port}:8000']\n    gpus: [{{device_ids: [{ids}]}}]\n{extra}"
    )
}

fn findings(inventory: Option<&str>, deployments: &[(u16, &str)]) -> Vec<topology::Finding> {
    let limits = Limits::default();
    let has_inventory = inventory.is_some();
    let mut all = Vec::new();
    let (inventory, inventory_findings) = match inventory {
        Some(src) => inventory::read_inventory("m1", "machine.yaml", src, &limits),
        None => (None, Vec::new()),
    };
    all.extend(inventory_findings);
    let machine = Machine {
        name: "m1".into(),
        inventory: inventory.map(std::sync::Arc::new),
        inventory_path: has_inventory.then(|| "machine.yaml".to_owned()),
    };
    let mut parsed = Vec::new();
    for (port, yaml) in deployments {
        let (deployment, read) = compose::read_deployment(
            DeploymentId::new("m1", *port),
            &format!("{port}.yml"),
            yaml,
            None,
            &limits,
        );
        all.extend(read);
        parsed.push(deployment);
    }
    let refs: Vec<&compose::Deployment> = parsed.iter().collect();
    all.extend(rules::check_machine(&machine, &refs));
    all
}

fn check(inventory: Option<&str>, deployments: &[(u16, &str)], expected: &[&str]) {
    let got = findings(inventory, deployments);
    let lines: Vec<String> = got
        .iter()
        .map(|f| {
            let deployments = if f.deployments.is_empty() {
                "-".to_owned()
            } else {
                f.deployments.join(",")
            };
            format!("{} {} {} {}", f.rule, f.severity, deployments, f.location)
        })
        .collect();
    assert_eq!(
        lines, expected,
        "\ndeployments: {deployments:#?}\nfindings: {got:#?}"
    );
}

// --- GPU001 ----------------------------------------------------------------------

#[test]
fn gpu001_two_deployments_one_gpu() {
    check(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'0'", "")), (8001, &dep(8001, "'0'", ""))],
        &["GPU001 error m1:8000,m1:8001 8001.yml:5:26"],
    );
}

#[test]
fn gpu001_names_every_shared_gpu_once_per_pair() {
    let tp2 = "    command: vllm serve m -tp 2\n";
    let got = findings(
        Some(NVLINK8),
        &[
            (8000, &dep(8000, "'0', '1'", tp2)),
            (8001, &dep(8001, "'1', '0'", tp2)),
        ],
    );
    assert_eq!(got.len(), 1, "{got:#?}");
    let finding = &got[0];
    assert_eq!(finding.subjects, ["0", "1"]);
    assert_eq!(finding.location.to_string(), "8001.yml:5:31");
    assert_eq!(finding.related.len(), 2);
    assert_eq!(finding.related[0].location.to_string(), "8000.yml:5:26");
    assert!(
        finding
            .message
            .contains("GPUs 0, 1 on m1 are held by both m1:8001/llm and m1:8000/llm"),
        "{}",
        finding.message
    );
}

#[test]
fn gpu001_inside_one_deployment() {
    let yaml = "services:
  a:
    ports: ['8000:8000']
    gpus: [{device_ids: ['3']}]
  b:
    runtime: nvidia
    environment: [NVIDIA_VISIBLE_DEVICES=03]
";
    check(
        Some(NVLINK8),
        &[(8000, yaml)],
        &["GPU001 error m1:8000 8000.yml:7:19"],
    );
}

#[test]
fn gpu001_near_misses() {
    // Disjoint GPUs.
    check(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'0'", "")), (8001, &dep(8001, "'1'", ""))],
        &[],
    );
    // Sharing on purpose, within memory.
    let share = "    labels: {catapult.gpu_sharing: 'true'}\n    command: vllm serve m --gpu-memory-utilization 0.45\n";
    check(
        Some(NVLINK8),
        &[
            (8000, &dep(8000, "'0'", share)),
            (8001, &dep(8001, "'0'", share)),
        ],
        &[],
    );
    // UUID vs decimal ids never collide.
    check(
        Some(NVLINK8),
        &[
            (8000, &dep(8000, "'GPU-0'", "")),
            (8001, &dep(8001, "'0'", "")),
        ],
        &[],
    );
}

#[test]
fn gpu001_when_only_one_side_shares() {
    let share = "    labels: {catapult.gpu_sharing: 'true'}\n";
    check(
        Some(NVLINK8),
        &[
            (8000, &dep(8000, "'0'", share)),
            (8001, &dep(8001, "'0'", "")),
        ],
        &["GPU001 error m1:8000,m1:8001 8001.yml:5:26"],
    );
}

// --- GPU002 ------------------------------------------------------------------------

#[test]
fn gpu002_id_beyond_inventory() {
    check(
        Some("gpus: 4\n"),
        &[(8000, &dep(8000, "'4'", ""))],
        &["GPU002 error m1:8000 8000.yml:5:26"],
    );
    // Near-misses: in range; no inventory (INV001 instead); a UUID.
    check(Some("gpus: 4\n"), &[(8000, &dep(8000, "'3'", ""))], &[]);
    check(
        None,
        &[(8000, &dep(8000, "'9'", ""))],
        &["INV001 info - machines/m1"],
    );
    check(Some("gpus: 4\n"), &[(8000, &dep(8000, "'GPU-9'", ""))], &[]);
}

// --- GPU identity: UUIDs and MIG slices (docs/release-config.md, "GPU topology") ---

/// Two GPUs by UUID; GPU 1 split in two MIG slices.
const WITH_UUIDS: &str = "gpus: 2
interconnect: nvlink
devices:
  - {index: 0, uuid: GPU-aaaaaaaa-0000-0000-0000-000000000000}
  - index: 1
    uuid: GPU-bbbbbbbb-0000-0000-0000-000000000000
    mig:
      - {profile: 3g.20gb, uuid: MIG-cccccccc-0000-0000-0000-000000000000}
      - {profile: 3g.20gb, uuid: MIG-dddddddd-0000-0000-0000-000000000000}
";

#[test]
fn gpu_identity_uuids_and_mig_slices() {
    let gpu0 = "'GPU-aaaaaaaa-0000-0000-0000-000000000000'";
    let slice_c = "'MIG-cccccccc-0000-0000-0000-000000000000'";
    let slice_d = "'MIG-dddddddd-0000-0000-0000-000000000000'";
    /// (case, deployments as (port, device ids, extra lines), expected findings).
    type Case<'a> = (&'a str, &'a [(u16, &'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case<'_>] = &[
        (
            "a claim by UUID and one by index of the same GPU",
            &[(8000, "'0'", ""), (8001, gpu0, "")],
            &["GPU001 error m1:8000,m1:8001 8001.yml:5:26"],
        ),
        (
            "a MIG slice and its whole GPU",
            &[(8000, "'1'", ""), (8001, slice_c, "")],
            &["GPU001 error m1:8000,m1:8001 8001.yml:5:26"],
        ),
        (
            "the whole GPU claimed after its slice",
            &[
                (8000, slice_d, ""),
                (8001, "'GPU-bbbbbbbb-0000-0000-0000-000000000000'", ""),
            ],
            &["GPU001 error m1:8000,m1:8001 8001.yml:5:26"],
        ),
        (
            "two slices of one GPU are two devices",
            &[(8000, slice_c, ""), (8001, slice_d, "")],
            &[],
        ),
        (
            "one slice twice",
            &[(8000, slice_c, ""), (8001, slice_c, "")],
            &["GPU001 error m1:8000,m1:8001 8001.yml:5:26"],
        ),
        (
            "a UUID the machine does not list",
            &[(8000, "'GPU-eeeeeeee-0000-0000-0000-000000000000'", "")],
            &["GPU002 error m1:8000 8000.yml:5:26"],
        ),
        (
            "tensor parallelism over slices",
            &[(
                8000,
                &format!("{slice_c}, {slice_d}"),
                "    command: --tensor-parallel-size 2\n",
            )],
            &["TP005 error m1:8000 8000.yml:5:26"],
        ),
        (
            "one server per slice",
            &[(8000, slice_c, ""), (8001, slice_d, "")],
            &[],
        ),
    ];
    for (name, deployments, expected) in cases {
        let files: Vec<(u16, String)> = deployments
            .iter()
            .map(|(port, ids, extra)| (*port, dep(*port, ids, extra)))
            .collect();
        let refs: Vec<(u16, &str)> = files.iter().map(|(p, y)| (*p, y.as_str())).collect();
        let got: Vec<String> = findings(Some(WITH_UUIDS), &refs)
            .iter()
            .map(|f| {
                format!(
                    "{} {} {} {}",
                    f.rule,
                    f.severity,
                    f.deployments.join(","),
                    f.location
                )
            })
            .collect();
        assert_eq!(&got, expected, "{name}");
    }
    // Without UUIDs in machine.yaml a UUID cannot be known wrong (as before).
    check(
        Some("gpus: 2\n"),
        &[(
            8000,
            &dep(8000, "'GPU-eeeeeeee-0000-0000-0000-000000000000'", ""),
        )],
        &[],
    );
}

// --- GPU003 ------------------------------------------------------------------------

#[test]
fn gpu003_unpinned_next_to_another_holder() {
    let counted = "services:\n  llm:\n    ports: ['8001:8000']\n    gpus: [{count: 1}]\n";
    check(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'0'", "")), (8001, counted)],
        &["GPU003 error m1:8000,m1:8001 8001.yml:4:20"],
    );
    let all = "services:\n  llm:\n    ports: ['8001:8000']\n    gpus: all\n    command: vllm serve m -tp 8\n";
    check(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'0'", "")), (8001, all)],
        &["GPU003 error m1:8000,m1:8001 8001.yml:4:11"],
    );
    // Near-misses: alone on the machine; next to a service without GPUs.
    check(Some(NVLINK8), &[(8001, counted)], &[]);
    let no_gpu = "services:\n  proxy:\n    ports: ['8000:80']\n";
    check(Some(NVLINK8), &[(8000, no_gpu), (8001, counted)], &[]);
}

// --- GPU004 / GPU005 / GPU006 (found while reading) ------------------------------------

#[test]
fn gpu004_gpu005_gpu006() {
    let cvd = "    environment: [CUDA_VISIBLE_DEVICES=1]\n";
    check(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'5'", cvd))],
        &["GPU004 error m1:8000 8000.yml:6:19"],
    );
    check(
        Some(NVLINK8),
        &[(
            8000,
            &dep(8000, "'5'", "    environment: [CUDA_VISIBLE_DEVICES=0]\n"),
        )],
        &[],
    );
    check(
        Some(NVLINK8),
        &[(
            8000,
            &dep(8000, "'0,1'", "    command: vllm serve m -tp 2\n"),
        )],
        &["GPU005 error m1:8000 8000.yml:5:26"],
    );
    let host_ids = "services:\n  llm:\n    ports: ['8000:8000']\n    runtime: nvidia\n    environment: [CUDA_VISIBLE_DEVICES=2]\n";
    check(
        Some(NVLINK8),
        &[(8000, host_ids)],
        &["GPU006 warning m1:8000 8000.yml:5:19"],
    );
    let ordered = "services:\n  llm:\n    ports: ['8000:8000']\n    runtime: nvidia\n    environment: [CUDA_VISIBLE_DEVICES=2, CUDA_DEVICE_ORDER=PCI_BUS_ID]\n";
    check(Some(NVLINK8), &[(8000, ordered)], &[]);
}

// --- TP001 - TP004 -----------------------------------------------------------------------

#[test]
fn tp001_parallelism_differs_from_gpus_held() {
    check(
        Some(NVLINK8),
        &[(
            8000,
            &dep(
                8000,
                "'0'",
                "    command: vllm serve m --tensor-parallel-size 2\n",
            ),
        )],
        &["TP001 error m1:8000 8000.yml:6:50"],
    );
    // More GPUs than used is a mismatch too.
    check(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'0', '1'", ""))],
        &["TP001 error m1:8000 8000.yml:5:25"],
    );
    // Needs GPUs but holds none.
    check(
        Some(NVLINK8),
        &[(
            8000,
            "services:\n  llm:\n    ports: ['8000:8000']\n    command: vllm serve m -tp 2\n",
        )],
        &["TP001 error m1:8000 8000.yml:4:31"],
    );
    // Near-misses: matches; `all` on an 8-GPU machine with TP 8; `all` without inventory.
    check(
        Some(NVLINK8),
        &[(
            8000,
            &dep(8000, "'0', '1'", "    command: vllm serve m -tp 2\n"),
        )],
        &[],
    );
    let all = "services:\n  llm:\n    ports: ['8000:8000']\n    gpus: all\n    command: vllm serve m -tp 4 -pp 2\n";
    check(Some(NVLINK8), &[(8000, all)], &[]);
    check(None, &[(8000, all)], &["INV001 info - machines/m1"]);
    // A sidecar without GPUs and without parallelism.
    check(
        Some(NVLINK8),
        &[(8000, "services:\n  proxy:\n    ports: ['8000:80']\n")],
        &[],
    );
}

#[test]
fn tp002_more_gpus_than_the_machine() {
    let yaml = "services:\n  llm:\n    ports: ['8000:8000']\n    gpus: [{count: 8}]\n    command: vllm serve m -tp 8\n";
    check(
        Some("gpus: 4\n"),
        &[(8000, yaml)],
        &["TP002 error m1:8000 8000.yml:5:31"],
    );
    check(Some("gpus: 8\n"), &[(8000, yaml)], &[]);
}

#[test]
fn tp003_heads_not_divisible() {
    let extra = |heads: u32| {
        format!(
            "    command: vllm serve m -tp 4\n    labels: {{catapult.num_attention_heads: '{heads}'}}\n"
        )
    };
    check(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'0', '1', '2', '3'", &extra(30)))],
        &["TP003 error m1:8000 8000.yml:7:44"],
    );
    check(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'0', '1', '2', '3'", &extra(32)))],
        &[],
    );
    let message = |labels: &str| {
        let yaml = dep(
            8000,
            "'0', '1', '2', '3'",
            &format!("    command: vllm serve m -tp 4\n    labels: {{{labels}}}\n"),
        );
        let got = findings(Some(NVLINK8), &[(8000, &yaml)]);
        got.iter()
            .filter(|f| f.rule.code() == "TP003")
            .map(|f| f.message.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        message("catapult.num_attention_heads: '30'"),
        [
            "m1:8000/llm: 30 attention heads cannot be split evenly over tensor parallel size 4 (sizes that work on m1's 8 GPUs: 1, 2, 3, 5, 6)"
        ]
    );
    // Grouped-query attention: 8 KV heads split over 4 (2 each), or replicated to 16.
    assert_eq!(
        message("catapult.num_attention_heads: '64', catapult.num_kv_heads: '8'"),
        Vec::<String>::new()
    );
    // 3 KV heads: TP 4 neither splits nor replicates them.
    assert_eq!(
        message("catapult.num_attention_heads: '24', catapult.num_kv_heads: '3'"),
        [
            "m1:8000/llm: 3 KV heads can neither be split evenly over nor replicated to tensor parallel size 4 (sizes that work on m1's 8 GPUs: 1, 3, 6)"
        ]
    );
    // A KV label that is not a positive integer is RC002 and left out.
    let got = findings(
        Some(NVLINK8),
        &[(
            8000,
            &dep(
                8000,
                "'0', '1', '2', '3'",
                "    command: vllm serve m -tp 4\n    labels: {catapult.num_kv_heads: 'eight'}\n",
            ),
        )],
    );
    let codes: Vec<&str> = got.iter().map(|f| f.rule.code()).collect();
    assert_eq!(codes, ["RC002"]);
}

#[test]
fn tp004_group_across_numa_domains_on_pcie() {
    let pcie = "gpus: 4\ninterconnect: pcie\nnuma_domains: [[0, 1], [2, 3]]\n";
    let tp2 = "    command: vllm serve m -tp 2\n";
    check(
        Some(pcie),
        &[(8000, &dep(8000, "'1', '2'", tp2))],
        &["TP004 warning m1:8000 8000.yml:6:31"],
    );
    // Near-misses: within a domain; nvlink; two TP-1 replicas (DP) across domains.
    check(Some(pcie), &[(8000, &dep(8000, "'2', '3'", tp2))], &[]);
    let nvlink = "gpus: 4\ninterconnect: nvlink\nnuma_domains: [[0, 1], [2, 3]]\n";
    check(Some(nvlink), &[(8000, &dep(8000, "'1', '2'", tp2))], &[]);
    check(
        Some(pcie),
        &[(
            8000,
            &dep(8000, "'1', '2'", "    command: vllm serve m -dp 2\n"),
        )],
        &[],
    );
}

#[test]
fn tp004_on_the_link_matrix() {
    // H100 PCIe cards bridged in pairs: NV12 within 0-1 and 2-3, SYS between.
    let pairs = "gpus: 4\ninterconnect: pcie\nlinks:\n  - [X, NV12, SYS, SYS]\n  - [NV12, X, SYS, SYS]\n  - [SYS, SYS, X, NV12]\n  - [SYS, SYS, NV12, X]\n";
    let tp = |n: u32| format!("    command: vllm serve m -tp {n}\n");
    check(
        Some(pairs),
        &[(8000, &dep(8000, "'1', '2'", &tp(2)))],
        &["TP004 warning m1:8000 8000.yml:6:31"],
    );
    let got = findings(Some(pairs), &[(8000, &dep(8000, "'1', '2'", &tp(2)))]);
    assert_eq!(
        got[0].message,
        "m1:8000/llm: tensor parallel group of GPUs 1, 2 is linked across NUMA nodes (SYS) on m1, where a group of 2 can be linked by NVLink (NV12): GPUs 0, 1 are free and linked by NVLink (NV12)"
    );
    // The better groups held by others: the warning says none is free.
    let got = findings(
        Some(pairs),
        &[
            (8000, &dep(8000, "'1', '2'", &tp(2))),
            (8001, &dep(8001, "'0'", "")),
            (8002, &dep(8002, "'3'", "")),
        ],
    );
    let tp004: Vec<&str> = got
        .iter()
        .filter(|f| f.rule.code() == "TP004")
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(tp004.len(), 1, "{got:#?}");
    assert!(
        tp004[0].ends_with(": no such group is free now"),
        "{}",
        tp004[0]
    );
    // Near-misses: an NVLink pair; TP 4 (no group of four does better than SYS);
    // two TP-1 replicas.
    check(Some(pairs), &[(8000, &dep(8000, "'2', '3'", &tp(2)))], &[]);
    check(
        Some(pairs),
        &[(8000, &dep(8000, "'0', '1', '2', '3'", &tp(4)))],
        &[],
    );
    check(
        Some(pairs),
        &[(
            8000,
            &dep(8000, "'1', '2'", "    command: vllm serve m -dp 2\n"),
        )],
        &[],
    );
    // An 8-GPU NVSwitch board: every group is as good as any.
    let nvswitch = "gpus: 8\ninterconnect: nvlink\n";
    check(
        Some(nvswitch),
        &[(8000, &dep(8000, "'1', '6'", &tp(2)))],
        &[],
    );
}

// --- MEM001 / MEM002 --------------------------------------------------------------------------

#[test]
fn mem001_weights_do_not_fit() {
    let big = "    labels: {catapult.params_b: '70'}\n";
    check(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'0'", big))],
        &["MEM001 warning m1:8000 8000.yml:6:33"],
    );
    // Near-misses: split over TP 2 in int4; no params_b; no gpu_memory_gb.
    let fits = "    labels: {catapult.params_b: '70', catapult.dtype: awq}\n    command: vllm serve m -tp 2\n";
    check(Some(NVLINK8), &[(8000, &dep(8000, "'0', '1'", fits))], &[]);
    check(Some(NVLINK8), &[(8000, &dep(8000, "'0'", ""))], &[]);
    check(Some("gpus: 8\n"), &[(8000, &dep(8000, "'0'", big))], &[]);
}

#[test]
fn mem002_shared_gpu_over_budget() {
    let share = |fraction: &str| {
        format!(
            "    labels: {{catapult.gpu_sharing: 'true'}}\n    command: vllm serve m --gpu-memory-utilization {fraction}\n"
        )
    };
    check(
        Some(NVLINK8),
        &[
            (8000, &dep(8000, "'0'", &share("0.5"))),
            (8001, &dep(8001, "'0'", &share("0.5"))),
        ],
        &["MEM002 error m1:8000,m1:8001 8001.yml:7:52"],
    );
    check(
        Some(NVLINK8),
        &[
            (8000, &dep(8000, "'0'", &share("0.5"))),
            (8001, &dep(8001, "'0'", &share("0.45"))),
        ],
        &[],
    );
}

// --- PORT001 / PORT002 ---------------------------------------------------------------------------

#[test]
fn port001_same_host_port_twice() {
    let with_port = |port: u16, extra_port: &str| {
        format!("services:\n  llm:\n    ports: ['{port}:8000', '{extra_port}']\n")
    };
    check(
        Some(NVLINK8),
        &[
            (8000, &with_port(8000, "9000:9000")),
            (8001, &with_port(8001, "9000:9001")),
        ],
        &["PORT001 error m1:8000,m1:8001 8001.yml:3:26"],
    );
    // Near-misses: different specific addresses; different protocols.
    check(
        Some(NVLINK8),
        &[
            (8000, &with_port(8000, "10.0.0.1:9000:9000")),
            (8001, &with_port(8001, "10.0.0.2:9000:9000")),
        ],
        &[],
    );
    check(
        Some(NVLINK8),
        &[
            (8000, &with_port(8000, "9000:9000/udp")),
            (8001, &with_port(8001, "9000:9000")),
        ],
        &[],
    );
    // 0.0.0.0 clashes with a specific address.
    check(
        Some(NVLINK8),
        &[
            (8000, &with_port(8000, "0.0.0.0:9000:9000")),
            (8001, &with_port(8001, "127.0.0.1:9000:9000")),
        ],
        &["PORT001 error m1:8000,m1:8001 8001.yml:3:26"],
    );
}

#[test]
fn port002_directory_port_not_published() {
    check(
        Some(NVLINK8),
        &[(8000, "services:\n  llm:\n    ports: ['8001:8000']\n")],
        &["PORT002 warning m1:8000 8000.yml:3:13"],
    );
    check(
        Some(NVLINK8),
        &[(8000, "services:\n  llm:\n    image: x\n")],
        &["PORT002 warning m1:8000 8000.yml:2:3"],
    );
    // Near-misses: host networking with --port; a sidecar publishing it.
    check(
        Some(NVLINK8),
        &[(
            8000,
            "services:\n  llm:\n    network_mode: host\n    command: vllm serve m --port 8000\n",
        )],
        &[],
    );
    check(
        Some(NVLINK8),
        &[(
            8000,
            "services:\n  llm:\n    image: x\n  proxy:\n    ports: ['8000:80']\n",
        )],
        &[],
    );
}

// --- INV001 and inventory problems -----------------------------------------------------------------

#[test]
fn inv001_once_per_machine() {
    check(
        None,
        &[(8000, &dep(8000, "'0'", "")), (8001, &dep(8001, "'1'", ""))],
        &["INV001 info - machines/m1"],
    );
    check(None, &[], &["INV001 info - machines/m1"]);
}

#[test]
fn inventory_wrong_types_are_rc002() {
    check(
        Some("gpus: eight\n"),
        &[(8000, &dep(8000, "'0'", ""))],
        &["RC002 error - machine.yaml:1:7"],
    );
    check(
        Some("gpus: 4\ninterconnect: infiniband\nnuma_domains: [[0, 1], [5]]\ngpu: 3\n"),
        &[],
        &[
            "RC002 error - machine.yaml:2:15",
            "RC002 error - machine.yaml:4:1",
            "RC002 error - machine.yaml:3:25",
        ],
    );
    check(Some("gpus: [\n"), &[], &["RC001 error - machine.yaml:2:1"]);
}

// --- RC001 - RC005 through the same path --------------------------------------------------------------

#[test]
fn reading_rules() {
    check(
        Some(NVLINK8),
        &[(8000, "services: [\n")],
        &["RC001 error m1:8000 8000.yml:2:1"],
    );
    check(
        Some(NVLINK8),
        &[(
            8000,
            "services:\n  llm:\n    ports: ['8000:8000']\n    gpus: [{device_ids: 0}]\n",
        )],
        &["RC002 error m1:8000 8000.yml:4:25"],
    );
    check(
        Some(NVLINK8),
        &[(
            8000,
            "services:\n  llm:\n    ports: ['8000:8000']\n    image: ${IMAGE:?required}\n",
        )],
        &["RC003 error m1:8000 8000.yml:4:12"],
    );
    check(
        Some(NVLINK8),
        &[(
            8000,
            "services:\n  llm:\n    ports: ['8000:8000']\n    image: vllm:${TAG}\n",
        )],
        // Points at the `${`, not at the start of the value.
        &["RC005 warning m1:8000 8000.yml:4:17"],
    );
}

#[test]
fn fingerprints_ignore_line_moves() {
    let a = findings(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'0'", "")), (8001, &dep(8001, "'0'", ""))],
    );
    let moved = format!("# a comment\n{}", dep(8001, "'0'", ""));
    let b = findings(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'0'", "")), (8001, &moved)],
    );
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    assert_ne!(a[0].location, b[0].location);
    assert_eq!(a[0].fingerprint, b[0].fingerprint);
}

// --- Linear conflict reporting ---------------------------------------------------------------------

/// `n` services `s0..` in one deployment on port 8000, each with `claim`.
fn crowd(n: usize, claim: &str) -> String {
    let mut src = String::from("services:\n");
    for i in 0..n {
        src.push_str(&format!("  s{i}:\n    ports: ['8000:8000']\n    {claim}\n"));
    }
    src
}

#[test]
fn gpu001_and_port001_report_each_later_holder_once_against_the_owner() {
    let src = crowd(4, "gpus: [{device_ids: ['0']}]");
    let got = findings(Some(NVLINK8), &[(8000, &src)]);
    let gpu001: Vec<&topology::Finding> =
        got.iter().filter(|f| f.rule.code() == "GPU001").collect();
    let port001: Vec<&topology::Finding> =
        got.iter().filter(|f| f.rule.code() == "PORT001").collect();
    // Four holders: three findings (not six pairs), each against s0.
    assert_eq!(gpu001.len(), 3, "{got:#?}");
    assert_eq!(port001.len(), 3, "{got:#?}");
    for (finding, later) in gpu001.iter().zip(["s1", "s2", "s3"]) {
        assert_eq!(
            finding.message,
            format!("GPU 0 on m1 is held by both m1:8000/{later} and m1:8000/s0")
        );
        assert_eq!(finding.related.len(), 1);
        assert_eq!(finding.related[0].location.to_string(), "8000.yml:4:26");
    }
    for finding in &port001 {
        assert!(
            finding.message.ends_with("and m1:8000/s0"),
            "{}",
            finding.message
        );
        assert_eq!(finding.related.len(), 1);
    }
}

#[test]
fn a_holder_added_after_the_others_adds_exactly_one_finding() {
    let fingerprints = |ports: &[u16]| {
        let deps: Vec<(u16, String)> = ports
            .iter()
            .map(|p| (*p, dep(*p, "'0', '1'", "")))
            .collect();
        let refs: Vec<(u16, &str)> = deps.iter().map(|(p, y)| (*p, y.as_str())).collect();
        let mut fps: Vec<String> = findings(Some(NVLINK8), &refs)
            .into_iter()
            .filter(|f| f.rule.code() == "GPU001")
            .map(|f| f.fingerprint)
            .collect();
        fps.sort();
        fps
    };
    let before = fingerprints(&[8000, 8001, 8002]);
    let after = fingerprints(&[8000, 8001, 8002, 8003]);
    assert_eq!(before.len(), 2);
    let new: Vec<&String> = after.iter().filter(|f| !before.contains(f)).collect();
    assert_eq!(new.len(), 1, "before {before:?}, after {after:?}");
    assert!(before.iter().all(|f| after.contains(f)));
}

#[test]
fn gpu001_groups_the_gpus_a_holder_shares_with_each_owner() {
    let tp = "    command: vllm serve m -tp 4\n";
    let got = findings(
        Some(NVLINK8),
        &[
            (
                8000,
                &dep(8000, "'0', '1'", "    command: vllm serve m -tp 2\n"),
            ),
            (
                8001,
                &dep(8001, "'2', '3'", "    command: vllm serve m -tp 2\n"),
            ),
            (8002, &dep(8002, "'0', '1', '2', '3'", tp)),
        ],
    );
    let lines: Vec<String> = got
        .iter()
        .map(|f| {
            format!(
                "{} {} {:?} {}",
                f.rule,
                f.deployments.join(","),
                f.subjects,
                f.message
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            "GPU001 m1:8000,m1:8002 [\"0\", \"1\"] GPUs 0, 1 on m1 are held by both m1:8002/llm and m1:8000/llm",
            "GPU001 m1:8001,m1:8002 [\"2\", \"3\"] GPUs 2, 3 on m1 are held by both m1:8002/llm and m1:8001/llm",
        ]
    );
}

#[test]
fn gpu001_a_sharer_is_reported_against_the_first_exclusive_holder() {
    let share = "    labels: {catapult.gpu_sharing: 'true'}\n    command: vllm serve m --gpu-memory-utilization 0.3\n";
    let got = findings(
        Some(NVLINK8),
        &[
            (8000, &dep(8000, "'0'", share)),
            (8001, &dep(8001, "'0'", "")),
            (8002, &dep(8002, "'0'", share)),
        ],
    );
    let lines: Vec<String> = got
        .iter()
        .map(|f| format!("{} {}", f.rule, f.message))
        .collect();
    assert_eq!(
        lines,
        [
            "GPU001 GPU 0 on m1 is held by both m1:8001/llm and m1:8000/llm",
            "GPU001 GPU 0 on m1 is held by both m1:8002/llm and m1:8001/llm",
        ]
    );
}

#[test]
fn port001_owner_is_the_first_binding_that_clashes() {
    let bind = |own: u16, extra: &str| {
        format!("services:\n  llm:\n    ports: ['{own}:8000', '{extra}']\n")
    };
    let got = findings(
        Some(NVLINK8),
        &[
            (8000, &bind(8000, "10.0.0.1:9000:9000")),
            (8001, &bind(8001, "10.0.0.2:9000:9000")),
            (8002, &bind(8002, "10.0.0.2:9000:9000")),
            (8003, &bind(8003, "9000:9000")),
        ],
    );
    let lines: Vec<String> = got
        .iter()
        .map(|f| format!("{} {}", f.rule, f.message))
        .collect();
    assert_eq!(
        lines,
        [
            "PORT001 host port 9000 on m1 is published by both m1:8002/llm and m1:8001/llm",
            "PORT001 host port 9000 on m1 is published by both m1:8003/llm and m1:8000/llm",
        ]
    );
}

#[test]
fn gpu003_names_a_few_other_holders_and_points_at_the_first() {
    let src = crowd(9, "gpus: [{count: 1}]");
    let got = findings(Some(NVLINK8), &[(8000, &src)]);
    let gpu003: Vec<&topology::Finding> =
        got.iter().filter(|f| f.rule.code() == "GPU003").collect();
    assert_eq!(gpu003.len(), 9);
    let first = gpu003[0];
    assert_eq!(
        first.message,
        "m1:8000/s0 takes unpinned GPUs (count: 1) on m1, where m1:8000/s1, m1:8000/s2, m1:8000/s3, m1:8000/s4, m1:8000/s5, and 3 more also hold GPUs: nobody can prove they do not collide; pin them with device_ids"
    );
    assert_eq!(first.related.len(), 1);
    assert_eq!(first.related[0].message, "m1:8000/s1 holds count: 1");
    assert!(gpu003[1].message.contains("where m1:8000/s0, m1:8000/s2,"));
}

#[test]
fn mem002_lists_a_few_sharers() {
    let src = crowd(
        8,
        "gpus: [{device_ids: ['0']}]\n    labels: {catapult.gpu_sharing: 'true'}\n    command: vllm serve m --gpu-memory-utilization 0.2",
    );
    let got = findings(Some(NVLINK8), &[(8000, &src)]);
    let mem002: Vec<&topology::Finding> =
        got.iter().filter(|f| f.rule.code() == "MEM002").collect();
    assert_eq!(mem002.len(), 1, "{got:#?}");
    assert_eq!(
        mem002[0].message,
        "GPU 0 on m1 is shared by 8 services whose memory fractions add up to 1.60 (> 0.95): m1:8000/s0 0.2, m1:8000/s1 0.2, m1:8000/s2 0.2, m1:8000/s3 0.2, m1:8000/s4 0.2, and 3 more"
    );
    assert_eq!(mem002[0].related.len(), 5);
    assert!(got.iter().all(|f| f.rule.code() != "GPU001"));
}

// --- Absurd numbers ------------------------------------------------------------------------------

#[test]
fn absurd_gpu_counts_make_the_inventory_unusable() {
    let one = |n: &str| dep(8000, &format!("'{n}'"), "");
    // Above the bound (and beyond u32 / u64): RC002 at the value; no GPU002, no INV001.
    for gpus in ["1025", "4294967295", "99999999999999999999999"] {
        let got = findings(Some(&format!("gpus: {gpus}\n")), &[(8000, &one("2000"))]);
        let lines: Vec<String> = got
            .iter()
            .map(|f| format!("{} {}", f.rule, f.location))
            .collect();
        assert_eq!(lines, ["RC002 machine.yaml:1:7"], "gpus: {gpus}");
        assert!(
            got[0]
                .message
                .contains(&format!("`gpus: {gpus}` is more than 1024")),
            "{}",
            got[0].message
        );
    }
    // The bound itself is accepted.
    check(
        Some("gpus: 1024\n"),
        &[(8000, &one("1024"))],
        &["GPU002 error m1:8000 8000.yml:5:26"],
    );
    check(Some("gpus: 1024\n"), &[(8000, &one("1023"))], &[]);
}

#[test]
fn absurd_ids_counts_and_parallelism_are_findings() {
    // A decimal id beyond u64 is still out of range.
    check(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'99999999999999999999999'", ""))],
        &["GPU002 error m1:8000 8000.yml:5:26"],
    );
    check(
        Some(NVLINK8),
        &[(8000, &dep(8000, "'4000000000'", ""))],
        &["GPU002 error m1:8000 8000.yml:5:26"],
    );
    // count: 4000000000 holds that many: TP001, nothing allocated per GPU.
    check(
        Some(NVLINK8),
        &[(
            8000,
            "services:\n  llm:\n    ports: ['8000:8000']\n    gpus: [{count: 4000000000}]\n",
        )],
        &["TP001 error m1:8000 8000.yml:4:20"],
    );
    // TP x PP x DP beyond u32 and u64 is shown exactly.
    let huge = "services:\n  llm:\n    ports: ['8000:8000']\n    gpus: all\n    command: vllm serve m --tensor-parallel-size 4294967295 -pp 4294967295 -dp 4294967295\n";
    let got = findings(Some(NVLINK8), &[(8000, huge)]);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].rule.code(), "TP002");
    assert!(
        got[0].message.contains(
            "TP 4294967295 x PP 4294967295 x DP 4294967295 = 79228162458924105385300197375 GPU(s) but m1 has only 8"
        ),
        "{}",
        got[0].message
    );
    let got = findings(
        None,
        &[(
            8000,
            "services:\n  llm:\n    ports: ['8000:8000']\n    gpus: [{count: 2}]\n    command: vllm serve m -tp 65536 -pp 65536\n",
        )],
    );
    let tp001: Vec<&topology::Finding> = got.iter().filter(|f| f.rule.code() == "TP001").collect();
    assert_eq!(tp001.len(), 1, "{got:#?}");
    assert!(
        tp001[0].message.contains("= 4294967296 GPU(s) but holds 2"),
        "{}",
        tp001[0].message
    );
}

#[test]
fn tp004_with_many_empty_numa_domains_stays_fast() {
    let mut inventory =
        String::from("gpus: 1024\ninterconnect: pcie\nnuma_domains: [[0, 1], [2, 3]");
    for _ in 0..50_000 {
        inventory.push_str(", []");
    }
    inventory.push_str("]\n");
    // 20 services on all 1024 GPUs: 512 TP groups each, none crossing (most
    // GPUs are in no domain), so every group is looked up; one pinned service crosses.
    let src = crowd(20, "gpus: all\n    command: vllm serve m -tp 2");
    let crossing = dep(8001, "'1', '2'", "    command: vllm serve m -tp 2\n");
    let started = std::time::Instant::now();
    let got = findings(Some(&inventory), &[(8000, &src), (8001, &crossing)]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let tp004: Vec<String> = got
        .iter()
        .filter(|f| f.rule.code() == "TP004")
        .map(|f| f.location.to_string())
        .collect();
    assert_eq!(tp004, ["8001.yml:6:31"]);
}

/// The Rust sources of `dir` (recursively), as (path under `src/`, text before any
/// `#[cfg(test)]`), without the rule units themselves.
fn engine_sources(dir: &std::path::Path, prefix: &str, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "rules" {
                engine_sources(&path, &format!("{prefix}{name}/"), out);
            }
        } else if name.ends_with(".rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .to_owned();
            out.push((format!("{prefix}{name}"), code));
        }
    }
}

/// A rule unit without a machine check names the files that find the rule, and they are
/// exactly the files that make its findings: the unit stays a true index of its rule,
/// and a machine-level rule is made by its unit alone.
#[test]
fn every_rule_unit_names_the_files_that_find_it() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut sources = Vec::new();
    engine_sources(&src, "", &mut sources);
    for rule in topology::Rule::ALL {
        let name = format!("Rule::{rule:?}");
        let writers: Vec<&str> = sources
            .iter()
            .filter(|(_, code)| {
                code.match_indices(&name).any(|(at, _)| {
                    !code[at + name.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
                })
            })
            .map(|(path, _)| path.as_str())
            .collect();
        let mut named: Vec<&str> = rule.found_in().to_vec();
        named.sort_unstable();
        assert_eq!(
            writers,
            named,
            "{}: the files that make its findings, and those its unit names",
            rule.code()
        );
    }
}
