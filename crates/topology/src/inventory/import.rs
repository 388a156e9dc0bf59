//! The importer: `machine.yaml` from what a machine prints of itself
//! (`nvidia-smi topo -m`, `nvidia-smi --query-gpu=... --format=csv`,
//! `nvidia-smi -L`), as docs/release-config.md ("GPU topology") describes.
//! Nothing is guessed: a line of an unknown shape, or outputs that disagree
//! (GPU counts, UUIDs), is an error naming the file and line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::links::LinkMatrix;
use super::{GpuDevice, Interconnect, Inventory, MigSlice, is_gpu_uuid, is_mig_uuid};
use crate::inventory::MAX_GPUS_PER_MACHINE;

/// One input: a name for messages (the file as given) and its text.
#[derive(Debug, Clone, Copy)]
pub struct SmiOutput<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

/// The outputs an import reads; at least one must be given.
#[derive(Debug, Clone, Copy, Default)]
pub struct SmiOutputs<'a> {
    /// `nvidia-smi topo -m`.
    pub topo: Option<SmiOutput<'a>>,
    /// `nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id --format=csv`
    /// (any of these columns, in any order; `index` required).
    pub query: Option<SmiOutput<'a>>,
    /// `nvidia-smi -L` (GPU names and UUIDs, MIG slices).
    pub list: Option<SmiOutput<'a>>,
}

/// Why an import failed: the file, the 1-based line (0: the file as a
/// whole), what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", place(file, *line))]
pub struct ImportError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

fn place(file: &str, line: usize) -> String {
    if line == 0 {
        format!("{file}: ")
    } else {
        format!("{file}:{line}: ")
    }
}

fn error(source: &SmiOutput<'_>, line: usize, message: impl Into<String>) -> ImportError {
    ImportError {
        file: source.name.to_owned(),
        line,
        message: message.into(),
    }
}

/// The lines of an output without carriage returns and terminal escapes:
/// nvidia-smi underlines the matrix's header (`ESC[4m` ... `ESC[0m`) when
/// it writes to a terminal, and a copy from one keeps them.
fn clean_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            let line = line.trim_end_matches('\r');
            let mut out = String::with_capacity(line.len());
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    // CSI: ESC [ parameters, then one final byte in @..~.
                    if chars.next() == Some('[') {
                        for c in chars.by_ref() {
                            if ('@'..='~').contains(&c) {
                                break;
                            }
                        }
                    }
                    continue;
                }
                out.push(c);
            }
            out
        })
        .collect()
}

/// What `nvidia-smi topo -m` says.
struct Topo {
    links: LinkMatrix,
    /// Each GPU's NUMA affinity (`None`: `N/A` or no such column).
    numa: Vec<Option<u32>>,
}

/// The columns after the device columns of `topo -m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Affinity {
    Cpu,
    Numa,
    GpuNumaId,
}

