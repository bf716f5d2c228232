//! One run: the store, its WASI context and limiter, the host's checks during the run (at fuel
//! yields, or in the epoch callback without fuel metering), and turning whatever happened into
//! an [`Outcome`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use chacha20::ChaCha20Rng;
use chacha20::rand_core::SeedableRng as _;
use sha2::{Digest, Sha256};
use wasmtime::{CallHook, PoolConcurrencyLimitError, ResourceLimiter, Store, Trap, UpdateDeadline, WasmBacktrace};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::clocks::GuestClock;
use crate::config::FUEL_YIELD_INTERVAL;
use crate::fsview::Listing;
use crate::outputs::{self, OutputSize};
use crate::sandbox::{Inner, ModuleKind, PreparedInner};
use crate::{Determinism, Limits, Outcome, Resource, RunResult, RunSpec, SandboxError, Usage};

/// The fuel of a run without a fuel limit: 2^63 - 1 units, centuries of execution. (Not
/// `u64::MAX`: wasmtime keeps active fuel in an `i64` and `get_fuel` saturates, which would
/// make the consumed fuel unreadable.)
const UNLIMITED_FUEL: u64 = i64::MAX as u64;

/// Per-run store data.
pub(crate) struct State {
    wasi: WasiP1Ctx,
    limiter: Limiter,
    /// The guest's clocks (read by the `poll_oneoff` shim).
    pub(crate) clock: GuestClock,
    /// When the wall-clock limit expires.
    pub(crate) deadline: Instant,
    /// Why the host stopped the guest, when it did.
    pub(crate) stop: Option<Stop>,
    /// The directory listing a deterministic `fd_readdir` is in the middle of.
    pub(crate) listing: Option<Listing>,
}

impl State {
    pub(crate) fn wasi(&mut self) -> &mut WasiP1Ctx {
        &mut self.wasi
    }
}

/// A limit the host enforced by interrupting the guest.
pub(crate) enum Stop {
    Timeout,
    OutputLimit(OutputSize),
}

/// Enforces the memory and table limits and records the peak memory and the first refusal.
struct Limiter {
    memory_bytes: u64,
    table_elements: u64,
    tables: usize,
    memories: usize,
    instances: usize,
    /// Sum of the current sizes of all linear memories (they never shrink).
    memory_total: u64,
    memory_peak: u64,
    denied: Option<(Resource, String)>,
}

impl Limiter {
    fn new(limits: &Limits) -> Limiter {
        let count = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        Limiter {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.max_table_elements,
            tables: count(limits.max_tables),
            memories: count(limits.max_memories),
            instances: count(limits.max_instances),
            memory_total: 0,
            memory_peak: 0,
            denied: None,
        }
    }

