//! The repository layout (contract section 1): which machines, deployments,
//! inventories, templates and configuration a [`Snapshot`] holds.
//!
//! ```text
//! machines/<machine>/machine.yaml            optional inventory
//! machines/<machine>/<port>/<compose file>   one deployment, `<machine>:<port>`
//! machines/<machine>/<port>/.env             optional interpolation variables
//! templates/<name>.yml.j2                    proposal templates
//! release-config.toml                        rule configuration
//! ```
//!
//! Every anomaly is an RC004 finding, never a silent skip. Decisions where the
//! contract is silent:
//!
//! - **Several compose files in one port directory**: the first of
//!   [`COMPOSE_FILE_NAMES`] (the contract's order) is read, and each other one is
//!   an RC004 finding. `docker compose` itself prefers `compose.yaml`, so with
//!   two files what is validated and what is deployed could differ: keep one.
//! - **Override files** (`docker-compose.override.yml`, `compose.override.yaml`,
//!   ...) are RC004: `docker compose up` merges them silently, but the validator
//!   does not read them, so they could hide a GPU or port claim.
//! - **Other files and directories inside a port directory** (configuration
//!   files mounted by the compose file, a README) are deployment assets and are
//!   not findings.
//! - **`.gitkeep`** placeholders are accepted anywhere (Git cannot hold an empty
//!   directory).
//! - **Symbolic links** leaving the repository (or entering `.git`) are RC004
//!   wherever they are, and never followed. A link to a file inside the
//!   repository is read as that file (a compose file or `.env` may be a link).
//!   A link in place of a machine or port directory is RC004: linked
//!   directories are not followed, so a deployment cannot be counted twice.
//! - **Files in `templates/`** other than `<name>.yml.j2` are RC004.
//! - A repository with neither `machines/` nor `release-config.toml` is one
//!   RC004 finding (most likely the wrong directory was given). A repository
//!   without `machines/` but with a `release-config.toml` simply has no
//!   deployments yet (Git cannot store an empty `machines/`).

use std::fmt;

use crate::finding::{Finding, Location, Rule};
use crate::repo::{
    CONFIG_FILE, Entry, EntryKind, LinkTarget, MACHINES_DIR, Snapshot, TEMPLATES_DIR,
};

/// Accepted compose file names, in the order of preference.
pub(crate) const COMPOSE_FILE_NAMES: [&str; 4] = [
    "docker-compose.yml",
    "docker-compose.yaml",
    "compose.yml",
    "compose.yaml",
];

/// Files `docker compose` merges automatically; the validator refuses them.
pub(crate) const OVERRIDE_FILE_NAMES: [&str; 4] = [
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
    "compose.override.yml",
    "compose.override.yaml",
];

/// The machine inventory, inside a machine directory.
pub(crate) const INVENTORY_FILE: &str = "machine.yaml";
/// Interpolation variables, inside a port directory.
pub(crate) const ENV_FILE: &str = ".env";
/// Suffix of a proposal template in `templates/`.
pub(crate) const TEMPLATE_SUFFIX: &str = ".yml.j2";
/// Placeholder accepted anywhere.
const PLACEHOLDER_FILE: &str = ".gitkeep";

const MACHINE_NAME_MAX: usize = 63;

/// Machine directories from which [`Layout::read`] uses a second thread.
const PARALLEL_MIN_MACHINES: usize = 256;

/// Why a machine or port directory name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NameError {
    #[error("machine name `{name}` {reason} (expected ^[A-Za-z0-9][A-Za-z0-9._-]{{0,62}}$)")]
    Machine { name: String, reason: String },
    #[error("port `{name}` {reason} (expected a decimal number 1..65535 without leading zeros)")]
    Port { name: String, reason: String },
}

