//! What changed in a work tree since the last listing, from inotify: a
//! [`DirReader`] listed more than once watches every directory it lists, so
//! that the next listing re-reads only what an event names instead of taking
//! a `stat` of every file and directory (at 20,000 machines, 150,000 of them).
//!
//! A watch is added before its directory is read (or its stamp compared), so
//! a change made while listing is an event for the next listing. Whatever
//! the events cannot say exactly makes the next listing take every stat
//! again, as without watches: a full queue (`IN_Q_OVERFLOW`) for one
//! listing; a directory moved (the watches' paths are stale) or the watch
//! limit reached, for good (the watches are dropped). Every
//! `dir::RECHECK_EVERY` a listing compares every stamp anyway, for the changes
//! no event reports (a write through a hard link from outside the tree).

pub(super) use imp::{Changes, Watcher};

#[cfg(target_os = "linux")]
mod imp {
    use std::mem::MaybeUninit;
    use std::os::fd::OwnedFd;
    use std::path::{Path, PathBuf};

    use rustc_hash::{FxHashMap, FxHashSet};
    use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
    use rustix::io::Errno;

    /// What happened since the last drain.
    pub(in crate::repo) enum Changes {
        /// These root-relative paths changed: a file (its content or stat) or a
        /// directory (its list of children). Nothing else did.
        Paths(FxHashSet<String>),
        /// Unknown (the queue overflowed): compare every stamp this time.
        Unknown,
        /// The watches no longer describe the tree: drop them.
        Broken,
    }

    /// The inotify instance of one reader and its watches' directories.
    pub(in crate::repo) struct Watcher {
        fd: OwnedFd,
        root: PathBuf,
        /// Watch descriptor -> root-relative directory.
        dirs: FxHashMap<i32, String>,
    }

    const MASK: WatchFlags = WatchFlags::CREATE
        .union(WatchFlags::DELETE)
        .union(WatchFlags::MODIFY)
        .union(WatchFlags::ATTRIB)
        .union(WatchFlags::CLOSE_WRITE)
        .union(WatchFlags::MOVED_FROM)
        .union(WatchFlags::MOVED_TO)
        .union(WatchFlags::DELETE_SELF)
        .union(WatchFlags::MOVE_SELF)
        .union(WatchFlags::ONLYDIR)
        .union(WatchFlags::DONT_FOLLOW)
        .union(WatchFlags::EXCL_UNLINK);

    impl Watcher {
        /// `None` where inotify cannot be had (then every listing takes stats).
        pub(in crate::repo) fn new(root: &Path) -> Option<Watcher> {
            let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
            Some(Watcher {
                fd,
                root: root.to_owned(),
                dirs: FxHashMap::default(),
            })
        }

        /// Watches the root-relative directory `relative` (safe from several
        /// threads; record the answer with [`Watcher::record`]). The walk has
        /// just found every component a real directory, and the last one is
        /// never followed if it became a link since.
        pub(in crate::repo) fn add(&self, relative: &str) -> std::io::Result<i32> {
            Ok(inotify::add_watch(
                &self.fd,
                self.root.join(relative),
                MASK,
            )?)
        }

        pub(in crate::repo) fn record(&mut self, added: Vec<(i32, String)>) {
            self.dirs.extend(added);
        }

        /// Reads every event queued since the last call, without waiting.
        pub(in crate::repo) fn drain(&mut self) -> Changes {
            let mut buffer = vec![MaybeUninit::<u8>::uninit(); 64 << 10];
            let mut reader = inotify::Reader::new(&self.fd, &mut buffer);
            let mut changed = FxHashSet::default();
            let mut unknown = false;
            loop {
                let event = match reader.next() {
                    Ok(event) => event,
                    Err(Errno::AGAIN) => break,
                    Err(Errno::INTR) => continue,
                    Err(_) => return Changes::Broken,
                };
                let flags = event.events();
                if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                    unknown = true;
                    continue;
                }
                let Some(dir) = self.dirs.get(&event.wd()).cloned() else {
                    continue;
                };
                // A moved directory keeps its watches under their old paths.
                if flags.contains(ReadFlags::MOVE_SELF)
                    || (flags.contains(ReadFlags::ISDIR)
                        && flags.intersects(ReadFlags::MOVED_FROM | ReadFlags::MOVED_TO))
                {
                    return Changes::Broken;
                }
                match event.file_name().map(|name| name.to_string_lossy()) {
                    Some(name) if !name.is_empty() => {
                        changed.insert(format!("{dir}/{name}"));
                        if flags.intersects(
                            ReadFlags::CREATE
                                | ReadFlags::DELETE
                                | ReadFlags::MOVED_FROM
                                | ReadFlags::MOVED_TO,
                        ) {
                            changed.insert(dir);
                        }
                    }
                    _ => {
                        changed.insert(dir);
                    }
                }
                if flags.contains(ReadFlags::IGNORED) {
                    // The directory is gone (its parent's event says so too).
                    self.dirs.remove(&event.wd());
                }
            }
            if unknown {
                Changes::Unknown
            } else {
                Changes::Paths(changed)
            }
        }
    }
}

/// No inotify here: every listing compares stamps.
#[cfg(not(target_os = "linux"))]
mod imp {
    use std::path::Path;

    use rustc_hash::FxHashSet;

    pub(in crate::repo) enum Changes {
        Paths(FxHashSet<String>),
        Unknown,
        Broken,
    }

    pub(in crate::repo) struct Watcher;

    impl Watcher {
        pub(in crate::repo) fn new(_root: &Path) -> Option<Watcher> {
            None
        }

        pub(in crate::repo) fn add(&self, _relative: &str) -> std::io::Result<i32> {
            Err(std::io::Error::other("no inotify"))
        }

        pub(in crate::repo) fn record(&mut self, _added: Vec<(i32, String)>) {}

        pub(in crate::repo) fn drain(&mut self) -> Changes {
            Changes::Unknown
        }
    }
}
