//! SEV-SNP appraisal against the real Milan report and VCEK shipped by the `sev` crate 8.0.0
//! (provenance in testdata/README.md). Expected values are read from the sample bytes.

use vouch_attest::evidence::SnpEvidence;
use vouch_attest::policy::{SnpTcb, Technology};
use vouch_attest::{Checks, Context, Policy, Status, appraise};

mod common;
use common::{failed, failures, passed, status};

const REPORT: &[u8] = include_bytes!("../testdata/snp/milan-report.bin");
const VCEK: &[u8] = include_bytes!("../testdata/snp/milan-vcek.der");
const TURIN_VCEK: &[u8] = include_bytes!("../testdata/snp/turin-vcek.der");
/// 2024-01-01T00:00:00Z: inside the Milan VCEK's validity (2023-04-03 to 2030-04-03).
const AT: u64 = 1_704_067_200;
/// The VCEK's notAfter, 2030-04-03T19:23:43Z.
const VCEK_NOT_AFTER: u64 = 1_901_474_623;

/// The report data's first 32 bytes, read from the sample (offset 0x50).
fn sample_binding() -> [u8; 32] {
    REPORT[0x50..0x70].try_into().unwrap()
}

fn evidence(report: &[u8], vcek: &[u8]) -> Vec<u8> {
    SnpEvidence { report: report.to_vec(), vcek: vcek.to_vec(), ask: None, ark: None }.to_cbor()
}

fn run(ev: &[u8], policy: &Policy, binding: [u8; 32], at: u64) -> Checks {
    appraise("sev-snp", ev, policy, &Context { binding, trust_roots: &[], at })
}

#[test]
fn real_milan_sample_verifies_except_vouch_binding_layout() {
    let checks = run(&evidence(REPORT, VCEK), &Policy::default(), sample_binding(), AT);
    for claim in [
        "technology",
        "snp-decode",
        "snp-cert-chain",
        "snp-cert-validity",
        "snp-report-signature",
        "snp-chip-id",
        "snp-vcek-tcb",
        "snp-debug",
        "snp-vmpl",
    ] {
        assert!(passed(&checks, claim), "{claim}: {checks:#?}");
    }
    // The sample was not made for a Vouch binding: its report data's last 32 bytes are not zero.
    assert_eq!(failures(&checks), ["snp-report-data"]);
    let (_, found) = failed(&checks, "snp-report-data");
    assert!(found.contains(&hex::encode(&REPORT[0x70..0x90])), "{found}");
    match status(&checks, "snp-cert-chain") {
        Status::Passed { detail } => assert!(detail.contains("Milan"), "{detail}"),
        _ => unreachable!(),
    }
}

#[test]
fn explicit_ark_and_ask_equal_to_builtin_roots_verify() {
    let ark = include_bytes!("../testdata/snp/milan-ark.der").to_vec();
    let ask = include_bytes!("../testdata/snp/milan-ask.der").to_vec();
    let ev = SnpEvidence { report: REPORT.to_vec(), vcek: VCEK.to_vec(), ask: Some(ask), ark: Some(ark) }.to_cbor();
    let checks = run(&ev, &Policy::default(), sample_binding(), AT);
    assert!(passed(&checks, "snp-cert-chain"), "{checks:#?}");
    assert!(passed(&checks, "snp-report-signature"));
}

#[test]
fn an_ark_the_verifier_does_not_trust_fails_the_chain() {
    // The Milan ASK presented as the ARK: a well-formed certificate, not a trusted root.
    let ask = include_bytes!("../testdata/snp/milan-ask.der").to_vec();
    let ev = SnpEvidence { report: REPORT.to_vec(), vcek: VCEK.to_vec(), ask: None, ark: Some(ask) }.to_cbor();
    let checks = run(&ev, &Policy::default(), sample_binding(), AT);
    let (_, found) = failed(&checks, "snp-cert-chain");
    assert!(found.contains("untrusted ARK"), "{found}");
}

#[test]
fn flipped_signature_byte_fails_report_signature_and_skips_contents() {
    let mut report = REPORT.to_vec();
    report[0x2a0 + 5] ^= 0x01; // inside R of the signature
    let checks = run(&evidence(&report, VCEK), &Policy::default(), sample_binding(), AT);
    failed(&checks, "snp-report-signature");
    assert!(passed(&checks, "snp-cert-chain"));
    for claim in ["snp-debug", "snp-vmpl", "snp-report-data", "snp-measurement", "snp-min-tcb"] {
        assert!(matches!(status(&checks, claim), Status::Skipped { .. }), "{claim}");
    }
}

