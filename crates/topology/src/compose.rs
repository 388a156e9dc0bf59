//! Reading one deployment's compose file (contract section 2) into a model:
//! which host GPUs each service holds, its parallelism, model identity and
//! published ports, with the source position of everything a finding can point at.
//!
//! The reader never stops at the first problem: wrong types are RC002 at the
//! offending node, interpolation problems RC003/RC005, and reading goes on with
//! whatever can still be understood.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::finding::{Finding, Location, Rule};
use crate::interpolate::{self, Vars};
use crate::yaml::{self, Limits, Node, Pos, Value};

/// `<machine>:<port>`: one port directory of the repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DeploymentId {
    pub machine: String,
    pub port: u16,
}

impl DeploymentId {
    pub fn new(machine: impl Into<String>, port: u16) -> DeploymentId {
        DeploymentId {
            machine: machine.into(),
            port,
        }
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.machine, self.port)
    }
}

/// One deployment: the services of `machines/<machine>/<port>/docker-compose.yml`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    pub id: DeploymentId,
    pub compose_path: String,
    pub env_path: Option<String>,
    /// Empty when the file could not be read (RC001/RC002 say why).
    pub services: Vec<Service>,
    /// Content identity of the compose file and `.env` (Git blob ids), set by
    /// the engine; used to tell a proposal's own deployments from the head's.
    #[serde(skip)]
    pub content: Option<(String, Option<String>)>,
}

impl Deployment {
    /// `machine:port/service`, the way findings and topology name a holder.
    pub fn holder_name(&self, service: &Service) -> String {
        format!("{}/{}", self.id, service.name)
    }

    /// The service that serves the model: the first one holding GPUs, else the
    /// first one with a known inference server, else the first one.
    pub fn main_service(&self) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.gpus.holds_gpus())
            .or_else(|| self.services.iter().find(|s| s.server.is_some()))
            .or_else(|| self.services.first())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    Vllm,
    Sglang,
    Tgi,
    Trtllm,
}

impl ServerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Vllm => "vllm",
            ServerKind::Sglang => "sglang",
            ServerKind::Tgi => "tgi",
            ServerKind::Trtllm => "trtllm",
        }
    }

    /// The port the server listens on without `--port` (for `network_mode: host`).
    /// TGI's launcher defaults to 3000, but its official image sets `PORT=80`.
    pub fn default_port(self) -> u16 {
        match self {
            ServerKind::Vllm | ServerKind::Trtllm => 8000,
            ServerKind::Sglang => 30000,
            ServerKind::Tgi => 80,
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One host GPU named by the compose file, where it is named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuRef {
    /// Canonical id: decimal ids normalised (`"03"` is `"3"`), others verbatim.
    pub id: String,
    pub pos: Location,
}

/// What a service asks of the machine's GPUs, after `CUDA_VISIBLE_DEVICES`.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GpuClaim {
    #[default]
    None,
    /// Exactly these host GPUs (device_ids, NVIDIA_VISIBLE_DEVICES, or host ids
    /// in CUDA_VISIBLE_DEVICES of a container that sees every GPU).
    Pinned(Vec<GpuRef>),
    /// N GPUs chosen by Docker: which ones is unknown.
    Count(u32),
    /// Every GPU of the machine.
    All,
}

impl GpuClaim {
    pub fn holds_gpus(&self) -> bool {
        match self {
            GpuClaim::None => false,
            GpuClaim::Pinned(ids) => !ids.is_empty(),
            GpuClaim::Count(n) => *n > 0,
            GpuClaim::All => true,
        }
    }

    /// `count: N` / all: which GPUs is decided at run time.
    pub fn is_unpinned(&self) -> bool {
        matches!(self, GpuClaim::Count(n) if *n > 0) || matches!(self, GpuClaim::All)
    }

    /// How many GPUs the claim takes on a machine with `machine_gpus` GPUs
    /// (unknown for `All` without inventory).
    pub fn count_on(&self, machine_gpus: Option<u32>) -> Option<u32> {
        match self {
            GpuClaim::None => Some(0),
            GpuClaim::Pinned(ids) => Some(u32::try_from(ids.len()).unwrap_or(u32::MAX)),
            GpuClaim::Count(n) => Some(*n),
            GpuClaim::All => machine_gpus,
        }
    }

    /// Short human description: `device_ids 0,1`, `count: 2`, `all GPUs`.
    pub fn describe(&self) -> String {
        match self {
            GpuClaim::None => "no GPUs".to_owned(),
            GpuClaim::Pinned(ids) => {
                let ids: Vec<&str> = ids.iter().map(|g| g.id.as_str()).collect();
                format!("GPUs {}", ids.join(","))
            }
            GpuClaim::Count(n) => format!("count: {n}"),
            GpuClaim::All => "all GPUs".to_owned(),
        }
    }
}

/// A host port the service publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedPort {
    pub host: u16,
    /// `None` with `network_mode: host` (the server's own port is the host port).
    pub container: Option<u16>,
    /// `None` means every address.
    pub host_ip: Option<String>,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub pos: Location,
}

impl PublishedPort {
    /// Two bindings of one port number clash unless both name different
    /// specific addresses (or use different protocols).
    pub fn clashes_with(&self, other: &PublishedPort) -> bool {
        self.host == other.host
            && self.protocol == other.protocol
            && (self.binds_every_address()
                || other.binds_every_address()
                || self.host_ip == other.host_ip)
    }

    /// No host address, or an unspecified one (`0.0.0.0`, `::`).
    pub fn binds_every_address(&self) -> bool {
        matches!(
            self.host_ip.as_deref(),
            None | Some("" | "0.0.0.0" | "::" | "[::]")
        )
    }
}

/// One compose service, as far as GPU allocation is concerned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub name: String,
    pub image: Option<String>,
    /// The service's key in `services:`.
    pub location: Location,
    pub gpus: GpuClaim,
    /// Where the claim is declared (device request, `gpus:`, `runtime:`, the
    /// variable), `None` without a claim.
    pub gpus_at: Option<Location>,
    /// The host GPU ids the service holds, canonical, in the order the
    /// container numbers them (empty unless the claim is `Pinned`).
    pub host_gpus: Vec<String>,
    pub tensor_parallel: u32,
    pub tensor_parallel_at: Option<Location>,
    pub pipeline_parallel: u32,
    pub pipeline_parallel_at: Option<Location>,
    pub data_parallel: u32,
    pub data_parallel_at: Option<Location>,
    pub model_name: Option<String>,
    pub model_path: Option<String>,
    /// Billions of parameters (label `catapult.params_b`).
    pub params_b: Option<f64>,
    pub params_b_at: Option<Location>,
    pub dtype: Option<String>,
    pub num_attention_heads: Option<u32>,
    pub num_attention_heads_at: Option<Location>,
    /// Fraction of each GPU's memory the server takes (default 0.9).
    pub memory_utilization: f64,
    pub memory_utilization_at: Option<Location>,
    /// Label `catapult.gpu_sharing: "true"`.
    pub gpu_sharing: bool,
    pub ports: Vec<PublishedPort>,
    pub network_mode_host: bool,
    pub server: Option<ServerKind>,
}

impl Service {
    /// TP x PP x DP, in `u64` so that two factors never overflow; saturates
    /// at `u64::MAX` (only three absurd factors get there).
    pub fn gpus_needed(&self) -> u64 {
        u64::from(self.tensor_parallel)
            .saturating_mul(u64::from(self.pipeline_parallel))
            .saturating_mul(u64::from(self.data_parallel))
    }

    /// Bytes per parameter of the weights, from `dtype` (section 2.3); `auto`
    /// when none is given. `None` for a dtype we do not know.
    pub fn bytes_per_param(&self) -> Option<f64> {
        bytes_per_param(self.dtype.as_deref().unwrap_or("auto"))
    }
}

