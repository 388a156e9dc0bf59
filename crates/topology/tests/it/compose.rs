//! Reading compose files (contract section 2): every GPU source, CUDA
//! visibility, ports, command forms, parallelism spellings, model identity,
//! interpolation. Data-driven: `service(yaml)` / `services(yaml, env)` give a
//! one-line summary per service, `check(yaml, env, expected)` the findings.

use topology::compose::{self, DeploymentId, GpuClaim, Service};
use topology::interpolate::Vars;
use topology::yaml::Limits;

const PATH: &str = "compose.yml";

fn read(yaml: &str, env: Option<&str>) -> (Vec<Service>, Vec<topology::Finding>) {
    let (deployment, findings) = compose::read_deployment(
        DeploymentId::new("m1", 8000),
        PATH,
        yaml,
        env.map(|e| (".env", e)),
        &Limits::default(),
    );
    (deployment.services, findings)
}

/// `name: <claim> host=<ids> tp/pp/dp [server] [model] [ports]`.
fn summary(service: &Service) -> String {
    let claim = match &service.gpus {
        GpuClaim::None => "none".to_owned(),
        GpuClaim::Pinned(refs) => {
            let refs: Vec<String> = refs
                .iter()
                .map(|r| format!("{}@{}:{}", r.id, r.pos.line, r.pos.column))
                .collect();
            format!("pinned[{}]", refs.join(","))
        }
        GpuClaim::Count(n) => format!("count {n}"),
        GpuClaim::All => "all".to_owned(),
    };
    let mut out = format!(
        "{}: {claim} host={} tp{} pp{} dp{}",
        service.name,
        service.host_gpus.join(","),
        service.tensor_parallel,
        service.pipeline_parallel,
        service.data_parallel
    );
    if let Some(server) = service.server {
        out.push_str(&format!(" {server}"));
    }
    if let Some(model) = &service.model_name {
        out.push_str(&format!(" model={model}"));
    }
    if service.model_path != service.model_name
        && let Some(path) = &service.model_path
    {
        out.push_str(&format!(" path={path}"));
    }
    if !service.ports.is_empty() {
        let ports: Vec<String> = service
            .ports
            .iter()
            .map(|p| {
                let ip = p
                    .host_ip
                    .as_deref()
                    .map(|ip| format!("{ip}/"))
                    .unwrap_or_default();
                let container = p.container.map(|c| format!("->{c}")).unwrap_or_default();
                let proto = if &*p.protocol == "tcp" {
                    String::new()
                } else {
                    format!("/{}", p.protocol)
                };
                format!("{ip}{}{container}{proto}@{}", p.host, p.pos.line)
            })
            .collect();
        out.push_str(&format!(" ports={}", ports.join(",")));
    }
    out
}

fn finding_line(f: &topology::Finding) -> String {
    format!("{} {} {}", f.rule, f.severity, f.location)
}

/// Compares the services' summaries and the findings (rule severity location).
fn check(yaml: &str, env: Option<&str>, expected_services: &[&str], expected_findings: &[&str]) {
    let (services, findings) = read(yaml, env);
    let got: Vec<String> = services.iter().map(summary).collect();
    let got_findings: Vec<String> = findings.iter().map(finding_line).collect();
    assert_eq!(
        (got.clone(), got_findings.clone()),
        (
            expected_services
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>(),
            expected_findings
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>()
        ),
        "\nyaml:\n{yaml}\nfindings: {findings:#?}"
    );
}

/// One service read without findings.
fn service(yaml: &str, expected: &str) {
    check(yaml, None, &[expected], &[]);
}

// --- GPU sources (2.1) -------------------------------------------------------

#[test]
fn device_request_with_device_ids() {
    service(
        "services:
  llm:
    image: vllm/vllm-openai
    deploy:
      resources:
        reservations:
          devices:
            - driver: nvidia
              device_ids: ['0', '03']
              capabilities: [gpu]
",
        "llm: pinned[0@9:28,3@9:33] host=0,3 tp1 pp1 dp1 vllm",
    );
}

