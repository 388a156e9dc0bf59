//! Proposals, the engine's part: request checks, rendering as data, and every refusal against a
//! production tree and its open proposals.

use tempfile::TempDir;
use topology::compose::{self, Deployment, DeploymentId};
use topology::engine::{Engine, ExtraDeployment, Fleet};
use topology::proposal::{
    HeldGpus, PendingProposal, Plan, ProposalAction, ProposalError, ProposalRequest,
    TemplateSource, changed_deployments, check_request, plan, render,
};
use topology::repo::Snapshot;
use topology::repo::TreeChange;
use topology::yaml::Limits;

use crate::support::write_files;

const VLLM: &str = include_str!("../../../../templates/vllm.yml.j2");

/// The engine's reading of a rendered proposal for `gpu-01:8001`.
fn read_rendered(rendered: &str) -> (Deployment, Vec<topology::Finding>) {
    compose::read_deployment(
        DeploymentId::new("gpu-01", 8001),
        "machines/gpu-01/8001/docker-compose.yml",
        rendered,
        None,
        &Limits::default(),
    )
}
fn vllm_template() -> TemplateSource {
    TemplateSource {
        name: "vllm".to_owned(),
        origin: "shipped",
        text: VLLM.to_owned(),
    }
}

fn request(machine: &str, port: u16, gpu_ids: &[u32], tp: u32) -> ProposalRequest {
    ProposalRequest {
        action: ProposalAction::Add,
        machine: machine.to_owned(),
        port,
        template_name: "vllm".to_owned(),
        model_name: "qwen-2-72b".to_owned(),
        model_path: "/models/qwen-2-72b".to_owned(),
        gpu_ids: gpu_ids.to_vec(),
        tensor_parallel: tp,
        description: "More capacity for qwen.".to_owned(),
    }
}

const HELD: &str = r#"services:
  vllm:
    image: vllm/vllm-openai:v0.8.5
    labels: {catapult.model: llama, catapult.model_path: /models/llama}
    command: ["--tensor-parallel-size", "2"]
    ports: ["8000:8000"]
    deploy:
      resources:
        reservations:
          devices: [{driver: nvidia, capabilities: [gpu], device_ids: ["0", "1"]}]
"#;

/// gpu-01: 8 GPUs in two NUMA domains, GPUs 0 and 1 held at port 8000; gpu-02: 4 free GPUs of
/// another model; cpu-01: no inventory.
fn fleet_dir() -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    write_files(
        dir.path(),
        &[
            (
                "machines/gpu-01/machine.yaml",
                "gpus: 8\ngpu_model: H100\ngpu_memory_gb: 80\ninterconnect: pcie\nnuma_domains: [[0,1,2,3],[4,5,6,7]]\n",
            ),
            ("machines/gpu-01/8000/docker-compose.yml", HELD),
            (
                "machines/gpu-02/machine.yaml",
                "gpus: 4\ngpu_model: A100\ngpu_memory_gb: 80\ninterconnect: nvlink\n",
            ),
            (
                "machines/cpu-01/7000/docker-compose.yml",
                "services:\n  web:\n    image: nginx\n    ports: [\"7000:80\"]\n",
            ),
        ],
    );
    dir
}

fn attempt(
    request: &ProposalRequest,
    pending: &[(&str, &Fleet)],
) -> (Result<Plan, ProposalError>, Fleet) {
    attempt_claimed(request, pending, &HeldGpus::new())
}

/// [`attempt`] with live claims of other proposals on `claimed`.
fn attempt_claimed(
    request: &ProposalRequest,
    pending: &[(&str, &Fleet)],
    claimed: &HeldGpus,
) -> (Result<Plan, ProposalError>, Fleet) {
    let dir = fleet_dir();
    let snapshot = Snapshot::from_dir(dir.path()).expect("snapshot");
    let mut engine = Engine::new();
    let main = engine.analyze(&snapshot).expect("analyze");
    let pending: Vec<PendingProposal<'_>> = pending
        .iter()
        .map(|(label, fleet)| PendingProposal {
            label: (*label).to_owned(),
            head_ref: "catapult/other".to_owned(),
            fleet,
            changed: None,
        })
        .collect();
    let result = plan(
        &mut engine,
        &snapshot,
        &main,
        request,
        Some(&vllm_template()),
        &pending,
        claimed,
    );
    (result, main)
}