/// Bytes per parameter for a dtype or quantisation name (section 2.3).
pub fn bytes_per_param(dtype: &str) -> Option<f64> {
    match dtype.trim().to_ascii_lowercase().as_str() {
        "fp32" | "float32" | "float" => Some(4.0),
        "bf16" | "bfloat16" | "fp16" | "float16" | "half" | "auto" => Some(2.0),
        "fp8" | "int8" | "fp8_e4m3" | "fp8_e5m2" => Some(1.0),
        "int4" | "awq" | "gptq" | "awq_marlin" | "gptq_marlin" => Some(0.5),
        _ => None,
    }
}

/// Canonical GPU id: decimal ids without leading zeros, anything else verbatim.
pub fn canonical_gpu_id(raw: &str) -> String {
    let raw = raw.trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        let digits = raw.trim_start_matches('0');
        if digits.is_empty() {
            "0".to_owned()
        } else {
            digits.to_owned()
        }
    } else {
        raw.to_owned()
    }
}

/// Reads a deployment from its compose text and optional `.env` (path, text).
/// Never fails: what cannot be read becomes findings.
pub fn read_deployment(
    id: DeploymentId,
    compose_path: &str,
    compose_src: &str,
    env: Option<(&str, &str)>,
    limits: &Limits,
) -> (Deployment, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut vars = Vars::new();
    let mut env_ok = true;
    if let Some((env_path, env_src)) = env {
        let (read, env_findings) = read_env(&id, env_path, env_src);
        vars = read;
        env_ok = env_findings.is_empty();
        findings.extend(env_findings);
    }
    let (services, mut compose_findings) =
        read_compose(&id, compose_path, compose_src, &vars, limits);
    if !env_ok {
        // A broken .env leaves variables unset; the RC003 on it says why, so
        // "unset variable" warnings would only repeat it.
        compose_findings.retain(|f| f.rule != Rule::Rc005);
    }
    findings.extend(compose_findings);
    let deployment = Deployment {
        id,
        compose_path: compose_path.to_owned(),
        env_path: env.map(|(p, _)| p.to_owned()),
        services,
        content: None,
    };
    (deployment, findings)
}

/// Reads a `.env` file; malformed lines are RC003 at their line.
pub fn read_env(id: &DeploymentId, path: &str, src: &str) -> (Vars, Vec<Finding>) {
    match interpolate::parse_env_file(src) {
        Ok(vars) => (vars, Vec::new()),
        Err(errors) => {
            let findings = errors
                .into_iter()
                .map(|e| {
                    Finding::new(
                        Rule::Rc003,
                        Some(&id.machine),
                        [id.to_string()],
                        [format!("{path}:{}", e.line)],
                        Location::new(path, e.line, 1),
                        format!("{path} line {}: {}", e.line, e.message),
                    )
                })
                .collect();
            (Vars::new(), findings)
        }
    }
}

/// Reads the services of one compose file. The seam tests and the engine use:
/// interpolation with `vars`, then every service (section 2).
pub fn read_compose(
    id: &DeploymentId,
    path: &str,
    src: &str,
    vars: &Vars,
    limits: &Limits,
) -> (Vec<Service>, Vec<Finding>) {
    let mut reader = Reader {
        id,
        path: Arc::from(path),
        src,
        line_starts: None,
        findings: Vec::new(),
    };
    let mut root = match yaml::parse(src, limits) {
        Ok(root) => root,
        Err(e) => {
            reader.push(
                Rule::Rc001,
                Vec::new(),
                e.pos,
                format!("{path} cannot be read as YAML: {}", e.message),
            );
            return (Vec::new(), reader.findings);
        }
    };
    if root.as_map().is_none() {
        let found = root.kind_name();
        reader.rc002(
            &root,
            "compose file",
            format!("the compose file must be a mapping, found a {found}"),
        );
        return (Vec::new(), reader.findings);
    }
    reader.interpolate_root(&mut root, vars);
    let services = match root.get("services") {
        None => {
            reader.rc002(
                &root,
                "services",
                "the compose file has no `services` mapping".to_owned(),
            );
            return (Vec::new(), reader.findings);
        }
        Some(node) => match node.as_map() {
            Some(entries) => entries,
            None if node.is_null() => &[],
            None => {
                let found = node.kind_name();
                reader.rc002(
                    node,
                    "services",
                    format!("`services` must be a mapping, found a {found}"),
                );
                return (Vec::new(), reader.findings);
            }
        },
    };
    let mut out = Vec::with_capacity(services.len());
    for (key, value) in services {
        let Some(name) = key.as_str() else {
            reader.rc002(
                key,
                "services",
                "a service name must be a string".to_owned(),
            );
            continue;
        };
        if let Some(service) = reader.service(name, key, value) {
            out.push(service);
        }
    }
    (out, reader.findings)
}

// ---------------------------------------------------------------------------
// Reader

struct Reader<'a> {
    id: &'a DeploymentId,
    /// Shared by every location the reader makes.
    path: Arc<str>,
    src: &'a str,
    /// Byte offsets of line starts, computed when a token must be located.
    line_starts: Option<Vec<usize>>,
    findings: Vec<Finding>,
}

/// A value of `environment` or `labels`: `None` for `KEY` / `KEY:` (taken from
/// the shell by Compose, which we never read).
struct Kv {
    value: Option<String>,
    pos: Pos,
}

/// One word of the command line and where it is written.
#[derive(Debug, Clone)]
struct Token {
    text: String,
    pos: Pos,
}

/// A device request of `deploy.resources.reservations.devices` or `gpus:`.
enum Request {
    Pinned(Vec<GpuRef>),
    Count(u32),
    All,
}

