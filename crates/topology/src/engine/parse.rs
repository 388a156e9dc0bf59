//! Parsing the files an analysis does not find in the cache: compose files
//! with their `.env` and inventories, on the engine's threads, each distinct
//! content once (identical files are the rule in a fleet).

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{ContentKey, Engine, EngineError, ExtraDeployment, ParsedDeployment, ParsedInventory};
use crate::compose::{self, Deployment, DeploymentId};
use crate::finding::{Finding, Location, Rule};
use crate::inventory;
use crate::layout::DeploymentDir;
use crate::repo::{ContentId, Entry, RepoError, Snapshot};

/// What one deployment is read from.
pub(super) enum Source<'a> {
    Dir(&'a DeploymentDir),
    Extra(&'a ExtraDeployment, ContentId, Option<ContentId>),
}

impl Source<'_> {
    /// `None` when some content cannot be identified: then it is parsed
    /// every time rather than wrongly cached.
    pub(super) fn key(&self) -> Option<ContentKey> {
        match self {
            Source::Dir(dir) => Some((
                dir.compose.id?,
                match &dir.env {
                    Some(env) => Some(env.id?),
                    None => None,
                },
            )),
            Source::Extra(_, compose, env) => Some((*compose, *env)),
        }
    }

    pub(super) fn compose_path(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Source::Dir(dir) => std::borrow::Cow::Borrowed(dir.compose.path.as_str()),
            Source::Extra(extra, _, _) => std::borrow::Cow::Owned(extra.compose_path()),
        }
    }

    /// The compose file's path and the `.env`'s, where there is one.
    fn paths(&self) -> (std::borrow::Cow<'_, str>, Option<std::borrow::Cow<'_, str>>) {
        use std::borrow::Cow;
        match self {
            Source::Dir(dir) => (
                Cow::Borrowed(dir.compose.path.as_str()),
                dir.env.as_ref().map(|env| Cow::Borrowed(env.path.as_str())),
            ),
            Source::Extra(extra, _, _) => (
                Cow::Owned(extra.compose_path()),
                extra.env.as_ref().map(|_| Cow::Owned(extra.env_path())),
            ),
        }
    }
}

impl Engine {
    /// One `machine.yaml` read and parsed (a read failure is its finding).
    pub(super) fn parse_inventory(
        &self,
        snapshot: &Snapshot,
        machine: &str,
        entry: &Entry,
    ) -> ParsedInventory {
        match self.read_text(snapshot, entry) {
            Ok(text) => {
                let (inventory, findings) =
                    inventory::read_inventory(machine, &entry.path, &text, &self.limits);
                (inventory.map(Arc::new), findings)
            }
            Err(finding) => (None, vec![*finding]),
        }
    }

    /// Parses the inventories the cache does not know, on up to
    /// [`Engine::set_threads`] threads, by machine name; like
    /// [`Engine::parse_all`], identical files are parsed once
    /// ([`inventory::Inventory::relabeled`]) unless they have findings.
    pub(super) fn parse_inventories<'a>(
        &self,
        snapshot: &Snapshot,
        misses: &[(&'a str, &Entry)],
        shared: &mut usize,
    ) -> Result<FxHashMap<&'a str, Arc<ParsedInventory>>, EngineError> {
        let (firsts, repeats) = firsts_and_repeats(misses, |(_, entry)| entry.id);
        let parsed_firsts = self.in_parallel(&firsts, |(machine, entry)| {
            Arc::new(self.parse_inventory(snapshot, machine, entry))
        })?;
        let parsed_repeats = self.in_parallel(&repeats, |&(index, first)| {
            let (machine, entry) = misses[index];
            match &*parsed_firsts[first] {
                (inventory, findings) if findings.is_empty() => (
                    true,
                    Arc::new((
                        inventory
                            .as_ref()
                            .map(|inventory| Arc::new(inventory.relabeled(&entry.path))),
                        Vec::new(),
                    )),
                ),
                _ => (
                    false,
                    Arc::new(self.parse_inventory(snapshot, machine, entry)),
                ),
            }
        })?;
        *shared = parsed_repeats.iter().filter(|(shared, _)| *shared).count();
        let mut out = FxHashMap::default();
        out.reserve(misses.len());
        out.extend(
            firsts
                .iter()
                .map(|(machine, _)| *machine)
                .zip(parsed_firsts),
        );
        out.extend(
            repeats
                .iter()
                .map(|(index, _)| misses[*index].0)
                .zip(parsed_repeats.into_iter().map(|(_, parsed)| parsed)),
        );
        Ok(out)
    }

