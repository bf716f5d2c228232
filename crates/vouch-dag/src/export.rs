//! Reading UnixFS back: what a CID is, file bytes, directory listings, path resolution
//! (through HAMT shards too). Every walk is iterative, so a hostile deep DAG cannot overflow
//! the stack, and every size claim is checked against the bytes actually found.

use std::io::Write;

use cid::Cid;

use crate::block::{DAG_PB, RAW};
use crate::dagpb::PbNode;
use crate::dir::{MURMUR3_X64_64, hamt_hash};
use crate::unixfs::{DataType, UnixFs};
use crate::{BlockSource, DagError};

/// What a CID names, as far as UnixFS is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A UnixFS file (dag-pb) or a raw block, with its size in bytes.
    File {
        size: u64,
    },
    Directory,
    /// A HAMT-sharded directory.
    ShardedDirectory,
    Symlink {
        target: String,
    },
    /// A block that is not UnixFS (dag-cbor, …).
    Other {
        codec: u64,
    },
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub cid: Cid,
    pub tsize: u64,
}

/// Decode the UnixFS data of a dag-pb block; a dag-pb node without data is not UnixFS.
fn unixfs<'a>(cid: &Cid, node: &PbNode<'a>) -> Result<UnixFs<'a>, DagError> {
    let data = node.data.ok_or_else(|| DagError::ufs(cid, "dag-pb node has no data field"))?;
    UnixFs::decode(cid, data)
}

/// What `cid` is.
pub fn stat<B: BlockSource>(src: &B, cid: &Cid) -> Result<Kind, B::Error> {
    let bytes = src.get(cid)?;
    Ok(kind_of(cid, &bytes)?)
}

/// What a block is, from its bytes.
pub fn kind_of(cid: &Cid, bytes: &[u8]) -> Result<Kind, DagError> {
    match cid.codec() {
        RAW => Ok(Kind::File { size: bytes.len() as u64 }),
        DAG_PB => {
            let node = PbNode::decode(cid, bytes)?;
            let u = unixfs(cid, &node)?;
            Ok(match u.kind {
                DataType::File | DataType::Raw => {
                    Kind::File { size: u.filesize.unwrap_or_else(|| u.data.map_or(0, |d| d.len() as u64)) }
                }
                DataType::Directory => Kind::Directory,
                DataType::HamtShard => Kind::ShardedDirectory,
                DataType::Symlink => {
                    let t = u.data.unwrap_or_default();
                    let target =
                        String::from_utf8(t.to_vec()).map_err(|_| DagError::ufs(cid, "symlink target is not UTF-8"))?;
                    Kind::Symlink { target }
                }
                DataType::Metadata => return Err(DagError::ufs(cid, "metadata nodes are not supported")),
            })
        }
        codec => Ok(Kind::Other { codec }),
    }
}

/// Stream the bytes of the file `cid` into `out`; returns the number of bytes written.
/// Fails if the DAG's size claims do not match the data found. The root's claimed size bounds
/// the work: bytes past it are an error before they are written, so a small hostile DAG that
/// shares subtrees cannot make a reader stream more than the file says it holds.
pub fn read_file<B: BlockSource, W: Write>(src: &B, cid: &Cid, out: &mut W) -> Result<u64, B::Error> {
    let mut written = 0u64;
    let mut expected: Option<u64> = None;
    let mut emit = |bytes: &[u8], written: &mut u64, expected: Option<u64>| -> Result<(), DagError> {
        let total = *written + bytes.len() as u64;
        if let Some(size) = expected.filter(|&size| total > size) {
            return Err(DagError::ufs(cid, format!("file claims {size} bytes, DAG holds more")));
        }
        out.write_all(bytes)?;
        *written = total;
        Ok(())
    };
    let mut stack = vec![*cid];
    while let Some(c) = stack.pop() {
        let bytes = src.get(&c)?;
        match c.codec() {
            RAW => emit(&bytes, &mut written, expected)?,
            DAG_PB => {
                let node = PbNode::decode(&c, &bytes)?;
                let u = unixfs(&c, &node)?;
                if !matches!(u.kind, DataType::File | DataType::Raw) {
                    return Err(DagError::WrongKind { cid: c, expected: "file" }.into());
                }
                if expected.is_none() {
                    expected = Some(u.filesize.unwrap_or(u.data.map_or(0, |d| d.len() as u64)));
                }
                if !node.links.is_empty() && !u.blocksizes.is_empty() && u.blocksizes.len() != node.links.len() {
                    return Err(DagError::ufs(&c, "blocksizes and links differ in number").into());
                }
                if let Some(d) = u.data {
                    emit(d, &mut written, expected)?;
                }
                stack.extend(node.links.iter().rev().map(|l| l.cid));
            }
            codec => return Err(DagError::UnsupportedCodec { cid: c, codec }.into()),
        }
    }
    match expected {
        Some(size) if size != written => {
            Err(DagError::ufs(cid, format!("file claims {size} bytes, DAG holds {written}")).into())
        }
        _ => Ok(written),
    }
}

/// The entries of directory `cid` (flat or sharded). Flat directories list in link order
/// (sorted by name); sharded ones in shard order.
pub fn list<B: BlockSource>(src: &B, cid: &Cid) -> Result<Vec<DirEntry>, B::Error> {
    let bytes = src.get(cid)?;
    let node = PbNode::decode(cid, &bytes)?;
    let u = unixfs(cid, &node)?;
    match u.kind {
        DataType::Directory => Ok(node.links.iter().map(|l| entry(l.name(), l)).collect()),
        DataType::HamtShard => list_shard(src, cid, node, &u),
        _ => Err(DagError::WrongKind { cid: *cid, expected: "directory" }.into()),
    }
}