    fn deny(&mut self, resource: Resource, message: String) -> wasmtime::Result<bool> {
        self.denied.get_or_insert((resource, message));
        Ok(false)
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let desired = desired as u64;
        if desired > self.memory_bytes {
            let limit = self.memory_bytes;
            return self
                .deny(Resource::Memory, format!("growing a memory to {desired} bytes was refused (limit {limit})"));
        }
        self.memory_total = self.memory_total - current as u64 + desired;
        self.memory_peak = self.memory_peak.max(self.memory_total);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let desired = desired as u64;
        if desired > self.table_elements {
            let limit = self.table_elements;
            return self.deny(
                Resource::TableElements,
                format!("growing a table to {desired} elements was refused (limit {limit})"),
            );
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }
    fn tables(&self) -> usize {
        self.tables
    }
    fn memories(&self) -> usize {
        self.memories
    }
}

/// Runs `prepared` once under `spec`. See [`crate::Sandbox::run`].
pub(crate) fn run(sandbox: &Inner, prepared: &PreparedInner, spec: &RunSpec) -> Result<RunResult, SandboxError> {
    let limits = &spec.limits;
    check_ceilings(sandbox, limits)?;
    if let Some(outcome) = check_static_resources(prepared, limits) {
        let outputs = measure_after(spec)?;
        return Ok(RunResult {
            outcome,
            usage: Usage {
                fuel_consumed: 0,
                wall_time: Default::default(),
                peak_memory_bytes: 0,
                growth_denied: None,
                outputs,
            },
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_truncated: false,
            stderr_truncated: false,
        });
    }

    // One more byte than kept, so that a guest that wrote more than the cap can be told apart
    // from one that wrote exactly the cap.
    let stdout = MemoryOutputPipe::new(limits.max_stdout.saturating_add(1));
    let stderr = MemoryOutputPipe::new(limits.max_stderr.saturating_add(1));
    let clock = GuestClock::new(matches!(spec.determinism, Determinism::Deterministic { .. }));
    let wasi = wasi_context(spec, &clock, &stdout, &stderr)?;

    let start = Instant::now();
    let mut store = Store::new(
        &sandbox.engine,
        State {
            wasi,
            limiter: Limiter::new(limits),
            clock,
            deadline: start + limits.wall_time,
            stop: None,
            listing: None,
        },
    );
    store.limiter(|state| &mut state.limiter);
    let initial_fuel = if sandbox.config.fuel_metering {
        let fuel = limits.fuel.unwrap_or(UNLIMITED_FUEL);
        store.set_fuel(fuel).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        fuel
    } else {
        0
    };
    let watch = Watch {
        deadline: start + limits.wall_time,
        outputs: spec.outputs.clone(),
        max_bytes: limits.max_output_bytes,
        max_entries: limits.max_output_entries,
    };
    let result = if sandbox.config.fuel_metering {
        store
            .fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL))
            .map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        // A guest that spends its time in host calls (writing files) uses little fuel between
        // yields: the limits are also checked whenever it calls the host.
        let (hook_watch, output_check) = (watch.clone(), sandbox.config.epoch_tick);
        let mut next_output_check = start + output_check;
        store.call_hook(move |mut ctx, hook| {
            if !matches!(hook, CallHook::CallingHost) {
                return Ok(());
            }
            let now = Instant::now();
            let check_outputs = now >= next_output_check;
            if check_outputs {
                next_output_check = now + output_check;
            }
            match hook_watch.check(now, check_outputs) {
                Some(stop) => {
                    ctx.data_mut().stop = Some(stop);
                    wasmtime::bail!("stopped by the host")
                }
                None => Ok(()),
            }
        });
        run_yielding(&mut store, prepared, &watch, output_check)
    } else {
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| match watch.check(Instant::now(), true) {
            Some(stop) => {
                ctx.data_mut().stop = Some(stop);
                Ok(UpdateDeadline::Interrupt)
            }
            None => Ok(UpdateDeadline::Continue(1)),
        });
        call_entry(&mut store, prepared)
    };
    let wall_time = start.elapsed();

    if let Err(e) = &result
        && e.downcast_ref::<PoolConcurrencyLimitError>().is_some()
    {
        return Err(SandboxError::Busy { slots: sandbox.config.max_concurrent_runs });
    }
    let fuel_consumed =
        if sandbox.config.fuel_metering { initial_fuel - store.get_fuel().unwrap_or(initial_fuel) } else { 0 };
    let state = store.data_mut();
    let outputs = measure_after(spec)?;
    let outcome = match (state.stop.take(), result) {
        (Some(Stop::Timeout), _) => Outcome::Timeout,
        (Some(Stop::OutputLimit(size)), _) => Outcome::OutputLimit { size },
        (None, _) if outputs.exceeds(limits.max_output_bytes, limits.max_output_entries) => {
            Outcome::OutputLimit { size: outputs }
        }
        (None, Ok(code)) => Outcome::Exited(code),
        (None, Err(e)) => classify(&e, &state.limiter),
    };
    let usage = Usage {
        fuel_consumed,
        wall_time,
        peak_memory_bytes: state.limiter.memory_peak,
        growth_denied: state.limiter.denied.as_ref().map(|(r, _)| *r),
        outputs,
    };
    drop(store); // frees the instance slot before the captured output is copied

    let (stdout, stdout_truncated) = captured(&stdout, limits.max_stdout);
    let (stderr, stderr_truncated) = captured(&stderr, limits.max_stderr);
    Ok(RunResult { outcome, usage, stdout, stderr, stdout_truncated, stderr_truncated })
}

/// The limits the host enforces by stopping the guest while it runs.
#[derive(Clone)]
struct Watch {
    deadline: Instant,
    outputs: PathBuf,
    max_bytes: u64,
    max_entries: u64,
}