impl Reader<'_> {
    fn loc(&self, pos: Pos) -> Location {
        Location::new(Arc::clone(&self.path), pos.line, pos.column)
    }

    fn push(
        &mut self,
        rule: Rule,
        subjects: Vec<String>,
        pos: Pos,
        message: String,
    ) -> &mut Finding {
        let finding = Finding::new(
            rule,
            Some(&self.id.machine),
            [self.id.to_string()],
            subjects,
            self.loc(pos),
            message,
        );
        self.findings.push(finding);
        let last = self.findings.len() - 1;
        &mut self.findings[last]
    }

    /// RC002 at `node`; `what` (a key path) keeps fingerprints of several
    /// RC002 in one file apart.
    fn rc002(&mut self, node: &Node, what: &str, message: String) {
        let message = format!("{}: {message}", self.path);
        self.push(Rule::Rc002, vec![what.to_owned()], node.pos, message);
    }

    // -- interpolation ------------------------------------------------------

    fn interpolate_root(&mut self, root: &mut Node, vars: &Vars) {
        // Unset variables: reported once per variable, at the first use.
        let mut unset: BTreeMap<String, Vec<Pos>> = BTreeMap::new();
        if let Value::Map(entries) = &mut root.value {
            for (key, value) in entries.iter_mut() {
                // `x-*` extension fields are ignored, so are their variables.
                if key.as_str().is_some_and(|k| k.starts_with("x-")) {
                    continue;
                }
                self.interpolate_node(value, vars, &mut unset);
            }
        }
        for (var, positions) in unset {
            let Some(first) = positions.first().copied() else {
                continue;
            };
            let uses = positions.len();
            let message = if uses == 1 {
                format!(
                    "variable `{var}` is not set in the deployment's .env; it becomes an empty string"
                )
            } else {
                format!(
                    "variable `{var}` is not set in the deployment's .env; its {uses} uses become empty strings"
                )
            };
            let rest: Vec<Location> = positions.iter().skip(1).map(|p| self.loc(*p)).collect();
            let finding = self.push(Rule::Rc005, vec![var.clone()], first, message);
            for location in rest {
                finding.related.push(crate::finding::Related {
                    location,
                    message: format!("`{var}` is also used here"),
                });
            }
        }
    }

    /// Compose interpolates values, not mapping keys.
    fn interpolate_node(
        &mut self,
        node: &mut Node,
        vars: &Vars,
        unset: &mut BTreeMap<String, Vec<Pos>>,
    ) {
        let pos = node.pos;
        match &mut node.value {
            Value::Scalar(scalar) => {
                if !scalar.text.contains('$') {
                    return;
                }
                match interpolate::interpolate(&scalar.text, vars) {
                    Ok(done) => {
                        for var in done.unset {
                            let at = self
                                .locate_snippet(pos, &format!("${{{var}"))
                                .or_else(|| self.locate_snippet(pos, &format!("${var}")))
                                .unwrap_or(pos);
                            unset.entry(var).or_default().push(at);
                        }
                        scalar.text = done.text;
                    }
                    Err(e) => {
                        let message = format!(
                            "{}: interpolation of `{}`: {}",
                            self.path, scalar.text, e.message
                        );
                        // Point at the offending `$...`, not the start of the value.
                        let at = scalar
                            .text
                            .get(e.offset..)
                            .map(|rest| {
                                let end = rest
                                    .char_indices()
                                    .take_while(|(_, c)| !c.is_whitespace())
                                    .nth(12)
                                    .map_or(rest.len(), |(i, _)| i);
                                rest.get(..end).unwrap_or(rest)
                            })
                            .filter(|snippet| !snippet.is_empty())
                            .and_then(|snippet| self.locate_snippet(pos, snippet))
                            .unwrap_or(pos);
                        let subject = scalar.text.clone();
                        self.push(Rule::Rc003, vec![subject], at, message);
                    }
                }
            }
            Value::Seq(items) => {
                for item in items {
                    self.interpolate_node(item, vars, unset);
                }
            }
            Value::Map(entries) => {
                for (_, value) in entries {
                    self.interpolate_node(value, vars, unset);
                }
            }
        }
    }

    // -- typed access -----------------------------------------------------

    /// A scalar's text; RC002 for a collection.
    fn scalar<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        match node.as_str() {
            Some(text) => Some(text),
            None => {
                let found = node.kind_name();
                self.rc002(
                    node,
                    what,
                    format!("`{what}` must be a string, found a {found}"),
                );
                None
            }
        }
    }

    /// `environment` / `labels`: a mapping or a list of `KEY=value`.
    fn key_values(&mut self, node: Option<&Node>, what: &str) -> BTreeMap<String, Kv> {
        let mut out = BTreeMap::new();
        let Some(node) = node else { return out };
        if node.is_null() {
            return out;
        }
        match &node.value {
            Value::Map(entries) => {
                for (key, value) in entries {
                    let Some(key) = key.as_str() else {
                        self.rc002(key, what, format!("keys of `{what}` must be strings"));
                        continue;
                    };
                    let value_text = if value.is_null() {
                        None
                    } else if let Some(text) = value.as_str() {
                        Some(text.to_owned())
                    } else {
                        let found = value.kind_name();
                        self.rc002(
                            value,
                            &format!("{what}.{key}"),
                            format!("`{what}.{key}` must be a string, found a {found}"),
                        );
                        continue;
                    };
                    out.insert(
                        key.to_owned(),
                        Kv {
                            value: value_text,
                            pos: value.pos,
                        },
                    );
                }
            }
            Value::Seq(items) => {
                for item in items {
                    let Some(text) = item.as_str() else {
                        let found = item.kind_name();
                        self.rc002(
                            item,
                            what,
                            format!(
                                "entries of `{what}` must be `KEY=value` strings, found a {found}"
                            ),
                        );
                        continue;
                    };
                    let (key, value) = match text.split_once('=') {
                        Some((k, v)) => (k, Some(v.to_owned())),
                        None => (text, None),
                    };
                    out.insert(
                        key.trim().to_owned(),
                        Kv {
                            value,
                            pos: item.pos,
                        },
                    );
                }
            }
            Value::Scalar(_) => {
                self.rc002(
                    node,
                    what,
                    format!("`{what}` must be a mapping or a list of `KEY=value`, found a scalar"),
                );
            }
        }
        out
    }

    // -- one service --------------------------------------------------------

    fn service(&mut self, name: &str, key: &Node, node: &Node) -> Option<Service> {
        if node.as_map().is_none() {
            let found = node.kind_name();
            self.rc002(
                node,
                &format!("services.{name}"),
                format!("service `{name}` must be a mapping, found a {found}"),
            );
            return None;
        }
        let at = |field: &str| format!("services.{name}.{field}");
        let image = node
            .get("image")
            .and_then(|n| self.scalar(n, &at("image")))
            .map(str::to_owned);
        let env = self.key_values(node.get("environment"), &at("environment"));
        let labels = self.key_values(node.get("labels"), &at("labels"));

        let mut argv = Vec::new();
        for field in ["entrypoint", "command"] {
            if let Some(value) = node.get(field) {
                self.command_tokens(value, &at(field), &mut argv);
            }
        }
        expand_shell_scripts(&mut argv, self);
        split_inline_values(&mut argv);
        let server = detect_server(&argv, image.as_deref());

        let mut service = Service {
            name: name.to_owned(),
            image,
            location: self.loc(key.pos),
            gpus: GpuClaim::None,
            gpus_at: None,
            host_gpus: Vec::new(),
            tensor_parallel: 1,
            tensor_parallel_at: None,
            pipeline_parallel: 1,
            pipeline_parallel_at: None,
            data_parallel: 1,
            data_parallel_at: None,
            model_name: None,
            model_path: None,
            params_b: None,
            params_b_at: None,
            dtype: None,
            num_attention_heads: None,
            num_attention_heads_at: None,
            memory_utilization: 0.9,
            memory_utilization_at: None,
            gpu_sharing: false,
            ports: Vec::new(),
            network_mode_host: false,
            server,
        };

        self.gpu_claim(name, node, &env, &mut service);
        self.parallelism(name, &argv, &env, &labels, &mut service);
        self.model(name, &argv, &env, &labels, &mut service);
        self.ports(name, node, &argv, &env, &mut service);
        service.gpu_sharing = labels
            .get("catapult.gpu_sharing")
            .and_then(|kv| kv.value.as_deref())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        Some(service)
    }

    // -- GPUs (section 2.1) ---------------------------------------------------

    fn gpu_claim(
        &mut self,
        name: &str,
        node: &Node,
        env: &BTreeMap<String, Kv>,
        service: &mut Service,
    ) {
        let mut claim: Option<(GpuClaim, Pos)> = self.device_requests(name, node);
        if claim.is_none() {
            claim = self.service_gpus(name, node);
        }
        if claim.is_none() {
            claim = self.nvidia_runtime(name, node, env);
        }
        let Some((claim, pos)) = claim else { return };
        service.gpus_at = Some(self.loc(pos));
        service.gpus = claim;
        self.cuda_visible_devices(name, env, service);
        if let GpuClaim::Pinned(refs) = &service.gpus
            && service.host_gpus.is_empty()
        {
            service.host_gpus = refs.iter().map(|r| r.id.clone()).collect();
        }
    }

    /// `deploy.resources.reservations.devices[]` with capability `gpu` or driver `nvidia`.
    fn device_requests(&mut self, name: &str, node: &Node) -> Option<(GpuClaim, Pos)> {
        let mut current = node;
        let mut path = format!("services.{name}");
        for key in ["deploy", "resources", "reservations"] {
            let next = current.get(key)?;
            path.push('.');
            path.push_str(key);
            if next.is_null() {
                return None;
            }
            if next.as_map().is_none() {
                let found = next.kind_name();
                self.rc002(
                    next,
                    &path,
                    format!("`{path}` must be a mapping, found a {found}"),
                );
                return None;
            }
            current = next;
        }
        let devices = current.get("devices")?;
        path.push_str(".devices");
        if devices.is_null() {
            return None;
        }
        let Some(items) = devices.as_seq() else {
            let found = devices.kind_name();
            self.rc002(
                devices,
                &path,
                format!("`{path}` must be a list, found a {found}"),
            );
            return None;
        };
        let requests: Vec<(Request, Pos)> = items
            .iter()
            .filter_map(|item| self.device_request(item, &path, false))
            .collect();
        combine_requests(requests)
    }

    /// Service-level `gpus: all` or `gpus: [{device_ids|count}]`.
    fn service_gpus(&mut self, name: &str, node: &Node) -> Option<(GpuClaim, Pos)> {
        let gpus = node.get("gpus")?;
        let path = format!("services.{name}.gpus");
        match &gpus.value {
            Value::Scalar(s) if gpus.is_null() => {
                let _ = s;
                None
            }
            Value::Scalar(s) if s.text.trim() == "all" => Some((GpuClaim::All, gpus.pos)),
            Value::Seq(items) => {
                let requests: Vec<(Request, Pos)> = items
                    .iter()
                    .filter_map(|item| self.device_request(item, &path, true))
                    .collect();
                combine_requests(requests)
            }
            _ => {
                self.rc002(
                    gpus,
                    &path,
                    format!("`{path}` must be `all` or a list of device requests"),
                );
                None
            }
        }
    }

    fn device_request(
        &mut self,
        item: &Node,
        path: &str,
        implied_gpu: bool,
    ) -> Option<(Request, Pos)> {
        if item.as_map().is_none() {
            let found = item.kind_name();
            self.rc002(
                item,
                path,
                format!("entries of `{path}` must be mappings, found a {found}"),
            );
            return None;
        }
        let mut is_gpu = implied_gpu;
        if let Some(driver) = item.get("driver").and_then(|d| d.as_str()) {
            is_gpu |= driver.trim() == "nvidia";
        }
        if let Some(caps) = item.get("capabilities") {
            match caps.as_seq() {
                Some(caps) => {
                    // Docker's API allows a list of lists; Compose writes a flat list.
                    for cap in caps {
                        match &cap.value {
                            Value::Scalar(s) => is_gpu |= s.text.trim() == "gpu",
                            Value::Seq(inner) => {
                                is_gpu |= inner
                                    .iter()
                                    .any(|c| c.as_str().is_some_and(|c| c.trim() == "gpu"));
                            }
                            Value::Map(_) => {
                                self.rc002(
                                    cap,
                                    &format!("{path}.capabilities"),
                                    "capabilities must be strings".into(),
                                );
                            }
                        }
                    }
                }
                None if caps.is_null() => {}
                None => {
                    let found = caps.kind_name();
                    self.rc002(
                        caps,
                        &format!("{path}.capabilities"),
                        format!("`capabilities` must be a list, found a {found}"),
                    );
                }
            }
        }
        if !is_gpu {
            return None;
        }
        let count = item.get("count").filter(|c| !c.is_null());
        let device_ids = item.get("device_ids").filter(|d| !d.is_null());
        let count_request = count.and_then(|c| self.count(c, path));
        let pinned = device_ids.and_then(|d| self.device_ids(d, path));
        if let (Some(count), Some(ids)) = (count, device_ids) {
            let related = self.loc(ids.pos);
            let finding = self.push(
                Rule::Rc002,
                vec![format!("{path}.count")],
                count.pos,
                format!(
                    "{}: `count` and `device_ids` are exclusive in one device request (Docker refuses the pair); keep `device_ids`",
                    self.path
                ),
            );
            finding.related.push(crate::finding::Related {
                location: related,
                message: "device_ids given here".into(),
            });
        }
        match (pinned, count_request) {
            (Some(refs), _) => Some((
                Request::Pinned(refs),
                device_ids.map_or(item.pos, |d| d.pos),
            )),
            (None, Some(request)) => Some((request, count.map_or(item.pos, |c| c.pos))),
            // Neither (or both unreadable): the compose-spec default is `count: all`.
            (None, None) if count.is_none() && device_ids.is_none() => {
                Some((Request::All, item.pos))
            }
            (None, None) => None,
        }
    }

    fn count(&mut self, node: &Node, path: &str) -> Option<Request> {
        let text = node.as_str().map(str::trim);
        match text {
            Some("all") | Some("-1") => Some(Request::All),
            Some(t) if t.parse::<u32>().is_ok() => t.parse::<u32>().ok().map(Request::Count),
            _ => {
                let shown = node
                    .as_str()
                    .map_or_else(|| format!("a {}", node.kind_name()), |t| format!("`{t}`"));
                self.rc002(
                    node,
                    &format!("{path}.count"),
                    format!("`count` must be a non-negative integer or `all`, found {shown}"),
                );
                None
            }
        }
    }

    fn device_ids(&mut self, node: &Node, path: &str) -> Option<Vec<GpuRef>> {
        let what = format!("{path}.device_ids");
        let Some(items) = node.as_seq() else {
            let found = node.kind_name();
            self.rc002(
                node,
                &what,
                format!("`device_ids` must be a list, found a {found}"),
            );
            return None;
        };
        let mut refs = UniqueRefs::default();
        for item in items {
            let Some(text) = item.as_str() else {
                let found = item.kind_name();
                self.rc002(
                    item,
                    &what,
                    format!("entries of `device_ids` must be GPU ids, found a {found}"),
                );
                continue;
            };
            let parts: Vec<&str> = text
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            if parts.len() > 1 {
                let ids: Vec<String> = parts.iter().map(|p| canonical_gpu_id(p)).collect();
                let listed = parts
                    .iter()
                    .map(|p| format!("'{p}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.push(
                    Rule::Gpu005,
                    ids.clone(),
                    item.pos,
                    format!(
                        "device_ids entry '{text}' packs {} GPU ids into one string; Docker reads it as a single device id. Write one id per entry: [{listed}]",
                        parts.len()
                    ),
                );
            }
            for part in parts {
                refs.push(canonical_gpu_id(part), || self.loc(item.pos));
            }
        }
        Some(refs.into_vec())
    }

    /// `runtime: nvidia` with or without `NVIDIA_VISIBLE_DEVICES`.
    ///
    /// `NVIDIA_VISIBLE_DEVICES` without `runtime: nvidia` is not read as a claim:
    /// whether the daemon's default runtime is nvidia cannot be seen from the file.
    fn nvidia_runtime(
        &mut self,
        name: &str,
        node: &Node,
        env: &BTreeMap<String, Kv>,
    ) -> Option<(GpuClaim, Pos)> {
        let runtime = node.get("runtime")?;
        let text = self.scalar(runtime, &format!("services.{name}.runtime"))?;
        if text.trim() != "nvidia" {
            return None;
        }
        match env.get("NVIDIA_VISIBLE_DEVICES") {
            Some(Kv {
                value: Some(value),
                pos,
            }) => {
                let value = value.trim();
                match value {
                    "all" => Some((GpuClaim::All, *pos)),
                    // `none`: driver mounted, no GPU; `void`/empty: as without the runtime.
                    "none" | "void" | "" => None,
                    ids => {
                        let mut refs = UniqueRefs::default();
                        for part in ids.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                            refs.push(canonical_gpu_id(part), || self.loc(*pos));
                        }
                        Some((GpuClaim::Pinned(refs.into_vec()), *pos))
                    }
                }
            }
            _ => Some((GpuClaim::All, runtime.pos)),
        }
    }

    /// `CUDA_VISIBLE_DEVICES`: host ids when the container sees every GPU,
    /// container-local indices when GPUs are pinned (GPU004 when inconsistent).
    ///
    /// With `count: N` the container sees N GPUs, so the ids are container-local
    /// too; an index >= N is GPU004. Without any GPU claim the variable selects
    /// nothing and is ignored.
    fn cuda_visible_devices(
        &mut self,
        name: &str,
        env: &BTreeMap<String, Kv>,
        service: &mut Service,
    ) {
        let Some(Kv {
            value: Some(value),
            pos,
        }) = env.get("CUDA_VISIBLE_DEVICES")
        else {
            return;
        };
        let pos = *pos;
        let tokens: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if tokens.is_empty() {
            return;
        }
        let subject = format!("service:{name}");
        match &service.gpus {
            GpuClaim::None => {}
            GpuClaim::All => {
                let mut unique = UniqueRefs::default();
                for token in &tokens {
                    unique.push(canonical_gpu_id(token), || self.loc(pos));
                }
                let refs = unique.into_vec();
                let decimal = tokens.iter().any(|t| t.bytes().all(|b| b.is_ascii_digit()));
                let pci_order = env
                    .get("CUDA_DEVICE_ORDER")
                    .and_then(|kv| kv.value.as_deref())
                    .is_some_and(|v| v.trim() == "PCI_BUS_ID");
                if decimal && !pci_order {
                    self.push(
                        Rule::Gpu006,
                        vec![subject],
                        pos,
                        format!(
                            "service `{name}` selects host GPUs {} with CUDA_VISIBLE_DEVICES but does not set CUDA_DEVICE_ORDER=PCI_BUS_ID: CUDA numbers GPUs fastest-first, not in nvidia-smi order, so these may be other GPUs",
                            tokens.join(",")
                        ),
                    );
                }
                service.gpus = GpuClaim::Pinned(refs);
                service.gpus_at = Some(self.loc(pos));
            }
            GpuClaim::Count(n) => {
                let n = *n;
                let bad: Vec<&str> = tokens
                    .iter()
                    .copied()
                    .filter(|t| t.parse::<u32>().map_or(true, |k| k >= n))
                    .collect();
                if !bad.is_empty() {
                    self.push(
                        Rule::Gpu004,
                        vec![subject],
                        pos,
                        format!(
                            "service `{name}` sees {n} GPU(s) (count: {n}), numbered 0..{} inside the container, but CUDA_VISIBLE_DEVICES names {}",
                            n.saturating_sub(1),
                            bad.join(",")
                        ),
                    );
                }
            }
            GpuClaim::Pinned(refs) => {
                let refs = refs.clone();
                let pinned: Vec<&str> = refs.iter().map(|r| r.id.as_str()).collect();
                let pinned_set: FxHashSet<&str> = pinned.iter().copied().collect();
                let mut order: Vec<String> = Vec::new();
                let mut problems: Vec<String> = Vec::new();
                for token in &tokens {
                    if token.bytes().all(|b| b.is_ascii_digit()) {
                        match token.parse::<usize>().ok().and_then(|k| refs.get(k)) {
                            Some(r) => order.push(r.id.clone()),
                            None => problems.push(format!(
                                "index {token} is out of range: the container sees {} GPU(s), numbered 0..{}",
                                refs.len(),
                                refs.len().saturating_sub(1)
                            )),
                        }
                    } else if pinned_set.contains(token) {
                        order.push((*token).to_owned());
                    } else {
                        problems.push(format!("`{token}` is not one of the pinned GPUs"));
                    }
                }
                let used: FxHashSet<&str> = order.iter().map(String::as_str).collect();
                let dropped: Vec<&str> = pinned
                    .iter()
                    .copied()
                    .filter(|p| !used.contains(p))
                    .collect();
                if problems.is_empty() && !dropped.is_empty() {
                    problems.push(format!(
                        "it leaves pinned GPU(s) {} unused although the service holds them",
                        dropped.join(",")
                    ));
                }
                if problems.is_empty() {
                    order.dedup();
                    service.host_gpus = order;
                } else {
                    // A long variable may break many ways: name the first few.
                    const LISTED_PROBLEMS: usize = 8;
                    if problems.len() > LISTED_PROBLEMS {
                        let more = problems.len() - LISTED_PROBLEMS;
                        problems.truncate(LISTED_PROBLEMS);
                        problems.push(format!("and {more} more"));
                    }
                    let gpus_at = service.gpus_at.clone();
                    let finding = self.push(
                        Rule::Gpu004,
                        vec![subject],
                        pos,
                        format!(
                            "service `{name}` pins host GPUs {}; inside the container they are 0..{}, and CUDA_VISIBLE_DEVICES={}: {}",
                            pinned.join(","),
                            refs.len().saturating_sub(1),
                            tokens.join(","),
                            problems.join("; ")
                        ),
                    );
                    if let Some(location) = gpus_at {
                        finding.related.push(crate::finding::Related {
                            location,
                            message: "GPUs pinned here".into(),
                        });
                    }
                }
            }
        }
    }

    // -- command line -------------------------------------------------------

    fn command_tokens(&mut self, node: &Node, what: &str, out: &mut Vec<Token>) {
        match &node.value {
            Value::Scalar(_) if node.is_null() => {}
            Value::Scalar(s) => match shell_split(&s.text) {
                Ok(words) => {
                    let positions = self.locate_words(node.pos, &words);
                    out.extend(
                        words
                            .into_iter()
                            .zip(positions)
                            .map(|(text, pos)| Token { text, pos }),
                    );
                }
                Err(message) => self.rc002(node, what, format!("`{what}`: {message}")),
            },
            Value::Seq(items) => {
                for item in items {
                    match item.as_str() {
                        Some(text) => out.push(Token {
                            text: text.to_owned(),
                            pos: item.pos,
                        }),
                        None => {
                            let found = item.kind_name();
                            self.rc002(
                                item,
                                what,
                                format!("entries of `{what}` must be strings, found a {found}"),
                            );
                        }
                    }
                }
            }
            Value::Map(_) => self.rc002(
                node,
                what,
                format!("`{what}` must be a string or a list, found a mapping"),
            ),
        }
    }

    /// Finds each word of a command string in the source, so that a finding
    /// can point at the flag value rather than the start of the command. Words
    /// that cannot be found (their text came from a variable) get the position
    /// of the next unmatched raw word; failing that, the scalar's position.
    fn locate_words(&mut self, start: Pos, words: &[String]) -> Vec<Pos> {
        let mut out = vec![start; words.len()];
        let Some(mut cursor) = self.offset_of(start) else {
            return out;
        };
        let src = self.src;
        // Never wander further than the command could plausibly extend.
        let limit = src.len().min(cursor.saturating_add(16 * 1024));
        let is_sep = |c: char| {
            c.is_whitespace() || matches!(c, '"' | '\'' | '=' | '\\' | '>' | '|' | '-' | '+')
        };
        for (i, word) in words.iter().enumerate() {
            if word.is_empty() {
                continue;
            }
            let Some(rest) = src.get(cursor..limit) else {
                break;
            };
            // The word itself, after nothing but separators (quotes, a block
            // scalar header, line continuations)?
            let sep_len = rest.find(|c: char| !is_sep(c)).unwrap_or(rest.len());
            let exact = (0..=sep_len)
                .find(|&p| rest.get(p..).is_some_and(|r| r.starts_with(word.as_str())));
            let (at, len) = match exact {
                Some(p) => (cursor + p, word.len()),
                None => {
                    // A raw word such as `${TP}`: up to the next separator.
                    let skip = rest
                        .find(|c: char| {
                            !(c.is_whitespace() || matches!(c, '"' | '\'' | '=' | '\\'))
                        })
                        .unwrap_or(rest.len());
                    let raw = rest.get(skip..).unwrap_or("");
                    let len = raw
                        .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                        .unwrap_or(raw.len());
                    (cursor + skip, len)
                }
            };
            if let Some(pos) = self.pos_of_offset(at) {
                out[i] = pos;
            }
            cursor = at + len;
        }
        out
    }

    /// Where `snippet` first appears in the source at or after `start`
    /// (bounded: a value never spans more than 16 KiB of source). `None` when
    /// the text cannot be found verbatim (escapes in a quoted scalar).
    fn locate_snippet(&mut self, start: Pos, snippet: &str) -> Option<Pos> {
        let from = self.offset_of(start)?;
        let src = self.src;
        let limit = src.len().min(from.saturating_add(16 * 1024));
        let found = src.get(from..limit)?.find(snippet)?;
        self.pos_of_offset(from + found)
    }

    fn line_starts(&mut self) -> &[usize] {
        let src = self.src;
        self.line_starts.get_or_insert_with(|| {
            let mut starts = vec![0];
            starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
            starts
        })
    }

    fn offset_of(&mut self, pos: Pos) -> Option<usize> {
        let src = self.src;
        let line = usize::try_from(pos.line).ok()?.checked_sub(1)?;
        let start = *self.line_starts().get(line)?;
        let column = usize::try_from(pos.column).ok()?.checked_sub(1)?;
        let line_text = src.get(start..)?;
        let within = line_text
            .char_indices()
            .nth(column)
            .map_or(line_text.len(), |(i, _)| i);
        Some(start + within)
    }

    fn pos_of_offset(&mut self, offset: usize) -> Option<Pos> {
        let src = self.src;
        let starts = self.line_starts();
        let line = match starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.checked_sub(1)?,
        };
        let start = *starts.get(line)?;
        let column = src.get(start..offset)?.chars().count();
        Some(Pos {
            line: u32::try_from(line + 1).ok()?,
            column: u32::try_from(column + 1).ok()?,
        })
    }

    // -- parallelism (section 2.2) -----------------------------------------

    fn parallelism(
        &mut self,
        name: &str,
        argv: &[Token],
        env: &BTreeMap<String, Kv>,
        labels: &BTreeMap<String, Kv>,
        service: &mut Service,
    ) {
        const TP: &[&str] = &[
            "--tensor-parallel-size",
            "-tp",
            "--tp-size",
            "--tp",
            "--num-shard",
            "--tp_size",
        ];
        const PP: &[&str] = &["--pipeline-parallel-size", "-pp", "--pp-size", "--pp_size"];
        const DP: &[&str] = &["--data-parallel-size", "-dp", "--dp-size", "--dp"];
        // Command first; TGI's NUM_SHARD only when the command does not say
        // (the CLI flag wins over the environment, as in TGI itself); labels win.
        let mut tp = flag_value(argv, TP).map(|t| (t.text.clone(), t.pos));
        if tp.is_none()
            && let Some(Kv {
                value: Some(v),
                pos,
            }) = env.get("NUM_SHARD")
        {
            tp = Some((v.clone(), *pos));
        }
        let pp = flag_value(argv, PP).map(|t| (t.text.clone(), t.pos));
        let dp = flag_value(argv, DP).map(|t| (t.text.clone(), t.pos));
        let label = |key: &str| match labels.get(key) {
            Some(Kv {
                value: Some(v),
                pos,
            }) => Some((v.clone(), *pos)),
            _ => None,
        };
        let tp = label("catapult.tensor_parallel").or(tp);
        let pp = label("catapult.pipeline_parallel").or(pp);
        let dp = label("catapult.data_parallel").or(dp);
        for (value, slot, slot_at, what) in [
            (
                tp,
                &mut service.tensor_parallel,
                &mut service.tensor_parallel_at,
                "tensor parallel size",
            ),
            (
                pp,
                &mut service.pipeline_parallel,
                &mut service.pipeline_parallel_at,
                "pipeline parallel size",
            ),
            (
                dp,
                &mut service.data_parallel,
                &mut service.data_parallel_at,
                "data parallel size",
            ),
        ] {
            let Some((text, pos)) = value else { continue };
            match text.trim().parse::<u32>() {
                Ok(n) if n >= 1 => {
                    *slot = n;
                    *slot_at = Some(Location::new(&self.path, pos.line, pos.column));
                }
                _ => {
                    let message = format!(
                        "{}: service `{name}`: the {what} must be a positive integer, found `{text}`",
                        self.path
                    );
                    self.push(
                        Rule::Rc002,
                        vec![format!("services.{name}.{what}")],
                        pos,
                        message,
                    );
                }
            }
        }
    }

    // -- model (section 2.3) ------------------------------------------------

    fn model(
        &mut self,
        name: &str,
        argv: &[Token],
        env: &BTreeMap<String, Kv>,
        labels: &BTreeMap<String, Kv>,
        service: &mut Service,
    ) {
        let label = |key: &str| match labels.get(key) {
            Some(Kv {
                value: Some(v),
                pos,
            }) => Some((v.trim().to_owned(), *pos)),
            _ => None,
        };
        let flag = flag_value(argv, &["--model", "--model-path", "--model-id"])
            .or_else(|| positional_model(argv))
            .map(|t| t.text.clone());
        let env_model = ["MODEL", "MODEL_ID"]
            .iter()
            .find_map(|k| match env.get(*k) {
                Some(Kv { value: Some(v), .. }) if !v.trim().is_empty() => {
                    Some(v.trim().to_owned())
                }
                _ => None,
            });
        service.model_name = label("catapult.model")
            .map(|(v, _)| v)
            .or_else(|| flag.clone())
            .or(env_model);
        service.model_path = label("catapult.model_path").map(|(v, _)| v).or(flag);

        if let Some((text, pos)) = label("catapult.params_b") {
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => {
                    service.params_b = Some(v);
                    service.params_b_at = Some(self.loc(pos));
                }
                _ => {
                    let message = format!(
                        "{}: service `{name}`: label catapult.params_b must be a positive number of billions of parameters, found `{text}`",
                        self.path
                    );
                    self.push(
                        Rule::Rc002,
                        vec![format!("services.{name}.labels.catapult.params_b")],
                        pos,
                        message,
                    );
                }
            }
        }
        // Quantisation decides the weight bytes more than the activation dtype.
        service.dtype = label("catapult.dtype")
            .map(|(v, _)| v)
            .or_else(|| flag_value(argv, &["--quantization", "-q"]).map(|t| t.text.clone()))
            .or_else(|| flag_value(argv, &["--dtype"]).map(|t| t.text.clone()));
        if let Some((text, pos)) = label("catapult.num_attention_heads") {
            match text.parse::<u32>() {
                Ok(v) if v > 0 => {
                    service.num_attention_heads = Some(v);
                    service.num_attention_heads_at = Some(self.loc(pos));
                }
                _ => {
                    let message = format!(
                        "{}: service `{name}`: label catapult.num_attention_heads must be a positive integer, found `{text}`",
                        self.path
                    );
                    self.push(
                        Rule::Rc002,
                        vec![format!(
                            "services.{name}.labels.catapult.num_attention_heads"
                        )],
                        pos,
                        message,
                    );
                }
            }
        }
        if let Some(token) =
            flag_value(argv, &["--gpu-memory-utilization", "--mem-fraction-static"])
        {
            match token.text.trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 1.0 => {
                    service.memory_utilization = v;
                    service.memory_utilization_at = Some(self.loc(token.pos));
                }
                _ => {
                    let message = format!(
                        "{}: service `{name}`: the GPU memory fraction must be a number in (0, 1], found `{}`",
                        self.path, token.text
                    );
                    let pos = token.pos;
                    self.push(
                        Rule::Rc002,
                        vec![format!("services.{name}.memory_utilization")],
                        pos,
                        message,
                    );
                }
            }
        }
    }

    // -- ports --------------------------------------------------------------

    fn ports(
        &mut self,
        name: &str,
        node: &Node,
        argv: &[Token],
        env: &BTreeMap<String, Kv>,
        service: &mut Service,
    ) {
        let path = format!("services.{name}.ports");
        if let Some(mode) = node.get("network_mode")
            && let Some(text) = self.scalar(mode, &format!("services.{name}.network_mode"))
            && text.trim() == "host"
        {
            service.network_mode_host = true;
            // Docker ignores `ports:` in host mode; the server's own port is the host port.
            let port = match flag_value(argv, &["--port"]) {
                Some(token) => Some((token.text.clone(), token.pos)),
                None => match (service.server, env.get("PORT")) {
                    (
                        Some(ServerKind::Tgi),
                        Some(Kv {
                            value: Some(v),
                            pos,
                        }),
                    ) => Some((v.clone(), *pos)),
                    (Some(kind), _) => Some((kind.default_port().to_string(), mode.pos)),
                    (None, _) => None,
                },
            };
            if let Some((text, pos)) = port {
                match text.trim().parse::<u16>() {
                    Ok(port) if port > 0 => service.ports.push(PublishedPort {
                        host: port,
                        container: None,
                        host_ip: None,
                        protocol: "tcp".into(),
                        pos: self.loc(pos),
                    }),
                    _ => {
                        let message = format!(
                            "{}: service `{name}`: `--port` must be a port number 1..65535, found `{text}`",
                            self.path
                        );
                        self.push(
                            Rule::Rc002,
                            vec![format!("services.{name}.--port")],
                            pos,
                            message,
                        );
                    }
                }
            }
            return;
        }
        let Some(ports) = node.get("ports") else {
            return;
        };
        if ports.is_null() {
            return;
        }
        let Some(items) = ports.as_seq() else {
            let found = ports.kind_name();
            self.rc002(
                ports,
                &path,
                format!("`{path}` must be a list, found a {found}"),
            );
            return;
        };
        for item in items {
            let parsed = match &item.value {
                Value::Scalar(s) => parse_short_port(&s.text),
                Value::Map(_) => self.long_port(item),
                Value::Seq(_) => {
                    Err("a port must be a string or a mapping, found a list".to_owned())
                }
            };
            match parsed {
                Ok(bindings) => {
                    for (host_ip, host, container, protocol) in bindings {
                        service.ports.push(PublishedPort {
                            host,
                            container,
                            host_ip: host_ip.clone(),
                            protocol: protocol.clone(),
                            pos: self.loc(item.pos),
                        });
                    }
                }
                Err(message) => self.rc002(item, &path, format!("`{path}`: {message}")),
            }
        }
    }

    /// `{target, published, host_ip, protocol}`.
    fn long_port(&mut self, item: &Node) -> Result<Vec<Binding>, String> {
        let text = |key: &str| -> Result<Option<String>, String> {
            match item.get(key) {
                None => Ok(None),
                Some(n) if n.is_null() => Ok(None),
                Some(n) => n
                    .as_str()
                    .map(|s| Some(s.trim().to_owned()))
                    .ok_or_else(|| format!("`{key}` must be a scalar, found a {}", n.kind_name())),
            }
        };
        let target = text("target")?.ok_or_else(|| "a long-form port needs `target`".to_owned())?;
        let container = parse_range(&target)?;
        let protocol = text("protocol")?
            .unwrap_or_else(|| "tcp".to_owned())
            .to_ascii_lowercase();
        let host_ip = text("host_ip")?.filter(|s| !s.is_empty());
        let Some(published) = text("published")?.filter(|s| !s.is_empty()) else {
            return Ok(Vec::new());
        };
        let host = parse_range(&published)?;
        bindings(host_ip, host, container, &protocol)
    }
}

