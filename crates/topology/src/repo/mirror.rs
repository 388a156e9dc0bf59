//! Mirrors of a remote in a cache directory: opening, fetching (incrementally,
//! within the deadline of [`GitAuth`]), pruning without losing this tool's own
//! refs or an unpushed proposal, and healing after a killed process.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Repository {
    /// Opens (creating it the first time) the bare mirror of `url` inside
    /// `cache_dir`, without fetching. `url` may be `https://`, `ssh://`,
    /// `git@host:path`, `file://` or a plain local path.
    pub fn open_mirror(url: &str, cache_dir: impl AsRef<Path>) -> Result<Repository, RepoError> {
        let path = cache_dir.as_ref().join(mirror_dir_name(url));
        let mirror_error = |message: String| RepoError::Mirror {
            url: redact_url(url),
            path: path.clone(),
            message,
        };
        let git = if path.join("HEAD").is_file() {
            git2::Repository::open_bare(&path).map_err(|e| mirror_error(git_message(&e)))?
        } else {
            fs::create_dir_all(&path).map_err(|e| mirror_error(e.to_string()))?;
            git2::Repository::init_bare(&path).map_err(|e| mirror_error(git_message(&e)))?
        };
        Ok(Repository::wrap(git, Some(url.to_owned())))
    }

    /// Moves the mirror of `url` in `cache_dir` aside (to `<name>.damaged`,
    /// replacing an older one, kept for a post-mortem), so that the next
    /// [`Repository::open_mirror`] starts a fresh clone. For a mirror that
    /// cannot be opened or read. Returns where it went.
    pub fn set_mirror_aside(url: &str, cache_dir: impl AsRef<Path>) -> Result<PathBuf, RepoError> {
        let path = cache_dir.as_ref().join(mirror_dir_name(url));
        let aside = path.with_extension("damaged");
        let mirror_error = |message: String| RepoError::Mirror {
            url: redact_url(url),
            path: path.clone(),
            message,
        };
        if aside.exists() {
            fs::remove_dir_all(&aside)
                .map_err(|e| mirror_error(format!("removing {}: {e}", aside.display())))?;
        }
        if path.exists() {
            fs::rename(&path, &aside)
                .map_err(|e| mirror_error(format!("moving it to {}: {e}", aside.display())))?;
        }
        Ok(aside)
    }

    /// [`Repository::open_mirror`], then [`Repository::fetch`].
    pub fn mirror(
        url: &str,
        cache_dir: impl AsRef<Path>,
        auth: &GitAuth,
    ) -> Result<Repository, RepoError> {
        let repo = Repository::open_mirror(url, cache_dir)?;
        repo.fetch(auth)?;
        Ok(repo)
    }

    /// Fetches every ref of the mirrored remote (incrementally: only missing
    /// objects are transferred), prunes refs deleted upstream, and records the
    /// time. The URL is used anonymously: it is never stored in the mirror.
    ///
    /// A proposal branch committed here and not pushed yet is never lost: if
    /// upstream does not have it, it stays; if upstream has a different commit
    /// under that name, the branch follows upstream (this is a mirror) while
    /// the proposal's commit stays in `refs/catapult/unpushed/<branch>`, which
    /// [`Repository::push_branch`] pushes (and the remote then refuses).
    pub fn fetch(&self, auth: &GitAuth) -> Result<(), RepoError> {
        let url = self
            .remote_url
            .as_deref()
            .ok_or_else(|| RepoError::NoRemote {
                path: self.git_dir.clone(),
            })?;
        let fetch_error = |message: String| RepoError::Fetch {
            url: redact_url(url),
            message: auth.scrub(&message, url),
        };
        let started = Instant::now();
        let git_error = |e: git2::Error| match auth.deadline() {
            // A progress callback said stop (libgit2's message then says little).
            Some(deadline) if started.elapsed() >= deadline => fetch_error(format!(
                "the transfer was still running at its {} s deadline; gave up",
                deadline.as_secs_f32()
            )),
            _ => fetch_error(git_message(&e)),
        };
        {
            // A handle of its own: snapshots keep reading through the shared one
            // while the network is slow (libgit2 updates refs and packs atomically).
            // The mirror itself unreadable is not a network problem: a `Mirror` error says so.
            let git = self.fresh_handle().map_err(|e| RepoError::Mirror {
                url: redact_url(url),
                path: self.git_dir.clone(),
                message: git_message(&e),
            })?;
            let mut remote = git.remote_anonymous(url).map_err(git_error)?;
            let mut options = git2::FetchOptions::new();
            // Pruning is done below: libgit2's would also delete this tool's refs.
            options
                .remote_callbacks(auth.callbacks(url))
                .prune(git2::FetchPrune::Off)
                .update_fetchhead(false)
                .download_tags(git2::AutotagOption::None);
            let own_before = own_refs(&git).map_err(git_error)?;
            let mut fetched = remote.fetch(&[MIRROR_REFSPEC], Some(&mut options), None);
            // A ref deleted on the remote between its advertisement and its transfer (claims
            // come and go while agents propose) fails the fetch; the next one sees it gone.
            for attempt in 0..FETCH_RETRIES {
                // A lock file left by a killed process blocks every later fetch (libgit2
                // reports it as a generic error, by its message).
                let locked = |e: &git2::Error| {
                    e.code() == git2::ErrorCode::Locked
                        || e.message().contains("failed to lock file")
                };
                let stale_locks = match &fetched {
                    Err(e) if locked(e) => remove_stale_locks(&self.git_dir),
                    _ => 0,
                };
                match &fetched {
                    Err(e)
                        if e.code() == git2::ErrorCode::NotFound
                            || (locked(e) && stale_locks > 0) =>
                    {
                        if e.code() == git2::ErrorCode::NotFound {
                            let pause = FETCH_RETRY_PAUSE * 2u32.pow(attempt);
                            // Never past the transfer's deadline.
                            if auth
                                .deadline()
                                .is_some_and(|deadline| started.elapsed() + pause >= deadline)
                            {
                                break;
                            }
                            std::thread::sleep(pause);
                        }
                        let mut retry = git2::FetchOptions::new();
                        retry
                            .remote_callbacks(auth.callbacks(url))
                            .prune(git2::FetchPrune::Off)
                            .update_fetchhead(false)
                            .download_tags(git2::AutotagOption::None);
                        fetched = remote.fetch(&[MIRROR_REFSPEC], Some(&mut retry), None);
                    }
                    _ => break,
                }
            }
            // Even when the fetch failed half-way.
            restore_own_refs(&git, &own_before).map_err(git_error)?;
            fetched.map_err(git_error)?;
            let advertised: rustc_hash::FxHashSet<String> = remote
                .list()
                .map_err(git_error)?
                .iter()
                .map(|head| head.name().to_owned())
                .collect();
            let unpushed = unpushed_branches(&git).map_err(git_error)?;
            prune_mirror(&git, &advertised, &unpushed).map_err(git_error)?;
            restore_unpushed(&git, &advertised, &unpushed).map_err(git_error)?;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        fs::write(self.git_dir.join(LAST_FETCH_FILE), format!("{now}\n"))
            .map_err(|e| fetch_error(e.to_string()))?;
        tracing::debug!(remote = %redact_url(url), "fetched mirror");
        Ok(())
    }

    pub(super) fn fresh_handle(&self) -> Result<git2::Repository, git2::Error> {
        git2::Repository::open(&self.git_dir)
    }

    /// When the last successful [`Repository::fetch`] finished; `None` if never
    /// (or for a repository opened from a path).
    pub fn last_fetch_time(&self) -> Option<SystemTime> {
        let text = fs::read_to_string(self.git_dir.join(LAST_FETCH_FILE)).ok()?;
        let secs: u64 = text.trim().parse().ok()?;
        UNIX_EPOCH.checked_add(Duration::from_secs(secs))
    }
}

