//! The benchmark anchor every job-latency number is printed next to: raw wasmtime, the same
//! module, nothing of Vouch. A pooling engine with its defaults, `InstancePre::instantiate` and
//! a call of `_start` with a bare WASI context that captures stdout. No limits, no preopens, no
//! determinism, no output CID, no receipt: the floor a sandboxed run is measured against.

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, PoolingAllocationConfig, Store,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use crate::SandboxError;

/// A module compiled once and instantiated per [`RawWasmtime::call`].
pub struct RawWasmtime {
    engine: Engine,
    pre: InstancePre<WasiP1Ctx>,
}

impl RawWasmtime {
    /// Compile `wasm` (binary or text) on a pooling engine with wasmtime's defaults.
    pub fn new(wasm: &[u8]) -> Result<RawWasmtime, SandboxError> {
        let invalid =
            |e: wasmtime::Error| SandboxError::InvalidModule { module_id: "anchor".into(), reason: format!("{e:#}") };
        let mut config = Config::new();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingAllocationConfig::new()));
        let engine = Engine::new(&config).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let module = Module::new(&engine, wasm).map_err(invalid)?;
        let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
        p1::add_to_linker_sync(&mut linker, |s| s).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;
        let link = |e: wasmtime::Error| SandboxError::Link { module_id: "anchor".into(), reason: format!("{e:#}") };
        let pre = linker.instantiate_pre(&module).map_err(link)?;
        Ok(RawWasmtime { engine, pre })
    }

    /// Instantiate and run `_start` once; returns what it wrote to stdout (at most 1 MiB).
    pub fn call(&self) -> Result<Vec<u8>, SandboxError> {
        let stdout = MemoryOutputPipe::new(1 << 20);
        let wasi = WasiCtxBuilder::new().stdout(stdout.clone()).build_p1();
        let mut store = Store::new(&self.engine, wasi);
        // The anchor runs known-good modules: any failure is the benchmark's, reported as such.
        let trap = |e: wasmtime::Error| SandboxError::Engine(format!("anchor run: {e:#}"));
        let instance = self.pre.instantiate(&mut store).map_err(trap)?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start").map_err(trap)?;
        if let Err(e) = start.call(&mut store, ())
            && e.downcast_ref::<wasmtime_wasi::I32Exit>().is_none_or(|x| x.0 != 0)
        {
            return Err(trap(e));
        }
        drop(store);
        Ok(stdout.contents().to_vec())
    }
}