#[test]
fn device_request_forms() {
    let wrap = |device: &str| {
        format!(
            "services:\n  s:\n    deploy:\n      resources:\n        reservations:\n          devices:\n            - {device}\n"
        )
    };
    for (device, expected) in [
        (
            "{capabilities: [gpu], count: 2}",
            "s: count 2 host= tp1 pp1 dp1",
        ),
        (
            "{capabilities: [gpu], count: all}",
            "s: all host= tp1 pp1 dp1",
        ),
        (
            "{capabilities: [gpu], count: -1}",
            "s: all host= tp1 pp1 dp1",
        ),
        // Neither count nor device_ids: the compose-spec default, all.
        ("{capabilities: [gpu]}", "s: all host= tp1 pp1 dp1"),
        // The NVIDIA driver claims GPUs whatever the capabilities say.
        (
            "{driver: nvidia, count: 1, capabilities: [utility]}",
            "s: count 1 host= tp1 pp1 dp1",
        ),
        (
            "{driver: nvidia, device_ids: ['1', '2'], capabilities: [compute]}",
            "s: pinned[1@7:45,2@7:50] host=1,2 tp1 pp1 dp1",
        ),
        // Not a GPU request.
        (
            "{capabilities: [compute], count: 2}",
            "s: none host= tp1 pp1 dp1",
        ),
        (
            "{driver: amd, count: 2, capabilities: [gpu2]}",
            "s: none host= tp1 pp1 dp1",
        ),
    ] {
        service(&wrap(device), expected);
    }
}

#[test]
fn service_level_gpus() {
    service(
        "services:\n  s:\n    gpus: all\n",
        "s: all host= tp1 pp1 dp1",
    );
    service(
        "services:\n  s:\n    gpus:\n      - device_ids: ['2']\n",
        "s: pinned[2@4:22] host=2 tp1 pp1 dp1",
    );
    service(
        "services:\n  s:\n    gpus: [{count: 4}]\n",
        "s: count 4 host= tp1 pp1 dp1",
    );
}

#[test]
fn device_requests_take_precedence_over_gpus_and_runtime() {
    service(
        "services:
  s:
    runtime: nvidia
    gpus: all
    environment: [NVIDIA_VISIBLE_DEVICES=5]
    deploy: {resources: {reservations: {devices: [{capabilities: [gpu], device_ids: ['1']}]}}}
",
        "s: pinned[1@6:86] host=1 tp1 pp1 dp1",
    );
}

#[test]
fn nvidia_runtime() {
    service(
        "services:\n  s:\n    runtime: nvidia\n    environment:\n      NVIDIA_VISIBLE_DEVICES: 2,3\n",
        "s: pinned[2@5:31,3@5:31] host=2,3 tp1 pp1 dp1",
    );
    service(
        "services:\n  s:\n    runtime: nvidia\n    environment:\n      - NVIDIA_VISIBLE_DEVICES=4\n",
        "s: pinned[4@5:9] host=4 tp1 pp1 dp1",
    );
    service(
        "services:\n  s:\n    runtime: nvidia\n    environment: {NVIDIA_VISIBLE_DEVICES: all}\n",
        "s: all host= tp1 pp1 dp1",
    );
    service(
        "services:\n  s:\n    runtime: nvidia\n",
        "s: all host= tp1 pp1 dp1",
    );
    service(
        "services:\n  s:\n    runtime: nvidia\n    environment: {NVIDIA_VISIBLE_DEVICES: none}\n",
        "s: none host= tp1 pp1 dp1",
    );
    // Without the nvidia runtime the variable pins nothing.
    service(
        "services:\n  s:\n    environment: {NVIDIA_VISIBLE_DEVICES: '1'}\n",
        "s: none host= tp1 pp1 dp1",
    );
}

