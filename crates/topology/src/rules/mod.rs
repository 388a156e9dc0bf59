//! The rule catalogue, one unit per rule, and the machine-level checks of contract
//! section 4.
//!
//! A rule unit is a file named by its code, `gpu001.rs`, with its explanation beside it,
//! `gpu001.md` (what it checks, why it matters on a GPU fleet, an example that fires, the
//! fix). `build.rs` finds the units and generates the [`Rule`] enum from them, so adding a
//! rule touches its unit (and its fixture and snapshots), nothing else. A unit holds:
//!
//! - `SEVERITY` and `SUMMARY` (one line saying when it fires: SARIF `shortDescription`, the
//!   docs' rule table) and `NOT_REPORTED_WHEN` (what keeps it silent, for the table);
//! - `EXPLANATION`, `include_str!` of its Markdown (`--explain`, SARIF `help`);
//! - `CHECK`: [`Check::Machine`] with the check itself, for rules that need the machine's
//!   inventory or more than one service at a time; or [`Check::Elsewhere`], naming the
//!   files that find it, for rules found while a file is read (RC001-RC005,
//!   GPU004-GPU006) or across the repository (PENDING001, SUP001).
//!
//! Every machine check depends only on one machine (its inventory and its deployments),
//! so the engine caches the result per machine and recomputes only machines whose files
//! changed. Conflicts are reported linearly, never per pair: the services of a machine
//! are ordered by (deployment id, service name), and each holder of a GPU (port) is
//! reported once, against the first earlier holder it conflicts with (its "owner"), with
//! every GPU (port) it shares with that owner in the one finding. N services on one GPU
//! give N - 1 findings, not N x (N - 1) / 2; a head adding one holder after the existing
//! ones adds exactly one finding.
//!
//! Without inventory, range and capacity checks (GPU002, TP002, TP004, MEM001, TP001 for
//! `all`) are skipped; INV001 says so once per machine.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::compose::{Deployment, GpuClaim, GpuRef, Service};
use crate::finding::{Finding, Location, Severity};
use crate::inventory::{GpuIdentity, Inventory, Machine};

/// Sum of memory fractions that services sharing one GPU may claim (MEM002).
pub(crate) const SHARED_MEMORY_LIMIT: f64 = 0.95;

/// Other services a GPU003 / MEM002 message names (and MEM002 points at)
/// before it says "and N more": enough to act on, bounded however many
/// services a machine runs.
pub(crate) const LISTED_HOLDERS: usize = 5;

/// Pinned ids a GPU003 related message shows before "and N more".
const LISTED_GPU_IDS: usize = 8;

/// Where a rule is checked.
#[derive(Clone, Copy)]
enum Check {
    /// On one machine at a time, by [`check_machine`].
    Machine(fn(&MachineContext<'_>, &mut Vec<Finding>)),
    /// By the code in these files (paths under `crates/topology/src/`), where the value
    /// is read or the repository is compared with open proposals.
    Elsewhere(&'static [&'static str]),
}

macro_rules! catalogue {
    ($($variant:ident => $unit:ident, $code:literal;)*) => {
        /// Every validation rule of the release-config contract (section 4), plus
        /// PENDING001 (section 5, `--pending`), in catalogue order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Rule {
            $(#[doc = $code] #[serde(rename = $code)] $variant,)*
        }

        impl Rule {
            pub const ALL: &'static [Rule] = &[$(Rule::$variant,)*];

            /// The rule's code, e.g. `GPU001`.
            pub fn code(self) -> &'static str {
                match self { $(Rule::$variant => $code,)* }
            }

            pub fn default_severity(self) -> Severity {
                match self { $(Rule::$variant => $unit::SEVERITY,)* }
            }

            /// One line saying when the rule fires (SARIF `shortDescription`, docs).
            pub fn summary(self) -> &'static str {
                match self { $(Rule::$variant => $unit::SUMMARY,)* }
            }

            /// When the rule stays silent although its subject is there (Markdown, one
            /// line; empty when it never does): the docs' rule table.
            pub fn not_reported_when(self) -> &'static str {
                match self { $(Rule::$variant => $unit::NOT_REPORTED_WHEN,)* }
            }

