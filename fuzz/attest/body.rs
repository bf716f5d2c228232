//! The logic of the `evidence_snp`, `evidence_dcap` and `evidence_tpm` fuzz targets, as plain
//! functions: `fuzz_targets/evidence_*.rs` wrap them, and vouch-cli's integration tests
//! (`tests/it/attest.rs`) include this file and run them over the committed real evidence in
//! `crates/vouch-attest/testdata`, its truncations and byte flips, so CI exercises them too.
//!
//! Each feeds arbitrary bytes to `vouch_attest::appraise` twice: as the evidence body itself (the
//! DAG-CBOR decoder) and wrapped as the raw report / quote of a well-formed body (the technology's
//! own parser). Appraisal must never panic; invariants: every claim is named with the
//! technology's prefix (or `technology`), and a failed decode skips every later claim.

// Each target binary uses one of these functions.
#![allow(dead_code)]

use vouch_attest::evidence::{DcapEvidence, SnpEvidence};
use vouch_attest::{Checks, Context, Policy, Status};

/// A fixed verification context: a binding no input is likely to carry, no extra roots, a time
/// inside the committed samples' validity windows.
fn context() -> Context<'static> {
    Context { binding: [0x5a; 32], trust_roots: &[], at: 1_751_328_000 }
}

fn check_invariants(technology: &str, checks: &Checks) {
    let prefix = match technology {
        "sev-snp" => "snp-",
        other => other,
    };
    let mut decode_failed = false;
    for (i, c) in checks.iter().enumerate() {
        if i == 0 {
            assert_eq!(c.claim, "technology", "the first claim is the technology");
            continue;
        }
        assert!(c.claim.starts_with(prefix), "claim {} of {technology} evidence", c.claim);
        if decode_failed {
            assert!(matches!(c.status, Status::Skipped { .. }), "{} not skipped after a failed decode", c.claim);
        }
        if c.claim.ends_with("-decode") && matches!(c.status, Status::Failed { .. }) {
            decode_failed = true;
        }
    }
    let _ = serde_json::to_string(checks);
}

fn run(technology: &str, body: &[u8]) {
    let checks = vouch_attest::appraise(technology, body, &Policy::default(), &context());
    check_invariants(technology, &checks);
}

/// `evidence_snp`: bytes as an SEV-SNP evidence body, and as the report of one (with the
/// committed Milan VCEK when `vcek` is given, else the input again).
pub fn evidence_snp_with(data: &[u8], vcek: Option<&[u8]>) {
    run("sev-snp", data);
    let body = SnpEvidence { report: data.to_vec(), vcek: vcek.unwrap_or(data).to_vec(), ask: None, ark: None };
    run("sev-snp", &body.to_cbor());
}

pub fn evidence_snp(data: &[u8]) {
    evidence_snp_with(data, None)
}

/// `evidence_dcap`: bytes as a TDX and an SGX evidence body, and as the quote of one (the first
/// byte chooses the collateral: none, empty JSON object, or the input as text).
pub fn evidence_dcap(data: &[u8]) {
    run("tdx", data);
    run("sgx", data);
    let collateral = match data.first().map(|b| b % 3) {
        Some(0) | None => String::new(),
        Some(1) => "{}".to_owned(),
        Some(_) => String::from_utf8_lossy(data).into_owned(),
    };
    let body = DcapEvidence { quote: data.to_vec(), collateral }.to_cbor();
    run("tdx", &body);
    run("sgx", &body);
}

/// `evidence_tpm`: bytes as a TPM evidence body.
pub fn evidence_tpm(data: &[u8]) {
    run("tpm", data);
}