#[test]
fn cuda_visible_devices_with_every_gpu_visible_selects_host_gpus() {
    check(
        "services:
  s:
    runtime: nvidia
    environment:
      CUDA_VISIBLE_DEVICES: 6,7
      CUDA_DEVICE_ORDER: PCI_BUS_ID
",
        None,
        &["s: pinned[6@5:29,7@5:29] host=6,7 tp1 pp1 dp1"],
        &[],
    );
    // Without PCI_BUS_ID order: GPU006.
    check(
        "services:\n  s:\n    gpus: all\n    environment: [CUDA_VISIBLE_DEVICES=1]\n",
        None,
        &["s: pinned[1@4:19] host=1 tp1 pp1 dp1"],
        &["GPU006 warning compose.yml:4:19"],
    );
    // UUIDs are unambiguous: no GPU006.
    check(
        "services:\n  s:\n    gpus: all\n    environment: [CUDA_VISIBLE_DEVICES=GPU-aa]\n",
        None,
        &["s: pinned[GPU-aa@4:19] host=GPU-aa tp1 pp1 dp1"],
        &[],
    );
}

#[test]
fn cuda_visible_devices_with_pinned_gpus_is_container_local() {
    let yaml = |cvd: &str| {
        format!(
            "services:
  s:
    environment:
      CUDA_VISIBLE_DEVICES: '{cvd}'
    deploy: {{resources: {{reservations: {{devices: [{{capabilities: [gpu], device_ids: ['4', '5']}}]}}}}}}
"
        )
    };
    // A permutation of 0..n-1 reorders the held GPUs.
    check(
        &yaml("1,0"),
        None,
        &["s: pinned[4@5:86,5@5:91] host=5,4 tp1 pp1 dp1"],
        &[],
    );
    check(
        &yaml("0,1"),
        None,
        &["s: pinned[4@5:86,5@5:91] host=4,5 tp1 pp1 dp1"],
        &[],
    );
    // Out of range, host ids given, or a dropped GPU: GPU004 at the variable.
    check(
        &yaml("2"),
        None,
        &["s: pinned[4@5:86,5@5:91] host=4,5 tp1 pp1 dp1"],
        &["GPU004 error compose.yml:4:29"],
    );
    check(
        &yaml("4,5"),
        None,
        &["s: pinned[4@5:86,5@5:91] host=4,5 tp1 pp1 dp1"],
        &["GPU004 error compose.yml:4:29"],
    );
    check(
        &yaml("0"),
        None,
        &["s: pinned[4@5:86,5@5:91] host=4,5 tp1 pp1 dp1"],
        &["GPU004 error compose.yml:4:29"],
    );
}

#[test]
fn cuda_visible_devices_with_count_is_container_local() {
    let yaml = |cvd: &str| {
        format!(
            "services:\n  s:\n    environment: {{CUDA_VISIBLE_DEVICES: '{cvd}'}}\n    gpus: [{{count: 2}}]\n"
        )
    };
    check(&yaml("0,1"), None, &["s: count 2 host= tp1 pp1 dp1"], &[]);
    check(
        &yaml("2"),
        None,
        &["s: count 2 host= tp1 pp1 dp1"],
        &["GPU004 error compose.yml:3:41"],
    );
}

#[test]
fn packed_device_ids_are_gpu005() {
    check(
        "services:\n  s:\n    gpus:\n      - device_ids: ['0,1,2,3']\n",
        None,
        &["s: pinned[0@4:22,1@4:22,2@4:22,3@4:22] host=0,1,2,3 tp1 pp1 dp1"],
        &["GPU005 error compose.yml:4:22"],
    );
    // One id per entry is fine.
    service(
        "services:\n  s:\n    gpus:\n      - device_ids: ['0', '1']\n",
        "s: pinned[0@4:22,1@4:27] host=0,1 tp1 pp1 dp1",
    );
}

