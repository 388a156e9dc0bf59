//! Compare-and-swap updates of single refs on a remote: how proposals claim
//! GPUs and ports where every agent sees them (`docs/release-config.md`,
//! "Claims").
//!
//! Over the network (HTTPS, SSH, `git://`) the push carries the value the
//! remote advertised, and the remote (`git receive-pack`, GitHub) updates the
//! ref only if it still holds that value, under the ref's lock. libgit2's
//! local transport (`file://`) does not compare: it overwrites. So a
//! `file://` remote is written directly through its ref database, with the
//! expected value checked under the same lock file `git receive-pack` uses.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use git2::Oid;

use super::{CommitId, GitAuth, RepoError, Repository, git_message, redact_url};

/// How often a `file://` update waits for a ref lock another writer holds.
const LOCK_ATTEMPTS: u32 = 50;
const LOCK_PAUSE: Duration = Duration::from_millis(10);

/// What a compare-and-swap update of one remote ref found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefUpdate {
    /// The ref now holds the new value (or is gone, for a delete).
    Done,
    /// The ref did not hold the expected value; nothing was changed.
    Mismatch { current: Option<CommitId> },
}

impl Repository {
    /// Sets ref `name` on `remote_url` to `new` (`None` deletes it) if and only
    /// if it holds `expected` (`None`: it must not exist). Atomic on the
    /// remote. The commit `new` must be in this repository; its objects are
    /// sent. Never touches a branch (`refs/heads/*`): those are only ever
    /// created, by [`Repository::push_branch`].
    pub fn update_remote_ref(
        &self,
        remote_url: &str,
        name: &str,
        new: Option<CommitId>,
        expected: Option<CommitId>,
        auth: &GitAuth,
    ) -> Result<RefUpdate, RepoError> {
        let error = |message: String| RepoError::RemoteRef {
            name: name.to_owned(),
            url: redact_url(remote_url),
            message: auth.scrub(&message, remote_url),
        };
        if !name.starts_with("refs/") || name.starts_with("refs/heads/") {
            return Err(error(
                "only refs outside refs/heads/ are updated in place".to_owned(),
            ));
        }
        if !git2::Reference::is_valid_name(name) {
            return Err(error("not a valid ref name".to_owned()));
        }
        let update = match local_remote_path(remote_url) {
            Some(path) => self
                .update_local_remote_ref(&path, name, new, expected)
                .map_err(|e| error(git_message(&e))),
            None => self.push_ref(remote_url, name, new, expected, auth, &error),
        }?;
        // Claims only: this tool's other refs have their own rules (`mirror.rs`).
        if update == RefUpdate::Done && name.starts_with(crate::proposal::CLAIMS_NAMESPACE) {
            self.record_ref(name, new);
        }
        Ok(update)
    }

    /// Sets `name` here as the remote now has it, so that what reads this
    /// mirror (a planner leaving claimed GPUs out) sees it before the next
    /// fetch, which makes it the remote's again either way. Best effort.
    fn record_ref(&self, name: &str, value: Option<CommitId>) {
        let git = super::lock(&self.git);
        let recorded = match value {
            Some(commit) => git
                .reference(name, commit.0, true, "catapult: as updated on the remote")
                .map(drop),
            None => match git.find_reference(name) {
                Ok(mut reference) => reference.delete(),
                Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(()),
                Err(e) => Err(e),
            },
        };
        if let Err(error) = recorded {
            tracing::debug!(%name, error = %git_message(&error), "remote ref not recorded locally");
        }
    }

    /// The value of ref `name` on `remote_url` now (`None`: absent).
    pub fn remote_ref(
        &self,
        remote_url: &str,
        name: &str,
        auth: &GitAuth,
    ) -> Result<Option<CommitId>, RepoError> {
        let error = |e: git2::Error| RepoError::RemoteRef {
            name: name.to_owned(),
            url: redact_url(remote_url),
            message: auth.scrub(&git_message(&e), remote_url),
        };
        if let Some(path) = local_remote_path(remote_url) {
            let remote = git2::Repository::open_bare(&path)
                .or_else(|_| git2::Repository::open(&path))
                .map_err(error)?;
            return Ok(current_value(&remote, name).map_err(error)?.map(CommitId));
        }
        let git = self.fresh_handle().map_err(error)?;
        let mut remote = git.remote_anonymous(remote_url).map_err(error)?;
        let connection = remote
            .connect_auth(
                git2::Direction::Push,
                Some(auth.callbacks(remote_url)),
                None,
            )
            .map_err(error)?;
        let found = connection
            .list()
            .map_err(error)?
            .iter()
            .find(|head| head.name() == name)
            .map(|head| CommitId(head.oid()));
        Ok(found)
    }

