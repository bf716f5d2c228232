//! [`Sandbox`]: the engine, the linker, the caches and (without fuel metering) the epoch ticker;
//! [`Prepared`] modules.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use wasmtime::{Engine, ExternType, InstancePre, Linker, Module, ResourcesRequired, ValType};

use crate::cache::{DiskCache, Lookup, Lru};
use crate::run::State;
use crate::{RunResult, RunSpec, SandboxConfig, SandboxError, run, shims};

/// A WASI sandbox: one per process is the intended use (it is `Send + Sync`; clones share
/// everything). Dropping the last clone stops its epoch ticker thread, if it has one.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: SandboxConfig,
    pub(crate) engine: Engine,
    linker: Linker<State>,
    fingerprint: String,
    disk: Option<DiskCache>,
    memory: Mutex<Lru<Arc<PreparedInner>>>,
    stats: Stats,
    /// Only without fuel metering: metered runs check their deadline at fuel yields.
    _ticker: Option<Ticker>,
}

/// A module ready to run: validated, compiled, linked. Cheap to clone.
#[derive(Clone)]
pub struct Prepared {
    inner: Arc<PreparedInner>,
    source: PrepareSource,
}

pub(crate) struct PreparedInner {
    module_id: String,
    pub(crate) kind: ModuleKind,
    pub(crate) pre: InstancePre<State>,
    pub(crate) resources: ResourcesRequired,
}

/// How a module's entry point is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// Exports `_start: [] -> []`.
    Command,
    /// Exports `run: [] -> [i32]` (and maybe `_initialize: [] -> []`), and no `_start`.
    Reactor,
}

/// Where [`Sandbox::prepare`] found the compiled code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrepareSource {
    /// Compiled now (and written to the disk cache, if there is one).
    Compiled,
    /// Deserialized from the disk cache after its checksum matched.
    DiskCache,
    /// Already prepared by this `Sandbox` (the in-memory LRU).
    MemoryCache,
}

/// Counters since the `Sandbox` was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub compiled: u64,
    pub disk_hits: u64,
    pub memory_hits: u64,
    /// Disk artifacts rejected: checksum mismatch, or refused by wasmtime's own header check.
    pub disk_rejected: u64,
    /// Failed writes to the disk cache (the prepare itself still succeeded).
    pub disk_write_errors: u64,
}

#[derive(Default)]
struct Stats {
    compiled: AtomicU64,
    disk_hits: AtomicU64,
    memory_hits: AtomicU64,
    disk_rejected: AtomicU64,
    disk_write_errors: AtomicU64,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Prepared {
    /// The id it was prepared under.
    pub fn module_id(&self) -> &str {
        &self.inner.module_id
    }
    pub fn kind(&self) -> ModuleKind {
        self.inner.kind
    }
    /// Where this `prepare` call found the code.
    pub fn source(&self) -> PrepareSource {
        self.source
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("module_id", &self.inner.module_id)
            .field("kind", &self.inner.kind)
            .field("source", &self.source)
            .finish()
    }
}

impl Sandbox {
    /// Builds the engine, starts the epoch ticker (without fuel metering), opens the disk cache.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let engine = config.engine()?;
        let fingerprint = config.fingerprint(&engine);
        let engine_err = |e: wasmtime::Error| SandboxError::Engine(format!("{e:#}"));

        let linker = shims::linker(&engine).map_err(engine_err)?;

        let disk = match &config.cache_dir {
            Some(dir) => Some(DiskCache::open(dir, &fingerprint)?),
            None => None,
        };
        let ticker = (!config.fuel_metering).then(|| Ticker::start(engine.clone(), config.epoch_tick));
        Ok(Sandbox {
            inner: Arc::new(Inner {
                memory: Mutex::new(Lru::new(config.memory_cache_entries)),
                config,
                engine,
                linker,
                fingerprint,
                disk,
                stats: Stats::default(),
                _ticker: ticker,
            }),
        })
    }