#[test]
fn wrong_types_are_rc002_at_the_node() {
    check(
        "services:\n  s:\n    gpus:\n      - device_ids: '0'\n",
        None,
        &["s: none host= tp1 pp1 dp1"],
        &["RC002 error compose.yml:4:21"],
    );
    check(
        "services:\n  s:\n    gpus:\n      - {count: 2, device_ids: ['1']}\n",
        None,
        &["s: pinned[1@4:33] host=1 tp1 pp1 dp1"],
        &["RC002 error compose.yml:4:17"],
    );
    check(
        "services:\n  s:\n    gpus:\n      - {count: two}\n",
        None,
        &["s: none host= tp1 pp1 dp1"],
        &["RC002 error compose.yml:4:17"],
    );
    check(
        "services:\n  s:\n    deploy:\n      resources:\n        reservations:\n          devices: {capabilities: [gpu]}\n",
        None,
        &["s: none host= tp1 pp1 dp1"],
        &["RC002 error compose.yml:6:20"],
    );
    check(
        "services:\n  s: [1]\n",
        None,
        &[],
        &["RC002 error compose.yml:2:6"],
    );
    check(
        "services: [a]\n",
        None,
        &[],
        &["RC002 error compose.yml:1:11"],
    );
    check("- a\n", None, &[], &["RC002 error compose.yml:1:1"]);
    check(
        "services:\n  s:\n    environment: 3\n    ports: {a: 1}\n    command: {a: b}\n",
        None,
        &["s: none host= tp1 pp1 dp1"],
        &[
            "RC002 error compose.yml:3:18",
            "RC002 error compose.yml:5:14",
            "RC002 error compose.yml:4:12",
        ],
    );
}

#[test]
fn unparsable_yaml_is_rc001() {
    check(
        "services:\n  s: [\n",
        None,
        &[],
        &["RC001 error compose.yml:3:1"],
    );
}

#[test]
fn x_fields_anchors_and_merge_keys() {
    service(
        "x-gpu: &gpu
  deploy:
    resources:
      reservations:
        devices:
          - {capabilities: [gpu], device_ids: ['${GPU_UNSET_IN_X:-0}']}
x-base: &base
  image: vllm/vllm-openai
  gpus: [{device_ids: ['7']}]
services:
  s:
    <<: *base
    command: --model m
",
        "s: pinned[7@9:24] host=7 tp1 pp1 dp1 vllm model=m",
    );
}

// --- ports ---------------------------------------------------------------------

#[test]
fn ports_short_and_long() {
    service(
        "services:
  s:
    ports:
      - 8000:8000
      - \"127.0.0.1:8001:8000\"
      - 9000-9001:9000-9001
      - 5000/udp
      - '6000:6000/udp'
      - '[::1]:7000:7000'
      - 4000
      - target: 80
        published: 8080
        host_ip: 10.0.0.1
      - {target: 81, published: '8082'}
      - {target: 82}
",
        "s: none host= tp1 pp1 dp1 ports=8000->8000@4,127.0.0.1/8001->8000@5,9000->9000@6,9001->9001@6,6000->6000/udp@8,::1/7000->7000@9,10.0.0.1/8080->80@11,8082->81@14",
    );
}

#[test]
fn bad_ports_are_rc002() {
    check(
        "services:\n  s:\n    ports: ['x:80', '8000:8000']\n",
        None,
        &["s: none host= tp1 pp1 dp1 ports=8000->8000@3"],
        &["RC002 error compose.yml:3:13"],
    );
}

#[test]
fn network_mode_host_uses_the_port_flag() {
    service(
        "services:\n  s:\n    network_mode: host\n    ports: ['1:1']\n    command: vllm serve m --port 8123\n",
        "s: none host= tp1 pp1 dp1 vllm model=m ports=8123@5",
    );
    // Without --port: the server's default.
    service(
        "services:\n  s:\n    image: lmsysorg/sglang\n    network_mode: host\n",
        "s: none host= tp1 pp1 dp1 sglang ports=30000@4",
    );
}