    fn push_ref(
        &self,
        remote_url: &str,
        name: &str,
        new: Option<CommitId>,
        expected: Option<CommitId>,
        auth: &GitAuth,
        error: &dyn Fn(String) -> RepoError,
    ) -> Result<RefUpdate, RepoError> {
        let git = self.fresh_handle().map_err(|e| error(git_message(&e)))?;
        let mut remote = git
            .remote_anonymous(remote_url)
            .map_err(|e| error(git_message(&e)))?;
        let expected_oid = expected.map_or(Oid::ZERO_SHA1, |c| c.0);
        // What the remote advertised, when it is not what we expected.
        let mismatch: RefCell<Option<Option<CommitId>>> = RefCell::new(None);
        let rejection: RefCell<Option<String>> = RefCell::new(None);
        let pushed = {
            let mut callbacks = auth.callbacks(remote_url);
            callbacks.push_negotiation(|updates| {
                for update in updates {
                    if update.dst_refname().ok() == Some(name) && update.src() != expected_oid {
                        let current = (!update.src().is_zero()).then(|| CommitId(update.src()));
                        *mismatch.borrow_mut() = Some(current);
                        return Err(git2::Error::from_str("the ref moved"));
                    }
                }
                Ok(())
            });
            callbacks.push_update_reference(|_, status| {
                if let Some(status) = status {
                    *rejection.borrow_mut() = Some(status.to_owned());
                }
                Ok(())
            });
            let mut options = git2::PushOptions::new();
            options.remote_callbacks(callbacks);
            // Forced on our side (a replacement is not a fast-forward); the
            // remote still compares with the advertised value it was sent.
            let refspec = match new {
                Some(commit) => format!("+{}:{name}", commit.0),
                None => format!(":{name}"),
            };
            remote.push(&[refspec.as_str()], Some(&mut options))
        };
        if let Some(current) = mismatch.into_inner() {
            return Ok(RefUpdate::Mismatch { current });
        }
        if let Err(e) = pushed {
            return Err(error(git_message(&e)));
        }
        if let Some(status) = rejection.into_inner() {
            // Lost between the advertisement and the update: another writer
            // was faster. What it wrote is asked afresh.
            tracing::debug!(%status, %name, "remote refused the ref update");
            let current = self.remote_ref(remote_url, name, auth)?;
            if current == new {
                return Ok(RefUpdate::Done);
            }
            return Ok(RefUpdate::Mismatch { current });
        }
        Ok(RefUpdate::Done)
    }

    pub(super) fn update_local_remote_ref(
        &self,
        path: &Path,
        name: &str,
        new: Option<CommitId>,
        expected: Option<CommitId>,
    ) -> Result<RefUpdate, git2::Error> {
        let remote = git2::Repository::open_bare(path).or_else(|_| git2::Repository::open(path))?;
        if let Some(commit) = new {
            let local = self.fresh_handle()?;
            copy_missing_objects(&local, &remote, commit.0)?;
        }
        let expected_oid = expected.map_or(Oid::ZERO_SHA1, |c| c.0);
        for _ in 0..LOCK_ATTEMPTS {
            let attempt = match new {
                // force: the existence check happens under the lock, through
                // the expected value (zero: must not exist).
                Some(commit) => remote
                    .reference_matching(name, commit.0, true, expected_oid, "catapult: claim")
                    .map(|_| ()),
                None => match remote.find_reference(name) {
                    Ok(mut reference) => {
                        if reference.target() != Some(expected_oid) {
                            return Ok(RefUpdate::Mismatch {
                                current: reference.target().map(CommitId),
                            });
                        }
                        // Deleting checks, under the lock, that the ref still
                        // holds the value just read.
                        reference.delete()
                    }
                    Err(e) if e.code() == git2::ErrorCode::NotFound => {
                        return Ok(RefUpdate::Mismatch { current: None });
                    }
                    Err(e) => Err(e),
                },
            };
            match attempt {
                Ok(()) => return Ok(RefUpdate::Done),
                Err(e) if e.code() == git2::ErrorCode::Locked => std::thread::sleep(LOCK_PAUSE),
                Err(e)
                    if matches!(
                        e.code(),
                        git2::ErrorCode::Modified
                            | git2::ErrorCode::Exists
                            | git2::ErrorCode::NotFound
                    ) =>
                {
                    let current = current_value(&remote, name)?.map(CommitId);
                    if current == new {
                        return Ok(RefUpdate::Done);
                    }
                    return Ok(RefUpdate::Mismatch { current });
                }
                Err(e) => return Err(e),
            }
        }
        Err(git2::Error::from_str(&format!(
            "{name} stayed locked by another writer for {} ms",
            LOCK_ATTEMPTS * u32::try_from(LOCK_PAUSE.as_millis()).unwrap_or(u32::MAX)
        )))
    }
}

/// The directory of a `file://` or path remote (libgit2 would use its local
/// transport, which does not compare before it writes).
pub(super) fn local_remote_path(url: &str) -> Option<PathBuf> {
    if let Some(path) = url.strip_prefix("file://") {
        return Some(PathBuf::from(path));
    }
    let path = Path::new(url);
    (!url.contains("://") && path.is_dir()).then(|| path.to_path_buf())
}

fn current_value(git: &git2::Repository, name: &str) -> Result<Option<Oid>, git2::Error> {
    match git.find_reference(name) {
        Ok(reference) => Ok(reference.target()),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes into `to` every object of commit `commit` (and its history) that
/// `to` does not have yet; stops at objects it has (their closure is there).
fn copy_missing_objects(
    from: &git2::Repository,
    to: &git2::Repository,
    commit: Oid,
) -> Result<(), git2::Error> {
    let source = from.odb()?;
    let target = to.odb()?;
    let mut work = vec![commit];
    let mut seen = rustc_hash::FxHashSet::default();
    let mut written = Vec::new();
    while let Some(id) = work.pop() {
        if !seen.insert(id) || target.exists(id) {
            continue;
        }
        let object = source.read(id)?;
        match object.kind() {
            git2::ObjectType::Commit => {
                let commit = from.find_commit(id)?;
                work.push(commit.tree_id());
                work.extend(commit.parent_ids());
            }
            git2::ObjectType::Tree => {
                let tree = from.find_tree(id)?;
                for entry in &tree {
                    // Submodule commits live elsewhere.
                    if entry.kind() != Some(git2::ObjectType::Commit) {
                        work.push(entry.id());
                    }
                }
            }
            _ => {}
        }
        written.push((object.kind(), object.data().to_vec()));
    }
    // Dependencies first would not matter for loose objects; written in
    // reverse discovery order anyway, so a reader never sees a commit whose
    // tree is missing.
    for (kind, data) in written.iter().rev() {
        target.write(*kind, data)?;
    }
    Ok(())
}
