//! The inventory importer on nvidia-smi's outputs, one directory per machine
//! type under `nvidia_smi/` (each README says which published outputs it
//! is shaped after): the `machine.yaml` written is snapshotted, and reads
//! back without a finding to the same devices and links. Then the errors:
//! outputs that disagree or lines of an unknown shape name file and line.

use std::collections::BTreeMap;
use std::path::Path;

use topology::inventory::{
    Interconnect, Link, SmiOutput, SmiOutputs, import, read_inventory, to_machine_yaml,
};
use topology::yaml::Limits;

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/nvidia_smi")
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn imported(machine: &str) -> (topology::inventory::Inventory, String) {
    let dir = fixtures().join(machine);
    let (topo, query, list) = (
        read(&dir, "topo.txt"),
        read(&dir, "query.csv"),
        read(&dir, "list.txt"),
    );
    fn output<'a>(name: &'a str, text: &'a Option<String>) -> Option<SmiOutput<'a>> {
        text.as_deref().map(|text| SmiOutput { name, text })
    }
    let outputs = SmiOutputs {
        topo: output("topo.txt", &topo),
        query: output("query.csv", &query),
        list: output("list.txt", &list),
    };
    let labels = BTreeMap::from([("pool".to_owned(), "prod".to_owned())]);
    let inventory = import(&outputs, &labels).unwrap_or_else(|e| panic!("{machine}: {e}"));
    let yaml = to_machine_yaml(&inventory, &format!("imported from the {machine} fixture"));
    (inventory, yaml)
}

#[test]
fn every_machine_type_imports_and_reads_back() {
    let mut machines: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    machines.sort();
    assert!(machines.len() >= 5, "{machines:?}");
    for machine in &machines {
        let (inventory, yaml) = imported(machine);
        insta::assert_snapshot!(format!("import__{machine}"), yaml);
        let (read_back, findings) = read_inventory("m", "machine.yaml", &yaml, &Limits::default());
        let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(messages, Vec::<&str>::new(), "{machine}");
        let read_back = read_back.unwrap();
        assert_eq!(read_back.devices, inventory.devices, "{machine}");
        assert_eq!(read_back.links, inventory.links, "{machine}");
        assert_eq!(read_back.numa_domains, inventory.numa_domains, "{machine}");
        assert_eq!(read_back.gpu_model, inventory.gpu_model, "{machine}");
    }
}

/// What each machine type is, in the terms the planner and the rules use.
#[test]
fn what_each_machine_type_is() {
    let (dgx, _) = imported("dgx-h100");
    assert_eq!(dgx.interconnect, Some(Interconnect::Nvlink));
    assert_eq!(dgx.numa_domains, [[0, 1, 2, 3], [4, 5, 6, 7]]);
    assert_eq!(
        dgx.gpu_memory_gb,
        Some(85.5),
        "81559 MiB in GB of 10^9 bytes"
    );
    assert_eq!(dgx.devices.len(), 8);
    assert!(
        dgx.devices
            .iter()
            .all(|d| d.uuid.is_some() && d.pci_bus_id.is_some())
    );

    let (l40s, _) = imported("l40s-8x-two-sockets");
    let links = l40s.link_matrix().unwrap();
    assert_eq!(l40s.interconnect, Some(Interconnect::Pcie));
    assert_eq!(links.worst_in(&[0, 1]), Some(Link::Pix));
    assert_eq!(links.worst_in(&[0, 1, 2, 3]), Some(Link::Node));
    assert_eq!(links.worst_in(&[3, 4]), Some(Link::Sys));

    let (pairs, _) = imported("h100-pcie-nvlink-pairs");
    let links = pairs.link_matrix().unwrap();
    assert_eq!(
        pairs.interconnect,
        Some(Interconnect::Pcie),
        "not every pair is NVLink"
    );
    assert_eq!(links.worst_in(&[2, 3]), Some(Link::Nvlink(12)));
    assert_eq!(links.worst_in(&[1, 2]), Some(Link::Sys));

    let (mig, _) = imported("a100-mig");
    assert!(mig.numa_domains.is_empty(), "NUMA affinity N/A");
    let slices: Vec<usize> = mig.devices.iter().map(|d| d.mig.len()).collect();
    assert_eq!(slices, [3, 7]);
    assert!(
        mig.devices[0].mig[0]
            .uuid
            .as_deref()
            .unwrap()
            .starts_with("MIG-GPU-")
    );

    let (old, _) = imported("older-driver-soc");
    let links = old.link_matrix().unwrap();
    assert_eq!(links.link(0, 4), Some(Link::Sys), "SOC is SYS");
    assert!(old.numa_domains.is_empty(), "no NUMA Affinity column");
}