    /// Hex SHA-256 identifying everything that determines compiled code: wasmtime's version and
    /// compiler settings, this crate's engine settings, the host CPU's features. Receipts record
    /// it as the runtime's engine configuration hash.
    pub fn engine_fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    pub fn cache_stats(&self) -> CacheStats {
        let s = &self.inner.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            compiled: get(&s.compiled),
            disk_hits: get(&s.disk_hits),
            memory_hits: get(&s.memory_hits),
            disk_rejected: get(&s.disk_rejected),
            disk_write_errors: get(&s.disk_write_errors),
        }
    }

    /// Validates, compiles (or loads from a cache) and links a module.
    ///
    /// `module_id` names the bytes and keys both caches, so it must change whenever the bytes
    /// do (Vouch uses the module's CID). `wasm` is a core Wasm binary or WAT text; components
    /// and precompiled artifacts are refused. Lookup order: the in-memory LRU (by id), the disk
    /// cache (by id and engine fingerprint, checksum verified), then compilation. Two threads
    /// preparing the same new module at once both compile it; the results are identical.
    pub fn prepare(&self, module_id: &str, wasm: &[u8]) -> Result<Prepared, SandboxError> {
        self.prepare_with(module_id, wasm, true)
    }

    /// [`Sandbox::prepare`] for a module whose code is secret (a sealed module, decrypted in
    /// this process): compiled and kept in the in-memory cache only, never written to or read
    /// from the disk cache, so neither its bytes nor its machine code reach the disk.
    pub fn prepare_private(&self, module_id: &str, wasm: &[u8]) -> Result<Prepared, SandboxError> {
        self.prepare_with(module_id, wasm, false)
    }

    fn prepare_with(&self, module_id: &str, wasm: &[u8], use_disk: bool) -> Result<Prepared, SandboxError> {
        if let Some(prepared) = self.memory_hit(module_id) {
            return Ok(prepared);
        }
        let inner = &self.inner;
        let invalid = |reason: String| SandboxError::InvalidModule { module_id: module_id.to_owned(), reason };
        sniff(wasm).map_err(|r| invalid(r.to_owned()))?;
        if use_disk && let Some(module) = self.disk_hit(module_id) {
            return self.link(module_id, module, PrepareSource::DiskCache);
        }
        let module = Module::new(&inner.engine, wasm).map_err(|e| {
            let msg = format!("{e:#}");
            if wasm.starts_with(b"\0asm") {
                invalid(msg)
            } else {
                // Text that is not WAT: say so first; the parser's excerpt is noise.
                let first = msg.lines().next().unwrap_or_default();
                invalid(format!("is neither a Wasm binary nor valid WAT text: {first}"))
            }
        })?;
        Stats::bump(&inner.stats.compiled);
        if use_disk && let Some(disk) = &inner.disk {
            let written = module.serialize().map_err(std::io::Error::other).and_then(|b| disk.store(module_id, &b));
            if written.is_err() {
                Stats::bump(&inner.stats.disk_write_errors);
            }
        }
        self.link(module_id, module, PrepareSource::Compiled)
    }

    /// The module `module_id` if either cache holds it, without its bytes: lets a caller whose
    /// bytes are costly to fetch (a 160 MB runtime read back and hashed from a store) skip that
    /// work on a warm start. `None` means: call [`Sandbox::prepare`] with the bytes.
    pub fn cached(&self, module_id: &str) -> Option<Prepared> {
        if let Some(prepared) = self.memory_hit(module_id) {
            return Some(prepared);
        }
        let module = self.disk_hit(module_id)?;
        self.link(module_id, module, PrepareSource::DiskCache).ok()
    }

    fn memory_hit(&self, module_id: &str) -> Option<Prepared> {
        let inner = &self.inner;
        let prepared = inner.memory.lock().expect("lru lock poisoned").get(module_id)?;
        Stats::bump(&inner.stats.memory_hits);
        Some(Prepared { inner: prepared, source: PrepareSource::MemoryCache })
    }

    /// A compiled module from the disk cache, checksum verified; a rejected artifact is removed.
    fn disk_hit(&self, module_id: &str) -> Option<Module> {
        let inner = &self.inner;
        let disk = inner.disk.as_ref()?;
        match disk.load(module_id) {
            Lookup::Hit(path) => {
                // SAFETY: the file was written by `Module::serialize` of an engine with this
                // engine's fingerprint (the directory is keyed by it), still matches the
                // SHA-256 recorded when it was written, and is never modified in place;
                // wasmtime checks its own header (version, settings) too. See the trust
                // boundary in `cache.rs`.
                match unsafe { Module::deserialize_file(&inner.engine, &path) } {
                    Ok(module) => {
                        Stats::bump(&inner.stats.disk_hits);
                        Some(module)
                    }
                    Err(_) => {
                        disk.remove(module_id);
                        Stats::bump(&inner.stats.disk_rejected);
                        None
                    }
                }
            }
            Lookup::Corrupt => {
                Stats::bump(&inner.stats.disk_rejected);
                None
            }
            Lookup::Miss => None,
        }
    }

    /// Check the entry point, link, and remember in the memory cache.
    fn link(&self, module_id: &str, module: Module, source: PrepareSource) -> Result<Prepared, SandboxError> {
        let inner = &self.inner;
        let invalid = |reason: String| SandboxError::InvalidModule { module_id: module_id.to_owned(), reason };
        let kind = entry_kind(&module).map_err(|r| invalid(r.to_owned()))?;
        let pre = inner
            .linker
            .instantiate_pre(&module)
            .map_err(|e| SandboxError::Link { module_id: module_id.to_owned(), reason: format!("{e:#}") })?;
        let prepared = Arc::new(PreparedInner {
            module_id: module_id.to_owned(),
            kind,
            resources: module.resources_required(),
            pre,
        });
        inner.memory.lock().expect("lru lock poisoned").insert(module_id.to_owned(), prepared.clone());
        Ok(Prepared { inner: prepared, source })
    }

    /// Runs a prepared module once. Each run gets a fresh instance, WASI context, limiter and
    /// clocks; nothing carries over between runs. `Err` only for host-side problems (see
    /// [`SandboxError`]); whatever the guest does is in [`RunResult::outcome`].
    pub fn run(&self, prepared: &Prepared, spec: &RunSpec) -> Result<RunResult, SandboxError> {
        if !Engine::same(prepared.inner.pre.module().engine(), &self.inner.engine) {
            return Err(SandboxError::Engine("module was prepared by another Sandbox".to_owned()));
        }
        run::run(&self.inner, &prepared.inner, spec)
    }
}