fn parse_topo(source: &SmiOutput<'_>) -> Result<Topo, ImportError> {
    let lines = clean_lines(source.text);
    let Some(header_at) = lines
        .iter()
        .position(|line| line.split_whitespace().next() == Some("GPU0"))
    else {
        return Err(error(
            source,
            0,
            "no header line starting with GPU0: is this the output of `nvidia-smi topo -m`?",
        ));
    };
    let header: Vec<&str> = lines
        .get(header_at)
        .map_or_else(Vec::new, |l| l.split_whitespace().collect());
    let devices_end = header
        .iter()
        .position(|t| *t == "CPU" || *t == "NUMA")
        .unwrap_or(header.len());
    let (device_columns, rest) = header.split_at(devices_end);
    let gpus = device_columns
        .iter()
        .take_while(|t| {
            t.strip_prefix("GPU")
                .is_some_and(|n| n.parse::<usize>().is_ok())
        })
        .count();
    for (index, name) in device_columns.iter().take(gpus).enumerate() {
        if *name != format!("GPU{index}") {
            return Err(error(
                source,
                header_at + 1,
                format!("column {} is `{name}`, expected GPU{index}", index + 1),
            ));
        }
    }
    if gpus > MAX_GPUS_PER_MACHINE as usize {
        return Err(error(
            source,
            header_at + 1,
            format!("{gpus} GPUs is more than {MAX_GPUS_PER_MACHINE}"),
        ));
    }
    let mut affinities = Vec::new();
    let mut words = rest.iter().peekable();
    while let Some(word) = words.next() {
        let column = match (*word, words.peek().copied().copied()) {
            ("CPU", Some("Affinity")) => Affinity::Cpu,
            ("NUMA", Some("Affinity")) => Affinity::Numa,
            ("GPU", Some("NUMA")) => {
                words.next();
                Affinity::GpuNumaId
            }
            _ => {
                return Err(error(
                    source,
                    header_at + 1,
                    format!(
                        "unknown column `{word}` after the device columns (known: CPU Affinity, NUMA Affinity, GPU NUMA ID)"
                    ),
                ));
            }
        };
        words.next();
        affinities.push(column);
    }
    let mut rows: Vec<Vec<&str>> = Vec::with_capacity(gpus);
    let mut numa = Vec::with_capacity(gpus);
    for (offset, line) in lines.iter().enumerate().skip(header_at + 1) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = tokens.first() else {
            break;
        };
        if first.ends_with(':') {
            break;
        }
        if rows.len() == gpus {
            // NIC rows (NIC0, mlx5_0) follow the GPUs; they are not GPUs.
            continue;
        }
        let line_no = offset + 1;
        if *first != format!("GPU{}", rows.len()) {
            return Err(error(
                source,
                line_no,
                format!("expected the row of GPU{}, found `{first}`", rows.len()),
            ));
        }
        let links = tokens.get(1..=device_columns.len()).ok_or_else(|| {
            error(
                source,
                line_no,
                format!(
                    "the row has {} entries for {} device columns",
                    tokens.len().saturating_sub(1),
                    device_columns.len()
                ),
            )
        })?;
        rows.push(links.iter().take(gpus).copied().collect());
        let values = tokens.get(device_columns.len() + 1..).unwrap_or_default();
        let value = affinities
            .iter()
            .position(|a| *a == Affinity::Numa)
            .and_then(|i| values.get(i));
        numa.push(match value {
            None | Some(&"N/A") => None,
            Some(text) => Some(text.parse::<u32>().map_err(|_| {
                error(
                    source,
                    line_no,
                    format!("NUMA affinity `{text}` is not a NUMA node number"),
                )
            })?),
        });
    }
    if rows.len() != gpus {
        return Err(error(
            source,
            0,
            format!(
                "the header names {gpus} GPUs but {} GPU rows follow",
                rows.len()
            ),
        ));
    }
    let links = LinkMatrix::from_rows(gpus, rows).map_err(|e| {
        error(
            source,
            header_at + 1,
            format!("the GPU matrix is not usable: {e}"),
        )
    })?;
    Ok(Topo { links, numa })
}

/// One GPU as the CSV query or `-L` gives it.
#[derive(Debug, Default, Clone)]
struct Listed {
    uuid: Option<String>,
    name: Option<String>,
    memory_gb: Option<f64>,
    pci_bus_id: Option<String>,
    mig: Vec<MigSlice>,
}

