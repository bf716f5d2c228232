//! Content addressing for Vouch: CIDs, dag-pb and UnixFS import and export with the CIDs Kubo's
//! `ipfs add` gives, CARv1, and DAG-JSON views of blocks.
//!
//! The crate is sans-IO: importers take bytes and hand finished blocks to a [`BlockSink`];
//! exporters read blocks from a [`BlockSource`]. Nothing here opens a file or a socket.
//!
//! ```
//! use vouch_dag::{Params, file::import_bytes, MemoryBlocks};
//!
//! let mut blocks = MemoryBlocks::default();
//! let root = import_bytes(&Params::default(), b"hello\n", &mut blocks).unwrap();
//! // The CID `ipfs add` prints for a file holding "hello\n".
//! assert_eq!(root.cid.to_string(), "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN");
//! let mut out = Vec::new();
//! vouch_dag::export::read_file(&blocks, &root.cid, &mut out).unwrap();
//! assert_eq!(out, b"hello\n");
//! ```

pub mod block;
pub mod car;
pub mod dagpb;
pub mod dir;
mod error;
pub mod export;
pub mod file;
pub mod json;
mod params;
mod pb;
pub mod unixfs;

use std::collections::HashMap;

pub use cid::Cid;
pub use error::DagError;
pub use params::{HamtEstimate, MAX_CHUNK_SIZE, PROFILES, Params, parse_chunker};

/// Where importers put the blocks they make. The sink decides what storing means (a store
/// transaction, a CAR stream, nothing at all for `--only-hash`).
pub trait BlockSink {
    type Error: From<DagError>;
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), Self::Error>;
}

/// Where exporters get blocks from. Implementations must return only bytes that hash to `cid`
/// (the store checks every read); exporters still check structure.
pub trait BlockSource {
    type Error: From<DagError>;
    fn get(&self, cid: &Cid) -> Result<Vec<u8>, Self::Error>;
}

/// A sink that stores nothing: what `--only-hash` uses.
#[derive(Default)]
pub struct Discard;

impl BlockSink for Discard {
    type Error = DagError;
    fn put(&mut self, _: &Cid, _: &[u8]) -> Result<(), DagError> {
        Ok(())
    }
}

/// An in-memory block map, for tests, examples and small DAGs.
#[derive(Default, Debug, Clone)]
pub struct MemoryBlocks {
    pub blocks: HashMap<Cid, Vec<u8>>,
}

impl BlockSink for MemoryBlocks {
    type Error = DagError;
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), DagError> {
        self.blocks.entry(*cid).or_insert_with(|| data.to_vec());
        Ok(())
    }
}

impl BlockSource for MemoryBlocks {
    type Error = DagError;
    fn get(&self, cid: &Cid) -> Result<Vec<u8>, DagError> {
        if cid.hash().code() == block::IDENTITY {
            return Ok(cid.hash().digest().to_vec());
        }
        let data = self.blocks.get(cid).ok_or(DagError::NotFound { cid: *cid })?;
        block::verify(cid, data)?;
        Ok(data.clone())
    }
}
