//! The pure verifier against committed swtpm evidence (no libtss2, no swtpm): see
//! `testdata/tpm/README.md` for how the vector was made.

use sha2::{Digest, Sha256};
use vouch_attest::tpm::{self, TpmEvidence, TpmPolicy};
use vouch_attest::{Checks, Context, Status};

const AT: u64 = 1_900_000_000;

fn load() -> (Vec<u8>, Vec<u8>, TpmPolicy) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tpm");
    let evidence = std::fs::read(dir.join("evidence.cbor")).unwrap();
    let root = std::fs::read(dir.join("ek-root.der")).unwrap();
    let policy: TpmPolicy = toml::from_str(&std::fs::read_to_string(dir.join("policy.toml")).unwrap()).unwrap();
    (evidence, root, policy)
}

fn appraise(evidence: &[u8], root: &[u8], policy: &TpmPolicy, nonce: &[u8]) -> Checks {
    let roots = vec![root.to_vec()];
    let ctx = Context { binding: Sha256::digest(nonce).into(), trust_roots: &roots, at: AT };
    let mut checks = Checks::new();
    tpm::appraise(evidence, Some(policy), &ctx, &mut checks);
    checks
}

#[test]
fn committed_swtpm_evidence_passes_every_claim() {
    let (evidence, root, policy) = load();
    let checks = appraise(&evidence, &root, &policy, b"nonce-1");
    let names: Vec<&str> = checks.iter().map(|c| c.claim.as_str()).collect();
    assert_eq!(
        names,
        [
            "tpm-decode",
            "tpm-ek-chain",
            "tpm-ek-validity",
            "tpm-ak-binding",
            "tpm-ak-attributes",
            "tpm-quote-signature",
            "tpm-quote-magic-type",
            "tpm-qualifying-data",
            "tpm-pcr-digest",
            "tpm-pcr-values"
        ]
    );
    for c in checks.iter() {
        assert!(matches!(c.status, Status::Passed { .. }), "{checks:#?}");
    }
}

#[test]
fn committed_evidence_tampered() {
    let (evidence, root, policy) = load();
    let ev = TpmEvidence::from_bytes(&evidence).unwrap();
    assert_eq!(appraise(&evidence, &root, &policy, b"nonce-2").first_failure().unwrap().claim, "tpm-qualifying-data");
    let mut t = ev.clone();
    t.quote[20] ^= 1;
    assert_eq!(
        appraise(&t.to_bytes(), &root, &policy, b"nonce-1").first_failure().unwrap().claim,
        "tpm-quote-signature"
    );
    let mut t = ev.clone();
    t.pcrs[8].sha256[31] ^= 1;
    assert_eq!(appraise(&t.to_bytes(), &root, &policy, b"nonce-1").first_failure().unwrap().claim, "tpm-pcr-digest");
    let mut t = ev.clone();
    t.ak_binding.statement.ak_name[33] ^= 1;
    assert_eq!(appraise(&t.to_bytes(), &root, &policy, b"nonce-1").first_failure().unwrap().claim, "tpm-ak-binding");
    // Every single-byte corruption of the encoding is rejected somewhere, never panics.
    for i in (0..evidence.len()).step_by(7) {
        let mut t = evidence.clone();
        t[i] ^= 0x5a;
        assert!(!appraise(&t, &root, &policy, b"nonce-1").ok(), "byte {i}");
    }
}

#[test]
fn an_ak_that_is_not_a_restricted_signing_key_fails_ak_attributes() {
    // The committed AK's TPM2B_PUBLIC with its TPMA_OBJECT (bytes 6..10: after the size, type
    // and nameAlg) rewritten. The key itself is unchanged, so the quote signature still
    // verifies: only the attributes (and the enrolment, which named the original AK) fail.
    let (evidence, root, policy) = load();
    let ev = TpmEvidence::from_bytes(&evidence).unwrap();
    let attrs = u32::from_be_bytes(ev.ak_public[6..10].try_into().unwrap());
    assert_eq!(attrs & 0x0007_0000, 0x0005_0000, "the vector's AK is restricted|sign, not decrypt");
    let with = |attrs: u32| {
        let mut t = ev.clone();
        t.ak_public[6..10].copy_from_slice(&attrs.to_be_bytes());
        appraise(&t.to_bytes(), &root, &policy, b"nonce-1")
    };
    let status = |checks: &Checks, claim: &str| checks.iter().find(|c| c.claim == claim).unwrap().status.clone();
    // Unrestricted and decrypting: a key that could sign anything and decrypt credentials.
    for bad in [attrs & !0x0001_0000 | 0x0002_0000, attrs & !0x0001_0000, attrs | 0x0002_0000, attrs & !0x0004_0000] {
        let checks = with(bad);
        match status(&checks, "tpm-ak-attributes") {
            Status::Failed { expected, found } => {
                assert_eq!(expected, "fixedTPM|fixedParent|sensitiveDataOrigin|restricted|sign, not decrypt");
                assert!(found.starts_with(&format!("0x{bad:08x} (")), "{found}");
            }
            s => panic!("attributes 0x{bad:08x} should fail tpm-ak-attributes, got {s:?}"),
        }
        assert!(matches!(status(&checks, "tpm-quote-signature"), Status::Passed { .. }), "{checks:#?}");
    }
}
