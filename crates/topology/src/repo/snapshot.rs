//! A [`Snapshot`]: the entries of a repository at one point (a work tree or a
//! commit's tree), with links resolved inside the root and lazy, bounded reads.

#[allow(clippy::wildcard_imports)]
use super::*;

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
pub(super) fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
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
pub(super) enum PathKind {
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
pub(super) fn resolve_link(
    link_path: &str,
    target: &str,
    mut kind_of: impl FnMut(&str) -> PathKind,
) -> LinkTarget {
    pub(super) fn push_text(pending: &mut Vec<String>, text: &str) -> bool {
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
pub(super) const KEEP_TREE_LISTINGS: u64 = 8;

/// The entries below a machine directory, by the directory's tree id, paths
/// relative to it and links unresolved (as [`git_entry`] gives them). An
/// unchanged machine directory has the same tree id in every revision, so
/// listing a revision that differs in one file reads one machine's trees.
#[derive(Default)]
pub(super) struct TreeListings {
    pub(super) generation: u64,
    /// By the id's bytes: `Oid`'s own equality is a call into libgit2.
    pub(super) by_tree: FxHashMap<[u8; 20], (u64, Arc<[Entry]>)>,
}

/// The bytes of an id (libgit2 as git2 builds it reads SHA-1 repositories
/// only: 20 bytes).
fn oid_bytes(id: Oid) -> [u8; 20] {
    let mut bytes = [0u8; 20];
    for (to, from) in bytes.iter_mut().zip(id.as_bytes()) {
        *to = *from;
    }
    bytes
}

impl TreeListings {
    pub(super) fn listing(
        &mut self,
        git: &git2::Repository,
        tree_id: Oid,
    ) -> Result<Arc<[Entry]>, git2::Error> {
        let key = oid_bytes(tree_id);
        if let Some((last_used, listing)) = self.by_tree.get_mut(&key) {
            *last_used = self.generation;
            return Ok(Arc::clone(listing));
        }
        let tree = git.find_tree(tree_id)?;
        let mut listing = Vec::new();
        walk_tree(&tree, "", &mut listing)?;
        let listing: Arc<[Entry]> = listing.into();
        self.by_tree
            .insert(key, (self.generation, Arc::clone(&listing)));
        Ok(listing)
    }

    pub(super) fn evict(&mut self) {
        let generation = self.generation;
        self.by_tree
            .retain(|_, (last_used, _)| *last_used + KEEP_TREE_LISTINGS >= generation);
    }
}

/// Every entry below `tree`, pre-order, each path `<base><path in tree>`.
pub(super) fn walk_tree(
    tree: &git2::Tree<'_>,
    base: &str,
    out: &mut Vec<Entry>,
) -> Result<(), git2::Error> {
    tree.walk(git2::TreeWalkMode::PreOrder, |prefix, entry| {
        let entry_name = String::from_utf8_lossy(entry.name_bytes());
        out.push(git_entry(format!("{base}{prefix}{entry_name}"), entry));
        git2::TreeWalkResult::Ok
    })
}

/// The snapshot entries of `root`; machine directories come from `listings`
/// when given (and are added to it), else are walked.
/// A Git listing: the entries, and the tree ids of the machine directories
/// that hold no link, by entry index (see [`Snapshot::subtree_id`]).
pub(super) type GitListing = (Vec<Entry>, FxHashMap<usize, ContentId>);

pub(super) fn list_git_tree(
    git: &git2::Repository,
    root: &git2::Tree<'_>,
    mut listings: Option<&mut TreeListings>,
) -> Result<GitListing, git2::Error> {
    let mut entries = Vec::new();
    // (entry index, tree id) of link-free machine directories.
    let mut subtrees: Vec<(usize, ContentId)> = Vec::new();
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
        let Some(listings) = listings.as_deref_mut() else {
            for machine in subtree.iter() {
                let machine_path =
                    format!("{name}/{}", String::from_utf8_lossy(machine.name_bytes()));
                entries.push(git_entry(machine_path.clone(), &machine));
                if machine.kind() == Some(ObjectType::Tree) {
                    let tree = git.find_tree(machine.id())?;
                    walk_tree(&tree, &format!("{machine_path}/"), &mut entries)?;
                }
            }
            continue;
        };
        // The listings first, so that the entries are allocated once at their
        // final size: growing a 130,000-entry vector by doubling held one and
        // a half times it at the peak.
        let mut machines = Vec::with_capacity(subtree.len());
        for machine in subtree.iter() {
            let listing = match machine.kind() {
                Some(ObjectType::Tree) => Some(listings.listing(git, machine.id())?),
                _ => None,
            };
            machines.push((machine, listing));
        }
        let listed: usize = machines
            .iter()
            .map(|(_, listing)| 1 + listing.as_ref().map_or(0, |l| l.len()))
            .sum();
        // What follows `machines/`: the config file and a few templates.
        entries.reserve_exact(listed + 256);
        subtrees.reserve_exact(machines.len());
        for (machine, listing) in machines {
            let machine_path = format!("{name}/{}", String::from_utf8_lossy(machine.name_bytes()));
            entries.push(git_entry(machine_path.clone(), &machine));
            let Some(listing) = listing else {
                continue;
            };
            // A link may name a file elsewhere in the tree, so only a
            // link-free directory is all its tree id says.
            if !listing
                .iter()
                .any(|e| matches!(e.kind, EntryKind::Symlink { .. }))
            {
                subtrees.push((entries.len() - 1, ContentId::of_oid(machine.id())));
            }
            entries.extend(listing.iter().map(|entry| Entry {
                // Not `format!`: this runs once per file of the fleet.
                path: [machine_path.as_str(), "/", entry.path.as_str()].concat(),
                kind: entry.kind.clone(),
                size: entry.size,
                id: entry.id,
            }));
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
        let blob = git.find_blob(link_blob.oid()?)?;
        *target = String::from_utf8_lossy(blob.content()).into_owned();
        let resolved = resolve_link(&entry.path, target, |path| git_path_kind(git, root, path));
        let id = match &resolved {
            LinkTarget::File(path) => root
                .get_path(Path::new(path))
                .ok()
                .map(|found| ContentId::of_oid(found.id())),
            _ => None,
        };
        *escapes = resolved == LinkTarget::Outside;
        *resolves_to = resolved;
        entry.id = id;
    }
    // Grown by doubling where the listing cache did not size it: the analysis
    // that follows would hold up to twice the entries' size for nothing
    // (17 MB at 20,000 machines).
    entries.shrink_to_fit();
    // Git's order puts `a-b` before the tree `a` (as `a/`); ours does not.
    // Usually the listing is already in order, and its indices stand.
    if entries.is_sorted_by(|a, b| path_order(&a.path, &b.path).is_le()) {
        return Ok((entries, subtrees.into_iter().collect()));
    }
    let paths: Vec<(String, ContentId)> = subtrees
        .iter()
        .filter_map(|(index, id)| Some((entries.get(*index)?.path.clone(), *id)))
        .collect();
    entries.sort_by(|a, b| path_order(&a.path, &b.path));
    let subtrees = paths
        .into_iter()
        .filter_map(|(path, id)| {
            let index = entries
                .binary_search_by(|entry| path_order(&entry.path, &path))
                .ok()?;
            Some((index, id))
        })
        .collect();
    Ok((entries, subtrees))
}

pub(super) fn git_entry(path: String, entry: &git2::TreeEntry<'_>) -> Entry {
    let mode = entry.filemode();
    let id = Some(ContentId::of_oid(entry.id()));
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
pub(super) fn git_path_kind(git: &git2::Repository, root: &git2::Tree<'_>, path: &str) -> PathKind {
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

pub(super) enum SnapshotSource {
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
    /// Built on the [`LOOKUPS_BEFORE_INDEX`]th lookup: a re-validation that
    /// reuses every unchanged machine looks up a handful of paths, and
    /// indexing 130,000 entries would be a tenth of its time.
    pub(super) by_hash: OnceLock<FxHashMap<u64, usize>>,
    /// Lookups made by binary search so far (see `by_hash`).
    searches: AtomicUsize,
    /// Symbolic links among the entries.
    links: usize,
    revision: Option<Revision>,
    /// Small files a directory listing already read (it hashed them), by
    /// blob id: reads take their bytes from here instead of the disk. By id,
    /// so what is read is what was hashed.
    kept: Mutex<FxHashMap<ContentId, Box<[u8]>>>,
    /// Entry index -> subtree id of a link-free machine directory (see
    /// [`Snapshot::subtree_id`]).
    subtrees: FxHashMap<usize, ContentId>,
}

/// A `by_hash` slot shared by several paths.
pub(super) const HASH_COLLISION: usize = usize::MAX;

/// Lookups answered by binary search before `by_hash` is built.
const LOOKUPS_BEFORE_INDEX: usize = 64;

pub(super) fn path_hash(path: &str) -> u64 {
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
    pub(super) fn new(
        source: SnapshotSource,
        entries: Vec<Entry>,
        revision: Option<Revision>,
    ) -> Snapshot {
        let links = entries
            .iter()
            .filter(|entry| matches!(entry.kind, EntryKind::Symlink { .. }))
            .count();
        Snapshot {
            source,
            entries,
            by_hash: OnceLock::new(),
            searches: AtomicUsize::new(0),
            links,
            revision,
            kept: Mutex::default(),
            subtrees: FxHashMap::default(),
        }
    }

    pub(super) fn with_subtrees(mut self, subtrees: FxHashMap<usize, ContentId>) -> Snapshot {
        self.subtrees = subtrees;
        self
    }

    /// Whether any directory has a [`Snapshot::subtree_id`].
    pub fn has_subtrees(&self) -> bool {
        !self.subtrees.is_empty()
    }

    /// The id of everything below the machine directory `dir`, when nothing
    /// there is a link: equal ids mean every entry below is the same (path,
    /// kind and content). For a commit, the directory's Git tree id; for a
    /// work tree listed by a kept [`DirReader`], the id of its listing.
    /// `None` otherwise (one-off listings, directories holding links).
    pub fn subtree_id(&self, dir: &Entry) -> Option<ContentId> {
        if self.subtrees.is_empty() {
            return None;
        }
        self.subtrees.get(&self.position(dir)?).copied()
    }

    /// The index of `entry` when it is one of this snapshot's entries (by
    /// address: a lookup by path costs a hash and two cache misses, and the
    /// engine asks this of every machine), else by path.
    fn position(&self, entry: &Entry) -> Option<usize> {
        let base = self.entries.as_ptr() as usize;
        let offset = (entry as *const Entry as usize).wrapping_sub(base);
        let index = offset / size_of::<Entry>();
        match self.entries.get(index) {
            Some(found) if std::ptr::eq(found, entry) => Some(index),
            _ => self.index_of(&entry.path),
        }
    }

    /// Path hash -> entry index (see `by_hash`).
    pub(super) fn index(&self) -> FxHashMap<u64, usize> {
        let mut by_hash: FxHashMap<u64, usize> = FxHashMap::default();
        by_hash.reserve(self.entries.len());
        for (index, entry) in self.entries.iter().enumerate() {
            by_hash
                .entry(path_hash(&entry.path))
                .and_modify(|slot| *slot = HASH_COLLISION)
                .or_insert(index);
        }
        by_hash
    }

    /// Whether any entry is a symbolic link.
    pub fn has_links(&self) -> bool {
        self.links > 0
    }

    pub(super) fn with_kept(mut self, kept: FxHashMap<ContentId, Box<[u8]>>) -> Snapshot {
        self.kept = Mutex::new(kept);
        self
    }

    /// A one-off snapshot of a directory, without a stat cache (use a
    /// [`DirReader`] to list the same directory repeatedly).
    pub fn from_dir(root: impl AsRef<Path>) -> Result<Snapshot, RepoError> {
        DirReader::new(root)?.snapshot_once()
    }

    /// The commit this snapshot was read from; `None` for a directory.
    pub fn revision(&self) -> Option<&Revision> {
        self.revision.as_ref()
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

    pub(super) fn index_of(&self, path: &str) -> Option<usize> {
        let by_hash = match self.by_hash.get() {
            Some(by_hash) => by_hash,
            None if self.searches.fetch_add(1, Ordering::Relaxed) < LOOKUPS_BEFORE_INDEX => {
                return self
                    .entries
                    .binary_search_by(|entry| path_order(&entry.path, path))
                    .ok();
            }
            None => self.by_hash.get_or_init(|| self.index()),
        };
        match *by_hash.get(&path_hash(path))? {
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
                    .and_then(|odb| odb.read_header(id.oid()?))
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
                let oid = id.oid().map_err(object_error)?;
                let (size, _) = odb.read_header(oid).map_err(object_error)?;
                if size as u64 > max_bytes {
                    return Err(too_large(size as u64));
                }
                let object = odb.read(oid).map_err(object_error)?;
                Ok(object.data().to_vec())
            }
            SnapshotSource::Dir { root } => {
                let relative = self.readable_path(entry)?;
                // Copied, not taken: identical files (one id) are common.
                let kept = entry.id.and_then(|id| {
                    self.kept
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(&id)
                        .map(|data| {
                            if data.len() as u64 > max_bytes {
                                Err(too_large(data.len() as u64))
                            } else {
                                Ok(data.to_vec())
                            }
                        })
                });
                if let Some(data) = kept {
                    return data;
                }
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

    pub(super) fn readable_id(&self, entry: &Entry) -> Result<ContentId, RepoError> {
        self.check_readable(entry)?;
        entry.id.ok_or_else(|| RepoError::NotAFile {
            path: entry.path.clone(),
            kind: entry.kind.describe(),
        })
    }

    /// The repository-relative path whose bytes `entry` stands for.
    pub(super) fn readable_path<'e>(&self, entry: &'e Entry) -> Result<&'e str, RepoError> {
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

    pub(super) fn check_readable(&self, entry: &Entry) -> Result<(), RepoError> {
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