impl Watch {
    /// Whether to stop the guest now: past the deadline, or (when `outputs` is true)
    /// `/outputs` over its limits.
    fn check(&self, now: Instant, outputs: bool) -> Option<Stop> {
        if now >= self.deadline {
            return Some(Stop::Timeout);
        }
        // A failed walk (the directory is being changed under it) is retried at the next check
        // and, definitively, after the run.
        if outputs
            && let Ok(size) = outputs::measure(&self.outputs, self.max_entries)
            && size.exceeds(self.max_bytes, self.max_entries)
        {
            return Some(Stop::OutputLimit(size));
        }
        None
    }
}

/// Wakes the thread driving a run (see [`run_yielding`]).
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs the entry point as an async call driven on this thread. The guest yields every
/// [`FUEL_YIELD_INTERVAL`] units of fuel (its waker already woken); at each yield the deadline is
/// checked, and `/outputs` once every `output_check`. To stop the guest the call's future is
/// dropped, which unwinds it; the reason is recorded in [`State::stop`]. (Calls into the host
/// are checked by the store's call hook, set up in [`run`].) Host functions are synchronous and
/// bound their own blocking by the deadline (see `clocks.rs`), so the only `Pending` is a fuel
/// yield; anything else parks the thread until woken or the next check is due, never spinning.
fn run_yielding(
    store: &mut Store<State>,
    prepared: &PreparedInner,
    watch: &Watch,
    output_check: Duration,
) -> wasmtime::Result<i32> {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut next_output_check = Instant::now() + output_check;
    let stop = {
        let mut call = pin!(call_entry_async(&mut *store, prepared));
        loop {
            if let Poll::Ready(result) = call.as_mut().poll(&mut cx) {
                return result;
            }
            let now = Instant::now();
            let check_outputs = now >= next_output_check;
            if check_outputs {
                next_output_check = now + output_check;
            }
            if let Some(stop) = watch.check(now, check_outputs) {
                break stop;
            }
            std::thread::park_timeout(next_output_check.min(watch.deadline).saturating_duration_since(now));
        }
    }; // dropping the future here cancels the guest
    store.data_mut().stop = Some(stop);
    wasmtime::bail!("stopped by the host")
}

/// [`call_entry`] for a store that yields.
async fn call_entry_async(store: &mut Store<State>, prepared: &PreparedInner) -> wasmtime::Result<i32> {
    let instance = prepared.pre.instantiate_async(&mut *store).await?;
    match prepared.kind {
        ModuleKind::Command => {
            instance.get_typed_func::<(), ()>(&mut *store, "_start")?.call_async(&mut *store, ()).await?;
            Ok(0)
        }
        ModuleKind::Reactor => {
            if let Ok(init) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
                init.call_async(&mut *store, ()).await?;
            }
            instance.get_typed_func::<(), i32>(&mut *store, "run")?.call_async(&mut *store, ()).await
        }
    }
}

/// Instantiates and calls the entry point; `Ok` is the exit code of a normal return.
fn call_entry(store: &mut Store<State>, prepared: &PreparedInner) -> wasmtime::Result<i32> {
    let instance = prepared.pre.instantiate(&mut *store)?;
    match prepared.kind {
        ModuleKind::Command => {
            instance.get_typed_func::<(), ()>(&mut *store, "_start")?.call(&mut *store, ())?;
            Ok(0)
        }
        ModuleKind::Reactor => {
            if let Ok(init) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
                init.call(&mut *store, ())?;
            }
            instance.get_typed_func::<(), i32>(&mut *store, "run")?.call(&mut *store, ())
        }
    }
}

/// What an error out of the guest means. The host's own interruptions (timeout, output limit)
/// were recorded in the store and are handled before this.
fn classify(error: &wasmtime::Error, limiter: &Limiter) -> Outcome {
    if let Some(exit) = error.downcast_ref::<I32Exit>() {
        return Outcome::Exited(exit.0);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => return Outcome::OutOfFuel,
        Some(Trap::StackOverflow) => return Outcome::StackOverflow,
        _ => {}
    }
    let message = trap_message(error);
    match &limiter.denied {
        Some((resource, denial)) => {
            Outcome::ResourceLimit { resource: *resource, message: format!("{denial}; then {message}") }
        }
        None => Outcome::Trapped { message },
    }
}

