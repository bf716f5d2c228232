//! The content commands: add, cat, get, ls, block, dag, car, pin, gc, repo.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use vouch_dag::block::{self, DAG_CBOR, DAG_PB, MAX_BLOCK_SIZE, RAW, parse_cid};
use vouch_dag::car::{CarReader, CarWriter, walk_dag};
use vouch_dag::export::{self, Kind, split_path};
use vouch_dag::{BlockSink, Cid, Discard, PROFILES, Params, parse_chunker};
use vouch_store::{Store, StoreError};

use crate::VerificationFailed;
use crate::home::Home;
use crate::import::{Added, Adder, WalkOptions, base_name, total_size};

/// Inputs smaller than this get no progress bar.
const PROGRESS_MIN_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Args, Clone)]
pub struct AddArgs {
    /// Files or directories to add.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Add directories recursively.
    #[arg(short, long)]
    pub recursive: bool,
    /// Include files and directories whose names start with '.'.
    #[arg(short = 'H', long)]
    pub hidden: bool,
    /// Wrap the added paths in a directory.
    #[arg(short = 'w', long)]
    pub wrap_with_directory: bool,
    /// Only compute the CIDs; store nothing.
    #[arg(short = 'n', long)]
    pub only_hash: bool,
    /// Print only the final root CID.
    #[arg(short = 'Q', long)]
    pub quieter: bool,
    /// Print only CIDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// CID version: 0 (Qm…) or 1 (bafy…; implies --raw-leaves, as in Kubo).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub cid_version: Option<u8>,
    /// Store file chunks as raw blocks.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    pub raw_leaves: Option<bool>,
    /// Chunking: size-N (bytes, 1..=1048576).
    #[arg(short = 's', long)]
    pub chunker: Option<String>,
    /// A named import profile (IPIP-499): unixfs-v0-2015 (Kubo's defaults) or unixfs-v1-2025.
    #[arg(long)]
    pub profile: Option<String>,
    /// Pin what is added.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub pin: bool,
    /// Show a progress bar on stderr when it is a terminal and the input is large.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub progress: bool,
    /// One JSON object per added object, as Kubo's --enc=json prints them.
    #[arg(long)]
    pub json: bool,
}

impl AddArgs {
    /// The import parameters these flags select, with Kubo's precedence: a profile sets the
    /// base, explicit flags override it, and CIDv1 implies raw leaves unless told otherwise.
    pub fn params(&self) -> Result<Params> {
        let mut p = match &self.profile {
            Some(name) => Params::profile(name)
                .with_context(|| format!("unknown profile {name:?}; known profiles: {}", PROFILES.join(", ")))?,
            None => Params::default(),
        };
        if let Some(v) = self.cid_version {
            p.cid_v1 = v == 1;
            p.raw_leaves = v == 1;
        }
        if let Some(r) = self.raw_leaves {
            p.raw_leaves = r;
        }
        if let Some(c) = &self.chunker {
            p.chunk_size = parse_chunker(c)?;
        }
        Ok(p)
    }
}

fn progress_bar(total: u64, enabled: bool) -> Option<ProgressBar> {
    use std::io::IsTerminal;
    if !enabled || total < PROGRESS_MIN_BYTES || !io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(pb)
}

pub fn add(home: &Home, a: AddArgs) -> Result<()> {
    let params = a.params()?;
    for p in &a.paths {
        fs::symlink_metadata(p).with_context(|| format!("{}", p.display()))?;
    }
    let walk = WalkOptions { recursive: a.recursive, hidden: a.hidden };
    let total: u64 = a.paths.iter().map(|p| total_size(p, &walk)).sum();
    let pb = progress_bar(total, a.progress);
    let progress = |n: u64| {
        if let Some(pb) = &pb {
            pb.inc(n);
        }
    };
    let mut lines: Vec<Added> = Vec::new();
    let mut on_added = |x: Added| lines.push(x);
    let roots = if a.only_hash {
        let mut sink = Discard;
        add_all(&a, &params, walk, &mut sink, &mut on_added, &progress)?
    } else {
        let store = home.store()?;
        let mut batch = store.batch()?;
        let roots = add_all(&a, &params, walk, &mut batch, &mut on_added, &progress)?;
        if a.pin {
            roots.iter().for_each(|r| batch.pin(*r));
        }
        batch.commit()?;
        // A running daemon announces what it now stores (it shares this store).
        if a.pin {
            for r in &roots {
                crate::node_cli::announce(home, r)?;
            }
        }
        roots
    };
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let mut out = io::stdout().lock();
    if a.quieter {
        if let Some(last) = roots.last() {
            writeln!(out, "{last}")?;
        }
        return Ok(());
    }
    for l in &lines {
        if a.json {
            writeln!(out, "{}", serde_json::to_string(l)?)?;
        } else if a.quiet {
            writeln!(out, "{}", l.cid)?;
        } else if l.name.is_empty() {
            writeln!(out, "added {}", l.cid)?;
        } else {
            writeln!(out, "added {} {}", l.cid, l.name)?;
        }
    }
    Ok(())
}

