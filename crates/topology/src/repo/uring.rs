//! Small files read in batches through io_uring: a listing made once opens,
//! reads and closes each file with no system call of its own (one
//! `io_uring_enter` per [`BATCH`] files), where the plain path costs four
//! (`openat2`, `statx`, `read`, `close`).
//!
//! Each file is a chain of three requests: `OPENAT2` into a slot of the
//! ring's own file table (the same flags and `RESOLVE_BENEATH` as
//! `dir::sys::Root::open_file`), `READ` of at most the caller's limit plus one
//! byte from that slot, `CLOSE` of the slot. Anything but a complete read of a
//! file within the limit — a failed open, a failed read (a directory put in
//! place of the file), an empty read (an empty file, or a FIFO put in its
//! place), a file longer than the limit — is answered `None`, and the caller
//! reads that one file the plain way, which names the error. So the listing
//! is faster, never different, with one exception it can afford: no `statx`
//! is made, so a special file that yields bytes (a FIFO with a writer)
//! swapped in for a listed regular file mid-listing is read as that file.
//! Whoever can do that can as well write the file.
//!
//! This is the workspace's second audited `unsafe` (see ARCHITECTURE.md):
//! the kernel writes into buffers and reads paths by address. Every buffer,
//! path and `open_how` of a batch lives until all of the batch's completions
//! have been reaped; if the ring fails half-way, they are leaked, not freed.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::{IoUring, opcode, squeue, types};

/// Files per submission (three requests each).
const BATCH: usize = 64;
const RING_ENTRIES: u32 = 256;

/// A slot's buffer holds at most this (plus one byte); a longer file is
/// answered `None` and read the plain way. Compose files and inventories are
/// a few KiB: buffers at the caller's 64 KiB limit were 4 MiB per ring,
/// zeroed and faulted in by every walk thread (6 % of a 2,000-machine
/// directory validation, in the kernel's `clear_page`).
const BUFFER_MAX: usize = 16 << 10;

/// `user_data`: the file's index in the batch times 4, plus the request.
const OPEN: u64 = 0;
const READ: u64 = 1;
const CLOSE: u64 = 2;

/// A ring for batched reads, and its buffers (one per slot, each the limit
/// or [`BUFFER_MAX`], whichever is smaller, plus one byte, allocated once).
pub(super) struct Reader {
    ring: IoUring,
    limit: usize,
    buffers: Vec<Box<[u8]>>,
}

