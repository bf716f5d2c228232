//! Vouch's peer-to-peer node: rust-libp2p with TCP + Noise + Yamux, Identify, Ping, Kademlia on
//! `/ipfs/kad/1.0.0` (server mode) and Bitswap 1.2 (`/ipfs/bitswap/1.2.0`; 1.1.0 and 1.0.0
//! accepted inbound), interoperable with Kubo in both directions.
//!
//! - **Serving**: want-have is answered with have / dont-have, want-block with the block, from the
//!   [`Blocks`] the caller supplies (a [`vouch_store::Store`] in the daemon).
//! - **Fetching**: [`NodeHandle::fetch`] wants one block from every connected peer and accepts it
//!   only if its bytes hash to the CID; [`NodeHandle::fetch_dag`] walks a DAG with a window of
//!   parallel wants and writes each verified block to a [`vouch_dag::BlockSink`]. A peer that sends
//!   a block nobody asked for, or bytes that match no wanted CID, is disconnected and logged.
//!
//! The wire format and limits are in `docs/bitswap.md`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::{sync::Arc, time::Duration};
//! use vouch_dag::{MemoryBlocks, Params, file::import_bytes};
//! use vouch_net::{Config, Node};
//!
//! let mut blocks = MemoryBlocks::default();
//! let root = import_bytes(&Params::default(), b"hello\n", &mut blocks).unwrap().cid;
//! let (server, _task) = Node::spawn(Config::new([1; 32]), Arc::new(blocks)).unwrap();
//! let (client, _task2) = Node::spawn(Config::new([2; 32]), Arc::new(MemoryBlocks::default())).unwrap();
//! client.connect(server.listen_addrs().await.unwrap()[0].clone()).await.unwrap();
//! let mut got = MemoryBlocks::default();
//! client.fetch_dag(root, &mut got, Duration::from_secs(10)).await.unwrap();
//! let mut out = Vec::new();
//! vouch_dag::export::read_file(&got, &root, &mut out).unwrap();
//! assert_eq!(out, b"hello\n");
//! # }
//! ```

mod inbound;
pub mod local;
pub mod message;
mod node;
pub mod rpc;

use std::time::Duration;

pub use cid::Cid;
pub use libp2p::multiaddr::Protocol;
pub use libp2p::{Multiaddr, PeerId};
use vouch_dag::{BlockSource, DagError, MemoryBlocks};
use vouch_store::{Store, StoreError};

pub use node::{Bandwidth, DagStats, Node, NodeHandle, Provider};

/// Agent string sent in Identify.
pub const AGENT_VERSION: &str = concat!("vouch/", env!("CARGO_PKG_VERSION"));

/// Everything that configures a [`Node`]. Every knob documents its default.
#[derive(Clone, Debug)]
pub struct Config {
    /// Ed25519 secret key (32 bytes): the node's peer id is derived from it, so a Vouch node key
    /// and its libp2p identity are one key. No default: the caller owns the key.
    pub secret_key: [u8; 32],
    /// Listen addresses. Default: `/ip4/127.0.0.1/tcp/0` (loopback only; anything wider is a
    /// deliberate choice of the caller).
    pub listen: Vec<Multiaddr>,
    /// Kademlia bootstrap peers, each with a `/p2p/PEER` suffix: dialled at start, added to the
    /// routing table, then a Kademlia bootstrap (a lookup of the node's own id) fills the table.
    /// Default: empty (a local-only node; [`NodeHandle::bootstrap`] adds peers later).
    pub bootstrap: Vec<Multiaddr>,
    /// Connections with no open stream are closed after this long. Default: 120 s.
    pub idle_timeout: Duration,
    /// Most blocks wanted at once by this node (all fetches together); a fetch past it fails with
    /// [`NetError::WantlistFull`]. Default: 1024.
    pub max_wants: usize,
    /// Blocks [`NodeHandle::fetch_dag`] keeps wanted in parallel. Default: 64 (at most
    /// 64 × 2 MiB of block bytes in flight).
    pub fetch_window: usize,
    /// Wantlist entries of one incoming message that are served; the rest are ignored. Default: 1024.
    pub max_entries_per_message: usize,
    /// Incoming wantlists served at once across all peers (each holds one store lookup thread).
    /// Default: 8.
    pub serve_concurrency: usize,
    /// Most established connections, inbound and outbound together; past it new connections are
    /// refused (`libp2p::connection_limits`). Default: 256.
    pub max_connections: u32,
    /// Most incoming connections still in their handshake. Default: 64.
    pub max_pending_incoming: u32,
    /// Most established connections to one peer. Default: 4.
    pub max_connections_per_peer: u32,
    /// Inbound bitswap streams queued for a reader; past it new streams are dropped (the remote
    /// sees a reset). Default: 1024.
    pub max_pending_streams: usize,
    /// Inbound bitswap streams read at once (one reader task each, up to a 4 MiB frame buffer
    /// each); further streams wait in the queue above. Default: 1024.
    pub max_stream_readers: usize,
    /// Talk to this machine only (see [`local`]): loopback listen and bootstrap addresses,
    /// connections from or to anything else refused. Default: `false`.
    pub local_only: bool,
}

