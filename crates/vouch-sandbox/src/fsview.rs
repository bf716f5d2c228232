//! The deterministic view of the filesystem: what a guest could otherwise learn about the host
//! through directory order and timestamps.
//!
//! - `fd_readdir` lists `.` and `..` first, then entries sorted by name (bytes), whatever order
//!   the host filesystem keeps them in (ext4 hashes names with a per-filesystem seed; tmpfs
//!   returns newest first). The listing is gathered by calling wasmtime-wasi's `fd_readdir`
//!   with the guest's own buffer as scratch space (wasmtime-wasi itself re-reads the whole
//!   directory on every call), sorted, and kept in the store for the calls
//!   that continue it (cookie > 0 on the same descriptor), so listing a directory of n entries
//!   costs what wasmtime-wasi's implementation costs. If the guest's buffer cannot hold even
//!   one entry, that call falls back to host order.
//! - `fd_filestat_get` / `path_filestat_get` report every non-zero timestamp as
//!   [`DETERMINISTIC_EPOCH_SECS`](crate::DETERMINISTIC_EPOCH_SECS).
//!
//! Not normalised: inode numbers (`st_ino`, `d_ino`), which wasmtime-wasi already replaces by a
//! hash; programs rarely print them, and zeroing them would make every file "the same file".
//! In non-deterministic mode all of this is wasmtime-wasi's behaviour unchanged.

use wasmtime::Caller;
use wasmtime_wasi::p1::wasi_snapshot_preview1 as p1;

use crate::DETERMINISTIC_EPOCH_SECS;
use crate::run::State;
use crate::shims::{self, ERRNO_FAULT, ERRNO_SUCCESS};

/// `dirent` header: d_next u64, d_ino u64, d_namlen u32, d_type u8, 3 bytes padding.
const DIRENT_SIZE: usize = 24;
/// `filestat`: atim, mtim and ctim (u64 ns) are at these offsets.
const FILESTAT_TIMES: [usize; 3] = [40, 48, 56];
const FILESTAT_SIZE: usize = 64;

/// A directory listing in the order the guest sees it, for continuing calls.
pub(crate) struct Listing {
    fd: i32,
    entries: Vec<Entry>,
}

struct Entry {
    ino: u64,
    kind: u8,
    name: Vec<u8>,
}

/// `fd_readdir(fd, buf, buf_len, cookie, bufused_out) -> errno`.
pub(crate) fn fd_readdir(
    mut caller: Caller<'_, State>,
    (fd, buf, buf_len, cookie, bufused): (i32, i32, i32, i64, i32),
) -> wasmtime::Result<i32> {
    if !caller.data().clock.is_virtual() {
        return original(&mut caller, fd, buf, buf_len, cookie, bufused);
    }
    let cookie = cookie as u64;
    let cached = match caller.data_mut().listing.take() {
        Some(l) if cookie > 0 && l.fd == fd => Some(l),
        _ => None,
    };
    let listing = match cached {
        Some(listing) => listing,
        None => match collect(&mut caller, fd, buf, buf_len, bufused)? {
            Collected::Entries(mut entries) => {
                let dots = entries.iter().take_while(|e| e.name == b"." || e.name == b"..").count();
                entries[dots..].sort_by(|a, b| a.name.cmp(&b.name));
                Listing { fd, entries }
            }
            Collected::Errno(errno) => return Ok(errno),
            Collected::BufferTooSmall => return original(&mut caller, fd, buf, buf_len, cookie as i64, bufused),
        },
    };

    // Write the entries from `cookie` on, exactly as wasmtime-wasi would: each header then its
    // name, the last one cut at the end of the buffer.
    let memory = shims::memory(&mut caller)?;
    let cap = buf_len as u32 as usize;
    let Some(out) = shims::guest_slice_mut(memory.data_mut(&mut caller), buf, cap) else {
        return Ok(ERRNO_FAULT);
    };
    let mut used = 0;
    let start = usize::try_from(cookie).unwrap_or(usize::MAX);
    for (index, entry) in listing.entries.iter().enumerate().skip(start) {
        let mut record = Vec::with_capacity(DIRENT_SIZE + entry.name.len());
        record.extend_from_slice(&(index as u64 + 1).to_le_bytes());
        record.extend_from_slice(&entry.ino.to_le_bytes());
        record.extend_from_slice(&(entry.name.len() as u32).to_le_bytes());
        record.extend_from_slice(&[entry.kind, 0, 0, 0]);
        record.extend_from_slice(&entry.name);
        let n = record.len().min(cap - used);
        out[used..used + n].copy_from_slice(&record[..n]);
        used += n;
        if used == cap {
            break;
        }
    }
    caller.data_mut().listing = Some(listing);
    shims::write_u32(memory.data_mut(&mut caller), bufused, used as u32)
}

