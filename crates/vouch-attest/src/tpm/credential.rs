//! `TPM2_MakeCredential` in pure Rust: the challenger's half of credential activation, so an
//! enrolment authority needs no TPM and no libtss2 (TPM 2.0 Part 1, §24 "Credential Protection",
//! and Part 1 §11.4.10 for KDFa / KDFe).
//!
//! The TPM will only release `secret` through `TPM2_ActivateCredential` when the EK whose public
//! key encrypted the seed is resident in it *and* an object with exactly `ak_name` is loaded
//! beside it: that is what proves the AK lives in the same TPM as the EK.
//!
//! Supported EKs are the TCG default templates with a SHA-256 name and AES-128-CFB storage
//! symmetric: RSA 2048 (template L-1, `swtpm_setup`'s default EK, certificate at NV 0x01c00002)
//! and NIST P-256 (template L-2, certificate at NV 0x01c0000a).

use aes::cipher::{AsyncStreamCipher, KeyIvInit};
use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::Decode;

use super::wire::{self, PublicKey};

type HmacSha256 = Hmac<Sha256>;
type Aes128CfbEnc = cfb_mode::Encryptor<aes::Aes128>;

const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_PRIME256V1: &str = "1.2.840.10045.3.1.7";

/// An endorsement key a credential can be made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EkPublic {
    /// RSA EK (template L-1): the seed is RSA-OAEP(SHA-256, label "IDENTITY\0") encrypted.
    Rsa(rsa::RsaPublicKey),
    /// NIST P-256 EK (template L-2): the seed is ECDH + KDFe("IDENTITY") derived.
    EccP256(p256::PublicKey),
}

/// What [`make_credential`] returns.
#[derive(Clone, Debug)]
pub struct Credential {
    /// `TPM2B_ID_OBJECT` contents (without the outer two-byte size):
    /// `TPM2B_DIGEST(outer HMAC) ‖ AES-128-CFB(TPM2B_DIGEST(secret))`.
    pub credential_blob: Vec<u8>,
    /// `TPM2B_ENCRYPTED_SECRET` contents (without the outer size): the OAEP ciphertext of the seed
    /// (RSA EK), or the marshalled ephemeral `TPMS_ECC_POINT` (ECC EK).
    pub encrypted_secret: Vec<u8>,
    /// The secret the TPM releases on activation; the challenger keeps it and compares.
    pub secret: [u8; 32],
}

/// Why a credential could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("unsupported endorsement key: {0}")]
    Unsupported(String),
    #[error("malformed endorsement key: {0}")]
    Malformed(String),
    #[error("RSA-OAEP: {0}")]
    Rsa(String),
}

