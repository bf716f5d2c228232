//! Attestation for Vouch: hardware evidence that vouches for a node key, and its offline appraisal.
//!
//! Generation and verification are split. Verification ([`appraise`] and the technology modules)
//! is pure Rust, needs no network and no system library, and reports every claim it checked as a
//! [`Check`] with the expected and found values. Generation of TPM evidence needs `libtss2` and is
//! behind the `tpm-attester` feature; SEV-SNP and TDX evidence comes from Linux configfs-tsm.
//!
//! Every technology binds the node key the same way: the 32-byte `binding`
//! (`SHA-256(domain ‖ node key ‖ nonce)`, computed by the receipt layer) is the TPM quote's
//! qualifying data, and the first 32 bytes of the 64-byte SEV-SNP / TDX / SGX report data (the
//! other 32 are zero).

pub mod check;

pub use check::{Check, Checks, Status};
pub mod tpm;

/// What every technology's appraisal needs besides the evidence and its policy section.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// The 32-byte binding the evidence must carry: `SHA-256(domain ‖ node key ‖ nonce)`.
    pub binding: [u8; 32],
    /// Extra trust roots (DER X.509 certificates) beyond the vendor roots built in: a TPM
    /// manufacturer's EK CA, a local EK CA, an enrolment authority.
    pub trust_roots: &'a [Vec<u8>],
    /// Verification time, Unix seconds (certificate validity, collateral expiry, evidence age).
    pub at: u64,
}
