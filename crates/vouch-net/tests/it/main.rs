//! vouch-net integration tests: Vouch↔Vouch (`peers`) and Vouch↔real Kubo 0.22 (`kubo`).

mod kubo;
pub mod kubo_proc;
mod peers;

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

/// Deterministic pseudo-random bytes (xorshift), so that chunks do not deduplicate.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
