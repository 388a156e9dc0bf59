//! Reading the repository (a directory or Git revisions), running the engine
//! on the head, the base and pending refs, and building the [`Report`].

use std::path::PathBuf;
use std::sync::Arc;

use topology::engine::{Engine, EngineError, Fleet, pending_conflicts_of};
use topology::proposal::changed_deployments;
use topology::repo::{RepoError, Repository, Revision, Snapshot};

use crate::baseline::BaselineUse;
use crate::markdown::MachineChange;
use crate::report::{Report, ReportedFinding, RevisionInfo, Topology, mark_new_in};
use crate::{Args, Format};

/// Source files larger than this are not shown in the human report.
const MAX_SOURCE_BYTES: u64 = 4 << 20;

/// Why the validator could not run (exit status 2). Each message is one line
/// naming the path, revision or machine concerned.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{option} needs a Git repository, but {}: {message}", path.display())]
    NotGit {
        option: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("unknown revision `{rev}` ({option}): {message}")]
    UnknownRev {
        option: &'static str,
        rev: String,
        message: String,
    },
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("cannot analyse {what}: {source}")]
    Engine { what: String, source: EngineError },
    #[error("no machine named `{machine}` in {what} (machines: {known})")]
    UnknownMachine {
        machine: String,
        what: String,
        known: String,
    },
    #[error("cannot write the report: {source}")]
    Output { source: std::io::Error },
    #[error("no rule `{code}` (rules: {known})")]
    UnknownRule { code: String, known: String },
    #[error("baseline {}: {problem}", path.display())]
    Baseline { path: PathBuf, problem: String },
    #[error("inventory import: {message}")]
    Import { message: String },
    #[error("place: {message}")]
    Place { message: String },
    #[error("cannot append to the step summary {}: {source}", path.display())]
    StepSummary {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A finished validation: the report, and the snapshots to show source
/// lines from (the files exactly as validated, also for `--rev`).
pub struct Validated {
    pub report: Report,
    snapshot: Snapshot,
    /// The pending refs read for `--pending`, by ref name.
    pending: Vec<(String, Snapshot)>,
    /// The engine and the fleets the report was made from, kept so that a
    /// process about to exit can skip freeing them ([`Validated::leak`]).
    _analysis: (Engine, Vec<Fleet>),
}

impl Validated {
    /// Forgets everything without freeing it: for a process that exits
    /// next, whose memory the kernel takes back at once. Freeing the
    /// analysis one allocation at a time was 4 % of a validation, on one
    /// thread after the report.
    pub fn leak(self) {
        std::mem::forget(self);
    }

    /// The text of a repository file: of the validated head (`at` is `None`)
    /// or of the pending ref `at`.
    pub fn source(&self, at: Option<&str>, path: &str) -> Option<String> {
        let snapshot = match at {
            None => &self.snapshot,
            Some(name) => self
                .pending
                .iter()
                .find_map(|(n, snapshot)| (n == name).then_some(snapshot))?,
        };
        let bytes = snapshot.read(path, MAX_SOURCE_BYTES).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Runs the validation `args` describe and builds the report.
pub fn validate(args: &Args) -> Result<Validated, ValidateError> {
    let path = &args.path;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(ValidateError::Unreadable {
                path: path.clone(),
                reason: "not a directory".into(),
            });
        }
        Err(e) => {
            return Err(ValidateError::Unreadable {
                path: path.clone(),
                reason: e.to_string(),
            });
        }
    }
    let git_option = if args.rev.is_some() {
        Some("--rev")
    } else if args.base.is_some() {
        Some("--base")
    } else if !args.pending.is_empty() {
        Some("--pending")
    } else {
        None
    };
    let repo = match git_option {
        Some(option) => Some(Repository::open(path).map_err(|e| ValidateError::NotGit {
            option,
            path: path.clone(),
            message: match e {
                RepoError::Open { message, .. } => message,
                other => other.to_string(),
            },
        })?),
        None => None,
    };
    // One revision read: machine listings kept for a next snapshot would
    // only be a second copy of it (18 MB at 20,000 machines). A base or
    // pending refs share most machine trees with the head, so they keep them.
    if let Some(repo) = &repo
        && args.base.is_none()
        && args.pending.is_empty()
    {
        repo.set_listing_cache(false);
    }
    let snapshot_at = |option: &'static str, rev: &str| -> Result<Snapshot, ValidateError> {
        let Some(repo) = &repo else {
            return Err(ValidateError::NotGit {
                option,
                path: path.clone(),
                message: "not opened".into(),
            });
        };
        repo.snapshot(rev).map_err(|e| match e {
            RepoError::UnknownRev { message, .. } => ValidateError::UnknownRev {
                option,
                rev: rev.to_owned(),
                message,
            },
            other => ValidateError::Repo(other),
        })
    };

    // Ref globs are resolved before any analysis: a bad glob fails fast.
    // A proposal matched several times (by several globs, by its branch and
    // its claims, by each of its claims) is read once.
    let mut pending_refs: Vec<String> = Vec::new();
    if let Some(repo) = &repo {
        let mut seen = std::collections::HashSet::new();
        for glob in &args.pending {
            for target in repo.refs_matching(glob)? {
                if seen.insert(topology::proposal::proposal_of(repo, target.commit)) {
                    pending_refs.push(target.name);
                }
            }
        }
    }

    let snapshot = match &args.rev {
        Some(rev) => snapshot_at("--rev", rev)?,
        None => Snapshot::from_dir(path).map_err(|e| ValidateError::Unreadable {
            path: path.clone(),
            reason: e.to_string(),
        })?,
    };
    // Resolved before the (long) analysis of the head, so that an unknown
    // base revision fails fast.
    let base_snapshot = match &args.base {
        Some(rev) => Some(snapshot_at("--base", rev)?),
        None => None,
    };
    let mut engine = Engine::new();
    // One analysis: nothing to keep for a next one. A base or pending refs
    // are analysed next, and share most files with the head.
    engine.set_caching(args.base.is_some() || !args.pending.is_empty());
    let mut head = analyze(&mut engine, &snapshot)?;
    if let Some(machine) = &args.machine
        && !head.machines.contains_key(machine)
    {
        let mut known: Vec<&str> = head.machines.keys().map(String::as_str).collect();
        if known.len() > 12 {
            known.truncate(12);
            known.push("...");
        }
        return Err(ValidateError::UnknownMachine {
            machine: machine.clone(),
            what: snapshot.describe(),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        });
    }

    let (machines, deployments) = match &args.machine {
        Some(machine) => (
            1,
            head.deployments
                .keys()
                .filter(|id| &id.machine == machine)
                .count(),
        ),
        None => (head.machines.len(), head.deployments.len()),
    };
    // Only the JSON report carries the topology, written from the head as the
    // report is (it counts findings per machine, so the head keeps its own).
    let with_topology = args.format == Format::Json;
    let head_findings = if with_topology {
        head.findings.clone()
    } else {
        std::mem::take(&mut head.findings)
    };
    let mut findings: Vec<ReportedFinding> = head_findings
        .into_iter()
        .map(ReportedFinding::new)
        .collect();
    let mut pending = Vec::with_capacity(pending_refs.len());
    for name in pending_refs {
        let pending_snapshot = snapshot_at("--pending", &name)?;
        let pending_fleet = analyze(&mut engine, &pending_snapshot)?;
        // What the proposal changes since it forked from the base (else the head): on an older
        // main it does not claim what main changed since, and a removal claims nothing. Without
        // a fork point (unrelated histories), every difference from the head counts.
        let fork_base = args
            .base
            .as_deref()
            .or(args.rev.as_deref())
            .unwrap_or("HEAD");
        let changed = repo
            .as_ref()
            .and_then(|repo| repo.changed_since_fork(fork_base, &name, "machines").ok())
            .map(|paths| changed_deployments(paths.iter().map(String::as_str)));
        findings.extend(
            pending_conflicts_of(&head, &pending_fleet, &name, changed.as_ref())
                .into_iter()
                .map(|finding| ReportedFinding {
                    related_at: Some(name.clone()),
                    ..ReportedFinding::new(finding)
                }),
        );
        pending.push((name, pending_snapshot));
    }
    if !pending.is_empty() {
        sort(&mut findings);
    }
    let mut findings = only_machine(findings, args.machine.as_deref());

    let mut base_fleet: Option<Fleet> = None;
    let base = match &base_snapshot {
        Some(base_snapshot) => {
            let fleet = analyze(&mut engine, base_snapshot)?;
            mark_new_in(&mut findings, &fleet.findings);
            base_fleet = Some(fleet);
            base_snapshot.revision().map(revision_info)
        }
        None => None,
    };

    // Read before it is written, so that `--baseline F --write-baseline F` reports what F said.
    let baseline = match &args.baseline {
        Some(file) => {
            let entries = crate::baseline::read(file)?;
            let count = entries.len();
            let stale = crate::baseline::apply(&mut findings, entries);
            Some(BaselineUse {
                path: file.display().to_string(),
                entries: count,
                stale,
            })
        }
        None => None,
    };
    let baseline = match &args.write_baseline {
        Some(file) => {
            let entries = crate::baseline::entries(&findings);
            crate::baseline::write(file, entries.clone())?;
            // Recorded means accepted: this run is then checked against what it wrote.
            match baseline {
                Some(used) => Some(used),
                None => Some(BaselineUse {
                    path: file.display().to_string(),
                    entries: entries.len(),
                    stale: crate::baseline::apply(&mut findings, entries),
                }),
            }
        }
        None => baseline,
    };

    let changes = if args.format == Format::Markdown {
        changed_machines(
            &head,
            base_fleet.as_ref(),
            &findings,
            args.machine.as_deref(),
        )
    } else {
        Vec::new()
    };
    let mut kept_fleets: Vec<Fleet> = base_fleet.into_iter().collect();
    let report = Report {
        changes,
        findings,
        revision: snapshot.revision().map(revision_info),
        base,
        baseline,
        machines,
        deployments,
        topology: if with_topology {
            Topology::Fleet {
                fleet: Arc::new(head),
                machine: args.machine.clone(),
            }
        } else {
            kept_fleets.push(head);
            Topology::None
        },
    };
    Ok(Validated {
        report,
        snapshot,
        pending,
        _analysis: (engine, kept_fleets),
    })
}

