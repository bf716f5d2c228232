//! TDX and SGX appraisal against the real quotes and collateral shipped by dcap-qvl 0.7.1
//! (provenance in testdata/README.md). Expected values are read from the sample files.

use vouch_attest::evidence::DcapEvidence;
use vouch_attest::{Checks, Context, Policy, Status, appraise};

mod common;
use common::{failed, failures, passed, status};

const TDX_QUOTE: &[u8] = include_bytes!("../testdata/tdx/quote.bin");
const TDX_COLLATERAL: &str = include_str!("../testdata/tdx/collateral.json");
const SGX_QUOTE: &[u8] = include_bytes!("../testdata/sgx/quote.bin");
const SGX_COLLATERAL: &str = include_str!("../testdata/sgx/collateral.json");
/// 2025-07-01T00:00:00Z: inside both samples' collateral windows (TCB info, QE identity and PCK
/// CRL issued 2025-06-19, next update 2025-07-19).
const AT: u64 = 1_751_328_000;
/// 2025-08-01T00:00:00Z: after the collateral's nextUpdate.
const AFTER_EXPIRY: u64 = 1_754_006_400;
/// 2026-03-01T00:00:00Z: inside the outdated sample's collateral window (TCB info and QE identity
/// issued 2026-02-18, next update 2026-03-20).
const OUTDATED_AT: u64 = 1_772_323_200;

fn ev(quote: &[u8], collateral: &str) -> Vec<u8> {
    DcapEvidence { quote: quote.to_vec(), collateral: collateral.to_owned() }.to_cbor()
}

fn quote(bytes: &[u8]) -> dcap_qvl::quote::Quote {
    dcap_qvl::quote::Quote::parse(bytes).unwrap()
}

/// The binding a Vouch node would have put in this quote: its report data's first 32 bytes.
fn binding(report_data: &[u8; 64]) -> [u8; 32] {
    report_data[..32].try_into().unwrap()
}

fn tdx_binding() -> [u8; 32] {
    binding(&quote(TDX_QUOTE).report.as_td10().unwrap().report_data)
}

fn sgx_binding() -> [u8; 32] {
    binding(&quote(SGX_QUOTE).report.as_sgx().unwrap().report_data)
}

fn run(tech: &str, body: &[u8], policy: &Policy, binding: [u8; 32], at: u64) -> Checks {
    appraise(tech, body, policy, &Context { binding, trust_roots: &[], at })
}

#[test]
fn real_tdx_sample_passes_at_pinned_time() {
    let checks = run("tdx", &ev(TDX_QUOTE, TDX_COLLATERAL), &Policy::default(), tdx_binding(), AT);
    let report_data = quote(TDX_QUOTE).report.as_td10().unwrap().report_data;
    if report_data[32..].iter().all(|b| *b == 0) {
        assert!(checks.ok(), "{checks:#?}");
    } else {
        // Not made for a Vouch binding: only the layout rule (last 32 bytes zero) fails.
        assert_eq!(failures(&checks), ["tdx-report-data"], "{checks:#?}");
    }
    for claim in
        ["tdx-decode", "tdx-collateral", "tdx-quote-signature", "tdx-tcb-status", "tdx-advisories", "tdx-debug"]
    {
        assert!(passed(&checks, claim), "{claim}: {checks:#?}");
    }
    for claim in ["tdx-mrtd", "tdx-rtmr0", "tdx-rtmr3"] {
        assert!(matches!(status(&checks, claim), Status::Skipped { .. }), "{claim}");
    }
}

#[test]
fn tdx_reference_values_are_compared() {
    let td = *quote(TDX_QUOTE).report.as_td10().unwrap();
    let mut policy = Policy::default();
    policy.tdx.mrtd = Some(vec![td.mr_td]);
    policy.tdx.rtmr0 = Some(vec![td.rt_mr0]);
    let mut wrong = td.rt_mr1;
    wrong[0] ^= 1;
    policy.tdx.rtmr1 = Some(vec![wrong]);
    let checks = run("tdx", &ev(TDX_QUOTE, TDX_COLLATERAL), &policy, tdx_binding(), AT);
    assert!(passed(&checks, "tdx-mrtd"));
    assert!(passed(&checks, "tdx-rtmr0"));
    let (expected, found) = failed(&checks, "tdx-rtmr1");
    assert_eq!(found, format!("rtmr1 {}", hex::encode(td.rt_mr1)));
    assert!(expected.contains(&hex::encode(wrong)));
}

