//! `vouch seal`, `vouch open` and `vouch broker keys`: an owner seals a file (or a `.wasm`)
//! into the store as ciphertext under a fresh data key, which this node's key broker keeps with
//! the owner's access policy; the owner opens it again. The sealed-object format and the policy
//! are `docs/seal.md`.
//!
//! The keystore is `$VOUCH_HOME/broker/keys/OBJECT.json` (directory 0700, files 0600, written
//! and fsynced before the ciphertext is committed, so a stored object always has its key). Key
//! material is never printed, logged or put in an error.

use std::fs;
use std::io::{self, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use vouch_dag::{Cid, Params};
use vouch_seal::stream::Header;
use vouch_seal::{AccessPolicy, DataKey, ObjectId, Opener, SealOptions, Sealer};

use crate::home::Home;

#[derive(Args)]
pub struct SealArgs {
    /// The file to seal (a dataset, or a `.wasm` module: modules are sealed the same way).
    pub path: PathBuf,
    /// The access policy the broker applies to key requests for this object (TOML,
    /// `docs/seal.md`); validated now. Without one, the key is released to no runtime.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Plaintext bytes per chunk (64 B to 16 MiB).
    #[arg(long, default_value = "64KiB")]
    pub chunk_size: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct KeygenArgs {
    /// Where the secret key goes (hex, created 0600; refused if the file exists).
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Args)]
pub struct OpenArgs {
    /// The sealed object's or sealed result's CID.
    pub cid: String,
    /// A sealed result's recipient key (the file `vouch keygen` wrote).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Where the plaintext goes (written whole, then renamed: a tampered object leaves nothing).
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(Subcommand)]
pub enum BrokerCmd {
    /// Set or replace the access policy of a sealed object this broker holds (by its CID or
    /// object id); validated first. A running daemon applies it to the next request.
    Policy {
        /// The sealed object's CID or object id.
        object: String,
        #[arg(long)]
        policy: PathBuf,
    },
    /// Endorse a module (by CID) with this node's key, for access policies that admit modules
    /// by their signer (`modules.signers`): writes the endorsement (DAG-CBOR) and prints the
    /// signer key to put in such a policy.
    Endorse {
        module: String,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// The broker's audit log: every key-release decision, the hash chain checked.
    Log {
        #[arg(long)]
        json: bool,
    },
    /// The sealed objects whose keys this node's broker holds (never the keys).
    Keys {
        #[arg(long)]
        json: bool,
    },
}

/// One keystore entry.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    version: u32,
    /// Hex object id.
    object: String,
    /// The ciphertext's CID.
    data: String,
    /// Hex key id (commits to the key; public).
    key_id: String,
    /// Hex data key: the secret.
    key: String,
    /// The access policy's TOML text, if any.
    policy: Option<String>,
    /// The policy file it came from (absolute): the broker reads it at every request, so the
    /// owner's edits (and its `appraisal_file`, relative to it) apply from the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy_path: Option<String>,
    plaintext_bytes: u64,
    created_at: u64,
}

fn keys_dir(home: &Home) -> PathBuf {
    home.dir.join("broker").join("keys")
}

fn write_entry(home: &Home, e: &KeyEntry) -> Result<()> {
    let dir = keys_dir(home);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).with_context(|| format!("{}", dir.display()))?;
    let path = dir.join(format!("{}.json", e.object));
    let tmp = dir.join(format!(".{}.json.tmp", e.object));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("{}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(e)?)?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    fs::File::open(&dir)?.sync_all()?;
    Ok(())
}

fn read_entry(home: &Home, object: &ObjectId) -> Result<Option<KeyEntry>> {
    let path = keys_dir(home).join(format!("{object}.json"));
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("{}", path.display()))?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("{}: {e}", path.display())),
    }
}

fn entry_key(e: &KeyEntry) -> Result<DataKey> {
    // The error names the entry, never the bytes.
    let bytes = hex::decode(&e.key).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
    bytes.map(DataKey::from_bytes).ok_or_else(|| anyhow!("keystore entry {}: the key is not 32 bytes of hex", e.object))
}

