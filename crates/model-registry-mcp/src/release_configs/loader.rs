//! Reads the production branch of the release-config repository through `topology::repo` and
//! analyses it with one long-lived engine (which keeps its parse cache between revisions).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use topology::proposal::{
    BRANCH_PREFIX, ClaimRef, Claimed, Claims, HeldGpus, OpenProposal, PendingProposal,
    ProposalAction, ProposalRequest, Taken, TemplateSource, changed_deployments, claim_refs,
};
use topology::repo::{Author, CommitId, GitAuth, RepoError, Repository, Snapshot, TreeChange};

use super::from_engine::{self, EngineSlot};
use super::state::{
    FleetLoader, LoadOutcome, Pending, PendingRef, Prepared, PublishError, Published,
};
use super::view::FleetView;
use crate::config::{RepoLocation, Secret};

pub struct GitLoader {
    location: RepoLocation,
    branch: String,
    cache_dir: PathBuf,
    auth: GitAuth,
    /// How long a claim without a pull request yet stays alive.
    claim_grace: Duration,
    request_timeout: Duration,
    network_limited: std::sync::Once,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    repository: Option<Repository>,
    engine: EngineSlot,
}

impl GitLoader {
    pub fn new(
        location: RepoLocation,
        branch: String,
        cache_dir: PathBuf,
        token: Option<&Secret>,
        request_timeout: Duration,
    ) -> GitLoader {
        // A transfer that trickles is cut after a few requests' time; one that stalls, by the
        // read timeout (`set_network_timeouts`).
        let auth = token
            .map_or_else(GitAuth::anonymous, |token| {
                GitAuth::with_token(token.expose())
            })
            .with_deadline(request_timeout * 4);
        GitLoader {
            location,
            branch,
            cache_dir,
            auth,
            claim_grace: claim_grace(request_timeout),
            request_timeout,
            network_limited: std::sync::Once::new(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// [`GitLoader::load_once`]; a mirror found damaged (it cannot be opened, or cannot read
    /// what it fetched) is moved aside and cloned again, once.
    fn load_locked(&self, inner: &mut Inner, previous: Option<&Arc<FleetView>>) -> LoadOutcome {
        let (outcome, damaged) = self.load_once(inner, previous);
        let (RepoLocation::Remote(url), true) = (&self.location, damaged) else {
            return outcome;
        };
        let reason = outcome
            .view
            .as_ref()
            .err()
            .or(outcome.fetch_error.as_ref())
            .cloned()
            .unwrap_or_default();
        inner.repository = None;
        let aside = match Repository::set_mirror_aside(url, &self.cache_dir) {
            Ok(aside) => aside,
            Err(e) => {
                return failed(format!(
                    "{reason}; and the damaged mirror could not be moved aside: {e}"
                ));
            }
        };
        tracing::warn!(
            %reason,
            aside = %aside.display(),
            "the release-config mirror is damaged: moved aside, cloning it again"
        );
        let (healed, _) = self.load_once(inner, previous);
        match healed.view {
            Ok(_) => healed,
            Err(again) => failed(format!(
                "{reason}; the mirror was moved aside to {} and cloned again, which failed too: \
                 {again}",
                aside.display()
            )),
        }
    }

    /// One load, and whether it failed because the mirror itself is damaged.
    fn load_once(
        &self,
        inner: &mut Inner,
        previous: Option<&Arc<FleetView>>,
    ) -> (LoadOutcome, bool) {
        // The server keeps its own view of a revision; parsed trees kept for the next revision
        // would only raise its memory peak. Here, not in `new`: the call initialises libgit2
        // (and OpenSSL), which belongs to the first load in the background, not to start-up.
        topology::repo::set_object_cache(false);
        self.limit_network();
        let mut fetch_error = None;
        // The fetch failed on the mirror itself (it cannot be opened), not on the network.
        let mut mirror_unreadable = false;
        let fetched_at = match &self.location {
            // A plain directory (no Git): analyse its files as they are.
            RepoLocation::Local(path) if self.plain_directory().is_some() => {
                let view = Snapshot::from_dir(path)
                    .map_err(|e| {
                        format!(
                            "cannot read release-config directory {}: {e}",
                            path.display()
                        )
                    })
                    .and_then(|snapshot| from_engine::analyze(&mut inner.engine, snapshot, None));
                return (
                    LoadOutcome {
                        view: view.map(Arc::new),
                        fetched_at: Some(SystemTime::now()),
                        fetch_error,
                    },
                    false,
                );
            }
            RepoLocation::Local(_) => match self.opened(&mut inner.repository) {
                Ok(_) => Some(SystemTime::now()),
                Err(e) => return (failed(e), false),
            },
            RepoLocation::Remote(_) => match self.opened(&mut inner.repository) {
                Ok(repository) => {
                    if let Err(e) = repository.fetch(&self.auth) {
                        mirror_unreadable = matches!(e, RepoError::Mirror { .. });
                        fetch_error = Some(e.to_string());
                    }
                    repository.last_fetch_time()
                }
                Err(e) => return (failed(e), true),
            },
        };
        let Some(repository) = &inner.repository else {
            return (
                failed("the release-config repository is not open".to_owned()),
                false,
            );
        };
        let revision = match repository.resolve(&self.branch) {
            Ok(revision) => revision,
            Err(e) => {
                // A branch that is not there is not damage; refs that cannot be read are.
                let damaged = !matches!(e, RepoError::UnknownRev { .. });
                let reason = match &fetch_error {
                    Some(fetch) => format!(
                        "{fetch}; and no fetched copy of branch `{}` exists ({e})",
                        self.branch
                    ),
                    None => format!(
                        "branch `{}` of the release-config repository cannot be read: {e}",
                        self.branch
                    ),
                };
                return (failed(reason), damaged || mirror_unreadable);
            }
        };
        let commit = revision.id.to_string();
        // Reused only when the state being served describes this very commit: a load whose
        // result was thrown away (it ran past the request timeout) must not make an old view
        // stand for a new commit.
        if let Some(previous) = previous
            && previous
                .revision
                .as_ref()
                .is_some_and(|revision| revision.commit == commit)
        {
            return (
                LoadOutcome {
                    view: Ok(Arc::clone(previous)),
                    fetched_at,
                    fetch_error,
                },
                mirror_unreadable,
            );
        }
        let snapshot = match repository.snapshot(&commit) {
            Ok(snapshot) => snapshot,
            Err(e) => {
                let reason = format!(
                    "cannot read commit {} of the release-config repository: {e}",
                    revision.short_id
                );
                return (failed(reason), true);
            }
        };
        let view = from_engine::analyze(&mut inner.engine, snapshot, Some(repository.git_dir()));
        (
            LoadOutcome {
                view: view.map(Arc::new),
                fetched_at,
                fetch_error,
            },
            mirror_unreadable,
        )
    }
}

/// A repository that keeps nothing between snapshots (see `load_locked`).
fn lean(repository: Repository) -> Repository {
    repository.set_listing_cache(false);
    repository
}

fn failed(reason: String) -> LoadOutcome {
    LoadOutcome {
        view: Err(reason),
        fetched_at: None,
        fetch_error: None,
    }
}

impl FleetLoader for GitLoader {
    fn load(&self, previous: Option<&Arc<FleetView>>) -> LoadOutcome {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.load_locked(&mut inner, previous)
    }

    fn prepare_proposal(
        &self,
        request: &ProposalRequest,
        pending: &Pending,
    ) -> Result<Prepared, String> {
        self.limit_network();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *inner;
        // A plain directory (no Git) can be checked and rendered (a dry run), not proposed.
        let (repository, snapshot, base_commit, base_short) = match self.plain_directory() {
            Some(path) => {
                let snapshot = Snapshot::from_dir(path).map_err(|e| {
                    format!(
                        "cannot read release-config directory {}: {e}",
                        path.display()
                    )
                })?;
                (
                    None,
                    snapshot,
                    String::new(),
                    "working directory".to_owned(),
                )
            }
            None => {
                let repository = self.opened(&mut inner.repository)?;
                // Against the newest main, never a cached one.
                if matches!(self.location, RepoLocation::Remote(_)) {
                    repository
                        .fetch(&self.auth)
                        .map_err(|e| format!("cannot fetch the newest `{}`: {e}", self.branch))?;
                }
                let revision = repository.resolve(&self.branch).map_err(|e| {
                    format!(
                        "branch `{}` of the release-config repository cannot be read: {e}",
                        self.branch
                    )
                })?;
                let base_commit = revision.id.to_string();
                let snapshot = repository.snapshot(&base_commit).map_err(|e| {
                    format!(
                        "cannot read commit {} of the release-config repository: {e}",
                        revision.short_id
                    )
                })?;
                (Some(repository), snapshot, base_commit, revision.short_id)
            }
        };
        let pending_refs: Vec<PendingRef> = match (pending, repository) {
            (Pending::PullRequests(open), _) => open.clone(),
            (Pending::Branches, Some(repository)) => {
                self.open_branches(repository, &base_commit)?
            }
            (Pending::Branches, None) => Vec::new(),
        };
        let engine = inner.engine.engine();
        let main = engine
            .analyze(&snapshot)
            .map_err(|e| format!("cannot analyse {}: {e}", snapshot.describe()))?;
        let template = match request.action {
            ProposalAction::Remove => None,
            ProposalAction::Add | ProposalAction::Replace => {
                Some(template_source(&snapshot, &request.template_name)?)
            }
        };
        // Each open proposal's head, analysed as a whole tree (the engine's cache makes the
        // files it shares with main free).
        let mut pending_fleets = Vec::new();
        for proposal in &pending_refs {
            let rev = format!("refs/heads/{}", proposal.head_ref);
            let read = repository
                .ok_or_else(|| "the release-config source is not a Git repository".to_owned())
                .and_then(|repository| {
                    // What it changes since it forked from main: a proposal on an older main
                    // does not claim what main changed since.
                    let changed = repository
                        .changed_since_fork(&base_commit, &rev, "machines")
                        .map_err(|e| e.to_string())?;
                    let snapshot = repository.snapshot(&rev).map_err(|e| e.to_string())?;
                    let fleet = engine.analyze(&snapshot).map_err(|e| e.to_string())?;
                    Ok((
                        fleet,
                        changed_deployments(changed.iter().map(String::as_str)),
                    ))
                });
            match read {
                Ok(read) => pending_fleets.push((proposal, read)),
                Err(error) => {
                    return Err(format!(
                        "open proposal {} cannot be read ({error}); its claims cannot be \
                         checked, so no proposal is made until it is merged, closed or fetched",
                        proposal.label
                    ));
                }
            }
        }
        let pending: Vec<PendingProposal<'_>> = pending_fleets
            .iter()
            .map(|(proposal, (fleet, changed))| PendingProposal {
                label: proposal.label.clone(),
                head_ref: proposal.head_ref.clone(),
                fleet,
                changed: Some(changed.clone()),
            })
            .collect();
        let claimed = match repository {
            Some(repository) => self.claimed_elsewhere(repository, &pending_refs, request)?,
            None => HeldGpus::new(),
        };
        let plan = topology::proposal::plan(
            engine,
            &snapshot,
            &main,
            request,
            template.as_ref(),
            &pending,
            &claimed,
        )
        .map_err(|e| e.to_string())?;
        let branch_exists = pending_fleets
            .iter()
            .any(|(open, _)| open.head_ref == plan.branch);
        let open = pending_fleets
            .into_iter()
            .map(|(open, _)| open.clone())
            .collect();
        // Without `gpu_ids`, the set the planner chose is the request's (its claims, its text).
        let mut request = request.clone();
        if let Some(chosen) = &plan.chosen {
            request.gpu_ids.clone_from(&chosen.gpus);
        }
        Ok(Prepared {
            request,
            plan,
            base_commit,
            base_short,
            open,
            branch_exists,
        })
    }

    fn publish_proposal(
        &self,
        prepared: &Prepared,
        message: &str,
        closed: &[String],
    ) -> Result<Published, PublishError> {
        self.publish(prepared, message, closed)
    }

    fn live_claims(&self, pending: &Pending) -> Result<Vec<(ClaimRef, String)>, String> {
        if self.plain_directory().is_some() {
            return Ok(Vec::new());
        }
        // A handle of its own, not the loader's: a fetch stalled on a silent remote holds that
        // one, and the claims are read from what the last fetch brought.
        let repository = match &self.location {
            RepoLocation::Local(path) => Repository::open(path),
            RepoLocation::Remote(url) => Repository::open_mirror(url, &self.cache_dir),
        }
        .map_err(|e| format!("cannot open the release-config repository to read claims: {e}"))?;
        let refs = match pending {
            Pending::PullRequests(open) => open.clone(),
            Pending::Branches => self.open_branches(&repository, &self.branch)?,
        };
        self.alive_claims(&repository, &refs)
    }
}

/// The claim protocol's open proposals of `refs` (those whose head is a commit id).
fn open_proposals(refs: &[PendingRef]) -> Vec<OpenProposal> {
    refs.iter()
        .filter_map(|open| {
            CommitId::from_hex(&open.head_commit).map(|head| OpenProposal {
                label: open.label.clone(),
                branch: open.head_ref.clone(),
                head,
            })
        })
        .collect()
}

impl GitLoader {
    fn publish(
        &self,
        prepared: &Prepared,
        message: &str,
        closed: &[String],
    ) -> Result<Published, PublishError> {
        let RepoLocation::Remote(url) = &self.location else {
            return Err(
                "proposals push their branch to the repository's remote: set \
                 REGISTRY_RELEASE_CONFIG_REPO to its Git URL (a local path allows dry_run only)"
                    .to_owned()
                    .into(),
            );
        };
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Opened (and fetched) by `prepare_proposal`; the commit is based on what it checked.
        let repository = self.opened(&mut inner.repository)?;
        let plan = &prepared.plan;
        let branch = &plan.branch;
        let created = repository.commit_changes_on_new_branch(
            &prepared.base_commit,
            branch,
            &plan.changes,
            message,
            &proposal_author(),
        );
        match created {
            Ok(_) => {}
            // The same proposal made before (its branch is named after its content): reuse the
            // branch if it makes this very change.
            Err(RepoError::BranchExists { .. }) => {
                let rev = format!("refs/heads/{branch}");
                let same = repository.snapshot(&rev).is_ok_and(|snapshot| {
                    plan.changes.iter().all(|change| match change {
                        TreeChange::Write { path, contents } => snapshot
                            .read(path, 4 << 20)
                            .is_ok_and(|bytes| bytes == *contents),
                        TreeChange::Remove { path } => snapshot.entry(path).is_none(),
                    })
                });
                if !same {
                    return Err(format!(
                        "branch `{branch}` already exists with other content; nothing was pushed"
                    )
                    .into());
                }
            }
            Err(e) => return Err(format!("cannot commit the proposal: {e}").into()),
        }
        let proposal = repository
            .proposal_commit(branch)
            .ok_or_else(|| format!("branch `{branch}` was just committed and is gone"))?;
        let open = open_proposals(&prepared.open);
        let claims = Claims {
            repository,
            remote_url: url,
            auth: &self.auth,
            open: &open,
            grace: self.claim_grace,
            closed,
        };
        let request = &prepared.request;
        // A removal claims its port (one change per deployment at a time) and no GPU: they are
        // not free before it is merged. An addition or replacement claims the GPUs it will hold.
        let gpus: &[u32] = match request.action {
            ProposalAction::Remove => &[],
            ProposalAction::Add | ProposalAction::Replace => &request.gpu_ids,
        };
        let refs = claim_refs(&request.machine, request.port, gpus);
        let claim_error = |e: RepoError| {
            format!("cannot claim the GPUs and port on the release-config remote: {e}")
        };
        let claim = claims
            .claim_commit(proposal, branch, &proposal_author())
            .map_err(claim_error)?;
        let (claim, proposal, taken_over) = match claims
            .take(&refs, branch, claim, proposal)
            .map_err(claim_error)?
        {
            Taken::All {
                claim,
                proposal,
                taken_over,
            } => (claim, proposal, taken_over),
            Taken::Refused { claim, holder } => {
                let _ = repository.drop_unpushed_branch(branch);
                let message = format!(
                    "{claim} is claimed by {holder} (another agent \
                     proposed it at the same moment: list_release_configs and \
                     get_machine_topology show what is free once it is a pull request)"
                );
                return Err(match holder.young_branch() {
                    Some(branch) => PublishError::HeldByYoung {
                        message,
                        branch: branch.to_owned(),
                    },
                    None => PublishError::Failed(message),
                });
            }
        };
        if repository.proposal_commit(branch) != Some(proposal) {
            repository
                .adopt_branch(branch, proposal)
                .map_err(|e| format!("cannot join the same proposal made by another agent: {e}"))?;
        }
        if let Err(e) = repository.push_branch(url, branch, &self.auth) {
            let released = claims.release(&refs, claim);
            let released = match released {
                Ok(()) => "its claims were given back".to_owned(),
                Err(release) => format!("and giving back its claims failed: {release}"),
            };
            return Err(format!("{e}; {released}").into());
        }
        let mut swept = taken_over;
        match claims.sweep(&request.machine) {
            Ok(removed) => swept.extend(removed),
            Err(error) => tracing::warn!(%error, "stale claims were not swept"),
        }
        Ok(Published { swept })
    }
}

impl GitLoader {
    /// libgit2's process-wide network timeouts, set before this loader's first transfer (not at
    /// start-up: the call initialises libgit2 and OpenSSL). A silent remote then fails a fetch
    /// within half a request, so the answer can still be the last state, marked stale.
    fn limit_network(&self) {
        self.network_limited.call_once(|| {
            let stall = (self.request_timeout / 2).max(Duration::from_secs(1));
            topology::repo::set_network_timeouts(stall, stall);
        });
    }

    /// Branch-only mode: the remote's proposal branches not merged into `base`, as open
    /// proposals (the mirror was just fetched).
    fn open_branches(
        &self,
        repository: &Repository,
        base: &str,
    ) -> Result<Vec<PendingRef>, String> {
        let glob = format!("refs/heads/{BRANCH_PREFIX}**");
        let mut open = Vec::new();
        for target in repository.refs_matching(&glob).map_err(|e| e.to_string())? {
            if repository
                .is_merged(target.commit, base)
                .map_err(|e| e.to_string())?
            {
                continue;
            }
            let branch = target.name.trim_start_matches("refs/heads/").to_owned();
            open.push(PendingRef {
                label: format!("branch `{branch}`"),
                head_ref: branch,
                head_commit: target.commit.to_string(),
            });
        }
        Ok(open)
    }

    /// GPUs live claims hold, read from the mirror just fetched: what a proposal that leaves
    /// `gpu_ids` out must not choose. The claims of the proposal that holds this request's
    /// port are left out: it is this proposal made before (asking again chooses the same set)
    /// or one `check_pending` and the claims themselves refuse.
    fn claimed_elsewhere(
        &self,
        repository: &Repository,
        open: &[PendingRef],
        request: &ProposalRequest,
    ) -> Result<HeldGpus, String> {
        let alive = self.alive_claims(repository, open)?;
        let ours = alive
            .iter()
            .find(|(claim, _)| {
                claim.machine == request.machine && claim.claimed == Claimed::Port(request.port)
            })
            .map(|(_, holder)| holder.clone());
        let mut held = HeldGpus::new();
        for (claim, holder) in alive {
            if let (Claimed::Gpu(gpu), false) = (claim.claimed, ours.as_ref() == Some(&holder)) {
                held.entry(claim.machine).or_default().insert(gpu, holder);
            }
        }
        Ok(held)
    }

    /// The live claims in `repository` (the mirror, not fetched), `open` being the open
    /// proposals, each with its holder as messages name it.
    fn alive_claims(
        &self,
        repository: &Repository,
        open: &[PendingRef],
    ) -> Result<Vec<(ClaimRef, String)>, String> {
        let open = open_proposals(open);
        let claims = Claims {
            repository,
            remote_url: "",
            auth: &self.auth,
            open: &open,
            grace: self.claim_grace,
            closed: &[],
        };
        let alive = claims
            .alive()
            .map_err(|e| format!("cannot read the claims of open proposals: {e}"))?;
        Ok(alive
            .into_iter()
            .map(|(claim, holder)| (claim, holder.to_string()))
            .collect())
    }

    /// The configured path when it is a plain directory, not a Git repository.
    fn plain_directory(&self) -> Option<&Path> {
        match &self.location {
            RepoLocation::Local(path)
                if !path.join(".git").exists() && Repository::open(path).is_err() =>
            {
                Some(path)
            }
            _ => None,
        }
    }

    /// The repository in `slot`, opened on first use (for a remote, its mirror; not fetched).
    fn opened<'r>(&self, slot: &'r mut Option<Repository>) -> Result<&'r Repository, String> {
        if slot.is_none() {
            let opened = match &self.location {
                RepoLocation::Local(path) => Repository::open(path)
                    .map_err(|e| format!("cannot open release-config repository: {e}"))?,
                RepoLocation::Remote(url) => Repository::open_mirror(url, &self.cache_dir)
                    .map_err(|e| {
                        format!("cannot prepare the mirror of the release-config repository: {e}")
                    })?,
            };
            *slot = Some(lean(opened));
        }
        slot.as_ref()
            .ok_or_else(|| "the release-config repository is not open".to_owned())
    }
}

/// How long a claim of a proposal that has no pull request yet stays alive: the two steps
/// after the claims (pushing the branch, opening the pull request) each have the request timeout,
/// plus a margin for clocks that differ between hosts.
fn claim_grace(request_timeout: Duration) -> Duration {
    request_timeout * 2 + Duration::from_secs(30)
}

/// Author and committer of proposal commits.
fn proposal_author() -> Author {
    Author {
        name: "model-registry-mcp".to_owned(),
        email: "model-registry-mcp@users.noreply.github.com".to_owned(),
    }
}

/// The template named `name`: the repository's `templates/<name>.yml.j2` at this commit first,
/// else the one shipped with the server.
fn template_source(snapshot: &Snapshot, name: &str) -> Result<TemplateSource, String> {
    let file = format!("{name}.yml.j2");
    let path = format!("templates/{file}");
    if snapshot.entry(&path).is_some() {
        let bytes = snapshot
            .read(&path, 1 << 20)
            .map_err(|e| format!("template `{name}` ({path}) cannot be read: {e}"))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("template `{name}` ({path}) is not UTF-8"))?;
        return Ok(TemplateSource {
            name: name.to_owned(),
            origin: "repository",
            text,
        });
    }
    if let Some((_, text)) = crate::templates::SHIPPED.iter().find(|(f, _)| *f == file) {
        return Ok(TemplateSource {
            name: name.to_owned(),
            origin: "shipped",
            text: (*text).to_owned(),
        });
    }
    let mut known: Vec<String> = snapshot
        .children("templates")
        .filter_map(|e| e.name().strip_suffix(".yml.j2").map(str::to_owned))
        .chain(
            crate::templates::SHIPPED
                .iter()
                .map(|(f, _)| crate::templates::template_name(f).to_owned()),
        )
        .collect();
    known.sort();
    known.dedup();
    Err(format!(
        "unknown template `{name}`; templates: {} (list_docker_templates)",
        known.join(", ")
    ))
}