/// Checks a machine name against `^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`.
pub(crate) fn check_machine_name(name: &str) -> Result<(), NameError> {
    let bad = |reason: String| {
        Err(NameError::Machine {
            name: name.to_owned(),
            reason,
        })
    };
    let Some(first) = name.chars().next() else {
        return bad("is empty".to_owned());
    };
    if !first.is_ascii_alphanumeric() {
        return bad("must start with a letter or a digit".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(format!(
            "contains {c:?}; only letters, digits, `.`, `_` and `-` are allowed"
        ));
    }
    if name.len() > MACHINE_NAME_MAX {
        return bad(format!(
            "is {} characters long, more than {MACHINE_NAME_MAX}",
            name.len()
        ));
    }
    Ok(())
}

/// Parses a port directory name: decimal 1..65535, no sign, no leading zero.
pub(crate) fn parse_port_name(name: &str) -> Result<u16, NameError> {
    let bad = |reason: &str| {
        Err(NameError::Port {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if !name.bytes().all(|b| b.is_ascii_digit()) {
        return bad("is not a decimal number");
    }
    if name.len() > 1 && name.starts_with('0') {
        return bad("has a leading zero");
    }
    // At most 5 digits can be in range; longer ones would overflow the parse.
    match name.parse::<u32>() {
        Ok(port @ 1..=65535) if name.len() <= 5 => {
            u16::try_from(port).or_else(|_| bad("is outside 1..65535"))
        }
        _ => bad("is outside 1..65535"),
    }
}

/// The layout of a repository snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layout {
    /// Machines with a valid name, sorted by name.
    pub machines: Vec<MachineDir>,
    /// `release-config.toml`, when present and a file.
    pub config: Option<Entry>,
    /// `templates/<name>.yml.j2` files, sorted by path (see [`template_name`]).
    pub templates: Vec<Entry>,
    /// RC004 findings, sorted by location then message.
    pub findings: Vec<Finding>,
}

/// `machines/<name>/`.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineDir {
    pub name: String,
    /// `machine.yaml`, when present.
    pub inventory: Option<Entry>,
    /// Port directories with a compose file, sorted by port.
    pub deployments: Vec<DeploymentDir>,
}

/// `machines/<machine>/<port>/`: one deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentDir {
    pub machine: String,
    pub port: u16,
    /// The compose file read for this deployment (possibly a link to a file
    /// inside the repository; [`Snapshot::read_entry`] follows it).
    pub compose: Entry,
    /// `.env`, when present.
    pub env: Option<Entry>,
}

impl fmt::Display for DeploymentDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.machine, self.port)
    }
}

/// The template name of a `templates/<name>.yml.j2` entry.
pub fn template_name(entry: &Entry) -> Option<&str> {
    entry
        .name()
        .strip_suffix(TEMPLATE_SUFFIX)
        .filter(|name| !name.is_empty())
}

/// Who a finding concerns, for its machine / deployments fields.
#[derive(Clone, Copy)]
struct Scope<'a> {
    machine: Option<&'a str>,
    port: Option<u16>,
}

impl Scope<'_> {
    const REPO: Scope<'static> = Scope {
        machine: None,
        port: None,
    };
}

/// What a caller already knows of a machine directory, whole (see
/// [`Layout::read_reusing`]).
pub(crate) type Known<'a, T> = &'a (dyn Fn(&Entry) -> Option<T> + Sync);

struct Reader<'s> {
    snapshot: &'s Snapshot,
    findings: Vec<Finding>,
    /// A large fleet's machine directories may be read on a second thread.
    parallel: bool,
}

impl Layout {
    /// Reads the layout of `snapshot`. Never fails: problems are findings.
    pub fn read(snapshot: &Snapshot) -> Layout {
        Layout::read_with(snapshot, true)
    }

    /// [`Layout::read`], on the calling thread only unless `parallel`.
    pub fn read_with(snapshot: &Snapshot, parallel: bool) -> Layout {
        Layout::read_reusing::<()>(snapshot, parallel, &|_| None).0
    }

