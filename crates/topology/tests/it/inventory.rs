//! `machine.yaml`'s GPU topology (docs/release-config.md, "GPU topology"):
//! devices with UUIDs and MIG slices, the link matrix, and the shorthand read
//! as the matrix it stands for. Data-driven: each case is a file and the
//! exact RC002 findings (`line:column message`) it gives.

use topology::inventory::{Inventory, Link, read_inventory};
use topology::yaml::Limits;

fn read(src: &str) -> (Option<Inventory>, Vec<String>) {
    let (inventory, findings) = read_inventory("m1", "machine.yaml", src, &Limits::default());
    let lines = findings
        .iter()
        .map(|f| {
            format!(
                "{} {}:{} {}",
                f.rule,
                f.location.line,
                f.location.column,
                f.message.trim_start_matches("machine.yaml: ")
            )
        })
        .collect();
    (inventory, lines)
}

const PAIRS: &str = "gpus: 4
interconnect: pcie
links:
  - [X, NV12, SYS, SYS]
  - [NV12, X, SYS, SYS]
  - [SYS, SYS, X, NV12]
  - [SYS, SYS, NV12, X]
";

#[test]
fn topology_cases() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("a file from before the extension", "gpus: 8\ninterconnect: nvlink\n", &[]),
        ("NVLink pairs", PAIRS, &[]),
        (
            "devices with UUIDs and MIG slices",
            "gpus: 2
devices:
  - {index: 0, uuid: GPU-5e9f3c2a-1b2c-3d4e-5f60-718293a4b5c6, model: NVIDIA A100-SXM4-40GB, memory_gb: 42.5, pci_bus_id: 00000000:07:00.0,
     mig: [{profile: 3g.20gb, uuid: MIG-1a2b3c4d-0000-5555-aaaa-0123456789ab}, {profile: 2g.10gb}, {profile: 1g.5gb+me}]}
  - {index: 1, uuid: GPU-0f0f0f0f-1b2c-3d4e-5f60-718293a4b5c6}
",
            &[],
        ),
        (
            "a device index beyond the machine, twice, or missing",
            "gpus: 2\ndevices:\n  - {index: 2}\n  - {index: 1}\n  - {index: 1}\n  - {uuid: GPU-00000000-1111}\n",
            &[
                "RC002 3:13 device index 2 is not on the machine (`gpus: 2`)",
                "RC002 5:5 device index 1 is listed twice",
                "RC002 6:5 a device needs its `index`",
            ],
        ),
        (
            "a UUID given to two GPUs, and one that is not a UUID",
            "gpus: 2\ndevices:\n  - {index: 0, uuid: GPU-aaaaaaaa-bbbb}\n  - {index: 1, uuid: GPU-aaaaaaaa-bbbb}\n  - {index: 1, uuid: 0}\n",
            &[
                "RC002 4:22 UUID `GPU-aaaaaaaa-bbbb` is given to GPU 0 and GPU 1",
                "RC002 5:5 device index 1 is listed twice",
            ],
        ),
        (
            "MIG slices that do not fit the GPU, and a bad profile",
            "gpus: 1\ndevices:\n  - index: 0\n    memory_gb: 40\n    mig: [{profile: 4g.20gb}, {profile: 4g.20gb}, {profile: 7g}, {profile: 1g.5gb, uuid: GPU-aaaaaaaa-bbbb}]\n",
            &[
                "RC002 5:51 each MIG slice of GPU 0 needs a `profile` like `3g.40gb` (compute slices, memory), found `7g`",
                "RC002 5:90 a MIG slice `uuid` is `MIG-` and hex digits (as nvidia-smi -L prints it), found `GPU-aaaaaaaa-bbbb`",
                "RC002 3:5 the MIG slices of GPU 0 use 9 compute slices; a GPU has 7",
                "RC002 3:5 the MIG slices of GPU 0 hold 45 GB; the GPU has 40 GB",
            ],
        ),
        (
            "an asymmetric matrix",
            "gpus: 2\nlinks: [[X, NV4], [PIX, X]]\n",
            &["RC002 2:8 `links` is left out: GPU 0 to 1 and GPU 1 to 0 differ (the matrix must be symmetric), for 2 GPU(s)"],
        ),
        (
            "a matrix of the wrong size",
            "gpus: 3\nlinks: [[X, NV4], [NV4, X]]\n",
            &["RC002 2:8 `links` is left out: row 0 has 2 entries, for 3 GPU(s)"],
        ),
        (
            "an unknown entry and a missing X",
            "gpus: 2\nlinks: [[X, NVX], [NVX, X]]\n",
            &["RC002 2:8 `links` is left out: row 0, column 1: `NVX` is not a link (NV<n>, PIX, PXB, PHB, NODE, SYS), for 2 GPU(s)"],
        ),
        (
            "the diagonal must be X",
            "gpus: 2\nlinks: [[NV4, NV4], [NV4, X]]\n",
            &["RC002 2:8 `links` is left out: row 0, column 0 must be `X` (a GPU to itself), found `NV4`, for 2 GPU(s)"],
        ),
        (
            "nvlink over a matrix with PCIe pairs",
            "gpus: 4\ninterconnect: nvlink\nlinks:\n  - [X, NV12, SYS, SYS]\n  - [NV12, X, SYS, SYS]\n  - [SYS, SYS, X, NV12]\n  - [SYS, SYS, NV12, X]\n",
            &["RC002 2:15 `interconnect: nvlink` says every pair of GPUs is NVLink, but `links` has SYS between GPU 0 and GPU 2"],
        ),
        (
            "pcie over an all-NVLink matrix",
            "gpus: 2\ninterconnect: pcie\nlinks: [[X, NV18], [NV18, X]]\n",
            &["RC002 2:15 `interconnect: pcie`, but `links` has NVLink between every pair of GPUs (write `nvlink`)"],
        ),
        (
            "SOC is the older name of SYS",
            "gpus: 2\nlinks: [[X, SOC], [SOC, X]]\n",
            &[],
        ),
    ];
    for (name, src, expected) in cases {
        let (inventory, lines) = read(src);
        assert!(inventory.is_some(), "{name}: the inventory stays usable");
        assert_eq!(&lines, expected, "{name}");
    }
}

