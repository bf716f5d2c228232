//! Tampering: no flipped bit anywhere in an encoded receipt verifies, and receipts signed by
//! another key fail the claim that should catch them.

use std::collections::BTreeMap;

use ed25519_dalek::Signer;
use vouch_receipt::*;

use crate::fixtures::{first_failure, golden, golden_body, insecure, key, status};

/// Every single-bit flip of every byte of the golden receipt fails verification, under the most
/// permissive options the original passes with. Prints which claim caught how many.
#[test]
fn every_flipped_bit_is_caught() {
    let bytes = golden().encode();
    let opts = insecure();
    assert!(verify(&bytes, &opts).verified());
    let mut caught: BTreeMap<&str, usize> = BTreeMap::new();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut t = bytes.clone();
            t[i] ^= 1 << bit;
            let report = verify(&t, &opts);
            let Some(c) = report.first_failure() else {
                panic!("flipping bit {bit} of byte {i} still verifies:\n{report}");
            };
            *caught.entry(c.name).or_default() += 1;
            // Decoding agrees with verification about structure.
            let structural = matches!(c.name, "dag-cbor" | "version" | "schema" | "canonical");
            assert_eq!(Receipt::decode(&t).is_err(), structural, "byte {i} bit {bit}: {c}");
        }
    }
    println!("{} bytes x 8 bit flips, first failing claim: {caught:?}", bytes.len());
    assert!(caught.contains_key("signature") && caught.contains_key("dag-cbor"));
}

/// Truncations and appended bytes never verify either.
#[test]
fn truncated_or_extended_receipts_fail_to_decode() {
    let bytes = golden().encode();
    for n in 0..bytes.len() {
        assert_eq!(verify(&bytes[..n], &insecure()).first_failure().unwrap().name, "dag-cbor", "prefix {n}");
    }
    for extra in [&[0x00][..], &[0xa0], &bytes] {
        let t = [&bytes[..], extra].concat();
        let (_, found) = first_failure(&verify(&t, &insecure()), "dag-cbor");
        assert!(found.contains("not valid DAG-CBOR"), "{found}");
    }
}

/// Signed by another key while naming the node key: the signature claim fails.
#[test]
fn signature_by_another_key_fails_the_signature_claim() {
    let other = SigningKey::from_bytes(&[0x09; 32]);
    let body = golden_body();
    let forged = Receipt { signature: other.sign(&body.signed_bytes()).to_bytes(), body };
    for opts in [insecure(), VerifyOptions { expected_node_key: None, ..insecure() }] {
        let report = verify(&forged.encode(), &opts);
        let (expected, found) = first_failure(&report, "signature");
        assert!(expected.contains(&hex::encode(key().verifying_key().to_bytes())), "{expected}");
        assert!(found.ends_with("does not verify"), "{found}");
    }
}

/// The node key replaced by another and the receipt re-signed: the signature holds, so the
/// pinned key is what catches it, and the evidence no longer binds the key.
#[test]
fn replaced_node_key_fails_the_pinned_key_and_the_binding() {
    let other = SigningKey::from_bytes(&[0x09; 32]);
    let mut body = golden_body();
    body.node_key = other.verifying_key().to_bytes();
    let bytes = Receipt::sign(body.clone(), &other).unwrap().encode();

    let report = verify(&bytes, &insecure());
    assert!(matches!(status(&report, "signature"), Status::Passed { .. }));
    let (expected, found) = first_failure(&report, "node-key");
    assert_eq!((expected, found), (hex::encode(key().verifying_key().to_bytes()), hex::encode(body.node_key)));
    assert!(matches!(status(&report, "evidence-binding"), Status::Failed { .. }), "{report}");

    // Unpinned, the stale evidence still gives it away.
    let unpinned = VerifyOptions { expected_node_key: None, ..insecure() };
    first_failure(&verify(&bytes, &unpinned), "evidence-binding");

    // With fresh `none` evidence and no pinned key it verifies: `none` proves nothing about who
    // signed, which is why it is rejected unless insecure receipts are allowed.
    body.evidence = Evidence::none(&body.node_key, body.evidence.nonce.clone());
    let bytes = Receipt::sign(body, &other).unwrap().encode();
    assert!(verify(&bytes, &unpinned).verified());
    first_failure(&verify(&bytes, &insecure()), "node-key");
    first_failure(&verify(&bytes, &VerifyOptions { allow_insecure: false, ..unpinned }), "evidence");
}

/// A signature moved onto a different receipt body does not verify.
#[test]
fn signature_does_not_transfer_between_receipts() {
    let a = golden();
    let mut body = golden_body();
    body.issued_at += 1;
    let b = Receipt { body, signature: a.signature };
    first_failure(&verify(&b.encode(), &insecure()), "signature");
}