/// (host ip, host port, container port, protocol)
type Binding = (Option<String>, u16, Option<u16>, String);

/// Long ranges would make a binding per port; a larger one is a mistake.
const MAX_PORT_RANGE: u32 = 4096;

/// Short syntax: `[HOST_IP:][HOST[-END]:]CONTAINER[-END][/PROTOCOL]`. Only
/// bindings with a fixed host port are returned (a bare container port gets a
/// random host port).
pub(crate) fn parse_short_port(text: &str) -> Result<Vec<Binding>, String> {
    let text = text.trim();
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((spec, proto)) => (spec, proto.to_ascii_lowercase()),
        None => (text, "tcp".to_owned()),
    };
    // `[::1]:8000:8000`: an IPv6 host address in brackets.
    let (host_ip, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) = after
            .split_once("]:")
            .ok_or_else(|| format!("`{text}` is not a valid port mapping"))?;
        (Some(ip.to_owned()), rest)
    } else {
        (None, spec)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, host, container) = match (host_ip, parts.as_slice()) {
        (None, [container]) => (None, None, *container),
        (None, [host, container]) => (None, Some(*host), *container),
        (None, [ip, host, container]) => (Some((*ip).to_owned()), Some(*host), *container),
        (Some(ip), [host, container]) => (Some(ip), Some(*host), *container),
        _ => return Err(format!("`{text}` is not a valid port mapping")),
    };
    let container = parse_range(container).map_err(|e| format!("`{text}`: {e}"))?;
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return Ok(Vec::new());
    };
    let host = parse_range(host).map_err(|e| format!("`{text}`: {e}"))?;
    let host_ip = host_ip.filter(|ip| !ip.is_empty());
    bindings(host_ip, host, container, &protocol)
}

