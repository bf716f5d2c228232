//! Importing from the filesystem: files (leaves hashed on every core), directories, symlinks,
//! hidden-file filtering and wrapping, as `ipfs add` does it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;

use anyhow::{Context, Result, bail};
use vouch_dag::file::{FileImporter, Node, TreeBuilder, leaf_into, symlink};
use vouch_dag::{BlockSink, DagError, Params, dir::directory};

/// Chunks per job handed to a hashing worker.
const CHUNKS_PER_JOB: usize = 4;
/// Files at least this many chunks long are hashed in parallel.
const PARALLEL_MIN_CHUNKS: u64 = 16;

/// One object added, in the order `ipfs add` reports them (files, then their directory).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Added {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Hash")]
    pub cid: String,
    /// Cumulative DAG size, as Kubo reports it (a string, as Kubo's JSON has it).
    #[serde(rename = "Size")]
    pub size: String,
}

#[derive(Clone, Debug, Default)]
pub struct WalkOptions {
    pub recursive: bool,
    pub hidden: bool,
}

/// Import a stream of file bytes. Leaves are hashed on every core when `parallel`; the tree
/// is assembled in file order on the calling thread. `progress` gets byte counts read.
pub fn import_reader<R, S>(
    params: &Params,
    mut r: R,
    parallel: bool,
    sink: &mut S,
    progress: &dyn Fn(u64),
) -> Result<Node, S::Error>
where
    R: Read + Send,
    S: BlockSink,
{
    if !parallel {
        let mut f = FileImporter::new(params);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = read_full(&mut r, &mut buf)?;
            if n == 0 {
                break;
            }
            f.write(&buf[..n], sink)?;
            progress(n as u64);
        }
        return f.finish(sink);
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cs = params.chunk_size;
    // Buffers cycle reader → worker → this thread → back, so a large import allocates (and
    // page-faults) a bounded set of buffers once instead of two fresh ones per chunk.
    let chunk_pool: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    let block_pool: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    let take = |pool: &Mutex<Vec<Vec<u8>>>| pool.lock().ok().and_then(|mut p| p.pop()).unwrap_or_default();
    let give = |pool: &Mutex<Vec<Vec<u8>>>, bufs: Vec<Vec<u8>>| {
        if let Ok(mut p) = pool.lock() {
            p.extend(bufs);
        }
    };
    let (job_tx, job_rx) = sync_channel::<(u64, Vec<Vec<u8>>)>(workers);
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|s| {
        let (res_tx, res_rx) = sync_channel::<(u64, Vec<Vec<u8>>, Vec<(Node, Vec<u8>)>)>(workers);
        for _ in 0..workers {
            let (job_rx, res_tx, block_pool) = (&job_rx, res_tx.clone(), &block_pool);
            s.spawn(move || {
                loop {
                    // A poisoned lock means another worker panicked; stop quietly, the reader
                    // notices the closed channel.
                    let Ok(guard) = job_rx.lock() else { return };
                    let Ok((seq, chunks)) = guard.recv() else { return };
                    drop(guard);
                    let leaves = chunks
                        .iter()
                        .map(|c| {
                            let mut block = take(block_pool);
                            let node = leaf_into(params, c, &mut block);
                            (node, block)
                        })
                        .collect();
                    if res_tx.send((seq, chunks, leaves)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(res_tx);
        let chunk_pool = &chunk_pool;
        let reader = s.spawn(move || -> Result<(), DagError> {
            let mut seq = 0u64;
            let mut sent_any = false;
            loop {
                let mut chunks = Vec::with_capacity(CHUNKS_PER_JOB);
                while chunks.len() < CHUNKS_PER_JOB {
                    let mut c = take(chunk_pool);
                    c.resize(cs, 0);
                    let n = read_full(&mut r, &mut c)?;
                    if n == 0 {
                        break;
                    }
                    c.truncate(n);
                    let short = n < cs;
                    chunks.push(c);
                    if short {
                        break;
                    }
                }
                let last = chunks.len() < CHUNKS_PER_JOB || chunks.last().is_some_and(|c| c.len() < cs);
                if chunks.is_empty() && sent_any {
                    return Ok(());
                }
                if chunks.is_empty() {
                    // An empty file still has one (empty) leaf.
                    chunks.push(Vec::new());
                }
                sent_any = true;
                if job_tx.send((seq, chunks)).is_err() {
                    return Ok(());
                }
                seq += 1;
                if last {
                    return Ok(());
                }
            }
        });
        let mut tree = TreeBuilder::new(params);
        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        let mut result: Result<(), S::Error> = Ok(());
        for (seq, chunks, leaves) in res_rx.iter() {
            pending.insert(seq, (chunks, leaves));
            while let Some((chunks, leaves)) = pending.remove(&next) {
                next += 1;
                let mut blocks = Vec::with_capacity(leaves.len());
                for (chunk, (node, block)) in chunks.iter().zip(leaves) {
                    if result.is_ok() {
                        progress(node.filesize);
                        let bytes = if params.raw_leaves { &chunk[..] } else { &block[..] };
                        result = sink.put(&node.cid, bytes).and_then(|()| tree.push(node, sink));
                    }
                    blocks.push(block);
                }
                give(chunk_pool, chunks);
                give(&block_pool, blocks);
            }
        }
        // Cannot panic unless the reader thread panicked, which it does not.
        reader.join().expect("reader thread")?;
        result?;
        // Cannot be None: the reader always sends at least one leaf.
        Ok(tree.finish(sink)?.expect("at least one leaf"))
    })
}

pub(crate) fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, DagError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DagError::Io(e)),
        }
    }
    Ok(n)
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Adds paths, reporting each object as `ipfs add` would.
pub struct Adder<'a, S> {
    pub params: Params,
    pub walk: WalkOptions,
    pub sink: &'a mut S,
    pub on_added: &'a mut dyn FnMut(Added),
    pub progress: &'a dyn Fn(u64),
}

