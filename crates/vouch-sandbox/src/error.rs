use std::path::PathBuf;

/// Why the sandbox could not prepare or run a module. What a guest does while running is never
/// an error: it is an [`Outcome`](crate::Outcome).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The bytes are not a usable WASI preview 1 module: not Wasm at all, invalid, a component,
    /// a precompiled artifact, or without a supported entry point.
    #[error("module {module_id}: {reason}")]
    InvalidModule { module_id: String, reason: String },

    /// The module imports something the host does not provide (or with another type).
    #[error("module {module_id} cannot be linked: {reason}")]
    Link { module_id: String, reason: String },

    /// A per-run limit is above what the sandbox was configured to allow.
    #[error("limit {limit} = {requested} is above this sandbox's ceiling of {ceiling}")]
    LimitAboveCeiling { limit: &'static str, requested: u64, ceiling: u64 },

    /// `Limits::fuel` was set on a sandbox built without fuel metering.
    #[error("a fuel limit was given but this sandbox was built with fuel metering off")]
    FuelMeteringOff,

    /// A host directory named in the `RunSpec` is missing or unusable.
    #[error("{what} {path}: {source}")]
    HostDir {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A guest path in `RunSpec::runtime_dirs` is not absolute or clashes with `/inputs`,
    /// `/outputs` or another mount.
    #[error("runtime directory mount point {guest:?}: {reason}")]
    BadMount { guest: String, reason: &'static str },

    /// Every instance slot of the pooling allocator is in use; retry when a run finishes.
    #[error("all {slots} instance slots are busy")]
    Busy { slots: u32 },

    /// The compiled-module cache directory could not be created.
    #[error("compiled-module cache {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// wasmtime refused the engine configuration or failed in a way no guest can cause.
    #[error("wasmtime: {0}")]
    Engine(String),
}