fn parse_query(source: &SmiOutput<'_>) -> Result<Vec<Listed>, ImportError> {
    let cleaned = clean_lines(source.text);
    let mut lines = cleaned
        .iter()
        .map(String::as_str)
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(error(source, 0, "it is empty"));
    };
    let columns: Vec<String> = header
        .split(',')
        .map(|c| c.split('[').next().unwrap_or("").trim().to_owned())
        .collect();
    let Some(index_column) = columns.iter().position(|c| c == "index") else {
        return Err(error(
            source,
            1,
            "the header has no `index` column: run nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id --format=csv",
        ));
    };
    let mut gpus: Vec<Listed> = Vec::new();
    for (offset, line) in lines {
        let line_no = offset + 1;
        let values: Vec<&str> = line.split(',').map(str::trim).collect();
        if values.len() != columns.len() {
            return Err(error(
                source,
                line_no,
                format!("{} values for {} columns", values.len(), columns.len()),
            ));
        }
        let index = values
            .get(index_column)
            .and_then(|v| v.parse::<usize>().ok());
        if index != Some(gpus.len()) {
            return Err(error(
                source,
                line_no,
                format!(
                    "expected GPU index {}, found `{}`",
                    gpus.len(),
                    values.get(index_column).unwrap_or(&"")
                ),
            ));
        }
        let mut gpu = Listed::default();
        for (column, value) in columns.iter().zip(&values) {
            let known = |v: &str| {
                (!v.is_empty() && !v.starts_with("[N/A]") && v != "N/A").then(|| v.to_owned())
            };
            match column.as_str() {
                "uuid" => {
                    gpu.uuid = known(value);
                    if let Some(uuid) = &gpu.uuid
                        && !is_gpu_uuid(uuid)
                    {
                        return Err(error(
                            source,
                            line_no,
                            format!("`{uuid}` is not a GPU UUID"),
                        ));
                    }
                }
                "name" => gpu.name = known(value),
                "pci.bus_id" => gpu.pci_bus_id = known(value),
                "memory.total" => {
                    gpu.memory_gb = match known(value) {
                        None => None,
                        Some(text) => Some(memory_gb(&text).ok_or_else(|| {
                            error(
                                source,
                                line_no,
                                format!("memory `{text}` is not `<number> MiB`"),
                            )
                        })?),
                    }
                }
                _ => {}
            }
        }
        gpus.push(gpu);
    }
    Ok(gpus)
}

/// `81559 MiB` in GB of 10^9 bytes, one decimal: 85.5.
fn memory_gb(text: &str) -> Option<f64> {
    let mib = text.strip_suffix("MiB")?.trim().parse::<f64>().ok()?;
    let gb = mib * 1_048_576.0 / 1e9;
    (gb.is_finite() && gb > 0.0).then(|| (gb * 10.0).round() / 10.0)
}

fn parse_list(source: &SmiOutput<'_>) -> Result<Vec<Listed>, ImportError> {
    let mut gpus: Vec<Listed> = Vec::new();
    for (offset, line) in clean_lines(source.text).iter().enumerate() {
        let line_no = offset + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let uuid = line
            .rsplit_once("(UUID:")
            .and_then(|(_, rest)| rest.strip_suffix(')'))
            .map(str::trim);
        if let Some(rest) = line.strip_prefix("GPU ") {
            let (index, name) = rest.split_once(':').unwrap_or(("", ""));
            if index.trim().parse::<usize>().ok() != Some(gpus.len()) {
                return Err(error(
                    source,
                    line_no,
                    format!("expected GPU {}, found `GPU {}`", gpus.len(), index.trim()),
                ));
            }
            let name = name.rsplit_once("(UUID:").map_or(name, |(n, _)| n).trim();
            let Some(uuid) = uuid.filter(|u| is_gpu_uuid(u)) else {
                return Err(error(
                    source,
                    line_no,
                    "a GPU line without `(UUID: GPU-...)`",
                ));
            };
            gpus.push(Listed {
                uuid: Some(uuid.to_owned()),
                name: (!name.is_empty()).then(|| name.to_owned()),
                ..Listed::default()
            });
        } else if let Some(rest) = line.strip_prefix("MIG ") {
            let profile = rest.split_whitespace().next().unwrap_or("");
            let Some(gpu) = gpus.last_mut() else {
                return Err(error(source, line_no, "a MIG slice before any GPU"));
            };
            if super::mig_profile_size(profile).is_none() {
                return Err(error(
                    source,
                    line_no,
                    format!("`{profile}` is not a MIG profile like 3g.40gb"),
                ));
            }
            let Some(uuid) = uuid.filter(|u| is_mig_uuid(u)) else {
                return Err(error(
                    source,
                    line_no,
                    "a MIG line without `(UUID: MIG-...)`",
                ));
            };
            gpu.mig.push(MigSlice {
                profile: profile.to_owned(),
                uuid: Some(uuid.to_owned()),
            });
        } else {
            return Err(error(
                source,
                line_no,
                format!(
                    "`{line}` is neither a `GPU n: ...` nor a `MIG ...` line of `nvidia-smi -L`"
                ),
            ));
        }
    }
    Ok(gpus)
}

