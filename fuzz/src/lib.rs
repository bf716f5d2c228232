//! The logic of vouch-dag's fuzz targets, as plain functions.
//!
//! Each `fuzz_targets/*.rs` is a one-line wrapper around a function here, and vouch-dag's
//! integration tests include this file (`tests/it/main.rs`) and run every function over a seed
//! corpus, so CI exercises the same code without libFuzzer. A function returns normally for any
//! input (an `Err` from the library is a fine outcome); it panics only when the library panics or
//! breaks an invariant asserted here.

use std::io::{self, Write};

use vouch_dag::block::{self, DAG_PB, RAW};
use vouch_dag::car::{self, CarReader, CarWriter};
use vouch_dag::dagpb::{self, PbNode};
use vouch_dag::export::{self, Kind};
use vouch_dag::unixfs::UnixFs;
use vouch_dag::{Cid, DagError, MemoryBlocks, json};

/// `car_reader`: arbitrary bytes as a CAR. Returns the number of blocks when the whole CAR is
/// valid. Invariants: every block handed out hashes to its CID, and a valid CAR written back
/// with [`CarWriter`] reads back to the same roots and blocks.
pub fn car_reader(data: &[u8]) -> Result<usize, DagError> {
    let mut reader = CarReader::new(data)?;
    let roots = reader.roots().to_vec();
    let mut blocks = Vec::new();
    while let Some((cid, bytes)) = reader.next_block()? {
        block::verify(&cid, &bytes).expect("CarReader hands out only verified blocks");
        // Link extraction must not panic whatever the codec; its result is irrelevant here.
        let _ = block::links(&cid, &bytes);
        blocks.push((cid, bytes));
    }
    let mut w = CarWriter::new(Vec::new(), &roots).expect("write to Vec");
    for (cid, bytes) in &blocks {
        w.write(cid, bytes).expect("write to Vec");
    }
    let again = w.finish().expect("write to Vec");
    let mut r2 = CarReader::new(&again[..]).expect("a CAR we wrote reads back");
    assert_eq!(r2.roots(), &roots[..], "roots survive a rewrite");
    let back: Vec<_> = r2.by_ref().collect::<Result<_, _>>().expect("a CAR we wrote reads back");
    assert_eq!(back, blocks, "blocks survive a rewrite");
    Ok(blocks.len())
}

/// `dagpb_unixfs`: arbitrary bytes as a dag-pb block, then its data as UnixFS, its DAG-JSON view
/// and its links. Invariants: the strict decoder accepts only the canonical form (re-encoding
/// gives the same bytes), and UnixFS decode∘encode is the identity on decoded messages.
pub fn dagpb_unixfs(data: &[u8]) -> Result<(), DagError> {
    let cid = block::cid_of(DAG_PB, data, false);
    let decoded = PbNode::decode(&cid, data);
    let json = json::to_json(&cid, data);
    let links = block::links(&cid, data);
    let kind = export::kind_of(&cid, data);
    let node = match decoded {
        Ok(n) => n,
        Err(e) => {
            assert!(json.is_err() && links.is_err() && kind.is_err(), "all dag-pb readers reject what decode rejects");
            return Err(e);
        }
    };
    assert_eq!(dagpb::encode(&node.links, node.data), data, "dag-pb decode accepted a non-canonical block");
    let json = json.expect("a block that decodes has a DAG-JSON view");
    assert_eq!(json["Links"].as_array().map(Vec::len), Some(node.links.len()));
    let links = links.expect("a block that decodes has links");
    assert_eq!(links, node.links.iter().map(|l| l.cid).collect::<Vec<_>>());
    // The raw view of the same bytes never fails.
    let raw = block::cid_of(RAW, data, false);
    json::to_json(&raw, data).expect("raw blocks always have a DAG-JSON view");
    let u = UnixFs::decode(&cid, node.data.unwrap_or_default())?;
    let bytes = u.encode();
    assert_eq!(UnixFs::decode(&cid, &bytes).expect("our own encoding decodes"), u);
    let _ = kind;
    Ok(())
}

/// Most blocks `export_file` builds from one input.
pub const MAX_BLOCKS: usize = 64;
/// Most file bytes `export_file` lets `read_file` write.
pub const MAX_OUTPUT: usize = 4 << 20;
/// Most block visits a full walk of the DAG (counting shared subtrees once per path) may take
/// before `export_file` skips the walking readers: see [`tree_visits`].
pub const MAX_VISITS: u64 = 20_000;