/// Seal `plaintext` (`len` bytes) under a fresh key into this home's store, pinned, the key in
/// the broker keystore (written first: committed ciphertext without its key could never be
/// opened) with `policy`. Returns the ciphertext's CID, the object id and the key id.
pub fn seal_into_store(
    home: &Home,
    plaintext: impl io::Read + Send,
    len: u64,
    chunk_size: u32,
    policy: Option<String>,
) -> Result<(Cid, ObjectId, String)> {
    let key = DataKey::generate();
    let sealer = Sealer::new(&key, BufReader::with_capacity(1 << 20, plaintext), SealOptions { chunk_size })?;
    let header = sealer.header().clone();
    let store = home.store()?;
    let mut batch = store.batch()?;
    let node = crate::import::import_reader(&Params::default(), sealer, true, &mut batch, &|_| {})
        .map_err(|e| anyhow!("{e}; nothing was stored"))?;
    let entry = KeyEntry {
        version: 1,
        object: header.object.to_string(),
        data: node.cid.to_string(),
        key_id: header.key_id.to_string(),
        key: hex::encode(key.expose_secret()),
        policy,
        policy_path: None,
        plaintext_bytes: len,
        created_at: unix_now(),
    };
    write_entry(home, &entry)?;
    batch.pin(node.cid);
    batch.commit()?;
    Ok((node.cid, header.object, entry.key_id))
}

pub fn seal(home: &Home, a: SealArgs) -> Result<()> {
    let policy = match &a.policy {
        Some(p) => {
            let text = fs::read_to_string(p).with_context(|| format!("--policy {}", p.display()))?;
            AccessPolicy::load(p).map_err(|e| anyhow!("--policy {}: {e}", p.display()))?;
            Some(text)
        }
        None => None,
    };
    let chunk_size = crate::units::parse_size(&a.chunk_size)?;
    let chunk_size = u32::try_from(chunk_size).map_err(|_| anyhow!("--chunk-size {}: at most 16 MiB", a.chunk_size))?;
    let meta = fs::metadata(&a.path).with_context(|| format!("{}", a.path.display()))?;
    if !meta.is_file() {
        bail!("{}: not a regular file; seal files one by one (or an archive of a directory)", a.path.display());
    }
    let file = fs::File::open(&a.path).with_context(|| format!("{}", a.path.display()))?;
    let (cid, object, key_id) = seal_into_store(home, file, meta.len(), chunk_size, policy.clone())
        .map_err(|e| anyhow!("sealing {}: {e:#}", a.path.display()))?;
    let has_policy = policy.is_some();
    if let Some(p) = &a.policy {
        record_policy_path(home, &object, p)?;
    }
    if let Err(e) = crate::node_cli::announce(home, &cid) {
        eprintln!("warning: sealed and stored, but the running daemon did not announce it: {e:#}");
    }
    let sealed_bytes = vouch_seal::sealed_len(meta.len(), chunk_size);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "cid": cid.to_string(), "object": object.to_string(), "key_id": key_id,
                "plaintext_bytes": meta.len(), "sealed_bytes": sealed_bytes, "policy": has_policy,
            })
        );
    } else {
        println!("sealed   {cid} ({} bytes, {sealed_bytes} sealed)", meta.len());
        println!("object   {object}");
        println!("key id   {key_id}");
        println!(
            "key      kept by this node's broker ({}), {}",
            keys_dir(home).display(),
            if has_policy { "released under the policy given" } else { "released to no runtime (no --policy)" }
        );
    }
    Ok(())
}

/// Open a sealed object the local broker holds the key of.
pub fn open(home: &Home, a: OpenArgs) -> Result<()> {
    let cid: Cid = vouch_dag::block::parse_cid(&a.cid)?;
    let store = home.store()?;
    crate::node_cli::ensure_local(home, &store, &cid, std::time::Duration::from_secs(60))?;
    // An in-process pipe, not an OS one: `vouch` keeps SIGPIPE's default action, so a write to
    // a closed OS pipe would kill the process when the opener stops early.
    let (reader, mut writer) = chan_pipe();
    let out_tmp = a.output.with_file_name(format!(
        ".{}.partial",
        a.output.file_name().map_or_else(|| "open".into(), |n| n.to_string_lossy().into_owned())
    ));
    let result = std::thread::scope(|s| {
        let store = &store;
        let feeder = s.spawn(move || {
            let r = vouch_dag::export::read_file(store, &cid, &mut writer);
            drop(writer);
            r
        });
        let opened = open_into(home, a.key.as_deref(), &cid, reader, &out_tmp);
        let fed = feeder.join().map_err(|_| anyhow!("the reader thread panicked"))?;
        // A store read error explains an opener error (the stream ended short): report it
        // instead, unless it is only the pipe closing because the opener stopped first.
        if let Err(e) = fed
            && opened.is_err()
            && !e.to_string().contains(PIPE_CLOSED)
        {
            return Err(anyhow!("{cid}: reading the sealed object from the store: {e}"));
        }
        opened
    });
    match result {
        Ok(what) => {
            fs::rename(&out_tmp, &a.output).with_context(|| format!("{}", a.output.display()))?;
            println!("opened   {cid} → {} ({what}, every chunk authenticated)", a.output.display());
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&out_tmp);
            let _ = fs::remove_dir_all(&out_tmp);
            Err(e)
        }
    }
}