fn refusal(request: &ProposalRequest) -> String {
    match attempt(request, &[]).0 {
        Ok(plan) => panic!("proposal accepted: {}", plan.rendered),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_fitting_proposal_is_planned_with_its_gpu_map() {
    let (result, _) = attempt(&request("gpu-01", 8001, &[2, 3], 2), &[]);
    let plan = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.compose_path, "machines/gpu-01/8001/docker-compose.yml");
    assert!(
        plan.branch.starts_with("catapult/add-gpu-01-8001-"),
        "{}",
        plan.branch
    );
    assert!(plan.gpu_map_before.contains(&"GPU 2: free".to_owned()));
    assert!(
        plan.gpu_map_after
            .contains(&"GPU 2: gpu-01:8001/vllm".to_owned()),
        "{:?}",
        plan.gpu_map_after
    );
    assert!(
        plan.gpu_map_after
            .contains(&"GPU 0: gpu-01:8000/vllm".to_owned())
    );
    assert!(
        plan.findings
            .iter()
            .all(|f| f.severity != topology::Severity::Error)
    );
    assert!(plan.rendered.contains("\"--tensor-parallel-size\""));
    // Same proposal, same branch; another GPU set, another branch.
    let (again, _) = attempt(&request("gpu-01", 8001, &[2, 3], 2), &[]);
    assert_eq!(again.map(|p| p.branch).ok(), Some(plan.branch.clone()));
    let (other, _) = attempt(&request("gpu-01", 8001, &[4, 5], 2), &[]);
    assert_ne!(other.map(|p| p.branch).ok(), Some(plan.branch));
}

#[test]
fn refusals_name_the_holder_and_what_would_fit() {
    let check = |request: ProposalRequest, expected: &[&str]| {
        let message = refusal(&request);
        for part in expected {
            assert!(message.contains(part), "{part:?} not in: {message}");
        }
    };
    check(
        request("gpu-01", 8000, &[2, 3], 2),
        &[
            "port 8000 on gpu-01 is taken by gpu-01:8000 (llama)",
            "8001",
        ],
    );
    check(
        request("gpu-01", 8001, &[1, 2], 2),
        &[
            "GPU 1 is held by gpu-01:8000/vllm",
            "the best free set for TP 2 on gpu-01: GPUs 2, 3 linked within one NUMA node",
            "best elsewhere for TP 2: gpu-02 GPUs 0, 1 port 8000",
        ],
    );
    check(
        request("gpu-01", 8001, &[8, 9], 2),
        &["GPU 8,9 not on gpu-01 (it has 8 GPU(s): 0-7)"],
    );
    check(
        request("gpu-02", 8001, &[0, 1, 2, 3, 4, 5, 6, 7], 8),
        &[
            "tensor_parallel 8 does not fit gpu-02, which has 4 GPU(s)",
            "no other machine has 8 free GPU(s)",
        ],
    );
    check(
        request("gpu-03", 8001, &[0], 1),
        &[
            "machine `gpu-03` is not in the release-config repository",
            "gpu-01",
        ],
    );
    check(
        request("cpu-01", 8001, &[0], 1),
        &["cpu-01` has no inventory"],
    );
    // A host port another deployment publishes, though its directory is another port.
    let mut published = request("gpu-01", 8000, &[2], 1);
    published.port = 8000;
    check(published, &["taken"]);
}

#[test]
fn malformed_requests_list_every_problem() {
    let check = |edit: &dyn Fn(&mut ProposalRequest), expected: &[&str]| {
        let mut bad = request("gpu-01", 8001, &[2, 3], 2);
        edit(&mut bad);
        let message = check_request(&bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        for part in expected {
            assert!(message.contains(part), "{part:?} not in: {message:?}");
        }
    };
    check(&|r| r.machine = "../../etc".to_owned(), &["machine"]);
    check(&|r| r.port = 0, &["port `0`"]);
    check(&|r| r.gpu_ids = vec![2, 2], &["gpu_ids repeats 2"]);
    check(&|r| r.tensor_parallel = 0, &["at least 1"]);
    check(
        &|r| r.tensor_parallel = 4,
        &["tensor_parallel 4 needs 4 GPU(s), gpu_ids names 2"],
    );
    check(&|r| r.model_name = " ".to_owned(), &["model_name is empty"]);
    check(
        &|r| r.model_path = "x".repeat(600),
        &["model_path is 600 bytes"],
    );
    check(
        &|r| {
            r.machine = String::new();
            r.template_name = String::new();
        },
        &["machine", "template_name is empty"],
    );
    assert!(check_request(&request("gpu-01", 8001, &[2, 3], 2)).is_ok());
}

#[test]
fn values_are_rendered_as_data_never_as_yaml() {
    let mut hostile = request("gpu-01", 8001, &[2, 3], 2);
    hostile.model_name = "evil\nservices:\n  pwned: {image: x}\n# \"quoted\"".to_owned();
    hostile.model_path = "/models/a: b\n  privileged: true".to_owned();
    let rendered = render(&vllm_template(), &hostile).unwrap_or_else(|e| panic!("{e}"));
    let (deployment, findings) = read_rendered(&rendered);
    assert!(findings.is_empty(), "{findings:?}\n{rendered}");
    let names: Vec<&str> = deployment.services.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["vllm"], "{rendered}");
    let service = &deployment.services[0];
    assert_eq!(
        service.model_name.as_deref(),
        Some(hostile.model_name.as_str())
    );
    assert_eq!(
        service.model_path.as_deref(),
        Some(hostile.model_path.as_str())
    );
    assert_eq!(gpu_texts(&service.host_gpus), ["2", "3"]);
    assert!(!rendered.contains("\nprivileged"), "{rendered}");
}

#[test]
fn templates_are_strict_and_bounded() {
    let template = |text: &str| TemplateSource {
        name: "custom".to_owned(),
        origin: "repository",
        text: text.to_owned(),
    };
    let check = |text: &str, expected: &str| {
        let message = render(&template(text), &request("gpu-01", 8001, &[2], 1))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
        assert!(message.starts_with("template `custom`"), "{message}");
    };
    check("image: {{ no_such_value }}\n", "undefined");
    check(
        "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
        "fuel",
    );
    check("{% include 'other.j2' %}", "template");
    check("{{ unclosed", "line 1");
}

#[test]
fn a_rendered_file_that_does_not_validate_is_refused() {
    let dir = fleet_dir();
    let snapshot = Snapshot::from_dir(dir.path()).expect("snapshot");
    let mut engine = Engine::new();
    let main = engine.analyze(&snapshot).expect("analyze");
    let mut refusal_of = |text: &str| {
        let template = TemplateSource {
            name: "custom".to_owned(),
            origin: "repository",
            text: text.to_owned(),
        };
        let request = request("gpu-01", 8001, &[2], 1);
        match plan(
            &mut engine,
            &snapshot,
            &main,
            &request,
            Some(&template),
            &[],
            &HeldGpus::new(),
        ) {
            Ok(plan) => panic!("accepted: {}", plan.rendered),
            Err(error) => error.to_string(),
        }
    };
    // One GPU pinned, tensor parallel 4 on the command line: TP001.
    let message = refusal_of(
        "services:\n  x:\n    image: vllm/vllm-openai\n    command: [\"--tensor-parallel-size\", \"4\"]\n    deploy: {resources: {reservations: {devices: [{capabilities: [gpu], device_ids: [{{ gpu_ids[0] | string }}]}]}}}\n    ports: [{{ port ~ \":80\" }}]\n",
    );
    assert!(message.contains("does not validate"), "{message}");
    assert!(message.contains("TP001"), "{message}");
    let message = refusal_of("services: {}\n");
    assert!(message.contains("claims no GPUs"), "{message}");
}

/// Without `gpu_ids` the planner picks the machine's best free set (the plan says which and
/// why) and leaves out what open proposals hold; a replacement may take back what it
/// replaces; when no set is free the refusal offers the best placements elsewhere.
#[test]
fn without_gpu_ids_the_best_free_set_is_taken() {
    let (result, _) = attempt(&request("gpu-01", 8001, &[], 2), &[]);
    let plan = result.unwrap_or_else(|e| panic!("{e}"));
    let chosen = plan.chosen.clone().expect("a chosen set");
    assert_eq!(
        chosen.gpus,
        [2, 3],
        "the lowest free pair inside one NUMA domain"
    );
    assert!(
        chosen.reasons[0].contains("within one NUMA node"),
        "{:?}",
        chosen.reasons
    );
    assert!(
        plan.gpu_map_after
            .contains(&"GPU 2: gpu-01:8001/vllm".to_owned()),
        "{:?}",
        plan.gpu_map_after
    );
    let (named, _) = attempt(&request("gpu-01", 8001, &[2, 3], 2), &[]);
    assert_eq!(
        named.map(|p| p.branch).ok(),
        Some(plan.branch),
        "the same proposal as naming that set"
    );
    let (four, _) = attempt(&request("gpu-01", 8001, &[], 4), &[]);
    assert_eq!(
        four.map(|p| p.chosen.map(|c| c.gpus)).ok().flatten(),
        Some(vec![4, 5, 6, 7]),
        "the domain with four free"
    );

    // A replacement of 8000 (on 0 and 1) may take them back.
    let mut again = replace(8000, &[0, 1]);
    again.gpu_ids.clear();
    let (replaced, _) = attempt(&again, &[]);
    assert_eq!(
        replaced.map(|p| p.chosen.map(|c| c.gpus)).ok().flatten(),
        Some(vec![0, 1])
    );

    // An open proposal on 2 and 3: the next pair.
    let dir = fleet_dir();
    let snapshot = Snapshot::from_dir(dir.path()).expect("snapshot");
    let other = request("gpu-01", 8002, &[2, 3], 2);
    let rendered = render(&vllm_template(), &other).unwrap_or_else(|e| panic!("{e}"));
    let pending = Engine::new()
        .analyze_with(&snapshot, &[ExtraDeployment::new(other.id(), rendered)])
        .expect("analyze the open proposal");
    let (around, _) = attempt(
        &request("gpu-01", 8003, &[], 2),
        &[("pull request #9", &pending)],
    );
    assert_eq!(
        around.map(|p| p.chosen.map(|c| c.gpus)).ok().flatten(),
        Some(vec![4, 5])
    );

    // Asking again while that proposal (of this very deployment) is open chooses the same set,
    // so it is the same proposal, not a clash with itself.
    let (same, _) = attempt(
        &request("gpu-01", 8002, &[], 2),
        &[("pull request #9", &pending)],
    );
    assert_eq!(
        same.map(|p| p.chosen.map(|c| c.gpus)).ok().flatten(),
        Some(vec![2, 3])
    );

    // Live claims of a proposal not yet open (no pull request) are left out too.
    let claimed = HeldGpus::from([(
        "gpu-01".to_owned(),
        [
            (2, "proposal `catapult/x`".to_owned()),
            (3, "proposal `catapult/x`".to_owned()),
        ]
        .into_iter()
        .collect(),
    )]);
    let (young, _) = attempt_claimed(&request("gpu-01", 8003, &[], 2), &[], &claimed);
    assert_eq!(
        young.map(|p| p.chosen.map(|c| c.gpus)).ok().flatten(),
        Some(vec![4, 5])
    );

    // The machine, port and TP are checked before a set is chosen: their refusals say more.
    let message = refusal(&request("gpu-01", 8001, &[], 16));
    assert!(
        message.contains("tensor_parallel 16 does not fit gpu-01, which has 8 GPU(s)"),
        "{message}"
    );
    let message = refusal(&request("cpu-01", 8001, &[], 1));
    assert!(message.contains("`cpu-01` has no inventory"), "{message}");

    // Nothing free for TP 8: refused, saying what is free and what is elsewhere.
    let message = refusal(&request("gpu-01", 8001, &[], 8));
    assert!(
        message.contains(
            "no GPU set for TP 8 can be chosen: gpu-01 has no 8 free GPU(s) (free: 2,3,4,5,6,7)"
        ),
        "{message}"
    );
    assert!(
        message.contains("no other machine has 8 free GPU(s)"),
        "{message}"
    );
}

#[test]
fn open_proposals_count_as_allocated() {
    // An open proposal: port 8002 on GPUs 4 and 5.
    let dir = fleet_dir();
    let snapshot = Snapshot::from_dir(dir.path()).expect("snapshot");
    let other = request("gpu-01", 8002, &[4, 5], 2);
    let rendered = render(&vllm_template(), &other).unwrap_or_else(|e| panic!("{e}"));
    let pending = Engine::new()
        .analyze_with(&snapshot, &[ExtraDeployment::new(other.id(), rendered)])
        .expect("analyze the open proposal");

    let label = "pull request #7 (https://github.invalid/acme/rc/pull/7)";
    let (clash, _) = attempt(&request("gpu-01", 8003, &[5, 6], 2), &[(label, &pending)]);
    let message = clash.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains(label), "{message}");
    assert!(message.contains("pending allocations count"), "{message}");

    let (port_clash, _) = attempt(&request("gpu-01", 8002, &[6, 7], 2), &[(label, &pending)]);
    assert!(port_clash.is_err(), "the open proposal's port is taken");

    // What would fit instead leaves out what the open proposal holds.
    let (held, _) = attempt(&request("gpu-01", 8003, &[0, 1], 2), &[(label, &pending)]);
    let message = held.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains(
            "the best free set for TP 2 on gpu-01: GPUs 2, 3 linked within one NUMA node (NODE) (GPU 4,5 held by open proposals left out)"
        ),
        "{message}"
    );
    let (alone, _) = attempt(&request("gpu-01", 8003, &[0, 1], 2), &[]);
    let message = alone.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("the best free set for TP 2 on gpu-01: GPUs 2, 3 linked"),
        "{message}"
    );

    let (apart, _) = attempt(&request("gpu-01", 8003, &[6, 7], 2), &[(label, &pending)]);
    assert!(apart.is_ok(), "{:?}", apart.err().map(|e| e.to_string()));
    // The same proposal again is not its own conflict.
    let (same, _) = attempt(&other, &[(label, &pending)]);
    assert!(same.is_ok(), "{:?}", same.err().map(|e| e.to_string()));
}