/// The machines a Markdown report shows: with a base, those whose GPU map, ports or findings
/// differ from the base's; without, those with a finding that counts.
fn changed_machines(
    head: &Fleet,
    base: Option<&Fleet>,
    findings: &[ReportedFinding],
    only: Option<&str>,
) -> Vec<MachineChange> {
    let with_new_finding: std::collections::BTreeSet<&str> = findings
        .iter()
        .filter(|f| f.counts())
        .filter_map(|f| f.finding.machine.as_deref())
        .collect();
    let mut names: std::collections::BTreeSet<&str> =
        head.machines.keys().map(String::as_str).collect();
    if let Some(base) = base {
        names.extend(base.machines.keys().map(String::as_str));
    }
    /// What a reviewer sees change: holders, deployments (GPUs, ports, shapes), capacity.
    type Comparable<'a> = (
        &'a Vec<topology::engine::GpuHolders>,
        &'a Vec<topology::engine::DeploymentSummary>,
        Option<u32>,
        &'a Option<Vec<Vec<u32>>>,
    );
    fn comparable(t: &Option<topology::engine::MachineTopology>) -> Option<Comparable<'_>> {
        t.as_ref()
            .map(|t| (&t.gpu_holders, &t.deployments, t.gpu_count, &t.free_by_numa))
    }
    names
        .into_iter()
        .filter(|name| only.is_none_or(|only| only == *name))
        .filter_map(|name| {
            let after = head.machine_topology(name);
            let before = base.and_then(|base| base.machine_topology(name));
            let changed = match base {
                Some(_) => {
                    comparable(&before) != comparable(&after) || with_new_finding.contains(name)
                }
                None => with_new_finding.contains(name),
            };
            changed.then(|| MachineChange {
                machine: name.to_owned(),
                before,
                after,
            })
        })
        .collect()
}

