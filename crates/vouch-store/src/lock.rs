//! Advisory file locks (flock): shared for writers, exclusive for GC, and per pack file so
//! GC never sweeps a pack a live writer is still filling.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::StoreError;
use crate::error::IoContext;

/// Held until dropped (closing the descriptor releases the lock).
pub(crate) struct FileLock {
    file: File,
}

fn flock(file: &File, op: libc::c_int) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor we own; no memory is shared with the kernel.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::WouldBlock { Ok(false) } else { Err(err) }
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).at(path)
}

impl FileLock {
    /// Shared lock; waits while GC holds it exclusively.
    pub(crate) fn shared(path: &Path) -> Result<FileLock, StoreError> {
        let f = open_lock_file(path)?;
        flock(&f, libc::LOCK_SH).at(path)?;
        Ok(FileLock { file: f })
    }

    /// Exclusive lock without waiting: GC refuses to run beside an import.
    pub(crate) fn exclusive(path: &Path) -> Result<FileLock, StoreError> {
        let f = open_lock_file(path)?;
        if !flock(&f, libc::LOCK_EX | libc::LOCK_NB).at(path)? {
            return Err(StoreError::Locked(
                "an import or pin is running on this store; run gc again when it ends".into(),
            ));
        }
        Ok(FileLock { file: f })
    }

    /// Exclusive lock on an already-open file (a pack being written).
    pub(crate) fn on_file(file: &File, path: &Path) -> Result<FileLock, StoreError> {
        let dup = file.try_clone().at(path)?;
        if !flock(&dup, libc::LOCK_EX | libc::LOCK_NB).at(path)? {
            return Err(StoreError::Locked(format!("{} is locked by another writer", path.display())));
        }
        Ok(FileLock { file: dup })
    }

    /// Try to lock an existing file exclusively; `None` when someone else holds it.
    pub(crate) fn try_exclusive_existing(path: &Path) -> Result<Option<FileLock>, StoreError> {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Io { path: path.to_path_buf(), source: e }),
        };
        Ok(flock(&f, libc::LOCK_EX | libc::LOCK_NB).at(path)?.then_some(FileLock { file: f }))
    }
}

/// Bytes of the token at the start of `gc.lock`.
const TOKEN_LEN: usize = 16;

impl FileLock {
    /// The GC token in the locked file (`gc.lock`): random bytes that garbage collection
    /// replaces, while it holds the lock exclusively, before it removes anything. Two reads
    /// under the shared lock that find the same token mean no block was removed in between,
    /// so what was known to be stored still is. A file without a token (new, or re-created)
    /// gets one here; two writers racing to do that only make the token change, which is safe.
    pub(crate) fn gc_token(&self, path: &Path) -> Result<[u8; TOKEN_LEN], StoreError> {
        use std::os::unix::fs::FileExt;
        let file = &self.file;
        let mut token = [0u8; TOKEN_LEN];
        let mut got = 0;
        while got < TOKEN_LEN {
            match file.read_at(&mut token[got..], got as u64).at(path)? {
                0 => break,
                n => got += n,
            }
        }
        if got == TOKEN_LEN {
            return Ok(token);
        }
        self.new_gc_token(path)
    }

    /// Replace the GC token with fresh random bytes (GC, under the exclusive lock; or a file
    /// that had none).
    pub(crate) fn new_gc_token(&self, path: &Path) -> Result<[u8; TOKEN_LEN], StoreError> {
        use std::os::unix::fs::FileExt;
        let mut token = [0u8; TOKEN_LEN];
        getrandom::fill(&mut token)
            .map_err(|e| StoreError::Io { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) })?;
        self.file.write_all_at(&token, 0).at(path)?;
        Ok(token)
    }
}
