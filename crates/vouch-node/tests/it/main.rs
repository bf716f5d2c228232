//! vouch-node integration tests: a real daemon on loopback, driven over HTTP.

mod http;
mod quota;

use std::path::Path;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use vouch_node::{Daemon, NodeConfig};

/// A home holding a node key made from `[seed; 32]`, mode 0600 as `vouch` writes it.
pub fn home_with_key(dir: &Path, seed: u8) {
    use std::os::unix::fs::PermissionsExt;
    let pem = SigningKey::from_bytes(&[seed; 32]).to_pkcs8_pem(LineEnding::LF).unwrap();
    let path = dir.join("identity.pem");
    std::fs::write(&path, pem.as_bytes()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A daemon on ephemeral loopback ports.
pub async fn daemon(dir: &Path, seed: u8) -> Daemon {
    home_with_key(dir, seed);
    Daemon::start(dir, loopback_config(), None).await.unwrap()
}

/// The default configuration on ephemeral loopback ports.
pub fn loopback_config() -> NodeConfig {
    NodeConfig {
        api: "127.0.0.1:0".parse().unwrap(),
        swarm: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        ..NodeConfig::default()
    }
}

#[path = "../../../vouch-net/tests/support/bytes.rs"]
mod support_bytes;
pub use support_bytes::bytes;