/// Blocks for `export_file` from fuzz input: records `[flags][len u16 LE][len bytes]` (the last
/// record takes what is left). Flags bit 0: dag-pb (else raw); bit 1: CIDv1 (dag-pb only).
///
/// Links are what make a DAG, and a fuzzer cannot guess SHA-256 digests, so the blocks are hashed
/// last to first, and every link of a dag-pb block that decodes is pointed at a later block: the
/// block it already names if that is a later one, else the later block chosen by the first byte of
/// the digest it names. The result is a real, hash-linked, acyclic DAG rooted at the first block.
pub fn blocks_from_input(data: &[u8]) -> Vec<(Cid, Vec<u8>)> {
    let mut records = Vec::new();
    let mut rest = data;
    while rest.len() >= 3 && records.len() < MAX_BLOCKS {
        let flags = rest[0];
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        records.push((flags, &rest[3..3 + len]));
        rest = &rest[3 + len..];
    }
    let mut out: Vec<(Cid, Vec<u8>)> = Vec::with_capacity(records.len());
    for (i, (flags, bytes)) in records.iter().enumerate().rev() {
        let later: Vec<Cid> = out.iter().map(|(c, _)| *c).collect();
        let pb = flags & 1 == 1;
        let mut bytes = bytes.to_vec();
        if pb {
            let scratch = block::cid_of(DAG_PB, &bytes, true);
            if let Ok(node) = PbNode::decode(&scratch, &bytes) {
                let mut links = node.links.clone();
                for l in &mut links {
                    if !later.contains(&l.cid) && !later.is_empty() {
                        let pick = l.cid.hash().digest().first().copied().unwrap_or(0) as usize;
                        l.cid = later[later.len() - 1 - pick % later.len()];
                    }
                }
                bytes = dagpb::encode(&links, node.data);
            }
        }
        let codec = if pb { DAG_PB } else { RAW };
        let cid = block::cid_of(codec, &bytes, flags & 2 == 0);
        out.push((cid, bytes));
        debug_assert_eq!(out.len(), records.len() - i);
    }
    out.reverse();
    out
}

/// The inverse of [`blocks_from_input`] for a DAG whose links already point forward (DFS
/// pre-order of a tree): how seeds are made from real imports.
pub fn input_from_blocks(blocks: &[(Cid, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (cid, bytes) in blocks {
        let v1 = u64::from(cid.version()) == 1;
        let flags = u8::from(cid.codec() == DAG_PB) | (u8::from(v1) << 1);
        let len = u16::try_from(bytes.len()).expect("seed blocks are under 64 KiB");
        out.push(flags);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// How many block visits a reader that follows every link without remembering (as `read_file`
/// and `list` do) makes from `blocks[0]`, saturating at `MAX_VISITS + 1`. Shared subtrees make
/// this exponential in the number of blocks: a 64-block DAG can stand for 2^64 reads.
pub fn tree_visits(blocks: &[(Cid, Vec<u8>)]) -> u64 {
    let mut visits = vec![0u64; blocks.len()];
    for i in (0..blocks.len()).rev() {
        let (cid, bytes) = &blocks[i];
        let mut n = 1u64;
        for l in block::links(cid, bytes).unwrap_or_default() {
            let child = blocks.iter().position(|(c, _)| *c == l).map_or(1, |j| visits[j]);
            n = n.saturating_add(child);
        }
        visits[i] = n.min(MAX_VISITS + 1);
    }
    visits.first().copied().unwrap_or(0)
}

/// A writer that fails once more than `MAX_OUTPUT` bytes were written.
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT {
            return Err(io::Error::other("output cap"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What `export_file` observed, for the seed-corpus tests.
#[derive(Debug, Default)]
pub struct ExportOutcome {
    pub kind: Option<Kind>,
    pub file: Option<Vec<u8>>,
    pub entries: Option<Vec<String>>,
    pub walked: usize,
}

/// `export_file`: a [`MemoryBlocks`] built by [`blocks_from_input`], then every exporter on its
/// first block. Invariants: `read_file` returns the size it wrote and `stat` claimed; a listing's
/// names are non-empty; `walk_dag` visits each reachable block once.
pub fn export_file(data: &[u8]) -> ExportOutcome {
    let blocks = blocks_from_input(data);
    let mut out = ExportOutcome::default();
    let Some((root, _)) = blocks.first().cloned() else { return out };
    let visits = tree_visits(&blocks);
    let mut store = MemoryBlocks::default();
    for (c, b) in &blocks {
        store.blocks.insert(*c, b.clone());
    }
    out.kind = export::stat(&store, &root).ok();
    let mut seen = std::collections::HashSet::new();
    let walked = car::walk_dag(&store, &root, |c, _| {
        assert!(seen.insert(*c), "walk_dag visited {c} twice");
        Ok(())
    });
    out.walked = seen.len();
    if walked.is_ok() {
        assert!(seen.len() <= blocks.len());
    }
    // Readers that follow links without memory: only when the tree they walk is bounded (see
    // tree_visits; a real DAG of that shape is a decompression bomb, not a bug to find here).
    if visits <= MAX_VISITS {
        let mut w = Capped(Vec::new());
        if let Ok(n) = export::read_file(&store, &root, &mut w) {
            assert_eq!(n as usize, w.0.len(), "read_file returns what it wrote");
            if let Some(Kind::File { size }) = &out.kind {
                assert_eq!(*size, n, "read_file agrees with stat");
            }
            out.file = Some(w.0);
        }
        if let Ok(entries) = export::list(&store, &root) {
            for e in &entries {
                // Lookups by a listed name terminate (found or not: a hostile shard may file an
                // entry under the wrong bucket).
                let _ = export::lookup(&store, &root, &e.name);
            }
            out.entries = Some(entries.into_iter().map(|e| e.name).collect());
        }
    }
    let _ = export::lookup(&store, &root, "a");
    let _ = export::resolve(&store, &root, "a/b/c");
    out
}
