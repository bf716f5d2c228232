//! HPKE key wrapping (RFC 9180): base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//! ChaCha20Poly1305. A [`DataKey`] is wrapped to an X25519 public key for one [`Purpose`]; the
//! HPKE `info` names the purpose and the AAD binds the job CID and the object id, so a wrap made
//! for one job, object or purpose does not open for another.
//!
//! ```text
//! info = "vouch-seal-v1 key-release" | "vouch-seal-v1 result"
//! aad  = info ‖ 0x00 ‖ len(job CID bytes):u8 ‖ job CID bytes ‖ object id[16]
//! wrapped = enc[32] ‖ HPKE ciphertext of the 32-byte key [48]
//! ```

use std::fmt;

use cid::Cid;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use zeroize::{Zeroize, Zeroizing};

use crate::key::{DataKey, ObjectId};
use crate::{Error, Result};

type Kem = X25519HkdfSha256;
type Aead = ChaCha20Poly1305;
type Kdf = HkdfSha256;

/// What a wrapped key is for; each has its own HPKE `info` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A broker releasing an object's data key to an attested runtime's ephemeral key.
    KeyRelease,
    /// A runtime sealing a job result's data key to the recipient's long-term key.
    Result,
}

impl Purpose {
    /// The HPKE `info` string.
    pub fn info(self) -> &'static [u8] {
        match self {
            Purpose::KeyRelease => b"vouch-seal-v1 key-release",
            Purpose::Result => b"vouch-seal-v1 result",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Purpose::KeyRelease => "key-release",
            Purpose::Result => "result",
        }
    }
}

/// The AAD of a wrap: `info ‖ 0x00 ‖ len(job):u8 ‖ job CID bytes ‖ object id`.
pub fn wrap_aad(purpose: Purpose, job: &Cid, object: &ObjectId) -> Vec<u8> {
    let job = job.to_bytes();
    let mut aad = Vec::with_capacity(purpose.info().len() + 2 + job.len() + 16);
    aad.extend_from_slice(purpose.info());
    aad.push(0);
    // A CID is a version, a codec and a multihash: far below 255 bytes for every hash a CID
    // here uses (sha2-256: 36 bytes).
    aad.push(u8::try_from(job.len()).unwrap_or(u8::MAX));
    aad.extend_from_slice(&job);
    aad.extend_from_slice(&object.0);
    aad
}

/// An X25519 public key an HPKE wrap is made to: a runtime's ephemeral key or a result
/// recipient's long-term key. Written as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HpkePublicKey(pub [u8; 32]);

impl HpkePublicKey {
    /// From raw bytes (a job spec's `recipient`, a key request's ephemeral key).
    pub fn from_slice(what: &'static str, bytes: &[u8]) -> Result<HpkePublicKey> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::BadPublicKey { what, problem: format!("{} bytes, expected 32", bytes.len()) })?;
        Ok(HpkePublicKey(key))
    }

    fn to_hpke(self, what: &'static str) -> Result<<Kem as hpke::Kem>::PublicKey> {
        <Kem as hpke::Kem>::PublicKey::from_bytes(&self.0)
            .map_err(|e| Error::BadPublicKey { what, problem: e.to_string() })
    }
}

impl fmt::Display for HpkePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for HpkePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HpkePublicKey({self})")
    }
}

impl std::str::FromStr for HpkePublicKey {
    type Err = Error;

    /// 64 hex digits.
    fn from_str(s: &str) -> Result<HpkePublicKey> {
        let bytes = hex::decode(s.trim())
            .map_err(|e| Error::BadPublicKey { what: "public key", problem: format!("not hex: {e}") })?;
        HpkePublicKey::from_slice("public key", &bytes)
    }
}

/// An X25519 secret key: a runtime's ephemeral key pair or a recipient's long-term one.
/// Zeroized on drop (hpke keeps it in an `x25519_dalek::StaticSecret`, which zeroizes);
/// `Debug` shows the public key only.
pub struct HpkeSecretKey {
    secret: <Kem as hpke::Kem>::PrivateKey,
    public: HpkePublicKey,
}

impl HpkeSecretKey {
    /// A fresh key pair from the system RNG.
    pub fn generate() -> HpkeSecretKey {
        let (secret, public) = Kem::gen_keypair();
        let mut pk = [0u8; 32];
        public.write_exact(&mut pk);
        HpkeSecretKey { secret, public: HpkePublicKey(pk) }
    }

    /// A secret key from its 32 bytes (a recipient's key file).
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<HpkeSecretKey> {
        let secret = <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes)
            .map_err(|e| Error::BadPublicKey { what: "secret key", problem: e.to_string() })?;
        let public = <Kem as hpke::Kem>::sk_to_pk(&secret);
        let mut pk = [0u8; 32];
        public.write_exact(&mut pk);
        Ok(HpkeSecretKey { secret, public: HpkePublicKey(pk) })
    }

    /// The secret key bytes, to save in a key file (mode 0600). Zeroized when dropped.
    pub fn expose_secret(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        self.secret.write_exact(out.as_mut());
        out
    }

    pub fn public(&self) -> HpkePublicKey {
        self.public
    }
}

impl fmt::Debug for HpkeSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HpkeSecretKey(public {}, secret redacted)", self.public)
    }
}