    /// Parses the deployments the cache does not know, on up to
    /// [`Engine::set_threads`] threads, in `misses` order. Identical files
    /// are the rule in a fleet (one model served the same way on many
    /// machines): of the misses with one content key only the first is
    /// parsed, and a parse without findings or suppressions is taken by the
    /// others relabeled ([`Deployment::relabeled`]); one with findings (they
    /// name the path) is parsed again at each path.
    pub(super) fn parse_all(
        &self,
        snapshot: &Snapshot,
        misses: &[(usize, &DeploymentId, &Source<'_>)],
    ) -> Result<(Vec<ParsedDeployment>, usize), EngineError> {
        let (firsts, repeats) = firsts_and_repeats(misses, |(_, _, source)| source.key());
        let parsed_firsts = self.in_parallel(&firsts, |(_, id, source)| {
            self.parse_one(snapshot, id, source)
        })?;
        let parsed_repeats = self.in_parallel(&repeats, |&(index, first)| {
            let (_, id, source) = misses[index];
            let first = &parsed_firsts[first];
            if first.findings.is_empty() && first.suppressions.is_empty() {
                let (compose_path, env_path) = source.paths();
                let deployment =
                    first
                        .deployment
                        .relabeled(id.clone(), &compose_path, env_path.as_deref());
                let parsed = ParsedDeployment {
                    deployment: Arc::new(deployment),
                    findings: Vec::new(),
                    suppressions: Vec::new(),
                };
                (true, parsed)
            } else {
                (false, self.parse_one(snapshot, id, source))
            }
        })?;
        let shared = parsed_repeats.iter().filter(|(shared, _)| *shared).count();
        // Back in `misses` order: the firsts in order, each repeat at its index.
        let mut out = Vec::with_capacity(misses.len());
        let mut firsts = parsed_firsts.into_iter();
        let mut repeats = repeats.iter().zip(parsed_repeats).peekable();
        for index in 0..misses.len() {
            let next = match repeats.next_if(|((at, _), _)| *at == index) {
                Some((_, (_, parsed))) => Some(parsed),
                None => firsts.next(),
            };
            out.extend(next);
        }
        Ok((out, shared))
    }

    pub(super) fn parse_one(
        &self,
        snapshot: &Snapshot,
        id: &DeploymentId,
        source: &Source<'_>,
    ) -> ParsedDeployment {
        let mut suppressions = Vec::new();
        let (deployment, findings) = match source {
            Source::Dir(dir) => {
                let compose = self.read_text(snapshot, &dir.compose);
                let env = dir
                    .env
                    .as_ref()
                    .map(|entry| (entry, self.read_text(snapshot, entry)));
                let mut findings = Vec::new();
                let env_text = match env {
                    Some((entry, Ok(text))) => Some((entry.path.as_str(), text)),
                    Some((_, Err(finding))) => {
                        findings.push(*finding);
                        None
                    }
                    None => None,
                };
                match compose {
                    Ok(text) => {
                        suppressions = crate::suppress::scan(
                            &Arc::from(dir.compose.path.as_str()),
                            Some(&id.machine),
                            &text,
                        );
                        let (deployment, more) = compose::read_deployment(
                            id.clone(),
                            &dir.compose.path,
                            &text,
                            env_text.as_ref().map(|(p, t)| (*p, t.as_str())),
                            &self.limits,
                        );
                        findings.extend(more);
                        (deployment, findings)
                    }
                    Err(finding) => {
                        findings.push(*finding);
                        let deployment = Deployment {
                            id: id.clone(),
                            compose_path: dir.compose.path.clone(),
                            env_path: dir.env.as_ref().map(|e| e.path.clone()),
                            services: Vec::new(),
                            content: None,
                        };
                        (deployment, findings)
                    }
                }
            }
            Source::Extra(extra, _, _) => {
                let compose_path = extra.compose_path();
                let env_path = extra.env_path();
                suppressions = crate::suppress::scan(
                    &Arc::from(compose_path.as_str()),
                    Some(&id.machine),
                    &extra.compose,
                );
                compose::read_deployment(
                    id.clone(),
                    &compose_path,
                    &extra.compose,
                    extra.env.as_deref().map(|env| (env_path.as_str(), env)),
                    &self.limits,
                )
            }
        };
        let mut deployment = deployment;
        deployment.content = source.key();
        ParsedDeployment {
            deployment: Arc::new(deployment),
            findings,
            suppressions,
        }
    }

    /// Reads a file as UTF-8 under the size limit; RC001 otherwise.
    pub(super) fn read_text(
        &self,
        snapshot: &Snapshot,
        entry: &Entry,
    ) -> Result<String, Box<Finding>> {
        let machine = machine_of(&entry.path);
        let rc001 = |message: String, location: Location| {
            Box::new(Finding::new(
                Rule::Rc001,
                machine,
                Vec::new(),
                Vec::new(),
                location,
                message,
            ))
        };
        let max = u64::try_from(self.limits.max_bytes).unwrap_or(u64::MAX);
        let bytes = match snapshot.read_entry(entry, max) {
            Ok(bytes) => bytes,
            Err(RepoError::TooLarge { size, limit, .. }) => {
                return Err(rc001(
                    format!(
                        "{} is {size} bytes, more than the limit of {limit} bytes; it is not read",
                        entry.path
                    ),
                    Location::file(&entry.path),
                ));
            }
            Err(e) => {
                return Err(rc001(
                    format!("cannot read {}: {e}", entry.path),
                    Location::file(&entry.path),
                ));
            }
        };
        match String::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                let valid = e.as_bytes().get(..offset).unwrap_or_default();
                let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
                let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                let column = String::from_utf8_lossy(valid.get(line_start..).unwrap_or_default())
                    .chars()
                    .count()
                    + 1;
                Err(rc001(
                    format!(
                        "{} is not valid UTF-8: invalid byte at offset {offset}",
                        entry.path
                    ),
                    Location::new(
                        &entry.path,
                        u32::try_from(line).unwrap_or(u32::MAX),
                        u32::try_from(column).unwrap_or(u32::MAX),
                    ),
                ))
            }
        }
    }
}

/// `items` split by content: the first item of each key (and every item
/// without one), in order, and the repeats as (index in `items`, index in
/// the firsts of the first item with that key), in order.
fn firsts_and_repeats<T, K: std::hash::Hash + Eq>(
    items: &[T],
    key: impl Fn(&T) -> Option<K>,
) -> (Vec<&T>, Vec<(usize, usize)>) {
    let mut first_with: FxHashMap<K, usize> = FxHashMap::default();
    let mut firsts = Vec::new();
    let mut repeats = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match key(item).map(|key| *first_with.entry(key).or_insert(firsts.len())) {
            Some(first) if first < firsts.len() => repeats.push((index, first)),
            _ => firsts.push(item),
        }
    }
    (firsts, repeats)
}

/// `machines/<machine>/...` -> the machine.
fn machine_of(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("machines"), Some(machine), Some(_)) => Some(machine),
        _ => None,
    }
}
