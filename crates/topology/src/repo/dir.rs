//! Listing a directory: a work tree read as a [`Snapshot`] with the blob ids
//! Git would compute, through a stat cache so that re-listing is cheap, and
//! without following a link that leaves the repository.

use std::sync::atomic::AtomicBool;

use rustc_hash::FxHashSet;

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::parallel;

//
// A warm listing costs one `stat` per directory and per file, relative to the
// repository root: a directory whose stamp is unchanged since the last listing
// keeps its cached children (adding, removing or renaming an entry changes the
// directory's mtime and ctime), and a file whose stamp is unchanged keeps its
// blob id. Nothing is re-read or re-hashed unless it changed. Large trees are
// walked on a few threads, machine directories split between them. From the
// second listing on, every directory is also watched (`repo::watch`): after
// that, a listing takes a stat only of what an inotify event names.

/// Nanoseconds since the Unix epoch; 0 before it, saturating far after it.
pub(super) fn epoch_nanos(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// What the stat cache compares: a file or directory whose stamp is unchanged
/// (and was settled when cached) has unchanged content, or children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    len: u64,
    modified_ns: i64,
    changed_ns: i64,
    inode: u64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ns =
                |secs: i64, nanos: i64| secs.saturating_mul(1_000_000_000).saturating_add(nanos);
            Stamp {
                len: meta.len(),
                modified_ns: ns(meta.mtime(), meta.mtime_nsec()),
                changed_ns: ns(meta.ctime(), meta.ctime_nsec()),
                inode: meta.ino(),
            }
        }
        #[cfg(not(unix))]
        {
            Stamp {
                len: meta.len(),
                modified_ns: meta.modified().map_or(i64::MAX, epoch_nanos),
                changed_ns: 0,
                inode: 0,
            }
        }
    }

    /// Safe to cache: modified and changed long enough before `now_ns` that a
    /// later change must give a different stamp, even with coarse timestamps.
    fn is_settled(&self, now_ns: i64) -> bool {
        let window = i64::try_from(RACY_WINDOW.as_nanos()).unwrap_or(i64::MAX);
        self.modified_ns.max(self.changed_ns) <= now_ns.saturating_sub(window)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatKind {
    Dir,
    File,
    Symlink,
    Other,
}

impl StatKind {
    fn of(file_type: fs::FileType) -> StatKind {
        if file_type.is_dir() {
            StatKind::Dir
        } else if file_type.is_file() {
            StatKind::File
        } else if file_type.is_symlink() {
            StatKind::Symlink
        } else {
            StatKind::Other
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Stat {
    kind: StatKind,
    stamp: Stamp,
}

/// One child as a directory read gives it: its name (`Err`: lossily
/// converted, not UTF-8) and its kind, if the file system says.
pub(super) type Listed = (Result<String, String>, Option<StatKind>);

fn listed_name(name: &Result<String, String>) -> &str {
    match name {
        Ok(name) | Err(name) => name,
    }
}

/// The file system calls of a listing, relative to the repository root.
#[cfg(target_os = "linux")]
pub(super) mod sys {
    use std::fs;
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};
    use std::path::{Path, PathBuf};

    use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, ResolveFlags, StatxFlags};
    use rustix::io::Errno;

    use super::{Listed, Stamp, Stat, StatKind};

    /// An `O_PATH` handle on the repository root: `statx` and `openat2`
    /// relative to it walk two or three path components instead of the whole
    /// absolute path, and `RESOLVE_BENEATH` keeps every open inside it.
    pub(in crate::repo) struct Root {
        fd: OwnedFd,
        path: PathBuf,
    }

    /// One thread's reader of small files in io_uring batches, its ring set
    /// up at the first read and kept for the thread's later runs.
    #[derive(Default)]
    pub(in crate::repo) struct SmallFiles {
        /// `Some(None)`: io_uring cannot be had, or the ring failed.
        ring: Option<Option<crate::repo::uring::Reader>>,
    }

    impl SmallFiles {
        /// Each file whole, or `None` where it must be read the plain way;
        /// `None` for all where io_uring cannot be had (see `repo::uring`).
        pub(in crate::repo) fn read(
            &mut self,
            root: &Root,
            paths: &[&str],
            limit: usize,
        ) -> Option<Vec<Option<Vec<u8>>>> {
            let ring = self
                .ring
                .get_or_insert_with(|| crate::repo::uring::Reader::new(limit));
            let read = ring.as_mut()?.read_all(root.fd.as_fd(), paths);
            if read.is_err() {
                // Spent (see `Reader::read_all`): the plain way from here on.
                *ring = None;
            }
            read.ok()
        }
    }

    impl Root {
        pub(in crate::repo) fn open(path: &Path) -> io::Result<Root> {
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(CWD, path, flags, Mode::empty())?;
            Ok(Root {
                fd,
                path: path.to_owned(),
            })
        }

        /// `lstat` of a root-relative path (never follows a final link).
        pub(in crate::repo) fn lstat(&self, relative: &str) -> io::Result<Stat> {
            match rustix::fs::statx(&self.fd, relative, AtFlags::SYMLINK_NOFOLLOW, MASK) {
                Ok(st) => Ok(stat_of(&st)),
                // Kernels before 4.11 and some container sandboxes lack statx.
                Err(Errno::NOSYS) => {
                    let meta = fs::symlink_metadata(self.path.join(relative))?;
                    Ok(Stat {
                        kind: StatKind::of(meta.file_type()),
                        stamp: Stamp::of(&meta),
                    })
                }
                Err(e) => Err(e.into()),
            }
        }

        /// The stat of an open file or directory.
        pub(in crate::repo) fn fstat(fd: impl AsFd) -> io::Result<Stat> {
            match rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, MASK) {
                Ok(st) => Ok(stat_of(&st)),
                Err(Errno::NOSYS) => {
                    let meta = fs::File::from(fd.as_fd().try_clone_to_owned()?).metadata()?;
                    Ok(Stat {
                        kind: StatKind::of(meta.file_type()),
                        stamp: Stamp::of(&meta),
                    })
                }
                Err(e) => Err(e.into()),
            }
        }

        /// The children of a root-relative directory, opened as files are
        /// (no link followed, never outside the root): names and kinds from
        /// one `getdents64` buffer, without a `stat` per child (`None` where
        /// the file system does not say the kind), and the directory's own
        /// stat if `with_stat` (a listing that keeps no stat cache needs none:
        /// `O_DIRECTORY` already refuses anything else). Four system calls for
        /// a small directory, or five with the stat.
        pub(in crate::repo) fn list_dir(
            &self,
            relative: &str,
            with_stat: bool,
        ) -> io::Result<(Option<Stat>, Vec<Listed>)> {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOCTTY;
            let fd = self.open_beneath(relative, flags)?;
            let stat = if with_stat {
                Some(Root::fstat(&fd)?)
            } else {
                None
            };
            let mut buffer = vec![std::mem::MaybeUninit::<u8>::uninit(); 32 * 1024];
            let mut dir = rustix::fs::RawDir::new(&fd, &mut buffer);
            let mut children = Vec::new();
            while let Some(entry) = dir.next() {
                let entry = entry?;
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let kind = match entry.file_type() {
                    FileType::Directory => Some(StatKind::Dir),
                    FileType::RegularFile => Some(StatKind::File),
                    FileType::Symlink => Some(StatKind::Symlink),
                    FileType::Unknown => None,
                    _ => Some(StatKind::Other),
                };
                let name = match std::str::from_utf8(name) {
                    Ok(name) => Ok(name.to_owned()),
                    Err(_) => Err(String::from_utf8_lossy(name).into_owned()),
                };
                children.push((name, kind));
            }
            Ok((stat, children))
        }

        fn open_beneath(&self, relative: &str, flags: OFlags) -> io::Result<OwnedFd> {
            let resolve =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            match rustix::fs::openat2(&self.fd, relative, flags, Mode::empty(), resolve) {
                Ok(fd) => Ok(fd),
                // openat2 is Linux 5.6+, and some seccomp profiles refuse it:
                // then at least the last component is not followed.
                Err(Errno::NOSYS | Errno::PERM) => Ok(rustix::fs::openat(
                    &self.fd,
                    relative,
                    flags | OFlags::NOFOLLOW,
                    Mode::empty(),
                )?),
                Err(e) => Err(e.into()),
            }
        }

        /// Opens a regular file for reading. No link is followed on the way
        /// and the path cannot leave the root, even if the tree changed since
        /// it was listed (a link put in place of a checked file or directory).
        pub(in crate::repo) fn open_file(&self, relative: &str) -> io::Result<fs::File> {
            // NONBLOCK: a FIFO put in place of the file must not hang the open.
            let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
            Ok(fs::File::from(self.open_beneath(relative, flags)?))
        }
    }

    const MASK: StatxFlags = StatxFlags::TYPE
        .union(StatxFlags::MODE)
        .union(StatxFlags::INO)
        .union(StatxFlags::SIZE)
        .union(StatxFlags::MTIME)
        .union(StatxFlags::CTIME);

    fn stat_of(st: &rustix::fs::Statx) -> Stat {
        let ns = |t: rustix::fs::StatxTimestamp| {
            t.tv_sec
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(t.tv_nsec))
        };
        let kind = match FileType::from_raw_mode(u32::from(st.stx_mode)) {
            FileType::Directory => StatKind::Dir,
            FileType::RegularFile => StatKind::File,
            FileType::Symlink => StatKind::Symlink,
            _ => StatKind::Other,
        };
        Stat {
            kind,
            stamp: Stamp {
                len: st.stx_size,
                modified_ns: ns(st.stx_mtime),
                changed_ns: ns(st.stx_ctime),
                inode: st.stx_ino,
            },
        }
    }
}