impl Config {
    /// The defaults, with the caller's node key.
    pub fn new(secret_key: [u8; 32]) -> Config {
        Config {
            secret_key,
            // Cannot fail: a constant, valid multiaddr.
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")],
            bootstrap: Vec::new(),
            idle_timeout: Duration::from_secs(120),
            max_wants: 1024,
            fetch_window: 64,
            max_entries_per_message: 1024,
            serve_concurrency: 8,
            max_connections: 256,
            max_pending_incoming: 64,
            max_connections_per_peer: 4,
            max_pending_streams: 1024,
            max_stream_readers: 1024,
            local_only: false,
        }
    }
}

/// A boxed error from a [`Blocks`] implementation.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the node serves blocks from. Implementations must return only bytes that hash to the CID
/// (a [`Store`] checks every read); the node does not re-hash what it serves.
pub trait Blocks: Send + Sync + 'static {
    fn has(&self, cid: &Cid) -> Result<bool, BoxError>;
    /// The block's bytes, or `None` when it is not held.
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, BoxError>;
}

impl Blocks for Store {
    fn has(&self, cid: &Cid) -> Result<bool, BoxError> {
        Ok(Store::has(self, cid)?)
    }
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, BoxError> {
        match BlockSource::get(self, cid) {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl Blocks for MemoryBlocks {
    fn has(&self, cid: &Cid) -> Result<bool, BoxError> {
        Ok(self.blocks.contains_key(cid))
    }
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, BoxError> {
        match BlockSource::get(self, cid) {
            Ok(b) => Ok(Some(b)),
            Err(DagError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Everything the node can report. Variants name the CID, address or peer they are about.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid node key: {0}")]
    Key(String),
    #[error("cannot set up the transport: {0}")]
    Transport(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    /// A job-protocol request to `peer` failed: not reachable, reset, too large, or no answer in
    /// time.
    #[error("request to {peer}: {reason}")]
    Request { peer: PeerId, reason: String },
    #[error("timed out after {after:?} waiting for block {cid}: no connected peer sent it")]
    Timeout { cid: Cid, after: Duration },
    /// Every connected peer answered DONT_HAVE (checked when the last answer arrives, or when
    /// a peer that had not answered disconnects).
    #[error("no connected peer has CID {cid}: all {peers} connected peers answered DONT_HAVE")]
    NotFound { cid: Cid, peers: usize },
    #[error("not fetching {cid}: {max} blocks are already wanted (the wantlist limit)")]
    WantlistFull { cid: Cid, max: usize },
    #[error("block {cid}: multihash code {code:#x} cannot be fetched; only sha2-256 blocks are verified")]
    UnsupportedHash { cid: Cid, code: u64 },
    #[error("local blocks, block {cid}: {reason}")]
    Blocks { cid: Cid, reason: String },
    #[error("writing block {cid} to the sink: {reason}")]
    Sink { cid: Cid, reason: String },
    #[error("announcing {cid} on the DHT: {reason}")]
    Provide { cid: Cid, reason: String },
    #[error(transparent)]
    Dag(#[from] DagError),
    #[error("the node has shut down")]
    Shutdown,
}