/// wasmtime-wasi's `fd_readdir` (host order).
fn original(
    caller: &mut Caller<'_, State>,
    fd: i32,
    buf: i32,
    len: i32,
    cookie: i64,
    used: i32,
) -> wasmtime::Result<i32> {
    shims::with_wasi(caller, |ctx, mem| shims::in_tokio(p1::fd_readdir(ctx, mem, fd, buf, len, cookie, used)))?
}

enum Collected {
    Entries(Vec<Entry>),
    Errno(i32),
    BufferTooSmall,
}

/// The whole listing of `fd` in host order, read through wasmtime-wasi's `fd_readdir` using the
/// guest's buffer as scratch space (its contents are unspecified until the call returns).
fn collect(
    caller: &mut Caller<'_, State>,
    fd: i32,
    buf: i32,
    buf_len: i32,
    bufused: i32,
) -> wasmtime::Result<Collected> {
    let memory = shims::memory(caller)?;
    let cap = buf_len as u32 as usize;
    let mut entries = Vec::new();
    let mut next: u64 = 0;
    loop {
        let errno = original(caller, fd, buf, buf_len, next as i64, bufused)?;
        if errno != ERRNO_SUCCESS {
            return Ok(Collected::Errno(errno));
        }
        let data = memory.data(&*caller);
        let Some(used) = shims::guest_slice(data, bufused, 4).map(|b| shims::u32_at(b, 0) as usize) else {
            return Ok(Collected::Errno(ERRNO_FAULT));
        };
        let Some(batch) = shims::guest_slice(data, buf, used.min(cap)) else {
            return Ok(Collected::Errno(ERRNO_FAULT));
        };
        let mut at = 0;
        let mut progressed = false;
        while at + DIRENT_SIZE <= batch.len() {
            let namlen = shims::u32_at(batch, at + 16) as usize;
            let Some(name) = batch.get(at + DIRENT_SIZE..at + DIRENT_SIZE + namlen) else {
                break; // cut at the end of the buffer: read it again in the next batch
            };
            entries.push(Entry { ino: shims::u64_at(batch, at + 8), kind: batch[at + 20], name: name.to_vec() });
            next = shims::u64_at(batch, at);
            at += DIRENT_SIZE + namlen;
            progressed = true;
        }
        if used < cap {
            return Ok(Collected::Entries(entries)); // a short batch is the end of the directory
        }
        if !progressed {
            return Ok(Collected::BufferTooSmall);
        }
    }
}

/// After a successful `*_filestat_get` in deterministic mode, replaces the host's timestamps.
pub(crate) fn fix_filestat(mut caller: Caller<'_, State>, errno: i32, buf: i32) -> wasmtime::Result<i32> {
    if errno != ERRNO_SUCCESS || !caller.data().clock.is_virtual() {
        return Ok(errno);
    }
    let memory = shims::memory(&mut caller)?;
    let Some(stat) = shims::guest_slice_mut(memory.data_mut(&mut caller), buf, FILESTAT_SIZE) else {
        return Ok(ERRNO_FAULT);
    };
    for at in FILESTAT_TIMES {
        // Zero means "unknown" (stdio has no times); keep it.
        if shims::u64_at(stat, at) != 0 {
            stat[at..at + 8].copy_from_slice(&(DETERMINISTIC_EPOCH_SECS * 1_000_000_000).to_le_bytes());
        }
    }
    Ok(errno)
}
