//! The engine: reads a snapshot (layout, compose files, inventories,
//! `release-config.toml`), runs every rule and builds the allocation graph.
//!
//! Parsed files are cached by content id, so analysing a new snapshot after a
//! one-file change parses only that file; machine-level rule results are
//! cached by the content ids of everything on the machine, so only machines
//! whose files changed are checked again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use crate::capacity::DeploymentClaims;
pub use crate::compose::{Deployment, DeploymentId, GpuClaim, ServerKind};
pub use crate::config::Config;
use crate::finding::{Finding, Location, Related, Rule, Summary};
pub use crate::graph::{AllocationGraph, GpuHolders, HolderRef};
pub use crate::inventory::{Interconnect, Inventory, Machine};
use crate::layout::Layout;
use crate::parallel;
use crate::repo::{ContentId, Entry, RepoError, Revision, Snapshot};
use crate::rules;
use crate::yaml::Limits;

mod fleet;
mod parse;
mod pending;

use parse::Source;

pub use fleet::{DeploymentSummary, Fleet, MachineTopology};
pub use pending::{pending_conflicts, pending_conflicts_of};

/// Only for things that make analysis impossible; everything wrong with the
/// repository's content is a finding instead.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("a worker thread of the analysis (parsing files or checking machines) panicked")]
    Worker,
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Counters of one `analyze` call (see [`Engine::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AnalyzeStats {
    /// Compose files (with their `.env`) parsed in this call.
    pub compose_parsed: usize,
    /// Of `compose_parsed`, those that took the parse of an identical
    /// deployment read in the same call, relabeled.
    pub compose_shared: usize,
    /// Compose files whose parse came from the cache.
    pub compose_reused: usize,
    pub inventories_parsed: usize,
    /// Of `inventories_parsed`, those relabeled from an identical one.
    pub inventories_shared: usize,
    pub inventories_reused: usize,
    /// Machines whose machine-level rules ran.
    pub machines_checked: usize,
    /// Machines whose rule results came from the cache.
    pub machines_reused: usize,
    /// Where the time went, in microseconds.
    pub timings: Timings,
}

/// Wall-clock microseconds per phase of one `analyze`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timings {
    pub layout_us: u64,
    pub parse_us: u64,
    pub inventories_us: u64,
    pub rules_us: u64,
    pub assemble_us: u64,
    pub total_us: u64,
}

fn micros(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub analyses: u64,
    pub last: AnalyzeStats,
}

/// A deployment to analyse in addition to (or instead of) the snapshot's
/// deployment with the same id: a proposal being validated before it exists
/// anywhere. Its compose file is `machines/<machine>/<port>/<file_name>`.
#[derive(Debug, Clone)]
pub struct ExtraDeployment {
    pub id: DeploymentId,
    /// `docker-compose.yml` for a new deployment; a replacement keeps the
    /// name of the file it replaces (`compose.yaml`, ...).
    pub file_name: String,
    pub compose: String,
    pub env: Option<String>,
}

impl ExtraDeployment {
    /// A new deployment's file: `docker-compose.yml`, no `.env`.
    pub fn new(id: DeploymentId, compose: String) -> ExtraDeployment {
        ExtraDeployment {
            id,
            file_name: "docker-compose.yml".to_owned(),
            compose,
            env: None,
        }
    }

    pub fn compose_path(&self) -> String {
        format!(
            "machines/{}/{}/{}",
            self.id.machine, self.id.port, self.file_name
        )
    }

    pub fn env_path(&self) -> String {
        format!("machines/{}/{}/.env", self.id.machine, self.id.port)
    }
}

/// Content identity of a deployment's inputs (compose file and `.env`). The
/// path is compared separately: identical files at two paths are two parses
/// (findings name the path).
type ContentKey = (ContentId, Option<ContentId>);

struct ParsedDeployment {
    deployment: Arc<Deployment>,
    findings: Vec<Finding>,
    /// The compose file's `# release-config: ignore` comments.
    suppressions: Vec<crate::suppress::Suppression>,
}

/// An inventory (`None` when unusable) and the findings of reading it.
type ParsedInventory = (Option<Arc<Inventory>>, Vec<Finding>);

/// The inputs of one machine's rules, compared by identity: the cached parse
/// of an unchanged file is the same `Arc`, so equal pointers mean equal
/// inputs (the key holds the `Arc`s, so an address is never reused while it
/// is compared against).
struct MachineKey {
    inventory: Option<Arc<ParsedInventory>>,
    deployments: Vec<Arc<ParsedDeployment>>,
}

impl MachineKey {
    fn same(
        &self,
        inventory: Option<&Arc<ParsedInventory>>,
        deployments: &[&Arc<ParsedDeployment>],
    ) -> bool {
        let inventory_same = match (&self.inventory, inventory) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        inventory_same
            && self.deployments.len() == deployments.len()
            && self
                .deployments
                .iter()
                .zip(deployments)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// A machine's rule inputs and the findings they gave.
type MachineRules = (MachineKey, Arc<Vec<Finding>>);

/// A machine and the findings of its machine-level rules.
type CheckedMachine<'m> = (&'m Machine, Arc<Vec<Finding>>);

/// One machine analysed whole, kept by its directory's subtree id (the Git
/// tree id, or a kept directory listing's id; see [`Snapshot::subtree_id`]):
/// a snapshot in which that id is unchanged gives it again without its
/// layout, files or rules being looked at, so a one-file change costs one
/// machine.
struct MachineUnit {
    machine: Machine,
    /// Its layout findings (those inside the directory).
    layout_findings: Vec<Finding>,
    inventory: Option<Arc<ParsedInventory>>,
    /// In port order; each knows its id (`deployment.id`).
    deployments: Vec<Arc<ParsedDeployment>>,
    rules: Arc<Vec<Finding>>,
}

/// A kept [`MachineUnit`]; `last_used` is set while the layout, perhaps on
/// two threads, asks the cache.
struct KeptUnit {
    tree: ContentId,
    last_used: AtomicU64,
    unit: Arc<MachineUnit>,
}

/// Machine -> recent units.
type UnitCache = FxHashMap<String, Vec<KeptUnit>>;

struct Cached<T> {
    value: T,
    last_used: u64,
}

/// Generations an unused cache entry survives (head + proposals are analysed
/// in turns, and share most files).
const KEEP_GENERATIONS: u64 = 16;

/// Runs per thread of a parallel phase: a run of slow files (large, or read
/// by saphyr) or machines then does not hold the phase's end on one core.
const RUNS_PER_THREAD: usize = 8;

/// Rule results kept per machine (one per revision analysed in turns).
const MACHINE_VARIANTS: usize = 4;

/// Reads and validates snapshots, caching what it parsed.
pub struct Engine {
    limits: Limits,
    /// Threads one analysis may use (see [`Engine::set_threads`]).
    threads: usize,
    /// Whether parses and rule results are kept for a next analysis (see
    /// [`Engine::set_caching`]).
    caching: bool,
    generation: u64,
    /// compose path -> versions by (compose id, env id).
    deployments: VersionCache<ContentKey, Arc<ParsedDeployment>>,
    /// machine.yaml path -> versions by content id.
    inventories: VersionCache<ContentId, Arc<ParsedInventory>>,
    /// machine -> recent (inputs, findings).
    machine_rules: FxHashMap<String, Vec<Cached<MachineRules>>>,
    units: UnitCache,
    stats: EngineStats,
}

impl Default for Engine {
    fn default() -> Engine {
        Engine::new()
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cached_deployments", &self.deployments.len())
            .field("cached_inventories", &self.inventories.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Path -> the recent versions of the file there, by content key. Keyed by
/// path first: many machines hold identical files, few paths hold many versions.
type VersionCache<K, T> = FxHashMap<String, Vec<(K, Cached<T>)>>;

/// Versions kept per path (head and proposals edit the same files).
const VERSIONS_PER_PATH: usize = 8;

fn lookup<K: PartialEq, T: Clone>(
    cache: &mut VersionCache<K, T>,
    path: &str,
    key: &K,
    generation: u64,
) -> Option<T> {
    let (_, hit) = cache.get_mut(path)?.iter_mut().find(|(k, _)| k == key)?;
    hit.last_used = generation;
    Some(hit.value.clone())
}

/// Forgets the least recently used of `variants` when it holds `max`.
fn make_room<T>(variants: &mut Vec<T>, max: usize, last_used: impl Fn(&T) -> u64) {
    if variants.len() >= max
        && let Some(oldest) = variants
            .iter()
            .enumerate()
            .min_by_key(|(_, v)| last_used(v))
            .map(|(i, _)| i)
    {
        variants.swap_remove(oldest);
    }
}

fn store<K: PartialEq, T>(
    cache: &mut VersionCache<K, T>,
    path: &str,
    key: K,
    value: T,
    generation: u64,
) {
    let versions = match cache.get_mut(path) {
        Some(versions) => versions,
        // Most paths only ever have one version: a vector grown by its first
        // push would hold four (12 MB at 50,000 deployments).
        None => cache
            .entry(path.to_owned())
            .or_insert_with(|| Vec::with_capacity(1)),
    };
    versions.retain(|(k, _)| *k != key);
    make_room(versions, VERSIONS_PER_PATH, |(_, v)| v.last_used);
    versions.push((
        key,
        Cached {
            value,
            last_used: generation,
        },
    ));
}

impl Engine {
    pub fn new() -> Engine {
        Engine::with_limits(Limits::default())
    }

    /// An engine reading YAML under these bounds (a larger file is RC001).
    pub fn with_limits(limits: Limits) -> Engine {
        Engine {
            limits,
            // The machine has two cores; more would only contend.
            threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, 4),
            caching: true,
            generation: 0,
            deployments: FxHashMap::default(),
            inventories: FxHashMap::default(),
            machine_rules: FxHashMap::default(),
            units: FxHashMap::default(),
            stats: EngineStats::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How many threads one analysis may use (at least 1; by default the
    /// machine's cores, at most 4). One thread is slower on a large fleet but
    /// allocates everything from one thread, which keeps a long-lived
    /// process's memory peak low: freed parse temporaries are reused instead
    /// of stranded in other threads' allocator arenas.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.max(1);
    }

    /// Whether an analysis keeps its parses and rule results for the next
    /// one (the default). An engine that analyses one snapshot and is then
    /// dropped (`release-config-validate DIR`) keeps nothing: each kept parse
    /// is a copied path, a map entry and memory, for an analysis that never
    /// comes (7 % of the engine's CPU at 2,000 machines, all of it on one
    /// thread while the others wait).
    /// Off, every analysis is a cold one and gives what a cold one gives.
    pub fn set_caching(&mut self, caching: bool) {
        self.caching = caching;
    }

    /// Counters; `last` describes the most recent `analyze`.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Reads and validates one snapshot: layout, compose files, inventories,
    /// release-config.toml, all rules. Unchanged files (same content ids) are
    /// not parsed again.
    pub fn analyze(&mut self, snapshot: &Snapshot) -> Result<Fleet, EngineError> {
        self.analyze_with(snapshot, &[])
    }

    /// [`Engine::analyze`] with extra deployments that replace or add to the
    /// snapshot's (a proposal validated as part of the whole tree). A
    /// replacement keeps nothing of the snapshot's deployment.
    pub fn analyze_with(
        &mut self,
        snapshot: &Snapshot,
        extra: &[ExtraDeployment],
    ) -> Result<Fleet, EngineError> {
        self.analyze_changes(snapshot, extra, &[])
    }

    /// [`Engine::analyze_with`], and without the snapshot's deployments in
    /// `removed` (a proposal that retires one).
    pub fn analyze_changes(
        &mut self,
        snapshot: &Snapshot,
        extra: &[ExtraDeployment],
        removed: &[DeploymentId],
    ) -> Result<Fleet, EngineError> {
        self.generation += 1;
        let generation = self.generation;
        let mut stats = AnalyzeStats::default();
        let started = Instant::now();
        let mut phase = Instant::now();
        // Machines a proposal changes are always read.
        let touched: FxHashSet<&str> = extra
            .iter()
            .map(|item| item.id.machine.as_str())
            .chain(removed.iter().map(|id| id.machine.as_str()))
            .collect();
        let units = &self.units;
        let known = |dir: &Entry| -> Option<Arc<MachineUnit>> {
            if units.is_empty() || (!touched.is_empty() && touched.contains(dir.name())) {
                return None;
            }
            let tree = snapshot.subtree_id(dir)?;
            let kept = units
                .get(dir.name())?
                .iter()
                .find(|kept| kept.tree == tree)?;
            kept.last_used.store(generation, AtomicOrdering::Relaxed);
            Some(Arc::clone(&kept.unit))
        };
        let (mut layout, reused) = Layout::read_reusing(snapshot, self.threads > 1, &known);
        stats.timings.layout_us = micros(phase);
        phase = Instant::now();
        let mut findings: Vec<Finding> = layout.findings.clone();

        // release-config.toml
        let config = match &layout.config {
            Some(entry) => match self.read_text(snapshot, entry) {
                Ok(text) => {
                    let (config, config_findings) = Config::read(&entry.path, &text);
                    findings.extend(config_findings);
                    config
                }
                Err(finding) => {
                    findings.push(*finding);
                    Config::default()
                }
            },
            None => Config::default(),
        };

        // Deployments: the snapshot's, with extras replacing or adding.
        let mut sources: Vec<(DeploymentId, Source<'_>)> = layout
            .deployments()
            .map(|dir| {
                (
                    DeploymentId::new(dir.machine.clone(), dir.port),
                    Source::Dir(dir),
                )
            })
            .collect();
        if !removed.is_empty() {
            // A set: a caller may remove thousands (a fleet without each machine's last
            // deployment), and a scan per source is quadratic.
            let removed: FxHashSet<&DeploymentId> = removed.iter().collect();
            sources.retain(|(id, _)| !removed.contains(id));
        }
        if !extra.is_empty() {
            for item in extra {
                let compose = ContentId::of_bytes(item.compose.as_bytes())?;
                let env = item
                    .env
                    .as_ref()
                    .map(|e| ContentId::of_bytes(e.as_bytes()))
                    .transpose()?;
                sources.retain(|(id, _)| *id != item.id);
                sources.push((item.id.clone(), Source::Extra(item, compose, env)));
            }
        }
        sources.sort_by(|a, b| a.0.cmp(&b.0));
        let mut parsed: Vec<Option<Arc<ParsedDeployment>>> = Vec::with_capacity(sources.len());
        let mut misses: Vec<(usize, &DeploymentId, &Source<'_>)> = Vec::new();
        for (index, (id, source)) in sources.iter().enumerate() {
            let path = source.compose_path();
            let hit = source
                .key()
                .and_then(|key| lookup(&mut self.deployments, &path, &key, generation));
            if hit.is_none() {
                misses.push((index, id, source));
            }
            parsed.push(hit);
        }
        stats.compose_parsed = misses.len();
        stats.compose_reused = sources.len() - misses.len()
            + reused
                .iter()
                .map(|unit| unit.deployments.len())
                .sum::<usize>();
        let (fresh, shared) = self.parse_all(snapshot, &misses)?;
        stats.compose_shared = shared;
        for ((index, _, source), result) in misses.iter().zip(fresh) {
            let result = Arc::new(result);
            if self.caching
                && let Some(key) = source.key()
            {
                store(
                    &mut self.deployments,
                    &source.compose_path(),
                    key,
                    result.clone(),
                    generation,
                );
            }
            if let Some(slot) = parsed.get_mut(*index) {
                *slot = Some(result);
            }
        }
        let parsed: Vec<(DeploymentId, Arc<ParsedDeployment>)> = sources
            .into_iter()
            .zip(parsed)
            .filter_map(|((id, _), result)| result.map(|r| (id, r)))
            .collect();
        // The deployment directories are parsed: their entries are not needed
        // through the rest of the analysis, which is its memory peak.
        for machine in &mut layout.machines {
            machine.deployments = Vec::new();
        }
        stats.timings.parse_us = micros(phase);
        phase = Instant::now();

        // Machines and inventories. Extras may name a machine directory that
        // does not exist yet: it is a machine without inventory.
        // Collected in the layout's (name) order and built in bulk.
        // Inventories the cache does not know are parsed first, in parallel.
        let inventory_misses: Vec<(&str, &Entry)> = layout
            .machines
            .iter()
            .filter_map(|dir| Some((dir.name.as_str(), dir.inventory.as_ref()?)))
            .filter(|(_, entry)| {
                entry.id.is_none_or(|id| {
                    lookup(&mut self.inventories, &entry.path, &id, generation).is_none()
                })
            })
            .collect();
        let mut fresh_inventories: FxHashMap<&str, Arc<ParsedInventory>> =
            self.parse_inventories(snapshot, &inventory_misses, &mut stats.inventories_shared)?;
        let mut machine_list: Vec<(String, Machine)> = Vec::with_capacity(layout.machines.len());
        let mut inventories: FxHashMap<&str, Arc<ParsedInventory>> = FxHashMap::default();
        inventories.reserve(layout.machines.len());
        for dir in &layout.machines {
            let mut machine = Machine {
                name: dir.name.clone(),
                inventory: None,
                inventory_path: None,
            };
            if let Some(entry) = &dir.inventory {
                machine.inventory_path = Some(entry.path.clone());
                let fresh = fresh_inventories.remove(dir.name.as_str());
                let hit = match fresh {
                    Some(_) => None,
                    None => entry
                        .id
                        .and_then(|id| lookup(&mut self.inventories, &entry.path, &id, generation)),
                };
                let result = match (hit, fresh) {
                    (Some(result), _) => {
                        stats.inventories_reused += 1;
                        result
                    }
                    (None, fresh) => {
                        stats.inventories_parsed += 1;
                        let result = match fresh {
                            Some(result) => result,
                            None => Arc::new(self.parse_inventory(snapshot, &dir.name, entry)),
                        };
                        if self.caching
                            && let Some(id) = entry.id
                        {
                            store(
                                &mut self.inventories,
                                &entry.path,
                                id,
                                result.clone(),
                                generation,
                            );
                        }
                        result
                    }
                };
                machine.inventory = result.0.clone();
                findings.extend(result.1.iter().cloned());
                inventories.insert(dir.name.as_str(), result);
            }
            machine_list.push((dir.name.clone(), machine));
        }
        for unit in &reused {
            if let Some(inventory) = &unit.inventory {
                stats.inventories_reused += 1;
                findings.extend(inventory.1.iter().cloned());
            }
            machine_list.push((unit.machine.name.clone(), unit.machine.clone()));
        }
        let mut machines: BTreeMap<String, Machine> = machine_list.into_iter().collect();
        // `parsed` is sorted by id: each machine is looked up once.
        let mut previous: Option<&str> = None;
        for (id, _) in &parsed {
            if previous == Some(id.machine.as_str()) {
                continue;
            }
            previous = Some(id.machine.as_str());
            if !machines.contains_key(&id.machine) {
                let machine = Machine {
                    name: id.machine.clone(),
                    inventory: None,
                    inventory_path: None,
                };
                machines.insert(id.machine.clone(), machine);
            }
        }
        stats.timings.inventories_us = micros(phase);
        phase = Instant::now();

        // Per-deployment findings, and the deployments by machine (`parsed`
        // is sorted by id, so each machine's deployments are contiguous).
        let mut by_machine: FxHashMap<&str, Vec<&Arc<ParsedDeployment>>> = FxHashMap::default();
        for (id, result) in &parsed {
            findings.extend(result.findings.iter().cloned());
            by_machine
                .entry(id.machine.as_str())
                .or_default()
                .push(result);
        }

        let reused_deployments = reused.iter().flat_map(|unit| unit.deployments.iter());
        let deployments: BTreeMap<DeploymentId, Arc<Deployment>> = parsed
            .iter()
            // `&(id, parse)` as `(&id, &parse)`, the reused ones' shape.
            .map(|(id, result)| (id, result))
            .chain(
                reused_deployments
                    .clone()
                    .map(|result| (&result.deployment.id, result)),
            )
            .map(|(id, result)| (id.clone(), Arc::clone(&result.deployment)))
            .collect();
        let reused_names: FxHashSet<&str> = reused
            .iter()
            .map(|unit| unit.machine.name.as_str())
            .collect();
        let checked = self.check_machines(
            machines
                .values()
                .filter(|machine| !reused_names.contains(machine.name.as_str())),
            &by_machine,
            &inventories,
            // Machines with a subtree id are kept whole (`keep_units`).
            self.caching && !snapshot.has_subtrees(),
            &mut stats,
            &mut findings,
        )?;
        for unit in &reused {
            stats.machines_reused += 1;
            findings.extend(unit.layout_findings.iter().cloned());
            for deployment in &unit.deployments {
                findings.extend(deployment.findings.iter().cloned());
            }
            findings.extend(unit.rules.iter().cloned());
        }
        if self.caching && snapshot.has_subtrees() {
            self.keep_units(snapshot, &layout, &parsed, &inventories, checked, &touched);
        }
        stats.timings.rules_us = micros(phase);
        phase = Instant::now();
        let suppressions: Vec<crate::suppress::Suppression> = parsed
            .iter()
            .map(|(_, result)| result)
            .chain(reused_deployments)
            .flat_map(|result| result.suppressions.iter().cloned())
            .collect();
        if !suppressions.is_empty() {
            crate::suppress::apply(&mut findings, &suppressions);
        }
        config.apply(&mut findings);
        findings.sort_by(|a, b| {
            a.location
                .cmp(&b.location)
                .then_with(|| a.rule.cmp(&b.rule))
                .then_with(|| a.message.cmp(&b.message))
        });
        self.evict(generation);
        stats.timings.assemble_us = micros(phase);
        stats.timings.total_us = micros(started);
        self.stats.analyses += 1;
        self.stats.last = stats;
        Ok(Fleet::new(
            snapshot.revision().cloned(),
            findings,
            machines,
            deployments,
            config,
            layout.templates,
        ))
    }

    /// Keeps a [`MachineUnit`] of each machine read afresh whose directory
    /// has a subtree id and that no proposal touched.
    fn keep_units(
        &mut self,
        snapshot: &Snapshot,
        layout: &Layout,
        parsed: &[(DeploymentId, Arc<ParsedDeployment>)],
        inventories: &FxHashMap<&str, Arc<ParsedInventory>>,
        checked: Vec<CheckedMachine<'_>>,
        touched: &FxHashSet<&str>,
    ) {
        let generation = self.generation;
        let mut layout_findings: FxHashMap<&str, Vec<Finding>> = FxHashMap::default();
        for finding in &layout.findings {
            if let Some(machine) = &finding.machine {
                layout_findings
                    .entry(machine.as_str())
                    .or_default()
                    .push(finding.clone());
            }
        }
        // `parsed` is sorted by id: each machine's deployments are one run.
        let mut runs: FxHashMap<&str, &[(DeploymentId, Arc<ParsedDeployment>)]> =
            FxHashMap::default();
        for run in parsed.chunk_by(|a, b| a.0.machine == b.0.machine) {
            if let Some((id, _)) = run.first() {
                runs.insert(id.machine.as_str(), run);
            }
        }
        let mut path = String::with_capacity(64);
        for (machine, rules) in checked {
            let name = machine.name.as_str();
            if touched.contains(name) {
                continue;
            }
            path.clear();
            path.push_str(crate::repo::MACHINES_DIR);
            path.push('/');
            path.push_str(name);
            let Some(tree) = snapshot
                .entry(&path)
                .and_then(|dir| snapshot.subtree_id(dir))
            else {
                continue;
            };
            let deployments = runs.get(name).map_or_else(Vec::new, |run| {
                run.iter().map(|(_, parsed)| Arc::clone(parsed)).collect()
            });
            let unit = MachineUnit {
                machine: machine.clone(),
                layout_findings: layout_findings.remove(name).unwrap_or_default(),
                inventory: inventories.get(name).cloned(),
                deployments,
                rules,
            };
            let variants = self.units.entry(machine.name.clone()).or_default();
            variants.retain(|kept| kept.tree != tree);
            make_room(variants, MACHINE_VARIANTS, |kept| {
                kept.last_used.load(AtomicOrdering::Relaxed)
            });
            variants.push(KeptUnit {
                tree,
                last_used: AtomicU64::new(generation),
                unit: Arc::new(unit),
            });
        }
    }

    /// Machine-level rules, cached per machine (when `keep`): a machine whose
    /// inventory and deployments are the same parses as last time keeps its
    /// findings; the others are checked on up to [`Engine::set_threads`]
    /// threads. Returns each machine's findings, in `machines` order.
    fn check_machines<'m>(
        &mut self,
        machines: impl Iterator<Item = &'m Machine>,
        by_machine: &FxHashMap<&str, Vec<&Arc<ParsedDeployment>>>,
        inventories: &FxHashMap<&str, Arc<ParsedInventory>>,
        keep: bool,
        stats: &mut AnalyzeStats,
        findings: &mut Vec<Finding>,
    ) -> Result<Vec<CheckedMachine<'m>>, EngineError> {
        let generation = self.generation;
        let looked_up: Vec<_> = machines
            .map(|machine| {
                let on_machine = by_machine
                    .get(machine.name.as_str())
                    .map_or(&[][..], Vec::as_slice);
                let inventory = inventories.get(machine.name.as_str());
                let hit = self
                    .machine_rules
                    .get_mut(machine.name.as_str())
                    .and_then(|variants| {
                        let hit = variants
                            .iter_mut()
                            .find(|v| v.value.0.same(inventory, on_machine))?;
                        hit.last_used = generation;
                        Some(hit.value.1.clone())
                    });
                (machine, on_machine, inventory, hit)
            })
            .collect();
        let misses: Vec<_> = looked_up
            .iter()
            .filter(|(_, _, _, hit)| hit.is_none())
            .collect();
        let mut checked_now = self
            .in_parallel(&misses, |(machine, on_machine, _, _)| {
                let deployments: Vec<&Deployment> =
                    on_machine.iter().map(|p| &*p.deployment).collect();
                Arc::new(rules::check_machine(machine, &deployments))
            })?
            .into_iter();
        let mut checked = Vec::with_capacity(looked_up.len());
        for (machine, on_machine, inventory, hit) in looked_up {
            let result = match hit {
                Some(result) => {
                    stats.machines_reused += 1;
                    result
                }
                None => {
                    stats.machines_checked += 1;
                    let result = checked_now.next().ok_or(EngineError::Worker)?;
                    if keep {
                        let key = MachineKey {
                            inventory: inventory.cloned(),
                            deployments: on_machine.iter().map(|p| Arc::clone(p)).collect(),
                        };
                        let variants = self.machine_rules.entry(machine.name.clone()).or_default();
                        make_room(variants, MACHINE_VARIANTS, |v| v.last_used);
                        variants.push(Cached {
                            value: (key, result.clone()),
                            last_used: generation,
                        });
                    }
                    result
                }
            };
            findings.extend(result.iter().cloned());
            checked.push((machine, result));
        }
        Ok(checked)
    }

    /// `work` on each item, on up to [`Engine::set_threads`] threads, in order.
    fn in_parallel<T: Sync, R: Send>(
        &self,
        items: &[T],
        work: impl Fn(&T) -> R + Sync,
    ) -> Result<Vec<R>, EngineError> {
        let threads = self.threads;
        if items.len() < 32 || threads == 1 {
            return Ok(items.iter().map(work).collect());
        }
        let parts = parallel::in_shared_runs(items, threads, threads * RUNS_PER_THREAD, |part| {
            part.iter().map(&work).collect::<Vec<_>>()
        });
        let mut out = Vec::with_capacity(items.len());
        for part in parts {
            out.extend(part.ok_or(EngineError::Worker)?);
        }
        Ok(out)
    }

    /// Drops cache entries no analysis used for a while.
    fn evict(&mut self, generation: u64) {
        let keep = |last_used: u64| last_used + KEEP_GENERATIONS >= generation;
        self.deployments.retain(|_, entries| {
            entries.retain(|(_, v)| keep(v.last_used));
            !entries.is_empty()
        });
        self.inventories.retain(|_, entries| {
            entries.retain(|(_, v)| keep(v.last_used));
            !entries.is_empty()
        });
        self.machine_rules.retain(|_, variants| {
            variants.retain(|v| keep(v.last_used));
            !variants.is_empty()
        });
        self.units.retain(|_, variants| {
            variants.retain(|kept| keep(kept.last_used.load(AtomicOrdering::Relaxed)));
            !variants.is_empty()
        });
    }
}