            /// The rule's explanation (Markdown): what it checks, why it matters on a GPU
            /// fleet, an example that fires, and its fix (`--explain`, SARIF `help`).
            pub fn explanation(self) -> &'static str {
                match self { $(Rule::$variant => $unit::EXPLANATION,)* }
            }

            /// Where the rule's unit lives, for links: `crates/topology/src/rules/gpu001.md`.
            pub fn explanation_path(self) -> &'static str {
                match self {
                    $(Rule::$variant => concat!("crates/topology/src/rules/", stringify!($unit), ".md"),)*
                }
            }

            pub fn from_code(code: &str) -> Option<Rule> {
                match code { $($code => Some(Rule::$variant),)* _ => None }
            }

            fn check(self) -> Check {
                match self { $(Rule::$variant => $unit::CHECK,)* }
            }
        }
    };
}

include!(concat!(env!("OUT_DIR"), "/rule_units.rs"));

impl Rule {
    /// The files outside the machine checks that find this rule (paths under
    /// `crates/topology/src/`); empty for a machine-level rule.
    pub fn found_in(self) -> &'static [&'static str] {
        match self.check() {
            Check::Machine(_) => &[],
            Check::Elsewhere(files) => files,
        }
    }
}

/// One service on the machine, with the deployment it belongs to.
#[derive(Clone, Copy)]
struct Holder<'a> {
    deployment: &'a Deployment,
    service: &'a Service,
}

impl Holder<'_> {
    fn name(&self) -> String {
        self.deployment.holder_name(self.service)
    }

    fn id(&self) -> String {
        self.deployment.id.to_string()
    }

    /// Where the service's GPU claim is written (else the service key).
    fn claim_at(&self) -> Location {
        self.service
            .located(self.service.gpus_at)
            .unwrap_or_else(|| self.service.location.clone())
    }

    fn subject(&self) -> String {
        format!("service:{}", self.service.name)
    }

    /// Where the parallelism is set: TP, else PP, else DP.
    fn parallel_at(&self) -> Option<Location> {
        let service = self.service;
        service.located(
            service
                .tensor_parallel_at
                .or(service.pipeline_parallel_at)
                .or(service.data_parallel_at),
        )
    }

    /// `TP 4 x PP 2 x DP 1 = 8`, exact: three `u32` factors fit in `u128`.
    fn shape(&self) -> String {
        let service = self.service;
        let product = u128::from(service.tensor_parallel)
            * u128::from(service.pipeline_parallel)
            * u128::from(service.data_parallel);
        format!(
            "TP {} x PP {} x DP {} = {product}",
            service.tensor_parallel, service.pipeline_parallel, service.data_parallel
        )
    }

    /// A service holding GPUs or needing more than one: a sidecar without GPUs and
    /// without parallelism is not an inference server, and TP001/TP002 leave it alone.
    fn is_gpu_server(&self) -> bool {
        self.service.gpus.holds_gpus() || self.service.gpus_needed() > 1
    }
}

/// A claimed GPU by what it names on the machine, in GPU order: `(0, index,
/// index)` a whole GPU (by decimal id or by its UUID), `(1, index, uuid)` a
/// MIG slice of GPU `index`, `(2, 0, id)` anything else, as written. The
/// text is what messages name.
type GpuKey<'k> = (u8, u64, Cow<'k, str>);

/// The key of a claimed `id` on a machine with `inventory`.
fn gpu_key<'k>(inventory: Option<&'k Inventory>, id: &'k str) -> GpuKey<'k> {
    match inventory.map(|i| i.identify(id)) {
        Some(GpuIdentity::Whole(index)) => (
            0,
            u64::from(index),
            inventory.map_or(Cow::Borrowed(id), |i| i.canonical_gpu(id)),
        ),
        Some(GpuIdentity::Slice { gpu, uuid }) => (1, u64::from(gpu), Cow::Borrowed(uuid)),
        _ => match decimal_gpu_id(id) {
            Some(n) => (0, n, Cow::Borrowed(id)),
            None => (2, 0, Cow::Borrowed(id)),
        },
    }
}

/// What every machine check reads: the machine, its deployments and services in owner
/// order, and the indexes built once for all of them.
struct MachineContext<'a> {
    machine: &'a Machine,
    /// Sorted by deployment id.
    deployments: Vec<&'a Deployment>,
    /// Every service, ordered by (deployment id, service name): the order that decides
    /// who "owns" a shared GPU or port (file order would change with an unrelated edit).
    holders: Vec<Holder<'a>>,
    /// Pinned GPU -> its holders (indexes into `holders`) in holder order, each once,
    /// with the entry naming it (GPU001, MEM002).
    gpu_users: BTreeMap<GpuKey<'a>, Vec<(usize, &'a GpuRef)>>,
}