/// Open what arrives on `sealed` into `out`: a sealed object (`VSEAL`, key from this node's
/// broker) or a sealed result (`VSENV`, the recipient's `key_file`). A result that is an
/// outputs archive (a CARv1 of a UnixFS directory) becomes a directory tree; anything else a
/// file. Returns what was written, for the message.
fn open_into(home: &Home, key_file: Option<&Path>, cid: &Cid, mut sealed: ChanReader, out: &Path) -> Result<String> {
    let mut magic = [0u8; 5];
    io::Read::read_exact(&mut sealed, &mut magic).map_err(|_| anyhow!("{cid}: too short to be sealed"))?;
    let mut sealed = io::Read::chain(&magic[..], sealed);
    if &magic == vouch_seal::result::ENVELOPE_MAGIC {
        let path = key_file.ok_or_else(|| {
            anyhow!("{cid} is a sealed result: give its recipient's key with --key FILE (from `vouch keygen`)")
        })?;
        let secret = read_secret(path)?;
        let mut plain = Vec::new();
        let (job, _) = vouch_seal::open_result(&secret, &mut sealed, &mut plain).map_err(|e| anyhow!("{cid}: {e}"))?;
        if let Some(blocks) = outputs_archive(&plain) {
            let (root, blocks) = blocks;
            crate::commands::write_tree(&blocks, &root, out)?;
            return Ok(format!("the outputs of job {job}, directory {root}"));
        }
        write_private(out, &plain)?;
        return Ok(format!("{} bytes of a result of job {job}", plain.len()));
    }
    let header = Header::read_from(&mut sealed).map_err(|e| anyhow!("{cid}: {e}"))?;
    let entry = read_entry(home, &header.object)?.ok_or_else(|| {
        anyhow!(
            "{cid}: this node's broker holds no key for sealed object {}; only its owner's broker can release it",
            header.object
        )
    })?;
    let key = entry_key(&entry)?;
    let mut opener = Opener::after_header(&key, header, sealed).map_err(|e| anyhow!("{cid}: {e}"))?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("{}", out.display()))?;
    let n = io::copy(&mut opener, &mut f).map_err(|e| anyhow!("{cid}: {e}; nothing was written"))?;
    f.sync_all()?;
    Ok(format!("{n} bytes"))
}

