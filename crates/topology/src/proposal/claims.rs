//! Claims: how proposals made at the same moment, by any process on any
//! host, agree on who gets a GPU or a port. The protocol is in
//! `docs/release-config.md` ("Claims"); in short:
//!
//! - A claim is a ref on the release-config remote,
//!   `refs/catapult/claims/<machine>/port-<port>` or `.../gpu-<index>`,
//!   pointing at a *claim commit*: the proposal's tree, the proposal commit as
//!   its parent, the branch named in its message, the time it was made.
//! - A proposal takes its claims one at a time, port first, then GPUs in
//!   ascending order (one order for everyone, so no two proposals can each
//!   hold a part of what the other needs), each by a create-only update the
//!   remote makes atomically. Only after it holds all of them is its branch
//!   pushed and its pull request opened.
//! - A claim held by someone else is judged: the same proposal (same branch)
//!   is joined; an open proposal, or a claim younger than the grace period (a
//!   proposal between its claims and its pull request), refuses ours and we
//!   take back, compare-and-swap, what we took; anything else is stale (its
//!   pull request was closed or merged, or its maker crashed) and is taken
//!   over, compare-and-swap.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::repo::{Author, CommitId, GitAuth, RefUpdate, RepoError, Repository};

/// Every claim ref is under this prefix.
pub(crate) const CLAIMS_NAMESPACE: &str = "refs/catapult/claims/";

/// First line of every claim commit's message; the branch follows.
const CLAIM_SUBJECT: &str = "catapult claim";
const BRANCH_FIELD: &str = "Branch: ";

/// A holder that changed under us this many times in a row is left alone.
const MAX_TAKEOVER_ATTEMPTS: usize = 5;

/// What one claim holds on its machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Claimed {
    Port(u16),
    Gpu(u32),
}

/// One claim: a port or a GPU of a machine, held by the ref [`ClaimRef::ref_name`] names
/// on the release-config remote. The ref's name is made and read here only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    pub machine: String,
    pub claimed: Claimed,
}

impl ClaimRef {
    /// `refs/catapult/claims/<machine>/port-<port>` or `.../gpu-<index>`.
    pub fn ref_name(&self) -> String {
        match self.claimed {
            Claimed::Port(port) => format!("{CLAIMS_NAMESPACE}{}/port-{port}", self.machine),
            Claimed::Gpu(gpu) => format!("{CLAIMS_NAMESPACE}{}/gpu-{gpu}", self.machine),
        }
    }

    /// The claim a ref names; `None` for a ref outside the namespace or of another shape.
    pub fn parse(name: &str) -> Option<ClaimRef> {
        let (machine, what) = name.strip_prefix(CLAIMS_NAMESPACE)?.split_once('/')?;
        fn number(digits: &str) -> Option<&str> {
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
        }
        let claimed = if let Some(gpu) = what.strip_prefix("gpu-").and_then(number) {
            Claimed::Gpu(gpu.parse().ok()?)
        } else {
            Claimed::Port(what.strip_prefix("port-").and_then(number)?.parse().ok()?)
        };
        (!machine.is_empty()).then(|| ClaimRef {
            machine: machine.to_owned(),
            claimed,
        })
    }
}

/// `GPU 5 of gpu-a` / `port 8002 of gpu-a`.
impl std::fmt::Display for ClaimRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.claimed {
            Claimed::Port(port) => write!(f, "port {port} of {}", self.machine),
            Claimed::Gpu(gpu) => write!(f, "GPU {gpu} of {}", self.machine),
        }
    }
}

/// The claims of a deployment on `machine:port` with `gpus`, in the one order every
/// proposal takes them: the port, then the GPUs ascending.
pub fn claim_refs(machine: &str, port: u16, gpus: &[u32]) -> Vec<ClaimRef> {
    let mut gpus = gpus.to_vec();
    gpus.sort_unstable();
    gpus.dedup();
    std::iter::once(Claimed::Port(port))
        .chain(gpus.into_iter().map(Claimed::Gpu))
        .map(|claimed| ClaimRef {
            machine: machine.to_owned(),
            claimed,
        })
        .collect()
}

/// The proposal commit behind `commit`: its parent when `commit` is a claim
/// commit, else `commit` itself (so a proposal reached by its branch and by
/// its claims is one proposal).
pub fn proposal_of(repository: &Repository, commit: CommitId) -> CommitId {
    match repository.commit_record(commit) {
        Some(record) if record.message.starts_with(CLAIM_SUBJECT) => {
            record.parent.unwrap_or(commit)
        }
        _ => commit,
    }
}

/// An open proposal: how to name it, its branch and the commit it holds.
/// A claim is its if the claim names its branch (a human may have pushed
/// more commits onto it since) or sits on its head.
#[derive(Debug, Clone)]
pub struct OpenProposal {
    pub label: String,
    pub branch: String,
    pub head: CommitId,
}

