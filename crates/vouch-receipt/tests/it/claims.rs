//! Each verification claim, failing for its own reason and naming expected and found.

use ipld_core::ipld::Ipld;
use vouch_receipt::*;

use crate::fixtures::{AT, encode_map, first_failure, golden, insecure, map_of, signed_with, status};

#[test]
fn a_report_lists_every_claim_in_order_and_prints_them() {
    let report = verify(&golden().encode(), &insecure());
    assert_eq!(report.claims.iter().map(|c| c.name).collect::<Vec<_>>(), CLAIMS);
    let text = report.to_string();
    assert!(text.contains("pass  evidence: technology none: NO HARDWARE CLAIM"), "{text}");
    assert!(text.ends_with("\nverified"), "{text}");
    let json = serde_json::to_value(&report.claims[6]).unwrap();
    assert_eq!(json["name"], "signature");
    assert_eq!(json["status"], "passed");
}

#[test]
fn undecodable_bytes_fail_the_first_claim_and_skip_the_rest() {
    let report = verify(b"not cbor", &insecure());
    let (expected, found) = first_failure(&report, "dag-cbor");
    assert!(expected.contains("strict DAG-CBOR"), "{expected}");
    assert!(found.starts_with("receipt is not valid DAG-CBOR"), "{found}");
    assert!(report.receipt.is_none());
    for c in &report.claims[1..] {
        assert!(matches!(&c.status, Status::Skipped { reason } if reason == "the receipt did not decode"), "{c}");
    }
    assert!(report.to_string().ends_with("NOT verified: claim `dag-cbor` failed"));
}

#[test]
fn an_unsupported_version_is_named_before_the_schema() {
    let mut m = map_of(&golden().encode());
    m.insert("version".into(), Ipld::Integer(2));
    m.insert("a_field_from_the_future".into(), Ipld::Null);
    let report = verify(&encode_map(m), &insecure());
    assert_eq!(first_failure(&report, "version"), ("version 1".into(), "2".into()));
    assert!(matches!(status(&report, "schema"), Status::Skipped { .. }));
}

#[test]
fn schema_failures_name_the_field_path() {
    let mut m = map_of(&golden().encode());
    let Some(Ipld::Map(spec)) = m.get_mut("spec") else { panic!() };
    let Some(Ipld::Map(limits)) = spec.get_mut("limits") else { panic!() };
    limits.insert("fuel".into(), Ipld::String("lots".into()));
    let (_, found) = first_failure(&verify(&encode_map(m), &insecure()), "schema");
    assert!(found.contains("at `spec.limits.fuel`"), "{found}");
}

#[test]
fn a_null_optional_field_is_not_canonical() {
    let mut m = map_of(&golden().encode());
    m.insert("stderr".into(), Ipld::Null);
    let report = verify(&encode_map(m), &insecure());
    let (expected, found) = first_failure(&report, "canonical");
    assert_eq!(expected, "the canonical DAG-CBOR encoding");
    assert!(found.starts_with("receipt is not canonically encoded"), "{found}");
    // The decoded receipt is reported, and its signature still checks (over the canonical body).
    assert!(report.receipt.is_some());
    assert!(matches!(status(&report, "signature"), Status::Passed { .. }));
}

#[test]
fn a_job_cid_that_is_not_the_spec_fails_job_cid() {
    let bytes = signed_with(|b| b.job = golden().cid());
    let (expected, found) = first_failure(&verify(&bytes, &insecure()), "job-cid");
    assert_eq!(expected, format!("{} (the CID of the inline spec)", golden().body.job));
    assert_eq!(found, golden().cid().to_string());
}

#[test]
fn an_invalid_inline_spec_fails_spec() {
    let bytes = signed_with(|b| {
        b.spec.inputs.insert("../etc".into(), b.spec.module);
        b.job = b.spec.cid();
    });
    let (_, found) = first_failure(&verify(&bytes, &insecure()), "spec");
    assert!(found.contains("inputs[\"../etc\"]"), "{found}");
}

#[test]
fn a_node_key_off_the_curve_fails_signature() {
    let mut r = golden();
    // y = 2 is not the y-coordinate of any point on edwards25519.
    let mut y = [0u8; 32];
    y[0] = 2;
    r.body.node_key = y;
    let (expected, found) = first_failure(&verify(&r.encode(), &insecure()), "signature");
    assert_eq!(expected, "node_key to be an ed25519 public key");
    assert!(found.ends_with("not a curve point"), "{found}");
}

