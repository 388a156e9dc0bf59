//! Machine inventory: `machines/<machine>/machine.yaml` (contract section 3,
//! and the GPU topology extension of docs/release-config.md).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;

use crate::finding::{Finding, Location, Rule};
use crate::yaml::{self, Limits, Node, Pos, Value};

mod devices;
mod import;
mod links;

pub use devices::{GpuDevice, MigSlice, is_gpu_uuid, is_mig_uuid, mig_profile_size};
pub use import::{ImportError, SmiOutput, SmiOutputs, import, to_machine_yaml};
pub use links::{Link, LinkMatrix, MatrixError};

/// The most GPUs one `machine.yaml` may declare. The largest single hosts have
/// 8-16 GPUs and a rack-scale NVLink domain (NVL72) 72; a bigger count is a
/// typo or hostile, and the engine keeps per-GPU state (graph nodes, free
/// lists), so `gpus: 4294967295` must not be believed.
pub(crate) const MAX_GPUS_PER_MACHINE: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interconnect {
    /// All GPUs peer-to-peer.
    Nvlink,
    Pcie,
}

impl Interconnect {
    pub fn as_str(self) -> &'static str {
        match self {
            Interconnect::Nvlink => "nvlink",
            Interconnect::Pcie => "pcie",
        }
    }
}

/// What `machine.yaml` says about a machine (`Default`: no GPUs, nothing known).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Inventory {
    /// Number of GPUs; their ids are `0..gpus`. At most
    /// [`MAX_GPUS_PER_MACHINE`] when read from a file.
    pub gpus: u32,
    pub gpu_model: Option<String>,
    pub gpu_memory_gb: Option<f64>,
    pub interconnect: Option<Interconnect>,
    /// GPUs that share a socket / PCIe switch.
    pub numa_domains: Vec<Vec<u32>>,
    pub labels: Labels,
    /// What nvidia-smi says of each GPU, by index (sorted); GPUs not listed
    /// are known by index only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<GpuDevice>,
    /// The link matrix as given; see [`Inventory::link_matrix`] for the one
    /// the shorthand stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<LinkMatrix>,
    /// Where `numa_domains` is written, for TP004's related location.
    #[serde(skip)]
    pub numa_domains_at: Option<Location>,
    /// Where `gpus` is written, for GPU002's related location.
    #[serde(skip)]
    pub gpus_at: Option<Location>,
    /// Where `links` is written, for TP004's related location.
    #[serde(skip)]
    pub links_at: Option<Location>,
}

/// A machine's `labels`, sorted by key: a map in its answers and for lookups, held as one
/// vector (a map's node of eleven slots for the usual two labels was 8 MB at 20,000 machines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Sets `key` to `value`; a key given again keeps its last value, as in a YAML map read
    /// by a last-wins reader.
    pub fn insert(&mut self, key: &str, value: &str) {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(key)) {
            Ok(at) => {
                if let Some(entry) = self.0.get_mut(at) {
                    value.clone_into(&mut entry.1);
                }
            }
            Err(at) => self.0.insert(at, (key.to_owned(), value.to_owned())),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .and_then(|at| self.0.get(at))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// In key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Labels {
        let mut labels = Labels::default();
        for (key, value) in pairs {
            labels.insert(key.as_ref(), value.as_ref());
        }
        labels.shrink_to_fit();
        labels
    }
}

impl Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl Inventory {
    /// This inventory as read from the same content at `path`: what
    /// [`read_inventory`] gives there, when it gave no findings here (the
    /// reader names its path only in findings and in the `*_at` locations; a
    /// new `Location` field must be renamed here too, which the
    /// `relabeled_inventories_are_fresh_reads` test checks).
    pub fn relabeled(&self, path: &str) -> Inventory {
        let path: Arc<str> = Arc::from(path);
        let mut inventory = self.clone();
        for at in [
            &mut inventory.numa_domains_at,
            &mut inventory.gpus_at,
            &mut inventory.links_at,
        ]
        .into_iter()
        .flatten()
        {
            at.path = Arc::clone(&path);
        }
        inventory
    }

    /// The GPU ids `0..gpus`, never more than [`MAX_GPUS_PER_MACHINE`] of them
    /// (an inventory built by hand is not checked like one read from a file;
    /// everything that keeps per-GPU state iterates this range).
    pub fn gpu_ids(&self) -> Range<u32> {
        0..self.gpus.min(MAX_GPUS_PER_MACHINE)
    }

