//! `devices` and `links` of `machine.yaml`: each GPU as nvidia-smi names it
//! (index, UUID, model, memory, MIG slices) and the link matrix
//! (docs/release-config.md, "GPU topology").

use std::collections::BTreeMap;

use serde::Serialize;

use super::links::LinkMatrix;
use crate::yaml::{Node, Pos, Value};

/// The most compute slices the MIG slices of one GPU may use (A100, H100).
pub const MAX_MIG_COMPUTE_SLICES: u32 = 7;

/// One GPU as `nvidia-smi` describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuDevice {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_gb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pci_bus_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mig: Vec<MigSlice>,
}

/// One MIG slice of a GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigSlice {
    /// As `nvidia-smi -L` prints it: `3g.40gb`, `1g.10gb+me`.
    pub profile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
}

impl MigSlice {
    /// Compute slices and memory (GB) of the profile: `3g.40gb` is (3, 40).
    pub fn size(&self) -> Option<(u32, u32)> {
        mig_profile_size(&self.profile)
    }
}

/// `<g>g.<m>gb[+suffix]` -> (g, m).
pub fn mig_profile_size(profile: &str) -> Option<(u32, u32)> {
    let (compute, rest) = profile.split_once("g.")?;
    let memory = rest.split('+').next()?.strip_suffix("gb")?;
    let number = |text: &str| {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<u32>().ok())
            .flatten()
    };
    match (number(compute)?, number(memory)?) {
        (0, _) | (_, 0) => None,
        size => Some(size),
    }
}

/// A GPU UUID: `GPU-` then hex digits and dashes (as nvidia-smi prints it).
pub fn is_gpu_uuid(text: &str) -> bool {
    uuid_body(text, "GPU-")
}

/// A MIG device UUID: `MIG-` then hex digits and dashes (newer drivers), or
/// the older `MIG-GPU-<gpu uuid>/<gi>/<ci>`.
pub fn is_mig_uuid(text: &str) -> bool {
    if let Some(older) = text.strip_prefix("MIG-")
        && let Some((gpu, path)) = older.split_once('/')
    {
        return is_gpu_uuid(gpu)
            && path
                .split('/')
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    }
    uuid_body(text, "MIG-")
}

fn uuid_body(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|body| {
        body.len() >= 8
            && body.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
            && body.bytes().any(|b| b.is_ascii_hexdigit())
    })
}

/// Reports a wrong value: position, field, message (RC002 at the caller).
pub(super) type Report<'r> = &'r mut dyn FnMut(Pos, &str, String);

fn shown(node: &Node) -> String {
    match node.as_str() {
        Some(text) if !node.is_null() => format!("`{text}`"),
        _ => format!("a {}", node.kind_name()),
    }
}

fn text_of(node: &Node) -> Option<&str> {
    match &node.value {
        Value::Scalar(_) if !node.is_null() => node.as_str().map(str::trim),
        _ => None,
    }
}

/// Reads `devices`: at most one device per index below `gpus`, each UUID
/// once on the machine. Wrong fields are reported and left out.
pub(super) fn read_devices(node: &Node, gpus: u32, report: Report<'_>) -> Vec<GpuDevice> {
    let Some(items) = node.as_seq() else {
        report(
            node.pos,
            "devices",
            format!("`devices` must be a list of GPUs, found {}", shown(node)),
        );
        return Vec::new();
    };
    let mut devices: BTreeMap<u32, GpuDevice> = BTreeMap::new();
    // Every UUID on the machine (GPUs and MIG slices): where it was first given.
    let mut uuids: BTreeMap<String, u32> = BTreeMap::new();
    for item in items {
        let Some(fields) = item.as_map() else {
            report(
                item.pos,
                "devices",
                format!("each device must be a mapping, found {}", shown(item)),
            );
            continue;
        };
        let index = match item.get("index") {
            None => {
                report(item.pos, "devices", "a device needs its `index`".to_owned());
                continue;
            }
            Some(value) => match text_of(value).and_then(|t| t.parse::<u32>().ok()) {
                Some(index) if index < gpus => index,
                Some(index) => {
                    report(
                        value.pos,
                        "devices",
                        format!("device index {index} is not on the machine (`gpus: {gpus}`)"),
                    );
                    continue;
                }
                None => {
                    report(
                        value.pos,
                        "devices",
                        format!(
                            "a device `index` must be an integer, found {}",
                            shown(value)
                        ),
                    );
                    continue;
                }
            },
        };
        if devices.contains_key(&index) {
            report(
                item.pos,
                "devices",
                format!("device index {index} is listed twice"),
            );
            continue;
        }
        let mut device = GpuDevice {
            index,
            uuid: None,
            model: None,
            memory_gb: None,
            pci_bus_id: None,
            mig: Vec::new(),
        };
        for (key, value) in fields {
            let Some(key) = key.as_str() else {
                report(key.pos, "devices", "keys must be strings".to_owned());
                continue;
            };
            match key {
                "index" => {}
                "uuid" => {
                    device.uuid = take_uuid(
                        value,
                        index,
                        is_gpu_uuid,
                        "a GPU `uuid` is `GPU-` and hex digits (as nvidia-smi prints it)",
                        &mut uuids,
                        report,
                    );
                }
                "model" => match text_of(value) {
                    Some(model) if !model.is_empty() => device.model = Some(model.to_owned()),
                    _ => report(
                        value.pos,
                        "devices",
                        format!("a device `model` must be text, found {}", shown(value)),
                    ),
                },
                "memory_gb" => match text_of(value).and_then(|t| t.parse::<f64>().ok()) {
                    Some(gb) if gb.is_finite() && gb > 0.0 => device.memory_gb = Some(gb),
                    _ => report(
                        value.pos,
                        "devices",
                        format!(
                            "a device `memory_gb` must be a positive number, found {}",
                            shown(value)
                        ),
                    ),
                },
                "pci_bus_id" => match text_of(value) {
                    Some(bus) if !bus.is_empty() => device.pci_bus_id = Some(bus.to_owned()),
                    _ => report(
                        value.pos,
                        "devices",
                        format!("a device `pci_bus_id` must be text, found {}", shown(value)),
                    ),
                },
                "mig" => device.mig = read_mig(value, index, &mut uuids, report),
                other if other.starts_with("x-") => {}
                other => report(
                    value.pos,
                    "devices",
                    format!(
                        "unknown device key `{other}` (known: index, uuid, model, memory_gb, pci_bus_id, mig)"
                    ),
                ),
            }
        }
        check_mig_capacity(&device, item.pos, report);
        devices.insert(index, device);
    }
    devices.into_values().collect()
}

