//! `release-config-validate inventory import`, the real binary: a machine
//! type's nvidia-smi outputs become a `machine.yaml` the validator then reads
//! without a finding; what cannot be read exits 2 naming the file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn smi_fixture(machine: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../topology/tests/it/nvidia_smi")
        .join(machine)
}

fn import(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_release-config-validate"))
        .args(["inventory", "import"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_imported_inventory_validates() {
    let dir = smi_fixture("dgx-h100");
    let (topo, query, list) = (
        dir.join("topo.txt"),
        dir.join("query.csv"),
        dir.join("list.txt"),
    );
    let output = import(&[
        "--topo".as_ref(),
        topo.as_os_str(),
        "--query".as_ref(),
        query.as_os_str(),
        "--list".as_ref(),
        list.as_os_str(),
        "--label".as_ref(),
        "pool=prod".as_ref(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout).unwrap();
    assert!(
        yaml.starts_with("# written by `release-config-validate inventory import` from nvidia-smi topo -m (topo.txt), --query-gpu (query.csv), -L (list.txt)\n"),
        "{yaml}"
    );
    assert!(yaml.contains("\ninterconnect: nvlink\n"), "{yaml}");
    assert!(yaml.contains("\n  \"pool\": \"prod\"\n"), "{yaml}");

    // The file in a repository, beside a deployment pinned to two of its GPUs.
    let repo = tempfile::tempdir().unwrap();
    let machine = repo.path().join("machines/dgx-01");
    std::fs::create_dir_all(machine.join("8000")).unwrap();
    std::fs::write(machine.join("machine.yaml"), &yaml).unwrap();
    std::fs::write(
        machine.join("8000/docker-compose.yml"),
        "services:\n  llm:\n    image: vllm/vllm-openai\n    command: [--tensor-parallel-size, '2']\n    ports: ['8000:8000']\n    deploy:\n      resources:\n        reservations:\n          devices: [{driver: nvidia, device_ids: ['0', '1'], capabilities: [gpu]}]\n",
    )
    .unwrap();
    let validated = Command::new(env!("CARGO_BIN_EXE_release-config-validate"))
        .arg(repo.path())
        .args(["--format", "json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&validated.stdout).unwrap();
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["topology"][0]["gpu_count"], 8);
    assert_eq!(
        report["topology"][0]["free_gpus"],
        serde_json::json!([2, 3, 4, 5, 6, 7])
    );
}

#[test]
fn what_cannot_be_imported_exits_2_naming_it() {
    let missing = import(&["--topo".as_ref(), "/nonexistent/topo.txt".as_ref()]);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("/nonexistent/topo.txt"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "GPU 0: NVIDIA L4 (UUID: GPU-00000000-1111-2222-3333-444444444444)\nGPU 2: NVIDIA L4 (UUID: GPU-00000000-1111-2222-3333-555555555555)\n").unwrap();
    let gap = import(&["--list".as_ref(), list.as_os_str()]);
    assert_eq!(gap.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&gap.stderr);
    assert!(
        stderr.contains("list.txt:2: expected GPU 1, found `GPU 2`"),
        "{stderr}"
    );

    let label = import(&[
        "--list".as_ref(),
        list.as_os_str(),
        "--label".as_ref(),
        "pool".as_ref(),
    ]);
    assert_eq!(label.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&label.stderr).contains("--label `pool` is not KEY=VALUE"));

    let nothing = import(&[]);
    assert_eq!(nothing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&nothing.stderr)
            .contains("give at least one of nvidia-smi's outputs")
    );
}

/// The README's usage block of `inventory import` names exactly its flags.
#[test]
fn the_readme_names_the_import_flags() {
    let command = <release_config_validate::Args as clap::CommandFactory>::command();
    let import = command
        .find_subcommand("inventory")
        .and_then(|inventory| inventory.find_subcommand("import"))
        .unwrap();
    assert_eq!(
        crate::support::readme_usage_flags("release-config-validate inventory import"),
        crate::support::long_flags(import)
    );
}
