//! The golden vector: the receipt built from the documented fields (`fixtures.rs`,
//! `testdata/README.md`) must encode to the committed bytes, so any format change is deliberate.
//! Regenerate with `VOUCH_BLESS=1 cargo test -p vouch-receipt --test it golden`, then rerun
//! `testdata/check.py` and update the CIDs here, in `testdata/README.md` and in `docs/receipt.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

use vouch_receipt::*;

use crate::fixtures::{first_failure, golden, insecure};

/// The golden receipt's CID.
const RECEIPT_CID: &str = "bafyreie7izsbher23lanppn2zlhgayo3u7qvgvzz2zw4d55mxysphicj5a";
/// The golden job's CID.
const JOB_CID: &str = "bafyreifxmtyv3zdhbsg5mjy5xekoxks26lhmqtfjy3ugt3mgymerbbtzaq";

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}

/// `bytes` must equal the committed `testdata/NAME`, or be written there under `VOUCH_BLESS=1`.
fn committed(name: &str, bytes: &[u8]) {
    let path = testdata(name);
    if std::env::var_os("VOUCH_BLESS").is_some() {
        std::fs::write(&path, bytes).unwrap();
        return;
    }
    let old = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        old == bytes,
        "{name} is not the encoding of the documented fields: the format changed. If that is deliberate, \
         regenerate with VOUCH_BLESS=1 (see this file's header).\ncommitted: {}\nnow:       {}",
        hex::encode(&old),
        hex::encode(bytes)
    );
}

#[test]
fn golden_vector_is_the_committed_bytes() {
    let r = golden();
    let bytes = r.encode();
    committed("receipt-v1.cbor", &bytes);
    committed("job-spec-v1.cbor", &r.body.spec.encode());
    let json = vouch_dag::json::to_json(&r.cid(), &bytes).unwrap();
    committed("receipt-v1.json", format!("{}\n", serde_json::to_string_pretty(&json).unwrap()).as_bytes());
}

#[test]
fn golden_vector_decodes_and_verifies() {
    let bytes = std::fs::read(testdata("receipt-v1.cbor")).unwrap();
    let r = Receipt::decode(&bytes).unwrap();
    assert_eq!(r, golden());
    assert_eq!(r.cid().to_string(), RECEIPT_CID);
    assert_eq!(r.body.job.to_string(), JOB_CID);
    assert_eq!(
        JobSpec::decode(&std::fs::read(testdata("job-spec-v1.cbor")).unwrap()).unwrap().cid().to_string(),
        JOB_CID
    );

    let report = verify(&bytes, &insecure());
    assert!(report.verified(), "{report}");
    assert_eq!(report.cid.to_string(), RECEIPT_CID);
    assert_eq!(report.claims.iter().map(|c| c.name).collect::<Vec<_>>(), CLAIMS);

    // Without --allow-insecure the `none` evidence is what fails, and only that.
    let strict = VerifyOptions { allow_insecure: false, ..insecure() };
    let report = verify(&bytes, &strict);
    let (_, found) = first_failure(&report, "evidence");
    assert_eq!(found, "technology none: no hardware claim");
    assert_eq!(report.claims.iter().filter(|c| matches!(c.status, Status::Failed { .. })).count(), 1);
}

#[test]
fn documented_cids_are_the_golden_ones() {
    for doc in [testdata("README.md"), Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/receipt.md")] {
        let text = std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        for cid in [RECEIPT_CID, JOB_CID] {
            assert!(text.contains(cid), "{} does not mention the golden CID {cid}", doc.display());
        }
    }
}

/// The independent cross-check: `testdata/check.py` decodes the CBOR with Python `cbor2` and
/// verifies the signature with `cryptography`. Runs with `$VOUCH_PYTHON` or `target/venv`'s
/// Python; skips with a reason when it lacks those packages, fails under `CI=true`.
#[test]
fn golden_vector_cross_checks_in_python() {
    let python = std::env::var_os("VOUCH_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/venv/bin/python"));
    let usable =
        Command::new(&python).args(["-c", "import cbor2, cryptography"]).output().is_ok_and(|o| o.status.success());
    if !usable {
        let reason = format!("{} with cbor2 and cryptography not found", python.display());
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{reason}");
        println!("skipped: {reason}");
        return;
    }
    let out = Command::new(&python).arg(testdata("check.py")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "check.py failed");
    assert!(stdout.contains(&format!("receipt CID {RECEIPT_CID}")), "check.py computed another receipt CID");
}
