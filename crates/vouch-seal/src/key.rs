//! Data keys, their public ids, object ids, and the system random source.

use std::fmt;

use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Domain of [`DataKey::id`]: `key id = SHA-256(KEY_ID_DOMAIN ‖ data key)`.
pub const KEY_ID_DOMAIN: &[u8] = b"vouch-seal-v1 key-id\0";

/// Fill `buf` from the operating system's CSPRNG (aws-lc's `RAND_bytes`).
///
/// # Panics
/// If the system random source fails. Nothing a peer sends can cause that, and continuing
/// without randomness would reuse keys and nonces, so stopping is the only safe answer.
pub(crate) fn random(buf: &mut [u8]) {
    // Cannot fail on a working OS (getrandom(2)); see the panic note above.
    aws_lc_rs::rand::fill(buf).expect("the system random source failed");
}

/// A 256-bit data key: one per sealed object, fresh from the system RNG.
///
/// Zeroized on drop. `Debug` prints its public [`KeyId`], never its bytes; there is no
/// `Display`, `Serialize` or `Clone`, so a key leaves memory only through
/// [`DataKey::expose_secret`] (for the owner's key store) or HPKE wrapping.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> DataKey {
        let mut k = [0u8; 32];
        random(&mut k);
        let key = DataKey(k);
        k.zeroize();
        key
    }

    /// A key from its 32 bytes (the owner's key store, an unwrapped grant).
    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        DataKey(bytes)
    }

    /// The key bytes. Named so that every place that lets key material out is easy to find.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }

    /// The public id of this key: a SHA-256 commitment to it, carried in every sealed
    /// object's header and checked before decryption.
    pub fn id(&self) -> KeyId {
        let mut h = Sha256::new();
        h.update(KEY_ID_DOMAIN);
        h.update(self.0);
        KeyId(h.finalize().into())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey(id {}, bytes redacted)", self.id())
    }
}

/// The public id of a [`DataKey`]: `SHA-256("vouch-seal-v1 key-id\0" ‖ key)`. Reveals nothing
/// about the key (SHA-256 preimage resistance) and commits to it, so an object opened with
/// another key is refused before any chunk is tried.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 32]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The 16-byte random id of a sealed object, in its header. The broker indexes keys by it and
/// HPKE wraps bind it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 16]);

impl ObjectId {
    /// A fresh random object id.
    pub fn generate() -> ObjectId {
        let mut id = [0u8; 16];
        random(&mut id);
        ObjectId(id)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl std::str::FromStr for ObjectId {
    type Err = String;

    fn from_str(s: &str) -> Result<ObjectId, String> {
        let bytes = hex::decode(s).map_err(|e| format!("object id {s:?} is not hex: {e}"))?;
        let id: [u8; 16] =
            bytes.try_into().map_err(|_| format!("object id {s:?}: expected 32 hex digits (16 bytes)"))?;
        Ok(ObjectId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fresh_and_debug_redacts() {
        let (a, b) = (DataKey::generate(), DataKey::generate());
        assert_ne!(a.expose_secret(), b.expose_secret());
        let dbg = format!("{a:?}");
        assert!(!dbg.contains(&hex::encode(a.expose_secret())), "{dbg}");
        assert!(dbg.contains(&a.id().to_string()));
    }

    #[test]
    fn key_id_is_the_domain_separated_hash() {
        let k = DataKey::from_bytes([7; 32]);
        let mut h = Sha256::new();
        h.update(b"vouch-seal-v1 key-id\0");
        h.update([7u8; 32]);
        assert_eq!(k.id().0, <[u8; 32]>::from(h.finalize()));
    }

    #[test]
    fn object_id_parses_its_display() {
        let id = ObjectId::generate();
        assert_eq!(id.to_string().parse::<ObjectId>().unwrap(), id);
        assert!("abcd".parse::<ObjectId>().is_err());
    }
}
