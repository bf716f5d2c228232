//! Import parameters and the named profiles of IPIP-499.

use crate::DagError;

/// Largest chunk Kubo accepts (`chunk.ChunkSizeLimit`); bitswap caps blocks near this size.
pub const MAX_CHUNK_SIZE: usize = 1024 * 1024;

/// How a directory's size is estimated when deciding whether to shard it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HamtEstimate {
    /// Kubo ≤ 0.38 and `unixfs-v0-2015`: the sum over links of `len(name) + len(cid bytes)`.
    Links,
    /// `unixfs-v1-2025`: the size of the encoded dag-pb block of the flat directory.
    Block,
}

/// Everything that decides the CIDs an import produces. Two imports with equal `Params` of the
/// same bytes give the same CIDs, and the defaults give the CIDs `ipfs add` gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// CIDv1 when true (base32 `bafy…`), CIDv0 (`Qm…`) otherwise.
    pub cid_v1: bool,
    /// Leaves as raw blocks (codec 0x55) instead of UnixFS file nodes.
    pub raw_leaves: bool,
    /// Fixed chunk size in bytes (`size-N`).
    pub chunk_size: usize,
    /// Maximum links per internal file node in the balanced layout.
    pub max_links: usize,
    /// A directory whose estimated size reaches this many bytes becomes a HAMT shard.
    pub hamt_threshold: usize,
    pub hamt_estimate: HamtEstimate,
    /// Shard when the estimate equals the threshold too (`>=`, Kubo ≤ 0.39), not only when it
    /// exceeds it (`>`, IPIP-499 profiles and Kubo ≥ 0.40).
    pub shard_at_threshold: bool,
    /// HAMT fanout (a power of two; 256 everywhere in practice).
    pub hamt_fanout: usize,
}

impl Default for Params {
    /// Kubo 0.22's `ipfs add` defaults: the `unixfs-v0-2015` profile, except that a directory
    /// whose estimate is exactly the threshold is sharded (Kubo compared with `>=` until 0.40).
    fn default() -> Self {
        Params {
            cid_v1: false,
            raw_leaves: false,
            chunk_size: 256 * 1024,
            max_links: 174,
            hamt_threshold: 256 * 1024,
            hamt_estimate: HamtEstimate::Links,
            shard_at_threshold: true,
            hamt_fanout: 256,
        }
    }
}

/// The profile names accepted by `--profile` (IPIP-499).
pub const PROFILES: &[&str] = &["unixfs-v0-2015", "unixfs-v1-2025"];

impl Params {
    /// A named profile of IPIP-499.
    pub fn profile(name: &str) -> Option<Params> {
        match name {
            "unixfs-v0-2015" => Some(Params { shard_at_threshold: false, ..Params::default() }),
            "unixfs-v1-2025" => Some(Params {
                cid_v1: true,
                raw_leaves: true,
                chunk_size: 1024 * 1024,
                max_links: 1024,
                hamt_threshold: 256 * 1024,
                hamt_estimate: HamtEstimate::Block,
                shard_at_threshold: false,
                hamt_fanout: 256,
            }),
            _ => None,
        }
    }
}

/// Parse a chunker string. Only fixed-size chunking (`size-N`) is supported.
pub fn parse_chunker(s: &str) -> Result<usize, DagError> {
    let bad = || DagError::InvalidChunker(s.to_string());
    let n = s.strip_prefix("size-").ok_or_else(bad)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match n.parse::<usize>() {
        Ok(n) if (1..=MAX_CHUNK_SIZE).contains(&n) => Ok(n),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunker_strings() {
        assert_eq!(parse_chunker("size-262144").unwrap(), 262144);
        assert_eq!(parse_chunker("size-1").unwrap(), 1);
        for bad in ["size-0", "rabin-x", "size-", "size-1048577", "size--1", "size-+1", "buzhash"] {
            assert!(matches!(parse_chunker(bad), Err(DagError::InvalidChunker(_))), "{bad}");
        }
    }
}
