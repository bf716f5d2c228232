//! The logic of the `receipt` fuzz target, as a plain function: `fuzz_targets/receipt.rs`
//! wraps it, and vouch-receipt's integration tests include this file and run it over seeds
//! (the golden receipt and spec, their truncations and byte flips), so CI exercises it too.

use vouch_receipt::{JobSpec, Receipt, VerifyOptions, verify};

/// Arbitrary bytes as a receipt and as a job spec. Never panics; invariants: whatever decodes
/// is canonical (re-encodes to the same bytes) and the report names the CID of those bytes;
/// whatever verifies decodes.
pub fn receipt(data: &[u8]) {
    let opts = VerifyOptions { allow_insecure: true, at: Some(1_750_000_000), ..VerifyOptions::default() };
    let report = verify(data, &opts);
    if let Ok(r) = Receipt::decode(data) {
        assert_eq!(r.encode(), data, "a decoded receipt re-encodes to the same bytes");
        assert_eq!(r.cid(), report.cid, "the report names the CID of the bytes");
    }
    if report.verified() {
        assert!(report.receipt.is_some(), "a verified report carries its receipt");
    }
    let _ = report.to_string();
    if let Ok(spec) = JobSpec::decode(data) {
        assert_eq!(spec.encode(), data, "a decoded spec re-encodes to the same bytes");
        spec.validate().expect("a decoded spec is valid");
    }
}