impl<'a> MachineContext<'a> {
    fn new(machine: &'a Machine, deployments: &[&'a Deployment]) -> MachineContext<'a> {
        let mut deployments: Vec<&Deployment> = deployments.to_vec();
        deployments.sort_by(|a, b| a.id.cmp(&b.id));
        let mut holders: Vec<Holder<'_>> = deployments
            .iter()
            .flat_map(|d| {
                d.services.iter().map(move |s| Holder {
                    deployment: d,
                    service: s,
                })
            })
            .collect();
        holders.sort_by(|a, b| {
            a.deployment
                .id
                .cmp(&b.deployment.id)
                .then_with(|| a.service.name.cmp(&b.service.name))
        });
        let inventory = machine.inventory.as_deref();
        let mut gpu_users: BTreeMap<GpuKey<'_>, Vec<(usize, &GpuRef)>> = BTreeMap::new();
        for (index, holder) in holders.iter().enumerate() {
            if let GpuClaim::Pinned(refs) = &holder.service.gpus {
                for gpu in refs {
                    let users = gpu_users.entry(gpu_key(inventory, &gpu.id)).or_default();
                    if users.last().is_none_or(|(h, _)| *h != index) {
                        users.push((index, gpu));
                    }
                }
            }
        }
        MachineContext {
            machine,
            deployments,
            holders,
            gpu_users,
        }
    }

    fn inventory(&self) -> Option<&'a Inventory> {
        self.machine.inventory.as_deref()
    }

    /// Whether the holder's TP x PP x DP needs more GPUs than the machine has (TP002;
    /// TP001 on top of it would only repeat the same mistake).
    fn exceeds_machine(&self, holder: &Holder<'_>) -> bool {
        self.inventory()
            .is_some_and(|i| holder.service.gpus_needed() > u64::from(i.gpus))
    }

    /// Whether the holder shares its GPUs on purpose (`catapult.gpu_sharing`).
    fn sharing(&self, holder: usize) -> bool {
        self.holders
            .get(holder)
            .is_some_and(|h| h.service.gpu_sharing)
    }
}

/// Runs every machine-level rule on one machine. `deployments` are the
/// deployments under `machines/<machine.name>/`, in any order.
pub fn check_machine(machine: &Machine, deployments: &[&Deployment]) -> Vec<Finding> {
    let context = MachineContext::new(machine, deployments);
    let mut findings = Vec::new();
    for rule in Rule::ALL {
        if let Check::Machine(check) = rule.check() {
            check(&context, &mut findings);
        }
    }
    findings
}

/// Sort key putting decimal GPU ids in numeric order (ids beyond `u64` last
/// among them), then the others.
pub(crate) fn gpu_sort_key(id: &str) -> (u8, u64, &str) {
    match decimal_gpu_id(id) {
        Some(n) => (0, n, id),
        None => (1, 0, id),
    }
}

/// Whether TP `tp` can serve a model's heads: attention heads split evenly; KV heads
/// split evenly, or each replicated on `tp / kv` GPUs (vLLM's rule for grouped-query
/// attention). TP003 and the planner ask the same question.
pub(crate) fn tp_fits_heads(tp: u32, heads: Option<u32>, kv_heads: Option<u32>) -> bool {
    tp > 0
        && heads.is_none_or(|h| h.is_multiple_of(tp))
        && kv_heads.is_none_or(|kv| kv.is_multiple_of(tp) || tp.is_multiple_of(kv))
}

/// The index a decimal GPU id names (`u64::MAX` for one with more digits than
/// `u64` holds); `None` for UUIDs, MIG ids and anything not all digits.
pub(crate) fn decimal_gpu_id(id: &str) -> Option<u64> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(id.parse::<u64>().unwrap_or(u64::MAX))
}

/// `a, b, c` of the first [`LISTED_HOLDERS`] of `total` names, then `and N more`.
fn listed(names: impl Iterator<Item = String>, total: usize) -> String {
    let mut text: Vec<String> = names.take(LISTED_HOLDERS).collect();
    if total > text.len() {
        text.push(format!("and {} more", total - text.len()));
    }
    text.join(", ")
}

/// [`GpuClaim::describe`] with at most [`LISTED_GPU_IDS`] ids.
fn short_claim(claim: &GpuClaim) -> String {
    match claim {
        GpuClaim::Pinned(refs) if refs.len() > LISTED_GPU_IDS => {
            let ids: Vec<&str> = refs.iter().take(LISTED_GPU_IDS).map(|r| &*r.id).collect();
            format!(
                "GPUs {} and {} more",
                ids.join(","),
                refs.len() - LISTED_GPU_IDS
            )
        }
        _ => claim.describe(),
    }
}

fn list(ids: &[&str]) -> String {
    ids.join(", ")
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        one.to_owned()
    } else {
        many.to_owned()
    }
}
