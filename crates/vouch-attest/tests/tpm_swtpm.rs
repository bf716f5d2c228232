//! End to end against a real swtpm: evidence generated through tss-esapi, appraised by the pure
//! verifier, and each tamper failing its own claim.

#![cfg(feature = "tpm-attester")]

mod tpm_support;

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use tpm_support::{Swtpm, swtpm_available};
use vouch_attest::tpm::{self, DEFAULT_PCR_SELECTION, EkPublic, Enrollment, TpmEvidence, TpmPolicy};
use vouch_attest::tpm_attester::{EkKind, TpmAttester};
use vouch_attest::{Checks, Context, Status};

const AT: u64 = 1_900_000_000; // 2030-03-17: inside the local CA's validity (now .. 9999)

fn authority() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn policy_for(key: &SigningKey) -> TpmPolicy {
    TpmPolicy { enrollment_keys: vec![hex::encode(key.verifying_key().to_bytes())], ..Default::default() }
}

fn binding(nonce: &[u8]) -> [u8; 32] {
    Sha256::digest(nonce).into()
}

/// Enrol the attester's AK the way an enrolment authority does: make a credential for the EK of
/// the (already verified) EK certificate and the AK name, have the TPM activate it, compare.
fn enroll(attester: &mut TpmAttester, key: &SigningKey) -> Enrollment {
    let ek_cert = attester.ek_certificate().expect("EK certificate").to_vec();
    let ek = EkPublic::from_certificate(&ek_cert).expect("EK public key from the certificate");
    let ak_name = attester.ak_name().unwrap();
    let cred = tpm::make_credential(&ek, &ak_name).unwrap();
    let secret = attester.activate_credential(&cred.credential_blob, &cred.encrypted_secret).expect("activation");
    assert_eq!(secret, cred.secret, "the TPM released the secret the authority made");
    Enrollment::sign(key, &ek_cert, &ak_name, AT - 1000)
}

fn evidence(attester: &mut TpmAttester, key: &SigningKey, nonce: &[u8], chain: Vec<Vec<u8>>) -> TpmEvidence {
    let enrollment = enroll(attester, key);
    attester.quote(binding(nonce), &DEFAULT_PCR_SELECTION, enrollment, chain).expect("quote")
}

fn appraise(ev: &[u8], policy: &TpmPolicy, roots: &[Vec<u8>], nonce: &[u8], at: u64) -> Checks {
    let ctx = Context { binding: binding(nonce), trust_roots: roots, at };
    let mut checks = Checks::new();
    tpm::appraise(ev, Some(policy), &ctx, &mut checks);
    checks
}

fn status<'a>(checks: &'a Checks, claim: &str) -> &'a Status {
    &checks.iter().find(|c| c.claim == claim).unwrap_or_else(|| panic!("no claim {claim} in {checks:#?}")).status
}

fn assert_failed(checks: &Checks, claim: &str) {
    assert!(matches!(status(checks, claim), Status::Failed { .. }), "{claim} should fail: {checks:#?}");
    assert_eq!(checks.first_failure().map(|c| c.claim.as_str()), Some(claim), "first failure: {checks:#?}");
}

fn assert_all_passed(checks: &Checks) {
    for c in checks.iter() {
        assert!(matches!(c.status, Status::Passed { .. }), "{} did not pass: {checks:#?}", c.claim);
    }
    assert_eq!(checks.iter().count(), 10, "{checks:#?}");
}