fn entry(name: &str, l: &crate::dagpb::PbLink) -> DirEntry {
    DirEntry { name: name.to_string(), cid: l.cid, tsize: l.tsize.unwrap_or(0) }
}

/// Width of the hex slot prefix in a shard of `fanout`, after checking the shard's parameters.
fn shard_width(cid: &Cid, u: &UnixFs) -> Result<usize, DagError> {
    if u.hash_type != Some(MURMUR3_X64_64) {
        return Err(DagError::ufs(
            cid,
            format!("HAMT hash type {:?}, only murmur3-x64-64 (0x22) is supported", u.hash_type),
        ));
    }
    match u.fanout {
        Some(f) if f.is_power_of_two() && (2..=1024).contains(&f) => Ok(format!("{:X}", f - 1).len()),
        f => Err(DagError::ufs(cid, format!("HAMT fanout {f:?} is not a power of two in 2..=1024"))),
    }
}

fn list_shard<B: BlockSource>(src: &B, root: &Cid, node: PbNode, u: &UnixFs) -> Result<Vec<DirEntry>, B::Error> {
    let width = shard_width(root, u)?;
    let mut out = Vec::new();
    // Links still to visit, next on top, each with its shard and that shard's prefix width: a
    // depth-first walk in slot order, so entries come out in the order the shard stores them.
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<(Cid, usize, crate::dagpb::PbLink)> =
        node.links.into_iter().rev().map(|l| (*root, width, l)).collect();
    while let Some((shard, width, l)) = stack.pop() {
        let name = l.name();
        // `get` also refuses a prefix that would split a multi-byte character.
        if !name.get(..width).is_some_and(|p| p.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(DagError::ufs(
                &shard,
                format!("shard link name {name:?} does not start with a {width}-digit slot"),
            )
            .into());
        }
        if name.len() == width {
            // A real HAMT never links one shard twice; refusing it bounds the walk by the
            // number of distinct blocks.
            if !seen.insert(l.cid) {
                return Err(DagError::ufs(&shard, format!("shard {} is linked more than once", l.cid)).into());
            }
            let bytes = src.get(&l.cid)?;
            let child = PbNode::decode(&l.cid, &bytes)?;
            let cu = unixfs(&l.cid, &child)?;
            if cu.kind != DataType::HamtShard {
                return Err(DagError::WrongKind { cid: l.cid, expected: "HAMT shard" }.into());
            }
            let child_width = shard_width(&l.cid, &cu)?;
            stack.extend(child.links.into_iter().rev().map(|cl| (l.cid, child_width, cl)));
        } else {
            out.push(entry(&name[width..], &l));
        }
    }
    Ok(out)
}

/// Look `name` up in directory `cid` (flat or sharded). `Ok(None)` when absent.
pub fn lookup<B: BlockSource>(src: &B, cid: &Cid, name: &str) -> Result<Option<DirEntry>, B::Error> {
    let mut current = *cid;
    let hash = hamt_hash(name);
    let mut depth = 0usize;
    loop {
        let bytes = src.get(&current)?;
        let node = PbNode::decode(&current, &bytes)?;
        let u = unixfs(&current, &node)?;
        match u.kind {
            DataType::Directory if depth == 0 => {
                return Ok(node.links.iter().find(|l| l.name() == name).map(|l| entry(name, l)));
            }
            DataType::HamtShard => {
                let width = shard_width(&current, &u)?;
                let bits = u.fanout.unwrap_or(256).trailing_zeros() as usize;
                let v = u64::from_be_bytes(hash);
                let start = depth * bits;
                if start + bits > 64 {
                    return Ok(None);
                }
                let idx = ((v << start) >> (64 - bits)) as usize;
                let prefix = format!("{idx:0width$X}");
                let mut next = None;
                for l in &node.links {
                    let n = l.name();
                    if n == prefix {
                        next = Some(l.cid);
                        break;
                    }
                    if n.len() > width && n.starts_with(&prefix) && &n[width..] == name {
                        return Ok(Some(entry(name, l)));
                    }
                }
                match next {
                    Some(c) => {
                        current = c;
                        depth += 1;
                    }
                    None => return Ok(None),
                }
            }
            _ => return Err(DagError::WrongKind { cid: current, expected: "directory" }.into()),
        }
    }
}

/// Resolve `root/a/b/c` to the CID it names.
pub fn resolve<B: BlockSource>(src: &B, root: &Cid, path: &str) -> Result<Cid, B::Error> {
    let mut cid = *root;
    let mut walked = root.to_string();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        walked.push('/');
        walked.push_str(seg);
        match lookup(src, &cid, seg)? {
            Some(e) => cid = e.cid,
            None => return Err(DagError::NoSuchPath { path: walked }.into()),
        }
    }
    Ok(cid)
}

/// Split `CID[/path]` (optionally prefixed with `/ipfs/`) into the root CID and the path.
pub fn split_path(s: &str) -> Result<(Cid, String), DagError> {
    let s = s.strip_prefix("/ipfs/").unwrap_or(s);
    let (root, rest) = s.split_once('/').unwrap_or((s, ""));
    Ok((crate::block::parse_cid(root)?, rest.to_string()))
}