fn with_action(action: ProposalAction, mut request: ProposalRequest) -> ProposalRequest {
    request.action = action;
    request
}

fn replace(port: u16, gpu_ids: &[u32]) -> ProposalRequest {
    let tp = u32::try_from(gpu_ids.len()).unwrap_or(1);
    with_action(
        ProposalAction::Replace,
        request("gpu-01", port, gpu_ids, tp),
    )
}

fn remove(port: u16) -> ProposalRequest {
    ProposalRequest {
        action: ProposalAction::Remove,
        machine: "gpu-01".to_owned(),
        port,
        description: "Drain.".to_owned(),
        ..ProposalRequest::default()
    }
}

#[test]
fn a_replacement_may_reuse_what_it_replaces_and_nothing_else() {
    // Same GPUs: free for the replacement.
    let (kept, _) = attempt(&replace(8000, &[0, 1]), &[]);
    let kept = kept.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(kept.action, ProposalAction::Replace);
    assert!(
        kept.branch.starts_with("catapult/replace-gpu-01-8000-"),
        "{}",
        kept.branch
    );
    let previous = kept.previous.as_ref().expect("the replaced deployment");
    assert_eq!(previous.model.as_deref(), Some("llama"));
    assert_eq!(previous.gpus, ["0", "1"]);
    assert!(previous.compose.contains("v0.8.5"));
    assert_eq!(
        kept.changes,
        [TreeChange::Write {
            path: "machines/gpu-01/8000/docker-compose.yml".to_owned(),
            contents: kept.rendered.clone().into_bytes(),
        }]
    );
    assert!(
        kept.gpu_map_after
            .contains(&"GPU 0: gpu-01:8000/vllm".to_owned())
    );

    // Other GPUs: the old ones are free afterwards.
    let (moved, _) = attempt(&replace(8000, &[4, 5]), &[]);
    let moved = moved.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        moved.gpu_map_after.contains(&"GPU 0: free".to_owned()),
        "{:?}",
        moved.gpu_map_after
    );
    assert!(
        moved
            .gpu_map_after
            .contains(&"GPU 4: gpu-01:8000/vllm".to_owned())
    );
    assert_ne!(moved.branch, kept.branch);

    // A replacement frees its GPUs for itself only: an addition still finds them held.
    let message = refusal(&request("gpu-01", 8001, &[0, 1], 2));
    assert!(
        message.contains("GPU 0 is held by gpu-01:8000"),
        "{message}"
    );
}