#[test]
fn tdx_after_collateral_expiry_fails_collateral() {
    let checks = run("tdx", &ev(TDX_QUOTE, TDX_COLLATERAL), &Policy::default(), tdx_binding(), AFTER_EXPIRY);
    let (_, found) = failed(&checks, "tdx-collateral");
    assert!(found.contains("expired") || found.contains("Expired"), "{found}");
    assert!(matches!(status(&checks, "tdx-quote-signature"), Status::Skipped { .. }));
    assert!(matches!(status(&checks, "tdx-report-data"), Status::Skipped { .. }));
}

#[test]
fn tdx_flipped_report_data_fails_quote_signature() {
    let q = quote(TDX_QUOTE);
    // Find the report data inside the raw quote (it is signed by the attestation key).
    let rd = q.report.as_td10().unwrap().report_data;
    let at = TDX_QUOTE.windows(64).position(|w| w == rd).unwrap();
    let mut tampered = TDX_QUOTE.to_vec();
    tampered[at] ^= 0x01;
    let checks = run("tdx", &ev(&tampered, TDX_COLLATERAL), &Policy::default(), tdx_binding(), AT);
    let (_, found) = failed(&checks, "tdx-quote-signature");
    assert!(found.contains("signature"), "{found}");
    for claim in ["tdx-collateral", "tdx-qe-report", "tdx-qe-identity"] {
        assert!(passed(&checks, claim), "{claim}");
    }
}

#[test]
fn tdx_another_binding_fails_report_data() {
    let mut other = tdx_binding();
    other[31] ^= 0xff;
    let checks = run("tdx", &ev(TDX_QUOTE, TDX_COLLATERAL), &Policy::default(), other, AT);
    let (expected, _) = failed(&checks, "tdx-report-data");
    assert!(expected.contains(&hex::encode(other)));
}

#[test]
fn sgx_sample_status_and_advisories_follow_the_policy() {
    // dcap-qvl's own test states this sample's verdict: ConfigurationAndSWHardeningNeeded with
    // INTEL-SA-00289 and INTEL-SA-00615.
    let body = ev(SGX_QUOTE, SGX_COLLATERAL);
    let checks = run("sgx", &body, &Policy::default(), sgx_binding(), AT);
    let (expected, found) = failed(&checks, "sgx-tcb-status");
    assert_eq!(expected, "TCB status one of [UpToDate]");
    assert_eq!(found, "TCB status ConfigurationAndSWHardeningNeeded");
    let (_, found) = failed(&checks, "sgx-advisories");
    assert!(found.contains("INTEL-SA-00289") && found.contains("INTEL-SA-00615"), "{found}");

    let mut policy = Policy::default();
    policy.sgx.tcb_statuses = vec!["ConfigurationAndSWHardeningNeeded".into()];
    policy.sgx.advisories = vec!["INTEL-SA-00289".into()];
    let checks = run("sgx", &body, &policy, sgx_binding(), AT);
    assert!(passed(&checks, "sgx-tcb-status"));
    let (_, found) = failed(&checks, "sgx-advisories");
    assert!(found.ends_with("not accepted: [INTEL-SA-00615]"), "{found}");

    policy.sgx.advisories.push("INTEL-SA-00615".into());
    let enclave = *quote(SGX_QUOTE).report.as_sgx().unwrap();
    policy.sgx.mrenclave = Some(vec![enclave.mr_enclave]);
    policy.sgx.mrsigner = Some(vec![[0u8; 32]]);
    let checks = run("sgx", &body, &policy, sgx_binding(), AT);
    assert!(passed(&checks, "sgx-advisories"));
    assert!(passed(&checks, "sgx-mrenclave"));
    assert_eq!(failed(&checks, "sgx-mrsigner").1, format!("mrsigner {}", hex::encode(enclave.mr_signer)));
    for claim in ["sgx-collateral", "sgx-quote-signature", "sgx-debug"] {
        assert!(passed(&checks, claim), "{claim}: {checks:#?}");
    }
}

#[test]
fn quote_of_the_other_flavour_fails_decode() {
    let checks = run("sgx", &ev(TDX_QUOTE, TDX_COLLATERAL), &Policy::default(), tdx_binding(), AT);
    assert_eq!(failed(&checks, "sgx-decode").0, "an SGX quote");
    assert!(matches!(status(&checks, "sgx-collateral"), Status::Skipped { .. }));
}