/// The file system calls of a listing, by absolute path (portable fallback).
#[cfg(not(target_os = "linux"))]
pub(super) mod sys {
    use std::fs;
    use std::io;
    use std::path::{Path, PathBuf};

    use super::{Listed, Stamp, Stat, StatKind};

    pub(in crate::repo) struct Root {
        path: PathBuf,
    }

    /// No batched reads here: every file is read the plain way.
    #[derive(Default)]
    pub(in crate::repo) struct SmallFiles;

    impl SmallFiles {
        pub(in crate::repo) fn read(
            &mut self,
            _root: &Root,
            _paths: &[&str],
            _limit: usize,
        ) -> Option<Vec<Option<Vec<u8>>>> {
            None
        }
    }

    impl Root {
        pub(in crate::repo) fn open(path: &Path) -> io::Result<Root> {
            Ok(Root {
                path: path.to_owned(),
            })
        }

        pub(in crate::repo) fn lstat(&self, relative: &str) -> io::Result<Stat> {
            let meta = fs::symlink_metadata(self.path.join(relative))?;
            Ok(Stat {
                kind: StatKind::of(meta.file_type()),
                stamp: Stamp::of(&meta),
            })
        }

        pub(in crate::repo) fn open_file(&self, relative: &str) -> io::Result<fs::File> {
            fs::File::open(self.path.join(relative))
        }

