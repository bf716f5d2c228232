//! Sandbox benchmarks; prints numbers and ratios from one run (nothing is asserted).
//!
//!     cargo run --release -p vouch-sandbox --example bench            # real numbers
//!     cargo run -p vouch-sandbox --example bench -- --quick           # smoke run (dev build)
//!
//! 1. Warm job latency of a tiny module through `Sandbox::run` (fresh store, WASI context,
//!    preopened /inputs and /outputs, limiter, deterministic clocks and RNG, output check),
//!    next to raw wasmtime `InstancePre::instantiate` + `_start` of the same module (pooling
//!    allocator, a bare WASI context with captured stdout, nothing else).
//! 2. Jobs per second through one shared `Sandbox` with one thread per core.
//! 3. The C kernels of `guests/` (sha256, matmul, csvparse) as Wasm against the same sources
//!    built natively with `gcc -O2` (skipped if gcc is missing); the checksums they print must
//!    agree. Rows in between add one safety feature at a time to raw wasmtime, to show what
//!    each costs: epoch interruption (wall-clock limits), NaN canonicalisation (determinism),
//!    fuel metering.
//! 4. Preparing a module: cold compile vs loading from the disk cache.
//!
//! `VOUCH_BENCH_ROUNDS=N` sets the rounds of section 3 (default 5; the best run of each counts).
//! `VOUCH_BENCH_GUESTS=DIR` takes the kernels from `DIR/wasm` and `DIR/src` instead of
//! `guests/` (to try other guest build flags), `VOUCH_BENCH_CFLAGS` the native build's flags
//! (default `-O2`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use vouch_sandbox::{Outcome, PrepareSource, Prepared, RunSpec, Sandbox, SandboxConfig};
use wasmtime::{Config, Engine, Linker, Module, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// A tiny command: writes "ok\n" to stdout.
const TINY: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 8) "\10\00\00\00\03\00\00\00")
  (data (i32.const 16) "ok\n")
  (func (export "_start") (drop (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 0)))))"#;