#[test]
fn unpinned_node_key_is_skipped_with_a_reason() {
    let opts = VerifyOptions { expected_node_key: None, ..insecure() };
    let report = verify(&golden().encode(), &opts);
    assert!(report.verified());
    assert!(matches!(status(&report, "node-key"), Status::Skipped { reason } if reason.contains("not checked")));
}

#[test]
fn usage_beyond_the_limits_fails_usage() {
    let over_fuel = signed_with(|b| b.usage.fuel_consumed = Some(b.spec.limits.fuel.unwrap() + 1));
    assert_eq!(first_failure(&verify(&over_fuel, &insecure()), "usage").1, "1000000001");
    let over_memory = signed_with(|b| b.usage.peak_memory_bytes = b.spec.limits.memory_bytes + 1);
    first_failure(&verify(&over_memory, &insecure()), "usage");
    let fuel_without_limit = signed_with(|b| {
        b.spec.limits.fuel = None;
        b.job = b.spec.cid();
        b.outcome = Outcome::OutOfFuel;
    });
    assert_eq!(first_failure(&verify(&fuel_without_limit, &insecure()), "usage").1, "limits.fuel absent");
}

#[test]
fn hardware_evidence_is_appraised_and_its_failing_claim_named() {
    // Bytes that are no TPM evidence: appraised, and the appraisal's first failed claim is named.
    let tpm = signed_with(|b| {
        b.evidence.technology = Technology::Tpm;
        b.evidence.body = Some(EvidenceBody::Inline(vec![1, 2, 3]));
    });
    let report = verify(&tpm, &insecure());
    let (expected, _) = first_failure(&report, "evidence");
    assert!(expected.starts_with("tpm-decode: "), "{expected}");
    assert_eq!(report.evidence_checks.first_failure().unwrap().claim, "tpm-decode");

    // A linked body the verifier was not given fails plainly; bytes that do not hash to the
    // link are refused before any appraisal.
    let linked = signed_with(|b| {
        b.evidence.technology = Technology::SevSnp;
        b.evidence.body = Some(EvidenceBody::Link(b.spec.module));
    });
    let r = Receipt::decode(&linked).unwrap();
    assert_eq!(r.body.evidence.body, Some(EvidenceBody::Link(r.body.spec.module)));
    assert_eq!(first_failure(&verify(&linked, &insecure()), "evidence").1, "not available to this verifier");
    let wrong = vouch_receipt::verify_with(&linked, &insecure(), &|_| Some(b"other bytes".to_vec()));
    assert_eq!(first_failure(&wrong, "evidence").1, "bytes that hash to another CID");

    // A technology the policy does not accept fails the appraisal's `technology` claim.
    let only_tpm =
        VerifyOptions { policy: vouch_receipt::Policy::from_toml_str("accept = [\"tpm\"]").unwrap(), ..insecure() };
    let sgx = signed_with(|b| {
        b.evidence.technology = Technology::Sgx;
        b.evidence.body = Some(EvidenceBody::Inline(vec![0xa0]));
    });
    let (expected, found) = first_failure(&verify(&sgx, &only_tpm), "evidence");
    assert!(expected.starts_with("technology: one of [tpm]"), "{expected}");
    assert!(found.contains("sgx"), "{found}");

    // The policy's maximum evidence age is checked against `produced_at` and the verification time.
    let aged = VerifyOptions {
        policy: vouch_receipt::Policy::from_toml_str("max_evidence_age = \"1h\"").unwrap(),
        ..insecure()
    };
    let at = aged.at.unwrap();
    let age_check = |produced_at: Option<u64>| {
        let bytes = signed_with(|b| {
            b.evidence.technology = Technology::Tpm;
            b.evidence.body = Some(EvidenceBody::Inline(vec![1]));
            b.evidence.produced_at = produced_at;
        });
        let report = verify(&bytes, &aged);
        report.evidence_checks.iter().find(|c| c.claim == "evidence-age").unwrap().status.clone()
    };
    assert!(matches!(age_check(Some(at - 3600)), vouch_receipt::CheckStatus::Passed { .. }));
    assert!(
        matches!(age_check(Some(at - 3601)), vouch_receipt::CheckStatus::Failed { found, .. } if found == format!("produced at {}", at - 3601))
    );
    assert!(
        matches!(age_check(None), vouch_receipt::CheckStatus::Failed { found, .. } if found == "no production time")
    );

    let bodyless = signed_with(|b| b.evidence.technology = Technology::Tdx);
    assert_eq!(first_failure(&verify(&bodyless, &insecure()), "evidence").0, "an evidence body for technology tdx");

    let none_with_body = signed_with(|b| b.evidence.body = Some(EvidenceBody::Inline(vec![])));
    assert_eq!(first_failure(&verify(&none_with_body, &insecure()), "evidence").1, "a body");
}