    /// The NUMA domain of every GPU id in [`Inventory::gpu_ids`], indexed by
    /// id (`None`: in no domain). One pass over the domains, however many
    /// (empty) domains a file lists.
    pub fn numa_domain_by_gpu(&self) -> Vec<Option<usize>> {
        let mut by_gpu: Vec<Option<usize>> = vec![None; self.gpu_ids().len()];
        for (index, domain) in self.numa_domains.iter().enumerate() {
            for gpu in domain {
                if let Some(slot) = usize::try_from(*gpu).ok().and_then(|g| by_gpu.get_mut(g))
                    && slot.is_none()
                {
                    *slot = Some(index);
                }
            }
        }
        by_gpu
    }

    /// How every pair of GPUs is linked: `links` when given, else what the
    /// shorthand stands for (`nvlink`: NV everywhere; `pcie` with NUMA
    /// domains: NODE within a domain, SYS across, NODE for a GPU in no
    /// domain). `None` without either.
    pub fn link_matrix(&self) -> Option<Cow<'_, LinkMatrix>> {
        if let Some(links) = &self.links {
            return Some(Cow::Borrowed(links));
        }
        let gpus = self.gpu_ids().len();
        match self.interconnect? {
            Interconnect::Nvlink => Some(Cow::Owned(LinkMatrix::uniform(gpus, Link::Nvlink(0)))),
            Interconnect::Pcie if self.numa_domains.is_empty() => None,
            Interconnect::Pcie => {
                let domain = self.numa_domain_by_gpu();
                Some(Cow::Owned(LinkMatrix::from_fn(gpus, |a, b| {
                    match (domain.get(a), domain.get(b)) {
                        (Some(Some(x)), Some(Some(y))) if x != y => Link::Sys,
                        // Within a domain, or a GPU in none (its locality
                        // unknown: nothing is claimed against it).
                        _ => Link::Node,
                    }
                })))
            }
        }
    }

    /// What a GPU id of a claim names on this machine: a decimal id or the
    /// UUID of one of `devices` is a whole GPU, a listed MIG UUID a slice of
    /// its GPU (docs/release-config.md, "GPU topology").
    pub fn identify<'i>(&'i self, id: &str) -> GpuIdentity<'i> {
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            return id
                .parse::<u32>()
                .map_or(GpuIdentity::Other, GpuIdentity::Whole);
        }
        for device in &self.devices {
            if device.uuid.as_deref() == Some(id) {
                return GpuIdentity::Whole(device.index);
            }
            if let Some(slice) = device.mig.iter().find(|s| s.uuid.as_deref() == Some(id)) {
                return GpuIdentity::Slice {
                    gpu: device.index,
                    uuid: slice.uuid.as_deref().unwrap_or_default(),
                };
            }
        }
        if is_gpu_uuid(id) || is_mig_uuid(id) {
            GpuIdentity::UnknownUuid
        } else {
            GpuIdentity::Other
        }
    }

    /// Whether any device or MIG slice has a UUID (only then is a UUID
    /// the machine does not list known to be wrong).
    pub fn lists_uuids(&self) -> bool {
        self.devices
            .iter()
            .any(|d| d.uuid.is_some() || d.mig.iter().any(|s| s.uuid.is_some()))
    }

    /// `id` as the GPU index it names when it is a listed GPU UUID, else as
    /// written: the one spelling capacity, the graph and the views compare.
    pub fn canonical_gpu<'t>(&self, id: &'t str) -> Cow<'t, str> {
        match self.identify(id) {
            GpuIdentity::Whole(index) if !id.bytes().all(|b| b.is_ascii_digit()) => {
                Cow::Owned(index.to_string())
            }
            _ => Cow::Borrowed(id),
        }
    }

    /// The device with this GPU UUID, if any.
    pub fn device_by_uuid(&self, uuid: &str) -> Option<&GpuDevice> {
        self.devices
            .iter()
            .find(|device| device.uuid.as_deref() == Some(uuid))
    }
}

/// What a GPU id of a claim names ([`Inventory::identify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuIdentity<'i> {
    /// A whole GPU, by index.
    Whole(u32),
    /// A MIG slice of GPU `gpu`, by its UUID.
    Slice { gpu: u32, uuid: &'i str },
    /// A GPU or MIG UUID the inventory does not list.
    UnknownUuid,
    /// Anything else (a name the claim gives verbatim, a number beyond u32).
    Other,
}

/// A machine directory, with or without inventory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    pub name: String,
    /// `None` when there is no `machine.yaml`, or it could not be read
    /// (then `inventory_path` is set and RC001/RC002 say why).
    pub inventory: Option<Arc<Inventory>>,
    pub inventory_path: Option<String>,
}

impl Machine {
    pub fn gpu_count(&self) -> Option<u32> {
        self.inventory.as_deref().map(|i| i.gpus)
    }

    /// `machines/<name>`: where machine-level findings point.
    pub fn dir_path(&self) -> String {
        format!("machines/{}", self.name)
    }
}

