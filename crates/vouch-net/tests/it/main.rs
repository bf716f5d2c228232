//! vouch-net integration tests: Vouch↔Vouch (`peers`) and Vouch↔real Kubo 0.22 (`kubo`).

mod dht;
mod fuzz;
mod kubo;
pub mod kubo_proc;
mod peers;
mod raw;

use std::sync::Arc;

use tokio::task::JoinHandle;
use vouch_net::{Blocks, Config, Node, NodeHandle};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// A node on loopback whose key is `[seed; 32]`.
pub fn node(seed: u8, blocks: Arc<dyn Blocks>) -> (NodeHandle, JoinHandle<()>) {
    init_tracing();
    Node::spawn(Config::new([seed; 32]), blocks).unwrap()
}

/// A node with a caller-built config.
pub fn node_with(config: Config, blocks: Arc<dyn Blocks>) -> (NodeHandle, JoinHandle<()>) {
    init_tracing();
    Node::spawn(config, blocks).unwrap()
}

/// `addr` with `/p2p/PEER` appended.
pub fn with_peer(addr: &vouch_net::Multiaddr, peer: vouch_net::PeerId) -> vouch_net::Multiaddr {
    addr.clone().with(vouch_net::Protocol::P2p(peer))
}

/// Poll `cond` every 50 ms until it holds or `within` has passed; panics naming `what` on timeout.
pub async fn eventually<F, Fut>(what: &str, within: std::time::Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !cond().await {
        assert!(start.elapsed() < within, "timed out after {within:?} waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[path = "../support/bytes.rs"]
mod support_bytes;
pub use support_bytes::bytes;