#[test]
fn evidence_that_binds_another_nonce_fails_the_binding() {
    let bytes = signed_with(|b| b.evidence.nonce[0] ^= 1);
    let (expected, found) = first_failure(&verify(&bytes, &insecure()), "evidence-binding");
    assert!(expected.ends_with("= SHA-256(domain ‖ node key ‖ nonce)"), "{expected}");
    assert_eq!(found, hex::encode(golden().body.evidence.report_data));
}

#[test]
fn receipts_from_the_future_fail_time_beyond_the_skew() {
    let at = |t: u64| VerifyOptions { at: Some(t), ..insecure() };
    assert!(verify(&golden().encode(), &at(AT - 300)).verified());
    let (expected, found) = first_failure(&verify(&golden().encode(), &at(AT - 301)), "time");
    assert_eq!(found, AT.to_string());
    assert!(expected.starts_with(&format!("issued at or before {}", AT - 1)), "{expected}");
    let no_skew = VerifyOptions { max_clock_skew_secs: 0, ..at(AT - 1) };
    first_failure(&verify(&golden().encode(), &no_skew), "time");
    // The system clock is well past 2025.
    assert!(verify(&golden().encode(), &VerifyOptions { at: None, ..insecure() }).verified());
}

#[test]
fn key_releases_are_checked_against_the_job_the_evidence_and_the_pinned_policies() {
    let model = golden().body.spec.inputs["model"];
    let release = |sealed: Cid, policy: u8, insecure: bool| KeyRelease {
        object: [7; 16],
        sealed,
        policy: [policy; 32],
        insecure,
    };
    let mine = VerifyOptions { access_policies: vec![[0xaa; 32]], ..insecure() };

    // Nothing sealed: passes, unless the verifier pins a policy it expects a release under.
    assert!(matches!(status(&verify(&golden().encode(), &insecure()), "releases"),
        Status::Passed { detail } if detail == "nothing sealed was read"));
    let (expected, found) = first_failure(&verify(&golden().encode(), &mine), "releases");
    assert_eq!(
        (expected.as_str(), found.as_str()),
        (format!("key releases under access policy sha256:{}", "aa".repeat(32)).as_str(), "no release recorded")
    );

    // A release of an input under the pinned policy, on hardware evidence, passes either way.
    let ok = signed_with(|b| b.releases = vec![release(model, 0xaa, false)]);
    for opts in [insecure(), mine.clone()] {
        let report = verify(&ok, &opts);
        assert!(report.verified(), "{report}");
    }
    assert!(matches!(status(&verify(&ok, &mine), "releases"),
        Status::Passed { detail } if detail.starts_with("1 sealed part released under sha256:aaaa") && detail.contains("accepted access policy")));

    // Under another policy than the one pinned.
    let other = signed_with(|b| b.releases = vec![release(model, 0xaa, false), release(b.spec.module, 0xbb, false)]);
    assert!(verify(&other, &insecure()).verified());
    let (_, found) = first_failure(&verify(&other, &mine), "releases");
    assert!(found.ends_with(&format!("released under sha256:{}", "bb".repeat(32))), "{found}");

    // Of a CID the job never reads.
    let stray = signed_with(|b| b.releases = vec![release(b.output.unwrap(), 0xaa, false)]);
    let (expected, found) = first_failure(&verify(&stray, &insecure()), "releases");
    assert!(expected.contains("module, an input or a mount"), "{expected}");
    assert!(found.contains("which the job does not read"), "{found}");

    // On `none` evidence: only with insecure receipts allowed, and said so.
    let weak = signed_with(|b| b.releases = vec![release(model, 0xaa, true)]);
    assert!(matches!(status(&verify(&weak, &insecure()), "releases"),
        Status::Passed { detail } if detail.contains("NO HARDWARE CLAIM")));
    let strict = VerifyOptions { allow_insecure: false, ..insecure() };
    let report = verify(&weak, &strict);
    assert!(
        matches!(status(&report, "releases"), Status::Failed { found, .. } if found.contains("released on `none` evidence")),
        "{report}"
    );
}