fn add_all<S: BlockSink>(
    a: &AddArgs,
    params: &Params,
    walk: WalkOptions,
    sink: &mut S,
    on_added: &mut dyn FnMut(Added),
    progress: &dyn Fn(u64),
) -> Result<Vec<Cid>>
where
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let mut adder = Adder { params: params.clone(), walk, sink, on_added, progress };
    let mut tops = Vec::new();
    for p in &a.paths {
        let name = base_name(p)?;
        tops.push((name.clone(), adder.add_path(p, &name)?));
    }
    if a.wrap_with_directory {
        return Ok(vec![adder.wrap(tops)?.cid]);
    }
    Ok(tops.into_iter().map(|(_, n)| n.cid).collect())
}

fn parse_path(s: &str) -> Result<(Cid, String)> {
    Ok(split_path(s)?)
}

/// Resolve CID[/path] against the store.
fn resolve(store: &Store, s: &str) -> Result<Cid> {
    let (root, path) = parse_path(s)?;
    Ok(export::resolve(store, &root, &path)?)
}

pub fn cat(home: &Home, path: &str, timeout: std::time::Duration) -> Result<()> {
    let (root, p) = parse_path(path)?;
    let store = home.store()?;
    crate::node_cli::ensure_local(home, &store, &root, timeout).with_context(|| format!("{root}"))?;
    let cid = export::resolve(&store, &root, &p)?;
    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    export::read_file(&store, &cid, &mut out)?;
    out.flush()?;
    Ok(())
}

pub fn get(home: &Home, path: &str, output: Option<PathBuf>, timeout: std::time::Duration) -> Result<()> {
    let (root, p) = parse_path(path)?;
    let store = home.store()?;
    crate::node_cli::ensure_local(home, &store, &root, timeout).with_context(|| format!("{root}"))?;
    let cid = export::resolve(&store, &root, &p)?;
    let default_name = p.rsplit('/').find(|s| !s.is_empty()).map_or_else(|| root.to_string(), str::to_string);
    let out = output.unwrap_or_else(|| PathBuf::from(default_name));
    if fs::symlink_metadata(&out).is_ok() {
        bail!("{}: already exists; not overwriting", out.display());
    }
    // Build the tree beside its destination, then rename it into place: a failure part way
    // (a corrupt block, a full disk) leaves nothing half-written at `out`.
    let file_name = out.file_name().map_or_else(|| "get".into(), |n| n.to_string_lossy().into_owned());
    let tmp = out.with_file_name(format!(".{file_name}.vouch-partial-{}", std::process::id()));
    if let Err(e) = write_tree(&store, &cid, &tmp) {
        remove_partial(&tmp);
        return Err(e);
    }
    if let Err(e) = rename_noreplace(&tmp, &out) {
        remove_partial(&tmp);
        return Err(e).with_context(|| format!("{}", out.display()));
    }
    println!("Saved {} to {}", cid, out.display());
    Ok(())
}

fn remove_partial(path: &Path) {
    // Best effort: the partial tree is ours (created with O_EXCL / mkdir under a fresh name).
    let _ = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => Ok(()),
    };
}