impl EkPublic {
    /// The EK public key of an EK certificate (DER), assuming the TCG default template (SHA-256
    /// name, AES-128-CFB): what an enrolment authority trusts after checking the certificate.
    pub fn from_certificate(der: &[u8]) -> Result<Self, CredentialError> {
        let cert = Certificate::from_der(der).map_err(|e| CredentialError::Malformed(format!("certificate: {e}")))?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let key_bytes = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| CredentialError::Malformed("subject public key has unused bits".into()))?;
        match spki.algorithm.oid.to_string().as_str() {
            OID_RSA_ENCRYPTION => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                let key = rsa::RsaPublicKey::from_pkcs1_der(key_bytes)
                    .map_err(|e| CredentialError::Malformed(format!("RSA key: {e}")))?;
                Ok(EkPublic::Rsa(key))
            }
            OID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
                    .map(|oid| oid.to_string())
                    .unwrap_or_default();
                if curve != OID_PRIME256V1 {
                    return Err(CredentialError::Unsupported(format!("ECC EK on curve {curve} (only P-256)")));
                }
                let key = p256::PublicKey::from_sec1_bytes(key_bytes)
                    .map_err(|e| CredentialError::Malformed(format!("P-256 point: {e}")))?;
                Ok(EkPublic::EccP256(key))
            }
            other => Err(CredentialError::Unsupported(format!("public key algorithm {other}"))),
        }
    }

    /// The EK public key from its `TPM2B_PUBLIC` (as `TPM2_ReadPublic` / `TPM2_CreatePrimary`
    /// return it). Checks the SHA-256 name algorithm and AES-128-CFB symmetric.
    pub fn from_tpm2b_public(bytes: &[u8]) -> Result<Self, CredentialError> {
        let area = wire::parse_public(bytes).map_err(CredentialError::Malformed)?;
        if area.name_alg != wire::TPM_ALG_SHA256 {
            return Err(CredentialError::Unsupported(format!("EK nameAlg 0x{:04x}", area.name_alg)));
        }
        if !area.symmetric_aes128_cfb {
            return Err(CredentialError::Unsupported("EK symmetric other than AES-128-CFB".into()));
        }
        match area.key {
            PublicKey::Rsa { modulus, exponent, .. } => {
                let e = if exponent == 0 { 65537 } else { exponent };
                let key = rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(&modulus), rsa::BigUint::from(e))
                    .map_err(|e| CredentialError::Malformed(format!("RSA key: {e}")))?;
                Ok(EkPublic::Rsa(key))
            }
            PublicKey::EccP256 { x, y, .. } => {
                let point = sec1_point(&x, &y).ok_or_else(|| CredentialError::Malformed("P-256 coordinates".into()))?;
                let key = p256::PublicKey::from_sec1_bytes(&point)
                    .map_err(|e| CredentialError::Malformed(format!("P-256 point: {e}")))?;
                Ok(EkPublic::EccP256(key))
            }
            PublicKey::Other(what) => Err(CredentialError::Unsupported(what)),
        }
    }
}

/// Uncompressed SEC1 encoding of a P-256 point given as TPM coordinates (left-padded to 32 bytes).
pub(crate) fn sec1_point(x: &[u8], y: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![4u8];
    for c in [x, y] {
        if c.len() > 32 {
            return None;
        }
        out.extend(std::iter::repeat_n(0u8, 32 - c.len()));
        out.extend_from_slice(c);
    }
    Some(out)
}