// --- command and parallelism (2.2) -----------------------------------------------

#[test]
fn parallelism_spellings() {
    for (command, expected) in [
        ("vllm serve m --tensor-parallel-size 4", "tp4 pp1 dp1 vllm"),
        (
            "vllm serve m --tensor-parallel-size=4 --pipeline-parallel-size=2",
            "tp4 pp2 dp1 vllm",
        ),
        ("vllm serve m -tp 2 -pp 2 -dp 2", "tp2 pp2 dp2 vllm"),
        ("vllm serve m --tensor_parallel_size 8", "tp8 pp1 dp1 vllm"),
        ("vllm serve m --data-parallel-size 3", "tp1 pp1 dp3 vllm"),
        (
            "python3 -m sglang.launch_server --model-path m --tp-size 2 --dp-size 2",
            "tp2 pp1 dp2 sglang",
        ),
        (
            "python3 -m sglang.launch_server --model-path m --tp 4 --dp 2 --pp-size 2",
            "tp4 pp2 dp2 sglang",
        ),
        (
            "text-generation-launcher --model-id m --num-shard 2",
            "tp2 pp1 dp1 tgi",
        ),
        (
            "trtllm-serve m --tp_size 4 --pp_size 2",
            "tp4 pp2 dp1 trtllm",
        ),
    ] {
        let yaml = format!("services:\n  s:\n    command: {command}\n");
        let (services, findings) = read(&yaml, None);
        assert!(findings.is_empty(), "{command}: {findings:?}");
        let got = summary(&services[0]);
        assert!(got.contains(expected), "{command}: {got}");
    }
}