/// The guests (`wasm/NAME.wasm` and `src/NAME.c`): the repository's, or `$VOUCH_BENCH_GUESTS`.
fn guests_dir() -> std::path::PathBuf {
    std::env::var_os("VOUCH_BENCH_GUESTS")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../guests")).to_path_buf())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let iterations = if quick { 2_000 } else { 20_000 };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "vouch-sandbox bench (wasmtime {}, {cores} cores{})",
        vouch_sandbox::WASMTIME_VERSION,
        if quick { ", quick" } else { "" }
    );

    let sandbox = Sandbox::new(SandboxConfig::default()).expect("sandbox");
    let tiny = sandbox.prepare("tiny", TINY.as_bytes()).expect("prepare tiny");
    let dirs = tempfile::tempdir().unwrap();
    let (inputs, outputs) = (dirs.path().join("inputs"), dirs.path().join("outputs"));
    std::fs::create_dir(&inputs).unwrap();
    std::fs::create_dir(&outputs).unwrap();
    let mut spec = RunSpec::new(&outputs);
    spec.inputs = Some(inputs.clone());

    // 1. Latency.
    let sandbox_lat = latencies(iterations, || {
        let r = sandbox.run(&tiny, &spec).unwrap();
        debug_assert_eq!(r.outcome, Outcome::Exited(0));
        assert_eq!(r.stdout, b"ok\n");
    });
    let raw_lat = raw_wasmtime_latencies(iterations);
    println!("\n1. warm job latency, tiny module ({iterations} runs each)");
    println!("   {:<34} {:>9} {:>9}", "", "p50 µs", "p99 µs");
    for (name, l) in [("raw wasmtime instantiate+_start", &raw_lat), ("Sandbox::run", &sandbox_lat)] {
        println!("   {name:<34} {:>9.1} {:>9.1}", micros(percentile(l, 0.5)), micros(percentile(l, 0.99)));
    }
    println!(
        "   ratio Sandbox::run / raw: p50 {:.2}×, p99 {:.2}×",
        micros(percentile(&sandbox_lat, 0.5)) / micros(percentile(&raw_lat, 0.5)),
        micros(percentile(&sandbox_lat, 0.99)) / micros(percentile(&raw_lat, 0.99))
    );

    // 2. Throughput.
    let window = if quick { Duration::from_millis(500) } else { Duration::from_secs(3) };
    let jobs = throughput(&sandbox, &tiny, cores, window, &inputs);
    println!("\n2. throughput, tiny module, {cores} threads, one Sandbox: {:.0} jobs/s", jobs);

    // 3. Kernels.
    let rounds: usize =
        std::env::var("VOUCH_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(if quick { 1 } else { 5 });
    println!("\n3. Wasm vs native: best of {rounds} wall times in ms (× native), the contenders interleaved round by");
    println!("   round. Raw wasmtime rows add one safety feature at a time to wasmtime's default config;");
    println!("   the Sandbox rows have all of them.");
    let no_fuel = Sandbox::new(SandboxConfig { fuel_metering: false, ..SandboxConfig::default() }).unwrap();
    let kernels: [(&str, &[&str]); 3] = if quick {
        [("sha256", &["8", "1"]), ("matmul", &["128", "1"]), ("csvparse", &["50000", "1"])]
    } else {
        [("sha256", &["64", "2"]), ("matmul", &["384", "2"]), ("csvparse", &["400000", "8"])]
    };
    let native_dir = tempfile::tempdir().unwrap();
    let labels = [
        "native gcc -O2",
        "raw wasmtime (defaults)",
        "raw + epoch interruption",
        "raw + NaN canonicalisation",
        "raw + fuel",
        "raw + epoch + fuel",
        "raw + fuel, async yields (no epoch)",
        "Sandbox::run, fuel off",
        "Sandbox::run, fuel on",
    ];
    let mut rows: Vec<(&str, Vec<Option<Duration>>)> = labels.into_iter().map(|name| (name, Vec::new())).collect();
    for (name, args) in kernels {
        let wasm = std::fs::read(guests_dir().join(format!("wasm/{name}.wasm"))).unwrap();
        let mut contenders: Vec<Option<Contender>> = vec![native_build(name, native_dir.path()).map(Contender::Native)];
        for feature in [
            Feature::None,
            Feature::Epoch,
            Feature::NanCanonicalisation,
            Feature::Fuel,
            Feature::EpochAndFuel,
            Feature::FuelYield,
        ] {
            contenders.push(Some(Contender::Raw(RawSetup::new(feature, &wasm))));
        }
        for sb in [&no_fuel, &sandbox] {
            contenders.push(Some(Contender::Sandbox(sb, sb.prepare(name, &wasm).unwrap())));
        }
        let mut best: Vec<Option<Duration>> = vec![None; contenders.len()];
        let mut expected: Option<Vec<u8>> = None;
        for _ in 0..rounds {
            for (c, b) in contenders.iter().zip(&mut best) {
                let Some(c) = c else { continue };
                let (t, out) = c.run(name, args, &outputs);
                match &expected {
                    None => expected = Some(out),
                    Some(e) => assert_eq!(&out, e, "{name}: {} disagrees", c.label()),
                }
                *b = Some(b.map_or(t, |b| b.min(t)));
            }
        }
        for (row, t) in rows.iter_mut().zip(best) {
            row.1.push(t);
        }
    }
    print!("   {:<36}", "");
    for (name, args) in kernels {
        print!(" {:>18}", format!("{name} {}", args.join(" ")));
    }
    println!();
    let natives = rows[0].1.clone();
    for (label, times) in &rows {
        print!("   {label:<36}");
        for (t, native) in times.iter().zip(&natives) {
            match (t, native) {
                (Some(t), Some(n)) => print!(" {:>9.1} ({:>5.2}×)", ms(*t), t.as_secs_f64() / n.as_secs_f64()),
                (Some(t), None) => print!(" {:>9.1}         ", ms(*t)),
                (None, _) => print!(" {:>18}", "(no gcc)"),
            }
        }
        let ratios: Vec<f64> = times
            .iter()
            .zip(&natives)
            .filter_map(|(t, n)| Some(t.as_ref()?.as_secs_f64() / n.as_ref()?.as_secs_f64()))
            .collect();
        if ratios.len() == times.len() {
            print!("   geo-mean {:.2}×", (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp());
        }
        println!();
    }

    // 4. Prepare: compile vs disk cache.
    let cache = tempfile::tempdir().unwrap();
    let config = SandboxConfig { cache_dir: Some(cache.path().into()), ..SandboxConfig::default() };
    let wasm = std::fs::read(guests_dir().join("wasm/clinical_summary.wasm")).unwrap();
    let t = Instant::now();
    let p = Sandbox::new(config.clone()).unwrap().prepare("clinical", &wasm).unwrap();
    let cold = t.elapsed();
    assert_eq!(p.source(), PrepareSource::Compiled);
    let fresh = Sandbox::new(config).unwrap();
    let t = Instant::now();
    let p = fresh.prepare("clinical", &wasm).unwrap();
    let cached = t.elapsed();
    assert_eq!(p.source(), PrepareSource::DiskCache);
    println!(
        "\n4. prepare clinical_summary.wasm ({} KB): compile {:.1} ms (incl. engine setup), disk cache {:.2} ms ({:.0}× faster)",
        wasm.len() / 1024,
        cold.as_secs_f64() * 1e3,
        cached.as_secs_f64() * 1e3,
        cold.as_secs_f64() / cached.as_secs_f64()
    );
}

fn latencies(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    for _ in 0..n / 10 {
        f(); // warm up: pool slots, page tables, caches
    }
    let mut out: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    out.sort();
    out
}

struct RawState {
    wasi: WasiP1Ctx,
}

fn raw_wasmtime_latencies(n: usize) -> Vec<Duration> {
    let raw = vouch_sandbox::anchor::RawWasmtime::new(TINY.as_bytes()).unwrap();
    latencies(n, || assert_eq!(raw.call().unwrap(), b"ok\n"))
}

fn throughput(sandbox: &Sandbox, prepared: &Prepared, threads: usize, window: Duration, inputs: &Path) -> f64 {
    let start = Instant::now();
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let outputs = tempfile::tempdir().unwrap();
                    let mut spec = RunSpec::new(outputs.path());
                    spec.inputs = Some(inputs.to_path_buf());
                    let mut jobs = 0u64;
                    while start.elapsed() < window {
                        let r = sandbox.run(prepared, &spec).unwrap();
                        assert_eq!(r.outcome, Outcome::Exited(0));
                        jobs += 1;
                    }
                    jobs
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

/// One contender of section 3: a way to run a kernel once.
enum Contender<'a> {
    Native(std::path::PathBuf),
    Raw(RawSetup),
    Sandbox(&'a Sandbox, Prepared),
}

impl Contender<'_> {
    fn label(&self) -> String {
        match self {
            Contender::Native(_) => "native".into(),
            Contender::Raw(r) => format!("raw wasmtime {:?}", r.feature),
            Contender::Sandbox(s, _) => format!("Sandbox::run (fuel {})", s.config().fuel_metering),
        }
    }

    /// Wall time and stdout of one run.
    fn run(&self, name: &str, args: &[&str], outputs: &Path) -> (Duration, Vec<u8>) {
        match self {
            Contender::Native(exe) => {
                let t = Instant::now();
                let out = Command::new(exe).args(args).output().unwrap();
                let elapsed = t.elapsed();
                assert!(out.status.success());
                (elapsed, out.stdout)
            }
            Contender::Raw(r) => r.run(name, args),
            Contender::Sandbox(sandbox, prepared) => {
                let mut spec = RunSpec::new(outputs);
                spec.args = args.iter().map(|a| a.to_string()).collect();
                spec.limits.memory_bytes = 2 << 30;
                let r = sandbox.run(prepared, &spec).unwrap();
                assert_eq!(r.outcome, Outcome::Exited(0), "{}", String::from_utf8_lossy(&r.stderr));
                (r.usage.wall_time, r.stdout)
            }
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Clone, Copy, Debug)]
enum Feature {
    None,
    Epoch,
    NanCanonicalisation,
    Fuel,
    EpochAndFuel,
    FuelYield,
}

/// The module compiled under wasmtime's default config (on-demand allocator, no limits) plus
/// one feature.
struct RawSetup {
    feature: Feature,
    engine: Engine,
    pre: wasmtime::InstancePre<RawState>,
}

impl RawSetup {
    fn new(feature: Feature, wasm: &[u8]) -> RawSetup {
        let mut config = Config::new();
        match feature {
            Feature::None => {}
            Feature::Epoch => {
                config.epoch_interruption(true);
            }
            Feature::NanCanonicalisation => {
                config.cranelift_nan_canonicalization(true);
            }
            Feature::Fuel | Feature::FuelYield => {
                config.consume_fuel(true);
            }
            Feature::EpochAndFuel => {
                config.epoch_interruption(true).consume_fuel(true);
            }
        }
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, wasm).unwrap();
        let mut linker: Linker<RawState> = Linker::new(&engine);
        if let Feature::FuelYield = feature {
            p1::add_to_linker_async(&mut linker, |s| &mut s.wasi).unwrap();
        } else {
            p1::add_to_linker_sync(&mut linker, |s| &mut s.wasi).unwrap();
        }
        let pre = linker.instantiate_pre(&module).unwrap();
        RawSetup { feature, engine, pre }
    }

    fn run(&self, name: &str, args: &[&str]) -> (Duration, Vec<u8>) {
        let (engine, pre, feature) = (&self.engine, &self.pre, self.feature);
        let argv: Vec<&str> = std::iter::once(name).chain(args.iter().copied()).collect();
        let stdout = MemoryOutputPipe::new(1 << 20);
        let wasi = WasiCtxBuilder::new().args(&argv).stdout(stdout.clone()).build_p1();
        let mut store = Store::new(engine, RawState { wasi });
        store.set_epoch_deadline(u64::MAX / 2);
        if let Feature::Fuel | Feature::EpochAndFuel | Feature::FuelYield = feature {
            store.set_fuel(u64::MAX / 2).unwrap();
        }
        let t = Instant::now();
        let result = if let Feature::FuelYield = feature {
            store.fuel_async_yield_interval(Some(1 << 20)).unwrap();
            poll_to_end(async {
                let instance = pre.instantiate_async(&mut store).await?;
                instance.get_typed_func::<(), ()>(&mut store, "_start")?.call_async(&mut store, ()).await
            })
        } else {
            let instance = pre.instantiate(&mut store).unwrap();
            instance.get_typed_func::<(), ()>(&mut store, "_start").unwrap().call(&mut store, ())
        };
        let elapsed = t.elapsed();
        assert!(
            result.is_ok() || result.unwrap_err().downcast_ref::<wasmtime_wasi::I32Exit>().is_some_and(|e| e.0 == 0)
        );
        drop(store);
        (elapsed, stdout.contents().to_vec())
    }
}

/// Drives a future to completion on this thread; each `Pending` is a fuel yield, where a
/// sandbox would check its deadline.
fn poll_to_end<T>(fut: impl std::future::Future<Output = T>) -> T {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// The kernel built natively, or `None` without gcc.
fn native_build(name: &str, dir: &Path) -> Option<std::path::PathBuf> {
    let exe = dir.join(name);
    let src = guests_dir().join(format!("src/{name}.c"));
    let cflags = std::env::var("VOUCH_BENCH_CFLAGS").unwrap_or_else(|_| "-O2".into());
    let built =
        Command::new("gcc").args(cflags.split_whitespace()).arg("-o").arg(&exe).arg(&src).arg("-lm").status().ok()?;
    built.success().then_some(exe)
}
