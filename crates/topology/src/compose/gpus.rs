//! GPU claims (contract section 2.1): device requests, `gpus:`, the NVIDIA
//! runtime, CDI device names, and `CUDA_VISIBLE_DEVICES` on top of them.

use std::collections::BTreeMap;

use std::sync::Arc;

use rustc_hash::FxHashSet;

use super::{GpuClaim, GpuRef, GpuText, Kv, Reader, Request, Service, canonical_gpu_id};

/// The CDI name prefix of NVIDIA GPUs (`nvidia.com/gpu=0`).
const CDI_GPU: &str = "nvidia.com/gpu=";
use crate::finding::Rule;
use crate::yaml::{Node, Pos, Value};

impl Reader<'_> {
    pub(super) fn gpu_claim(
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
            claim = self.cdi_devices(node);
        }
        if claim.is_none() {
            claim = self.nvidia_runtime(name, node, env);
        }
        let Some((claim, pos)) = claim else { return };
        service.gpus_at = Some(pos);
        service.gpus = claim;
        self.cuda_visible_devices(name, env, service);
        if let GpuClaim::Pinned(refs) = &service.gpus
            && service.host_gpus.is_empty()
        {
            service.host_gpus = refs.iter().map(|r| r.id.clone()).collect();
        }
    }

    /// `deploy.resources.reservations.devices[]` with capability `gpu` or driver `nvidia`.
    pub(super) fn device_requests(&mut self, name: &str, node: &Node) -> Option<(GpuClaim, Pos)> {
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
    pub(super) fn service_gpus(&mut self, name: &str, node: &Node) -> Option<(GpuClaim, Pos)> {
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

    pub(super) fn device_request(
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
        if !implied_gpu && item.get("capabilities").is_none() {
            self.rc002(
                item,
                &format!("{path}.capabilities"),
                format!("a device request of `{path}` needs `capabilities` (Compose refuses it without; write `capabilities: [gpu]`)"),
            );
        }
        let mut is_gpu = implied_gpu;
        if let Some(driver) = item.get("driver").and_then(|d| d.as_str()) {
            is_gpu |= driver.trim() == "nvidia";
        }
        if let Some(caps) = item.get("capabilities") {
            match caps.as_seq() {
                Some(caps) => {
                    // Docker's API allows a list of lists; Compose writes a flat list.
                    let what = format!("{path}.capabilities");
                    for cap in caps {
                        if let Some(text) = self.string_entry(cap, &what) {
                            is_gpu |= text.trim() == "gpu";
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
        let count = item.get("count").filter(|c| !c.is_null());
        let device_ids = item.get("device_ids").filter(|d| !d.is_null());
        // Compose checks every request, GPU or not.
        let count_request = count.and_then(|c| self.count(c, path));
        let cdi = item
            .get("driver")
            .and_then(Node::as_str)
            .is_some_and(|d| d.trim() == "cdi");
        if cdi && let Some(ids) = device_ids.and_then(Node::as_seq) {
            is_gpu |= ids
                .iter()
                .any(|i| i.as_str().is_some_and(|t| t.starts_with(CDI_GPU)));
        }
        let pinned = device_ids.and_then(|d| self.device_ids(d, path, is_gpu));
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
        if !is_gpu {
            return None;
        }
        match (pinned, count_request) {
            (Some(request), _) => Some((request, device_ids.map_or(item.pos, |d| d.pos))),
            (None, Some(request)) => Some((request, count.map_or(item.pos, |c| c.pos))),
            // Neither (or both unreadable): the compose-spec default is `count: all`.
            (None, None) if count.is_none() && device_ids.is_none() => {
                Some((Request::All, item.pos))
            }
            (None, None) => None,
        }
    }

    pub(super) fn count(&mut self, node: &Node, path: &str) -> Option<Request> {
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

    /// `device_ids`: strings, each once (Compose refuses the rest). An entry
    /// `all` (any case) is every GPU, as the NVIDIA runtime reads it; a CDI
    /// name `nvidia.com/gpu=<id>` is that GPU (`=all`: every GPU). With
    /// `gpu` false (a request for another kind of device) only Compose's
    /// checks apply.
    pub(super) fn device_ids(&mut self, node: &Node, path: &str, gpu: bool) -> Option<Request> {
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
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        let mut all = false;
        // The first repeated entry, and how many there are.
        let mut repeated: Option<(&Node, &str, usize)> = None;
        for item in items {
            let Some(text) = self.string_entry(item, &what) else {
                continue;
            };
            if !seen.insert(text) {
                repeated.get_or_insert((item, text, 0)).2 += 1;
                continue;
            }
            if !gpu {
                continue;
            }
            let text = text.strip_prefix(CDI_GPU).unwrap_or(text);
            if text.trim().eq_ignore_ascii_case("all") {
                all = true;
                continue;
            }
            let parts: Vec<&str> = text
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            if parts.len() > 1 {
                let ids: Vec<GpuText> = parts.iter().map(|p| canonical_gpu_id(p)).collect();
                let listed = parts
                    .iter()
                    .map(|p| format!("'{p}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.push(
                    Rule::Gpu005,
                    ids.iter().map(|id| id.to_string()).collect(),
                    item.pos,
                    format!(
                        "device_ids entry '{text}' packs {} GPU ids into one string; Docker reads it as a single device id. Write one id per entry: [{listed}]",
                        parts.len()
                    ),
                );
            }
            for part in parts {
                refs.push(canonical_gpu_id(part), item.pos);
            }
        }
        if let Some((item, text, count)) = repeated {
            let more = if count > 1 {
                format!(", and {} more repeated entries", count - 1)
            } else {
                String::new()
            };
            self.rc002(
                item,
                &what,
                format!(
                    "`device_ids` lists `{text}` twice{more} (Compose refuses repeated entries)"
                ),
            );
        }
        if all {
            return Some(Request::All);
        }
        Some(Request::Pinned(refs.into_vec()))
    }

    /// Service-level `devices:` naming NVIDIA GPUs by CDI name
    /// (`nvidia.com/gpu=0`, `nvidia.com/gpu=all`).
    pub(super) fn cdi_devices(&mut self, node: &Node) -> Option<(GpuClaim, Pos)> {
        let devices = node.get("devices")?;
        let items = devices.as_seq()?;
        let mut refs = UniqueRefs::default();
        let mut first: Option<Pos> = None;
        for item in items {
            // Short form `nvidia.com/gpu=0`, or long form `{source: ...}`.
            let text = match &item.value {
                Value::Map(_) => item.get("source").and_then(Node::as_str),
                _ => item.as_str(),
            };
            let Some(text) = text else { continue };
            let Some(id) = text.trim().strip_prefix(CDI_GPU) else {
                continue;
            };
            first.get_or_insert(item.pos);
            if id.trim().eq_ignore_ascii_case("all") {
                return Some((GpuClaim::All, item.pos));
            }
            refs.push(canonical_gpu_id(id), item.pos);
        }
        first.map(|pos| (GpuClaim::Pinned(refs.into_vec()), pos))
    }

    /// `runtime: nvidia` with or without `NVIDIA_VISIBLE_DEVICES`.
    ///
    /// `NVIDIA_VISIBLE_DEVICES` without `runtime: nvidia` is not read as a claim:
    /// whether the daemon's default runtime is nvidia cannot be seen from the file.
    pub(super) fn nvidia_runtime(
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
                            refs.push(canonical_gpu_id(part), *pos);
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
    pub(super) fn cuda_visible_devices(
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
                    unique.push(canonical_gpu_id(token), pos);
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
                service.gpus_at = Some(pos);
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
                let pinned: Vec<&str> = refs.iter().map(|r| &*r.id).collect();
                let pinned_set: FxHashSet<&str> = pinned.iter().copied().collect();
                let mut order: Vec<GpuText> = Vec::new();
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
                        order.push(GpuText::from(*token));
                    } else {
                        problems.push(format!("`{token}` is not one of the pinned GPUs"));
                    }
                }
                let used: FxHashSet<&str> = order.iter().map(|id| &**id).collect();
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
                    let gpus_at = service.located(service.gpus_at);
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
}

pub(super) fn combine_requests(requests: Vec<(Request, Pos)>) -> Option<(GpuClaim, Pos)> {
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
                    refs.push(r.id, r.pos);
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
pub(super) struct UniqueRefs {
    refs: Vec<GpuRef>,
    seen: FxHashSet<GpuText>,
}

impl UniqueRefs {
    /// Adds `id` unless already there.
    pub(super) fn push(&mut self, id: GpuText, pos: Pos) {
        if !self.seen.contains(&id) {
            self.seen.insert(Arc::clone(&id));
            self.refs.push(GpuRef { id, pos });
        }
    }

    /// At its length: the doubling's first four slots would hold twice what
    /// a usual two-GPU claim needs, in every parse the engine keeps.
    pub(super) fn into_vec(mut self) -> Vec<GpuRef> {
        self.refs.shrink_to_fit();
        self.refs
    }
}