/// Where claims are made and what counts as alive.
pub struct Claims<'a> {
    pub repository: &'a Repository,
    pub remote_url: &'a str,
    pub auth: &'a GitAuth,
    /// Open proposals (pull requests, or in branch-only mode unmerged
    /// branches): their claims are alive whatever their age.
    pub open: &'a [OpenProposal],
    /// How long a claim of a proposal without a pull request yet stays alive.
    pub grace: Duration,
    /// Branches whose pull requests were closed: their claims are stale at any age.
    pub closed: &'a [String],
}

/// What [`Claims::take`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Every claim points at `claim`; push the branch at `proposal` (another
    /// agent's commit when the same proposal was being made by it).
    All {
        claim: CommitId,
        proposal: CommitId,
        /// Stale claims replaced on the way (ref names).
        taken_over: Vec<String>,
    },
    /// Someone else holds `claim`; everything taken was given back.
    Refused {
        claim: ClaimRef,
        holder: ClaimHolder,
    },
}

/// Who holds a claim another proposal asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimHolder {
    /// An open proposal (its pull request, or in branch-only mode its branch): alive
    /// whatever its age.
    Open { label: String },
    /// A proposal without a pull request yet, alive for its age: if its pull request was
    /// closed, ask again with `branch` in [`Claims::closed`].
    Young {
        branch: String,
        age_secs: i64,
        grace_secs: i64,
    },
    /// The same proposal, being made at this moment by another agent.
    SameProposal { branch: String },
    /// Another proposal whose claims kept moving while this one tried.
    Racing,
    /// A claim whose commit cannot be read.
    Unreadable { commit: String },
}

impl ClaimHolder {
    /// The branch of a holder alive only for its age.
    pub fn young_branch(&self) -> Option<&str> {
        match self {
            ClaimHolder::Young { branch, .. } => Some(branch),
            _ => None,
        }
    }
}

/// `pull request #7` / `proposal `catapult/a`, claimed 12 s ago and not yet a pull request
/// (...)`: how refusals name the holder.
impl std::fmt::Display for ClaimHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClaimHolder::Open { label } => f.write_str(label),
            ClaimHolder::Young {
                branch,
                age_secs,
                grace_secs,
            } => write!(
                f,
                "proposal `{branch}`, claimed {age_secs} s ago and not yet a pull request \
                 (claims without one expire after {grace_secs} s)"
            ),
            ClaimHolder::SameProposal { branch } => write!(
                f,
                "the same proposal (`{branch}`), made at this moment by another agent: ask again"
            ),
            ClaimHolder::Racing => f.write_str("another proposal"),
            ClaimHolder::Unreadable { commit } => {
                write!(f, "a claim whose commit {commit} cannot be read")
            }
        }
    }
}

enum Judgement {
    Ours,
    /// The same proposal, being made by another agent: join it.
    Same {
        proposal: CommitId,
    },
    Alive(ClaimHolder),
    Stale,
}