/// Removes the lock files in a mirror's Git directory (`*.lock` under `refs/`,
/// and `HEAD.lock`, `packed-refs.lock`, `config.lock`) older than
/// [`STALE_LOCK_AGE`]: no fetch or push of this tool holds one that long, so
/// they were left by a process that was killed. Returns how many went.
pub(super) fn remove_stale_locks(git_dir: &Path) -> usize {
    pub(super) fn visit(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                visit(&path, found);
            } else if path.extension().is_some_and(|e| e == "lock") {
                found.push(path);
            }
        }
    }
    let mut locks = Vec::new();
    visit(&git_dir.join("refs"), &mut locks);
    locks.extend(
        ["HEAD.lock", "packed-refs.lock", "config.lock"]
            .iter()
            .map(|name| git_dir.join(name))
            .filter(|path| path.exists()),
    );
    let mut removed = 0;
    for lock in locks {
        let old = fs::metadata(&lock)
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > STALE_LOCK_AGE);
        if old && fs::remove_file(&lock).is_ok() {
            tracing::warn!(lock = %lock.display(), "removed a stale lock file left in the mirror");
            removed += 1;
        }
    }
    removed
}

/// This tool's refs (`refs/catapult/*`) and their commits.
pub(super) fn own_refs(git: &git2::Repository) -> Result<FxHashMap<String, Oid>, git2::Error> {
    let mut found = FxHashMap::default();
    for reference in git.references_glob(&format!("{OWN_NAMESPACE}*"))? {
        let reference = reference?;
        if let (Ok(name), Some(target)) = (reference.name(), reference.target()) {
            found.insert(name.to_owned(), target);
        }
    }
    Ok(found)
}