#[test]
fn quote_verifies_and_every_tamper_fails_its_claim() {
    if !swtpm_available() {
        return;
    }
    let tpm = Swtpm::start();
    let key = authority();
    let mut attester = TpmAttester::open(&tpm.tcti()).expect("open swtpm");
    assert_eq!(attester.ek_kind(), EkKind::Rsa2048);
    attester.extend_self_measurement(Sha256::digest(b"the vouch binary").into()).unwrap();
    let ev = evidence(&mut attester, &key, b"nonce-1", vec![tpm.issuer_der()]);
    drop(attester);
    let bytes = ev.to_bytes();
    let roots = vec![tpm.root_der()];
    let mut policy = policy_for(&key);

    // PCR 23 holds the extended measurement: SHA-256(zeros ‖ SHA-256(binary)).
    let mut pcr23 = Sha256::new();
    pcr23.update([0u8; 32]);
    pcr23.update(Sha256::digest(b"the vouch binary"));
    let pcr23 = hex::encode(pcr23.finalize());
    assert_eq!(hex::encode(&ev.pcrs.iter().find(|p| p.index == 23).unwrap().sha256), pcr23);

    // Reference values from the evidence itself: everything passes.
    policy.pcrs = ev.pcrs.iter().map(|p| (p.index.to_string(), hex::encode(&p.sha256))).collect();
    let checks = appraise(&bytes, &policy, &roots, b"nonce-1", AT);
    assert_all_passed(&checks);
    assert!(checks.ok());

    // Another nonce: the quote is bound to nonce-1.
    assert_failed(&appraise(&bytes, &policy, &roots, b"nonce-2", AT), "tpm-qualifying-data");

    // A flipped signature byte (the last byte of s).
    let mut t = ev.clone();
    *t.signature.last_mut().unwrap() ^= 1;
    let checks = appraise(&t.to_bytes(), &policy, &roots, b"nonce-1", AT);
    assert_failed(&checks, "tpm-quote-signature");
    assert!(matches!(status(&checks, "tpm-qualifying-data"), Status::Skipped { .. }));

    // A changed PCR value.
    let mut t = ev.clone();
    t.pcrs[0].sha256[0] ^= 0xff;
    let checks = appraise(&t.to_bytes(), &policy, &roots, b"nonce-1", AT);
    assert_failed(&checks, "tpm-pcr-digest");
    assert!(matches!(status(&checks, "tpm-pcr-values"), Status::Skipped { .. }));

    // A policy expecting another PCR 23: named, with both values.
    let mut p = policy.clone();
    p.pcrs.insert("23".into(), "00".repeat(32));
    let checks = appraise(&bytes, &p, &roots, b"nonce-1", AT);
    assert_failed(&checks, "tpm-pcr-values");
    let Status::Failed { expected, found } = status(&checks, "tpm-pcr-values") else { unreachable!() };
    assert_eq!(expected, &format!("PCR 23 = {}", "00".repeat(32)));
    assert_eq!(found, &format!("PCR 23 = {pcr23}"));

    // A policy that requires a PCR the quote does not cover.
    let mut p = policy.clone();
    p.pcr_selection = Some(vec![0, 1, 2, 3, 4, 5, 6, 7, 23, 16]);
    assert_failed(&appraise(&bytes, &p, &roots, b"nonce-1", AT), "tpm-pcr-digest");

    // An enrolment signed by a key the policy does not trust.
    let rogue = SigningKey::from_bytes(&[9u8; 32]);
    let mut t = ev.clone();
    t.ak_binding = Enrollment::sign(&rogue, &t.ek_certificate, &t.ak_binding.statement.ak_name, AT);
    assert_failed(&appraise(&t.to_bytes(), &policy, &roots, b"nonce-1", AT), "tpm-ak-binding");
    // ... or a trusted key's statement altered after signing.
    let mut t = ev.clone();
    t.ak_binding.statement.enrolled_at += 1;
    assert_failed(&appraise(&t.to_bytes(), &policy, &roots, b"nonce-1", AT), "tpm-ak-binding");

    // No trusted enrolment keys at all.
    let mut p = policy.clone();
    p.enrollment_keys.clear();
    assert_failed(&appraise(&bytes, &p, &roots, b"nonce-1", AT), "tpm-ak-binding");

    // Without the intermediate, or without the root, the EK chain does not verify.
    let mut t = ev.clone();
    t.ek_chain.clear();
    assert_failed(&appraise(&t.to_bytes(), &policy, &roots, b"nonce-1", AT), "tpm-ek-chain");
    assert_failed(&appraise(&bytes, &policy, &[], b"nonce-1", AT), "tpm-ek-chain");

    // Verification time before the EK certificate was issued, and after it expires (9999-12-31).
    assert_failed(&appraise(&bytes, &policy, &roots, b"nonce-1", 1_000_000_000), "tpm-ek-validity");
    assert_failed(&appraise(&bytes, &policy, &roots, b"nonce-1", 253_402_300_800), "tpm-ek-validity");

    // Garbage and truncations never panic; they fail tpm-decode and skip the rest.
    for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
        let checks = appraise(&bytes[..cut], &policy, &roots, b"nonce-1", AT);
        assert_failed(&checks, "tpm-decode");
        assert_eq!(checks.iter().filter(|c| matches!(c.status, Status::Skipped { .. })).count(), 9);
    }
    let mut t = ev.clone();
    t.quote[0] = 0;
    let checks = appraise(&t.to_bytes(), &policy, &roots, b"nonce-1", AT);
    assert_failed(&checks, "tpm-quote-signature");
    assert!(matches!(status(&checks, "tpm-quote-magic-type"), Status::Failed { .. }));

    // Unknown fields are rejected.
    assert_eq!(bytes[0], 0xa7, "a map of seven fields");
    let mut with_extra = bytes.clone();
    with_extra[0] = 0xa8;
    with_extra.extend_from_slice(&[0x62, b'z', b'z', 0x01]); // "zz": 1
    assert_failed(&appraise(&with_extra, &policy, &roots, b"nonce-1", AT), "tpm-decode");

    if std::env::var("VOUCH_WRITE_TPM_TESTDATA").as_deref() == Ok("1") {
        write_testdata(&bytes, &roots[0], &policy);
    }
}

