//! The compiled-module caches: serialized modules on disk, prepared modules in memory.
//!
//! # On disk
//!
//! `CACHE_DIR/<first 16 hex digits of the engine fingerprint>/<SHA-256(module id) hex>.cwasm`,
//! with `<same>.cwasm.sha256` beside it holding the hex SHA-256 of the `.cwasm` bytes. Both are
//! written to a temporary name and renamed into place, so a reader sees either nothing or a
//! whole file, and a file is never modified once in place (a mapped artifact is never
//! truncated under a running module). On load the `.cwasm` is hashed and compared with the
//! sidecar *before* wasmtime sees it: `Module::deserialize_file` trusts its input (it maps it as
//! executable code), so a truncated or bit-flipped artifact is detected and recompiled instead
//! of being run. The
//! fingerprint directory keeps engines with different settings (fuel on/off, another wasmtime,
//! another CPU) from ever loading each other's code; wasmtime also checks its own header.
//!
//! Trust boundary: the checksum catches corruption, not an attacker. Whoever can write the cache
//! directory can write both files, so it must be writable by the node alone, like its binary.
//! The module id is trusted too: the cache assumes one id always names the same bytes (Vouch
//! uses the module's CID).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::SandboxError;

pub(crate) struct DiskCache {
    dir: PathBuf,
}

/// What the disk cache holds for a module id.
pub(crate) enum Lookup {
    Miss,
    /// An artifact whose checksum matched, to be mapped by `Module::deserialize_file`.
    Hit(PathBuf),
    /// An artifact that failed its checksum (or has none); it has been deleted.
    Corrupt,
}

impl DiskCache {
    pub(crate) fn open(root: &Path, fingerprint: &str) -> Result<DiskCache, SandboxError> {
        let dir = root.join(&fingerprint[..16]);
        fs::create_dir_all(&dir).map_err(|source| SandboxError::Cache { path: dir.clone(), source })?;
        Ok(DiskCache { dir })
    }

    /// The artifact's path and its checksum sidecar's path.
    pub(crate) fn paths(&self, module_id: &str) -> (PathBuf, PathBuf) {
        let name = hex::encode(Sha256::digest(module_id.as_bytes()));
        (self.dir.join(format!("{name}.cwasm")), self.dir.join(format!("{name}.cwasm.sha256")))
    }

    pub(crate) fn load(&self, module_id: &str) -> Lookup {
        let (artifact, sidecar) = self.paths(module_id);
        let digest = match sha256_file(&artifact) {
            Ok(digest) => digest,
            Err(_) => return Lookup::Miss,
        };
        let expected = fs::read_to_string(&sidecar).unwrap_or_default();
        if digest == expected.trim() {
            Lookup::Hit(artifact)
        } else {
            self.remove(module_id);
            Lookup::Corrupt
        }
    }

    pub(crate) fn store(&self, module_id: &str, bytes: &[u8]) -> io::Result<()> {
        let (artifact, sidecar) = self.paths(module_id);
        write_atomically(&artifact, bytes)?;
        write_atomically(&sidecar, hex::encode(Sha256::digest(bytes)).as_bytes())
    }

    pub(crate) fn remove(&self, module_id: &str) {
        let (artifact, sidecar) = self.paths(module_id);
        // Best effort: a leftover file fails its checksum next time and is removed then.
        let _ = fs::remove_file(artifact);
        let _ = fs::remove_file(sidecar);
    }
}

/// Hex SHA-256 of a file, read in 1 MiB chunks (a CPython artifact is ~335 MB: it is hashed,
/// then mapped, never held in memory twice).
fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = fs::File::open(path)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(hex::encode(sha.finalize())),
            n => sha.update(&buf[..n]),
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!("tmp.{}.{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A small least-recently-used map (eviction scans all entries: capacities are tens).
pub(crate) struct Lru<V> {
    capacity: usize,
    clock: u64,
    entries: HashMap<String, (V, u64)>,
}

impl<V: Clone> Lru<V> {
    pub(crate) fn new(capacity: usize) -> Lru<V> {
        Lru { capacity, clock: 0, entries: HashMap::new() }
    }

    pub(crate) fn get(&mut self, key: &str) -> Option<V> {
        self.clock += 1;
        let now = self.clock;
        self.entries.get_mut(key).map(|(v, used)| {
            *used = now;
            v.clone()
        })
    }

    pub(crate) fn insert(&mut self, key: String, value: V) {
        if self.capacity == 0 {
            return;
        }
        self.clock += 1;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let oldest = self.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (value, self.clock));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.insert("a".into(), 1);
        lru.insert("b".into(), 2);
        assert_eq!(lru.get("a"), Some(1));
        lru.insert("c".into(), 3);
        assert_eq!(lru.get("b"), None);
        assert_eq!(lru.get("a"), Some(1));
        assert_eq!(lru.get("c"), Some(3));
        let mut none = Lru::new(0);
        none.insert("a".into(), 1);
        assert_eq!(none.get("a"), None);
    }

    #[test]
    fn disk_cache_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path(), &"ab".repeat(32)).unwrap();
        assert!(matches!(cache.load("m"), Lookup::Miss));
        cache.store("m", b"compiled").unwrap();
        let (artifact, sidecar) = cache.paths("m");
        assert!(matches!(cache.load("m"), Lookup::Hit(p) if p == artifact));
        assert_eq!(fs::read(&artifact).unwrap(), b"compiled");
        fs::write(&artifact, b"compilex").unwrap();
        assert!(matches!(cache.load("m"), Lookup::Corrupt));
        assert!(!artifact.exists() && !sidecar.exists(), "a corrupt artifact is removed");
        // An artifact without its checksum is not trusted either.
        fs::write(&artifact, b"compiled").unwrap();
        assert!(matches!(cache.load("m"), Lookup::Corrupt));
    }
}
