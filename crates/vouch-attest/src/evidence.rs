//! Wire format of evidence bodies: one DAG-CBOR map per technology (normative description in
//! `docs/attestation.md`). Unknown keys are rejected. Decoding never panics and refuses bodies
//! larger than [`MAX_EVIDENCE_BYTES`].

use serde::{Deserialize, Serialize};

/// Largest evidence body accepted for decoding (a DCAP quote with its collateral is ~30 KB).
pub const MAX_EVIDENCE_BYTES: usize = 1 << 20;

/// SEV-SNP evidence: the raw attestation report and the certificates that sign it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpEvidence {
    /// The raw 1184-byte `ATTESTATION_REPORT` as the firmware returned it.
    #[serde(with = "serde_bytes")]
    pub report: Vec<u8>,
    /// The VCEK certificate (DER) of the chip that signed the report.
    #[serde(with = "serde_bytes")]
    pub vcek: Vec<u8>,
    /// The ASK (DER). Absent: the verifier's built-in AMD ASK for the product line.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub ask: Option<Vec<u8>>,
    /// The ARK (DER). Absent: the built-in AMD ARK. When present it must be identical to a
    /// built-in AMD ARK or to a configured trust root: the evidence cannot bring its own root.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub ark: Option<Vec<u8>>,
}

/// TDX or SGX evidence: a DCAP quote and the collateral to verify it offline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DcapEvidence {
    /// The raw quote (SGX v3, TDX v4/v5).
    #[serde(with = "serde_bytes")]
    pub quote: Vec<u8>,
    /// The collateral as the JSON object a PCCS serves through dcap-qvl
    /// (`dcap_qvl::QuoteCollateralV3`): TCB info, QE identity, CRLs and their issuer chains.
    pub collateral: String,
}

/// Why an evidence body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("evidence body is {0} bytes, more than the {MAX_EVIDENCE_BYTES} accepted")]
    TooLarge(usize),
    #[error("evidence body is not the expected DAG-CBOR map: {0}")]
    Cbor(String),
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, EvidenceError> {
    if bytes.len() > MAX_EVIDENCE_BYTES {
        return Err(EvidenceError::TooLarge(bytes.len()));
    }
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| EvidenceError::Cbor(e.to_string()))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(value).expect("a map of byte and text strings always encodes")
}

impl SnpEvidence {
    pub fn to_cbor(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<Self, EvidenceError> {
        decode(bytes)
    }
}

impl DcapEvidence {
    pub fn to_cbor(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<Self, EvidenceError> {
        decode(bytes)
    }
}