impl Reader {
    /// `None` where io_uring cannot be had: an old kernel, a seccomp profile
    /// or `kernel.io_uring_disabled` refusing it, or a kernel without the
    /// requests or the sparse file table (5.19+) this needs.
    pub(super) fn new(limit: usize) -> Option<Reader> {
        let ring = IoUring::builder().build(RING_ENTRIES).ok()?;
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe).ok()?;
        let supported = [
            opcode::OpenAt2::CODE,
            opcode::Read::CODE,
            opcode::Close::CODE,
        ]
        .into_iter()
        .all(|code| probe.is_supported(code));
        if !supported {
            return None;
        }
        let slots = u32::try_from(BATCH).ok()?;
        ring.submitter().register_files_sparse(slots).ok()?;
        let limit = limit.min(BUFFER_MAX);
        Some(Reader {
            ring,
            limit,
            buffers: (0..BATCH)
                .map(|_| vec![0u8; limit + 1].into_boxed_slice())
                .collect(),
        })
    }

    /// Reads `paths` (relative to `dir`), each up to the limit (at most
    /// [`BUFFER_MAX`]), in order:
    /// the whole file, or `None` where the plain read must be made.
    /// `Err` only when the ring itself fails: the reader is then spent (its
    /// buffers are leaked, as the kernel may still write into them) and the
    /// caller reads the files the plain way.
    pub(super) fn read_all(
        &mut self,
        dir: BorrowedFd<'_>,
        paths: &[&str],
    ) -> std::io::Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(paths.len());
        for batch in paths.chunks(BATCH) {
            if let Err(error) = self.read_batch(dir, batch, &mut out) {
                std::mem::forget(std::mem::take(&mut self.buffers));
                return Err(error);
            }
        }
        Ok(out)
    }

    fn read_batch(
        &mut self,
        dir: BorrowedFd<'_>,
        paths: &[&str],
        out: &mut Vec<Option<Vec<u8>>>,
    ) -> std::io::Result<()> {
        let limit = self.limit;
        // No O_CLOEXEC: the kernel refuses it for a slot of the ring's table,
        // which no child process can inherit anyway.
        let flags = libc::O_RDONLY | libc::O_NOCTTY | libc::O_NONBLOCK;
        // Copied by the kernel when it takes each request, as the names are:
        // only the buffers are written after submission.
        let how = types::OpenHow::new()
            .flags(u64::try_from(flags).unwrap_or_default())
            .resolve(
                libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
            );
        let names: Vec<Option<CString>> = paths.iter().map(|p| CString::new(*p).ok()).collect();
        if self.buffers.len() < paths.len() {
            return Err(std::io::Error::other("io_uring reader already failed"));
        }
        let mut opened = vec![0i32; paths.len()];
        let mut read = vec![-1i32; paths.len()];
        let mut entries = Vec::with_capacity(paths.len() * 3);
        for (index, (name, buffer)) in names.iter().zip(self.buffers.iter_mut()).enumerate() {
            let Some(name) = name else {
                // A NUL in the name: no such file can exist; the plain read says so.
                opened[index] = -libc::EINVAL;
                continue;
            };
            let slot = u32::try_from(index).unwrap_or(u32::MAX);
            let Ok(target) = types::DestinationSlot::try_from_slot_target(slot) else {
                opened[index] = -libc::EINVAL;
                continue;
            };
            let tag = u64::try_from(index).unwrap_or(u64::MAX) << 2;
            let len = u32::try_from(buffer.len()).unwrap_or(u32::MAX);
            entries.push(
                opcode::OpenAt2::new(types::Fd(dir.as_raw_fd()), name.as_ptr(), &how)
                    .file_index(Some(target))
                    .build()
                    .flags(squeue::Flags::IO_LINK)
                    .user_data(tag | OPEN),
            );
            // HARDLINK: the close runs even when the read fails or is short
            // (a short read is the normal case: the buffer is larger than the file).
            entries.push(
                opcode::Read::new(types::Fixed(slot), buffer.as_mut_ptr(), len)
                    .build()
                    .flags(squeue::Flags::IO_HARDLINK)
                    .user_data(tag | READ),
            );
            entries.push(
                opcode::Close::new(types::Fixed(slot))
                    .build()
                    .user_data(tag | CLOSE),
            );
        }
        let expected = entries.len();
        // SAFETY: every pointer in `entries` (names, `how`, buffers) stays
        // valid and unmoved until all `expected` completions are reaped
        // below; on a failure after this point the buffers are leaked
        // (`read_all`), and the names and `how` were copied by the kernel
        // when it took the requests, or never will be (the ring is dropped).
        let pushed = unsafe { self.ring.submission().push_multiple(&entries) };
        if pushed.is_err() {
            // Nothing was queued (push_multiple is all or nothing).
            return Err(std::io::Error::other("io_uring submission queue full"));
        }
        let mut reaped = 0;
        while reaped < expected {
            match self.ring.submit_and_wait(expected - reaped) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            for completion in self.ring.completion() {
                reaped += 1;
                let index = usize::try_from(completion.user_data() >> 2).unwrap_or(usize::MAX);
                match completion.user_data() & 3 {
                    OPEN => {
                        if let Some(slot) = opened.get_mut(index) {
                            *slot = completion.result().min(0);
                        }
                    }
                    READ => {
                        if let Some(slot) = read.get_mut(index) {
                            *slot = completion.result();
                        }
                    }
                    _ => {}
                }
            }
        }
        out.extend(self.buffers.iter().zip(opened.iter().zip(&read)).map(
            |(buffer, (&open, &read))| match usize::try_from(read) {
                // Empty: an empty file, or a FIFO without a writer put in
                // place of the listed file; the plain read tells which.
                Ok(len) if open == 0 && len > 0 && len <= limit => {
                    Some(buffer.get(..len).unwrap_or_default().to_vec())
                }
                _ => None,
            },
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    /// Where the kernel allows io_uring (it does on the project's machines;
    /// elsewhere the listing reads the plain way, and so does this test):
    /// whole files come back, and everything the plain read must judge
    /// (missing, empty, a directory, a FIFO, a link, outside the root, past
    /// the limit) is `None`.
    #[test]
    fn whole_files_or_none_for_the_plain_read() {
        let dir = tempfile::TempDir::new().unwrap();
        let root = dir.path();
        std::fs::write(root.join("small"), b"gpus: 8\n").unwrap();
        std::fs::write(root.join("empty"), b"").unwrap();
        std::fs::write(root.join("at-limit"), vec![b'x'; 100]).unwrap();
        std::fs::write(root.join("past-limit"), vec![b'x'; 101]).unwrap();
        std::fs::create_dir(root.join("dir")).unwrap();
        std::os::unix::fs::symlink("small", root.join("link")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        let fd = rustix::fs::open(
            root,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let Some(mut reader) = Reader::new(100) else {
            eprintln!("io_uring is not available here; nothing to check");
            return;
        };
        let names = [
            "small",
            "empty",
            "at-limit",
            "past-limit",
            "missing",
            "dir",
            "link",
            "fifo",
            "../escape",
        ];
        // Several batches, so that slots are reused.
        let paths: Vec<&str> = names.iter().cycle().take(BATCH * 2 + 5).copied().collect();
        let reads = reader.read_all(fd.as_fd(), &paths).unwrap();
        assert_eq!(reads.len(), paths.len());
        for (path, read) in paths.iter().zip(&reads) {
            let expected: Option<Vec<u8>> = match *path {
                "small" => Some(b"gpus: 8\n".to_vec()),
                "at-limit" => Some(vec![b'x'; 100]),
                _ => None,
            };
            assert_eq!(read, &expected, "{path}");
        }
        // Past the buffer's size, though within the caller's limit: the
        // plain read takes it.
        std::fs::write(root.join("large"), vec![b'y'; BUFFER_MAX + 1]).unwrap();
        std::fs::write(root.join("fits"), vec![b'y'; BUFFER_MAX]).unwrap();
        let mut reader = Reader::new(64 << 10).unwrap();
        let reads = reader.read_all(fd.as_fd(), &["large", "fits"]).unwrap();
        assert_eq!(reads, [None, Some(vec![b'y'; BUFFER_MAX])]);
    }
}
