use cid::Cid;

/// Everything that can go wrong while encoding, decoding or walking a DAG.
///
/// Every variant names the object it is about, so a message reaching the user says which CID,
/// which block or which path was at fault.
#[derive(Debug, thiserror::Error)]
pub enum DagError {
    #[error("invalid CID {input:?}: {reason}")]
    InvalidCid { input: String, reason: String },
    #[error("block {cid}: its bytes hash to {found}, not to the CID")]
    HashMismatch { cid: Cid, found: String },
    #[error("block {cid}: unsupported multihash code {code:#x}")]
    UnsupportedHash { cid: Cid, code: u64 },
    #[error("block {cid}: unsupported codec {codec:#x}")]
    UnsupportedCodec { cid: Cid, codec: u64 },
    #[error("block {cid}: invalid dag-pb: {reason}")]
    InvalidDagPb { cid: Cid, reason: String },
    #[error("block {cid}: invalid UnixFS data: {reason}")]
    InvalidUnixFs { cid: Cid, reason: String },
    #[error("block {cid}: invalid dag-cbor: {reason}")]
    InvalidDagCbor { cid: Cid, reason: String },
    #[error("{cid}: not a UnixFS {expected}")]
    WrongKind { cid: Cid, expected: &'static str },
    #[error("{path}: no such link")]
    NoSuchPath { path: String },
    #[error("invalid chunker {0:?}: expected size-N with 1 <= N <= 1048576")]
    InvalidChunker(String),
    #[error("invalid entry name {0:?}: names must be non-empty, not '.' or '..', and contain no '/'")]
    InvalidName(String),
    #[error("CAR: {0}")]
    Car(String),
    #[error("block {cid} not found")]
    NotFound { cid: Cid },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl DagError {
    pub(crate) fn pb(cid: &Cid, reason: impl Into<String>) -> Self {
        DagError::InvalidDagPb { cid: *cid, reason: reason.into() }
    }
    pub(crate) fn ufs(cid: &Cid, reason: impl Into<String>) -> Self {
        DagError::InvalidUnixFs { cid: *cid, reason: reason.into() }
    }
}