fn bindings(
    host_ip: Option<String>,
    host: (u16, u16),
    container: (u16, u16),
    protocol: &str,
) -> Result<Vec<Binding>, String> {
    let host_len = u32::from(host.1 - host.0) + 1;
    let container_len = u32::from(container.1 - container.0) + 1;
    if host_len > MAX_PORT_RANGE {
        return Err(format!(
            "port range {}-{} is longer than {MAX_PORT_RANGE} ports",
            host.0, host.1
        ));
    }
    if container_len != 1 && container_len != host_len {
        return Err(format!(
            "host range {}-{} and container range {}-{} differ in length",
            host.0, host.1, container.0, container.1
        ));
    }
    let mut out = Vec::new();
    for offset in 0..host_len {
        let Ok(offset) = u16::try_from(offset) else {
            break;
        };
        let container_port = if container_len == 1 {
            container.0
        } else {
            container.0 + offset
        };
        out.push((
            host_ip.clone(),
            host.0 + offset,
            Some(container_port),
            protocol.to_owned(),
        ));
    }
    Ok(out)
}

fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let text = text.trim();
    let port = |t: &str| -> Result<u16, String> {
        match t.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!("`{t}` is not a port number 1..65535")),
        }
    };
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return Err(format!("port range `{text}` runs backwards"));
            }
            Ok((a, b))
        }
        None => {
            let p = port(text)?;
            Ok((p, p))
        }
    }
}