/// Regenerate `testdata/tpm/` (see its README).
fn write_testdata(evidence: &[u8], root: &[u8], policy: &TpmPolicy) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tpm");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("evidence.cbor"), evidence).unwrap();
    std::fs::write(dir.join("ek-root.der"), root).unwrap();
    let mut toml = format!("enrollment_keys = [\"{}\"]\n\n[pcrs]\n", policy.enrollment_keys[0]);
    for (k, v) in &policy.pcrs {
        toml.push_str(&format!("\"{k}\" = \"{v}\"\n"));
    }
    std::fs::write(dir.join("policy.toml"), toml).unwrap();
}

#[test]
fn a_second_tpm_cannot_borrow_the_first_ones_identity() {
    if !swtpm_available() {
        return;
    }
    let (a, b) = (Swtpm::start(), Swtpm::start());
    let key = authority();
    let policy = policy_for(&key);

    let mut tpm_a = TpmAttester::open(&a.tcti()).unwrap();
    let ev_a = evidence(&mut tpm_a, &key, b"n", vec![a.issuer_der()]);
    let ek_cert_a = tpm_a.ek_certificate().unwrap().to_vec();
    let ak_name_a = tpm_a.ak_name().unwrap();
    drop(tpm_a);

    let mut tpm_b = TpmAttester::open(&b.tcti()).unwrap();
    assert_ne!(tpm_b.ak_name().unwrap(), ak_name_a, "two TPMs derive different AKs");

    // A credential made for A's EK and B's AK name: B cannot activate it.
    let ek_a = EkPublic::from_certificate(&ek_cert_a).unwrap();
    let cred = tpm::make_credential(&ek_a, &tpm_b.ak_name().unwrap()).unwrap();
    let err = tpm_b.activate_credential(&cred.credential_blob, &cred.encrypted_secret);
    assert!(err.is_err(), "TPM B activated a credential made for TPM A's EK: {err:?}");

    // B's quote presented with A's EK certificate and A's enrolment: the AK binding fails.
    let mut ev_b = tpm_b.quote(binding(b"n"), &DEFAULT_PCR_SELECTION, ev_a.ak_binding.clone(), vec![]).unwrap();
    ev_b.ek_certificate = ek_cert_a.clone();
    ev_b.ek_chain = ev_a.ek_chain.clone();
    let checks = appraise(&ev_b.to_bytes(), &policy, &[a.root_der()], b"n", AT);
    assert_failed(&checks, "tpm-ak-binding");
    assert!(matches!(status(&checks, "tpm-quote-signature"), Status::Passed { .. }));
    drop(tpm_b);

    // A's evidence appraised with B's local CA as the only trust root: the EK chain fails, and
    // the message names the certificate whose issuer was not found.
    let checks = appraise(&ev_a.to_bytes(), &policy, &[b.root_der()], b"n", AT);
    assert_failed(&checks, "tpm-ek-chain");
    let Status::Failed { found, .. } = status(&checks, "tpm-ek-chain") else { unreachable!() };
    assert!(found.contains("swtpm-localca"), "{found}");
    // With A's root everything passes (no PCR reference values in this policy: skipped).
    let checks = appraise(&ev_a.to_bytes(), &policy, &[a.root_der()], b"n", AT);
    assert!(checks.ok(), "{checks:#?}");
    assert!(matches!(status(&checks, "tpm-ek-chain"), Status::Passed { .. }));
    assert!(matches!(status(&checks, "tpm-pcr-values"), Status::Skipped { .. }));
}

#[test]
fn make_and_activate_credential_with_an_ecc_p256_ek() {
    if !swtpm_available() {
        return;
    }
    let tpm = Swtpm::start();
    // swtpm_setup certifies RSA 2048 and P-384 EKs; the P-256 EK (template L-2) has no
    // certificate, so its key comes from the TPM's TPM2B_PUBLIC.
    let mut attester = TpmAttester::open_with(&tpm.tcti(), EkKind::EccP256, false).unwrap();
    assert!(attester.ek_certificate().is_none());
    let ek = EkPublic::from_tpm2b_public(attester.ek_public()).unwrap();
    assert!(matches!(ek, EkPublic::EccP256(_)));
    let name = attester.ak_name().unwrap();
    let cred = tpm::make_credential(&ek, &name).unwrap();
    assert_eq!(attester.activate_credential(&cred.credential_blob, &cred.encrypted_secret).unwrap(), cred.secret);

    // The same credential bound to another name does not activate.
    let mut other = name.clone();
    other[33] ^= 1;
    let cred = tpm::make_credential(&ek, &other).unwrap();
    assert!(attester.activate_credential(&cred.credential_blob, &cred.encrypted_secret).is_err());

    // And the RSA EK of the same TPM, from its TPM2B_PUBLIC, matches its certificate.
    drop(attester);
    let attester = TpmAttester::open_with(&tpm.tcti(), EkKind::Rsa2048, true).unwrap();
    assert_eq!(
        EkPublic::from_tpm2b_public(attester.ek_public()).unwrap(),
        EkPublic::from_certificate(attester.ek_certificate().unwrap()).unwrap()
    );
}
