//! Building the DAG of one file: fixed-size chunks, leaves, and Kubo's balanced layout.
//!
//! The layout is that of `boxo/ipld/unixfs/importer/balanced`: all leaves at the same depth,
//! every internal node holds up to `max_links` children, filled left to right; a file of one
//! chunk is its leaf. The builder is streaming: it keeps one pending list of links per level,
//! so memory is O(depth × max_links) whatever the file size.

use std::borrow::Cow;

use cid::Cid;

use crate::block::{DAG_PB, RAW, cid_of};
use crate::dagpb::{self, PbLink};
use crate::pb;
use crate::unixfs::{DataType, UnixFs};
use crate::{BlockSink, Params};

/// A finished node of a file DAG: its CID, the file bytes under it, and its cumulative size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    pub cid: Cid,
    /// File bytes under this node.
    pub filesize: u64,
    /// The node's block plus all blocks under it (dag-pb's `Tsize`).
    pub tsize: u64,
}

/// Encode one chunk as a leaf block. Raw leaves are the chunk itself.
pub fn leaf<'a>(params: &Params, chunk: &'a [u8]) -> (Node, Cow<'a, [u8]>) {
    let mut out = Vec::new();
    let node = leaf_into(params, chunk, &mut out);
    if params.raw_leaves { (node, Cow::Borrowed(chunk)) } else { (node, Cow::Owned(out)) }
}

/// Like [`leaf`], but a dag-pb leaf is encoded into `out` (cleared first), so a caller can
/// reuse one buffer for every chunk; the chunk is copied exactly once. With raw leaves `out`
/// is left empty and the block is the chunk itself.
pub fn leaf_into(params: &Params, chunk: &[u8], out: &mut Vec<u8>) -> Node {
    out.clear();
    let n = chunk.len() as u64;
    if params.raw_leaves {
        return Node { cid: cid_of(RAW, chunk, false), filesize: n, tsize: n };
    }
    // PBNode { Data: UnixFS { Type: File, Data: chunk (omitted if empty), filesize } }, the
    // same bytes `dagpb::encode(&[], Some(&UnixFs{..}.encode()))` gives, written in one pass.
    let data_field = if chunk.is_empty() { 0 } else { 1 + pb::varint_len(n) + chunk.len() };
    let unixfs_len = 2 + data_field + 1 + pb::varint_len(n);
    out.reserve(1 + pb::varint_len(unixfs_len as u64) + unixfs_len);
    pb::put_key(out, 1, pb::WT_LEN);
    pb::put_varint(out, unixfs_len as u64);
    pb::put_u64(out, 1, DataType::File as u64);
    if !chunk.is_empty() {
        pb::put_bytes(out, 2, chunk);
    }
    pb::put_u64(out, 3, n);
    let cid = cid_of(DAG_PB, out, !params.cid_v1);
    Node { cid, filesize: n, tsize: out.len() as u64 }
}

/// The balanced-layout tree builder: feed it leaves in file order, then [`finish`].
///
/// [`finish`]: TreeBuilder::finish
pub struct TreeBuilder {
    params: Params,
    /// `levels[0]` holds leaves, `levels[i]` nodes of height i, each not yet under a parent.
    levels: Vec<Vec<Node>>,
}

impl TreeBuilder {
    pub fn new(params: &Params) -> Self {
        TreeBuilder { params: params.clone(), levels: vec![Vec::new()] }
    }

    /// Add the next leaf (made by [`leaf`] and already stored by the caller).
    pub fn push<S: BlockSink>(&mut self, node: Node, sink: &mut S) -> Result<(), S::Error> {
        self.push_at(0, node, sink)
    }

    fn push_at<S: BlockSink>(&mut self, level: usize, node: Node, sink: &mut S) -> Result<(), S::Error> {
        if self.levels.len() == level {
            self.levels.push(Vec::new());
        }
        if self.levels[level].len() == self.params.max_links {
            let full = std::mem::take(&mut self.levels[level]);
            let parent = self.internal(&full, sink)?;
            self.push_at(level + 1, parent, sink)?;
        }
        self.levels[level].push(node);
        Ok(())
    }

    /// Close every level and return the root. `None` when no leaf was pushed.
    pub fn finish<S: BlockSink>(mut self, sink: &mut S) -> Result<Option<Node>, S::Error> {
        let mut level = 0;
        loop {
            let top = self.levels.len() - 1;
            let pending = std::mem::take(&mut self.levels[level]);
            if level == top {
                return Ok(match pending.len() {
                    0 => None,
                    1 => Some(pending[0]),
                    _ => Some(self.internal(&pending, sink)?),
                });
            }
            if !pending.is_empty() {
                // Every leaf sits at the same depth: even a lone child gets its own parent.
                // Through push_at: the level above may be full already, and must then grow a
                // new level rather than a node with more than max_links children.
                let parent = self.internal(&pending, sink)?;
                self.push_at(level + 1, parent, sink)?;
            }
            level += 1;
        }
    }

    fn internal<S: BlockSink>(&self, children: &[Node], sink: &mut S) -> Result<Node, S::Error> {
        let mut u = UnixFs::new(DataType::File);
        u.filesize = Some(children.iter().map(|c| c.filesize).sum());
        u.blocksizes = children.iter().map(|c| c.filesize).collect();
        let links: Vec<PbLink> = children.iter().map(|c| PbLink::new(c.cid, "", c.tsize)).collect();
        let block = dagpb::encode(&links, Some(&u.encode()));
        let cid = cid_of(DAG_PB, &block, !self.params.cid_v1);
        sink.put(&cid, &block)?;
        let tsize = block.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
        Ok(Node { cid, filesize: u.filesize.unwrap_or(0), tsize })
    }
}

