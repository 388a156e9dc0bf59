//! The Git seam and the read-only view of a release-config repository.
//!
//! This is the only module of the workspace that touches `git2`; everything else
//! reads a repository through [`Repository`] and [`Snapshot`].
//!
//! - [`Repository`] opens a local repository, or keeps a bare mirror of a remote
//!   in a cache directory and fetches it incrementally; it resolves revisions,
//!   lists refs by glob, and (for proposals) builds a commit from a tree plus one
//!   changed file and pushes it on a new branch, never touching a work tree and
//!   never writing `main`.
//! - [`Snapshot`] is the repository's relevant files (`machines/`, `templates/`,
//!   `release-config.toml`) at one point, read either from a directory
//!   ([`DirReader`]) or from a commit straight out of the object database. File
//!   contents are read lazily; every file carries its Git blob id ([`ContentId`]),
//!   computed identically for both sources so caches keyed by it are shared.
//!
//! Credentials: an HTTPS token is handed to libgit2 through the credentials
//! callback only. It never goes into a URL, the mirror's config, `FETCH_HEAD`,
//! `Debug` output or an error; URLs are shown through [`redact_url`].

use std::cell::RefCell;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use git2::{ObjectType, Oid};
use rustc_hash::FxHashMap;
use serde::{Serialize, Serializer};

mod auth;
mod dir;
mod remote_ref;

#[allow(clippy::wildcard_imports)]
use auth::*;
pub use auth::{GitAuth, redact_url, set_network_timeouts};
pub use dir::DirReader;
#[allow(clippy::wildcard_imports)]
use dir::*;

pub use remote_ref::RefUpdate;

/// The three places of a release-config repository that a [`Snapshot`] lists.
pub const MACHINES_DIR: &str = "machines";
/// Directory of proposal templates.
pub const TEMPLATES_DIR: &str = "templates";
/// Repository-level configuration file.
pub const CONFIG_FILE: &str = "release-config.toml";

/// In name order (directory listings rely on it to come out sorted).
const TOP_LEVEL: [&str; 3] = [MACHINES_DIR, CONFIG_FILE, TEMPLATES_DIR];

/// Refspec of a mirror: every ref of the remote, force-updated (upstream may
/// rewrite pull-request branches). This tool's own namespace is put back
/// after each fetch (libgit2 does not apply negative refspecs to updates).
const MIRROR_REFSPEC: &str = "+refs/*:refs/*";

/// This tool's own refs in a mirror; fetches neither change nor prune them.
/// (Claims, `refs/catapult/claims/`, are the remote's and mirrored as any ref.)
const OWN_NAMESPACE: &str = "refs/catapult/unpushed/";

/// A proposal branch committed in a mirror but not pushed yet is also kept
/// here, so that a fetch (which mirrors upstream's `refs/heads/*`, force and
/// prune) cannot lose it. Removed once the push succeeded.
const UNPUSHED_NAMESPACE: &str = "refs/catapult/unpushed/";

/// Fetches again this often when a ref vanished during the fetch.
const FETCH_RETRIES: usize = 3;

/// A lock file in a mirror older than this was left by a killed process.
const STALE_LOCK_AGE: Duration = Duration::from_secs(10 * 60);

/// File in a mirror's Git directory recording when the last fetch succeeded.
const LAST_FETCH_FILE: &str = "catapult-last-fetch";

/// Branches a proposal may never create or push.
const PROTECTED_BRANCHES: [&str; 3] = ["main", "master", "HEAD"];

/// Symbolic links are followed at most this many times when resolving one path.
const MAX_LINK_HOPS: usize = 16;

/// A file whose modification time is this recent is not put in the stat cache:
/// a second write within the file system's timestamp granularity would keep
/// size and mtime and make the cached id stale (Git's "racy clean" problem).
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Why credentials ran out, for the fetch or push error.
const AUTH_FAILED: &str = "authentication failed (HTTPS needs a token with read access; \
     SSH uses the keys of the running ssh agent)";

/// Length of [`Revision::short_id`].
const SHORT_ID_LEN: usize = 12;

// ---------------------------------------------------------------------------
// Errors

/// Everything that can go wrong reading or writing a repository. Each variant
/// names the path, (redacted) URL, revision or ref concerned.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("cannot open Git repository at {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("cannot read directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot create mirror of {url} in {path}: {message}")]
    Mirror {
        url: String,
        path: PathBuf,
        message: String,
    },
    #[error("cannot fetch {url}: {message}")]
    Fetch { url: String, message: String },
    #[error(
        "repository {path} has no remote to fetch from (it was opened from a path, not mirrored)"
    )]
    NoRemote { path: PathBuf },
    #[error("unknown revision `{rev}` in {repo}: {message}")]
    UnknownRev {
        rev: String,
        repo: PathBuf,
        message: String,
    },
    #[error("invalid ref glob `{glob}`: {message}")]
    BadGlob { glob: String, message: String },
    #[error("`{path}` is not in the snapshot ({snapshot})")]
    NotFound { path: String, snapshot: String },
    #[error("`{path}` is not a readable file (it is a {kind})")]
    NotAFile { path: String, kind: &'static str },
    #[error(
        "`{path}` is a symbolic link to `{target}`, which leaves the repository; it is not followed"
    )]
    LinkEscapes { path: String, target: String },
    #[error("`{path}` is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("cannot read `{path}`: {source}")]
    Io { path: String, source: io::Error },
    #[error("cannot read `{path}` (object {id}) from {repo}: {message}")]
    Object {
        path: String,
        id: String,
        repo: PathBuf,
        message: String,
    },
    #[error("Git error in {repo} while {action}: {message}")]
    Git {
        repo: PathBuf,
        action: String,
        message: String,
    },
    #[error("invalid branch name `{branch}`: {reason}")]
    BadBranch { branch: String, reason: String },
    #[error(
        "branch `{branch}` already exists in {repo}; a proposal never moves an existing branch"
    )]
    BranchExists { branch: String, repo: PathBuf },
    #[error("invalid repository path `{path}`: {reason}")]
    BadPath { path: String, reason: String },
    #[error("cannot update ref `{name}` on {url}: {message}")]
    RemoteRef {
        name: String,
        url: String,
        message: String,
    },
    #[error("cannot push branch `{branch}` to {url}: {message}")]
    Push {
        branch: String,
        url: String,
        message: String,
    },
}

fn git_message(error: &git2::Error) -> String {
    error.message().to_owned()
}

// ---------------------------------------------------------------------------
// Object ids

/// Identity of a file's content: its Git blob id (SHA-1 of `blob <len>\0<data>`).
/// The same bytes have the same id whether read from a directory or from Git.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId(Oid);

impl ContentId {
    /// The Git blob id of `data`.
    pub fn of_bytes(data: &[u8]) -> Result<ContentId, RepoError> {
        Oid::hash_object(ObjectType::Blob, data)
            .map(ContentId)
            .map_err(|e| RepoError::Git {
                repo: PathBuf::new(),
                action: "hashing a blob".to_owned(),
                message: git_message(&e),
            })
    }

    /// Parses a 40-digit hexadecimal id.
    pub fn from_hex(hex: &str) -> Option<ContentId> {
        if hex.len() != 40 {
            return None;
        }
        Oid::from_str(hex).ok().map(ContentId)
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({})", self.0)
    }
}

impl Serialize for ContentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A commit id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(Oid);

impl CommitId {
    /// Parses a 40-digit hexadecimal id.
    pub fn from_hex(hex: &str) -> Option<CommitId> {
        if hex.len() != 40 {
            return None;
        }
        Oid::from_str(hex).ok().map(CommitId)
    }

    /// The first 12 hexadecimal digits.
    pub fn short(&self) -> String {
        let mut hex = self.0.to_string();
        hex.truncate(SHORT_ID_LEN);
        hex
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommitId({})", self.0)
    }
}