#[test]
fn a_removal_deletes_the_directory_and_says_what_stops_serving() {
    let (result, _) = attempt(&remove(8000), &[]);
    let plan = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan.changes,
        [TreeChange::Remove {
            path: "machines/gpu-01/8000".to_owned()
        }]
    );
    assert!(
        plan.branch.starts_with("catapult/remove-gpu-01-8000-"),
        "{}",
        plan.branch
    );
    assert!(plan.rendered.is_empty());
    let previous = plan.previous.as_ref().expect("the removed deployment");
    assert_eq!(previous.files, ["machines/gpu-01/8000/docker-compose.yml"]);
    assert!(previous.other_copies.is_empty(), "the last copy of llama");
    assert!(plan.gpu_map_after.contains(&"GPU 0: free".to_owned()));
    let (again, _) = attempt(&remove(8000), &[]);
    assert_eq!(again.map(|p| p.branch).ok(), Some(plan.branch));
}

#[test]
fn each_action_is_refused_where_it_does_not_apply() {
    let cases = [
        (
            request("gpu-01", 8000, &[2, 3], 2),
            vec![
                "port 8000 on gpu-01 is taken by gpu-01:8000 (llama)",
                "action `replace`",
            ],
        ),
        (
            replace(8005, &[2, 3]),
            vec![
                "no deployment on gpu-01:8005 to replace",
                "gpu-01:8000 (llama)",
                "action `add`",
            ],
        ),
        (
            remove(8005),
            vec!["no deployment on gpu-01:8005 to remove", "action `add`"],
        ),
        (
            replace(8000, &[8, 9]),
            vec![
                "GPU 8,9 not on gpu-01",
                "the best free set for TP 2 on gpu-01: GPUs 0, 1 linked",
            ],
        ),
    ];
    for (request, expected) in cases {
        let message = refusal(&request);
        for part in expected {
            assert!(message.contains(part), "{part:?} not in: {message}");
        }
    }
    // A removal needs no template, model or GPUs; a replacement does.
    assert!(check_request(&remove(8000)).is_ok());
    let mut bare = remove(8000);
    bare.action = ProposalAction::Replace;
    let message = check_request(&bare)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("template_name is empty"), "{message}");
    assert!(
        message.contains("tensor_parallel must be at least 1"),
        "GPUs can be chosen, the TP cannot: {message}"
    );
}