    /// [`Layout::read_with`], without reading the valid machine directories
    /// `known` knows: what it answered for them comes back instead, in name
    /// order, and neither they nor their findings are in the layout.
    pub(crate) fn read_reusing<T>(
        snapshot: &Snapshot,
        parallel: bool,
        known: Known<'_, T>,
    ) -> (Layout, Vec<T>) {
        let mut reader = Reader {
            snapshot,
            findings: Vec::new(),
            parallel,
        };
        reader.report_escaping_links();

        let config = reader.config();
        let templates = reader.templates();
        let (machines, reused) = reader.machines(config.is_some(), known);

        let mut findings = reader.findings;
        findings.sort_by(|a, b| {
            a.location
                .cmp(&b.location)
                .then_with(|| a.message.cmp(&b.message))
        });
        let layout = Layout {
            machines,
            config,
            templates,
            findings,
        };
        (layout, reused)
    }

    /// Every deployment, machine by machine, port by port.
    pub fn deployments(&self) -> impl Iterator<Item = &DeploymentDir> {
        self.machines
            .iter()
            .flat_map(|machine| machine.deployments.iter())
    }

    /// The machine directory called `name`.
    pub fn machine(&self, name: &str) -> Option<&MachineDir> {
        self.machines.iter().find(|machine| machine.name == name)
    }
}

/// A link leaving the repository: reported once, by [`Reader::report_escaping_links`].
fn escapes(entry: &Entry) -> bool {
    matches!(entry.kind, EntryKind::Symlink { escapes: true, .. })
}

/// "a file", "a directory", "a symbolic link to `x` (which points to nothing)".
fn what(entry: &Entry) -> String {
    match &entry.kind {
        EntryKind::File => "a file".to_owned(),
        EntryKind::Dir => "a directory".to_owned(),
        EntryKind::Symlink {
            target,
            resolves_to,
            ..
        } => match resolves_to {
            LinkTarget::File(_) => format!("a symbolic link to the file `{target}`"),
            LinkTarget::Dir(_) => format!(
                "a symbolic link to the directory `{target}` (linked directories are not followed)"
            ),
            LinkTarget::Missing => {
                format!("a symbolic link to `{target}`, which points to nothing")
            }
            LinkTarget::Outside => format!("a symbolic link to `{target}`, outside the repository"),
        },
        EntryKind::Other { what } => format!("a {what}"),
    }
}