/// Refuses bytes wasmtime should never be handed as a module: precompiled artifacts (which
/// `Module::new` would not load, but which must never reach `deserialize` from outside either),
/// components, and binary junk. WAT text is let through to the parser.
fn sniff(wasm: &[u8]) -> Result<(), &'static str> {
    if let Some(header) = wasm.strip_prefix(b"\0asm") {
        return match header.get(..4) {
            Some([1, 0, 0, 0]) => Ok(()),
            Some([_, _, 1, 0]) => Err("is a Wasm component; only core modules (WASI preview 1) are supported"),
            _ => Err("unsupported Wasm binary version"),
        };
    }
    if Engine::detect_precompiled(wasm).is_some() {
        return Err("is a precompiled wasmtime artifact; only Wasm binaries or WAT text are accepted");
    }
    if wasm.is_empty() || std::str::from_utf8(wasm).is_err() {
        return Err("is not WebAssembly: no \\0asm magic number, and not WAT text");
    }
    Ok(())
}

fn entry_kind(module: &Module) -> Result<ModuleKind, &'static str> {
    let func = |name: &str| match module.get_export(name) {
        Some(ExternType::Func(f)) => Some(f),
        _ => None,
    };
    if let Some(start) = func("_start") {
        return match (start.params().len(), start.results().len()) {
            (0, 0) => Ok(ModuleKind::Command),
            _ => Err("exports _start with a type other than [] -> []"),
        };
    }
    if let Some(run) = func("run") {
        let results: Vec<ValType> = run.results().collect();
        if run.params().len() != 0 || results.len() != 1 || !matches!(results[0], ValType::I32) {
            return Err("exports run with a type other than [] -> [i32]");
        }
        if let Some(init) = func("_initialize")
            && (init.params().len() != 0 || init.results().len() != 0)
        {
            return Err("exports _initialize with a type other than [] -> []");
        }
        return Ok(ModuleKind::Reactor);
    }
    Err("exports no entry point: neither _start (command) nor run (reactor)")
}

/// The thread that advances the engine's epoch every tick. Dropping it stops and joins it.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine, tick: std::time::Duration) -> Ticker {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("vouch-epoch".to_owned())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch ticker thread");
        Ticker { stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take()); // disconnects the channel: the thread's recv returns at once
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_refuses_non_modules() {
        assert!(sniff(b"\0asm\x01\0\0\0").is_ok());
        assert!(sniff(b"(module)").is_ok());
        assert!(sniff(b"\0asm\x0d\0\x01\0").unwrap_err().contains("component"));
        assert!(sniff(b"\0asm\x02\0\0\0").is_err());
        assert!(sniff(b"\x7fELF\x02\x01\x01\0\xff\xfe").unwrap_err().contains("not WebAssembly"));
        assert!(sniff(b"").is_err());
    }
}