#[test]
fn open_replacements_and_removals_count_as_claims() {
    let dir = fleet_dir();
    let snapshot = Snapshot::from_dir(dir.path()).expect("snapshot");
    let mut engine = Engine::new();
    // An open addition on GPUs 4 and 5, an open removal of 8000.
    let other = request("gpu-01", 8002, &[4, 5], 2);
    let rendered = render(&vllm_template(), &other).unwrap_or_else(|e| panic!("{e}"));
    let adding = engine
        .analyze_with(&snapshot, &[ExtraDeployment::new(other.id(), rendered)])
        .expect("analyze the open addition");
    let removing = engine
        .analyze_changes(&snapshot, &[], &[DeploymentId::new("gpu-01", 8000)])
        .expect("analyze the open removal");
    let label = "pull request #7";

    let (clash, _) = attempt(&replace(8000, &[4, 5]), &[(label, &adding)]);
    let message = clash.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("pull request #7: GPU 4, 5 on gpu-01"),
        "{message}"
    );
    // The open addition's tree holds 8000 as main has it: no claim of its own there.
    let (apart, _) = attempt(&replace(8000, &[2, 3]), &[(label, &adding)]);
    assert!(apart.is_ok(), "{:?}", apart.err().map(|e| e.to_string()));

    let (both, _) = attempt(&replace(8000, &[2, 3]), &[(label, &removing)]);
    let message = both.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("proposes removing gpu-01:8000 too"),
        "{message}"
    );
    // The same removal again is the same proposal.
    let (same, _) = attempt(&remove(8000), &[(label, &removing)]);
    assert!(same.is_ok(), "{:?}", same.err().map(|e| e.to_string()));
    // An open removal frees nothing for others until it is merged.
    let (early, _) = attempt(&request("gpu-01", 8003, &[0, 1], 2), &[(label, &removing)]);
    assert!(
        early.is_err(),
        "GPUs of a deployment whose removal is open are still held"
    );
}

#[test]
fn a_replacement_that_breaks_what_main_has_working_is_refused() {
    let dir = fleet_dir();
    let snapshot = Snapshot::from_dir(dir.path()).expect("snapshot");
    let mut engine = Engine::new();
    let main = engine.analyze(&snapshot).expect("analyze");
    // Two GPUs pinned, tensor parallel 4 on the command line: TP001, which main does not have.
    let template = TemplateSource {
        name: "custom".to_owned(),
        origin: "repository",
        text: "services:\n  x:\n    image: vllm/vllm-openai\n    command: [\"--tensor-parallel-size\", \"4\"]\n    deploy: {resources: {reservations: {devices: [{capabilities: [gpu], device_ids: {{ gpu_ids | map('string') | list }}}]}}}\n    ports: [{{ port ~ \":80\" }}]\n".to_owned(),
    };
    let message = match plan(
        &mut engine,
        &snapshot,
        &main,
        &replace(8000, &[0, 1]),
        Some(&template),
        &[],
        &HeldGpus::new(),
    ) {
        Ok(plan) => panic!("accepted: {}", plan.rendered),
        Err(error) => error.to_string(),
    };
    assert!(
        message.contains("machines/gpu-01/8000/docker-compose.yml does not validate"),
        "{message}"
    );
    assert!(message.contains("TP001"), "{message}");
    // The replacement of a file by itself changes nothing.
    let (first, _) = attempt(&replace(8000, &[0, 1]), &[]);
    let rendered = first.map(|p| p.rendered).unwrap_or_default();
    let same = TemplateSource {
        name: "same".to_owned(),
        origin: "repository",
        text: std::fs::read_to_string(dir.path().join("machines/gpu-01/8000/docker-compose.yml"))
            .expect("read"),
    };
    assert!(!rendered.is_empty());
    let message = match plan(
        &mut engine,
        &snapshot,
        &main,
        &replace(8000, &[0, 1]),
        Some(&same),
        &[],
        &HeldGpus::new(),
    ) {
        Ok(plan) => panic!("accepted: {}", plan.rendered),
        Err(error) => error.to_string(),
    };
    assert!(
        message.contains("the replacement changes nothing"),
        "{message}"
    );
}

#[test]
fn changed_paths_name_the_deployments_they_touch() {
    let changed = changed_deployments([
        "machines/gpu-01/8000/docker-compose.yml",
        "machines/gpu-01/8000/.env",
        "machines/gpu-02/9000/assets/chat.jinja",
        "machines/gpu-01/machine.yaml",
        "machines/gpu-01/notes",
        "README.md",
    ]);
    let expected: Vec<DeploymentId> = vec![
        DeploymentId::new("gpu-01", 8000),
        DeploymentId::new("gpu-02", 9000),
    ];
    assert_eq!(changed.into_iter().collect::<Vec<_>>(), expected);
}

mod rendering_as_data {
    use proptest::prelude::*;

    use super::*;

    const SHIPPED: [(&str, &str); 3] = [
        ("vllm", include_str!("../../../../templates/vllm.yml.j2")),
        (
            "sglang",
            include_str!("../../../../templates/sglang.yml.j2"),
        ),
        ("tgi", include_str!("../../../../templates/tgi.yml.j2")),
    ];

    /// Text an agent (or whoever it quotes) might pass: YAML and Jinja syntax, quotes,
    /// newlines, tabs, non-ASCII, but no leading or trailing blanks (the reader trims labels).
    fn hostile_text() -> impl Strategy<Value = String> {
        proptest::string::string_regex(
            "[a-z0-9/._-]{1,8}([: #{}\\[\\]'\"\\\\|>&*!%@`\\n\\t,é🚀-]{0,3}[a-z0-9/._-]{1,8}){0,4}",
        )
        .unwrap_or_else(|e| panic!("strategy: {e}"))
    }

