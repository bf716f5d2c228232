//! The TPM evidence format (DAG-CBOR) and the AK enrolment statement that binds an attestation
//! key to an EK certificate for offline verifiers.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

/// The domain separator an enrolment signature covers before the DAG-CBOR statement.
pub const ENROLLMENT_DOMAIN: &[u8] = b"vouch-tpm-enrollment-v1\0";

/// Everything an offline verifier needs to appraise one TPM quote. Encoded as DAG-CBOR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmEvidence {
    /// `TPMS_ATTEST` bytes of a `TPM2_Quote` (what the AK signed).
    #[serde(with = "serde_bytes")]
    pub quote: Vec<u8>,
    /// `TPMT_SIGNATURE` bytes over `quote`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// `TPM2B_PUBLIC` bytes of the attestation key.
    #[serde(with = "serde_bytes")]
    pub ak_public: Vec<u8>,
    /// The quoted PCR values of the SHA-256 bank, ascending index.
    pub pcrs: Vec<PcrValue>,
    /// DER EK certificate, as read from the TPM's NV (RSA 0x01c00002 or ECC 0x01c0000a).
    #[serde(with = "serde_bytes")]
    pub ek_certificate: Vec<u8>,
    /// DER intermediate certificates between the EK certificate and a trust root (may be empty).
    pub ek_chain: Vec<ByteBuf>,
    /// The enrolment statement that binds `ak_public` to `ek_certificate`.
    pub ak_binding: Enrollment,
}

/// One PCR of the SHA-256 bank.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcrValue {
    pub index: u32,
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
}

/// What an enrolment authority states after a successful make/activate credential round trip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentStatement {
    /// SHA-256 of the DER EK certificate whose key the credential was made for.
    #[serde(with = "serde_bytes")]
    pub ek_cert_sha256: Vec<u8>,
    /// The AK's TPM name (`0x000b ‖ SHA-256(TPMT_PUBLIC)`) the credential was bound to.
    #[serde(with = "serde_bytes")]
    pub ak_name: Vec<u8>,
    /// Unix seconds.
    pub enrolled_at: u64,
}

/// A signed [`EnrollmentStatement`]: ed25519 over `ENROLLMENT_DOMAIN ‖ DAG-CBOR(statement)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub statement: EnrollmentStatement,
    /// The authority's ed25519 public key (32 bytes).
    #[serde(with = "serde_bytes")]
    pub authority: Vec<u8>,
    /// 64-byte ed25519 signature.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// The bytes an enrolment signature covers.
pub fn enrollment_message(statement: &EnrollmentStatement) -> Vec<u8> {
    let mut msg = ENROLLMENT_DOMAIN.to_vec();
    // A struct of byte strings and an integer always encodes.
    msg.extend(serde_ipld_dagcbor::to_vec(statement).expect("statement encodes"));
    msg
}

impl Enrollment {
    /// Sign a statement that `ak_name` lives in the TPM of the EK certificate `ek_cert` (DER).
    /// Call it only after the TPM returned the secret of a credential made for that EK and AK.
    pub fn sign(authority: &SigningKey, ek_cert: &[u8], ak_name: &[u8], enrolled_at: u64) -> Enrollment {
        let statement = EnrollmentStatement {
            ek_cert_sha256: Sha256::digest(ek_cert).to_vec(),
            ak_name: ak_name.to_vec(),
            enrolled_at,
        };
        let signature = authority.sign(&enrollment_message(&statement)).to_bytes().to_vec();
        Enrollment { statement, authority: authority.verifying_key().to_bytes().to_vec(), signature }
    }

    /// Check the signature with the key it names. Whether that key is trusted is the caller's call.
    pub fn verify_signature(&self) -> Result<VerifyingKey, String> {
        let key: [u8; 32] = self
            .authority
            .as_slice()
            .try_into()
            .map_err(|_| format!("authority key of {} bytes", self.authority.len()))?;
        let key = VerifyingKey::from_bytes(&key).map_err(|e| format!("authority key: {e}"))?;
        let sig: [u8; 64] =
            self.signature.as_slice().try_into().map_err(|_| format!("signature of {} bytes", self.signature.len()))?;
        key.verify_strict(&enrollment_message(&self.statement), &ed25519_dalek::Signature::from_bytes(&sig))
            .map_err(|_| "signature does not verify".to_string())?;
        Ok(key)
    }
}

impl TpmEvidence {
    /// DAG-CBOR encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_ipld_dagcbor::to_vec(self).expect("evidence encodes")
    }

    /// Decode DAG-CBOR evidence.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        serde_ipld_dagcbor::from_slice(bytes).map_err(|e| e.to_string())
    }
}