fn analyze(engine: &mut Engine, snapshot: &Snapshot) -> Result<Fleet, ValidateError> {
    engine
        .analyze(snapshot)
        .map_err(|source| ValidateError::Engine {
            what: snapshot.describe(),
            source,
        })
}

/// The engine's order (path, line, column, rule), re-established after
/// pending findings were added.
fn sort(findings: &mut [ReportedFinding]) {
    findings.sort_by(|a, b| {
        let (a, b) = (&a.finding, &b.finding);
        (
            &a.location.path,
            a.location.line,
            a.location.column,
            a.rule,
            &a.fingerprint,
        )
            .cmp(&(
                &b.location.path,
                b.location.line,
                b.location.column,
                b.rule,
                &b.fingerprint,
            ))
    });
}

/// `--machine`: the findings about that machine (by `machine`, or by a
/// deployment on it).
fn only_machine(findings: Vec<ReportedFinding>, machine: Option<&str>) -> Vec<ReportedFinding> {
    let Some(machine) = machine else {
        return findings;
    };
    findings
        .into_iter()
        .filter(|reported| {
            let f = &reported.finding;
            f.machine.as_deref() == Some(machine)
                || f.deployments
                    .iter()
                    .any(|d| d.rsplit_once(':').is_some_and(|(m, _)| m == machine))
        })
        .collect()
}

fn revision_info(revision: &Revision) -> RevisionInfo {
    RevisionInfo {
        refname: Some(revision.rev.clone()),
        commit: revision.id.to_string(),
        short: revision.short_id.clone(),
        summary: revision.summary.clone(),
    }
}