impl Claims<'_> {
    /// Writes the claim commit for `proposal` on `branch`.
    pub fn claim_commit(
        &self,
        proposal: CommitId,
        branch: &str,
        author: &Author,
    ) -> Result<CommitId, RepoError> {
        let message = format!(
            "{CLAIM_SUBJECT}\n\n{BRANCH_FIELD}{branch}\nProposal: {proposal}\n\n\
             GPUs and ports of this proposal are held by refs under {CLAIMS_NAMESPACE} \
             until its pull request is merged or closed.\n"
        );
        self.repository.commit_on(proposal, &message, author)
    }

    /// Takes every claim in `refs` (already in canonical order) for `claim`,
    /// the claim commit of `proposal` on `branch`.
    pub fn take(
        &self,
        refs: &[ClaimRef],
        branch: &str,
        mut claim: CommitId,
        mut proposal: CommitId,
    ) -> Result<Taken, RepoError> {
        let mut mine: Vec<ClaimRef> = Vec::new();
        let mut taken_over = Vec::new();
        for wanted in refs {
            let name = &wanted.ref_name();
            let mut expected = None;
            let mut attempts = 0;
            loop {
                let update = self.repository.update_remote_ref(
                    self.remote_url,
                    name,
                    Some(claim),
                    expected,
                    self.auth,
                )?;
                let current = match update {
                    RefUpdate::Done => {
                        if expected.is_some() {
                            taken_over.push(name.clone());
                        }
                        mine.push(wanted.clone());
                        break;
                    }
                    RefUpdate::Mismatch { current: None } => {
                        // Released meanwhile: create it.
                        expected = None;
                        attempts += 1;
                        if attempts > MAX_TAKEOVER_ATTEMPTS {
                            return self.refuse(&mine, claim, wanted, ClaimHolder::Racing);
                        }
                        continue;
                    }
                    RefUpdate::Mismatch {
                        current: Some(current),
                    } => current,
                };
                match self.judge(current, branch, claim)? {
                    Judgement::Ours => break,
                    Judgement::Same { proposal: theirs } => {
                        // Join it: the rest is claimed with its commit.
                        if mine.is_empty() {
                            claim = current;
                            proposal = theirs;
                            break;
                        }
                        // Our earlier claims point elsewhere; theirs win.
                        return self.refuse(
                            &mine,
                            claim,
                            wanted,
                            ClaimHolder::SameProposal {
                                branch: branch.to_owned(),
                            },
                        );
                    }
                    Judgement::Alive(holder) => {
                        return self.refuse(&mine, claim, wanted, holder);
                    }
                    Judgement::Stale => {
                        attempts += 1;
                        if attempts > MAX_TAKEOVER_ATTEMPTS {
                            return self.refuse(&mine, claim, wanted, ClaimHolder::Racing);
                        }
                        expected = Some(current);
                    }
                }
            }
        }
        Ok(Taken::All {
            claim,
            proposal,
            taken_over,
        })
    }

    /// Gives back `refs` where they still point at `claim` (a proposal that
    /// could not be completed). Claims that moved on are someone else's.
    pub fn release(&self, refs: &[ClaimRef], claim: CommitId) -> Result<(), RepoError> {
        for wanted in refs {
            self.repository.update_remote_ref(
                self.remote_url,
                &wanted.ref_name(),
                None,
                Some(claim),
                self.auth,
            )?;
        }
        Ok(())
    }

    /// Deletes the stale claims of `machine` the mirror knows of (those of
    /// closed or merged proposals), compare-and-swap; returns their names.
    /// Best effort: a claim it cannot judge is left.
    pub fn sweep(&self, machine: &str) -> Result<Vec<String>, RepoError> {
        let mut removed = Vec::new();
        let glob = format!("{CLAIMS_NAMESPACE}{machine}/*");
        for target in self.repository.refs_matching(&glob)? {
            if matches!(
                self.judge(target.commit, "", target.commit)?,
                Judgement::Stale
            ) && self.repository.update_remote_ref(
                self.remote_url,
                &target.name,
                None,
                Some(target.commit),
                self.auth,
            )? == RefUpdate::Done
            {
                removed.push(target.name);
            }
        }
        Ok(removed)
    }

    /// The claims the mirror knows of that are alive (an open proposal's, or
    /// one younger than the grace period), with who holds each: what a
    /// planner must not offer. Reads the mirror only, nothing is fetched: a
    /// fetch brings a claim ref with its commit, so every claim listed can be
    /// judged.
    pub fn alive(&self) -> Result<Vec<(ClaimRef, ClaimHolder)>, RepoError> {
        let mut alive = Vec::new();
        for target in self
            .repository
            .refs_matching(&format!("{CLAIMS_NAMESPACE}*/*"))?
        {
            let Some(claim) = ClaimRef::parse(&target.name) else {
                continue;
            };
            let holder = match self.judge(target.commit, "", target.commit)? {
                Judgement::Alive(holder) => holder,
                Judgement::Stale => continue,
                // Only a proposal being made (a branch given) is ours or the same.
                Judgement::Ours | Judgement::Same { .. } => ClaimHolder::Racing,
            };
            alive.push((claim, holder));
        }
        Ok(alive)
    }

    fn refuse(
        &self,
        mine: &[ClaimRef],
        claim: CommitId,
        wanted: &ClaimRef,
        holder: ClaimHolder,
    ) -> Result<Taken, RepoError> {
        self.release(mine, claim)?;
        Ok(Taken::Refused {
            claim: wanted.clone(),
            holder,
        })
    }

    fn judge(
        &self,
        holder: CommitId,
        branch: &str,
        ours: CommitId,
    ) -> Result<Judgement, RepoError> {
        if holder == ours && !branch.is_empty() {
            return Ok(Judgement::Ours);
        }
        let record = match self.repository.commit_record(holder) {
            Some(record) => record,
            None => {
                // Made by another process: its objects come with a fetch. One
                // that fails (claims move meanwhile) leaves it unreadable.
                if let Err(error) = self.repository.fetch(self.auth) {
                    tracing::debug!(%error, "fetch for a claim's holder failed");
                }
                match self.repository.commit_record(holder) {
                    Some(record) => record,
                    None => {
                        return Ok(Judgement::Alive(ClaimHolder::Unreadable {
                            commit: holder.short(),
                        }));
                    }
                }
            }
        };
        let holder_branch = record
            .message
            .lines()
            .find_map(|line| line.strip_prefix(BRANCH_FIELD))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let holder_proposal = record.parent.unwrap_or(holder);
        if let Some(open) = self.open.iter().find(|open| {
            open.head == holder_proposal
                || open.head == holder
                || (!holder_branch.is_empty() && open.branch == holder_branch)
        }) {
            if !branch.is_empty() && holder_branch == branch {
                return Ok(Judgement::Same {
                    proposal: holder_proposal,
                });
            }
            return Ok(Judgement::Alive(ClaimHolder::Open {
                label: open.label.clone(),
            }));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let age = now.saturating_sub(record.time);
        let grace = i64::try_from(self.grace.as_secs()).unwrap_or(i64::MAX);
        let closed = self.closed.contains(&holder_branch);
        if age < grace && !closed {
            if !branch.is_empty() && holder_branch == branch {
                return Ok(Judgement::Same {
                    proposal: holder_proposal,
                });
            }
            return Ok(Judgement::Alive(ClaimHolder::Young {
                branch: holder_branch,
                age_secs: age,
                grace_secs: grace,
            }));
        }
        Ok(Judgement::Stale)
    }
}