fn import_error(topo: Option<&str>, query: Option<&str>, list: Option<&str>) -> String {
    let outputs = SmiOutputs {
        topo: topo.map(|text| SmiOutput {
            name: "topo.txt",
            text,
        }),
        query: query.map(|text| SmiOutput {
            name: "query.csv",
            text,
        }),
        list: list.map(|text| SmiOutput {
            name: "list.txt",
            text,
        }),
    };
    match import(&outputs, &BTreeMap::new()) {
        Ok(inventory) => panic!("imported {inventory:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn what_cannot_be_read_is_named_by_file_and_line() {
    let topo2 = "\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\nGPU0\t X \tNV4\t0-7\t0\nGPU1\tNV4\t X \t0-7\t0\n";
    let list1 = "GPU 0: NVIDIA A10 (UUID: GPU-00000000-1111-2222-3333-444444444444)\n";
    // (topo -m, --query-gpu, -L, the error).
    type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str);
    let cases: &[Case<'_>] = &[
        (
            Some(topo2),
            None,
            Some(list1),
            "list.txt: it lists 1 GPU(s), but topo.txt lists 2",
        ),
        (
            None,
            None,
            Some("GPU 0: NVIDIA A10\n"),
            "list.txt:1: a GPU line without `(UUID: GPU-...)`",
        ),
        (
            None,
            None,
            Some("No devices were found\n"),
            "list.txt:1: `No devices were found` is neither a `GPU n: ...` nor a `MIG ...` line of `nvidia-smi -L`",
        ),
        (
            None,
            Some("name, memory.total [MiB]\nNVIDIA A10, 23028 MiB\n"),
            None,
            "query.csv:1: the header has no `index` column: run nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id --format=csv",
        ),
        (
            None,
            Some("index, memory.total [MiB]\n0, 23028 MB\n"),
            None,
            "query.csv:2: memory `23028 MB` is not `<number> MiB`",
        ),
        (
            Some("\tGPU0\tGPU1\nGPU0\t X \tNV4\nGPU1\tPIX\t X \n"),
            None,
            None,
            "topo.txt:1: the GPU matrix is not usable: GPU 0 to 1 and GPU 1 to 0 differ (the matrix must be symmetric)",
        ),
        (
            Some("GPU 0: NVIDIA A10 (UUID: GPU-00000000-1111)\n"),
            None,
            None,
            "topo.txt: no header line starting with GPU0: is this the output of `nvidia-smi topo -m`?",
        ),
        (
            None,
            None,
            None,
            "(no input): give at least one of nvidia-smi's outputs (topo -m, --query-gpu, -L)",
        ),
    ];
    for (topo, query, list, expected) in cases {
        assert_eq!(import_error(*topo, *query, *list), *expected);
    }
    // A query without UUIDs and a list with them agree: it imports.
    let agreeing = SmiOutputs {
        topo: None,
        query: Some(SmiOutput {
            name: "query.csv",
            text: "index, name\n0, NVIDIA A10\n",
        }),
        list: Some(SmiOutput {
            name: "list.txt",
            text: list1,
        }),
    };
    let inventory = import(&agreeing, &BTreeMap::new()).unwrap();
    assert_eq!(inventory.gpu_model.as_deref(), Some("NVIDIA A10"));
    assert!(inventory.devices[0].uuid.is_some());
    let disagreeing = import_error(
        None,
        Some("index, uuid\n0, GPU-aaaaaaaa-1111-2222-3333-444444444444\n"),
        Some(list1),
    );
    assert_eq!(
        disagreeing,
        "list.txt: GPU 0 has UUID GPU-00000000-1111-2222-3333-444444444444, but query.csv says GPU-aaaaaaaa-1111-2222-3333-444444444444"
    );
}
