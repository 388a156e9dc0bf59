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

use serde::Serialize;

use crate::dotenv;
use crate::finding::{Finding, Location, Rule};
use crate::interpolate::{self, Vars};
use crate::yaml::{self, Limits, Node, Pos, Value};

mod gpus;
mod model;
mod ports;
mod values;
mod words;

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
    pub content: Option<(crate::repo::ContentId, Option<crate::repo::ContentId>)>,
}

impl Deployment {
    /// This deployment as read from the same content at other paths: what
    /// [`read_deployment`] gives there, when it gave no findings here. The
    /// reader's output names its id and paths only in findings, in
    /// [`Deployment`]'s own fields and in the [`Location`]s of a service
    /// (its key and its ports); a new `Location` field of [`Service`] must be
    /// renamed here too (the `relabeled_deployments_are_fresh_reads` test
    /// compares the two on the reference corpus).
    pub fn relabeled(
        &self,
        id: DeploymentId,
        compose_path: &str,
        env_path: Option<&str>,
    ) -> Deployment {
        let path: Arc<str> = Arc::from(compose_path);
        let services = self
            .services
            .iter()
            .map(|service| {
                let mut service = service.clone();
                service.location.path = Arc::clone(&path);
                for port in &mut service.ports {
                    port.pos.path = Arc::clone(&path);
                }
                service
            })
            .collect();
        Deployment {
            id,
            compose_path: compose_path.to_owned(),
            env_path: env_path.map(str::to_owned),
            services,
            content: self.content,
        }
    }

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
    pub id: GpuText,
    /// In the service's compose file ([`Service::at`]).
    pub pos: Pos,
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
                let ids: Vec<&str> = ids.iter().map(|g| &*g.id).collect();
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
    /// `tcp`, `udp` or `sctp` (lowercase, as written otherwise); the common
    /// ones are one shared copy each (see `ports::protocol`).
    pub protocol: Arc<str>,
    pub pos: Location,
}

impl PublishedPort {
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
    pub name: Arc<str>,
    pub image: Option<Arc<str>>,
    /// The service's key in `services:`. Every other position of the service
    /// (the `*_at` fields, a [`Pos`] each) is in this file: see
    /// [`Service::located`].
    pub location: Location,
    pub gpus: GpuClaim,
    /// Where the claim is declared (device request, `gpus:`, `runtime:`, the
    /// variable), `None` without a claim.
    pub gpus_at: Option<Pos>,
    /// The host GPU ids the service holds, canonical, in the order the
    /// container numbers them (empty unless the claim is `Pinned`).
    pub host_gpus: Vec<GpuText>,
    pub tensor_parallel: u32,
    pub tensor_parallel_at: Option<Pos>,
    pub pipeline_parallel: u32,
    pub pipeline_parallel_at: Option<Pos>,
    pub data_parallel: u32,
    pub data_parallel_at: Option<Pos>,
    pub model_name: Option<Arc<str>>,
    pub model_path: Option<Arc<str>>,
    /// Billions of parameters (label `catapult.params_b`).
    pub params_b: Option<f64>,
    pub params_b_at: Option<Pos>,
    pub dtype: Option<Arc<str>>,
    pub num_attention_heads: Option<u32>,
    pub num_attention_heads_at: Option<Pos>,
    /// Key/value heads (label `catapult.num_kv_heads`; grouped-query attention).
    pub num_kv_heads: Option<u32>,
    pub num_kv_heads_at: Option<Pos>,
    /// Fraction of each GPU's memory the server takes (default 0.9).
    pub memory_utilization: f64,
    pub memory_utilization_at: Option<Pos>,
    /// Label `catapult.gpu_sharing: "true"`.
    pub gpu_sharing: bool,
    pub ports: Vec<PublishedPort>,
    pub network_mode_host: bool,
    pub server: Option<ServerKind>,
}

impl Service {
    /// `pos` of this service as a location in its compose file. (Positions are
    /// stored without the path: 16 bytes less each, nine per service.)
    pub fn located(&self, pos: Option<Pos>) -> Option<Location> {
        pos.map(|pos| self.at(pos))
    }

