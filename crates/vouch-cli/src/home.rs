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
    pub fn identity(&self) -> Result<SigningKey> {
        self.ensure()?;
        let path = self.dir.join("identity.pem");
        load_or_create_key(&path)
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
