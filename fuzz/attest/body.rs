//! The logic of the `evidence_snp`, `evidence_snp_certs`, `evidence_dcap`, `evidence_tpm` and
//! `evidence_tpm_tools` fuzz targets, as plain functions: `fuzz_targets/evidence_*.rs` wrap them, and vouch-cli's
//! integration tests (`tests/it/attest.rs`) include this file and run them over the committed
//! real evidence in `crates/vouch-attest/testdata` and real tpm2-tools output, their truncations
//! and byte flips, so CI exercises them too.
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

/// `evidence_snp_certs`: bytes as the SEV-SNP certificate table configfs-tsm's `auxblob` carries
/// (written by the host, so untrusted). `parse_cert_table` never panics; a table it accepts
/// yields certificates that are bytes of the blob and parses the same with bytes appended (the
/// terminating entry ends it); its certificates, as a body's VCEK, ASK and ARK, appraise under
/// the claim invariants.
pub fn evidence_snp_certs(data: &[u8]) {
    use vouch_attest::tsm::parse_cert_table;
    let Ok(table) = parse_cert_table(data) else { return };
    for cert in [&table.ark, &table.ask, &table.vcek, &table.vlek].into_iter().flatten() {
        assert!(
            cert.is_empty() || data.windows(cert.len()).any(|w| w == cert.as_slice()),
            "a certificate that is not in the table"
        );
    }
    // (An empty blob is an empty table without a terminating entry.)
    if !data.is_empty() {
        let mut longer = data.to_vec();
        longer.extend_from_slice(&[0xa5; 40]);
        assert_eq!(parse_cert_table(&longer).ok(), Some(table.clone()), "bytes after the table changed it");
    }
    let body =
        SnpEvidence { report: data.to_vec(), vcek: table.vcek.unwrap_or_default(), ask: table.ask, ark: table.ark };
    run("sev-snp", &body.to_cbor());
}

/// `evidence_tpm_tools`: bytes as the four tpm2-tools files of `vouch attest verify --format
/// tpm-quote`: three big-endian u16 lengths, then the quote (`TPMS_ATTEST`), the signature and
/// the AK public key; the rest is the PCR file (none when empty).
pub fn evidence_tpm_tools(data: &[u8]) {
    let len = |i: usize| data.get(i..i + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]) as usize);
    let mut rest = data.get(6..).unwrap_or_default();
    let mut parts = Vec::new();
    for i in 0..3 {
        let (part, tail) = rest.split_at(len(2 * i).min(rest.len()));
        parts.push(part);
        rest = tail;
    }
    tpm_tools_files(parts[0], parts[1], parts[2], (!rest.is_empty()).then_some(rest));
}

/// The tpm2-tools parsers over each file, then, when all parse, the appraisal: never a panic,
/// the claims named as for TPM evidence.
pub fn tpm_tools_files(quote: &[u8], signature: &[u8], ak: &[u8], pcrs: Option<&[u8]>) {
    use vouch_attest::tpm::tools;
    let _ = tools::is_tpms_attest(quote);
    let selection = tools::quote_selection(quote);
    let pcrs = pcrs.map(|p| tools::parse_pcrs(p, &selection));
    let Ok(ak) = tools::parse_ak(ak) else { return };
    let Ok(sig) = tools::parse_signature(signature, &ak) else { return };
    let pcrs = match pcrs {
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => return,
        None => None,
    };
    for qualifying in [None, Some(&[0x5a; 32][..])] {
        let checks = tools::appraise(quote, &sig, &ak, pcrs.as_ref(), qualifying, &Policy::default());
        check_invariants("tpm", &checks);
    }
}