fn combine_requests(requests: Vec<(Request, Pos)>) -> Option<(GpuClaim, Pos)> {
    // Several GPU requests in one service: `all` dominates; pinned ids add up;
    // any counted request makes the whole claim a count (unpinned).
    let pos = requests.first()?.1;
    if let Some((_, pos)) = requests.iter().find(|(r, _)| matches!(r, Request::All)) {
        return Some((GpuClaim::All, *pos));
    }
    let mut refs = UniqueRefs::default();
    let mut count: Option<u32> = None;
    for (request, _) in requests {
        match request {
            Request::Pinned(ids) => {
                for r in ids {
                    refs.push(r.id, || r.pos);
                }
            }
            Request::Count(n) => count = Some(count.unwrap_or(0).saturating_add(n)),
            Request::All => {}
        }
    }
    let refs = refs.into_vec();
    match count {
        Some(n) => {
            let pinned = u32::try_from(refs.len()).unwrap_or(u32::MAX);
            Some((GpuClaim::Count(n.saturating_add(pinned)), pos))
        }
        None => Some((GpuClaim::Pinned(refs), pos)),
    }
}

/// Pinned GPUs in the order first named, each id once, without comparing
/// every id with every other (a list may hold thousands).
#[derive(Default)]
struct UniqueRefs {
    refs: Vec<GpuRef>,
    seen: FxHashSet<String>,
}