/// The inventory the outputs describe, with `labels`.
pub fn import(
    outputs: &SmiOutputs<'_>,
    labels: &BTreeMap<String, String>,
) -> Result<Inventory, ImportError> {
    let topo = outputs.topo.as_ref().map(parse_topo).transpose()?;
    let query = outputs.query.as_ref().map(parse_query).transpose()?;
    let list = outputs.list.as_ref().map(parse_list).transpose()?;
    // Every output given must count the same GPUs.
    let counts: Vec<(&str, usize)> = [
        topo.as_ref()
            .zip(outputs.topo)
            .map(|(t, o)| (o.name, t.links.gpus())),
        query
            .as_ref()
            .zip(outputs.query)
            .map(|(q, o)| (o.name, q.len())),
        list.as_ref()
            .zip(outputs.list)
            .map(|(l, o)| (o.name, l.len())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let Some(&(first_name, gpus)) = counts.first() else {
        return Err(ImportError {
            file: "(no input)".to_owned(),
            line: 0,
            message: "give at least one of nvidia-smi's outputs (topo -m, --query-gpu, -L)"
                .to_owned(),
        });
    };
    if let Some((name, count)) = counts.iter().find(|(_, count)| *count != gpus) {
        return Err(ImportError {
            file: (*name).to_owned(),
            line: 0,
            message: format!("it lists {count} GPU(s), but {first_name} lists {gpus}"),
        });
    }
    let mut devices = Vec::with_capacity(gpus);
    for index in 0..gpus {
        let from_query = query
            .as_ref()
            .and_then(|q| q.get(index))
            .cloned()
            .unwrap_or_default();
        let from_list = list
            .as_ref()
            .and_then(|l| l.get(index))
            .cloned()
            .unwrap_or_default();
        if let (Some(a), Some(b), Some(q), Some(l)) = (
            &from_query.uuid,
            &from_list.uuid,
            outputs.query,
            outputs.list,
        ) && a != b
        {
            return Err(ImportError {
                file: l.name.to_owned(),
                line: 0,
                message: format!("GPU {index} has UUID {b}, but {} says {a}", q.name),
            });
        }
        devices.push(GpuDevice {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            uuid: from_query.uuid.or(from_list.uuid),
            model: from_query.name.or(from_list.name),
            memory_gb: from_query.memory_gb,
            pci_bus_id: from_query.pci_bus_id,
            mig: from_list.mig,
        });
    }
    // One model and one memory size for the machine when every GPU agrees.
    let shared = |get: &dyn Fn(&GpuDevice) -> Option<String>| -> Option<String> {
        let first = devices.first().and_then(get)?;
        devices
            .iter()
            .all(|d| get(d).as_ref() == Some(&first))
            .then_some(first)
    };
    let gpu_model = shared(&|d| d.model.clone());
    let gpu_memory_gb =
        shared(&|d| d.memory_gb.map(|m| m.to_string())).and_then(|m| m.parse::<f64>().ok());
    for device in &mut devices {
        if gpu_model.is_some() {
            device.model = None;
        }
        if gpu_memory_gb.is_some() {
            device.memory_gb = None;
        }
    }
    devices.retain(|d| {
        d.uuid.is_some()
            || d.model.is_some()
            || d.memory_gb.is_some()
            || d.pci_bus_id.is_some()
            || !d.mig.is_empty()
    });
    let (interconnect, numa_domains, links) = match topo {
        Some(topo) => {
            let interconnect = if topo.links.gpus() > 1 && topo.links.all_nvlink() {
                Interconnect::Nvlink
            } else {
                Interconnect::Pcie
            };
            (
                Some(interconnect),
                numa_domains(&topo.numa),
                Some(topo.links),
            )
        }
        None => (None, Vec::new(), None),
    };
    Ok(Inventory {
        gpus: u32::try_from(gpus).unwrap_or(u32::MAX),
        gpu_model,
        gpu_memory_gb,
        interconnect,
        numa_domains,
        labels: labels.iter().collect(),
        devices,
        links,
        ..Inventory::default()
    })
}

/// GPUs grouped by NUMA node, in node order; none unless every GPU says its node.
fn numa_domains(numa: &[Option<u32>]) -> Vec<Vec<u32>> {
    if numa.is_empty() || numa.iter().any(Option::is_none) {
        return Vec::new();
    }
    let mut by_node: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (gpu, node) in numa.iter().enumerate() {
        if let Some(node) = node {
            by_node
                .entry(*node)
                .or_default()
                .push(u32::try_from(gpu).unwrap_or(u32::MAX));
        }
    }
    by_node.into_values().collect()
}

/// `machine.yaml` for `inventory`, with a first comment line saying where it
/// came from (`provenance`, one line). Text is written double-quoted, so a
/// model name cannot be read as anything but text.
pub fn to_machine_yaml(inventory: &Inventory, provenance: &str) -> String {
    let q = crate::yaml::double_quoted;
    let mut out = String::new();
    let _ = writeln!(out, "# {}", provenance.replace(['\n', '\r'], " "));
    let _ = writeln!(out, "gpus: {}", inventory.gpus);
    if let Some(model) = &inventory.gpu_model {
        let _ = writeln!(out, "gpu_model: {}", q(model));
    }
    if let Some(gb) = inventory.gpu_memory_gb {
        let _ = writeln!(out, "gpu_memory_gb: {gb}");
    }
    if let Some(interconnect) = inventory.interconnect {
        let _ = writeln!(out, "interconnect: {}", interconnect.as_str());
    }
    if !inventory.numa_domains.is_empty() {
        let domains: Vec<String> = inventory
            .numa_domains
            .iter()
            .map(|d| {
                format!(
                    "[{}]",
                    d.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        let _ = writeln!(out, "numa_domains: [{}]", domains.join(", "));
    }
    if !inventory.labels.is_empty() {
        out.push_str("labels:\n");
        for (key, value) in inventory.labels.iter() {
            let _ = writeln!(out, "  {}: {}", q(key), q(value));
        }
    }
    if !inventory.devices.is_empty() {
        out.push_str("devices:\n");
        for device in &inventory.devices {
            let _ = writeln!(out, "  - index: {}", device.index);
            if let Some(uuid) = &device.uuid {
                let _ = writeln!(out, "    uuid: {}", q(uuid));
            }
            if let Some(model) = &device.model {
                let _ = writeln!(out, "    model: {}", q(model));
            }
            if let Some(gb) = device.memory_gb {
                let _ = writeln!(out, "    memory_gb: {gb}");
            }
            if let Some(bus) = &device.pci_bus_id {
                let _ = writeln!(out, "    pci_bus_id: {}", q(bus));
            }
            if !device.mig.is_empty() {
                out.push_str("    mig:\n");
                for slice in &device.mig {
                    match &slice.uuid {
                        Some(uuid) => {
                            let _ = writeln!(
                                out,
                                "      - {{profile: {}, uuid: {}}}",
                                q(&slice.profile),
                                q(uuid)
                            );
                        }
                        None => {
                            let _ = writeln!(out, "      - {{profile: {}}}", q(&slice.profile));
                        }
                    }
                }
            }
        }
    }
    if let Some(links) = &inventory.links {
        out.push_str("links:\n");
        for row in links.rows() {
            let _ = writeln!(out, "  - [{}]", row.join(", "));
        }
    }
    out
}
