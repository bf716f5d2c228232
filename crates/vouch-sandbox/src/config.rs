//! [`SandboxConfig`] and the wasmtime `Engine` built from it, with its fingerprint.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, WasmBacktraceDetails};

use crate::SandboxError;

/// Process-wide sandbox settings. Everything here that changes compiled code is part of the
/// engine fingerprint ([`Sandbox::engine_fingerprint`](crate::Sandbox::engine_fingerprint)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Directory of the on-disk compiled-module cache (created if missing). `None` (the
    /// default): no disk cache, every new module is compiled once per `Sandbox`.
    pub cache_dir: Option<PathBuf>,
    /// Prepared (compiled and linked) modules kept in memory, least recently used evicted.
    /// Default 64.
    pub memory_cache_entries: usize,
    /// Runs that can be in flight at once: the pooling allocator's instance, memory and table
    /// slots. A run beyond it fails with [`SandboxError::Busy`]. Default 32.
    pub max_concurrent_runs: u32,
    /// Ceiling for [`Limits::memory_bytes`](crate::Limits::memory_bytes): the size of one
    /// pool memory slot. Default 4 GiB (all of wasm32). Costs address space only: the pool
    /// reserves about `max_concurrent_runs × max_memory_bytes` (128 GiB by default, measured)
    /// of virtual memory per `Sandbox`, and no RSS until used.
    pub max_memory_bytes: u64,
    /// Ceiling for [`Limits::max_table_elements`](crate::Limits::max_table_elements).
    /// Default 1 000 000.
    pub max_table_elements: u64,
    /// Ceiling for [`Limits::max_tables`](crate::Limits::max_tables). Default 4.
    pub max_tables: u32,
    /// Ceiling for [`Limits::max_memories`](crate::Limits::max_memories). Default 1.
    pub max_memories: u32,
    /// Bytes of native stack Wasm may use before [`Outcome::StackOverflow`](crate::Outcome).
    /// Default 1 MiB (wasmtime's own default is 512 KiB; CPython recurses deeply).
    pub max_wasm_stack: usize,
    /// How often, at most, `/outputs` is measured during a run. Default 10 ms. With fuel
    /// metering off it is the period of the epoch ticker thread, and so also the granularity
    /// of wall-clock limits; with fuel metering on the deadline is checked at every fuel yield
    /// (every 2^23 units, under a millisecond of guest work) and every call into the host.
    pub epoch_tick: Duration,
    /// Compile fuel metering into every module. Default true. The guest then runs as an async
    /// call that yields to the host every 2^23 units of fuel, where (and at every call into the
    /// host) the wall-clock and output limits are checked, and modules are compiled without
    /// epoch interruption (fuel and epoch checks together cost more than either alone). Off:
    /// epoch interruption and a ticker thread enforce those limits, but
    /// [`Limits::fuel`](crate::Limits::fuel) cannot be used and `fuel_consumed` is 0.
    pub fuel_metering: bool,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            cache_dir: None,
            memory_cache_entries: 64,
            max_concurrent_runs: 32,
            max_memory_bytes: 4 << 30,
            max_table_elements: 1_000_000,
            max_tables: 4,
            max_memories: 1,
            max_wasm_stack: 1 << 20,
            epoch_tick: Duration::from_millis(10),
            fuel_metering: true,
        }
    }
}

/// Fuel between two yields of a metered guest to the host, where the wall-clock deadline (and,
/// every [`SandboxConfig::epoch_tick`], `/outputs`) is checked. The C kernels in
/// `guests/` burn 12–17 units per nanosecond, so this is 0.5–0.7 ms of their work; a yield
/// costs a fiber switch each way, so much smaller intervals start to show in run times.
pub(crate) const FUEL_YIELD_INTERVAL: u64 = 1 << 23;

/// Native stack a metered run's fiber has on top of [`SandboxConfig::max_wasm_stack`], for
/// the host functions (WASI, the shims) and wasmtime itself, which run on that fiber too.
const HOST_STACK_HEADROOM: usize = 2 << 20;

impl SandboxConfig {
    /// Size of the native stack (a fiber) a metered run executes on.
    fn async_stack_size(&self) -> usize {
        self.max_wasm_stack.saturating_add(HOST_STACK_HEADROOM)
    }