    /// `pos` (of this service: a GPU id, a claim) in its compose file.
    pub fn at(&self, pos: Pos) -> Location {
        Location::new(&self.location.path, pos.line, pos.column)
    }

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
pub(crate) fn canonical_gpu_id(raw: &str) -> GpuText {
    let raw = raw.trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        let digits = raw.trim_start_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        match digits.parse::<usize>() {
            Ok(index) if index < SHARED_GPU_INDEXES => {
                let shared = SHARED_GPU_IDS.get_or_init(|| {
                    (0..SHARED_GPU_INDEXES)
                        .map(|i| GpuText::from(i.to_string()))
                        .collect()
                });
                match shared.get(index) {
                    Some(id) => Arc::clone(id),
                    None => GpuText::from(digits),
                }
            }
            _ => GpuText::from(digits),
        }
    } else {
        GpuText::from(raw)
    }
}

/// A canonical GPU id (`"3"`, or a UUID / MIG id as written), shared: a fleet names the same
/// few indexes hundreds of thousands of times.
pub type GpuText = Arc<str>;

/// Indexes `0..SHARED_GPU_INDEXES` are one allocation each for the whole process (a service's
/// claim and its host GPUs were two small strings per GPU: 320,000 allocations at 20,000
/// machines).
const SHARED_GPU_INDEXES: usize = 256;
static SHARED_GPU_IDS: std::sync::OnceLock<Vec<GpuText>> = std::sync::OnceLock::new();

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
    if let Some((env_path, env_src)) = env {
        let (read, env_findings) = read_env(&id, env_path, env_src);
        vars = read;
        findings.extend(env_findings);
    }
    let (services, compose_findings) = read_compose(&id, compose_path, compose_src, &vars, limits);
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

/// Reads a `.env` file: a malformed statement is RC003 at its line (the
/// other variables still count), an unset variable in a value RC005.
pub fn read_env(id: &DeploymentId, path: &str, src: &str) -> (Vars, Vec<Finding>) {
    let env = dotenv::parse_env_file(src);
    let finding = |rule: Rule, line: u32, subject: String, message: String| {
        Finding::new(
            rule,
            Some(&id.machine),
            [id.to_string()],
            [subject],
            Location::new(path, line, 1),
            message,
        )
    };
    let mut findings: Vec<Finding> = env
        .errors
        .into_iter()
        .map(|e| {
            finding(
                Rule::Rc003,
                e.line,
                format!("{path}:{}", e.line),
                format!("{path} line {}: {}", e.line, e.message),
            )
        })
        .collect();
    let mut reported = Vec::new();
    for (line, var) in env.unset {
        if reported.contains(&var) {
            continue;
        }
        findings.push(finding(
            Rule::Rc005,
            line,
            var.clone(),
            format!("{path} line {line}: variable `{var}` is not set above this line; it becomes an empty string"),
        ));
        reported.push(var);
    }
    (env.vars, findings)
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
    let mut reader = Reader::new(id, path, src, vars, false);
    let services = reader.read(limits);
    (services, reader.findings)
}

/// What Compose itself makes of the fields of a service the engine reads,
/// before any meaning is given to them: the environment (a bare `KEY` takes
/// its `.env` value, else it stays unset), labels, and the command and
/// entrypoint words. The differential test compares these with Docker
/// Compose's own reading; the engine's model is built from exactly these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFields {
    pub name: String,
    pub environment: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub command: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
}