impl UniqueRefs {
    /// Adds `id` unless already there; `pos` is only built for a new id.
    fn push(&mut self, id: String, pos: impl FnOnce() -> Location) {
        if !self.seen.contains(&id) {
            self.seen.insert(id.clone());
            self.refs.push(GpuRef { id, pos: pos() });
        }
    }

    fn into_vec(self) -> Vec<GpuRef> {
        self.refs
    }
}

/// The value of the last occurrence of any of `names`. `--flag=value` has been
/// split into two tokens already (`split_inline_values`), so both forms match.
/// Long flags match with `_` and `-` interchangeable, as vLLM accepts both.
fn flag_value<'t>(argv: &'t [Token], names: &[&str]) -> Option<&'t Token> {
    let mut found = None;
    let mut i = 0;
    while let Some(token) = argv.get(i) {
        if token.text.starts_with('-')
            && names.iter().any(|n| flag_eq(&token.text, n))
            && let Some(next) = argv.get(i + 1)
        {
            found = Some(next);
            i += 1;
        }
        i += 1;
    }
    found
}

fn flag_eq(flag: &str, name: &str) -> bool {
    if flag == name {
        return true;
    }
    flag.starts_with("--")
        && name.starts_with("--")
        && flag.len() == name.len()
        && flag
            .bytes()
            .zip(name.bytes())
            .all(|(a, b)| a == b || (a == b'_' && b == b'-') || (a == b'-' && b == b'_'))
}