    /// The wasmtime configuration. Every knob that matters for safety or determinism is set
    /// explicitly rather than left to a default that could change between versions.
    pub(crate) fn engine(&self) -> Result<Engine, SandboxError> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(self.max_concurrent_runs)
            .total_memories(self.max_concurrent_runs.saturating_mul(self.max_memories))
            .total_tables(self.max_concurrent_runs.saturating_mul(self.max_tables))
            .total_gc_heaps(self.max_concurrent_runs)
            // A metered run holds one fiber stack (its store keeps it between calls).
            .total_stacks(self.max_concurrent_runs)
            .total_component_instances(0)
            .max_memories_per_module(self.max_memories)
            .max_tables_per_module(self.max_tables)
            .max_memory_size(usize::try_from(self.max_memory_bytes).unwrap_or(usize::MAX))
            .table_elements(usize::try_from(self.max_table_elements).unwrap_or(usize::MAX))
            // Large modules (CPython with numpy) have many function references in their
            // VMContext; 16 MiB of address space per slot is plenty.
            .max_core_instance_size(16 << 20)
            // Reset the first pages of a reused slot with memset instead of madvise: a warm
            // job then takes no page faults on its stack and data.
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(64 << 10);

        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .consume_fuel(self.fuel_metering)
            // With fuel, the deadline is checked at fuel yields: see `run.rs`.
            .epoch_interruption(!self.fuel_metering)
            .async_stack_size(self.async_stack_size())
            .async_stack_zeroing(false)
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .wasm_threads(false)
            .max_wasm_stack(self.max_wasm_stack)
            // Trap messages must not depend on the host's environment variables.
            .wasm_backtrace_details(WasmBacktraceDetails::Disable)
            .debug_info(false)
            .coredump_on_trap(false);
        Engine::new(&config).map_err(|e| SandboxError::Engine(format!("{e:#}")))
    }

    /// The settings string hashed into the fingerprint, alongside wasmtime's own compatibility
    /// hash. Lists every knob above, so changing one never reuses a stale artifact.
    fn settings(&self) -> String {
        format!(
            "vouch-sandbox {} wasmtime {}; fuel={} epoch={} async-fuel-yield={} nan-canon=1 \
             relaxed-simd-det=1 threads=0 max-wasm-stack={} async-stack={} pool: memory={} tables={} \
             table-elements={} memories={}",
            env!("CARGO_PKG_VERSION"),
            crate::WASMTIME_VERSION,
            self.fuel_metering,
            u8::from(!self.fuel_metering),
            if self.fuel_metering { FUEL_YIELD_INTERVAL } else { 0 },
            self.max_wasm_stack,
            self.async_stack_size(),
            self.max_memory_bytes,
            self.max_tables,
            self.max_table_elements,
            self.max_memories,
        )
    }

    /// SHA-256 (hex) over wasmtime's `precompile_compatibility_hash` (its version, compiler
    /// settings, enabled features and the target ISA flags inferred from this CPU), our
    /// [`settings`](Self::settings), and the host CPU features we detect ourselves. A serialized
    /// module is only ever loaded by an engine with the same fingerprint.
    pub(crate) fn fingerprint(&self, engine: &Engine) -> String {
        struct ShaHasher(Sha256);
        impl Hasher for ShaHasher {
            fn finish(&self) -> u64 {
                0 // unused: the digest is taken from the inner Sha256
            }
            fn write(&mut self, bytes: &[u8]) {
                self.0.update(bytes);
            }
        }
        let mut h = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let mut sha = h.0;
        sha.update(b"\0");
        sha.update(self.settings().as_bytes());
        sha.update(b"\0");
        sha.update(host_cpu_features().as_bytes());
        hex::encode(sha.finalize())
    }
}

/// The CPU features Cranelift may use on this host, as a stable string.
pub(crate) fn host_cpu_features() -> String {
    let mut found: Vec<&str> = vec![std::env::consts::ARCH];
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! detect {
            ($($f:tt),*) => { $( if std::is_x86_feature_detected!($f) { found.push($f); } )* };
        }
        detect!(
            "sse3",
            "ssse3",
            "sse4.1",
            "sse4.2",
            "popcnt",
            "avx",
            "avx2",
            "bmi1",
            "bmi2",
            "lzcnt",
            "fma",
            "avx512f",
            "avx512vl",
            "avx512dq",
            "avx512bitalg",
            "avx512vbmi"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! detect {
            ($($f:tt),*) => { $( if std::arch::is_aarch64_feature_detected!($f) { found.push($f); } )* };
        }
        detect!("lse", "paca", "fp16");
    }
    found.join(",")
}