impl Reader<'_> {
    fn finding(&mut self, scope: Scope<'_>, entry_path: &str, message: String) {
        let deployments = match (scope.machine, scope.port) {
            (Some(machine), Some(port)) => vec![format!("{machine}:{port}")],
            _ => Vec::new(),
        };
        self.findings.push(Finding::new(
            Rule::Rc004,
            scope.machine,
            deployments,
            [entry_path.to_owned()],
            Location::file(entry_path),
            message,
        ));
    }

    /// Links leaving the repository, wherever they are.
    fn report_escaping_links(&mut self) {
        let snapshot = self.snapshot;
        if !snapshot.has_links() {
            return;
        }
        for entry in snapshot.entries().iter().filter(|entry| escapes(entry)) {
            let EntryKind::Symlink { target, .. } = &entry.kind else {
                continue;
            };
            // Attribute the link to its machine / deployment when its path says so.
            let mut parts = entry.path.split('/');
            let under_machines = parts.next() == Some(MACHINES_DIR);
            let machine = parts
                .next()
                .filter(|m| under_machines && check_machine_name(m).is_ok());
            let port = parts
                .next()
                .filter(|_| machine.is_some())
                .and_then(|p| parse_port_name(p).ok());
            // A link *named* like a port is not a deployment directory.
            let port = port.filter(|_| parts.next().is_some());
            self.finding(
                Scope { machine, port },
                &entry.path,
                format!(
                    "symbolic link `{}` -> `{target}` leaves the repository; it is not followed",
                    entry.path
                ),
            );
        }
    }

    fn config(&mut self) -> Option<Entry> {
        let entry = self.snapshot.entry(CONFIG_FILE)?;
        if entry.is_file() {
            return Some(entry.clone());
        }
        if !escapes(entry) {
            let message = format!(
                "`{CONFIG_FILE}` is {}, not a file; it is not read",
                what(entry)
            );
            self.finding(Scope::REPO, &entry.path, message);
        }
        None
    }

    fn templates(&mut self) -> Vec<Entry> {
        let snapshot = self.snapshot;
        let Some(dir) = snapshot.entry(TEMPLATES_DIR) else {
            return Vec::new();
        };
        if !dir.is_dir() {
            if !escapes(dir) {
                let message = format!(
                    "`{TEMPLATES_DIR}` is {}, not a directory; no template is read from it",
                    what(dir)
                );
                self.finding(Scope::REPO, &dir.path, message);
            }
            return Vec::new();
        }
        let mut templates = Vec::new();
        for entry in snapshot.children(TEMPLATES_DIR) {
            if escapes(entry) || (entry.name() == PLACEHOLDER_FILE && entry.is_file()) {
                continue;
            }
            if entry.is_file() && template_name(entry).is_some() {
                templates.push(entry.clone());
            } else {
                let message = format!(
                    "`{}` is {}; `{TEMPLATES_DIR}/` holds only `<name>{TEMPLATE_SUFFIX}` template files",
                    entry.path,
                    what(entry)
                );
                self.finding(Scope::REPO, &entry.path, message);
            }
        }
        templates
    }

    fn machines<T>(&mut self, has_config: bool, known: Known<'_, T>) -> (Vec<MachineDir>, Vec<T>) {
        let snapshot = self.snapshot;
        let Some(dir) = snapshot.entry(MACHINES_DIR) else {
            if !has_config {
                let message = format!(
                    "no `{MACHINES_DIR}/` directory and no `{CONFIG_FILE}`: this does not look like a release-config repository"
                );
                self.finding(Scope::REPO, MACHINES_DIR, message);
            }
            return (Vec::new(), Vec::new());
        };
        if !dir.is_dir() {
            if !escapes(dir) {
                let message = format!(
                    "`{MACHINES_DIR}` is {}, not a directory; no deployment is read from it",
                    what(dir)
                );
                self.finding(Scope::REPO, &dir.path, message);
            }
            return (Vec::new(), Vec::new());
        }
        let mut machine_dirs: Vec<&Entry> = Vec::new();
        let mut reused: Vec<T> = Vec::new();
        for entry in snapshot.children(MACHINES_DIR) {
            if escapes(entry) || (entry.name() == PLACEHOLDER_FILE && entry.is_file()) {
                continue;
            }
            let name = entry.name();
            match (entry.is_dir(), check_machine_name(name)) {
                (true, Ok(())) => match known(entry) {
                    Some(answer) => reused.push(answer),
                    None => machine_dirs.push(entry),
                },
                (true, Err(reason)) => {
                    let message =
                        format!("`{}`: {reason}; its deployments are not read", entry.path);
                    self.finding(Scope::REPO, &entry.path, message);
                }
                (false, _) => {
                    let message = format!(
                        "`{}` is {}; `{MACHINES_DIR}/` holds only machine directories",
                        entry.path,
                        what(entry)
                    );
                    self.finding(Scope::REPO, &entry.path, message);
                }
            }
        }
        let mut machines = self.machine_dirs(&machine_dirs);
        machines.sort_by(|a, b| a.name.cmp(&b.name));
        // `reused` is in name order already: children come in path order,
        // which for one component is byte order.
        (machines, reused)
    }

    /// Reads machine directories, a large fleet's in two halves on two
    /// threads (re-validation reads every directory each time).
    fn machine_dirs(&mut self, dirs: &[&Entry]) -> Vec<MachineDir> {
        let snapshot = self.snapshot;
        let read_all = |reader: &mut Reader<'_>, dirs: &[&Entry]| -> Vec<MachineDir> {
            dirs.iter().map(|dir| reader.machine(dir)).collect()
        };
        if !self.parallel || dirs.len() < PARALLEL_MIN_MACHINES {
            return read_all(self, dirs);
        }
        let (first, second) = dirs.split_at(dirs.len() / 2);
        let second_half = std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("layout".to_owned())
                .spawn_scoped(scope, || {
                    let mut reader = Reader {
                        snapshot,
                        findings: Vec::new(),
                        parallel: false,
                    };
                    let machines = read_all(&mut reader, second);
                    (machines, reader.findings)
                })
                .ok();
            let mut machines = read_all(self, first);
            let second_half = match handle.map(|h| h.join()) {
                Some(Ok(half)) => half,
                // No thread, or it panicked (nothing here panics on input):
                // read the half here.
                _ => {
                    let mut reader = Reader {
                        snapshot,
                        findings: Vec::new(),
                        parallel: false,
                    };
                    let half = read_all(&mut reader, second);
                    (half, reader.findings)
                }
            };
            machines.extend(second_half.0);
            (machines, second_half.1)
        });
        let (machines, findings) = second_half;
        self.findings.extend(findings);
        machines
    }

    fn machine(&mut self, dir: &Entry) -> MachineDir {
        let snapshot = self.snapshot;
        let name = dir.name().to_owned();
        let scope = Scope {
            machine: Some(&name),
            port: None,
        };
        let mut inventory = None;
        let mut deployments = Vec::new();
        for entry in snapshot.children(&dir.path) {
            let entry_name = entry.name();
            if escapes(entry) || (entry_name == PLACEHOLDER_FILE && entry.is_file()) {
                continue;
            }
            if entry_name == INVENTORY_FILE {
                if entry.is_file() {
                    inventory = Some(entry.clone());
                } else {
                    let message = format!(
                        "`{}` is {}, not a file; the inventory is not read",
                        entry.path,
                        what(entry)
                    );
                    self.finding(scope, &entry.path, message);
                }
                continue;
            }
            match (entry.is_dir(), parse_port_name(entry_name)) {
                (true, Ok(port)) => {
                    if let Some(deployment) = self.deployment(&name, port, entry) {
                        deployments.push(deployment);
                    }
                }
                (true, Err(reason)) => {
                    let message =
                        format!("`{}`: {reason}; it is not read as a deployment", entry.path);
                    self.finding(scope, &entry.path, message);
                }
                (false, _) => {
                    let hint = if entry_name.eq_ignore_ascii_case("machine.yml")
                        || entry_name.eq_ignore_ascii_case(INVENTORY_FILE)
                    {
                        format!(" (the inventory is read from `{INVENTORY_FILE}`)")
                    } else {
                        String::new()
                    };
                    let message = format!(
                        "`{}` is {}; a machine directory holds only port directories and `{INVENTORY_FILE}`{hint}",
                        entry.path,
                        what(entry)
                    );
                    self.finding(scope, &entry.path, message);
                }
            }
        }
        deployments.sort_by_key(|deployment| deployment.port);
        // Kept for the whole analysis: at 2.5 deployments per machine the
        // capacity of four that pushing leaves was 10 MB at 20,000 machines.
        deployments.shrink_to_fit();
        MachineDir {
            name,
            inventory,
            deployments,
        }
    }

    fn deployment(&mut self, machine: &str, port: u16, dir: &Entry) -> Option<DeploymentDir> {
        let snapshot = self.snapshot;
        let scope = Scope {
            machine: Some(machine),
            port: Some(port),
        };
        let mut compose_files: Vec<(usize, &Entry)> = Vec::new();
        let mut env = None;
        for entry in snapshot.children(&dir.path) {
            if escapes(entry) {
                continue;
            }
            let name = entry.name();
            if let Some(rank) = COMPOSE_FILE_NAMES
                .iter()
                .position(|candidate| *candidate == name)
            {
                if entry.is_file() {
                    compose_files.push((rank, entry));
                } else {
                    let message =
                        format!("`{}` is {}, not a compose file", entry.path, what(entry));
                    self.finding(scope, &entry.path, message);
                }
            } else if OVERRIDE_FILE_NAMES.contains(&name) {
                let message = format!(
                    "`{}`: `docker compose` merges override files automatically, but the validator does not read them; fold it into the compose file",
                    entry.path
                );
                self.finding(scope, &entry.path, message);
            } else if name == ENV_FILE {
                if entry.is_file() {
                    env = Some(entry.clone());
                } else {
                    let message = format!(
                        "`{}` is {}, not a file; no variable is read from it",
                        entry.path,
                        what(entry)
                    );
                    self.finding(scope, &entry.path, message);
                }
            }
            // Anything else is a deployment asset (a mounted config file, a README).
        }
        compose_files.sort_by_key(|(rank, _)| *rank);
        let mut compose_files = compose_files.into_iter().map(|(_, entry)| entry);
        let Some(compose) = compose_files.next() else {
            let message = format!(
                "port directory `{}` has no compose file (expected one of {}); the deployment is not read",
                dir.path,
                COMPOSE_FILE_NAMES.join(", ")
            );
            self.finding(scope, &dir.path, message);
            return None;
        };
        for ignored in compose_files {
            let message = format!(
                "`{}` is ignored: `{}` is read (first in the order {}), while `docker compose` itself prefers compose.yaml; keep exactly one compose file",
                ignored.path,
                compose.name(),
                COMPOSE_FILE_NAMES.join(", ")
            );
            self.finding(scope, &ignored.path, message);
        }
        Some(DeploymentDir {
            machine: machine.to_owned(),
            port,
            compose: compose.clone(),
            env,
        })
    }
}