/// rename(2) that fails instead of replacing an existing destination.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths; renameat2 reads them and keeps no reference.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), libc::RENAME_NOREPLACE) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Write the UnixFS object `cid` at `dest`. Names from the DAG are checked (no '/', '.', '..')
/// and files are created with O_EXCL, so a hostile DAG cannot write outside `dest`.
pub fn write_tree<B>(store: &B, cid: &Cid, dest: &Path) -> Result<()>
where
    B: vouch_dag::BlockSource,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut stack = vec![(*cid, dest.to_path_buf())];
    while let Some((c, path)) = stack.pop() {
        match export::stat(store, &c)? {
            Kind::File { .. } => {
                let f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .with_context(|| format!("{}", path.display()))?;
                let mut w = BufWriter::with_capacity(1 << 20, f);
                export::read_file(store, &c, &mut w)?;
                w.flush().with_context(|| format!("{}", path.display()))?;
            }
            Kind::Directory | Kind::ShardedDirectory => {
                fs::create_dir(&path).with_context(|| format!("{}", path.display()))?;
                for e in export::list(store, &c)? {
                    vouch_dag::dir::check_name(&e.name).with_context(|| format!("directory {c}"))?;
                    stack.push((e.cid, path.join(&e.name)));
                }
            }
            Kind::Symlink { target } => {
                std::os::unix::fs::symlink(&target, &path).with_context(|| format!("{}", path.display()))?;
            }
            Kind::Other { codec } => {
                bail!("{c}: codec {codec:#x} is not UnixFS; use `vouch dag get` or `vouch block get`")
            }
        }
    }
    Ok(())
}

