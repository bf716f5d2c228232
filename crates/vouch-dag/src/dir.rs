//! Building UnixFS directories: flat ones, and HAMT-sharded ones once they grow past the
//! threshold, exactly as Kubo shards them.

use std::collections::BTreeMap;

use cid::Cid;

use crate::block::{DAG_PB, cid_of};
use crate::dagpb::{self, PbLink};
use crate::file::Node;
use crate::unixfs::{DataType, UnixFs};
use crate::{BlockSink, DagError, HamtEstimate, Params};

/// Multicodec of murmur3-x64-64, the HAMT hash function UnixFS uses.
pub const MURMUR3_X64_64: u64 = 0x22;

/// Check a directory entry name the way UnixFS requires.
pub fn check_name(name: &str) -> Result<(), DagError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(DagError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// Build a directory from its entries (in any order) and store its block(s).
/// Duplicate names are an error.
pub fn directory<S: BlockSink>(
    params: &Params,
    mut entries: Vec<(String, Node)>,
    sink: &mut S,
) -> Result<Node, S::Error> {
    for (name, _) in &entries {
        check_name(name)?;
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(DagError::InvalidName(format!("{} (appears twice)", w[0].0)).into());
    }
    if needs_sharding(params, &entries) {
        return hamt(params, entries, sink);
    }
    let links: Vec<PbLink> = entries.iter().map(|(n, e)| PbLink::new(e.cid, n.as_str(), e.tsize)).collect();
    finish_node(params, &links, &UnixFs::new(DataType::Directory), sink)
}

fn needs_sharding(params: &Params, entries: &[(String, Node)]) -> bool {
    let estimate: usize = match params.hamt_estimate {
        HamtEstimate::Links => entries.iter().map(|(n, e)| n.len() + e.cid.encoded_len()).sum(),
        HamtEstimate::Block => {
            let data_len = UnixFs::new(DataType::Directory).encode().len();
            2 + data_len
                + entries.iter().map(|(n, e)| PbLink::new(e.cid, n.as_str(), e.tsize).encoded_len()).sum::<usize>()
        }
    };
    if params.shard_at_threshold { estimate >= params.hamt_threshold } else { estimate > params.hamt_threshold }
}

fn finish_node<S: BlockSink>(params: &Params, links: &[PbLink], u: &UnixFs, sink: &mut S) -> Result<Node, S::Error> {
    let block = dagpb::encode(links, Some(&u.encode()));
    let cid = cid_of(DAG_PB, &block, !params.cid_v1);
    sink.put(&cid, &block)?;
    let tsize = block.len() as u64 + links.iter().filter_map(|l| l.tsize).sum::<u64>();
    Ok(Node { cid, filesize: 0, tsize })
}

/// The 64-bit HAMT hash of a name: the first half of murmur3-x64-128 (seed 0), big-endian, as
/// `github.com/spaolacci/murmur3`'s `New64().Sum(nil)` gives it.
pub fn hamt_hash(name: &str) -> [u8; 8] {
    // Cannot fail: reading from a byte slice.
    let h = murmur3::murmur3_x64_128(&mut name.as_bytes(), 0).expect("read from slice");
    let h1 = h as u64;
    h1.to_be_bytes()
}

enum Slot {
    Value(String, Node),
    Shard(Shard),
}

#[derive(Default)]
struct Shard {
    slots: BTreeMap<usize, Slot>,
}

/// Bits of `hash` from bit offset `depth * bits`, most significant first.
fn slot_index(hash: &[u8; 8], depth: usize, bits: usize) -> Option<usize> {
    let start = depth * bits;
    if start + bits > 64 {
        return None;
    }
    let v = u64::from_be_bytes(*hash);
    Some(((v << start) >> (64 - bits)) as usize)
}

impl Shard {
    fn insert(&mut self, depth: usize, bits: usize, name: String, node: Node) -> Result<(), DagError> {
        let hash = hamt_hash(&name);
        let idx = slot_index(&hash, depth, bits)
            .ok_or_else(|| DagError::InvalidName(format!("{name} (HAMT hash exhausted)")))?;
        match self.slots.remove(&idx) {
            None => {
                self.slots.insert(idx, Slot::Value(name, node));
            }
            Some(Slot::Shard(mut child)) => {
                child.insert(depth + 1, bits, name, node)?;
                self.slots.insert(idx, Slot::Shard(child));
            }
            Some(Slot::Value(old_name, old_node)) => {
                let mut child = Shard::default();
                child.insert(depth + 1, bits, old_name, old_node)?;
                child.insert(depth + 1, bits, name, node)?;
                self.slots.insert(idx, Slot::Shard(child));
            }
        }
        Ok(())
    }

    fn store<S: BlockSink>(&self, params: &Params, sink: &mut S) -> Result<Node, S::Error> {
        let width = format!("{:X}", params.hamt_fanout - 1).len();
        let mut links = Vec::with_capacity(self.slots.len());
        // The occupied slots as a big-endian integer (bit i = slot i), leading zero bytes
        // stripped: go-bitfield's `Bytes()`, which Kubo writes.
        let mut bitfield = vec![0u8; params.hamt_fanout.div_ceil(8)];
        for (&idx, slot) in &self.slots {
            let last = bitfield.len() - 1;
            bitfield[last - idx / 8] |= 1 << (idx % 8);
            let prefix = format!("{idx:0width$X}");
            links.push(match slot {
                Slot::Value(name, node) => PbLink::new(node.cid, format!("{prefix}{name}"), node.tsize),
                Slot::Shard(child) => {
                    let node = child.store(params, sink)?;
                    PbLink::new(node.cid, prefix, node.tsize)
                }
            });
        }
        let first = bitfield.iter().position(|&b| b != 0).unwrap_or(bitfield.len());
        let mut u = UnixFs::new(DataType::HamtShard);
        u.data = (first < bitfield.len()).then_some(&bitfield[first..]);
        u.hash_type = Some(MURMUR3_X64_64);
        u.fanout = Some(params.hamt_fanout as u64);
        finish_node(params, &links, &u, sink)
    }
}

fn hamt<S: BlockSink>(params: &Params, entries: Vec<(String, Node)>, sink: &mut S) -> Result<Node, S::Error> {
    let bits = params.hamt_fanout.trailing_zeros() as usize;
    let mut root = Shard::default();
    for (name, node) in entries {
        root.insert(0, bits, name, node)?;
    }
    root.store(params, sink)
}

/// The CID of the empty directory under `params` (used when wrapping nothing, and in tests).
pub fn empty_directory_cid(params: &Params) -> Cid {
    let block = dagpb::encode(&[], Some(&UnixFs::new(DataType::Directory).encode()));
    cid_of(DAG_PB, &block, !params.cid_v1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBlocks;
    use crate::file::import_bytes;

    /// Kubo v0.22.0 `test/sharness/t0260-sharding.sh`: 2000 files `file$i` holding "$i\n",
    /// added with `Internal.UnixFSShardingSizeThreshold` = 1G (flat) and 1B (sharded). The CIDs
    /// are the ones that script asserts.
    fn sharness_dir(params: &Params) -> (Node, MemoryBlocks) {
        let mut blocks = MemoryBlocks::default();
        let entries = (1..=2000)
            .map(|i| {
                let node = import_bytes(params, format!("{i}\n").as_bytes(), &mut blocks).unwrap();
                (format!("file{i}"), node)
            })
            .collect();
        let root = directory(params, entries, &mut blocks).unwrap();
        (root, blocks)
    }

    #[test]
    fn kubo_sharness_sharding_vectors() {
        let flat = Params { hamt_threshold: 1 << 30, ..Params::default() };
        assert_eq!(sharness_dir(&flat).0.cid.to_string(), "QmavrTrQG4VhoJmantURAYuw3bowq3E2WcvP36NRQDAC1N");
        let sharded = Params { hamt_threshold: 1, ..Params::default() };
        let (root, blocks) = sharness_dir(&sharded);
        assert_eq!(root.cid.to_string(), "QmSCJD1KYLhVVHqBK3YyXuoEqHt7vggyJhzoFYbT8v1XYL");
        let e = crate::export::lookup(&blocks, &root.cid, "file100").unwrap().unwrap();
        assert_eq!(e.cid.to_string(), "QmZ3RfWk1u5LEGYLHA633B5TNJy3Du27K6Fny9wcxpowGS");
        assert_eq!(crate::export::list(&blocks, &root.cid).unwrap().len(), 2000);
        let v1 = Params { hamt_threshold: 1, cid_v1: true, raw_leaves: true, ..Params::default() };
        assert_eq!(sharness_dir(&v1).0.cid.to_string(), "bafybeibiemewfzzdyhq2l74wrd6qj2oz42usjlktgnlqv4yfawgouaqn4u");
    }

    /// boxo v0.11.0 `ipld/unixfs/hamt/hamt_test.go` TestDirBuilding: 200 entries
    /// `DIRNAME0..199`, each the empty directory, as one shard (inserted in any order).
    #[test]
    fn boxo_hamt_vector() {
        let p = Params { hamt_threshold: 1, ..Params::default() };
        let empty = directory(&p, vec![], &mut MemoryBlocks::default()).unwrap();
        let mut entries: Vec<(String, Node)> = (0..200).map(|i| (format!("DIRNAME{i}"), empty)).collect();
        entries.reverse();
        let root = directory(&p, entries, &mut MemoryBlocks::default()).unwrap();
        assert_eq!(root.cid.to_string(), "QmY89TkSEVHykWMHDmyejSWFj9CYNtvzw4UwnT9xbc4Zjc");
    }

    /// Bucket examples from the UnixFS spec's HAMT section ("470.txt" → 0x00 then 0x6E).
    #[test]
    fn murmur_buckets_match_the_spec() {
        assert_eq!(hamt_hash("470.txt")[..2], [0x00, 0x6e]);
        assert_eq!(hamt_hash("742.txt")[..2], [0x00, 0xff]);
        // spaolacci/murmur3 murmur_test.go: "hello" → h1 0xcbd8a7b341bd9b02.
        assert_eq!(hamt_hash("hello"), 0xcbd8a7b341bd9b02u64.to_be_bytes());
    }
}