/// Reads `machine.yaml`. `None` (with findings) when the file is unusable:
/// not YAML, not a mapping, or without a valid `gpus`. Other wrong fields are
/// RC002 and left out. Unknown keys are RC002 too (a typo such as `gpu: 8`
/// must not silently drop the GPU count); `x-*` keys are allowed.
pub fn read_inventory(
    machine: &str,
    path: &str,
    src: &str,
    limits: &Limits,
) -> (Option<Inventory>, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut rc002 = |pos: Pos, field: &str, message: String| {
        findings.push(Finding::new(
            Rule::Rc002,
            Some(machine),
            Vec::new(),
            [format!("{path}:{field}")],
            Location::new(path, pos.line, pos.column),
            format!("{path}: {message}"),
        ));
    };
    let root = match yaml::parse(src, limits) {
        Ok(root) => root,
        Err(e) => {
            let finding = Finding::new(
                Rule::Rc001,
                Some(machine),
                Vec::new(),
                Vec::new(),
                Location::new(path, e.pos.line, e.pos.column),
                format!("{path} cannot be read as YAML: {}", e.message),
            );
            return (None, vec![finding]);
        }
    };
    let Some(entries) = root.as_map() else {
        rc002(
            root.pos,
            "",
            format!(
                "machine.yaml must be a mapping, found a {}",
                root.kind_name()
            ),
        );
        return (None, findings);
    };

    let mut gpus: Option<u32> = None;
    let mut inventory = Inventory::default();
    let mut gpus_seen = false;
    let mut numa_node: Option<&Node> = None;
    let mut devices_node: Option<&Node> = None;
    let mut links_node: Option<&Node> = None;
    let mut interconnect_at: Option<Pos> = None;
    for (key, value) in entries {
        let Some(key_text) = key.as_str() else {
            rc002(key.pos, "", "keys must be strings".into());
            continue;
        };
        match key_text {
            "gpus" => {
                gpus_seen = true;
                let plain = value.as_scalar().is_some_and(|s| s.plain);
                match value.as_str().map(str::trim).map(gpus_value) {
                    Some(GpusValue::Valid(n)) if plain => {
                        gpus = Some(n);
                        inventory.gpus_at =
                            Some(Location::new(path, value.pos.line, value.pos.column));
                    }
                    Some(GpusValue::TooMany(text)) if plain => rc002(
                        value.pos,
                        "gpus",
                        format!(
                            "`gpus: {text}` is more than {MAX_GPUS_PER_MACHINE}, the most GPUs one machine may declare (the largest hosts have 8-16, a rack-scale NVL72 domain 72); the inventory is not used"
                        ),
                    ),
                    _ => rc002(
                        value.pos,
                        "gpus",
                        format!(
                            "`gpus` must be a non-negative integer, found {}",
                            shown(value)
                        ),
                    ),
                }
            }
            "gpu_model" => match value.as_str() {
                Some(text) if !value.is_null() => inventory.gpu_model = Some(text.to_owned()),
                _ if value.is_null() => {}
                _ => rc002(
                    value.pos,
                    "gpu_model",
                    format!("`gpu_model` must be text, found {}", shown(value)),
                ),
            },
            "gpu_memory_gb" => match value
                .as_str()
                .map(str::trim)
                .and_then(|t| t.parse::<f64>().ok())
            {
                Some(v) if v.is_finite() && v > 0.0 => inventory.gpu_memory_gb = Some(v),
                _ if value.is_null() => {}
                _ => rc002(
                    value.pos,
                    "gpu_memory_gb",
                    format!(
                        "`gpu_memory_gb` must be a positive number, found {}",
                        shown(value)
                    ),
                ),
            },
            "interconnect" => match value
                .as_str()
                .map(str::trim)
                .inspect(|_| interconnect_at = Some(value.pos))
            {
                Some("nvlink") => inventory.interconnect = Some(Interconnect::Nvlink),
                Some("pcie") => inventory.interconnect = Some(Interconnect::Pcie),
                _ if value.is_null() => {}
                _ => rc002(
                    value.pos,
                    "interconnect",
                    format!(
                        "`interconnect` must be `nvlink` or `pcie`, found {}",
                        shown(value)
                    ),
                ),
            },
            "numa_domains" => numa_node = Some(value),
            "devices" => devices_node = Some(value).filter(|v| !v.is_null()),
            "links" => links_node = Some(value).filter(|v| !v.is_null()),
            "labels" => match &value.value {
                Value::Map(labels) => {
                    for (k, v) in labels {
                        match (k.as_str(), v.as_str()) {
                            (Some(k), Some(v)) => {
                                inventory.labels.insert(k, v);
                            }
                            _ => rc002(v.pos, "labels", "labels must map text to text".into()),
                        }
                    }
                    inventory.labels.shrink_to_fit();
                }
                _ if value.is_null() => {}
                _ => rc002(
                    value.pos,
                    "labels",
                    format!("`labels` must be a mapping, found {}", shown(value)),
                ),
            },
            other if other.starts_with("x-") => {}
            other => rc002(
                key.pos,
                other,
                format!(
                    "unknown key `{other}` (known: gpus, gpu_model, gpu_memory_gb, interconnect, numa_domains, labels, devices, links)"
                ),
            ),
        }
    }
    let Some(gpus) = gpus else {
        if !gpus_seen {
            rc002(
                root.pos,
                "gpus",
                "machine.yaml has no `gpus` (the number of GPUs)".into(),
            );
        }
        return (None, findings);
    };
    inventory.gpus = gpus;

    if let Some(node) = numa_node.filter(|n| !n.is_null()) {
        inventory.numa_domains_at = Some(Location::new(path, node.pos.line, node.pos.column));
        match node.as_seq() {
            None => rc002(
                node.pos,
                "numa_domains",
                format!(
                    "`numa_domains` must be a list of lists of GPU ids, found {}",
                    shown(node)
                ),
            ),
            Some(domains) => {
                let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
                for (index, domain) in domains.iter().enumerate() {
                    let Some(ids) = domain.as_seq() else {
                        rc002(
                            domain.pos,
                            "numa_domains",
                            format!(
                                "each NUMA domain must be a list of GPU ids, found {}",
                                shown(domain)
                            ),
                        );
                        continue;
                    };
                    let mut members = Vec::with_capacity(ids.len());
                    for id in ids {
                        match id
                            .as_str()
                            .map(str::trim)
                            .and_then(|t| t.parse::<u32>().ok())
                        {
                            Some(gpu) if gpu >= gpus => rc002(
                                id.pos,
                                "numa_domains",
                                format!(
                                    "NUMA domain {index} names GPU {gpu}, but the machine has {gpus} GPU(s)"
                                ),
                            ),
                            Some(gpu) => match seen.insert(gpu, index) {
                                Some(other) if other != index => rc002(
                                    id.pos,
                                    "numa_domains",
                                    format!("GPU {gpu} is in NUMA domains {other} and {index}"),
                                ),
                                _ => members.push(gpu),
                            },
                            None => rc002(
                                id.pos,
                                "numa_domains",
                                format!("GPU ids must be integers, found {}", shown(id)),
                            ),
                        }
                    }
                    members.dedup();
                    inventory.numa_domains.push(members);
                }
            }
        }
    }
    if let Some(node) = devices_node {
        inventory.devices = devices::read_devices(node, gpus, &mut rc002);
    }
    if let Some(node) = links_node {
        inventory.links_at = Some(Location::new(path, node.pos.line, node.pos.column));
        inventory.links = devices::read_links(node, gpus, &mut rc002);
    }
    // The shorthand must agree with the matrix it sits beside.
    if let (Some(links), Some(interconnect), Some(pos)) =
        (&inventory.links, inventory.interconnect, interconnect_at)
    {
        match interconnect {
            Interconnect::Nvlink => {
                if let Some((a, b, link)) = links.first_non_nvlink() {
                    rc002(
                        pos,
                        "interconnect",
                        format!(
                            "`interconnect: nvlink` says every pair of GPUs is NVLink, but `links` has {link} between GPU {a} and GPU {b}"
                        ),
                    );
                }
            }
            Interconnect::Pcie => {
                if links.gpus() > 1 && links.all_nvlink() {
                    rc002(
                        pos,
                        "interconnect",
                        "`interconnect: pcie`, but `links` has NVLink between every pair of GPUs (write `nvlink`)".to_owned(),
                    );
                }
            }
        }
    }
    (Some(inventory), findings)
}

/// What the text of `gpus` says.
enum GpusValue<'t> {
    Valid(u32),
    /// An integer above [`MAX_GPUS_PER_MACHINE`] (however many digits).
    TooMany(&'t str),
    Invalid,
}

fn gpus_value(text: &str) -> GpusValue<'_> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return GpusValue::Invalid;
    }
    match digits.parse::<u32>() {
        Ok(n) if n <= MAX_GPUS_PER_MACHINE => GpusValue::Valid(n),
        // Beyond u32 too: the digits alone say it is too many.
        _ => GpusValue::TooMany(text),
    }
}

fn shown(node: &Node) -> String {
    match node.as_str() {
        Some(text) if !node.is_null() => format!("`{text}`"),
        _ => format!("a {}", node.kind_name()),
    }
}