/// Streaming import of one file: push bytes in pieces of any size, then [`finish`].
///
/// [`finish`]: FileImporter::finish
pub struct FileImporter {
    params: Params,
    buf: Vec<u8>,
    tree: TreeBuilder,
}

impl FileImporter {
    pub fn new(params: &Params) -> Self {
        FileImporter {
            params: params.clone(),
            buf: Vec::with_capacity(params.chunk_size),
            tree: TreeBuilder::new(params),
        }
    }

    pub fn write<S: BlockSink>(&mut self, mut data: &[u8], sink: &mut S) -> Result<(), S::Error> {
        let cs = self.params.chunk_size;
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= cs {
                // Whole chunks straight from the caller's buffer: no copy.
                let (chunk, rest) = data.split_at(cs);
                self.emit(chunk, sink)?;
                data = rest;
                continue;
            }
            let take = (cs - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == cs {
                let chunk = std::mem::take(&mut self.buf);
                self.emit(&chunk, sink)?;
                self.buf = chunk;
                self.buf.clear();
            }
        }
        Ok(())
    }

    fn emit<S: BlockSink>(&mut self, chunk: &[u8], sink: &mut S) -> Result<(), S::Error> {
        let (node, block) = leaf(&self.params, chunk);
        sink.put(&node.cid, &block)?;
        self.tree.push(node, sink)
    }

    pub fn finish<S: BlockSink>(mut self, sink: &mut S) -> Result<Node, S::Error> {
        // A trailing partial chunk, or the single empty leaf of an empty file.
        let nothing_yet = self.tree.levels[0].is_empty() && self.tree.levels.len() == 1;
        if !self.buf.is_empty() || nothing_yet {
            let chunk = std::mem::take(&mut self.buf);
            self.emit(&chunk, sink)?;
        }
        // Cannot be None: at least one leaf was pushed just above or before.
        Ok(self.tree.finish(sink)?.expect("at least one leaf"))
    }
}

/// Import a whole in-memory file.
pub fn import_bytes<S: BlockSink>(params: &Params, data: &[u8], sink: &mut S) -> Result<Node, S::Error> {
    let mut f = FileImporter::new(params);
    f.write(data, sink)?;
    f.finish(sink)
}

/// A UnixFS symlink node.
pub fn symlink<S: BlockSink>(params: &Params, target: &str, sink: &mut S) -> Result<Node, S::Error> {
    let mut u = UnixFs::new(DataType::Symlink);
    u.data = Some(target.as_bytes());
    let block = dagpb::encode(&[], Some(&u.encode()));
    let cid = cid_of(DAG_PB, &block, !params.cid_v1);
    sink.put(&cid, &block)?;
    Ok(Node { cid, filesize: 0, tsize: block.len() as u64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBlocks;
    use crate::dagpb::PbNode;

    /// (links per node, level by level from the root) of the file DAG under `cid`.
    fn shape(blocks: &MemoryBlocks, cid: &Cid) -> Vec<Vec<usize>> {
        let mut levels = Vec::new();
        let mut current = vec![*cid];
        while !current.is_empty() {
            let mut next = Vec::new();
            let mut counts = Vec::new();
            for c in &current {
                let node = PbNode::decode(c, &blocks.blocks[c]).unwrap();
                counts.push(node.links.len());
                next.extend(node.links.iter().map(|l| l.cid));
            }
            levels.push(counts);
            current = next;
        }
        levels
    }

    /// A level that is already full when the builder finishes must grow a new level: five
    /// distinct leaves with two links per node are root → [2, 1] → [2, 2, 1] → leaves, never a
    /// root with three children (boxo's balanced layout).
    #[test]
    fn finish_never_overfills_a_level() {
        let p = Params { chunk_size: 1, max_links: 2, ..Params::default() };
        let mut blocks = MemoryBlocks::default();
        let root = import_bytes(&p, b"abcde", &mut blocks).unwrap();
        assert_eq!(shape(&blocks, &root.cid), vec![vec![2], vec![2, 1], vec![2, 2, 1], vec![0; 5]]);
        // Exactly max_links^2 leaves still fit under two levels.
        let root = import_bytes(&p, b"abcd", &mut blocks).unwrap();
        assert_eq!(shape(&blocks, &root.cid), vec![vec![2], vec![2, 2], vec![0; 4]]);
    }

    /// The one-pass leaf encoder writes exactly what the general encoders write.
    #[test]
    fn leaf_into_matches_the_general_encoding() {
        for len in [0usize, 1, 127, 128, 300, 16384, 262144] {
            let chunk: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut u = UnixFs::new(DataType::File);
            u.data = (!chunk.is_empty()).then_some(&chunk[..]);
            u.filesize = Some(len as u64);
            let expected = dagpb::encode(&[], Some(&u.encode()));
            let (node, block) = leaf(&Params::default(), &chunk);
            assert_eq!(&block[..], &expected[..], "len {len}");
            assert_eq!(node.tsize, expected.len() as u64);
        }
    }
}