        pub(in crate::repo) fn fstat(file: &fs::File) -> io::Result<Stat> {
            let meta = file.metadata()?;
            Ok(Stat {
                kind: StatKind::of(meta.file_type()),
                stamp: Stamp::of(&meta),
            })
        }

        pub(in crate::repo) fn list_dir(
            &self,
            relative: &str,
            with_stat: bool,
        ) -> io::Result<(Option<Stat>, Vec<Listed>)> {
            let stat = if with_stat {
                Some(self.lstat(relative)?)
            } else {
                None
            };
            let mut children = Vec::new();
            for child in fs::read_dir(self.path.join(relative))? {
                let child = child?;
                let kind = child.file_type().ok().map(StatKind::of);
                let name = child
                    .file_name()
                    .into_string()
                    .map_err(|raw| raw.to_string_lossy().into_owned());
                children.push((name, kind));
            }
            Ok((stat, children))
        }
    }
}

/// Files larger than this are hashed by libgit2 in chunks instead of being
/// read into memory whole (a stray 50 MB file must not cost 50 MB).
pub(super) const HASH_IN_MEMORY_MAX: u64 = 1 << 20;

/// `open` with `RESOLVE_NO_SYMLINKS` or `O_NOFOLLOW` met a link.
const ELOOP: i32 = 40;
/// `open` with `O_DIRECTORY` met something else.
const ENOTDIR: i32 = 20;

/// Files up to this size are kept in memory by the listing that hashed them,
/// so the engine's read of them costs no system call.
pub(super) const KEEP_MAX: u64 = 64 << 10;

/// A regular file of the listing, hashed: its blob id, its stat (taken on the
/// open file, after the listing's), and its bytes if it is small.
pub(super) struct Hashed {
    pub(super) id: ContentId,
    pub(super) stat: Stat,
    pub(super) data: Option<Box<[u8]>>,
    /// As long as its stat said: the stamp may be cached (if settled).
    pub(super) complete: bool,
}

