//! `$VOUCH_HOME`: the node's identity key, config and store.
//!
//! Layout: `identity.pem` (ed25519, PKCS#8, mode 0600, created on first use), `config.json`,
//! `store/` (see `vouch_store`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use vouch_store::Store;

pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    /// `$VOUCH_HOME`, else `~/.vouch`.
    pub fn from_env() -> Result<Home> {
        let dir = match std::env::var_os("VOUCH_HOME") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => {
                let home = std::env::var_os("HOME").context("neither VOUCH_HOME nor HOME is set")?;
                PathBuf::from(home).join(".vouch")
            }
        };
        Ok(Home { dir })
    }

    fn ensure(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let config = self.dir.join("config.json");
        if !config.exists() {
            let default = serde_json::json!({ "version": 1 });
            fs::write(&config, serde_json::to_vec_pretty(&default)?)
                .with_context(|| format!("writing {}", config.display()))?;
        }
        Ok(())
    }

    /// `config.json` (created with defaults on first use). Keys the node reads: `tee`
    /// (`none`, `tpm`, `sev-snp`, `tdx`), `tcti`, `tsm_root`, `tdx_collateral` (a collateral
    /// JSON file bundled into TDX evidence), `evidence_refresh_secs`, `broker_trust_roots` (certificate
    /// files the key broker appraises hardware evidence with).
    pub fn config(&self) -> Result<serde_json::Value> {
        self.ensure()?;
        let path = self.dir.join("config.json");
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("{}: not valid JSON", path.display()))?;
        if !v.is_object() {
            bail!("{}: expected a JSON object", path.display());
        }
        Ok(v)
    }

    pub fn store(&self) -> Result<Store> {
        self.ensure()?;
        let dir = self.dir.join("store");
        Store::open(&dir).with_context(|| format!("opening the store at {}", dir.display()))
    }

    /// The node identity, created with mode 0600 on first use.
    pub fn identity(&self) -> Result<NodeKey> {
        self.ensure()?;
        let path = self.dir.join("identity.pem");
        NodeKey::new(load_or_create_key(&path)?)
    }
}

/// The node identity key, as ed25519-dalek holds it (PKCS#8 on disk, public key, libp2p
/// identity; derefs to it) and as aws-lc-rs holds it to sign receipts. Ed25519 signatures are
/// deterministic, so both sign a receipt to the same bytes; aws-lc-rs takes about half the time
/// here (14 against 25 µs for a receipt), and signing is the largest part of a tiny job.
#[derive(Clone)]
pub struct NodeKey {
    key: SigningKey,
    signer: std::sync::Arc<aws_lc_rs::signature::Ed25519KeyPair>,
}

impl NodeKey {
    pub fn new(key: SigningKey) -> Result<NodeKey> {
        let signer = aws_lc_rs::signature::Ed25519KeyPair::from_seed_and_public_key(
            key.as_bytes(),
            key.verifying_key().as_bytes(),
        )
        .map_err(|e| anyhow::anyhow!("the node key is not a valid ed25519 key: {e}"))?;
        Ok(NodeKey { key, signer: std::sync::Arc::new(signer) })
    }
}

/// The public key only.
impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey({})", hex::encode(self.key.verifying_key().as_bytes()))
    }
}

impl std::ops::Deref for NodeKey {
    type Target = SigningKey;
    fn deref(&self) -> &SigningKey {
        &self.key
    }
}

impl vouch_receipt::ReceiptSigner for NodeKey {
    fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn sign_ed25519(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.signer.sign(message).as_ref());
        out
    }
}

fn load_or_create_key(path: &Path) -> Result<SigningKey> {
    match fs::read_to_string(path) {
        Ok(pem) => {
            let mode = fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                bail!("{}: identity key is readable by others (mode {mode:o}); run chmod 600 on it", path.display());
            }
            SigningKey::from_pkcs8_pem(&pem)
                .map_err(|e| anyhow::anyhow!("{}: not an ed25519 PKCS#8 key: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| anyhow::anyhow!("encoding key: {e}"))?;
            // create_new: two processes racing to create it cannot both write.
            let mut f = match fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return load_or_create_key(path),
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            };
            f.write_all(pem.as_bytes())?;
            f.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_0600_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home { dir: dir.path().join("h") };
        let k1 = home.identity().unwrap();
        let mode = fs::metadata(home.dir.join("identity.pem")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(home.identity().unwrap().verifying_key(), k1.verifying_key());
    }

    /// aws-lc-rs signs receipts for the node; ed25519-dalek's signature of the same message
    /// with the same key is the reference (RFC 8032 signatures are deterministic), and the
    /// receipt verifier, which uses ed25519-dalek, accepts it.
    #[test]
    fn the_node_signer_signs_exactly_as_ed25519_dalek() {
        use ed25519_dalek::{Signer, Verifier};
        use rand::{Rng, RngCore};
        use vouch_receipt::ReceiptSigner;
        let mut rng = rand::rngs::OsRng;
        for len in [0usize, 1, 64, 111, 112, 127, 128, 1000, 4096] {
            let key = SigningKey::generate(&mut rng);
            let node = NodeKey::new(key.clone()).unwrap();
            assert_eq!(node.public_key(), key.verifying_key().to_bytes());
            let mut message = vec![0u8; len + rng.gen_range(0..3)];
            rng.fill_bytes(&mut message);
            let signature = node.sign_ed25519(&message);
            assert_eq!(signature, key.sign(&message).to_bytes(), "message of {} bytes", message.len());
            assert!(key.verifying_key().verify(&message, &signature.into()).is_ok());
        }
    }

    #[test]
    fn refuses_a_world_readable_key() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home { dir: dir.path().to_path_buf() };
        home.identity().unwrap();
        let p = dir.path().join("identity.pem");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(home.identity().unwrap_err().to_string().contains("readable by others"));
    }
}