/// The outputs archive `vouch run --recipient` seals: a CARv1 with one root, every block
/// hash-checked, the root a UnixFS directory whose DAG is complete.
fn outputs_archive(bytes: &[u8]) -> Option<(Cid, vouch_dag::MemoryBlocks)> {
    let mut r = vouch_dag::car::CarReader::new(bytes).ok()?;
    let [root] = r.roots()[..] else { return None };
    let mut blocks = vouch_dag::MemoryBlocks::default();
    while let Some((c, d)) = r.next_block().ok()? {
        vouch_dag::BlockSink::put(&mut blocks, &c, &d).ok()?;
    }
    vouch_dag::car::walk_dag(&blocks, &root, |_, _| Ok::<(), vouch_dag::DagError>(())).ok()?;
    match vouch_dag::export::stat(&blocks, &root).ok()? {
        vouch_dag::export::Kind::Directory | vouch_dag::export::Kind::ShardedDirectory => Some((root, blocks)),
        _ => None,
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("{}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn read_secret(path: &Path) -> Result<vouch_seal::HpkeSecretKey> {
    let text = fs::read_to_string(path).with_context(|| format!("--key {}", path.display()))?;
    // The error names the file, never its content.
    let bytes = hex::decode(text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
    let bytes = bytes.ok_or_else(|| anyhow!("--key {}: not a key file (64 hex digits)", path.display()))?;
    vouch_seal::HpkeSecretKey::from_bytes(&bytes).map_err(|e| anyhow!("--key {}: {e}", path.display()))
}

/// `vouch keygen`: a recipient key pair for sealed results.
pub fn keygen(a: KeygenArgs) -> Result<()> {
    let secret = vouch_seal::HpkeSecretKey::generate();
    write_private(&a.output, hex::encode(*secret.expose_secret()).as_bytes())?;
    println!("public   {}", secret.public());
    println!("secret   written to {} (0600); give `vouch run --recipient` the public key", a.output.display());
    Ok(())
}

const PIPE_CLOSED: &str = "the reader of the sealed stream stopped";

/// A bounded in-process byte pipe: the writer blocks while four chunks are unread, and fails
/// (not panics, not signals) once the reader is gone.
fn chan_pipe() -> (ChanReader, ChanWriter) {
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    (ChanReader { rx, buf: Vec::new(), pos: 0 }, ChanWriter { tx })
}

struct ChanWriter {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.tx.send(data.to_vec()).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, PIPE_CLOSED))?;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct ChanReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl io::Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => (self.buf, self.pos) = (b, 0),
                // The writer finished (or failed: its error is reported by its side).
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn audit_path(home: &Home) -> PathBuf {
    home.dir.join("broker").join("audit.log")
}

pub fn broker(home: &Home, c: BrokerCmd) -> Result<()> {
    let json = match c {
        BrokerCmd::Keys { json } => json,
        BrokerCmd::Log { json } => return broker_log(home, json),
        BrokerCmd::Endorse { module, output } => return endorse(home, &module, &output),
        BrokerCmd::Policy { object, policy } => return set_policy(home, &object, &policy),
    };
    let mut rows = Vec::new();
    match fs::read_dir(keys_dir(home)) {
        Ok(dir) => {
            for ent in dir {
                let path = ent?.path();
                if path.extension().is_some_and(|e| e == "json") {
                    let e: KeyEntry =
                        serde_json::from_slice(&fs::read(&path)?).with_context(|| format!("{}", path.display()))?;
                    rows.push(e);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    rows.sort_by_key(|e| e.created_at);
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|e| {
                serde_json::json!({
                    "object": e.object, "cid": e.data, "key_id": e.key_id,
                    "plaintext_bytes": e.plaintext_bytes, "policy": e.policy.is_some(), "created_at": e.created_at,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for e in &rows {
            let policy = if e.policy.is_some() { "policy" } else { "no policy" };
            println!("{}  {}  {} bytes  {policy}", e.object, e.data, e.plaintext_bytes);
        }
    }
    Ok(())
}

fn broker_log(home: &Home, json: bool) -> Result<()> {
    let path = audit_path(home);
    if !path.exists() {
        if !json {
            println!("no decisions yet ({})", path.display());
        }
        return Ok(());
    }
    let mut out = io::stdout().lock();
    let mut failed = None;
    let (n, _) = vouch_seal::audit::verify_file(&path, |e| {
        let r = if json {
            serde_json::to_string(&e).map_err(io::Error::other).and_then(|l| writeln!(out, "{l}"))
        } else {
            let why = e.rule.as_deref().map_or_else(String::new, |r| {
                format!(
                    "  rule {r}: expected {}, found {}",
                    e.expected.as_deref().unwrap_or("-"),
                    e.found.as_deref().unwrap_or("-")
                )
            });
            writeln!(
                out,
                "{:>4} {} {:<8} job {} object {} ({}){why}",
                e.seq, e.time, e.decision, e.job, e.object, e.technology
            )
        };
        if let Err(err) = r {
            failed.get_or_insert(err);
        }
    })
    .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if !json {
        writeln!(out, "{n} decisions, hash chain intact")?;
    }
    Ok(())
}

/// The sealed-object header at the start of the UnixFS file `cid`, if it is one.
pub fn sealed_header(store: &vouch_store::Store, cid: &Cid) -> Result<Option<Header>> {
    if !matches!(vouch_dag::export::stat(store, cid)?, vouch_dag::export::Kind::File { .. }) {
        return Ok(None);
    }
    /// Keeps the first bytes, then stops the read.
    struct Head(Vec<u8>);
    impl Write for Head {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let want = vouch_seal::stream::HEADER_LEN - self.0.len();
            self.0.extend_from_slice(&b[..b.len().min(want)]);
            if self.0.len() == vouch_seal::stream::HEADER_LEN {
                return Err(io::Error::other("header read"));
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut head = Head(Vec::with_capacity(vouch_seal::stream::HEADER_LEN));
    let read = vouch_dag::export::read_file(store, cid, &mut head);
    let Ok(raw) = <[u8; vouch_seal::stream::HEADER_LEN]>::try_from(head.0.as_slice()) else {
        read?;
        return Ok(None);
    };
    if &raw[..5] != b"VSEAL" {
        return Ok(None);
    }
    Ok(Some(Header::parse(&raw).map_err(|e| anyhow!("{cid}: {e}"))?))
}

/// Decrypt the sealed file `cid` with `key` into a new file `dest`, streaming, every chunk
/// authenticated; on failure `dest` is removed.
pub fn open_sealed_file(store: &vouch_store::Store, cid: &Cid, key: &DataKey, dest: &Path) -> Result<()> {
    let (reader, mut writer) = chan_pipe();
    let result = std::thread::scope(|s| {
        let feeder = s.spawn(move || {
            let r = vouch_dag::export::read_file(store, cid, &mut writer);
            drop(writer);
            r
        });
        let opened = (|| -> Result<u64> {
            let mut opener = Opener::new(key, reader).map_err(|e| anyhow!("{cid}: {e}"))?;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .with_context(|| format!("{}", dest.display()))?;
            io::copy(&mut opener, &mut f).map_err(|e| anyhow!("{cid}: {e}"))
        })();
        let fed = feeder.join().map_err(|_| anyhow!("the reader thread panicked"))?;
        if let Err(e) = fed
            && opened.is_err()
            && !e.to_string().contains(PIPE_CLOSED)
        {
            return Err(anyhow!("{cid}: reading the sealed object from the store: {e}"));
        }
        opened.map(drop)
    });
    if result.is_err() {
        let _ = fs::remove_file(dest);
    }
    result
}

/// A message to a key broker (DAG-CBOR on `/vouch/broker/1.0.0`, `docs/seal.md` §3).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerAsk {
    /// A fresh single-use challenge for a key request about `object`.
    Challenge {
        #[serde(with = "serde_bytes")]
        object: [u8; 16],
    },
    /// A key request (`vouch_seal::broker::KeyRequestWire`, encoded).
    Key {
        #[serde(with = "serde_bytes")]
        request: Vec<u8>,
    },
}

/// A key broker's answer.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerAnswer {
    Challenge {
        #[serde(with = "serde_bytes")]
        challenge: [u8; 32],
    },
    Decision {
        decision: vouch_seal::Decision,
    },
    /// No challenge, or a request that does not decode: why.
    Refused {
        refusal: vouch_seal::Refusal,
    },
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// This node's key broker: the keystore's objects with an access policy, the pending
/// challenges, and the audit log every decision is appended to (fsynced) before it is answered.
/// `vouch node` serves it to other nodes; a local run asks it directly.
pub struct NodeBroker {
    home: Home,
    state: std::sync::Mutex<vouch_seal::Broker>,
    /// The audit log, opened (and its whole chain verified) at the first decision, then kept:
    /// each append reads only what other processes appended since.
    log: std::sync::Mutex<Option<vouch_seal::audit::AuditLog>>,
}

impl NodeBroker {
    /// The broker of `home`. Hardware evidence is appraised with the certificates named by
    /// `broker_trust_roots` in its config.json (PEM or DER files: a TPM EK CA, …) beyond the
    /// vendor roots vouch-attest carries.
    pub fn new(home: &Home) -> Result<NodeBroker> {
        let config = home.config()?;
        let mut roots = Vec::new();
        if let Some(list) = config.get("broker_trust_roots") {
            let list = list
                .as_array()
                .ok_or_else(|| anyhow!("config.json: `broker_trust_roots` must be a list of file paths"))?;
            for p in list {
                let p = p.as_str().ok_or_else(|| anyhow!("config.json: `broker_trust_roots`: {p} is not a path"))?;
                let bytes = fs::read(p).with_context(|| format!("config.json: broker_trust_roots: {p}"))?;
                roots.extend(
                    vouch_attest::parse_certificates(&bytes)
                        .map_err(|e| anyhow!("config.json: broker_trust_roots: {p}: {e}"))?,
                );
            }
        }
        let state = std::sync::Mutex::new(vouch_seal::Broker::new(roots));
        Ok(NodeBroker { home: Home { dir: home.dir.clone() }, state, log: std::sync::Mutex::new(None) })
    }

    /// Append `entry` to the audit log (fsynced). After a failure the log is reopened, and so
    /// verified again, at the next decision.
    fn record(&self, entry: vouch_seal::audit::AuditEntry) -> Result<(), vouch_seal::Error> {
        let mut kept = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut log = match kept.take() {
            Some(log) => log,
            None => vouch_seal::audit::AuditLog::open(audit_path(&self.home))?,
        };
        log.append(entry)?;
        *kept = Some(log);
        Ok(())
    }

    /// Register `object` from the keystore if it is there with a valid policy.
    fn load(&self, broker: &mut vouch_seal::Broker, object: &ObjectId) -> Result<(), vouch_seal::Refusal> {
        let refuse = |found: String| vouch_seal::Refusal {
            rule: "object".into(),
            expected: "an object this broker holds a key and an access policy for".into(),
            found,
        };
        let entry = match read_entry(&self.home, object) {
            Ok(Some(e)) => e,
            Ok(None) => return Err(refuse(format!("no key for object {object}"))),
            Err(e) => return Err(refuse(format!("object {object}: the keystore entry is unreadable: {e:#}"))),
        };
        let Some(text) = entry.policy.as_deref() else {
            return Err(refuse(format!("object {object} was sealed without an access policy: released to no runtime")));
        };
        let policy = match &entry.policy_path {
            Some(path) => AccessPolicy::load(path),
            None => AccessPolicy::from_toml_str(text),
        }
        .map_err(|e| refuse(format!("object {object}: its policy: {e}")))?;
        let data = vouch_dag::block::parse_cid(&entry.data).map_err(|e| refuse(format!("object {object}: {e}")))?;
        let key = entry_key(&entry).map_err(|e| refuse(e.to_string()))?;
        broker.update(*object, data, key, policy);
        Ok(())
    }

    /// Answer one message.
    pub fn handle(&self, ask: BrokerAsk) -> BrokerAnswer {
        let now = unix_now();
        let mut broker = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match ask {
            BrokerAsk::Challenge { object } => {
                let object = ObjectId(object);
                // From the keystore each time: the owner may have changed the policy.
                let answer = self.load(&mut broker, &object).and_then(|()| broker.challenge(&object, now));
                match answer {
                    Ok(challenge) => BrokerAnswer::Challenge { challenge },
                    Err(refusal) => BrokerAnswer::Refused { refusal },
                }
            }
            BrokerAsk::Key { request } => {
                let req = match vouch_seal::KeyRequest::decode(&request) {
                    Ok(r) => r,
                    Err(e) => {
                        return BrokerAnswer::Refused {
                            refusal: vouch_seal::Refusal {
                                rule: "request".into(),
                                expected: "a valid key request".into(),
                                found: e.to_string(),
                            },
                        };
                    }
                };
                let decision = broker.decide(&req, now);
                let logged = self.record(vouch_seal::audit::AuditEntry::new(&req, &decision, now));
                if let Err(e) = logged {
                    // Unlogged, unanswered: no key leaves without its record.
                    return BrokerAnswer::Refused {
                        refusal: vouch_seal::Refusal {
                            rule: "audit".into(),
                            expected: "the decision recorded in the audit log".into(),
                            found: e.to_string(),
                        },
                    };
                }
                BrokerAnswer::Decision { decision }
            }
        }
    }
}

impl vouch_node::KeyService for NodeBroker {
    fn answer(&self, _peer: &vouch_net::PeerId, request: &[u8]) -> Vec<u8> {
        let answer = match serde_ipld_dagcbor::from_slice::<BrokerAsk>(request) {
            Ok(ask) => self.handle(ask),
            Err(e) => BrokerAnswer::Refused {
                refusal: vouch_seal::Refusal {
                    rule: "request".into(),
                    expected: "a broker message (docs/seal.md)".into(),
                    found: e.to_string(),
                },
            },
        };
        // Plain structs of bytes, strings and integers always encode.
        serde_ipld_dagcbor::to_vec(&answer).expect("broker answers encode")
    }
}

/// The brokers a run may ask: this node's own, then the nodes named by `--broker`.
struct Brokers<'h> {
    local: NodeBroker,
    remote: Vec<vouch_net::Multiaddr>,
    net: Option<RemoteBrokers>,
    home: &'h Home,
}

struct RemoteBrokers {
    rt: tokio::runtime::Runtime,
    net: vouch_net::NodeHandle,
    task: tokio::task::JoinHandle<()>,
    peers: Vec<vouch_net::PeerId>,
}

impl Drop for RemoteBrokers {
    fn drop(&mut self) {
        let (net, task) = (self.net.clone(), std::mem::replace(&mut self.task, self.rt.spawn(async {})));
        self.rt.block_on(async move {
            net.shutdown().await;
            let _ = task.await;
        });
    }
}

const BROKER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Brokers<'_> {
    fn connect(&mut self) -> Result<&RemoteBrokers> {
        if self.net.is_none() {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            let (net, task) = {
                let _in = rt.enter();
                vouch_net::Node::spawn(
                    vouch_net::Config::new(rand::random()),
                    std::sync::Arc::new(vouch_dag::MemoryBlocks::default()),
                )?
            };
            let mut peers = Vec::new();
            for addr in &self.remote {
                let peer = rt
                    .block_on(net.connect(addr.clone()))
                    .with_context(|| format!("--broker {addr}: cannot reach the key broker"))?;
                peers.push(peer);
            }
            self.net = Some(RemoteBrokers { rt, net, task, peers });
        }
        Ok(self.net.as_ref().expect("connected above"))
    }

    /// Send `ask` to broker `i` (0 = this node's own, then `--broker` in order).
    fn ask(&mut self, i: usize, ask: BrokerAsk) -> Result<BrokerAnswer> {
        if i == 0 {
            return Ok(self.local.handle(ask));
        }
        let r = self.connect()?;
        let peer = r.peers[i - 1];
        let body = serde_ipld_dagcbor::to_vec(&ask).expect("broker messages encode");
        let answer =
            r.rt.block_on(r.net.broker_request(peer, &body, BROKER_TIMEOUT))
                .with_context(|| format!("asking the key broker {peer}"))?;
        serde_ipld_dagcbor::from_slice(&answer).map_err(|e| anyhow!("the key broker {peer} answered garbage: {e}"))
    }

    fn count(&self) -> usize {
        1 + self.remote.len()
    }

    fn name(&self, i: usize) -> String {
        if i == 0 {
            format!("this node's broker ({})", self.home.dir.display())
        } else {
            format!("the broker at {}", self.remote[i - 1])
        }
    }
}

/// Keys for the sealed inputs of `spec`, released to this runtime by their owners' brokers:
/// this node's own first, then each `--broker` node. For each: a single-use challenge, fresh
/// evidence from this node binding a fresh ephemeral HPKE key, the job and the challenge, the
/// broker's appraisal and the owner's access policy, an audit-log entry on the broker's side;
/// the key comes back wrapped to the ephemeral key and is unwrapped here. A refusal is an
/// error naming the rule.
pub fn release(
    home: &Home,
    store: &vouch_store::Store,
    spec: &vouch_receipt::JobSpec,
    attest: &crate::job::Attest,
    node_key: &ed25519_dalek::SigningKey,
    brokers: &[vouch_net::Multiaddr],
    endorsements: &[vouch_seal::ModuleEndorsement],
) -> Result<crate::job::Released> {
    use vouch_seal::broker::{Decision, JobView, KeyRequest, request_nonce};
    let mut released = crate::job::Released::new();
    let job = spec.cid();
    let mut links = Brokers { local: NodeBroker::new(home)?, remote: brokers.to_vec(), net: None, home };
    let mut parts = vec![("module".to_string(), spec.module)];
    parts.extend(spec.inputs.iter().map(|(n, c)| (format!("input {n}"), *c)));
    let mut scratch_checked = false;
    for (what, cid) in &parts {
        let Some(header) = sealed_header(store, cid)? else { continue };
        if !scratch_checked {
            // Before any broker hears of this job: a runtime that could not keep the plaintext
            // off the disk gets no key (and no owner's audit log records a grant for it).
            crate::job::Scratch::private_parent()?;
            scratch_checked = true;
        }
        let object = header.object;
        // The first broker that holds the object issues the challenge and decides.
        let mut found = None;
        let mut why = Vec::new();
        for i in 0..links.count() {
            match links.ask(i, BrokerAsk::Challenge { object: object.0 })? {
                BrokerAnswer::Challenge { challenge } => {
                    found = Some((i, challenge));
                    break;
                }
                BrokerAnswer::Refused { refusal } => why.push(format!("{}: {}", links.name(i), refusal.found)),
                BrokerAnswer::Decision { .. } => {
                    bail!("{} answered a challenge request with a decision", links.name(i))
                }
            }
        }
        let Some((i, challenge)) = found else {
            bail!(
                "{what} ({cid}) is sealed (object {object}) and no broker asked releases it ({}); \
                 name its owner's node with --broker MULTIADDR",
                why.join("; ")
            );
        };
        let ephemeral = vouch_seal::HpkeSecretKey::generate();
        let nonce = request_nonce(&challenge, &ephemeral.public(), &job);
        let evidence = attest.current(home, store, node_key, Some(&nonce))?;
        let body = match &evidence.body {
            Some(vouch_receipt::EvidenceBody::Link(c)) => store.get(c)?,
            _ => Vec::new(),
        };
        let request = KeyRequest {
            object,
            job: JobView::from_spec(spec),
            node_key: node_key.verifying_key().to_bytes(),
            technology: evidence.technology.as_str().to_owned(),
            evidence: body,
            ephemeral_key: ephemeral.public(),
            challenge,
            endorsements: endorsements.to_vec(),
        };
        let refused = |r: vouch_seal::Refusal, who: String| {
            anyhow!(
                "{who} refused the key for {what} ({cid}): rule {}: expected {}, found {}",
                r.rule,
                r.expected,
                r.found
            )
        };
        match links.ask(i, BrokerAsk::Key { request: request.encode(spec) })? {
            BrokerAnswer::Decision { decision: Decision::Granted(g) } => {
                let key = vouch_seal::unwrap(vouch_seal::Purpose::KeyRelease, &g.wrapped, &ephemeral, &job, &object)
                    .map_err(|e| anyhow!("{what}: the released key does not unwrap: {e}"))?;
                if g.insecure {
                    eprintln!("warning: key for {what} released on `none` evidence: NO HARDWARE CLAIM");
                }
                released.insert(*cid, object.0, key, &g);
            }
            BrokerAnswer::Decision { decision: Decision::Refused(r) } | BrokerAnswer::Refused { refusal: r } => {
                return Err(refused(r, links.name(i)));
            }
            BrokerAnswer::Challenge { .. } => bail!("{} answered a key request with a challenge", links.name(i)),
        }
    }
    Ok(released)
}

fn set_policy(home: &Home, object: &str, policy: &Path) -> Result<()> {
    let text = fs::read_to_string(policy).with_context(|| format!("--policy {}", policy.display()))?;
    AccessPolicy::load(policy).map_err(|e| anyhow!("--policy {}: {e}", policy.display()))?;
    let entry = match object.parse::<ObjectId>() {
        Ok(id) => read_entry(home, &id)?,
        Err(_) => {
            let cid = vouch_dag::block::parse_cid(object)
                .with_context(|| format!("{object:?}: neither an object id nor a CID"))?;
            entry_by_cid(home, &cid)?
        }
    }
    .ok_or_else(|| anyhow!("this node's broker holds no sealed object {object}"))?;
    let (object, data) = (entry.object.clone(), entry.data.clone());
    store_policy(home, entry, text, Some(policy))?;
    println!("policy   set for object {object} ({data})");
    Ok(())
}

fn entry_by_cid(home: &Home, cid: &Cid) -> Result<Option<KeyEntry>> {
    let Ok(dir) = fs::read_dir(keys_dir(home)) else { return Ok(None) };
    for ent in dir {
        let path = ent?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let e: KeyEntry =
                serde_json::from_slice(&fs::read(&path)?).with_context(|| format!("{}", path.display()))?;
            if e.data == cid.to_string() {
                return Ok(Some(e));
            }
        }
    }
    Ok(None)
}

fn store_policy(home: &Home, mut entry: KeyEntry, text: String, path: Option<&Path>) -> Result<()> {
    entry.policy = Some(text);
    entry.policy_path = match path {
        Some(p) => {
            Some(fs::canonicalize(p).with_context(|| format!("{}", p.display()))?.to_string_lossy().into_owned())
        }
        None => None,
    };
    write_entry(home, &entry)
}

fn record_policy_path(home: &Home, object: &ObjectId, path: &Path) -> Result<()> {
    let entry = read_entry(home, object)?.ok_or_else(|| anyhow!("keystore entry {object} vanished"))?;
    let text = entry.policy.clone().unwrap_or_default();
    store_policy(home, entry, text, Some(path))
}

/// Set the access policy (TOML text, validated) of the sealed object `cid` this home's broker
/// holds.
pub fn set_policy_text(home: &Home, cid: &Cid, text: &str) -> Result<()> {
    AccessPolicy::from_toml_str(text).map_err(|e| anyhow!("the access policy: {e}"))?;
    let entry = entry_by_cid(home, cid)?.ok_or_else(|| anyhow!("this node's broker holds no sealed object {cid}"))?;
    store_policy(home, entry, text.to_owned(), None)
}

fn endorse(home: &Home, module: &str, output: &Path) -> Result<()> {
    let cid = vouch_dag::block::parse_cid(module).with_context(|| format!("{module:?} is not a module CID"))?;
    let key = home.identity()?;
    let e = vouch_seal::ModuleEndorsement::sign(&key, &cid);
    let bytes = serde_ipld_dagcbor::to_vec(&e).expect("endorsements encode");
    fs::write(output, bytes).with_context(|| format!("{}", output.display()))?;
    println!("endorsed {cid}");
    println!("signer   {}", hex::encode(e.signer));
    Ok(())
}

/// The module endorsements in `files` (`vouch broker endorse` output), each checked to decode.
pub fn read_endorsements(files: &[PathBuf]) -> Result<Vec<vouch_seal::ModuleEndorsement>> {
    files
        .iter()
        .map(|f| {
            let bytes = fs::read(f).with_context(|| format!("--endorsement {}", f.display()))?;
            serde_ipld_dagcbor::from_slice(&bytes)
                .map_err(|e| anyhow!("--endorsement {}: not an endorsement: {e}", f.display()))
        })
        .collect()
}