/// [`ServiceFields`] of every service that could be read; findings aside.
pub fn read_fields(
    id: &DeploymentId,
    path: &str,
    src: &str,
    vars: &Vars,
    limits: &Limits,
) -> Vec<ServiceFields> {
    let mut reader = Reader::new(id, path, src, vars, true);
    reader.read(limits);
    reader.fields.unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Reader

struct Reader<'a> {
    id: &'a DeploymentId,
    /// Shared by every location the reader makes.
    path: Arc<str>,
    src: &'a str,
    /// The deployment's `.env`: interpolation, and bare `KEY` in `environment`.
    vars: &'a Vars,
    /// Byte offsets of line starts, computed when a token must be located.
    line_starts: Option<Vec<usize>>,
    findings: Vec<Finding>,
    /// Collected only for [`read_fields`].
    fields: Option<Vec<ServiceFields>>,
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

impl<'a> Reader<'a> {
    fn new(
        id: &'a DeploymentId,
        path: &str,
        src: &'a str,
        vars: &'a Vars,
        keep_fields: bool,
    ) -> Reader<'a> {
        Reader {
            id,
            path: Arc::from(path),
            src,
            vars,
            line_starts: None,
            findings: Vec::new(),
            fields: keep_fields.then(Vec::new),
        }
    }

    /// Parses, interpolates and reads every service.
    fn read(&mut self, limits: &Limits) -> Vec<Service> {
        let path = Arc::clone(&self.path);
        let mut root = match yaml::parse(self.src, limits) {
            Ok(root) => root,
            Err(e) => {
                self.push(
                    Rule::Rc001,
                    Vec::new(),
                    e.pos,
                    format!("{path} cannot be read as YAML: {}", e.message),
                );
                return Vec::new();
            }
        };
        if root.as_map().is_none() {
            let found = root.kind_name();
            self.rc002(
                &root,
                "compose file",
                format!("the compose file must be a mapping, found a {found}"),
            );
            return Vec::new();
        }
        self.interpolate_root(&mut root);
        let services = match root.get("services") {
            None => {
                self.rc002(
                    &root,
                    "services",
                    "the compose file has no `services` mapping".to_owned(),
                );
                return Vec::new();
            }
            Some(node) => match node.as_map() {
                Some(entries) => entries,
                None if node.is_null() => &[],
                None => {
                    let found = node.kind_name();
                    self.rc002(
                        node,
                        "services",
                        format!("`services` must be a mapping, found a {found}"),
                    );
                    return Vec::new();
                }
            },
        };
        let mut out = Vec::with_capacity(services.len());
        for (key, value) in services {
            let Some(name) = key.as_str() else {
                self.rc002(
                    key,
                    "services",
                    "a service name must be a string".to_owned(),
                );
                continue;
            };
            if let Some(service) = self.service(name, key, value) {
                out.push(service);
            }
        }
        out
    }

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

    fn interpolate_root(&mut self, root: &mut Node) {
        let vars = self.vars;
        // Unset variables: reported once per variable, at the first use.
        let mut unset: BTreeMap<String, Vec<Pos>> = BTreeMap::new();
        if let Value::Map(entries) = &mut root.value {
            // `x-*` extension fields too: Compose interpolates them (a missing
            // required variable there is an error) before ignoring them.
            for (_, value) in entries.iter_mut() {
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
                        // YAML typed the text before interpolation: a value
                        // with a `$` is a string, even when it becomes empty.
                        scalar.plain = false;
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

    /// `environment` / `labels`: a mapping or a list of `KEY=value`, read as
    /// Compose reads them. A bare `KEY` (`KEY`, `KEY:`, `KEY: ~`) of the
    /// environment takes its value from the `.env` (else it stays unset); a
    /// bare label is the empty string. Map values are typed by YAML and
    /// printed back as Go prints them; list entries must be strings, each
    /// one once.
    fn key_values(
        &mut self,
        node: Option<&Node>,
        what: &str,
        labels: bool,
    ) -> BTreeMap<String, Kv> {
        let mut out = BTreeMap::new();
        let Some(node) = node else { return out };
        if node.is_null() {
            return out;
        }
        let bare = |reader: &Self, key: &str| -> Option<String> {
            if labels {
                Some(String::new())
            } else {
                reader.vars.get(key).cloned()
            }
        };
        match &node.value {
            Value::Map(entries) => {
                for (key, value) in entries {
                    let Some(key) = key.as_str() else {
                        self.rc002(key, what, format!("keys of `{what}` must be strings"));
                        continue;
                    };
                    let value_text = match &value.value {
                        Value::Scalar(scalar) => match values::typed(scalar) {
                            values::Typed::Null => bare(self, key),
                            values::Typed::Value(text) => Some(text),
                            values::Typed::Str(text) => Some(text.to_owned()),
                            values::Typed::Timestamp => {
                                self.rc002(
                                    value,
                                    &format!("{what}.{key}"),
                                    format!("`{what}.{key}` is a timestamp to YAML; quote it to make it a string"),
                                );
                                continue;
                            }
                        },
                        _ => {
                            let found = value.kind_name();
                            self.rc002(
                                value,
                                &format!("{what}.{key}"),
                                format!("`{what}.{key}` must be a string, number, boolean or null, found a {found}"),
                            );
                            continue;
                        }
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
                let mut seen: Vec<&str> = Vec::with_capacity(items.len());
                for item in items {
                    let Some(text) = self.string_entry(item, what) else {
                        continue;
                    };
                    if seen.contains(&text) {
                        self.rc002(
                            item,
                            what,
                            format!(
                                "`{what}` lists `{text}` twice (Compose refuses repeated entries)"
                            ),
                        );
                        continue;
                    }
                    seen.push(text);
                    let (key, value) = match text.split_once('=') {
                        Some((k, v)) => (k, Some(v.to_owned())),
                        None => (text, bare(self, text)),
                    };
                    out.insert(
                        key.to_owned(),
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

    /// An entry of a list whose entries must be strings (`command`,
    /// `device_ids`, environment and label lists): YAML must type it as a
    /// string, as Compose's schema requires; RC002 otherwise.
    fn string_entry<'n>(&mut self, item: &'n Node, what: &str) -> Option<&'n str> {
        let found = match &item.value {
            Value::Scalar(scalar) => match values::typed(scalar) {
                values::Typed::Str(text) => return Some(text),
                other => other.kind(),
            },
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        };
        self.rc002(
            item,
            what,
            format!("entries of `{what}` must be strings, found a {found} (quote it)"),
        );
        None
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
        let env = self.key_values(node.get("environment"), &at("environment"), false);
        let labels = self.key_values(node.get("labels"), &at("labels"), true);

        let mut argv = Vec::new();
        let mut words_of = [None, None];
        for (field, words) in ["entrypoint", "command"].into_iter().zip(&mut words_of) {
            if let Some(value) = node.get(field) {
                let start = argv.len();
                if self.command_tokens(value, &at(field), &mut argv) {
                    *words = Some(argv[start..].iter().map(|t| t.text.clone()).collect());
                }
            }
        }
        if let Some(fields) = &mut self.fields {
            let [entrypoint, command] = words_of;
            fields.push(ServiceFields {
                name: name.to_owned(),
                environment: env
                    .iter()
                    .map(|(k, kv)| (k.clone(), kv.value.clone()))
                    .collect(),
                labels: labels
                    .iter()
                    .map(|(k, kv)| (k.clone(), kv.value.clone().unwrap_or_default()))
                    .collect(),
                command,
                entrypoint,
            });
        }
        words::expand_shell_scripts(&mut argv, self);
        words::split_inline_values(&mut argv);
        let server = model::detect_server(&argv, image.as_deref());

        let mut service = Service {
            name: Arc::from(name),
            image: image.map(Arc::from),
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
            num_kv_heads: None,
            num_kv_heads_at: None,
            memory_utilization: 0.9,
            memory_utilization_at: None,
            gpu_sharing: false,
            ports: Vec::new(),
            network_mode_host: false,
            server,
        };

        self.gpu_claim(name, node, &env, &mut service);
        self.parallelism(name, &argv, &env, &labels, &mut service);
        let entrypoint_given = node.get("entrypoint").is_some_and(|e| !e.is_null());
        self.model(name, &argv, &env, &labels, entrypoint_given, &mut service);
        self.ports(name, node, &argv, &env, &mut service);
        service.gpu_sharing = labels
            .get("catapult.gpu_sharing")
            .and_then(|kv| kv.value.as_deref())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        Some(service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids() {
        assert_eq!(&*canonical_gpu_id("03"), "3");
        assert_eq!(&*canonical_gpu_id("0"), "0");
        assert_eq!(&*canonical_gpu_id("000"), "0");
        assert_eq!(&*canonical_gpu_id(" 12 "), "12");
        assert_eq!(&*canonical_gpu_id("GPU-8a1b"), "GPU-8a1b");
        assert_eq!(&*canonical_gpu_id("MIG-GPU-1/2/0"), "MIG-GPU-1/2/0");
        assert_eq!(&*canonical_gpu_id("300"), "300");
        // Small indexes share one allocation process-wide.
        assert!(Arc::ptr_eq(&canonical_gpu_id("07"), &canonical_gpu_id("7")));
    }
}