impl Serialize for CommitId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The commit a [`Snapshot`] was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revision {
    /// The revision as the caller gave it (`main`, `origin/pr/12`, an id).
    pub rev: String,
    /// The full ref name when `rev` named a ref (`refs/heads/main`).
    pub ref_name: Option<String>,
    pub id: CommitId,
    /// First 12 hexadecimal digits of `id`.
    pub short_id: String,
    /// First line of the commit message.
    pub summary: String,
    /// Committer time, seconds since the Unix epoch.
    pub time: i64,
    /// Committer's UTC offset in minutes.
    pub time_offset_minutes: i32,
}

/// What [`Repository::commit_record`] reads of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRecord {
    pub message: String,
    pub parent: Option<CommitId>,
    /// Committer time, seconds since the Unix epoch.
    pub time: i64,
}

/// A ref and the commit it points to (see [`Repository::refs_matching`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefTarget {
    /// Full ref name, e.g. `refs/pull/12/head`.
    pub name: String,
    pub commit: CommitId,
}

/// Turns libgit2's object cache on or off for the whole process (on by
/// default). The cache keeps every tree a snapshot parsed; a long-lived
/// process that lists a revision now and then and keeps its own results (the
/// MCP server) has no use for them.
pub fn set_object_cache(enabled: bool) {
    git2::opts::enable_caching(enabled);
}

// ---------------------------------------------------------------------------
// Repository

/// Author and committer of a commit built by [`Repository::commit_file_on_new_branch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    pub email: String,
}

/// One Git repository: a local one opened from a path, or a bare mirror of a
/// remote kept in a cache directory. `Send + Sync`: the libgit2 handle sits
/// behind a mutex, shared with the [`Snapshot`]s read from it.
pub struct Repository {
    git: Arc<Mutex<git2::Repository>>,
    git_dir: PathBuf,
    work_tree: Option<PathBuf>,
    /// The remote as given (it may carry credentials: never printed raw).
    remote_url: Option<String>,
    /// Listings of machine directories by tree id, shared across snapshots.
    tree_listings: Mutex<TreeListings>,
    /// Whether [`Repository::snapshot`] keeps `tree_listings` (see
    /// [`Repository::set_listing_cache`]).
    keep_listings: AtomicBool,
}

impl fmt::Debug for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("git_dir", &self.git_dir)
            .field("work_tree", &self.work_tree)
            .field("remote", &self.remote_url.as_deref().map(redact_url))
            .finish()
    }
}