#[test]
fn hostile_bodies_fail_decode_without_panicking() {
    let bodies = [
        Vec::new(),
        b"\xa2".to_vec(),
        ev(&TDX_QUOTE[..100], TDX_COLLATERAL),
        ev(TDX_QUOTE, "{not json"),
        ev(&[0xff; 5000], TDX_COLLATERAL),
    ];
    for body in &bodies {
        let checks = run("tdx", body, &Policy::default(), tdx_binding(), AT);
        failed(&checks, "tdx-decode");
    }
    // The sample ends in zero padding that the quote format does not cover (the signature covers
    // header and body): dropping a padding byte changes nothing.
    let full = run("tdx", &ev(TDX_QUOTE, TDX_COLLATERAL), &Policy::default(), tdx_binding(), AT);
    let checks =
        run("tdx", &ev(&TDX_QUOTE[..TDX_QUOTE.len() - 1], TDX_COLLATERAL), &Policy::default(), tdx_binding(), AT);
    assert_eq!(failures(&checks), failures(&full));
    // Corrupt bytes all over the quote, up to its trailing zero padding: each fails decode or a
    // dcap-qvl stage; none panics. The unmodified sample already fails `tdx-report-data` (its
    // bytes 32..64 are not zero), so that claim failing proves nothing about the flip.
    let end = covered_end(TDX_QUOTE);
    for i in (0..end).step_by(53).chain([end - 1]) {
        let mut q = TDX_QUOTE.to_vec();
        q[i] ^= 0x5a;
        let checks = run("tdx", &ev(&q, TDX_COLLATERAL), &Policy::default(), tdx_binding(), AT);
        let failed = failures(&checks);
        assert!(
            failed.iter().any(|c| *c != "tdx-report-data"),
            "corrupting byte {i} must fail a claim other than tdx-report-data, failed {failed:?}"
        );
    }
}

/// Where the bytes a verifier depends on end: the quote's PCK chain ends with a copy of the Intel
/// SGX Root CA, which dcap-qvl does not trust (it verifies the chain to its built-in root), so
/// corrupting that copy changes nothing (found by these loops: byte 4134 of the TDX sample, 3995
/// of the SGX one), nor does the newline separating it from the certificate before; after it
/// comes zero padding. All three are left out of the flip loops, which end with the PCK issuer
/// certificate's END line.
fn covered_end(quote: &[u8]) -> usize {
    let end = b"-----END CERTIFICATE-----";
    let root_begin = quote.windows(27).rposition(|w| w == b"-----BEGIN CERTIFICATE-----").unwrap();
    quote[..root_begin].windows(end.len()).rposition(|w| w == end).unwrap() + end.len()
}

/// The SGX sample verifies completely under a policy accepting its TCB status and advisories, so
/// here every corruption must turn a passing appraisal into a failing one.
#[test]
fn sgx_flipped_bytes_fail_under_a_policy_that_accepts_the_sample() {
    let mut policy = Policy::default();
    policy.sgx.tcb_statuses = vec!["ConfigurationAndSWHardeningNeeded".into()];
    policy.sgx.advisories = vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()];
    let checks = run("sgx", &ev(SGX_QUOTE, SGX_COLLATERAL), &policy, sgx_binding(), AT);
    assert!(checks.ok(), "{checks:#?}");
    let end = covered_end(SGX_QUOTE);
    for i in (0..end).step_by(47).chain([end - 1]) {
        let mut q = SGX_QUOTE.to_vec();
        q[i] ^= 0x5a;
        let checks = run("sgx", &ev(&q, SGX_COLLATERAL), &policy, sgx_binding(), AT);
        let failed = failures(&checks);
        assert!(
            failed.iter().any(|c| *c != "sgx-report-data"),
            "corrupting byte {i} must fail a claim other than sgx-report-data, failed {failed:?}"
        );
    }
}

/// dcap-qvl 0.7.1's `sample/tdx_quote_outdated`: a real quote whose platform TCB is below the
/// levels of the TCB info shipped with it (dcap-qvl's own test needs a TCB override to accept it).
#[test]
fn tdx_outdated_sample_fails_tcb_status() {
    const QUOTE: &[u8] = include_bytes!("../testdata/tdx/outdated-quote.bin");
    const COLLATERAL: &str = include_str!("../testdata/tdx/outdated-collateral.json");
    let rd = quote(QUOTE).report.as_td10().unwrap().report_data;
    let checks = run("tdx", &ev(QUOTE, COLLATERAL), &Policy::default(), binding(&rd), OUTDATED_AT);
    for claim in ["tdx-collateral", "tdx-qe-report", "tdx-qe-identity", "tdx-quote-signature"] {
        assert!(passed(&checks, claim), "{claim}: {checks:#?}");
    }
    // dcap-qvl finds no TCB level of the (newer) TCB info that the platform's SVNs meet: the TCB
    // is below every level Intel lists, so the quote is rejected at the level match, before any
    // status could be appraised.
    let (_, found) = failed(&checks, "tdx-tcb-level");
    assert!(found.contains("No matching TCB level"), "{found}");
    assert!(matches!(status(&checks, "tdx-tcb-status"), Status::Skipped { .. }));
}