#[test]
fn nonzero_signature_padding_fails_decode() {
    // R is a 72-byte field at 0x2a0 of which P-384 uses 48 bytes; the signature check reads only
    // those, so the unused high bytes must be zero for the report to be canonical.
    for at in [0x2a0 + 50, 0x2e8 + 71] {
        let mut report = REPORT.to_vec();
        report[at] ^= 0x01;
        let checks = run(&evidence(&report, VCEK), &Policy::default(), sample_binding(), AT);
        let (expected, found) = failed(&checks, "snp-decode");
        assert!(expected.contains("bytes 48..72 zero"), "{expected}");
        assert_eq!(found, format!("byte {at:#x} is 0x01"));
    }
}

#[test]
fn flipped_report_data_fails_the_signature() {
    let mut report = REPORT.to_vec();
    report[0x50] ^= 0x80;
    let checks = run(&evidence(&report, VCEK), &Policy::default(), sample_binding(), AT);
    assert_eq!(failures(&checks), ["snp-report-signature"]);
}

#[test]
fn another_binding_fails_report_data_with_both_values() {
    let mut other = sample_binding();
    other[0] ^= 0xff;
    let checks = run(&evidence(REPORT, VCEK), &Policy::default(), other, AT);
    let (expected, found) = failed(&checks, "snp-report-data");
    assert!(expected.contains(&hex::encode(other)), "{expected}");
    assert!(found.contains(&hex::encode(&REPORT[0x50..0x70])), "{found}");
}

#[test]
fn another_chips_vcek_fails_chip_id_and_signature() {
    // A real Turin VCEK (sev 8.0.0 tests/certs_data/vcek_turin.der): genuinely AMD-certified,
    // for another chip.
    let checks = run(&evidence(REPORT, TURIN_VCEK), &Policy::default(), sample_binding(), AT);
    assert!(passed(&checks, "snp-cert-chain"), "{checks:#?}");
    failed(&checks, "snp-report-signature");
    let (expected, found) = failed(&checks, "snp-chip-id");
    assert!(found.contains(&hex::encode(&REPORT[0x1a0..0x1e0])), "{found}");
    assert!(expected.contains("VCEK hwID"), "{expected}");
}

#[test]
fn reported_tcb_other_than_the_vceks_fails_vcek_tcb() {
    // The VCEK certifies one TCB; a report claiming another (here microcode, byte 0x187 of the
    // Milan layout, one higher) is refused by `snp-vcek-tcb` with both values. The change also
    // breaks the signature: `snp-vcek-tcb` is checked regardless, and names the mismatch.
    let mut report = REPORT.to_vec();
    let microcode = report[0x187];
    report[0x187] = microcode.wrapping_add(1);
    let checks = run(&evidence(&report, VCEK), &Policy::default(), sample_binding(), AT);
    let (expected, found) = failed(&checks, "snp-vcek-tcb");
    assert_eq!(found, format!("microcode: VCEK {microcode} ≠ report {}", microcode.wrapping_add(1)));
    assert!(expected.contains(&format!("microcode {}", microcode.wrapping_add(1))), "{expected}");
    failed(&checks, "snp-report-signature");
    assert!(passed(&checks, "snp-chip-id"), "only the TCB differs: {checks:#?}");
    // The unmodified sample passes it (the positive case).
    assert!(passed(&run(&evidence(REPORT, VCEK), &Policy::default(), sample_binding(), AT), "snp-vcek-tcb"));
}

#[test]
fn mutated_vcek_fails_the_chain() {
    // Flip a byte inside the VCEK's TBS (the same offset the sev crate's own test flips).
    let mut vcek = VCEK.to_vec();
    vcek[40] ^= 0xff;
    let checks = run(&evidence(REPORT, &vcek), &Policy::default(), sample_binding(), AT);
    let (_, found) = failed(&checks, "snp-cert-chain");
    assert!(found.contains("Milan"), "{found}");
}

#[test]
fn after_vcek_expiry_fails_cert_validity() {
    let checks = run(&evidence(REPORT, VCEK), &Policy::default(), sample_binding(), VCEK_NOT_AFTER + 1);
    let (_, found) = failed(&checks, "snp-cert-validity");
    assert!(found.contains("VCEK") && found.contains("expired"), "{found}");
    let checks = run(&evidence(REPORT, VCEK), &Policy::default(), sample_binding(), VCEK_NOT_AFTER);
    assert!(passed(&checks, "snp-cert-validity"));
}