/// A data key wrapped by HPKE: the encapsulated key and the ciphertext of the 32 key bytes.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrappedKey {
    /// HPKE `enc`: the sender's ephemeral X25519 public key.
    #[serde(with = "serde_bytes")]
    pub enc: [u8; 32],
    /// The 32-byte key sealed with ChaCha20Poly1305 (32 + 16 bytes).
    #[serde(with = "serde_bytes")]
    pub ciphertext: [u8; 48],
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedKey(enc {})", hex::encode(self.enc))
    }
}

/// Wrap `key` to `to` for `purpose`, binding `job` and `object`.
pub fn wrap(purpose: Purpose, key: &DataKey, to: &HpkePublicKey, job: &Cid, object: &ObjectId) -> Result<WrappedKey> {
    let pk = to.to_hpke("wrap recipient")?;
    let aad = wrap_aad(purpose, job, object);
    let (enc, ct) =
        hpke::single_shot_seal::<Aead, Kdf, Kem>(&OpModeS::Base, &pk, purpose.info(), key.expose_secret(), &aad)
            .map_err(|e| Error::BadPublicKey { what: "wrap recipient", problem: e.to_string() })?;
    let mut wrapped = WrappedKey { enc: [0; 32], ciphertext: [0; 48] };
    enc.write_exact(&mut wrapped.enc);
    // ChaCha20Poly1305 of 32 bytes is always 48 bytes.
    wrapped.ciphertext = ct.as_slice().try_into().expect("32-byte key + 16-byte tag");
    Ok(wrapped)
}

/// Open a wrap made by [`wrap`] with the same purpose, job and object.
pub fn unwrap(
    purpose: Purpose,
    wrapped: &WrappedKey,
    secret: &HpkeSecretKey,
    job: &Cid,
    object: &ObjectId,
) -> Result<DataKey> {
    let fail = || Error::Unwrap { purpose: purpose.name(), object: object.to_string() };
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrapped.enc).map_err(|_| fail())?;
    let aad = wrap_aad(purpose, job, object);
    let mut pt = hpke::single_shot_open::<Aead, Kdf, Kem>(
        &OpModeR::Base,
        &secret.secret,
        &enc,
        purpose.info(),
        &wrapped.ciphertext,
        &aad,
    )
    .map_err(|_| fail())?;
    let key: Result<[u8; 32]> = pt.as_slice().try_into().map_err(|_| fail());
    pt.zeroize();
    Ok(DataKey::from_bytes(key?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u8) -> Cid {
        let mh = cid::multihash::Multihash::<64>::wrap(0x12, &[n; 32]).unwrap();
        Cid::new_v1(0x71, mh)
    }

    #[test]
    fn wrap_round_trip_and_every_binding() {
        let key = DataKey::generate();
        let sk = HpkeSecretKey::generate();
        let (job, object) = (cid(1), ObjectId::generate());
        let w = wrap(Purpose::KeyRelease, &key, &sk.public(), &job, &object).unwrap();
        let back = unwrap(Purpose::KeyRelease, &w, &sk, &job, &object).unwrap();
        assert_eq!(back.expose_secret(), key.expose_secret());

        let other = HpkeSecretKey::generate();
        let fails = [
            unwrap(Purpose::KeyRelease, &w, &other, &job, &object),
            unwrap(Purpose::Result, &w, &sk, &job, &object),
            unwrap(Purpose::KeyRelease, &w, &sk, &cid(2), &object),
            unwrap(Purpose::KeyRelease, &w, &sk, &job, &ObjectId::generate()),
        ];
        for f in fails {
            assert!(matches!(f, Err(Error::Unwrap { .. })), "{f:?}");
        }
        let mut t = w.clone();
        t.ciphertext[3] ^= 1;
        assert!(unwrap(Purpose::KeyRelease, &t, &sk, &job, &object).is_err());
    }

    #[test]
    fn secret_key_round_trips_and_debug_redacts() {
        let sk = HpkeSecretKey::generate();
        let bytes = sk.expose_secret();
        let again = HpkeSecretKey::from_bytes(&bytes).unwrap();
        assert_eq!(again.public(), sk.public());
        let dbg = format!("{sk:?}");
        assert!(!dbg.contains(&hex::encode(*bytes)), "{dbg}");
        assert_eq!(sk.public().to_string().parse::<HpkePublicKey>().unwrap(), sk.public());
    }

    #[test]
    fn bad_public_keys_are_refused_by_name() {
        assert!(matches!("abcd".parse::<HpkePublicKey>(), Err(Error::BadPublicKey { .. })));
        // The all-zero point is of low order: HPKE's DH check refuses to encapsulate to it.
        let e = wrap(Purpose::Result, &DataKey::generate(), &HpkePublicKey([0; 32]), &cid(1), &ObjectId([0; 16]));
        assert!(matches!(e, Err(Error::BadPublicKey { .. })), "{e:?}");
    }

    #[test]
    fn aad_is_the_documented_concatenation() {
        let (job, object) = (cid(1), ObjectId([5; 16]));
        let aad = wrap_aad(Purpose::KeyRelease, &job, &object);
        let mut expected = b"vouch-seal-v1 key-release\0".to_vec();
        expected.push(36);
        expected.extend_from_slice(&job.to_bytes());
        expected.extend_from_slice(&[5; 16]);
        assert_eq!(aad, expected);
    }
}