/// Puts this tool's refs back as they were before a fetch: whatever upstream
/// holds under the same names never replaces them.
pub(super) fn restore_own_refs(
    git: &git2::Repository,
    before: &FxHashMap<String, Oid>,
) -> Result<(), git2::Error> {
    let now = own_refs(git)?;
    for name in now.keys().filter(|name| !before.contains_key(*name)) {
        if let Ok(mut reference) = git.find_reference(name) {
            reference.delete()?;
        }
    }
    for (name, target) in before {
        if now.get(name) != Some(target) {
            git.reference(name, *target, true, "catapult: restore own ref after fetch")?;
        }
    }
    Ok(())
}

/// `(branch, commit)` of every proposal kept in [`UNPUSHED_NAMESPACE`].
pub(super) fn unpushed_branches(git: &git2::Repository) -> Result<Vec<(String, Oid)>, git2::Error> {
    let mut found = Vec::new();
    for reference in git.references_glob(&format!("{UNPUSHED_NAMESPACE}*"))? {
        let reference = reference?;
        if let (Some(branch), Some(commit)) = (
            reference
                .name()
                .ok()
                .and_then(|name| name.strip_prefix(UNPUSHED_NAMESPACE)),
            reference.target(),
        ) {
            found.push((branch.to_owned(), commit));
        }
    }
    Ok(found)
}

/// Deletes the refs that upstream no longer advertises, except symbolic ones
/// (`HEAD`), this tool's own, and unpushed proposal branches. An empty
/// advertisement prunes nothing: a remote that lost every ref is more likely
/// broken than emptied on purpose, and the mirror keeps what it had.
pub(super) fn prune_mirror(
    git: &git2::Repository,
    advertised: &rustc_hash::FxHashSet<String>,
    unpushed: &[(String, Oid)],
) -> Result<(), git2::Error> {
    if advertised.is_empty() {
        return Ok(());
    }
    let mut stale = Vec::new();
    for reference in git.references()? {
        let reference = reference?;
        let Ok(name) = reference.name() else { continue };
        let own = name.starts_with(OWN_NAMESPACE);
        let unpushed_branch = name
            .strip_prefix("refs/heads/")
            .is_some_and(|branch| unpushed.iter().any(|(b, _)| b == branch));
        let symbolic = reference.kind() == Some(git2::ReferenceType::Symbolic);
        if !own && !unpushed_branch && !symbolic && !advertised.contains(name) {
            stale.push(name.to_owned());
        }
    }
    for name in stale {
        if let Ok(mut reference) = git.find_reference(&name) {
            reference.delete()?;
        }
    }
    Ok(())
}

/// After a fetch: an unpushed proposal branch that upstream does not have is
/// (still) there; one that upstream now holds (same commit, or a descendant)
/// needs its keep-ref no more; one that upstream holds with another commit
/// follows upstream, and the proposal stays in the keep-ref.
pub(super) fn restore_unpushed(
    git: &git2::Repository,
    advertised: &rustc_hash::FxHashSet<String>,
    unpushed: &[(String, Oid)],
) -> Result<(), git2::Error> {
    for (branch, commit) in unpushed {
        let head_ref = format!("refs/heads/{branch}");
        if !advertised.contains(&head_ref) {
            if git.find_reference(&head_ref).is_err() {
                git.reference(
                    &head_ref,
                    *commit,
                    false,
                    "catapult: keep unpushed proposal",
                )?;
            }
            continue;
        }
        let upstream = git.refname_to_id(&head_ref)?;
        if upstream == *commit || git.graph_descendant_of(upstream, *commit)? {
            if let Ok(mut keep) = git.find_reference(&format!("{UNPUSHED_NAMESPACE}{branch}")) {
                keep.delete()?;
            }
        } else {
            tracing::warn!(
                branch = %branch,
                upstream = %upstream,
                proposal = %commit,
                "upstream has another commit on an unpushed proposal branch; the proposal is kept in {UNPUSHED_NAMESPACE}"
            );
        }
    }
    Ok(())
}