#[test]
fn devices_are_read_by_index_with_their_slices() {
    let (inventory, lines) = read(
        "gpus: 2
gpu_model: NVIDIA A100-SXM4-40GB
devices:
  - index: 1
    uuid: GPU-0f0f0f0f-1b2c-3d4e-5f60-718293a4b5c6
  - index: 0
    uuid: GPU-5e9f3c2a-1b2c-3d4e-5f60-718293a4b5c6
    mig:
      - {profile: 3g.20gb, uuid: MIG-1a2b3c4d-0000-5555-aaaa-0123456789ab}
      - {profile: 1g.5gb+me, uuid: MIG-GPU-5e9f3c2a-1b2c-3d4e-5f60-718293a4b5c6/7/0}
",
    );
    assert_eq!(lines, Vec::<String>::new());
    let inventory = inventory.unwrap();
    let indices: Vec<u32> = inventory.devices.iter().map(|d| d.index).collect();
    assert_eq!(indices, [0, 1], "sorted by index");
    let first = &inventory.devices[0];
    assert_eq!(first.mig.len(), 2);
    assert_eq!(first.mig[0].size(), Some((3, 20)));
    assert_eq!(first.mig[1].size(), Some((1, 5)));
    assert_eq!(
        inventory
            .device_by_uuid("GPU-0f0f0f0f-1b2c-3d4e-5f60-718293a4b5c6")
            .map(|d| d.index),
        Some(1)
    );
}

#[test]
fn the_shorthand_is_read_as_its_matrix() {
    let matrix = |src: &str| read(src).0.unwrap().link_matrix().map(|m| m.into_owned());
    let nvlink = matrix("gpus: 4\ninterconnect: nvlink\n").unwrap();
    assert!(nvlink.all_nvlink());
    assert_eq!(nvlink.worst_in(&[0, 1, 2, 3]), Some(Link::Nvlink(0)));

    let sockets = matrix("gpus: 4\ninterconnect: pcie\nnuma_domains: [[0, 1], [2, 3]]\n").unwrap();
    assert_eq!(sockets.link(0, 1), Some(Link::Node));
    assert_eq!(sockets.link(1, 2), Some(Link::Sys));
    assert_eq!(sockets.worst_in(&[0, 1]), Some(Link::Node));
    assert_eq!(sockets.worst_in(&[0, 1, 2]), Some(Link::Sys));

    assert_eq!(
        matrix("gpus: 4\ninterconnect: pcie\n"),
        None,
        "no locality known"
    );
    assert_eq!(matrix("gpus: 4\n"), None);

    let pairs = matrix(PAIRS).unwrap();
    assert_eq!(pairs.link(0, 1), Some(Link::Nvlink(12)));
    assert_eq!(pairs.worst_in(&[2, 3]), Some(Link::Nvlink(12)));
    assert_eq!(pairs.worst_in(&[1, 2]), Some(Link::Sys));
}

#[test]
fn links_rank_from_sys_to_nvlink() {
    let order = ["SYS", "NODE", "PHB", "PXB", "PIX", "NV1", "NV4", "NV18"];
    let links: Vec<Link> = order.iter().map(|t| Link::parse(t).unwrap()).collect();
    assert!(links.windows(2).all(|w| w[0] < w[1]), "{links:?}");
    let shown: Vec<String> = links.iter().map(ToString::to_string).collect();
    assert_eq!(shown, order, "written back as read");
    for wrong in ["NV0", "NV65", "NV-1", "nv4", "PCIE", "X", ""] {
        assert_eq!(Link::parse(wrong), None, "{wrong}");
    }
}

/// The engine parses identical inventories once and gives the other machines
/// the parse relabeled (`Inventory::relabeled`): for every inventory of the
/// fixtures read without findings, that is exactly a fresh read at the other
/// path.
#[test]
fn relabeled_inventories_are_fresh_reads() {
    let root = test_support::workspace_root().join("fixtures");
    let mut sources = vec![PAIRS.to_owned()];
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("fixture directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.file_name().is_some_and(|n| n == "machine.yaml") {
                sources.push(std::fs::read_to_string(&path).expect("machine.yaml"));
            }
        }
    }
    let limits = Limits::default();
    let mut compared = 0;
    for src in &sources {
        let (Some(first), findings) =
            read_inventory("gpu-01", "machines/gpu-01/machine.yaml", src, &limits)
        else {
            continue;
        };
        if !findings.is_empty() {
            continue;
        }
        let (fresh, _) = read_inventory("node-17", "machines/node-17/machine.yaml", src, &limits);
        assert_eq!(
            Some(first.relabeled("machines/node-17/machine.yaml")),
            fresh,
            "{src}"
        );
        compared += 1;
    }
    assert!(
        compared >= 20,
        "only {compared} of {} inventories compared",
        sources.len()
    );
}
