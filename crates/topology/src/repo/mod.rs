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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use git2::{ObjectType, Oid};
use rustc_hash::FxHashMap;
use serde::{Serialize, Serializer};

mod auth;
mod branches;
mod dir;
mod mirror;
mod remote_ref;
mod snapshot;
#[cfg(target_os = "linux")]
#[allow(unsafe_code)] // The workspace's second audited exception (see ARCHITECTURE.md).
mod uring;
mod watch;

#[allow(clippy::wildcard_imports)]
use auth::*;
pub use auth::{GitAuth, redact_url, set_network_timeouts};
pub use branches::{TreeChange, unified_diff};
pub use dir::DirReader;
#[allow(clippy::wildcard_imports)]
use dir::*;

pub use remote_ref::RefUpdate;
#[allow(clippy::wildcard_imports)]
use snapshot::*;
pub use snapshot::{Entry, EntryKind, LinkTarget, Snapshot};

/// The three places of a release-config repository that a [`Snapshot`] lists.
pub(crate) const MACHINES_DIR: &str = "machines";
/// Directory of proposal templates.
pub(crate) const TEMPLATES_DIR: &str = "templates";
/// Repository-level configuration file.
pub(crate) const CONFIG_FILE: &str = "release-config.toml";

/// In name order (directory listings rely on it to come out sorted).
const TOP_LEVEL: [&str; 3] = [MACHINES_DIR, CONFIG_FILE, TEMPLATES_DIR];

/// Turns libgit2's object cache off, once per process. Every tree is read
/// once per revision and kept as a listing by `TreeListings` (blobs are
/// never cached by libgit2), so the cache only held a second copy of each
/// tree: 15 MB of a 20,000-machine validation's peak, for no hit.
fn disable_object_cache() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| git2::opts::enable_caching(false));
}

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
const FETCH_RETRIES: u32 = 6;

/// The pause before the first fetch again after a ref vanished, doubled for each next one
/// (10 + 20 + ... + 320 ms at most): agents proposing at once create and give back claims in
/// bursts, and a fetch made straight after one can meet the next.
const FETCH_RETRY_PAUSE: Duration = Duration::from_millis(10);

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
    #[error(
        "`{path}` carries a SHA-1 collision attack (the pattern of SHAttered); it is refused, as Git refuses it"
    )]
    Collision { path: String },
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
/// The raw digest, not a `git2::Oid`: computing, comparing and hashing ids
/// never calls into libgit2 (whose first call starts OpenSSL).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId([u8; 20]);

impl ContentId {
    /// The Git blob id of `data`.
    pub fn of_bytes(data: &[u8]) -> Result<ContentId, RepoError> {
        ContentId::of_file("(content)", data)
    }

    /// The Git blob id of `data`, the file `path` (named by the error of
    /// [`BlobHasher::finish`]).
    pub fn of_file(path: &str, data: &[u8]) -> Result<ContentId, RepoError> {
        let mut hasher = BlobHasher::new(data.len() as u64);
        hasher.update(data);
        hasher.finish(path)
    }

    /// Parses a 40-digit hexadecimal id.
    pub fn from_hex(hex: &str) -> Option<ContentId> {
        let digits = hex.as_bytes();
        if digits.len() != 40 {
            return None;
        }
        let mut bytes = [0; 20];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let high = char::from(pair[0]).to_digit(16)?;
            let low = char::from(pair[1]).to_digit(16)?;
            *byte = u8::try_from(high << 4 | low).ok()?;
        }
        Some(ContentId(bytes))
    }

    /// The id of a Git object id.
    fn of_oid(oid: Oid) -> ContentId {
        let mut bytes = [0; 20];
        bytes.copy_from_slice(&oid.as_bytes()[..20]);
        ContentId(bytes)
    }

    /// The id as libgit2's type, to look the object up.
    fn oid(self) -> Result<Oid, git2::Error> {
        Oid::from_bytes(&self.0)
    }

    /// The 20 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

/// A Git blob id computed piece by piece, for a file read in parts: the
/// length goes first into the hash, as in Git's object header.
pub(crate) struct BlobHasher(sha1_checked::Sha1);

impl BlobHasher {
    pub(crate) fn new(len: u64) -> BlobHasher {
        use sha1_checked::Digest as _;
        // As Git and gitoxide: detection only, no "safe hash" substituted.
        let mut hasher = sha1_checked::Builder::default().safe_hash(false).build();
        hasher.update(b"blob ");
        hasher.update(len.to_string().as_bytes());
        hasher.update([0]);
        BlobHasher(hasher)
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        use sha1_checked::Digest as _;
        self.0.update(data);
    }

    /// The id; refused, as Git refuses it, when the bytes of the file `path`
    /// carry a SHA-1 collision attack (two contents with one id would let a
    /// reviewed file stand for another).
    pub(crate) fn finish(self, path: &str) -> Result<ContentId, RepoError> {
        let result = self.0.try_finalize();
        if result.has_collision() {
            return Err(RepoError::Collision {
                path: path.to_owned(),
            });
        }
        let mut id = [0; 20];
        id.copy_from_slice(result.hash().as_slice());
        Ok(ContentId(id))
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
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
        disable_object_cache();
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
        let (size, _) = odb
            .read_header(id.oid().map_err(git_error)?)
            .map_err(git_error)?;
        let size = u64::try_from(size).unwrap_or(u64::MAX);
        if size > max_bytes {
            return Err(RepoError::TooLarge {
                path: what.to_owned(),
                size,
                limit: max_bytes,
            });
        }
        let blob = git
            .find_blob(id.oid().map_err(git_error)?)
            .map_err(git_error)?;
        Ok(blob.content().to_vec())
    }

    /// The work tree, `None` for a bare repository or a mirror.
    pub fn work_tree(&self) -> Option<&Path> {
        self.work_tree.as_deref()
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
        let (entries, subtrees) = listed.map_err(|e| git_error("listing the tree", e))?;
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
        )
        .with_subtrees(subtrees))
    }
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

#[cfg(test)]
mod tests {
    use super::branches::{check_branch_name, check_repo_path};
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
        let mut by_hash = snapshot.index();
        for slot in by_hash.values_mut() {
            *slot = HASH_COLLISION;
        }
        snapshot.by_hash = OnceLock::from(by_hash);
        for path in &paths {
            assert_eq!(snapshot.entry(path).map(|e| &e.path), Some(path));
        }
        assert!(snapshot.entry("machines/a/9000").is_none());
        assert_eq!(children(&snapshot), before);
        assert_eq!(before, ["machines/a/8000", "machines/a/machine.yaml"]);
    }
}