    /// A repository template that inserts every value bare, the way other
    /// teams write them: no `tojson`, no quotes.
    const BARE: &str = "# {{ description }}
services:
  llm:
    image: vllm/vllm-openai:v0.6.3
    labels:
      catapult.model: {{ model_name }}
      catapult.machine: {{ machine }}
    command:
      - --model
      - {{ model_path }}
      - --served-model-name
      - {{ model_name | safe }}
      - --tensor-parallel-size
      - {{ tensor_parallel }}
    ports:
      - {{ port ~ ':8000' }}
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              capabilities: [gpu]
              device_ids: {{ gpu_ids | map('string') | list }}
";

    fn bare_template(text: &str) -> TemplateSource {
        TemplateSource {
            name: "bare".to_owned(),
            origin: "repository",
            text: text.to_owned(),
        }
    }

    /// Every hazard YAML has for a value, in a bare template: the file keeps
    /// the template's keys, and the value comes back exactly.
    #[test]
    fn bare_templates_cannot_turn_values_into_yaml() {
        for hazard in [
            "llama\n    privileged: true",
            "llama\n  evil:\n    image: x",
            "x\nvolumes: [\"/:/host\"]",
            "a: b",
            "a #b",
            "'quoted'",
            "\"double\"",
            "{{ 7 * 7 }}",
            "- item",
            "&anchor",
            "*alias",
            "!tag x",
            "| block",
            "> folded",
            "? key",
            "[flow]",
            "{flow: map}",
            "%directive",
            "@at",
            "`tick`",
            "line\u{2028}separator",
            "next\u{85}line",
            "tab\there",
            "cost $HOME ${X:?boom} $$",
            "back\\slash",
            "~",
            "null",
            "true",
            "08",
            "",
        ] {
            let mut request = request("gpu-01", 8001, &[1, 2], 2);
            request.model_name = hazard.to_owned();
            request.model_path = format!("/models/{hazard}");
            request.description = format!("note\nservices: {{}}\n{hazard}");
            let rendered = render(&bare_template(BARE), &request)
                .unwrap_or_else(|e| panic!("{hazard:?}: {e}"));
            let (deployment, findings) = read_rendered(&rendered);
            let reading: Vec<_> = findings
                .iter()
                .filter(|f| matches!(f.rule.code(), "RC001" | "RC002" | "RC003" | "RC005"))
                .collect();
            assert!(reading.is_empty(), "{hazard:?}: {reading:?}\n{rendered}");
            let root = topology::yaml::parse(&rendered, &Limits::default()).expect("yaml");
            let service = root
                .get("services")
                .and_then(|s| s.get("llm"))
                .expect("llm");
            let keys: Vec<&str> = service
                .as_map()
                .expect("map")
                .iter()
                .filter_map(|(k, _)| k.as_str())
                .collect();
            assert_eq!(
                keys,
                ["image", "labels", "command", "ports", "deploy"],
                "{hazard:?}\n{rendered}"
            );
            assert_eq!(deployment.services.len(), 1, "{hazard:?}\n{rendered}");
            let llm = &deployment.services[0];
            // The label wins the name; the trimmed form is what the reader keeps.
            assert_eq!(llm.model_name.as_deref(), Some(hazard.trim()), "{rendered}");
            assert_eq!(
                llm.model_path.as_deref(),
                Some(format!("/models/{hazard}").as_str()),
                "{rendered}"
            );
            assert_eq!(gpu_texts(&llm.host_gpus), ["1", "2"], "{rendered}");
            assert_eq!(llm.tensor_parallel, 2, "{rendered}");
        }
    }

    /// Inside quotes a value is escaped for them, and comes back exactly.
    #[test]
    fn values_inside_quotes_are_escaped_for_them() {
        for hazard in [
            "plain",
            "a\"b",
            "it's",
            "x\n  privileged: true",
            "$HOME",
            "back\\slash",
            "tab\t",
        ] {
            let mut request = request("gpu-01", 8001, &[1], 1);
            request.model_name = hazard.to_owned();
            let text = "services:\n  llm:\n    image: x\n    labels:\n      catapult.model: \"model {{ model_name }}\"\n      note: 'port {{ port }} of {{ machine }}'\n    ports: [\"{{ port }}:8000\"]\n";
            let rendered = render(&bare_template(text), &request)
                .unwrap_or_else(|e| panic!("{hazard:?}: {e}"));
            let (deployment, findings) = read_rendered(&rendered);
            assert!(
                findings
                    .iter()
                    .all(|f| f.severity != topology::Severity::Error),
                "{hazard:?}: {findings:?}\n{rendered}"
            );
            let llm = &deployment.services[0];
            assert_eq!(
                llm.model_name.as_deref(),
                Some(format!("model {hazard}").trim()),
                "{rendered}"
            );
            assert_eq!(llm.ports.first().map(|p| p.host), Some(8001), "{rendered}");
        }
        // A line break cannot be written inside single quotes.
        let mut request = request("gpu-01", 8001, &[1], 1);
        request.model_name = "two\nlines".to_owned();
        let error = render(&bare_template("a: '{{ model_name }}'\n"), &request)
            .expect_err("refused")
            .to_string();
        assert!(error.contains("inside single quotes"), "{error}");
    }