#[test]
fn measurement_must_be_in_the_policy_list() {
    let measurement: [u8; 48] = REPORT[0x90..0xc0].try_into().unwrap();
    let mut policy = Policy::default();
    policy.sev_snp.measurements = Some(vec![measurement]);
    assert!(passed(&run(&evidence(REPORT, VCEK), &policy, sample_binding(), AT), "snp-measurement"));
    let mut other = measurement;
    other[47] ^= 1;
    policy.sev_snp.measurements = Some(vec![other]);
    let checks = run(&evidence(REPORT, VCEK), &policy, sample_binding(), AT);
    let (expected, found) = failed(&checks, "snp-measurement");
    assert_eq!(found, hex::encode(measurement));
    assert!(expected.contains(&hex::encode(other)));
}

#[test]
fn reported_tcb_below_policy_minimum_fails() {
    // Reported TCB bytes at 0x180: bootloader, tee, 4 reserved, snp, microcode (Milan layout).
    let tcb = &REPORT[0x180..0x188];
    let at = SnpTcb { bootloader: tcb[0], tee: tcb[1], snp: tcb[6], microcode: tcb[7], fmc: None };
    let mut policy = Policy::default();
    policy.sev_snp.min_tcb = Some(at);
    assert!(passed(&run(&evidence(REPORT, VCEK), &policy, sample_binding(), AT), "snp-min-tcb"));
    policy.sev_snp.min_tcb = Some(SnpTcb { snp: tcb[6] + 1, ..at });
    let checks = run(&evidence(REPORT, VCEK), &policy, sample_binding(), AT);
    let (expected, found) = failed(&checks, "snp-min-tcb");
    assert!(found.contains(&format!("snp {} < {}", tcb[6], tcb[6] + 1)), "{found}");
    assert!(expected.contains(&format!("snp ≥ {}", tcb[6] + 1)), "{expected}");
}

#[test]
fn hostile_bodies_fail_decode_without_panicking() {
    let good = evidence(REPORT, VCEK);
    let mut bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"garbage".to_vec(),
        vec![0xff; 64],
        good[..good.len() / 2].to_vec(),
        evidence(&REPORT[..1000], VCEK),
        evidence(REPORT, &VCEK[..100]),
        // A byte string claiming 2^32 bytes.
        vec![0xa1, 0x66, b'r', b'e', b'p', b'o', b'r', b't', 0x5a, 0xff, 0xff, 0xff, 0xff],
    ];
    // An unknown key is refused.
    let mut with_extra =
        serde_ipld_dagcbor::from_slice::<std::collections::BTreeMap<String, serde_bytes::ByteBuf>>(&good).unwrap();
    with_extra.insert("extra".into(), serde_bytes::ByteBuf::from(vec![1]));
    bodies.push(serde_ipld_dagcbor::to_vec(&with_extra).unwrap());
    for body in &bodies {
        let checks = run(body, &Policy::default(), sample_binding(), AT);
        failed(&checks, "snp-decode");
        assert!(matches!(status(&checks, "snp-report-signature"), Status::Skipped { .. }));
    }
    // Every single-byte corruption of the report fails decode or the signature; none panics.
    // The unmodified sample already fails `snp-report-data` (its bytes 32..64 are not zero), so
    // each corruption must fail a claim other than that one, or an ignored flip would pass.
    for i in (0..REPORT.len()).step_by(7) {
        let mut report = REPORT.to_vec();
        report[i] ^= 0xa5;
        let checks = run(&evidence(&report, VCEK), &Policy::default(), sample_binding(), AT);
        let failed = failures(&checks);
        assert!(
            failed.iter().any(|c| ["snp-decode", "snp-report-signature"].contains(c)),
            "corrupting byte {i:#x} must fail decode or the signature, failed {failed:?}"
        );
    }
}

#[test]
fn technology_not_accepted_is_one_failed_check() {
    let policy = Policy { accept: vec![Technology::Tdx], ..Policy::default() };
    let checks = run(&evidence(REPORT, VCEK), &policy, sample_binding(), AT);
    assert_eq!(checks.0.len(), 1);
    let (expected, found) = failed(&checks, "technology");
    assert_eq!(expected, "one of [tdx]");
    assert!(found.contains("sev-snp"));
    let checks = appraise("none", b"", &Policy::default(), &Context { binding: [0; 32], trust_roots: &[], at: AT });
    assert_eq!(checks.0.len(), 1);
    assert!(failed(&checks, "technology").1.contains("allow-insecure"));
}