/// Hashes a regular file of the listing: one open, one `stat` of the open
/// file, the reads of its size (as Git reads a file it hashes), one close.
pub(super) fn hash_file(root: &sys::Root, relative: &str) -> Result<Hashed, RepoError> {
    let io_error = |source| RepoError::Io {
        path: relative.to_owned(),
        source,
    };
    let mut file = root.open_file(relative).map_err(|e| {
        // A link put in place of the listed file.
        if e.raw_os_error() == Some(ELOOP) {
            changed_while_listing(relative)
        } else {
            io_error(e)
        }
    })?;
    let stat = sys::Root::fstat(&file).map_err(io_error)?;
    if stat.kind != StatKind::File {
        return Err(changed_while_listing(relative));
    }
    let len = stat.stamp.len;
    if len > HASH_IN_MEMORY_MAX {
        let id = hash_large_file(&file, len, relative)?;
        return Ok(Hashed {
            id,
            stat,
            data: None,
            complete: true,
        });
    }
    let size = usize::try_from(len).unwrap_or(0);
    let mut data = vec![0u8; size];
    let mut filled = 0;
    while filled < size {
        match file.read(data.get_mut(filled..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    // Shorter than its stat said: it changed meanwhile; the bytes read are
    // what is hashed, and the stamp is not cached.
    let complete = filled == size;
    data.truncate(filled);
    let id = ContentId::of_file(relative, &data)?;
    let data = (len <= KEEP_MAX).then(|| data.into_boxed_slice());
    Ok(Hashed {
        id,
        stat,
        data,
        complete,
    })
}

/// Hashes a file too large to hold, in parts of 64 KiB, as Git does: the
/// length of its `stat` in the header, and an error when the bytes read are
/// not that many (it changed meanwhile). The file is the one already opened
/// (safely, see `sys::Root::open_file`): one swapped in meanwhile is not read.
pub(super) fn hash_large_file(
    mut file: &fs::File,
    len: u64,
    relative: &str,
) -> Result<ContentId, RepoError> {
    let io_error = |source| RepoError::Io {
        path: relative.to_owned(),
        source,
    };
    let mut hasher = BlobHasher::new(len);
    let mut buffer = vec![0; 64 << 10];
    let mut read = 0u64;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                read += n as u64;
                if read > len {
                    return Err(changed_while_listing(relative));
                }
                hasher.update(&buffer[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    if read != len {
        return Err(changed_while_listing(relative));
    }
    hasher.finish(relative)
}

/// A run of the walk whose thread panicked (see `parallel::in_runs`).
fn thread_panicked(path: &str, doing: &str) -> RepoError {
    RepoError::Io {
        path: path.to_owned(),
        source: io::Error::other(format!("a {doing} thread panicked")),
    }
}

pub(super) fn changed_while_listing(relative: &str) -> RepoError {
    RepoError::Io {
        path: relative.to_owned(),
        source: io::Error::other("it changed while the directory was being listed; list it again"),
    }
}

/// The last listing of one directory, kept by a [`DirReader`].
#[derive(Default)]
pub(super) struct CachedDir {
    /// The directory's stamp when `children` was read; `None` when it was too
    /// recent to trust, so the next listing reads the directory again.
    stamp: Option<Stamp>,
    /// Sorted by name.
    children: Vec<CachedChild>,
    /// `children` was read at least once.
    listed: bool,
    /// Watched (see `repo::watch`) since before the current listing's look at it.
    watched: bool,
    /// For a machine directory: the id of its listing (see [`subtree_id`]).
    subtree: Option<ContentId>,
}

/// `machines/<name>`.
fn is_machine_dir(path: &str) -> bool {
    path.strip_prefix(MACHINES_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// An id of everything below a directory (`listed`: its entry, then its
/// descendants): the blob id of a text naming each descendant's relative
/// path, kind, size and content id, so that equal ids mean equal entries, as
/// for a Git tree id. `None` when a link is among them (its target may lie
/// outside the directory).
fn subtree_id(dir: &str, listed: &[Entry]) -> Option<ContentId> {
    let mut text = Vec::with_capacity(listed.len() * 64);
    for entry in listed.iter().skip(1) {
        let kind = match &entry.kind {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink { .. } => return None,
            EntryKind::Other { what } => what.as_str(),
        };
        let relative = entry.path.get(dir.len()..).unwrap_or_default();
        text.extend_from_slice(relative.as_bytes());
        text.push(0);
        text.extend_from_slice(kind.as_bytes());
        text.push(0);
        // Fixed widths after a tag byte: no two listings give one text.
        match entry.size {
            Some(size) => {
                text.push(1);
                text.extend_from_slice(&size.to_le_bytes());
            }
            None => text.push(0),
        }
        match entry.id {
            Some(id) => {
                text.push(1);
                text.extend_from_slice(id.as_bytes());
            }
            None => text.push(0),
        }
    }
    ContentId::of_bytes(&text).ok()
}

pub(super) struct CachedChild {
    /// The file name (lossily converted when it is not UTF-8, see [`CachedNode::Other`]).
    name: String,
    node: CachedNode,
}

pub(super) enum CachedNode {
    Dir(CachedDir),
    /// The stamp and blob id of the file when it was last hashed, if settled.
    File(Option<(Stamp, ContentId)>),
    Symlink,
    /// Not walked or read: a FIFO, socket or device, or a name that is not
    /// UTF-8 (it could not be named in a finding, nor read back).
    Other(&'static str),
}

pub(super) const NOT_UTF8: &str = "file whose name is not valid UTF-8";
pub(super) const SPECIAL_FILE: &str = "special file (FIFO, socket or device)";

impl CachedNode {
    fn new(kind: StatKind) -> CachedNode {
        match kind {
            StatKind::Dir => CachedNode::Dir(CachedDir::default()),
            StatKind::File => CachedNode::File(None),
            StatKind::Symlink => CachedNode::Symlink,
            StatKind::Other => CachedNode::Other(SPECIAL_FILE),
        }
    }

    fn kind(&self) -> Option<StatKind> {
        match self {
            CachedNode::Dir(_) => Some(StatKind::Dir),
            CachedNode::File(_) => Some(StatKind::File),
            CachedNode::Symlink => Some(StatKind::Symlink),
            CachedNode::Other(_) => None,
        }
    }
}

/// Everything a [`DirReader`] remembers between listings.
#[derive(Default)]
pub(super) struct DirCache {
    /// The top-level entries of [`TOP_LEVEL`] (stat-ed every time), by name.
    top: Vec<CachedChild>,
    /// Links to files inside the repository: target path -> stamp and id.
    link_targets: FxHashMap<String, (Stamp, ContentId)>,
    /// Entries of the last listing, to size the next one.
    last_len: usize,
    /// Listings made; the second one starts watching (a reader listed twice
    /// is listed again).
    listings: u64,
    watcher: Option<watch::Watcher>,
    /// Watching failed (no inotify, the watch limit): stats only.
    unwatchable: bool,
    /// When a listing last compared every stamp (see [`RECHECK_EVERY`]).
    last_full_check: Option<Instant>,
}

/// A watched reader still compares every stamp this often: a change no event
/// reports (a write through a hard link from outside the tree, a write into
/// a mapped file) is seen within it.
pub(super) const RECHECK_EVERY: Duration = Duration::from_secs(60);

/// Forgets every directory's watch (the watcher is gone).
fn unwatch(children: &mut [CachedChild]) {
    for child in children {
        if let CachedNode::Dir(dir) = &mut child.node {
            dir.watched = false;
            unwatch(&mut dir.children);
        }
    }
}

/// Directories with at least this many children are walked on several threads.
pub(super) const PARALLEL_MIN_CHILDREN: usize = 64;
/// More threads do not help: the walk is bound by `stat` system calls.
pub(super) const MAX_WALK_THREADS: usize = 4;
/// Runs per thread of a parallel directory walk: small enough that a run
/// slowed by the disk leaves the others to the idle threads.
const WALK_RUNS_PER_THREAD: usize = 8;

/// Reads [`Snapshot`]s of one directory (any work tree, Git or not), keeping a
/// stat cache: the last listing of each directory and the blob id of each file,
/// keyed by `(size, mtime, ctime, inode)`, so that listing again after a
/// one-file change costs one `stat` per entry and re-hashes only that file.
pub struct DirReader {
    root: PathBuf,
    canonical_root: PathBuf,
    /// Held for a whole listing: concurrent listings wait and then find it warm.
    cache: Mutex<DirCache>,
}

impl fmt::Debug for DirReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirReader")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl DirReader {
    /// A reader of the directory `root`, which must exist.
    pub fn new(root: impl AsRef<Path>) -> Result<DirReader, RepoError> {
        let root = root.as_ref().to_owned();
        let canonical_root = fs::canonicalize(&root).map_err(|source| RepoError::Dir {
            path: root.clone(),
            source,
        })?;
        if !canonical_root.is_dir() {
            return Err(RepoError::Dir {
                path: root,
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        Ok(DirReader {
            root,
            canonical_root,
            cache: Mutex::default(),
        })
    }

    /// The directory as given.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Lists the directory now. Files are hashed unless the stat cache knows them.
    pub fn snapshot(&self) -> Result<Snapshot, RepoError> {
        self.list(false)
    }

    /// [`DirReader::snapshot`] for a reader used once: no stamps are taken for
    /// a cache nothing will ask again (one system call per directory fewer).
    pub fn snapshot_once(self) -> Result<Snapshot, RepoError> {
        self.list(true)
    }

    fn list(&self, once: bool) -> Result<Snapshot, RepoError> {
        let now_ns = epoch_nanos(SystemTime::now());
        // Opened per listing, not kept: a root replaced meanwhile (a fresh
        // clone in the same place) is then seen.
        let root = sys::Root::open(&self.canonical_root).map_err(|source| RepoError::Dir {
            path: self.root.clone(),
            source,
        })?;
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let DirCache {
            top,
            link_targets,
            last_len,
            listings,
            watcher,
            unwatchable,
            last_full_check,
        } = &mut *cache;
        // What changed since the last listing, when the watches can say.
        let mut changed = None;
        if !once {
            *listings += 1;
            if watcher.is_none() && !*unwatchable && *listings >= 2 {
                *watcher = watch::Watcher::new(&self.canonical_root);
                *unwatchable = watcher.is_none();
            }
            let recheck = last_full_check.is_none_or(|at| at.elapsed() >= RECHECK_EVERY);
            if let Some(active) = watcher.as_mut() {
                match active.drain() {
                    watch::Changes::Paths(_) if recheck => {}
                    watch::Changes::Paths(paths) => changed = Some(paths),
                    watch::Changes::Unknown => {}
                    watch::Changes::Broken => {
                        // Watched again from the next listing on.
                        *watcher = None;
                        unwatch(top);
                    }
                }
            }
        }
        let walk = DirWalk {
            root: &root,
            canonical_root: &self.canonical_root,
            link_targets: Mutex::new(std::mem::take(link_targets)),
            kept: Mutex::default(),
            now_ns,
            stamps: !once,
            watcher: watcher.as_ref(),
            changed: changed.as_ref(),
            added: Mutex::default(),
            watch_failed: AtomicBool::new(false),
        };
        let mut entries = Vec::with_capacity(*last_len);
        let mut old_top = std::mem::take(top).into_iter().peekable();
        let mut path = String::with_capacity(128);
        let mut walked: Result<(), RepoError> = Ok(());
        for name in TOP_LEVEL {
            let cached = old_top.next_if(|c| c.name == name);
            let stat = match root.lstat(name) {
                Ok(stat) => stat,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(RepoError::Io {
                        path: name.to_owned(),
                        source,
                    });
                }
            };
            let node = match cached {
                Some(child) if child.node.kind() == Some(stat.kind) => child.node,
                _ => CachedNode::new(stat.kind),
            };
            let mut child = CachedChild {
                name: name.to_owned(),
                node,
            };
            path.clear();
            path.push_str(name);
            let result = walk.visit(&mut path, &mut child.node, Some(stat), false, &mut entries);
            top.push(child);
            if let Err(error) = result {
                walked = Err(error);
                break;
            }
        }
        if walked.is_ok() && once {
            walked = walk.hash_deferred(&mut entries);
        }
        let added = walk
            .added
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let watch_failed = walk.watch_failed.into_inner();
        *link_targets = walk
            .link_targets
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let kept = walk
            .kept
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        // A watch whose directory the cache lost track of (a failed walk, the
        // watch limit) would make a later listing trust a stale directory.
        if watch_failed || walked.is_err() {
            *unwatchable |= watch_failed;
            *watcher = None;
            unwatch(top);
        } else if let Some(active) = watcher.as_mut() {
            active.record(added);
        }
        if walked.is_ok() && !once && changed.is_none() {
            *last_full_check = Some(Instant::now());
        }
        walked?;
        *last_len = entries.len();
        drop(cache);
        debug_assert!(entries.is_sorted_by(|a, b| path_order(&a.path, &b.path).is_le()));
        // Directories have no content id: a machine directory's subtree id
        // rode on its entry through the walk (see `DirWalk::dir`).
        let mut subtrees = FxHashMap::default();
        if !once {
            for (index, entry) in entries.iter_mut().enumerate() {
                if matches!(entry.kind, EntryKind::Dir)
                    && let Some(id) = entry.id.take()
                {
                    subtrees.insert(index, id);
                }
            }
        }
        Ok(Snapshot::new(
            SnapshotSource::Dir {
                root: self.canonical_root.clone(),
            },
            entries,
            None,
        )
        .with_kept(kept)
        .with_subtrees(subtrees))
    }
}

/// Threads a listing uses: the machine's cores, at most [`MAX_WALK_THREADS`].
fn walk_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_WALK_THREADS)
}

/// Whether anything at or below a path changed since the last listing (a
/// directory read again, a file hashed again, any link).
type Changed = bool;

/// One listing in progress. `Sync`: threads share it.
pub(super) struct DirWalk<'a> {
    root: &'a sys::Root,
    canonical_root: &'a Path,
    link_targets: Mutex<FxHashMap<String, (Stamp, ContentId)>>,
    /// The small files hashed by this listing, by blob id (see [`KEEP_MAX`]).
    kept: Mutex<FxHashMap<ContentId, Box<[u8]>>>,
    now_ns: i64,
    /// Whether directories' stamps are taken for the stat cache (not by a
    /// listing made once: one `statx` per directory saved).
    stamps: bool,
    /// Watches directories as they are listed (see `repo::watch`).
    watcher: Option<&'a watch::Watcher>,
    /// What changed since the last listing, when the watches say exactly:
    /// then a watched directory or file not named here takes no `stat`.
    changed: Option<&'a FxHashSet<String>>,
    /// Watches added by this listing: (descriptor, directory).
    added: Mutex<Vec<(i32, String)>>,
    watch_failed: AtomicBool,
}

impl DirWalk<'_> {
    /// Lists `path` (root-relative) into `out`, a directory's children in name
    /// order so that entries come out sorted component-wise without a sort.
    /// `stat` is passed when the caller already has it.
    /// `in_trusted` when the parent directory was watched since before this
    /// listing and `changed` does not name it: then only `changed` says
    /// whether a child file changed.
    fn visit(
        &self,
        path: &mut String,
        node: &mut CachedNode,
        stat: Option<Stat>,
        in_trusted: bool,
        out: &mut Vec<Entry>,
    ) -> Result<Changed, RepoError> {
        match node {
            CachedNode::Dir(dir) => self.dir(path, dir, stat, out),
            CachedNode::File(cached) => {
                let (entry, changed) = self.file(path, cached, stat, in_trusted)?;
                out.push(entry);
                Ok(changed)
            }
            CachedNode::Symlink => {
                let entry = self.link(path)?;
                out.push(entry);
                // Its target may be anywhere: never "unchanged".
                Ok(true)
            }
            CachedNode::Other(what) => {
                out.push(Entry {
                    path: path.clone(),
                    kind: EntryKind::Other {
                        what: (*what).to_owned(),
                    },
                    size: None,
                    id: None,
                });
                Ok(false)
            }
        }
    }

    fn lstat(&self, path: &str, expected: StatKind) -> Result<Stat, RepoError> {
        let stat = self.root.lstat(path).map_err(|source| RepoError::Io {
            path: path.to_owned(),
            source,
        })?;
        // The parent's listing said otherwise: it was replaced meanwhile.
        if stat.kind != expected {
            return Err(changed_while_listing(path));
        }
        Ok(stat)
    }

    fn dir(
        &self,
        path: &mut String,
        dir: &mut CachedDir,
        stat: Option<Stat>,
        out: &mut Vec<Entry>,
    ) -> Result<Changed, RepoError> {
        // Watched first, then compared or read: a change from here on is an
        // event for the next listing.
        let was_watched = dir.watched;
        let named = self.changed.is_some_and(|c| c.contains(path.as_str()));
        if let Some(watcher) = self.watcher
            && (!was_watched || named)
        {
            match watcher.add(path) {
                Ok(wd) => {
                    dir.watched = true;
                    self.added
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((wd, path.clone()));
                }
                Err(_) => {
                    dir.watched = false;
                    self.watch_failed.store(true, Ordering::Relaxed);
                }
            }
        }
        // Watched since before this listing and named by no event: the
        // children are as listed, and a child file changed only if an event
        // names it. (A named directory may be a new one under the old name.)
        let trusted = was_watched && self.changed.is_some() && !named;
        // A directory listed before: one stat says whether its children
        // changed. One never listed is read at once (its stat comes with it).
        let unchanged = (trusted && dir.listed)
            || match dir.stamp {
                Some(stamp) => {
                    let stat = match stat {
                        Some(stat) => stat,
                        None => self.lstat(path, StatKind::Dir)?,
                    };
                    stat.stamp == stamp
                }
                None => false,
            };
        if !unchanged {
            let (stat, children) = self.read_children(path, std::mem::take(&mut dir.children))?;
            dir.children = children;
            dir.listed = true;
            dir.stamp = stat
                .map(|stat| stat.stamp)
                .filter(|stamp| stamp.is_settled(self.now_ns));
        }
        let at = out.len();
        out.push(Entry {
            path: path.clone(),
            kind: EntryKind::Dir,
            size: None,
            id: None,
        });
        let below = if dir.children.len() >= PARALLEL_MIN_CHILDREN {
            self.children_in_parallel(path, &mut dir.children, trusted, out)?
        } else {
            self.children(path, &mut dir.children, trusted, out)?
        };
        let changed = !unchanged || below;
        // A machine directory of a kept listing carries its subtree id on
        // its entry until the walk ends (`DirReader::list` moves it to the
        // snapshot): the engine then reuses the machine's analysis.
        if self.stamps && is_machine_dir(path) {
            if changed || dir.subtree.is_none() {
                dir.subtree = out.get(at..).and_then(|listed| subtree_id(path, listed));
            }
            if let Some(entry) = out.get_mut(at) {
                entry.id = dir.subtree;
            }
        }
        Ok(changed)
    }

    fn children(
        &self,
        path: &mut String,
        children: &mut [CachedChild],
        trusted: bool,
        out: &mut Vec<Entry>,
    ) -> Result<Changed, RepoError> {
        let len = path.len();
        let mut changed = false;
        for child in children {
            path.push('/');
            path.push_str(&child.name);
            let result = self.visit(path, &mut child.node, None, trusted, out);
            path.truncate(len);
            changed |= result?;
        }
        Ok(changed)
    }

    /// [`DirWalk::children`] split into consecutive runs, several per thread
    /// ([`WALK_RUNS_PER_THREAD`]); the runs' entries are concatenated in order.
    fn children_in_parallel(
        &self,
        path: &mut String,
        children: &mut [CachedChild],
        trusted: bool,
        out: &mut Vec<Entry>,
    ) -> Result<Changed, RepoError> {
        let threads = walk_threads();
        if threads < 2 {
            return self.children(path, children, trusted, out);
        }
        let base: &str = path;
        let results = parallel::in_runs(children, threads, threads * WALK_RUNS_PER_THREAD, |run| {
            let mut entries = Vec::new();
            let changed = self.children(&mut base.to_owned(), run, trusted, &mut entries)?;
            Ok((entries, changed))
        });
        let runs = results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(thread_panicked(base, "listing"))))
            .collect::<Result<Vec<_>, _>>()?;
        // One growth to the total: extending run by run doubled a vector of
        // the whole fleet's entries several times, on one thread, each time
        // in fresh pages (4-5 % of a 2,000-machine validation's CPU).
        out.reserve(runs.iter().map(|(entries, _)| entries.len()).sum());
        let mut changed = false;
        for (entries, run_changed) in runs {
            out.extend(entries);
            changed |= run_changed;
        }
        Ok(changed)
    }

    /// Reads a directory whose stamp changed (or was never known), keeping
    /// what is known of the children that are still there with the same
    /// type. Returns the directory's stat, taken before its children were
    /// read: a change in between leaves a stamp that differs next time.
    fn read_children(
        &self,
        path: &str,
        old: Vec<CachedChild>,
    ) -> Result<(Option<Stat>, Vec<CachedChild>), RepoError> {
        let io_error = |source: io::Error| {
            // A link or (unstated without the stat) a file where the parent listed a directory.
            if matches!(source.raw_os_error(), Some(ELOOP | ENOTDIR)) {
                return changed_while_listing(path);
            }
            RepoError::Io {
                path: path.to_owned(),
                source,
            }
        };
        let (stat, mut listed) = self.root.list_dir(path, self.stamps).map_err(io_error)?;
        if stat.as_ref().is_some_and(|stat| stat.kind != StatKind::Dir) {
            return Err(changed_while_listing(path));
        }
        listed.sort_unstable_by(|a, b| listed_name(&a.0).cmp(listed_name(&b.0)));
        let mut old = old.into_iter().peekable();
        let mut children = Vec::with_capacity(listed.len());
        for (name, kind) in listed {
            let (name, kind) = match name {
                Ok(name) => {
                    // The file system did not say (DT_UNKNOWN): ask.
                    let kind = match kind {
                        Some(kind) => kind,
                        None => self.lstat_kind(&format!("{path}/{name}"))?,
                    };
                    (name, Some(kind))
                }
                Err(lossy) => (lossy, None),
            };
            while old.next_if(|c| c.name < name).is_some() {}
            let kept = old.next_if(|c| c.name == name);
            let node = match (kind, kept) {
                (None, _) => CachedNode::Other(NOT_UTF8),
                (Some(kind), Some(child)) if child.node.kind() == Some(kind) => child.node,
                (Some(kind), _) => CachedNode::new(kind),
            };
            children.push(CachedChild { name, node });
        }
        Ok((stat, children))
    }

    fn lstat_kind(&self, path: &str) -> Result<StatKind, RepoError> {
        self.root
            .lstat(path)
            .map(|stat| stat.kind)
            .map_err(|source| RepoError::Io {
                path: path.to_owned(),
                source,
            })
    }

    fn file(
        &self,
        path: &str,
        cached: &mut Option<(Stamp, ContentId)>,
        stat: Option<Stat>,
        in_trusted: bool,
    ) -> Result<(Entry, Changed), RepoError> {
        // A listing made once reads its files afterwards, in batches
        // (`DirWalk::hash_deferred`).
        if !self.stamps {
            let entry = Entry {
                path: path.to_owned(),
                kind: EntryKind::File,
                size: None,
                id: None,
            };
            return Ok((entry, true));
        }
        if let Some((stamp, id)) = *cached {
            // A file hashed before: in a trusted directory and named by no
            // event, it is unchanged; else one stat says whether it changed.
            let unchanged = if in_trusted && self.changed.is_some_and(|c| !c.contains(path)) {
                true
            } else {
                let stat = match stat {
                    Some(stat) => stat,
                    None => self.lstat(path, StatKind::File)?,
                };
                stat.stamp == stamp
            };
            if unchanged {
                let entry = Entry {
                    path: path.to_owned(),
                    kind: EntryKind::File,
                    size: Some(stamp.len),
                    id: Some(id),
                };
                return Ok((entry, false));
            }
        }
        let hashed = hash_file(self.root, path)?;
        // Racy files are hashed again next time; the stamp must also match
        // the bytes hashed.
        *cached = (hashed.complete && hashed.stat.stamp.is_settled(self.now_ns))
            .then_some((hashed.stat.stamp, hashed.id));
        let entry = Entry {
            path: path.to_owned(),
            kind: EntryKind::File,
            size: Some(hashed.stat.stamp.len),
            id: Some(hashed.id),
        };
        self.keep(hashed);
        Ok((entry, true))
    }

    /// Hashes the files a listing made once left for later (no id yet): the
    /// small ones in io_uring batches, on the walk's threads, and any the
    /// batch could not read completely the plain way, which also names any
    /// error.
    fn hash_deferred(&self, entries: &mut [Entry]) -> Result<(), RepoError> {
        let mut pending: Vec<&mut Entry> = entries
            .iter_mut()
            .filter(|e| matches!(e.kind, EntryKind::File) && e.id.is_none())
            .collect();
        let threads = walk_threads();
        if threads < 2 || pending.len() < PARALLEL_MIN_CHILDREN * 4 {
            return self.hash_files(&mut sys::SmallFiles::default(), &mut pending);
        }
        // Several runs per thread, each thread's ring set up once: with one
        // run per thread, one thread read and hashed alone for a third of
        // the phase after the other had finished.
        let results = parallel::in_runs_with(
            &mut pending,
            threads,
            threads * WALK_RUNS_PER_THREAD,
            sys::SmallFiles::default,
            |ring, run| self.hash_files(ring, run),
        );
        results
            .into_iter()
            .try_for_each(|result| result.unwrap_or_else(|| Err(thread_panicked("", "reading"))))
    }

    /// [`DirWalk::hash_deferred`] of one run, on one thread (its own ring).
    fn hash_files(
        &self,
        small_files: &mut sys::SmallFiles,
        files: &mut [&mut Entry],
    ) -> Result<(), RepoError> {
        let limit = usize::try_from(KEEP_MAX).unwrap_or(usize::MAX);
        let paths: Vec<&str> = files.iter().map(|e| e.path.as_str()).collect();
        let batched = small_files.read(self.root, &paths, limit);
        drop(paths);
        let mut kept = Vec::with_capacity(files.len());
        for (index, entry) in files.iter_mut().enumerate() {
            let read = batched
                .as_ref()
                .and_then(|reads| reads.get(index))
                .and_then(Option::as_ref);
            let (id, len) = match read {
                Some(bytes) => {
                    let id = ContentId::of_file(&entry.path, bytes)?;
                    (id, bytes.len() as u64)
                }
                None => {
                    let hashed = hash_file(self.root, &entry.path)?;
                    let found = (hashed.id, hashed.stat.stamp.len);
                    self.keep(hashed);
                    found
                }
            };
            entry.id = Some(id);
            entry.size = Some(len);
            if read.is_some() {
                kept.push((index, id));
            }
        }
        // Moved, not copied: the batch's bytes become the snapshot's.
        let mut batched = batched.unwrap_or_default();
        let mut store = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        for (index, id) in kept {
            if let Some(bytes) = batched.get_mut(index).and_then(Option::take) {
                store.entry(id).or_insert_with(|| bytes.into_boxed_slice());
            }
        }
        Ok(())
    }

    /// Keeps a small file's bytes for the snapshot's reads, by blob id.
    fn keep(&self, hashed: Hashed) {
        if let (Some(data), true) = (hashed.data, hashed.complete) {
            self.kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(hashed.id)
                .or_insert(data);
        }
    }

    /// A link, resolved by [`resolve_link`] inside the root only.
    fn link(&self, relative: &str) -> Result<Entry, RepoError> {
        let absolute = self.canonical_root.join(relative);
        let target = fs::read_link(&absolute)
            .map_err(|source| RepoError::Io {
                path: relative.to_owned(),
                source,
            })?
            .to_string_lossy()
            .into_owned();
        let resolves_to = resolve_link(relative, &target, |path| self.path_kind(path));
        let (size, id) = match &resolves_to {
            LinkTarget::File(inside) => {
                let stat = self.lstat(inside, StatKind::File)?;
                let id = self.link_target_id(inside, stat.stamp)?;
                (Some(stat.stamp.len), Some(id))
            }
            _ => (None, None),
        };
        let escapes = resolves_to == LinkTarget::Outside;
        Ok(Entry {
            path: relative.to_owned(),
            kind: EntryKind::Symlink {
                target,
                escapes,
                resolves_to,
            },
            size,
            id,
        })
    }

    /// What `path` names, for [`resolve_link`].
    fn path_kind(&self, path: &str) -> PathKind {
        match self.root.lstat(path) {
            Ok(stat) => match stat.kind {
                StatKind::Dir => PathKind::Dir,
                StatKind::File => PathKind::File,
                StatKind::Other => PathKind::Other,
                StatKind::Symlink => match fs::read_link(self.canonical_root.join(path)) {
                    Ok(text) => PathKind::Link(text.to_string_lossy().into_owned()),
                    Err(_) => PathKind::Missing,
                },
            },
            Err(_) => PathKind::Missing,
        }
    }

    fn link_target_id(&self, inside: &str, stamp: Stamp) -> Result<ContentId, RepoError> {
        let known = self
            .link_targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(inside)
            .filter(|(cached, _)| *cached == stamp)
            .map(|(_, id)| *id);
        if let Some(id) = known {
            return Ok(id);
        }
        let hashed = hash_file(self.root, inside)?;
        if stamp.is_settled(self.now_ns) && hashed.complete && hashed.stat.stamp == stamp {
            self.link_targets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(inside.to_owned(), (stamp, hashed.id));
        }
        let id = hashed.id;
        self.keep(hashed);
        Ok(id)
    }
}