/// Closest names to `wanted` among `names` (Levenshtein distance), best first.
pub fn closest<'a>(
    wanted: &str,
    names: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Vec<&'a str> {
    // Compare on a bounded prefix: a hostile 1 MB name must not cost a 1 MB x N matrix.
    let wanted: Vec<char> = wanted.chars().take(128).collect();
    let mut scored: Vec<(usize, &str)> = names
        .into_iter()
        .map(|name| {
            let candidate: Vec<char> = name.chars().take(128).collect();
            (levenshtein(&wanted, &candidate), name)
        })
        .collect();
    scored.sort();
    let threshold = (wanted.len() / 2).max(3);
    let near: Vec<&str> = scored
        .iter()
        .filter(|(d, _)| *d <= threshold)
        .take(max)
        .map(|(_, n)| *n)
        .collect();
    if near.is_empty() {
        scored.iter().take(max).map(|(_, n)| *n).collect()
    } else {
        near
    }
}

fn levenshtein(a: &[char], b: &[char]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names() {
        let cases: &[(&str, bool)] = &[
            ("gpu-01", true),
            ("a", true),
            ("0", true),
            ("node.rack_2-b", true),
            (&"a".repeat(63), true),
            (&"a".repeat(64), false),
            ("", false),
            ("-gpu", false),
            (".hidden", false),
            ("_x", false),
            ("../x", false),
            ("..", false),
            ("a/b", false),
            ("gpu 01", false),
            ("gpü", false),
        ];
        for (name, ok) in cases {
            assert_eq!(check_machine_name(name).is_ok(), *ok, "{name:?}");
        }
    }

    #[test]
    fn port_names() {
        let cases: &[(&str, Option<u16>)] = &[
            ("1", Some(1)),
            ("8000", Some(8000)),
            ("65535", Some(65535)),
            ("0", None),
            ("08000", None),
            ("00", None),
            ("65536", None),
            ("70000", None),
            ("99999999999999999999", None),
            ("+80", None),
            ("-1", None),
            ("80a", None),
            ("", None),
            ("../x", None),
            ("８０", None),
        ];
        for (name, expected) in cases {
            assert_eq!(parse_port_name(name).ok(), *expected, "{name:?}");
        }
        let message = parse_port_name("08000")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(message.contains("leading zero"), "{message}");
    }

    #[test]
    fn closest_names() {
        let names = ["gpu-a100-01", "gpu-a100-02", "gpu-h100-01", "cpu-01"];
        let check = |wanted: &str, expected: &[&str]| {
            assert_eq!(
                closest(wanted, names.iter().copied(), 2),
                expected,
                "{wanted}"
            );
        };
        check("gpu-a100-1", &["gpu-a100-01", "gpu-a100-02"]);
        check("gpu-h100-01x", &["gpu-h100-01", "gpu-a100-01"]);
        check("../../etc", &["cpu-01", "gpu-a100-01"]);
        assert_eq!(closest("x", std::iter::empty(), 3), Vec::<&str>::new());
    }
}