/// Longest trap message kept (a backtrace has at most wasmtime's default 20 frames, but a
/// host error's text is not ours to bound).
const MAX_TRAP_MESSAGE: usize = 4096;

/// The trap first ("wasm trap: integer divide by zero", with any detail wasmtime adds such as
/// the faulting address), then the Wasm backtrace. Deterministic for a given module and input:
/// frames name function indices and code offsets, never host addresses.
fn trap_message(error: &wasmtime::Error) -> String {
    let backtrace = error.downcast_ref::<WasmBacktrace>().map(|bt| bt.to_string());
    let mut message =
        error.chain().map(|e| e.to_string()).filter(|s| Some(s) != backtrace.as_ref()).collect::<Vec<_>>().join(": ");
    if let Some(bt) = &backtrace {
        message.push('\n');
        message.push_str(bt.strip_prefix("error while executing at ").unwrap_or(bt));
    }
    if message.len() > MAX_TRAP_MESSAGE {
        let mut cut = MAX_TRAP_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    message
}

/// A module whose declared sizes exceed the limits fails deterministically, before it starts.
fn check_static_resources(prepared: &PreparedInner, limits: &Limits) -> Option<Outcome> {
    let r = &prepared.resources;
    let over = |resource, message: String| Some(Outcome::ResourceLimit { resource, message });
    if r.num_memories > limits.max_memories {
        return over(
            Resource::Memories,
            format!("module defines {} memories (limit {})", r.num_memories, limits.max_memories),
        );
    }
    if r.num_tables > limits.max_tables {
        return over(Resource::Tables, format!("module defines {} tables (limit {})", r.num_tables, limits.max_tables));
    }
    if let Some(pages) = r.max_initial_memory_size {
        let bytes = pages.saturating_mul(65536);
        if bytes > limits.memory_bytes {
            return over(Resource::Memory, format!("initial memory of {bytes} bytes (limit {})", limits.memory_bytes));
        }
    }
    if let Some(elements) = r.max_initial_table_size
        && elements > limits.max_table_elements
    {
        return over(
            Resource::TableElements,
            format!("initial table of {elements} elements (limit {})", limits.max_table_elements),
        );
    }
    if limits.max_instances == 0 {
        return over(Resource::Instances, "a run needs 1 instance (limit 0)".to_owned());
    }
    None
}

fn check_ceilings(sandbox: &Inner, limits: &Limits) -> Result<(), SandboxError> {
    let c = &sandbox.config;
    let checks: [(&'static str, u64, u64); 4] = [
        ("memory_bytes", limits.memory_bytes, c.max_memory_bytes),
        ("max_table_elements", limits.max_table_elements, c.max_table_elements),
        ("max_tables", limits.max_tables.into(), c.max_tables.into()),
        ("max_memories", limits.max_memories.into(), c.max_memories.into()),
    ];
    for (limit, requested, ceiling) in checks {
        if requested > ceiling {
            return Err(SandboxError::LimitAboveCeiling { limit, requested, ceiling });
        }
    }
    if limits.fuel.is_some() && !c.fuel_metering {
        return Err(SandboxError::FuelMeteringOff);
    }
    Ok(())
}

fn wasi_context(
    spec: &RunSpec,
    clock: &GuestClock,
    stdout: &MemoryOutputPipe,
    stderr: &MemoryOutputPipe,
) -> Result<WasiP1Ctx, SandboxError> {
    let mut b = WasiCtxBuilder::new();
    // Must come before the preopens: it is captured when each directory is opened. Host calls
    // then run on the calling thread instead of tokio's blocking pool.
    b.allow_blocking_current_thread(true)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .arg(&spec.program_name)
        .args(&spec.args)
        .envs(&spec.env)
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    let (wall, monotonic) = clock.wasi_clocks();
    b.wall_clock(wall).monotonic_clock(monotonic);
    if let Determinism::Deterministic { seed } = spec.determinism {
        let stream = |n: u64| {
            let mut rng = ChaCha20Rng::from_seed(seed);
            rng.set_stream(n);
            rng
        };
        // `wasi:random/insecure-seed` (unused by preview 1, set for completeness): derived by
        // hashing rather than drawn from a stream, so that setting up a run generates no
        // ChaCha blocks; the streams only run when the guest asks for randomness.
        let digest = Sha256::new().chain_update(b"vouch insecure-random-seed\0").chain_update(seed).finalize();
        let insecure_seed = u128::from_le_bytes(digest[..16].try_into().expect("32-byte digest"));
        b.secure_random(stream(0)).insecure_random(stream(1)).insecure_random_seed(insecure_seed);
    }

    let mut preopen = |what: &'static str, host: &Path, guest: &str, perms: FsPerms| -> Result<(), SandboxError> {
        let err = |source| SandboxError::HostDir { what, path: host.to_path_buf(), source };
        // Opened first (a warm job saves a stat); the reason looked up only when that fails.
        let Err(e) = b.preopened_dir(host, guest, perms) else { return Ok(()) };
        let meta = std::fs::metadata(host).map_err(err)?;
        if !meta.is_dir() {
            return Err(err(std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory")));
        }
        Err(err(std::io::Error::other(format!("{e:#}"))))
    };
    if let Some(inputs) = &spec.inputs {
        preopen("inputs directory", inputs, "/inputs", FsPerms::ReadOnly)?;
    }
    preopen("outputs directory", &spec.outputs, "/outputs", FsPerms::ReadWrite)?;
    for (i, mount) in spec.runtime_dirs.iter().enumerate() {
        check_mount(&mount.guest, spec.runtime_dirs[..i].iter().map(|m| m.guest.as_str()))?;
        preopen("runtime directory", &mount.host, &mount.guest, FsPerms::ReadOnly)?;
    }
    Ok(b.build_p1())
}

/// A runtime mount point is an absolute, normal path that neither contains nor lies inside
/// `/inputs`, `/outputs` or an earlier mount.
fn check_mount<'a>(guest: &str, earlier: impl Iterator<Item = &'a str>) -> Result<(), SandboxError> {
    let bad = |reason| Err(SandboxError::BadMount { guest: guest.to_owned(), reason });
    let path = Path::new(guest);
    if !path.is_absolute() || path.components().count() < 2 {
        return bad("must be an absolute path below /");
    }
    if guest.split('/').skip(1).any(|c| c.is_empty() || c == "." || c == "..") {
        return bad("must be normal: no ., .., empty or trailing components");
    }
    for other in ["/inputs", "/outputs"].into_iter().chain(earlier) {
        if path.starts_with(other) || Path::new(other).starts_with(path) {
            return bad("overlaps /inputs, /outputs or another mount");
        }
    }
    Ok(())
}

fn measure_after(spec: &RunSpec) -> Result<OutputSize, SandboxError> {
    outputs::measure(&spec.outputs, spec.limits.max_output_entries).map_err(|source| SandboxError::HostDir {
        what: "outputs directory",
        path: spec.outputs.clone(),
        source,
    })
}

/// The captured bytes, cut at `max`, and whether the guest wrote more.
fn captured(pipe: &MemoryOutputPipe, max: usize) -> (Vec<u8>, bool) {
    let bytes = pipe.contents();
    let truncated = bytes.len() > max;
    (bytes[..bytes.len().min(max)].to_vec(), truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_checked() {
        let none = std::iter::empty();
        assert!(check_mount("/usr/local/lib", none).is_ok());
        for bad in ["usr", "/", "/inputs", "/inputs/x", "/outputs", "/a/../b", "/a/./b", "/a//b", "/a/"] {
            assert!(check_mount(bad, std::iter::empty()).is_err(), "{bad}");
        }
        assert!(check_mount("/usr", ["/usr/local"].into_iter()).is_err());
        assert!(check_mount("/usr/local/lib", ["/usr/local"].into_iter()).is_err());
        assert!(check_mount("/opt", ["/usr/local"].into_iter()).is_ok());
    }

    #[test]
    fn limiter_tracks_peak_and_first_denial() {
        let limits = Limits { memory_bytes: 1 << 20, max_table_elements: 10, ..Limits::default() };
        let mut l = Limiter::new(&limits);
        assert!(l.memory_growing(0, 65536, None).unwrap());
        assert!(l.memory_growing(65536, 1 << 20, None).unwrap());
        assert!(!l.memory_growing(1 << 20, (1 << 20) + 65536, None).unwrap());
        assert!(!l.table_growing(0, 11, None).unwrap());
        assert_eq!(l.memory_peak, 1 << 20);
        assert_eq!(l.denied.as_ref().map(|d| d.0), Some(Resource::Memory));
    }
}