#[test]
fn command_list_entrypoint_and_shell_scripts() {
    service(
        "services:
  s:
    image: vllm/vllm-openai
    entrypoint: [python3, -m, vllm.entrypoints.openai.api_server]
    command: [--model, /models/llama, --tensor-parallel-size, '2']
    gpus: [{device_ids: ['0', '1']}]
",
        "s: pinned[0@6:26,1@6:31] host=0,1 tp2 pp1 dp1 vllm model=/models/llama",
    );
    service(
        "services:
  s:
    command: [\"/bin/sh\", \"-c\", \"pip install x && exec vllm serve org/m --tensor-parallel-size 2\"]
",
        "s: none host= tp2 pp1 dp1 vllm model=org/m",
    );
    service(
        "services:\n  s:\n    command: vllm serve 'my model' --tp 2 -pp=2\n",
        "s: none host= tp2 pp2 dp1 vllm model=my model",
    );
}

#[test]
fn tgi_num_shard_from_env_and_labels_win() {
    service(
        "services:\n  s:\n    image: ghcr.io/huggingface/text-generation-inference\n    environment: {NUM_SHARD: '4', MODEL_ID: org/m}\n",
        "s: none host= tp4 pp1 dp1 tgi model=org/m",
    );
    // The command flag wins over NUM_SHARD, labels win over everything.
    service(
        "services:
  s:
    command: text-generation-launcher --num-shard 2
    environment: [NUM_SHARD=4]
    labels: {catapult.pipeline_parallel: '3'}
",
        "s: none host= tp2 pp3 dp1 tgi",
    );
    service(
        "services:
  s:
    command: vllm serve m --tensor-parallel-size 2
    labels: [catapult.tensor_parallel=4, catapult.data_parallel=2]
",
        "s: none host= tp4 pp1 dp2 vllm model=m",
    );
}

#[test]
fn flag_values_are_located_in_command_strings() {
    let (services, _) = read(
        "services:
  s:
    command: >
      vllm serve org/m
      --tensor-parallel-size 4
      --gpu-memory-utilization=0.5
",
        None,
    );
    let s = &services[0];
    let tp = s.located(s.tensor_parallel_at).map(|at| at.to_string());
    assert_eq!(tp.as_deref(), Some("compose.yml:5:30"));
    let mem = s.located(s.memory_utilization_at).map(|at| at.to_string());
    assert_eq!(mem.as_deref(), Some("compose.yml:6:32"));
    assert_eq!(s.memory_utilization, 0.5);
}

#[test]
fn bad_parallelism_values_are_rc002() {
    check(
        "services:\n  s:\n    command: [vllm, serve, m, --tensor-parallel-size, four]\n",
        None,
        &["s: none host= tp1 pp1 dp1 vllm model=m"],
        &["RC002 error compose.yml:3:55"],
    );
    check(
        "services:\n  s:\n    labels: {catapult.tensor_parallel: '0'}\n",
        None,
        &["s: none host= tp1 pp1 dp1"],
        &["RC002 error compose.yml:3:40"],
    );
}

#[test]
fn unterminated_quote_in_command_is_rc002() {
    check(
        "services:\n  s:\n    command: vllm serve 'm\n",
        None,
        &["s: none host= tp1 pp1 dp1"],
        &["RC002 error compose.yml:3:14"],
    );
}

// --- model identity (2.3) ----------------------------------------------------------

#[test]
fn model_identity_size_and_memory() {
    let (services, findings) = read(
        "services:
  s:
    command: vllm serve /models/llama-70b --dtype bfloat16 --quantization awq --gpu-memory-utilization 0.85
    labels:
      catapult.model: llama-70b
      catapult.params_b: '70.6'
      catapult.num_attention_heads: 64
      catapult.gpu_sharing: 'true'
",
        None,
    );
    assert!(findings.is_empty(), "{findings:?}");
    let s = &services[0];
    assert_eq!(s.model_name.as_deref(), Some("llama-70b"));
    assert_eq!(s.model_path.as_deref(), Some("/models/llama-70b"));
    assert_eq!(s.params_b, Some(70.6));
    assert_eq!(s.dtype.as_deref(), Some("awq"));
    assert_eq!(s.bytes_per_param(), Some(0.5));
    assert_eq!(s.num_attention_heads, Some(64));
    assert_eq!(s.memory_utilization, 0.85);
    assert!(s.gpu_sharing);

    let (services, _) = read(
        "services:\n  s:\n    image: lmsysorg/sglang\n    environment: [MODEL=org/x]\n",
        None,
    );
    let s = &services[0];
    assert_eq!(s.model_name.as_deref(), Some("org/x"));
    assert_eq!(s.model_path, None);
    assert_eq!(s.memory_utilization, 0.9);
    assert_eq!(s.bytes_per_param(), Some(2.0));
    assert!(!s.gpu_sharing);

    let (services, _) = read(
        "services:\n  s:\n    command: python -m sglang.launch_server --model-path /m --mem-fraction-static 0.7\n    labels: [catapult.dtype=fp8, catapult.model_path=/override]\n",
        None,
    );
    let s = &services[0];
    assert_eq!(s.model_name.as_deref(), Some("/m"));
    assert_eq!(s.model_path.as_deref(), Some("/override"));
    assert_eq!(s.bytes_per_param(), Some(1.0));
    assert_eq!(s.memory_utilization, 0.7);
}

// --- interpolation (2.4) --------------------------------------------------------------

#[test]
fn interpolation_from_env_file() {
    check(
        "services:
  s:
    command: vllm serve ${MODEL} --tensor-parallel-size ${TP:-1}
    gpus: [{device_ids: ['${GPU_A}', '${GPU_B}']}]
    ports: ['${PORT}:8000']
",
        Some("MODEL=org/m\nTP=2\nGPU_A=0\nGPU_B=1\nPORT=8000\n"),
        &["s: pinned[0@4:26,1@4:38] host=0,1 tp2 pp1 dp1 vllm model=org/m ports=8000->8000@5"],
        &[],
    );
}

#[test]
fn unset_variables_are_rc005_once_per_variable() {
    check(
        "services:\n  s:\n    image: ${IMAGE}\n    command: run ${IMAGE}\n",
        None,
        &["s: none host= tp1 pp1 dp1"],
        &["RC005 warning compose.yml:3:12"],
    );
}

#[test]
fn missing_required_variable_is_rc003() {
    check(
        "services:\n  s:\n    image: ${IMAGE:?set IMAGE in .env}\n",
        Some("OTHER=1\n"),
        &["s: none host= tp1 pp1 dp1"],
        &["RC003 error compose.yml:3:12"],
    );
    check(
        "services:\n  s:\n    image: ${IMAGE\n",
        None,
        &["s: none host= tp1 pp1 dp1"],
        &["RC003 error compose.yml:3:12"],
    );
}

#[test]
fn dollar_dollar_is_a_literal_dollar() {
    let (services, findings) = read("services:\n  s:\n    command: echo $$HOME\n", None);
    assert!(findings.is_empty(), "{findings:?}");
    assert_eq!(services.len(), 1);
}

#[test]
fn bad_env_line_is_rc003_at_its_line_and_the_others_still_count() {
    let (_, findings) = read(
        "services:\n  s:\n    image: ${GOOD}${ALSO}\n",
        Some("GOOD=1\nBAD KEY=1\nALSO=2\n"),
    );
    let got: Vec<String> = findings.iter().map(finding_line).collect();
    assert_eq!(got, ["RC003 error .env:2:1"]);
}

#[test]
fn many_services_and_fingerprints_differ() {
    let (services, findings) = read(
        "services:\n  a:\n    gpus: [{device_ids: '0'}]\n  b:\n    gpus: [{device_ids: '1'}]\n",
        None,
    );
    assert_eq!(services.len(), 2);
    assert_eq!(findings.len(), 2);
    assert_ne!(findings[0].fingerprint, findings[1].fingerprint);
    assert_eq!(findings[0].deployments, ["m1:8000"]);
    assert_eq!(findings[0].machine.as_deref(), Some("m1"));
}

#[test]
fn secrets_in_environment_do_not_reach_the_model() {
    let (services, _) = read(
        "services:\n  s:\n    environment: {HF_TOKEN: hf_secret_value}\n",
        None,
    );
    let json = serde_json::to_string(&services).expect("serialize");
    assert!(!json.contains("hf_secret_value"));
}

#[test]
fn vars_type_is_a_plain_map() {
    // The seam for callers that already hold variables.
    let mut vars = Vars::new();
    vars.insert("G".into(), "2".into());
    let (services, findings) = compose::read_compose(
        &DeploymentId::new("m1", 8000),
        PATH,
        "services:\n  s:\n    gpus: [{device_ids: ['$G']}]\n",
        &vars,
        &Limits::default(),
    );
    assert!(findings.is_empty());
    assert_eq!(services[0].host_gpus, [std::sync::Arc::<str>::from("2")]);
}

// --- Long GPU lists --------------------------------------------------------------

/// Tens of thousands of GPU ids in one list (hostile or generated) are read
/// in linear time: duplicates are dropped without comparing every pair, and
/// a CUDA_VISIBLE_DEVICES that breaks in every token names only a few.
#[test]
fn long_gpu_lists_are_read_in_linear_time() {
    let n = 40_000;
    let ids: Vec<String> = (0..n / 2).map(|i| format!("'{i}'")).collect();
    let pinned = format!(
        "services:\n  s:\n    gpus: [{{device_ids: [{}]}}]\n",
        ids.join(", ")
    );
    let visible: Vec<String> = (0..n).map(|i| (i + n).to_string()).collect();
    let runtime = format!(
        "services:\n  s:\n    runtime: nvidia\n    environment:\n      NVIDIA_VISIBLE_DEVICES: '{}'\n      CUDA_VISIBLE_DEVICES: '{}'\n",
        (0..n)
            .map(|i| (i % 100).to_string())
            .collect::<Vec<_>>()
            .join(","),
        visible.join(",")
    );
    let started = std::time::Instant::now();
    let (services, findings) = read(&pinned, None);
    let claim = services.first().map(|s| &s.gpus);
    assert!(
        matches!(claim, Some(GpuClaim::Pinned(refs)) if refs.len() == n / 2),
        "{claim:?}"
    );
    assert!(findings.is_empty(), "{findings:#?}");
    let (services, findings) = read(&runtime, None);
    let claim = services.first().map(|s| &s.gpus);
    assert!(
        matches!(claim, Some(GpuClaim::Pinned(refs)) if refs.len() == 100),
        "{claim:?}"
    );
    let gpu004: Vec<&topology::Finding> = findings
        .iter()
        .filter(|f| f.rule.code() == "GPU004")
        .collect();
    assert_eq!(gpu004.len(), 1, "{findings:#?}");
    assert!(
        gpu004[0].message.ends_with(&format!("and {} more", n - 8)),
        "{}",
        &gpu004[0].message[gpu004[0].message.len().saturating_sub(200)..]
    );
    assert!(gpu004[0].message.len() < visible.join(",").len() * 3);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

// --- model identity (contract 2.3, v1.1) ---------------------------------------

#[test]
fn model_identity_names_what_is_served() {
    for (yaml, expected) in [
        // `--served-model-name` names the model; the path is what is loaded.
        (
            "services:\n  s:\n    image: vllm/vllm-openai\n    command: --model /models/llama-8b --served-model-name llama-8b\n",
            "s: none host= tp1 pp1 dp1 vllm model=llama-8b path=/models/llama-8b",
        ),
        // The label wins over every flag.
        (
            "services:\n  s:\n    image: vllm/vllm-openai\n    command: --model /m --served-model-name x\n    labels: {catapult.model: named}\n",
            "s: none host= tp1 pp1 dp1 vllm model=named path=/m",
        ),
        // Positional: `vllm serve MODEL`, and the first word of `command` for
        // the vllm-openai image (its entrypoint is `vllm serve`).
        (
            "services:\n  s:\n    image: x\n    command: vllm serve org/model --tensor-parallel-size 2\n",
            "s: none host= tp2 pp1 dp1 vllm model=org/model",
        ),
        (
            "services:\n  s:\n    image: vllm/vllm-openai:v0.8.0\n    command: [\"org/model\", \"-tp\", \"2\"]\n",
            "s: none host= tp2 pp1 dp1 vllm model=org/model",
        ),
        // With an entrypoint of its own, the first word is no model.
        (
            "services:\n  s:\n    image: vllm/vllm-openai\n    entrypoint: [\"/bin/sh\", \"-c\"]\n    command: [\"sleep 1\"]\n",
            "s: none host= tp1 pp1 dp1 vllm",
        ),
        // `"$@"` in a shell wrapper stands for the arguments after `$0`.
        (
            "services:\n  s:\n    image: nvcr.io/nvidia/tensorrt-llm/release:0.17.0\n    entrypoint: [\"bash\", \"-c\", \"exec trtllm-serve \\\"$$@\\\"\", \"--\"]\n    command: [\"/models/llama\", \"--tp_size\", \"2\"]\n",
            "s: none host= tp2 pp1 dp1 trtllm model=/models/llama",
        ),
        // A placeholder is never a model.
        (
            "services:\n  s:\n    image: x\n    command: [\"trtllm-serve\", \"$$1\"]\n",
            "s: none host= tp1 pp1 dp1 trtllm",
        ),
        // The environment comes last.
        (
            "services:\n  s:\n    image: ghcr.io/huggingface/text-generation-inference\n    environment: {MODEL_ID: org/env-model}\n",
            "s: none host= tp1 pp1 dp1 tgi model=org/env-model",
        ),
    ] {
        service(yaml, expected);
    }
}