fn read_mig(
    node: &Node,
    gpu: u32,
    uuids: &mut BTreeMap<String, u32>,
    report: Report<'_>,
) -> Vec<MigSlice> {
    let Some(items) = node.as_seq() else {
        report(
            node.pos,
            "devices",
            format!(
                "`mig` of GPU {gpu} must be a list of slices, found {}",
                shown(node)
            ),
        );
        return Vec::new();
    };
    let mut slices = Vec::with_capacity(items.len());
    for item in items {
        let profile = item.get("profile").and_then(text_of);
        let Some(profile) = profile.filter(|p| mig_profile_size(p).is_some()) else {
            report(
                item.pos,
                "devices",
                format!(
                    "each MIG slice of GPU {gpu} needs a `profile` like `3g.40gb` (compute slices, memory), found {}",
                    item.get("profile").map_or_else(|| "none".to_owned(), shown)
                ),
            );
            continue;
        };
        let mut slice = MigSlice {
            profile: profile.to_owned(),
            uuid: None,
        };
        if let Some(value) = item.get("uuid") {
            slice.uuid = take_uuid(
                value,
                gpu,
                is_mig_uuid,
                "a MIG slice `uuid` is `MIG-` and hex digits (as nvidia-smi -L prints it)",
                uuids,
                report,
            );
        }
        if let Some(fields) = item.as_map() {
            for (key, _) in fields {
                match key.as_str() {
                    Some("profile" | "uuid") => {}
                    Some(other) if other.starts_with("x-") => {}
                    other => report(
                        key.pos,
                        "devices",
                        format!(
                            "unknown MIG slice key `{}` (known: profile, uuid)",
                            other.unwrap_or("?")
                        ),
                    ),
                }
            }
        }
        slices.push(slice);
    }
    slices
}

/// A GPU's or MIG slice's UUID of GPU `gpu`, if it has the right form
/// (`valid`, else `form` is reported) and no other GPU or slice of the
/// machine has it (`uuids`: every UUID so far, by GPU).
fn take_uuid(
    value: &Node,
    gpu: u32,
    valid: fn(&str) -> bool,
    form: &str,
    uuids: &mut BTreeMap<String, u32>,
    report: Report<'_>,
) -> Option<String> {
    let Some(uuid) = text_of(value).filter(|u| valid(u)) else {
        report(
            value.pos,
            "devices",
            format!("{form}, found {}", shown(value)),
        );
        return None;
    };
    if let Some(other) = uuids.insert(uuid.to_owned(), gpu) {
        report(
            value.pos,
            "devices",
            format!("UUID `{uuid}` is given to GPU {other} and GPU {gpu}"),
        );
        return None;
    }
    Some(uuid.to_owned())
}

/// The slices of one GPU fit it: at most seven compute slices, and no more
/// memory than the GPU's (when known).
fn check_mig_capacity(device: &GpuDevice, pos: Pos, report: Report<'_>) {
    let (compute, memory) = device
        .mig
        .iter()
        .filter_map(MigSlice::size)
        .fold((0u32, 0u32), |(c, m), (sc, sm)| {
            (c.saturating_add(sc), m.saturating_add(sm))
        });
    if compute > MAX_MIG_COMPUTE_SLICES {
        report(
            pos,
            "devices",
            format!(
                "the MIG slices of GPU {} use {compute} compute slices; a GPU has {MAX_MIG_COMPUTE_SLICES}",
                device.index
            ),
        );
    }
    if let Some(gb) = device.memory_gb
        && f64::from(memory) > gb
    {
        report(
            pos,
            "devices",
            format!(
                "the MIG slices of GPU {} hold {memory} GB; the GPU has {gb} GB",
                device.index
            ),
        );
    }
}

/// Reads `links`: the matrix, or `None` (reported) when it is wrong as a whole.
pub(super) fn read_links(node: &Node, gpus: u32, report: Report<'_>) -> Option<LinkMatrix> {
    let wrong = |report: Report<'_>, message: String| {
        report(node.pos, "links", format!("`links` is left out: {message}"));
    };
    let Some(rows) = node.as_seq() else {
        wrong(
            report,
            format!("it must be a list of rows, found {}", shown(node)),
        );
        return None;
    };
    let mut texts: Vec<Vec<&str>> = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let Some(entries) = row.as_seq() else {
            wrong(
                report,
                format!("row {index} must be a list, found {}", shown(row)),
            );
            return None;
        };
        texts.push(entries.iter().map(|e| text_of(e).unwrap_or("")).collect());
    }
    let gpus = usize::try_from(gpus).unwrap_or(usize::MAX);
    match LinkMatrix::from_rows(gpus, texts) {
        Ok(matrix) => Some(matrix),
        Err(error) => {
            wrong(report, format!("{error}, for {gpus} GPU(s)"));
            None
        }
    }
}