/// `KDFa` with HMAC-SHA-256 (Part 1 §11.4.10.2): `label` without its terminating zero.
pub fn kdfa(key: &[u8], label: &str, context_u: &[u8], context_v: &[u8], bits: u32) -> Vec<u8> {
    let len = bits.div_ceil(8) as usize;
    let mut out = Vec::with_capacity(len + 32);
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(&counter.to_be_bytes());
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(context_u);
        mac.update(context_v);
        mac.update(&bits.to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// `KDFe` with SHA-256 (Part 1 §11.4.10.3, the SP 800-56A concatenation KDF), 256 bits out.
fn kdfe(z: &[u8], label: &str, party_u: &[u8], party_v: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    h.update(label.as_bytes());
    h.update([0]);
    h.update(party_u);
    h.update(party_v);
    h.finalize().into()
}

/// Make a credential for the object named `ak_name` (`nameAlg ‖ digest`, SHA-256 names only)
/// that only the TPM holding `ek` can activate. The secret is 32 random bytes.
pub fn make_credential(ek: &EkPublic, ak_name: &[u8]) -> Result<Credential, CredentialError> {
    make_credential_with_rng(ek, ak_name, &mut rand::rngs::OsRng)
}

/// [`make_credential`] with a caller-supplied random source.
pub fn make_credential_with_rng<R: RngCore + CryptoRng>(
    ek: &EkPublic,
    ak_name: &[u8],
    rng: &mut R,
) -> Result<Credential, CredentialError> {
    if ak_name.len() != 34 || ak_name[..2] != wire::TPM_ALG_SHA256.to_be_bytes() {
        return Err(CredentialError::Unsupported(format!(
            "AK name of {} bytes (expected a 34-byte SHA-256 name)",
            ak_name.len()
        )));
    }
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    make_credential_with_secret(ek, ak_name, secret, rng)
}

/// [`make_credential`] for a secret the caller chose: an enrolment authority that derives the
/// secret from its own key and the request (so it need not store it) uses this. The secret must
/// be unpredictable to anyone but the caller.
pub fn make_credential_with_secret<R: RngCore + CryptoRng>(
    ek: &EkPublic,
    ak_name: &[u8],
    secret: [u8; 32],
    rng: &mut R,
) -> Result<Credential, CredentialError> {
    if ak_name.len() != 34 || ak_name[..2] != wire::TPM_ALG_SHA256.to_be_bytes() {
        return Err(CredentialError::Unsupported(format!(
            "AK name of {} bytes (expected a 34-byte SHA-256 name)",
            ak_name.len()
        )));
    }

    // The seed, and how it travels to the TPM.
    let (seed, encrypted_secret) = match ek {
        EkPublic::Rsa(key) => {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            let padding = rsa::Oaep::new_with_label::<Sha256, _>("IDENTITY\0");
            let ct = key.encrypt(rng, padding, &seed).map_err(|e| CredentialError::Rsa(e.to_string()))?;
            (seed, ct)
        }
        EkPublic::EccP256(key) => {
            let ephemeral = p256::ecdh::EphemeralSecret::random(rng);
            let eph_point = p256::EncodedPoint::from(ephemeral.public_key());
            let ek_point = p256::EncodedPoint::from(key);
            let (ex, ey, kx) = match (eph_point.x(), eph_point.y(), ek_point.x()) {
                (Some(ex), Some(ey), Some(kx)) => (ex.to_vec(), ey.to_vec(), kx.to_vec()),
                _ => return Err(CredentialError::Malformed("P-256 point at infinity".into())),
            };
            let shared = ephemeral.diffie_hellman(key);
            let seed = kdfe(shared.raw_secret_bytes(), "IDENTITY", &ex, &kx);
            // TPMS_ECC_POINT: TPM2B x ‖ TPM2B y.
            let mut point = Vec::with_capacity(68);
            for c in [&ex, &ey] {
                point.extend_from_slice(&(c.len() as u16).to_be_bytes());
                point.extend_from_slice(c);
            }
            (seed, point)
        }
    };

    // encIdentity = AES-128-CFB(KDFa(seed, "STORAGE", name), IV = 0, TPM2B_DIGEST(secret)).
    let sym_key = kdfa(&seed, "STORAGE", ak_name, &[], 128);
    let mut enc_identity = Vec::with_capacity(34);
    enc_identity.extend_from_slice(&(secret.len() as u16).to_be_bytes());
    enc_identity.extend_from_slice(&secret);
    Aes128CfbEnc::new_from_slices(&sym_key, &[0u8; 16]).expect("16-byte key and IV").encrypt(&mut enc_identity);

    // outerHMAC = HMAC(KDFa(seed, "INTEGRITY"), encIdentity ‖ name).
    let hmac_key = kdfa(&seed, "INTEGRITY", &[], &[], 256);
    let mut mac = HmacSha256::new_from_slice(&hmac_key).expect("HMAC takes any key length");
    mac.update(&enc_identity);
    mac.update(ak_name);
    let outer_hmac = mac.finalize().into_bytes();

    let mut credential_blob = Vec::with_capacity(2 + 32 + enc_identity.len());
    credential_blob.extend_from_slice(&(outer_hmac.len() as u16).to_be_bytes());
    credential_blob.extend_from_slice(&outer_hmac);
    credential_blob.extend_from_slice(&enc_identity);
    Ok(Credential { credential_blob, encrypted_secret, secret })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_lengths_and_determinism() {
        let a = kdfa(b"key", "STORAGE", b"name", &[], 128);
        assert_eq!(a.len(), 16);
        assert_eq!(a, kdfa(b"key", "STORAGE", b"name", &[], 128));
        assert_ne!(a, kdfa(b"key", "INTEGRITY", b"name", &[], 128));
        assert_eq!(kdfa(b"key", "X", &[], &[], 520).len(), 65);
    }

    #[test]
    fn rejects_non_sha256_names() {
        let key = p256::SecretKey::random(&mut rand::rngs::OsRng).public_key();
        let err = make_credential(&EkPublic::EccP256(key), &[0u8; 10]).unwrap_err();
        assert!(err.to_string().contains("34-byte"), "{err}");
    }
}