    /// Where a value would be part of a longer plain scalar or of a block
    /// scalar, nothing could escape it: refused, naming the line.
    #[test]
    fn values_inside_plain_text_or_blocks_are_refused() {
        let request = request("gpu-01", 8001, &[1], 1);
        for (text, line) in [
            (
                "services:\n  llm:\n    image: vllm/vllm-openai:{{ model_name }}\n",
                3,
            ),
            (
                "services:\n  llm:\n    image: x\n    command: |\n      vllm serve {{ model_path }}\n",
                5,
            ),
        ] {
            let error = render(&bare_template(text), &request)
                .expect_err(text)
                .to_string();
            assert!(error.contains(&format!("line {line}: a `{{{{ }}}}` expression inside a longer plain value or a block scalar")), "{text}: {error}");
        }
        // A mapping is not a value a template may insert.
        let error = render(&bare_template("a: {{ {'k': 1} }}\n"), &request)
            .expect_err("map")
            .to_string();
        assert!(
            error.contains("cannot be written as one YAML value"),
            "{error}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Generated text in a bare template stays the value it was.
        #[test]
        fn bare_templates_keep_generated_values(model_name in hostile_text(), model_path in hostile_text()) {
            let mut request = request("gpu-01", 8001, &[3], 1);
            request.model_name = model_name;
            request.model_path = model_path;
            let rendered = render(&bare_template(BARE), &request).unwrap_or_else(|e| panic!("{e}"));
            let (deployment, findings) = read_rendered(&rendered);
            prop_assert!(findings.iter().all(|f| f.severity != topology::Severity::Error), "{findings:?}\n{rendered}");
            let service = &deployment.services[0];
            prop_assert_eq!(service.model_name.as_deref(), Some(request.model_name.as_str()));
            prop_assert_eq!(service.model_path.as_deref(), Some(request.model_path.as_str()));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the model name and path hold, every shipped template renders one service
        /// that carries them unchanged and pins exactly the GPUs asked for.
        #[test]
        fn shipped_templates_keep_every_value_a_value(
            model_name in hostile_text(),
            model_path in hostile_text(),
            first in 0u32..4,
        ) {
            let mut request = request("gpu-01", 8001, &[first, first + 4], 2);
            request.model_name = model_name;
            request.model_path = model_path;
            for (name, text) in SHIPPED {
                let template = TemplateSource {
                    name: name.to_owned(),
                    origin: "shipped",
                    text: text.to_owned(),
                };
                let rendered = render(&template, &request)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let (deployment, findings) = read_rendered(&rendered);
                let errors: Vec<_> = findings
                    .iter()
                    .filter(|f| f.severity == topology::Severity::Error)
                    .collect();
                prop_assert!(errors.is_empty(), "{name}: {errors:?}\n{rendered}");
                prop_assert_eq!(deployment.services.len(), 1, "{}: {}", name, rendered);
                let service = &deployment.services[0];
                prop_assert_eq!(service.model_name.as_deref(), Some(request.model_name.as_str()));
                prop_assert_eq!(service.model_path.as_deref(), Some(request.model_path.as_str()));
                let pinned = [first.to_string(), (first + 4).to_string()];
                let pinned: Vec<&str> = pinned.iter().map(String::as_str).collect();
                prop_assert_eq!(gpu_texts(&service.host_gpus), pinned);
                prop_assert_eq!(service.tensor_parallel, 2);
            }
        }
    }
}

/// Claims between two agents with their own mirrors of one remote: a young claim refuses and
/// everything taken is given back; the same branch joins; an open proposal refuses whatever its
/// age; a closed one, or one past the grace period, is taken over or swept.
#[test]
fn claims_refuse_join_and_take_over_as_the_protocol_says() {
    use std::time::Duration;

    use topology::proposal::{ClaimHolder, ClaimRef, Claims, OpenProposal, Taken, claim_refs};
    use topology::repo::{Author, GitAuth, Repository};

    let upstream = crate::support::FixtureRepo::init_bare();
    upstream.commit_files(
        "main",
        &[("machines/gpu-01/machine.yaml", "gpus: 8\n")],
        "base",
    );
    let url = upstream.url();
    let auth = GitAuth::anonymous();
    let author = Author {
        name: "catapult".to_owned(),
        email: "catapult@example.invalid".to_owned(),
    };
    let (cache_a, cache_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let a = Repository::mirror(&url, cache_a.path(), &auth).unwrap();
    let b = Repository::mirror(&url, cache_b.path(), &auth).unwrap();
    let claims = |repository, open, grace, closed| Claims {
        repository,
        remote_url: &url,
        auth: &auth,
        open,
        grace,
        closed,
    };
    let minute = Duration::from_secs(60);
    let claimed = |name: &str| upstream.ref_target(&format!("refs/catapult/claims/gpu-01/{name}"));

    let main_a = a.resolve("main").unwrap().id;
    let proposal_a = a.commit_on(main_a, "proposal a", &author).unwrap();
    let agent_a = claims(&a, &[], minute, &[]);
    let claim_a = agent_a
        .claim_commit(proposal_a, "catapult/a", &author)
        .unwrap();
    let refs_a = claim_refs("gpu-01", 8001, &[2, 1]);
    assert_eq!(
        refs_a.iter().map(ClaimRef::ref_name).collect::<Vec<_>>(),
        [
            "refs/catapult/claims/gpu-01/port-8001",
            "refs/catapult/claims/gpu-01/gpu-1",
            "refs/catapult/claims/gpu-01/gpu-2",
        ],
        "port first, then GPUs in ascending order"
    );
    let taken = agent_a
        .take(&refs_a, "catapult/a", claim_a, proposal_a)
        .unwrap();
    assert!(matches!(taken, Taken::All { .. }), "{taken:?}");

    // What a planner reading B's mirror must not offer: A's claims while young, or while
    // its proposal is open whatever its age; nothing once they are stale.
    b.fetch(&auth).unwrap();
    let alive = |agent: &Claims<'_>| -> Vec<String> {
        let mut seen: Vec<String> = agent
            .alive()
            .unwrap()
            .iter()
            .map(|(claim, holder)| match holder {
                ClaimHolder::Young { branch, .. } => format!("{claim}: young {branch}"),
                other => format!("{claim}: {other}"),
            })
            .collect();
        seen.sort();
        seen
    };
    assert_eq!(
        alive(&claims(&b, &[], minute, &[])),
        [
            "GPU 1 of gpu-01: young catapult/a",
            "GPU 2 of gpu-01: young catapult/a",
            "port 8001 of gpu-01: young catapult/a",
        ]
    );
    assert_eq!(
        alive(&claims(&b, &[], Duration::ZERO, &[])),
        Vec::<String>::new()
    );
    let open_a = [OpenProposal {
        label: "pull request #6".to_owned(),
        branch: "catapult/a".to_owned(),
        head: proposal_a,
    }];
    assert_eq!(
        alive(&claims(&b, &open_a, Duration::ZERO, &[])),
        [
            "GPU 1 of gpu-01: pull request #6",
            "GPU 2 of gpu-01: pull request #6",
            "port 8001 of gpu-01: pull request #6",
        ]
    );

    // B wants GPU 2 too: refused by a young claim, its port claim given back.
    let main_b = b.resolve("main").unwrap().id;
    let proposal_b = b.commit_on(main_b, "proposal b", &author).unwrap();
    let refs_b = claim_refs("gpu-01", 8002, &[2, 3]);
    let agent_b = claims(&b, &[], minute, &[]);
    let claim_b = agent_b
        .claim_commit(proposal_b, "catapult/b", &author)
        .unwrap();
    let Taken::Refused { claim, holder } = agent_b
        .take(&refs_b, "catapult/b", claim_b, proposal_b)
        .unwrap()
    else {
        panic!("GPU 2 is held");
    };
    assert_eq!(claim.to_string(), "GPU 2 of gpu-01");
    assert!(
        matches!(&holder, ClaimHolder::Young { branch, grace_secs: 60, .. } if branch == "catapult/a"),
        "{holder:?}"
    );
    let named = holder.to_string();
    assert!(
        named.contains("`catapult/a`") && named.contains("not yet a pull request"),
        "{named}"
    );
    assert_eq!(holder.young_branch(), Some("catapult/a"));
    assert_eq!(
        claimed("port-8002"),
        None,
        "nothing of a refused proposal is left"
    );
    assert_eq!(claimed("gpu-3"), None);

    // The same proposal from B: it joins A's commit.
    let same = b.commit_on(main_b, "proposal a, by b", &author).unwrap();
    let same_claim = agent_b.claim_commit(same, "catapult/a", &author).unwrap();
    let joined = agent_b
        .take(&refs_a, "catapult/a", same_claim, same)
        .unwrap();
    let Taken::All {
        claim, proposal, ..
    } = joined
    else {
        panic!("joined: {joined:?}");
    };
    assert_eq!((claim, proposal), (claim_a, proposal_a));

    // Open as a pull request: refused whatever its age, with its name.
    // (By its branch: a human pushed a fix onto it, so its head moved on.)
    let open = [OpenProposal {
        label: "pull request #7".to_owned(),
        branch: "catapult/a".to_owned(),
        head: main_a,
    }];
    let old = claims(&b, &open, Duration::ZERO, &[]);
    let refused = old
        .take(&refs_b, "catapult/b", claim_b, proposal_b)
        .unwrap();
    assert!(
        matches!(&refused, Taken::Refused { holder: ClaimHolder::Open { label }, .. } if label == "pull request #7"),
        "{refused:?}"
    );

    // Its pull request closed: taken over, compare-and-swap.
    let closed = ["catapult/a".to_owned()];
    let after_close = claims(&b, &[], minute, &closed);
    let Taken::All { taken_over, .. } = after_close
        .take(&refs_b, "catapult/b", claim_b, proposal_b)
        .unwrap()
    else {
        panic!("a closed proposal's claim is stale");
    };
    assert_eq!(taken_over, ["refs/catapult/claims/gpu-01/gpu-2"]);
    assert_eq!(
        claimed("gpu-2"),
        Some(git2::Oid::from_str(&claim_b.to_string()).unwrap())
    );

    // Past the grace period, A's other claims are swept; B's (open) stay.
    b.fetch(&auth).unwrap();
    let open_b = [OpenProposal {
        label: "pull request #8".to_owned(),
        branch: "catapult/b".to_owned(),
        head: proposal_b,
    }];
    let sweeper = claims(&b, &open_b, Duration::ZERO, &[]);
    let mut swept = sweeper.sweep("gpu-01").unwrap();
    swept.sort();
    assert_eq!(
        swept,
        [
            "refs/catapult/claims/gpu-01/gpu-1",
            "refs/catapult/claims/gpu-01/port-8001",
        ]
    );
    for kept in ["port-8002", "gpu-2", "gpu-3"] {
        assert!(claimed(kept).is_some(), "{kept}");
    }
}

/// A claim's ref name is made and read by one type: every claim reads back as itself,
/// and a ref of another shape is no claim (a sweep or a refusal never misnames it).
#[test]
fn claim_refs_read_back_as_the_claims_they_name() {
    use topology::proposal::{ClaimRef, Claimed, claim_refs};
    for claim in claim_refs("gpu-01", 8001, &[0, 7, 4_294_967_295]) {
        assert_eq!(ClaimRef::parse(&claim.ref_name()), Some(claim.clone()));
    }
    let cases: &[(&str, Option<(&str, Claimed)>)] = &[
        ("refs/catapult/claims/a/gpu-3", Some(("a", Claimed::Gpu(3)))),
        (
            "refs/catapult/claims/a/port-8000",
            Some(("a", Claimed::Port(8000))),
        ),
        ("refs/catapult/claims/a/port-70000", None),
        ("refs/catapult/claims/a/gpu-", None),
        ("refs/catapult/claims/a/gpu-+1", None),
        ("refs/catapult/claims/a/lock", None),
        ("refs/catapult/claims//gpu-1", None),
        ("refs/heads/a/gpu-1", None),
    ];
    for (name, expected) in cases {
        let expected = expected.map(|(machine, claimed)| ClaimRef {
            machine: machine.to_owned(),
            claimed,
        });
        assert_eq!(ClaimRef::parse(name), expected, "{name}");
    }
    let gpu = ClaimRef::parse("refs/catapult/claims/gpu-01/gpu-5").unwrap();
    assert_eq!(gpu.to_string(), "GPU 5 of gpu-01");
}

/// The pinned GPU ids of a service as plain strings, for comparison.
fn gpu_texts(ids: &[std::sync::Arc<str>]) -> Vec<&str> {
    ids.iter().map(|id| &**id).collect()
}