impl<S: BlockSink> Adder<'_, S>
where
    S::Error: std::error::Error + Send + Sync + 'static,
{
    /// Add `path` under display name `name`.
    pub fn add_path(&mut self, path: &Path, name: &str) -> Result<Node> {
        let meta = fs::symlink_metadata(path).with_context(|| format!("{}", path.display()))?;
        let ft = meta.file_type();
        let node = if ft.is_symlink() {
            let target = fs::read_link(path).with_context(|| format!("{}", path.display()))?;
            let target = target.to_str().with_context(|| format!("{}: symlink target is not UTF-8", path.display()))?;
            symlink(&self.params, target, self.sink)?
        } else if ft.is_dir() {
            if !self.walk.recursive {
                bail!("{} is a directory; use -r to add directories", path.display());
            }
            self.add_dir(path, name)?
        } else if ft.is_file() {
            let f = File::open(path).with_context(|| format!("{}", path.display()))?;
            let parallel = meta.len() >= PARALLEL_MIN_CHUNKS * self.params.chunk_size as u64;
            import_reader(&self.params, f, parallel, self.sink, self.progress)
                .with_context(|| format!("{}", path.display()))?
        } else {
            bail!("{}: not a regular file, directory or symlink", path.display());
        };
        (self.on_added)(Added { name: name.to_string(), cid: node.cid.to_string(), size: node.tsize.to_string() });
        Ok(node)
    }

    fn add_dir(&mut self, path: &Path, name: &str) -> Result<Node> {
        let mut names: Vec<(String, PathBuf)> = Vec::new();
        for entry in fs::read_dir(path).with_context(|| format!("{}", path.display()))? {
            let entry = entry.with_context(|| format!("{}", path.display()))?;
            let file_name = entry.file_name();
            let n = file_name
                .to_str()
                .with_context(|| format!("{}: file name {:?} is not UTF-8", path.display(), file_name))?
                .to_string();
            if !self.walk.hidden && is_hidden(&n) {
                continue;
            }
            names.push((n, entry.path()));
        }
        names.sort();
        let mut entries = Vec::with_capacity(names.len());
        for (n, p) in names {
            let child = self.add_path(&p, &format!("{name}/{n}"))?;
            entries.push((n, child));
        }
        Ok(directory(&self.params, entries, self.sink)?)
    }

    /// Wrap already-added top-level nodes in a directory (`-w`).
    pub fn wrap(&mut self, entries: Vec<(String, Node)>) -> Result<Node> {
        let node = directory(&self.params, entries, self.sink)?;
        (self.on_added)(Added { name: String::new(), cid: node.cid.to_string(), size: node.tsize.to_string() });
        Ok(node)
    }
}

/// The name `ipfs add` gives a top-level argument: its final component.
pub fn base_name(path: &Path) -> Result<String> {
    let canon;
    let p = if path.file_name().is_none() {
        canon = fs::canonicalize(path).with_context(|| format!("{}", path.display()))?;
        canon.as_path()
    } else {
        path
    };
    Ok(p.file_name().and_then(|n| n.to_str()).map_or_else(|| "root".to_string(), str::to_string))
}

/// Total bytes of regular files under `path` (for the progress bar), following the same
/// hidden-file rule as the walk.
pub fn total_size(path: &Path, walk: &WalkOptions) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else { return 0 };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() || !walk.recursive {
        return 0;
    }
    fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| walk.hidden || !e.file_name().to_str().is_some_and(is_hidden))
                .map(|e| total_size(&e.path(), walk))
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_dag::file::import_bytes;
    use vouch_dag::{Discard, MemoryBlocks};

    /// The parallel pipeline (reordering, buffer reuse, short last chunk) gives exactly the
    /// DAG of the plain sequential importer, for every leaf kind and every chunk-count edge.
    #[test]
    fn parallel_import_equals_sequential() {
        let data: Vec<u8> = (0..3_000_001u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for params in [
            Params { chunk_size: 4096, max_links: 7, ..Params::default() },
            Params { chunk_size: 4096, raw_leaves: true, cid_v1: true, ..Params::default() },
            Params::default(),
        ] {
            for len in [0, 1, 4096, 4096 * 4, 4096 * 4 + 1, 100_000, data.len()] {
                let mut seq_blocks = MemoryBlocks::default();
                let expected = import_bytes(&params, &data[..len], &mut seq_blocks).unwrap();
                let mut par_blocks = MemoryBlocks::default();
                let got = import_reader(&params, &data[..len], true, &mut par_blocks, &|_| {}).unwrap();
                assert_eq!(got, expected, "len {len} params {params:?}");
                assert_eq!(par_blocks.blocks, seq_blocks.blocks, "len {len}");
                assert_eq!(import_reader(&params, &data[..len], false, &mut Discard, &|_| {}).unwrap(), expected);
            }
        }
    }
}