/// `vllm serve <model>` and `trtllm-serve [serve] <model>`.
fn positional_model(argv: &[Token]) -> Option<&Token> {
    for (i, token) in argv.iter().enumerate() {
        let base = token.text.rsplit('/').next().unwrap_or(&token.text);
        let after = if base == "vllm" && argv.get(i + 1).is_some_and(|t| t.text == "serve") {
            i + 2
        } else if base == "trtllm-serve" {
            if argv.get(i + 1).is_some_and(|t| t.text == "serve") {
                i + 2
            } else {
                i + 1
            }
        } else {
            continue;
        };
        return argv.get(after).filter(|t| !t.text.starts_with('-'));
    }
    None
}

fn detect_server(argv: &[Token], image: Option<&str>) -> Option<ServerKind> {
    let from_text = |text: &str| -> Option<ServerKind> {
        let text = text.to_ascii_lowercase();
        if text.contains("trtllm") || text.contains("tensorrt") {
            Some(ServerKind::Trtllm)
        } else if text.contains("sglang") {
            Some(ServerKind::Sglang)
        } else if text.contains("text-generation-launcher")
            || text.contains("text-generation-inference")
        {
            Some(ServerKind::Tgi)
        } else if text.contains("vllm") {
            Some(ServerKind::Vllm)
        } else {
            None
        }
    };
    argv.iter()
        .find_map(|t| from_text(&t.text))
        .or_else(|| image.and_then(from_text))
}

/// `sh -c "vllm serve ..."`: the script's words are read as part of the command.
fn expand_shell_scripts(argv: &mut Vec<Token>, reader: &mut Reader<'_>) {
    let mut extra = Vec::new();
    for (i, token) in argv.iter().enumerate() {
        let base = token.text.rsplit('/').next().unwrap_or(&token.text);
        if !matches!(base, "sh" | "bash" | "dash" | "zsh" | "ash") {
            continue;
        }
        let Some(flag) = argv.get(i + 1) else {
            continue;
        };
        if !(flag.text.starts_with('-') && !flag.text.starts_with("--") && flag.text.contains('c'))
        {
            continue;
        }
        if let Some(script) = argv.get(i + 2)
            && let Ok(words) = shell_split(&script.text)
        {
            let positions = reader.locate_words(script.pos, &words);
            extra.extend(
                words
                    .into_iter()
                    .zip(positions)
                    .map(|(text, pos)| Token { text, pos }),
            );
        }
    }
    argv.extend(extra);
}

/// `--flag=value` becomes two tokens `--flag` `value`, so lookups treat both
/// forms alike; the value's column is just after the `=`.
fn split_inline_values(argv: &mut Vec<Token>) {
    let mut out = Vec::with_capacity(argv.len());
    for token in argv.drain(..) {
        if token.text.starts_with('-')
            && let Some((flag, value)) = token.text.split_once('=')
        {
            let flag_chars = u32::try_from(flag.chars().count() + 1).unwrap_or(0);
            let value_pos = Pos {
                line: token.pos.line,
                column: token.pos.column.saturating_add(flag_chars),
            };
            out.push(Token {
                text: flag.to_owned(),
                pos: token.pos,
            });
            out.push(Token {
                text: value.to_owned(),
                pos: value_pos,
            });
        } else {
            out.push(token);
        }
    }
    *argv = out;
}

/// Splits a command string like a POSIX shell: whitespace separates words,
/// single quotes are literal, double quotes allow `\"` `\\` `\$` `` \` ``, a
/// backslash outside quotes escapes the next character, backslash-newline
/// continues the line.
pub fn shell_split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => {
                    in_word = true;
                    word.push('\\');
                }
            },
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids() {
        assert_eq!(canonical_gpu_id("03"), "3");
        assert_eq!(canonical_gpu_id("0"), "0");
        assert_eq!(canonical_gpu_id("000"), "0");
        assert_eq!(canonical_gpu_id(" 12 "), "12");
        assert_eq!(canonical_gpu_id("GPU-8a1b"), "GPU-8a1b");
        assert_eq!(canonical_gpu_id("MIG-GPU-1/2/0"), "MIG-GPU-1/2/0");
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_split("a  'b c' \"d \\\"e\\\"\" f\\ g").unwrap(),
            ["a", "b c", "d \"e\"", "f g"]
        );
        assert_eq!(
            shell_split("--x=1 \\\n --y 2").unwrap(),
            ["--x=1", "--y", "2"]
        );
        assert!(shell_split("'open").is_err());
        assert_eq!(shell_split("").unwrap(), Vec::<String>::new());
        assert_eq!(shell_split("''").unwrap(), [""]);
    }

    #[test]
    fn short_ports() {
        let p = |s: &str| {
            parse_short_port(s).map(|v| {
                v.into_iter()
                    .map(|b| (b.0, b.1, b.2, b.3))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(p("8000").unwrap(), vec![]);
        assert_eq!(
            p("8000:80").unwrap(),
            vec![(None, 8000, Some(80), "tcp".into())]
        );
        assert_eq!(
            p("127.0.0.1:8001:8000").unwrap(),
            vec![(Some("127.0.0.1".into()), 8001, Some(8000), "tcp".into())]
        );
        assert_eq!(p("127.0.0.1::8000").unwrap(), vec![]);
        assert_eq!(
            p("[::1]:9000:9000/udp").unwrap(),
            vec![(Some("::1".into()), 9000, Some(9000), "udp".into())]
        );
        assert_eq!(
            p("8000-8001:9000-9001").unwrap(),
            vec![
                (None, 8000, Some(9000), "tcp".into()),
                (None, 8001, Some(9001), "tcp".into())
            ]
        );
        assert!(p("8000-8002:9000-9001").is_err());
        assert!(p("x:80").is_err());
        assert!(p("70000:80").is_err());
        assert!(p("1-65535:80").is_err());
    }
}