pub fn ls(home: &Home, path: &str, json: bool) -> Result<()> {
    let store = home.store()?;
    let cid = resolve(&store, path)?;
    let entries = export::list(&store, &cid)?;
    let mut out = io::stdout().lock();
    for e in entries {
        if json {
            writeln!(out, "{}", serde_json::json!({"Name": e.name, "Hash": e.cid.to_string(), "Size": e.tsize}))?;
        } else {
            writeln!(out, "{} {} {}", e.cid, e.tsize, e.name)?;
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum BlockCmd {
    /// Print a block's raw bytes.
    Get { cid: String },
    /// Store a block read from FILE (or stdin) and print its CID.
    Put {
        file: Option<PathBuf>,
        /// Codec of the block: raw, dag-pb or dag-cbor (checked before storing).
        #[arg(long, default_value = "raw")]
        cid_codec: String,
        #[arg(long, default_value_t = true, action = ArgAction::Set)]
        pin: bool,
    },
    /// Print a block's CID and size.
    Stat {
        cid: String,
        #[arg(long)]
        json: bool,
    },
}

pub fn block(home: &Home, c: BlockCmd) -> Result<()> {
    match c {
        BlockCmd::Get { cid } => {
            let cid = parse_cid(&cid)?;
            let data = home.store()?.get(&cid)?;
            io::stdout().lock().write_all(&data)?;
        }
        BlockCmd::Put { file, cid_codec, pin } => {
            let codec = match cid_codec.as_str() {
                "raw" => RAW,
                "dag-pb" => DAG_PB,
                "dag-cbor" => DAG_CBOR,
                other => bail!("unknown codec {other:?}; expected raw, dag-pb or dag-cbor"),
            };
            let mut data = Vec::new();
            let limit = MAX_BLOCK_SIZE as u64 + 1;
            match &file {
                Some(p) => {
                    File::open(p).with_context(|| format!("{}", p.display()))?.take(limit).read_to_end(&mut data)?
                }
                None => io::stdin().lock().take(limit).read_to_end(&mut data)?,
            };
            if data.len() > MAX_BLOCK_SIZE {
                bail!("block is larger than the {MAX_BLOCK_SIZE}-byte limit");
            }
            let cid = block::cid_of(codec, &data, false);
            let links = block::links(&cid, &data).context("the bytes are not a valid block of that codec")?;
            let store = home.store()?;
            for l in &links {
                if !store.has(l)? {
                    eprintln!("note: linked block {l} is not in the store");
                }
            }
            let mut batch = store.batch()?;
            batch.put(&cid, &data)?;
            if pin && links.iter().all(|l| store.has(l).unwrap_or(false)) {
                batch.pin(cid);
            }
            batch.commit()?;
            println!("{cid}");
        }
        BlockCmd::Stat { cid, json } => {
            let cid = parse_cid(&cid)?;
            let size = home.store()?.block_size(&cid)?.ok_or(StoreError::NotFound { cid })?;
            if json {
                println!("{}", serde_json::json!({"Key": cid.to_string(), "Size": size}));
            } else {
                println!("Key: {cid}\nSize: {size}");
            }
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum DagCmd {
    /// Print a block as DAG-JSON (dag-pb, dag-cbor, raw): CID[/path].
    Get { path: String },
}

pub fn dag(home: &Home, c: DagCmd) -> Result<()> {
    match c {
        DagCmd::Get { path } => {
            let store = home.store()?;
            let cid = resolve(&store, &path)?;
            let data = store.get(&cid)?;
            println!("{}", serde_json::to_string(&vouch_dag::json::to_json(&cid, &data)?)?);
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum CarCmd {
    /// Write the DAG under CID as a CARv1 file (or to stdout).
    Export {
        cid: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Import CAR files, verifying every block; pins the roots.
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value_t = true, action = ArgAction::Set)]
        pin_roots: bool,
        #[arg(long)]
        json: bool,
    },
}

pub fn car(home: &Home, c: CarCmd) -> Result<()> {
    match c {
        CarCmd::Export { cid, output } => {
            let root = parse_cid(&cid)?;
            let store = home.store()?;
            match output {
                Some(path) => write_car_file(&store, &root, &path)?,
                None => {
                    // Check completeness first, so a failed export writes nothing.
                    store.check_complete(&root)?;
                    drop(export_car(&store, &root, BufWriter::with_capacity(1 << 20, io::stdout().lock()))?);
                }
            }
        }
        CarCmd::Import { files, pin_roots, json } => {
            let store = home.store()?;
            for f in files {
                let report = import_car(&store, &f, pin_roots).with_context(|| format!("{}", f.display()))?;
                if json {
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    for r in &report.roots {
                        println!("root {} {}", r, if pin_roots { "pinned" } else { "(not pinned)" });
                    }
                    println!(
                        "imported {} blocks ({} new, {} bytes) from {}",
                        report.blocks,
                        report.new_blocks,
                        report.new_bytes,
                        f.display()
                    );
                }
            }
        }
    }
    Ok(())
}

/// Write the DAG under `root` as a CARv1 file at `path`: completeness checked first, then
/// written beside it, fsynced and renamed into place, so a failure leaves no partial `path`.
pub fn write_car_file(store: &Store, root: &Cid, path: &Path) -> Result<()> {
    store.check_complete(root)?;
    let tmp = path.with_extension("car.partial");
    let f = File::create(&tmp).with_context(|| format!("{}", tmp.display()))?;
    export_car(store, root, BufWriter::with_capacity(1 << 20, f))?.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))?;
    Ok(())
}

fn export_car<W: Write>(store: &Store, root: &Cid, w: BufWriter<W>) -> Result<W> {
    let mut car = CarWriter::new(w, &[*root])?;
    walk_dag(store, root, |c, d| car.write(c, d).map_err(|e| StoreError::Dag(e.into())))?;
    let w = car.finish()?;
    w.into_inner().map_err(|e| e.into_error().into())
}

#[derive(serde::Serialize)]
pub struct CarReport {
    pub roots: Vec<String>,
    pub blocks: u64,
    pub new_blocks: u64,
    pub new_bytes: u64,
}

/// Import one CAR: every block verified; nothing becomes visible unless the whole file reads
/// cleanly and (when pinning) every root's DAG is complete.
pub fn import_car(store: &Store, path: &Path, pin_roots: bool) -> Result<CarReport> {
    let f = File::open(path)?;
    let mut reader = CarReader::new(BufReader::with_capacity(1 << 20, f))?;
    let roots = reader.roots().to_vec();
    let mut batch = store.batch()?;
    let mut linked = std::collections::HashMap::new();
    let mut blocks = 0u64;
    while let Some((cid, data)) = reader.next_block()? {
        if pin_roots {
            linked.insert(cid, block::links(&cid, &data)?);
        }
        batch.put(&cid, &data)?;
        blocks += 1;
    }
    if pin_roots {
        for root in &roots {
            check_complete_with(store, &linked, root)?;
            batch.pin(*root);
        }
    }
    let stats = batch.commit()?;
    Ok(CarReport {
        roots: roots.iter().map(ToString::to_string).collect(),
        blocks,
        new_blocks: stats.blocks,
        new_bytes: stats.bytes,
    })
}

/// Completeness over this import's blocks plus the store.
fn check_complete_with(store: &Store, linked: &std::collections::HashMap<Cid, Vec<Cid>>, root: &Cid) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![*root];
    while let Some(c) = stack.pop() {
        if c.hash().code() == block::IDENTITY || !seen.insert(c) {
            continue;
        }
        if let Some(ls) = linked.get(&c) {
            stack.extend(ls.iter().copied());
        } else {
            let data = store.get(&c).map_err(|e| match e {
                StoreError::NotFound { cid } => anyhow::anyhow!("root {root} is incomplete: block {cid} is in neither the CAR nor the store; nothing imported (use --pin-roots=false to import the blocks anyway)"),
                e => e.into(),
            })?;
            stack.extend(block::links(&c, &data)?);
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum PinCmd {
    /// Pin DAGs recursively (each must be complete in the store).
    Add {
        #[arg(required = true)]
        cids: Vec<String>,
    },
    /// Remove pins.
    Rm {
        #[arg(required = true)]
        cids: Vec<String>,
    },
    /// List pins.
    Ls {
        #[arg(long)]
        json: bool,
    },
}

pub fn pin(home: &Home, c: PinCmd) -> Result<()> {
    let store = home.store()?;
    match c {
        PinCmd::Add { cids } => {
            for c in cids {
                let cid = resolve(&store, &c)?;
                store.pin_add(&cid)?;
                println!("pinned {cid} recursively");
            }
        }
        PinCmd::Rm { cids } => {
            for c in cids {
                let cid = parse_cid(&c)?;
                store.pin_rm(&cid)?;
                println!("unpinned {cid}");
            }
        }
        PinCmd::Ls { json } => {
            for p in store.pins()? {
                if json {
                    println!("{}", serde_json::json!({"Cid": p.to_string(), "Type": "recursive"}));
                } else {
                    println!("{p} recursive");
                }
            }
        }
    }
    Ok(())
}

pub fn gc(home: &Home, json: bool) -> Result<()> {
    let stats = home.store()?.gc()?;
    if json {
        let removed: Vec<String> = stats.removed.iter().map(ToString::to_string).collect();
        println!("{}", serde_json::json!({"removed": removed, "bytes_freed": stats.bytes_freed}));
    } else {
        for c in &stats.removed {
            println!("removed {c}");
        }
        println!("removed {} blocks, freed {} bytes", stats.removed.len(), stats.bytes_freed);
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum RepoCmd {
    /// Block, pack and pin totals.
    Stat {
        #[arg(long)]
        json: bool,
    },
    /// Read and hash-check every stored block (exit 1 if any is corrupt).
    Verify,
}

pub fn repo(home: &Home, c: RepoCmd) -> Result<()> {
    let store = home.store()?;
    match c {
        RepoCmd::Stat { json } => {
            let s = store.stats()?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"blocks": s.blocks, "block_bytes": s.block_bytes, "packs": s.packs, "pack_bytes": s.pack_bytes, "pins": s.pins, "path": store.dir()})
                );
            } else {
                println!(
                    "path: {}\nblocks: {}\nblock bytes: {}\npacks: {}\npack bytes: {}\npins: {}",
                    store.dir().display(),
                    s.blocks,
                    s.block_bytes,
                    s.packs,
                    s.pack_bytes,
                    s.pins
                );
            }
        }
        RepoCmd::Verify => {
            let bad = store.verify_all()?;
            for (cid, e) in &bad {
                println!("corrupt {cid}: {e}");
            }
            if !bad.is_empty() {
                return Err(VerificationFailed(format!("{} corrupt blocks", bad.len())).into());
            }
            println!("all blocks verified");
        }
    }
    Ok(())
}

pub fn id(home: &Home, json: bool) -> Result<()> {
    let key = home.identity()?;
    let public = hex::encode(key.verifying_key().to_bytes());
    let peer = vouch_node::peer_id_of(&key.verifying_key()).to_string();
    // Listen addresses are known while a daemon runs.
    let addrs: Vec<String> = match crate::node_cli::running_daemon(home) {
        Some(_) => fs::read_to_string(home.dir.join(vouch_node::SWARM_FILE))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        None => Vec::new(),
    };
    if json {
        println!("{}", serde_json::json!({"ID": peer, "PublicKey": public, "KeyType": "ed25519", "Addresses": addrs}));
    } else {
        println!("peer id: {peer}");
        println!("public key (ed25519): {public}");
        for a in &addrs {
            println!("address: {a}");
        }
    }
    Ok(())
}