fn lock(git: &Mutex<git2::Repository>) -> MutexGuard<'_, git2::Repository> {
    // A panic while holding the lock cannot leave libgit2's handle inconsistent
    // from our side (we never hold half-updated state in it).
    git.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Repository {
    /// Opens the repository at `path` (a work tree or a bare repository); parent
    /// directories are not searched.
    pub fn open(path: impl AsRef<Path>) -> Result<Repository, RepoError> {
        let path = path.as_ref();
        let git = git2::Repository::open(path).map_err(|e| RepoError::Open {
            path: path.to_owned(),
            message: git_message(&e),
        })?;
        Ok(Repository::wrap(git, None))
    }

    fn wrap(git: git2::Repository, remote_url: Option<String>) -> Repository {
        let git_dir = git.path().to_owned();
        let work_tree = git.workdir().map(Path::to_owned);
        Repository {
            git: Arc::new(Mutex::new(git)),
            git_dir,
            work_tree,
            remote_url,
            tree_listings: Mutex::default(),
            keep_listings: AtomicBool::new(true),
        }
    }

    /// Whether snapshots keep the listings of machine directories for the
    /// next snapshot (on by default). Kept, listing a revision that differs in
    /// one machine reads that machine's trees only, which is what
    /// re-validation wants; off, a snapshot holds the only copy of its
    /// listing, which is what a long-lived process that reads a revision
    /// now and then (the MCP server) wants.
    pub fn set_listing_cache(&self, keep: bool) {
        self.keep_listings.store(keep, Ordering::Relaxed);
        if !keep {
            let mut listings = self
                .tree_listings
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            listings.by_tree = FxHashMap::default();
        }
    }

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
        let git_error = |e: git2::Error| fetch_error(git_message(&e));
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
            for _ in 0..FETCH_RETRIES {
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

    fn fresh_handle(&self) -> Result<git2::Repository, git2::Error> {
        git2::Repository::open(&self.git_dir)
    }

    /// When the last successful [`Repository::fetch`] finished; `None` if never
    /// (or for a repository opened from a path).
    pub fn last_fetch_time(&self) -> Option<SystemTime> {
        let text = fs::read_to_string(self.git_dir.join(LAST_FETCH_FILE)).ok()?;
        let secs: u64 = text.trim().parse().ok()?;
        UNIX_EPOCH.checked_add(Duration::from_secs(secs))
    }

    /// The Git directory (`.git` of a work tree, or the bare repository).
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// The content of the blob `id` (e.g. a file an earlier snapshot listed),
    /// refused with [`RepoError::TooLarge`] above `max_bytes` without reading it.
    /// `what` names the file in errors.
    pub fn read_blob(
        &self,
        id: &ContentId,
        what: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, RepoError> {
        let git = lock(&self.git);
        let git_error = |e: git2::Error| RepoError::Git {
            repo: self.git_dir.clone(),
            action: format!("reading {what}"),
            message: git_message(&e),
        };
        let odb = git.odb().map_err(git_error)?;
        let (size, _) = odb.read_header(id.0).map_err(git_error)?;
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        if size > max_bytes {
            return Err(RepoError::TooLarge {
                path: what.to_owned(),
                size,
                limit: max_bytes,
            });
        }
        let blob = git.find_blob(id.0).map_err(git_error)?;
        Ok(blob.content().to_vec())
    }

    /// The work tree, `None` for a bare repository or a mirror.
    pub fn work_tree(&self) -> Option<&Path> {
        self.work_tree.as_deref()
    }

    /// The mirrored remote, credentials redacted.
    pub fn remote_display(&self) -> Option<String> {
        self.remote_url.as_deref().map(redact_url)
    }

    /// Resolves `rev` (a branch, tag, any ref, `origin/pr/12`, a full or
    /// abbreviated commit id, `main~2`, ...) to a commit. In a mirror, where
    /// upstream branches are local ones, `origin/<name>` falls back to `<name>`.
    pub fn resolve(&self, rev: &str) -> Result<Revision, RepoError> {
        let git = lock(&self.git);
        let (commit, ref_name) = resolve_commit(&git, &self.git_dir, rev)?;
        Ok(revision_of(&commit, rev, ref_name))
    }

    /// Refs whose full name matches `glob` (`refs/pull/*/head`; `*` does not
    /// cross `/`, `**` does), with the commit each points to, sorted by name.
    /// Refs that do not lead to a commit are left out.
    pub fn refs_matching(&self, glob: &str) -> Result<Vec<RefTarget>, RepoError> {
        let matcher = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|e| RepoError::BadGlob {
                glob: glob.to_owned(),
                message: e.kind().to_string(),
            })?
            .compile_matcher();
        let git = lock(&self.git);
        let git_error = |e: git2::Error| RepoError::Git {
            repo: self.git_dir.clone(),
            action: "listing refs".to_owned(),
            message: git_message(&e),
        };
        let mut found = Vec::new();
        for reference in git.references().map_err(git_error)? {
            let reference = reference.map_err(git_error)?;
            let Ok(name) = reference.name() else { continue };
            if !matcher.is_match(name) {
                continue;
            }
            if let Ok(commit) = reference.peel_to_commit() {
                found.push(RefTarget {
                    name: name.to_owned(),
                    commit: CommitId(commit.id()),
                });
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// The repository's relevant files at `rev`, read from the object database
    /// (no checkout). Listing reads tree objects only, plus the (tiny) blobs of
    /// symbolic links.
    pub fn snapshot(&self, rev: &str) -> Result<Snapshot, RepoError> {
        let git = lock(&self.git);
        let (commit, ref_name) = resolve_commit(&git, &self.git_dir, rev)?;
        let revision = revision_of(&commit, rev, ref_name);
        let git_error = |action: &str, e: git2::Error| RepoError::Git {
            repo: self.git_dir.clone(),
            action: format!("{action} of {rev}"),
            message: git_message(&e),
        };
        let root = commit
            .tree()
            .map_err(|e| git_error("reading the tree", e))?;
        let mut listings = self
            .tree_listings
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        listings.generation += 1;
        let cache = self.keep_listings.load(Ordering::Relaxed);
        let listed = list_git_tree(&git, &root, cache.then_some(&mut *listings));
        listings.evict();
        drop(listings);
        let entries = listed.map_err(|e| git_error("listing the tree", e))?;
        drop(root);
        drop(commit);
        drop(git);
        Ok(Snapshot::new(
            SnapshotSource::Git {
                git: Arc::clone(&self.git),
                git_dir: self.git_dir.clone(),
            },
            entries,
            Some(revision),
        ))
    }

    /// Builds a commit whose tree is `base_rev`'s with `path` set to `contents`,
    /// and creates branch `branch` on it. No work tree or index is touched;
    /// `branch` must be new and not a protected name (`main`, `master`).
    pub fn commit_file_on_new_branch(
        &self,
        base_rev: &str,
        branch: &str,
        path: &str,
        contents: &[u8],
        message: &str,
        author: &Author,
    ) -> Result<CommitId, RepoError> {
        check_branch_name(branch)?;
        check_repo_path(path)?;
        let git = lock(&self.git);
        let ref_name = format!("refs/heads/{branch}");
        let git_error = |action: &str, e: git2::Error| RepoError::Git {
            repo: self.git_dir.clone(),
            action: action.to_owned(),
            message: git_message(&e),
        };
        let keep_ref = format!("{UNPUSHED_NAMESPACE}{branch}");
        if git.find_reference(&ref_name).is_ok() || git.find_reference(&keep_ref).is_ok() {
            return Err(RepoError::BranchExists {
                branch: branch.to_owned(),
                repo: self.git_dir.clone(),
            });
        }
        let (base, _) = resolve_commit(&git, &self.git_dir, base_rev)?;
        let base_tree = base
            .tree()
            .map_err(|e| git_error("reading the base tree", e))?;
        let blob = git
            .blob(contents)
            .map_err(|e| git_error("writing the blob", e))?;
        let tree_id = git2::build::TreeUpdateBuilder::new()
            .upsert(path, blob, git2::FileMode::Blob)
            .create_updated(&git, &base_tree)
            .map_err(|e| git_error(&format!("writing `{path}` into the tree"), e))?;
        let tree = git
            .find_tree(tree_id)
            .map_err(|e| git_error("reading the new tree", e))?;
        let signature = git2::Signature::now(&author.name, &author.email)
            .map_err(|e| git_error("building the signature", e))?;
        let commit_id = git
            .commit(None, &signature, &signature, message, &tree, &[&base])
            .map_err(|e| git_error("writing the commit", e))?;
        // In a mirror, the keep-ref first: a fetch running meanwhile then
        // cannot lose the branch (see `fetch`).
        if self.remote_url.is_some() {
            git.reference(&keep_ref, commit_id, false, "catapult: unpushed proposal")
                .map_err(|e| git_error(&format!("keeping unpushed branch `{branch}`"), e))?;
        }
        // force = false: creating fails rather than moving an existing branch.
        git.reference(&ref_name, commit_id, false, "catapult: proposal branch")
            .map_err(|e| {
                if e.code() == git2::ErrorCode::Exists {
                    RepoError::BranchExists {
                        branch: branch.to_owned(),
                        repo: self.git_dir.clone(),
                    }
                } else {
                    git_error(&format!("creating branch `{branch}`"), e)
                }
            })?;
        Ok(CommitId(commit_id))
    }

    /// The commit local branch `branch` holds for a proposal: its unpushed
    /// commit if one is kept, else the branch itself; `None` if neither exists.
    pub fn proposal_commit(&self, branch: &str) -> Option<CommitId> {
        let git = lock(&self.git);
        [
            format!("{UNPUSHED_NAMESPACE}{branch}"),
            format!("refs/heads/{branch}"),
        ]
        .iter()
        .find_map(|name| git.refname_to_id(name).ok())
        .map(CommitId)
    }

    /// Points local proposal branch `branch` (and its unpushed keep-ref, in a
    /// mirror) at `commit`: another agent's commit of the same proposal, which
    /// is then pushed instead of ours. Only `catapult/` names.
    pub fn adopt_branch(&self, branch: &str, commit: CommitId) -> Result<(), RepoError> {
        check_branch_name(branch)?;
        if !branch.starts_with(crate::proposal::BRANCH_PREFIX) {
            return Err(RepoError::BadBranch {
                branch: branch.to_owned(),
                reason: "only proposal branches are adopted".to_owned(),
            });
        }
        let git = lock(&self.git);
        let git_error = |e: git2::Error| RepoError::Git {
            repo: self.git_dir.clone(),
            action: format!("pointing branch `{branch}` at {}", commit.short()),
            message: git_message(&e),
        };
        if self.remote_url.is_some() {
            git.reference(
                &format!("{UNPUSHED_NAMESPACE}{branch}"),
                commit.0,
                true,
                "catapult: adopt",
            )
            .map_err(git_error)?;
        }
        git.reference(
            &format!("refs/heads/{branch}"),
            commit.0,
            true,
            "catapult: adopt",
        )
        .map_err(git_error)?;
        Ok(())
    }

    /// Forgets local proposal branch `branch` if it was never pushed (a
    /// refused proposal leaves nothing behind, and asking again makes a new
    /// commit). A branch the mirrored remote has is left as it is.
    pub fn drop_unpushed_branch(&self, branch: &str) -> Result<(), RepoError> {
        let git = lock(&self.git);
        let keep = format!("{UNPUSHED_NAMESPACE}{branch}");
        let git_error = |e: git2::Error| RepoError::Git {
            repo: self.git_dir.clone(),
            action: format!("removing unpushed branch `{branch}`"),
            message: git_message(&e),
        };
        let Ok(mut keep_ref) = git.find_reference(&keep) else {
            return Ok(());
        };
        let kept = keep_ref.target();
        keep_ref.delete().map_err(git_error)?;
        if let Ok(mut head) = git.find_reference(&format!("refs/heads/{branch}"))
            && head.target() == kept
        {
            head.delete().map_err(git_error)?;
        }
        Ok(())
    }

    /// Writes a commit with `of`'s tree, `of` as its only parent and
    /// `message`, on no ref (the caller pushes it somewhere).
    pub fn commit_on(
        &self,
        of: CommitId,
        message: &str,
        author: &Author,
    ) -> Result<CommitId, RepoError> {
        let git = lock(&self.git);
        let git_error = |e: git2::Error| RepoError::Git {
            repo: self.git_dir.clone(),
            action: format!("writing a commit on {}", of.short()),
            message: git_message(&e),
        };
        let parent = git.find_commit(of.0).map_err(git_error)?;
        let tree = parent.tree().map_err(git_error)?;
        let signature = git2::Signature::now(&author.name, &author.email).map_err(git_error)?;
        let id = git
            .commit(None, &signature, &signature, message, &tree, &[&parent])
            .map_err(git_error)?;
        Ok(CommitId(id))
    }

    /// Message, first parent and committer time of `commit`, if this
    /// repository has it.
    pub fn commit_record(&self, commit: CommitId) -> Option<CommitRecord> {
        let git = lock(&self.git);
        let found = git.find_commit(commit.0).ok()?;
        Some(CommitRecord {
            message: String::from_utf8_lossy(found.message_bytes()).into_owned(),
            parent: found.parent_ids().next().map(CommitId),
            time: found.time().seconds(),
        })
    }

    /// Whether `commit` is `rev` or one of its ancestors (merged into it).
    pub fn is_merged(&self, commit: CommitId, rev: &str) -> Result<bool, RepoError> {
        let git = lock(&self.git);
        let (target, _) = resolve_commit(&git, &self.git_dir, rev)?;
        if target.id() == commit.0 {
            return Ok(true);
        }
        git.graph_descendant_of(target.id(), commit.0)
            .map_err(|e| RepoError::Git {
                repo: self.git_dir.clone(),
                action: format!("comparing {} with {rev}", commit.short()),
                message: git_message(&e),
            })
    }

    /// Pushes local branch `branch` to a new branch of the same name on
    /// `remote_url`. It only ever creates: if the remote already has a branch
    /// of that name on another commit (whatever it is, including a default
    /// branch not called `main`), nothing is sent and this is an error; if it
    /// has this very commit, there is nothing to do. Never forced. Protected
    /// names are refused before any network access.
    pub fn push_branch(
        &self,
        remote_url: &str,
        branch: &str,
        auth: &GitAuth,
    ) -> Result<(), RepoError> {
        check_branch_name(branch)?;
        let push_error = |message: String| RepoError::Push {
            branch: branch.to_owned(),
            url: redact_url(remote_url),
            message: auth.scrub(&message, remote_url),
        };
        // Own handle, as in `fetch`: the network must not block snapshot reads.
        let git = self
            .fresh_handle()
            .map_err(|e| push_error(git_message(&e)))?;
        let ref_name = format!("refs/heads/{branch}");
        let keep_ref = format!("{UNPUSHED_NAMESPACE}{branch}");
        // The proposal's own commit, even if a fetch moved the branch since.
        let source = if git.find_reference(&keep_ref).is_ok() {
            keep_ref.clone()
        } else {
            git.find_reference(&ref_name)
                .map_err(|_| push_error(format!("no local branch `{branch}` (create it first)")))?;
            ref_name.clone()
        };
        if let Some(path) = remote_ref::local_remote_path(remote_url) {
            // libgit2's local transport fails when any ref of the remote vanishes while it
            // pushes, and does not compare before it writes: create the branch directly.
            let commit = git
                .refname_to_id(&source)
                .map_err(|e| push_error(git_message(&e)))?;
            let created = self
                .update_local_remote_ref(&path, &ref_name, Some(CommitId(commit)), None)
                .map_err(|e| push_error(git_message(&e)))?;
            if let RefUpdate::Mismatch {
                current: Some(current),
            } = created
            {
                return Err(push_error(format!(
                    "{ref_name} already exists on the remote (at {}); a proposal only creates new branches",
                    current.short()
                )));
            }
        } else {
            self.push_with_transport(&git, remote_url, branch, &source, &ref_name, auth)?;
        }
        // Upstream holds the proposal now: the keep-ref has done its job.
        if let Ok(mut keep) = git.find_reference(&keep_ref) {
            keep.delete().map_err(|e| push_error(git_message(&e)))?;
        }
        Ok(())
    }

    fn push_with_transport(
        &self,
        git: &git2::Repository,
        remote_url: &str,
        branch: &str,
        source: &str,
        ref_name: &str,
        auth: &GitAuth,
    ) -> Result<(), RepoError> {
        let push_error = |message: String| RepoError::Push {
            branch: branch.to_owned(),
            url: redact_url(remote_url),
            message: auth.scrub(&message, remote_url),
        };
        let mut remote = git
            .remote_anonymous(remote_url)
            .map_err(|e| push_error(git_message(&e)))?;
        let rejection: RefCell<Option<String>> = RefCell::new(None);
        {
            let mut callbacks = auth.callbacks(remote_url);
            callbacks.push_negotiation(|updates| {
                for update in updates {
                    let current = update.src();
                    if !current.is_zero() && current != update.dst() {
                        let name = update.dst_refname().unwrap_or("the branch");
                        let message = format!(
                            "{name} already exists on the remote (at {}); a proposal only creates new branches",
                            CommitId(current).short()
                        );
                        *rejection.borrow_mut() = Some(message.clone());
                        return Err(git2::Error::from_str(&message));
                    }
                }
                Ok(())
            });
            callbacks.push_update_reference(|name, status| {
                if let Some(status) = status {
                    *rejection.borrow_mut() = Some(format!("remote rejected {name}: {status}"));
                }
                Ok(())
            });
            let mut options = git2::PushOptions::new();
            options.remote_callbacks(callbacks);
            // No leading `+`: never a forced update.
            let refspec = format!("{source}:{ref_name}");
            let pushed = remote.push(&[refspec.as_str()], Some(&mut options));
            if let Err(e) = pushed {
                let message = rejection
                    .borrow_mut()
                    .take()
                    .unwrap_or_else(|| git_message(&e));
                return Err(push_error(message));
            }
        }
        if let Some(message) = rejection.into_inner() {
            return Err(push_error(message));
        }
        Ok(())
    }
}

/// Removes the lock files in a mirror's Git directory (`*.lock` under `refs/`,
/// and `HEAD.lock`, `packed-refs.lock`, `config.lock`) older than
/// [`STALE_LOCK_AGE`]: no fetch or push of this tool holds one that long, so
/// they were left by a process that was killed. Returns how many went.
fn remove_stale_locks(git_dir: &Path) -> usize {
    fn visit(dir: &Path, found: &mut Vec<PathBuf>) {
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
fn own_refs(git: &git2::Repository) -> Result<FxHashMap<String, Oid>, git2::Error> {
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
fn restore_own_refs(
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
fn unpushed_branches(git: &git2::Repository) -> Result<Vec<(String, Oid)>, git2::Error> {
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
fn prune_mirror(
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
fn restore_unpushed(
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

fn check_branch_name(branch: &str) -> Result<(), RepoError> {
    let bad = |reason: &str| {
        Err(RepoError::BadBranch {
            branch: branch.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if PROTECTED_BRANCHES
        .iter()
        .any(|p| p.eq_ignore_ascii_case(branch))
    {
        return bad("protected branch: proposals never write it");
    }
    if branch.starts_with("refs/") || branch.starts_with('-') || branch.starts_with('+') {
        return bad("give a plain branch name (no `refs/`, `+` or `-` prefix)");
    }
    if !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
        return bad("not a valid Git branch name");
    }
    Ok(())
}

fn check_repo_path(path: &str) -> Result<(), RepoError> {
    let bad = |reason: &str| {
        Err(RepoError::BadPath {
            path: path.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if path.is_empty() || path.starts_with('/') || path.ends_with('/') {
        return bad(
            "expected a relative file path such as machines/gpu-01/8000/docker-compose.yml",
        );
    }
    if path.contains('\0') || path.contains('\\') {
        return bad("contains a NUL byte or a backslash");
    }
    for component in path.split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return bad("empty, `.` or `..` component");
        }
        if component.eq_ignore_ascii_case(".git") {
            return bad("`.git` is not part of the repository's content");
        }
    }
    Ok(())
}

fn resolve_commit<'r>(
    git: &'r git2::Repository,
    git_dir: &Path,
    rev: &str,
) -> Result<(git2::Commit<'r>, Option<String>), RepoError> {
    let unknown = |message: String| RepoError::UnknownRev {
        rev: rev.to_owned(),
        repo: git_dir.to_owned(),
        message,
    };
    if rev.trim().is_empty() {
        return Err(unknown("empty revision".to_owned()));
    }
    let parsed = match git.revparse_ext(rev) {
        Ok(found) => Ok(found),
        Err(first) => match rev.strip_prefix("origin/") {
            Some(local) if first.code() == git2::ErrorCode::NotFound => {
                git.revparse_ext(local).map_err(|_| first)
            }
            _ => Err(first),
        },
    };
    let (object, reference) = parsed.map_err(|e| match e.code() {
        git2::ErrorCode::NotFound => {
            unknown("no branch, tag, ref or commit of that name".to_owned())
        }
        git2::ErrorCode::InvalidSpec | git2::ErrorCode::Ambiguous => unknown(git_message(&e)),
        // The repository itself could not be read (damaged refs or objects): not the caller's
        // revision's fault.
        _ => RepoError::Git {
            repo: git_dir.to_owned(),
            action: format!("resolving `{rev}`"),
            message: git_message(&e),
        },
    })?;
    let ref_name = reference.and_then(|r| r.name().ok().map(str::to_owned));
    let kind = object.kind().map_or("object", |k| k.str());
    let commit = object
        .peel_to_commit()
        .map_err(|_| unknown(format!("it names a {kind}, not a commit")))?;
    Ok((commit, ref_name))
}

fn revision_of(commit: &git2::Commit<'_>, rev: &str, ref_name: Option<String>) -> Revision {
    let id = CommitId(commit.id());
    let time = commit.time();
    Revision {
        rev: rev.to_owned(),
        ref_name,
        short_id: id.short(),
        id,
        summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned(),
        time: time.seconds(),
        time_offset_minutes: time.offset_minutes(),
    }
}

// ---------------------------------------------------------------------------
// Entries

/// What a symbolic link finally designates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "snake_case")]
pub enum LinkTarget {
    /// A regular file inside the repository (repository-relative path).
    File(String),
    /// A directory inside the repository. Linked directories are not listed.
    Dir(String),
    /// Nothing (dangling link, a loop, or something that is not a file or directory).
    Missing,
    /// Outside the repository (or into `.git`): never followed.
    Outside,
}

/// The kind of a [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    /// A symbolic link; `target` is the link text. `escapes` is true when it
    /// resolves outside the repository; it is then never followed.
    Symlink {
        target: String,
        escapes: bool,
        resolves_to: LinkTarget,
    },
    /// Anything else: a Git submodule, a FIFO, a socket, a device.
    Other {
        what: String,
    },
}

impl EntryKind {
    /// A short word for messages: `file`, `directory`, `symbolic link`, ...
    pub fn describe(&self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "directory",
            EntryKind::Symlink { .. } => "symbolic link",
            EntryKind::Other { .. } => "special file",
        }
    }
}

/// One file, directory or link of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Repository-relative, `/`-separated (`machines/gpu-01/8000/docker-compose.yml`).
    pub path: String,
    pub kind: EntryKind,
    /// Size in bytes of the file (or of the file a link resolves to). Known for
    /// directory snapshots; `None` for Git snapshots, where trees do not record
    /// sizes (see [`Snapshot::size`]) and for non-files.
    pub size: Option<u64>,
    /// Blob id of the file's content (or of the file a link resolves to inside
    /// the repository); `None` for directories and unreadable links.
    pub id: Option<ContentId>,
}

impl Entry {
    /// The last path component.
    pub fn name(&self) -> &str {
        self.path
            .rsplit_once('/')
            .map_or(self.path.as_str(), |(_, name)| name)
    }

    /// A regular file, or a link to a regular file inside the repository.
    pub fn is_file(&self) -> bool {
        match &self.kind {
            EntryKind::File => true,
            EntryKind::Symlink { resolves_to, .. } => matches!(resolves_to, LinkTarget::File(_)),
            _ => false,
        }
    }

    /// A real directory (linked directories are not followed).
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir)
    }
}

/// Orders paths component by component, so a directory's descendants directly
/// follow it (`a/b` < `a/b/c` < `a-c`, unlike plain string order).
fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    // Component-wise order is byte order with `/` below every other byte
    // (a component never holds `/`); compared without splitting, as sorting
    // a listing calls this for every entry.
    let key = |byte: u8| if byte == b'/' { 0 } else { u16::from(byte) + 1 };
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    match (a.get(common), b.get(common)) {
        (Some(x), Some(y)) => key(*x).cmp(&key(*y)),
        _ => a.len().cmp(&b.len()),
    }
}

/// What a repository-relative path names, without following a final link.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathKind {
    Dir,
    File,
    /// A symbolic link, with its text.
    Link(String),
    /// A submodule, FIFO, socket or device.
    Other,
    Missing,
}

/// Resolves the link at `link_path` whose text is `target` as the kernel
/// resolves it in a checkout, without ever looking outside the repository:
/// component by component, a link met on the way replaced by its text
/// (relative to the link's directory) before the rest is walked, so `..` after
/// a linked directory climbs from where that link points. An absolute target,
/// climbing above the root, or entering `.git` is [`LinkTarget::Outside`]; a
/// loop, a chain of more than [`MAX_LINK_HOPS`] links, or a name that does not
/// exist is [`LinkTarget::Missing`]. `kind_of` answers for paths whose every
/// directory is a real one.
fn resolve_link(
    link_path: &str,
    target: &str,
    mut kind_of: impl FnMut(&str) -> PathKind,
) -> LinkTarget {
    fn push_text(pending: &mut Vec<String>, text: &str) -> bool {
        if text.starts_with('/') || text.starts_with('\\') {
            return false;
        }
        // `pending` is a stack: the next component is last.
        pending.extend(text.split('/').rev().map(str::to_owned));
        true
    }
    let mut resolved: Vec<&str> = link_path.split('/').collect();
    resolved.pop();
    let mut resolved: Vec<String> = resolved.into_iter().map(str::to_owned).collect();
    let mut pending = Vec::new();
    if !push_text(&mut pending, target) {
        return LinkTarget::Outside;
    }
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "" | "." => continue,
            ".." => {
                if resolved.pop().is_none() {
                    return LinkTarget::Outside;
                }
                continue;
            }
            _ => {}
        }
        if resolved.is_empty() && component.eq_ignore_ascii_case(".git") {
            return LinkTarget::Outside;
        }
        resolved.push(component);
        let here = resolved.join("/");
        match kind_of(&here) {
            PathKind::Dir => {}
            // `file/` and `file/x` name nothing, as for the kernel.
            PathKind::File if pending.is_empty() => return LinkTarget::File(here),
            PathKind::Link(text) => {
                hops += 1;
                if hops > MAX_LINK_HOPS {
                    return LinkTarget::Missing;
                }
                resolved.pop();
                if !push_text(&mut pending, &text) {
                    return LinkTarget::Outside;
                }
            }
            PathKind::File | PathKind::Other | PathKind::Missing => return LinkTarget::Missing,
        }
    }
    LinkTarget::Dir(resolved.join("/"))
}

// ---------------------------------------------------------------------------
// Listing a Git tree

/// Generations (snapshots) an unused machine-directory listing is kept.
const KEEP_TREE_LISTINGS: u64 = 8;

/// The entries below a machine directory, by the directory's tree id, paths
/// relative to it and links unresolved (as [`git_entry`] gives them). An
/// unchanged machine directory has the same tree id in every revision, so
/// listing a revision that differs in one file reads one machine's trees.
#[derive(Default)]
struct TreeListings {
    generation: u64,
    by_tree: FxHashMap<Oid, (u64, Arc<[Entry]>)>,
}

impl TreeListings {
    fn listing(
        &mut self,
        git: &git2::Repository,
        tree_id: Oid,
    ) -> Result<Arc<[Entry]>, git2::Error> {
        if let Some((last_used, listing)) = self.by_tree.get_mut(&tree_id) {
            *last_used = self.generation;
            return Ok(Arc::clone(listing));
        }
        let tree = git.find_tree(tree_id)?;
        let mut listing = Vec::new();
        walk_tree(&tree, "", &mut listing)?;
        let listing: Arc<[Entry]> = listing.into();
        self.by_tree
            .insert(tree_id, (self.generation, Arc::clone(&listing)));
        Ok(listing)
    }

    fn evict(&mut self) {
        let generation = self.generation;
        self.by_tree
            .retain(|_, (last_used, _)| *last_used + KEEP_TREE_LISTINGS >= generation);
    }
}

/// Every entry below `tree`, pre-order, each path `<base><path in tree>`.
fn walk_tree(tree: &git2::Tree<'_>, base: &str, out: &mut Vec<Entry>) -> Result<(), git2::Error> {
    tree.walk(git2::TreeWalkMode::PreOrder, |prefix, entry| {
        let entry_name = String::from_utf8_lossy(entry.name_bytes());
        out.push(git_entry(format!("{base}{prefix}{entry_name}"), entry));
        git2::TreeWalkResult::Ok
    })
}

/// The snapshot entries of `root`; machine directories come from `listings`
/// when given (and are added to it), else are walked.
fn list_git_tree(
    git: &git2::Repository,
    root: &git2::Tree<'_>,
    mut listings: Option<&mut TreeListings>,
) -> Result<Vec<Entry>, git2::Error> {
    let mut entries = Vec::new();
    for name in TOP_LEVEL {
        let Some(top) = root.get_name(name) else {
            continue;
        };
        entries.push(git_entry(name.to_owned(), &top));
        if top.kind() != Some(ObjectType::Tree) {
            continue;
        }
        let subtree = git.find_tree(top.id())?;
        if name != MACHINES_DIR {
            walk_tree(&subtree, &format!("{name}/"), &mut entries)?;
            continue;
        }
        // Machine directories: the same pre-order as a walk, each directory's
        // listing from the cache when its tree is known.
        for machine in subtree.iter() {
            let machine_name = String::from_utf8_lossy(machine.name_bytes());
            let machine_path = format!("{name}/{machine_name}");
            entries.push(git_entry(machine_path.clone(), &machine));
            if machine.kind() == Some(ObjectType::Tree) {
                let Some(listings) = listings.as_deref_mut() else {
                    let tree = git.find_tree(machine.id())?;
                    walk_tree(&tree, &format!("{machine_path}/"), &mut entries)?;
                    continue;
                };
                let listing = listings.listing(git, machine.id())?;
                entries.reserve(listing.len());
                entries.extend(listing.iter().map(|entry| Entry {
                    path: format!("{machine_path}/{}", entry.path),
                    kind: entry.kind.clone(),
                    size: entry.size,
                    id: entry.id,
                }));
            }
        }
    }
    // Links are rare: read their text and resolve them now.
    for entry in &mut entries {
        let EntryKind::Symlink {
            target,
            escapes,
            resolves_to,
        } = &mut entry.kind
        else {
            continue;
        };
        let Some(link_blob) = entry.id.take() else {
            continue;
        };
        let blob = git.find_blob(link_blob.0)?;
        *target = String::from_utf8_lossy(blob.content()).into_owned();
        let resolved = resolve_link(&entry.path, target, |path| git_path_kind(git, root, path));
        let id = match &resolved {
            LinkTarget::File(path) => root
                .get_path(Path::new(path))
                .ok()
                .map(|found| ContentId(found.id())),
            _ => None,
        };
        *escapes = resolved == LinkTarget::Outside;
        *resolves_to = resolved;
        entry.id = id;
    }
    entries.sort_by(|a, b| path_order(&a.path, &b.path));
    Ok(entries)
}

fn git_entry(path: String, entry: &git2::TreeEntry<'_>) -> Entry {
    let mode = entry.filemode();
    let id = Some(ContentId(entry.id()));
    let (kind, id) = match mode & 0o170000 {
        0o040000 => (EntryKind::Dir, None),
        // The link text is read after the walk; `id` carries the link blob until then.
        0o120000 => (
            EntryKind::Symlink {
                target: String::new(),
                escapes: false,
                resolves_to: LinkTarget::Missing,
            },
            id,
        ),
        0o100000 => (EntryKind::File, id),
        0o160000 => (
            EntryKind::Other {
                what: "Git submodule".to_owned(),
            },
            None,
        ),
        _ => (
            EntryKind::Other {
                what: format!("tree entry of mode {mode:o}"),
            },
            None,
        ),
    };
    Entry {
        path,
        kind,
        size: None,
        id,
    }
}

/// What `path` names in the commit's tree (see [`resolve_link`]).
fn git_path_kind(git: &git2::Repository, root: &git2::Tree<'_>, path: &str) -> PathKind {
    let Ok(entry) = root.get_path(Path::new(path)) else {
        return PathKind::Missing;
    };
    match entry.filemode() & 0o170000 {
        0o040000 => PathKind::Dir,
        0o100000 => PathKind::File,
        0o120000 => match git.find_blob(entry.id()) {
            Ok(blob) => PathKind::Link(String::from_utf8_lossy(blob.content()).into_owned()),
            Err(_) => PathKind::Missing,
        },
        _ => PathKind::Other,
    }
}

// ---------------------------------------------------------------------------
// Snapshot

enum SnapshotSource {
    Dir {
        root: PathBuf,
    },
    Git {
        git: Arc<Mutex<git2::Repository>>,
        git_dir: PathBuf,
    },
}

/// A read-only view of a repository's relevant files at one point: every entry
/// under `machines/` and `templates/`, and `release-config.toml`. Contents are
/// read lazily with [`Snapshot::read`]. `Send + Sync`: share it in an `Arc`.
pub struct Snapshot {
    source: SnapshotSource,
    /// Sorted with [`path_order`]: a directory's descendants follow it.
    entries: Vec<Entry>,
    /// Path hash -> index into `entries`, or [`HASH_COLLISION`] when two
    /// paths share the hash (then `entries` is searched). Hashes rather than
    /// paths: no copy of every path per listing.
    by_hash: FxHashMap<u64, usize>,
    revision: Option<Revision>,
}

/// A `by_hash` slot shared by several paths.
const HASH_COLLISION: usize = usize::MAX;

fn path_hash(path: &str) -> u64 {
    use std::hash::BuildHasher as _;
    rustc_hash::FxBuildHasher.hash_one(path)
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("source", &self.describe())
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    fn new(source: SnapshotSource, entries: Vec<Entry>, revision: Option<Revision>) -> Snapshot {
        let mut by_hash: FxHashMap<u64, usize> = FxHashMap::default();
        by_hash.reserve(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            by_hash
                .entry(path_hash(&entry.path))
                .and_modify(|slot| *slot = HASH_COLLISION)
                .or_insert(index);
        }
        Snapshot {
            source,
            entries,
            by_hash,
            revision,
        }
    }

    /// A one-off snapshot of a directory, without a stat cache (use a
    /// [`DirReader`] to list the same directory repeatedly).
    pub fn from_dir(root: impl AsRef<Path>) -> Result<Snapshot, RepoError> {
        DirReader::new(root)?.snapshot()
    }

    /// The commit this snapshot was read from; `None` for a directory.
    pub fn revision(&self) -> Option<&Revision> {
        self.revision.as_ref()
    }

    /// The directory this snapshot was read from; `None` for a Git revision.
    pub fn dir_root(&self) -> Option<&Path> {
        match &self.source {
            SnapshotSource::Dir { root } => Some(root),
            SnapshotSource::Git { .. } => None,
        }
    }

    /// For messages: `directory /srv/release-config` or `revision main (0123abcd4567)`.
    pub fn describe(&self) -> String {
        match (&self.source, &self.revision) {
            (SnapshotSource::Dir { root }, _) => format!("directory {}", root.display()),
            (SnapshotSource::Git { .. }, Some(revision)) => {
                format!("revision {} ({})", revision.rev, revision.short_id)
            }
            (SnapshotSource::Git { git_dir, .. }, None) => {
                format!("repository {}", git_dir.display())
            }
        }
    }

    /// Every entry, a directory's descendants directly after it.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry at a repository-relative path.
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.index_of(path)
            .and_then(|index| self.entries.get(index))
    }

    fn index_of(&self, path: &str) -> Option<usize> {
        match *self.by_hash.get(&path_hash(path))? {
            HASH_COLLISION => self
                .entries
                .binary_search_by(|entry| path_order(&entry.path, path))
                .ok(),
            index => self
                .entries
                .get(index)
                .is_some_and(|entry| entry.path == path)
                .then_some(index),
        }
    }

    /// The direct children of directory `dir` (`""` for the top level), in order.
    pub fn children<'s>(&'s self, dir: &str) -> impl Iterator<Item = &'s Entry> + 's {
        // The directory's own entry holds its path for as long as `self` lives.
        let (start, dir): (usize, &'s str) = if dir.is_empty() {
            (0, "")
        } else {
            match self
                .index_of(dir)
                .and_then(|i| Some((i, self.entries.get(i)?)))
            {
                Some((index, entry)) => (index + 1, entry.path.as_str()),
                None => (self.entries.len(), ""),
            }
        };
        let prefix_len = if dir.is_empty() { 0 } else { dir.len() + 1 };
        // `<dir>/`, compared in place rather than built per call.
        let under = move |path: &str| {
            prefix_len == 0
                || (path.len() >= prefix_len
                    && path.as_bytes().get(prefix_len - 1) == Some(&b'/')
                    && path.starts_with(dir))
        };
        self.entries
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take_while(move |entry| under(&entry.path))
            .filter(move |entry| {
                entry
                    .path
                    .get(prefix_len..)
                    .is_some_and(|rest| !rest.contains('/'))
            })
    }

    /// The size of a file entry: from the listing for directories, from the
    /// object header (no content read) for Git.
    pub fn size(&self, entry: &Entry) -> Result<u64, RepoError> {
        if let Some(size) = entry.size {
            return Ok(size);
        }
        let id = self.readable_id(entry)?;
        match &self.source {
            SnapshotSource::Git { git, git_dir } => {
                let git = lock(git);
                let (size, _) = git
                    .odb()
                    .and_then(|odb| odb.read_header(id.0))
                    .map_err(|e| RepoError::Object {
                        path: entry.path.clone(),
                        id: id.to_string(),
                        repo: git_dir.clone(),
                        message: git_message(&e),
                    })?;
                Ok(size as u64)
            }
            SnapshotSource::Dir { root } => {
                let meta =
                    fs::metadata(root.join(self.readable_path(entry)?)).map_err(|source| {
                        RepoError::Io {
                            path: entry.path.clone(),
                            source,
                        }
                    })?;
                Ok(meta.len())
            }
        }
    }

    /// Reads the file at `path` (following a link inside the repository),
    /// refusing files larger than `max_bytes`.
    pub fn read(&self, path: &str, max_bytes: u64) -> Result<Vec<u8>, RepoError> {
        let entry = self.entry(path).ok_or_else(|| RepoError::NotFound {
            path: path.to_owned(),
            snapshot: self.describe(),
        })?;
        self.read_entry(entry, max_bytes)
    }

    /// [`Snapshot::read`] for an entry of this snapshot.
    pub fn read_entry(&self, entry: &Entry, max_bytes: u64) -> Result<Vec<u8>, RepoError> {
        let too_large = |size: u64| RepoError::TooLarge {
            path: entry.path.clone(),
            size,
            limit: max_bytes,
        };
        match &self.source {
            SnapshotSource::Git { git, git_dir } => {
                let id = self.readable_id(entry)?;
                let object_error = |e: git2::Error| RepoError::Object {
                    path: entry.path.clone(),
                    id: id.to_string(),
                    repo: git_dir.clone(),
                    message: git_message(&e),
                };
                let git = lock(git);
                let odb = git.odb().map_err(object_error)?;
                let (size, _) = odb.read_header(id.0).map_err(object_error)?;
                if size as u64 > max_bytes {
                    return Err(too_large(size as u64));
                }
                let object = odb.read(id.0).map_err(object_error)?;
                Ok(object.data().to_vec())
            }
            SnapshotSource::Dir { root } => {
                let relative = self.readable_path(entry)?;
                let io_error = |source: io::Error| RepoError::Io {
                    path: entry.path.clone(),
                    source,
                };
                // Relative to the root, following no link: the tree may have
                // changed since it was listed.
                let file = sys::Root::open(root)
                    .and_then(|root| root.open_file(relative))
                    .map_err(io_error)?;
                let meta = file.metadata().map_err(io_error)?;
                if !meta.is_file() {
                    return Err(changed_while_listing(relative));
                }
                let size = meta.len();
                if size > max_bytes {
                    return Err(too_large(size));
                }
                // The file may grow between stat and read: never read past the limit.
                let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                file.take(max_bytes.saturating_add(1))
                    .read_to_end(&mut data)
                    .map_err(io_error)?;
                if data.len() as u64 > max_bytes {
                    return Err(too_large(data.len() as u64));
                }
                Ok(data)
            }
        }
    }

    fn readable_id(&self, entry: &Entry) -> Result<ContentId, RepoError> {
        self.check_readable(entry)?;
        entry.id.ok_or_else(|| RepoError::NotAFile {
            path: entry.path.clone(),
            kind: entry.kind.describe(),
        })
    }

    /// The repository-relative path whose bytes `entry` stands for.
    fn readable_path<'e>(&self, entry: &'e Entry) -> Result<&'e str, RepoError> {
        self.check_readable(entry)?;
        match &entry.kind {
            EntryKind::File => Ok(&entry.path),
            EntryKind::Symlink {
                resolves_to: LinkTarget::File(path),
                ..
            } => Ok(path),
            other => Err(RepoError::NotAFile {
                path: entry.path.clone(),
                kind: other.describe(),
            }),
        }
    }

    fn check_readable(&self, entry: &Entry) -> Result<(), RepoError> {
        match &entry.kind {
            EntryKind::File
            | EntryKind::Symlink {
                resolves_to: LinkTarget::File(_),
                ..
            } => Ok(()),
            EntryKind::Symlink {
                escapes: true,
                target,
                ..
            } => Err(RepoError::LinkEscapes {
                path: entry.path.clone(),
                target: target.clone(),
            }),
            other => Err(RepoError::NotAFile {
                path: entry.path.clone(),
                kind: other.describe(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_names_ignore_credentials_and_hold_no_secret() {
        let plain = mirror_dir_name("https://github.com/org/repo.git");
        let with_token = mirror_dir_name("https://x:ghp_secret@github.com/org/repo.git");
        assert_eq!(plain, with_token);
        assert!(!with_token.contains("ghp_secret"));
        assert!(plain.starts_with("github.com_org_repo.git-"), "{plain}");
        assert_ne!(plain, mirror_dir_name("https://github.com/org/other.git"));
    }

    #[test]
    fn the_token_goes_only_to_the_remotes_origin_over_https() {
        let remote = "https://x-access-token:t@GitHub.com/acme/rc.git";
        for (asking, offered) in [
            ("https://github.com/acme/rc.git/info/refs", true),
            ("https://github.com/other/repo.git", true),
            ("http://github.com/acme/rc.git", false),
            ("https://github.com:8443/acme/rc.git", false),
            ("https://evil.example/acme/rc.git", false),
            ("https://github.com.evil.example/acme/rc.git", false),
            ("ssh://git@github.com/acme/rc.git", false),
        ] {
            assert_eq!(token_belongs_to(asking, remote), offered, "{asking}");
        }
        assert!(
            !token_belongs_to("http://h/x", "http://h/x"),
            "never in clear text"
        );
    }

    #[test]
    fn scrub_removes_token_and_userinfo() {
        let auth = GitAuth::with_token("ghp_secret");
        let url = "https://user:pw@host/r.git";
        let message = "failed https://user:pw@host/r.git with ghp_secret and user:pw";
        let clean = auth.scrub(message, url);
        assert!(
            !clean.contains("ghp_secret") && !clean.contains("user:pw"),
            "{clean}"
        );
        assert!(format!("{auth:?}").contains("***") && !format!("{auth:?}").contains("ghp_secret"));
    }

    #[test]
    fn links_resolve_like_the_kernel_and_never_leave_the_root() {
        use PathKind::{Dir, File, Link};
        let mut tree: FxHashMap<String, PathKind> = [
            ("machines", Dir),
            ("machines/a", Dir),
            ("machines/a/8000", Dir),
            ("machines/a/8000/docker-compose.yml", File),
            ("machines/b", Link("a".to_owned())),
            ("machines/a/8000/root", Link("../../..".to_owned())),
            ("machines/loop1", Link("loop2".to_owned())),
            ("machines/loop2", Link("loop1".to_owned())),
            ("machines/self", Link("self".to_owned())),
            ("machines/l2", Link("b/8000/docker-compose.yml".to_owned())),
        ]
        .into_iter()
        .map(|(path, kind)| (path.to_owned(), kind))
        .collect();
        // A chain of MAX_LINK_HOPS links is followed, one more is not.
        for i in 0..MAX_LINK_HOPS {
            tree.insert(format!("machines/c{i}"), Link(format!("c{}", i + 1)));
        }
        tree.insert(
            format!("machines/c{MAX_LINK_HOPS}"),
            Link("a/8000/docker-compose.yml".to_owned()),
        );
        let kind_of = |path: &str| tree.get(path).cloned().unwrap_or(PathKind::Missing);
        let file = |p: &str| LinkTarget::File(p.to_owned());
        let compose = "machines/a/8000/docker-compose.yml";
        let cases = [
            (
                "machines/a/8001/x",
                "../8000/docker-compose.yml",
                file(compose),
            ),
            ("machines/a/8000/x", "./docker-compose.yml", file(compose)),
            ("machines/x", "b/8000/docker-compose.yml", file(compose)),
            ("machines/x", "l2", file(compose)),
            (
                "machines/x",
                "b/../a/8000/docker-compose.yml",
                file(compose),
            ),
            ("machines/x", "b", LinkTarget::Dir("machines/a".to_owned())),
            ("machines/x", "..", LinkTarget::Dir(String::new())),
            // `..` after a link climbs from its target: `root/..` is above the
            // root, although the text alone says `machines/a/8000/...`.
            (
                "machines/x",
                "a/8000/root/../etc/passwd",
                LinkTarget::Outside,
            ),
            (
                "machines/x",
                "a/8000/root/machines/b/8000/docker-compose.yml",
                file(compose),
            ),
            ("machines/a", "../../../etc/passwd", LinkTarget::Outside),
            ("machines/a", "/etc/passwd", LinkTarget::Outside),
            ("machines/a", "../.git/config", LinkTarget::Outside),
            ("machines/a", "../.GIT/config", LinkTarget::Outside),
            ("machines/x", "loop1", LinkTarget::Missing),
            ("machines/x", "self", LinkTarget::Missing),
            ("machines/x", "c1", file(compose)),
            ("machines/x", "c0", LinkTarget::Missing),
            ("machines/x", "nothing", LinkTarget::Missing),
            (
                "machines/x",
                "a/8000/docker-compose.yml/x",
                LinkTarget::Missing,
            ),
            (
                "machines/x",
                "a/8000/docker-compose.yml/",
                LinkTarget::Missing,
            ),
        ];
        for (link, target, expected) in cases {
            assert_eq!(
                resolve_link(link, target, kind_of),
                expected,
                "{link} -> {target}"
            );
        }
    }

    proptest::proptest! {
        /// The byte-wise comparison is the component-wise order it stands for.
        #[test]
        fn path_order_is_component_order(a in "[a./_-]{0,3}(/[a./_-]{0,3}){0,3}", b in "[a./_-]{0,3}(/[a./_-]{0,3}){0,3}") {
            proptest::prop_assert_eq!(path_order(&a, &b), a.split('/').cmp(b.split('/')));
        }
    }

    #[test]
    fn path_order_keeps_descendants_together() {
        let mut paths = vec![
            "machines/a-b",
            "machines/a/8000",
            "machines/a",
            "machines",
            "machines/a/8000/x",
        ];
        paths.sort_by(|a, b| path_order(a, b));
        assert_eq!(
            paths,
            [
                "machines",
                "machines/a",
                "machines/a/8000",
                "machines/a/8000/x",
                "machines/a-b"
            ]
        );
    }

    #[test]
    fn branch_and_path_checks() {
        for bad in [
            "main",
            "master",
            "MAIN",
            "refs/heads/x",
            "+x",
            "-x",
            "a..b",
            "a b",
            "",
        ] {
            assert!(check_branch_name(bad).is_err(), "{bad}");
        }
        assert!(check_branch_name("catapult/propose-gpu-01-8000").is_ok());
        for bad in ["", "/abs", "a/../b", "a//b", ".git/config", "a/", "a\\b"] {
            assert!(check_repo_path(bad).is_err(), "{bad}");
        }
        assert!(check_repo_path("machines/a/8000/docker-compose.yml").is_ok());
    }

    #[test]
    fn shared_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Repository>();
        assert_send_sync::<Snapshot>();
        assert_send_sync::<DirReader>();
    }

    /// Machine directories' listings are reused by tree id: a warm repository
    /// lists each revision exactly as a fresh one does, identical machine
    /// directories under two names included.
    #[test]
    fn cached_tree_listings_match_a_fresh_listing() {
        let dir = tempfile::tempdir().unwrap();
        let mut init = git2::RepositoryInitOptions::new();
        init.initial_head("main");
        let git = git2::Repository::init_opts(dir.path(), &init).unwrap();
        let files = [
            ("release-config.toml", "[rules]\n"),
            ("machines/a/machine.yaml", "gpus: 2\n"),
            ("machines/a/8000/docker-compose.yml", "services: {}\n"),
            ("machines/b/machine.yaml", "gpus: 2\n"),
            ("machines/b/8000/docker-compose.yml", "services: {}\n"),
            ("machines/c/8000/docker-compose.yml", "services: {x: {}}\n"),
        ];
        let mut index = git.index().unwrap();
        for (path, text) in files {
            let blob = git.blob(text.as_bytes()).unwrap();
            let entry = git2::IndexEntry {
                ctime: git2::IndexTime::new(0, 0),
                mtime: git2::IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100644,
                uid: 0,
                gid: 0,
                file_size: 0,
                id: blob,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry).unwrap();
        }
        let tree = git.find_tree(index.write_tree().unwrap()).unwrap();
        let author =
            git2::Signature::new("t", "t@example.invalid", &git2::Time::new(0, 0)).unwrap();
        git.commit(Some("HEAD"), &author, &author, "init", &tree, &[])
            .unwrap();
        let warm = Repository::open(dir.path()).unwrap();
        let changed = "machines/b/8000/docker-compose.yml";
        warm.commit_file_on_new_branch(
            "main",
            "edit",
            changed,
            b"services: {y: {}}\n",
            "edit",
            &Author {
                name: "t".into(),
                email: "t@example.invalid".into(),
            },
        )
        .unwrap();
        let listing = |repo: &Repository, rev: &str| repo.snapshot(rev).unwrap().entries().to_vec();
        let main_first = listing(&warm, "main");
        for rev in ["edit", "main", "edit"] {
            let fresh = Repository::open(dir.path()).unwrap();
            assert_eq!(listing(&warm, rev), listing(&fresh, rev), "{rev}");
        }
        assert_eq!(listing(&warm, "main"), main_first);
        let id_at = |rev: &str| {
            let snapshot = warm.snapshot(rev).unwrap();
            snapshot.entry(changed).and_then(|e| e.id)
        };
        assert_ne!(id_at("main"), id_at("edit"));
        let paths: Vec<String> = main_first.iter().map(|e| e.path.clone()).collect();
        assert!(paths.contains(&"machines/a/8000/docker-compose.yml".to_owned()));
        assert!(paths.contains(&"machines/b/8000/docker-compose.yml".to_owned()));

        // Paths sharing a hash slot are found by binary search.
        let mut snapshot = warm.snapshot("main").unwrap();
        let children = |s: &Snapshot| {
            s.children("machines/a")
                .map(|e| e.path.clone())
                .collect::<Vec<_>>()
        };
        let before = children(&snapshot);
        for slot in snapshot.by_hash.values_mut() {
            *slot = HASH_COLLISION;
        }
        for path in &paths {
            assert_eq!(snapshot.entry(path).map(|e| &e.path), Some(path));
        }
        assert!(snapshot.entry("machines/a/9000").is_none());
        assert_eq!(children(&snapshot), before);
        assert_eq!(before, ["machines/a/8000", "machines/a/machine.yaml"]);
    }
}
