//! `vouch attest`: offline verification of the committed real evidence samples
//! (`crates/vouch-attest/testdata`, pinned verification times from its README), tampered and
//! garbage input, `--tee none`, the build without TPM support, the evidence fuzz bodies over the
//! samples, and (feature `tpm`, real swtpm) the whole enrolment flow through the CLI.
//!
//! About `--report-data`: none of the vendor samples was made for a Vouch key. The tests pass the
//! first 32 bytes of each sample's own report data (read from the report/quote bytes) and expect
//! every claim to pass or be skipped except, for SEV-SNP and TDX, `*-report-data`, which fails
//! naming their non-zero bytes 32..64 (the SGX sample's bytes 32..64 happen to be zero, so with
//! a policy accepting its TCB status and advisories it verifies completely).

use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Vouch, one_line_error, random_bytes, repo_root};

#[path = "../../../../fuzz/attest/body.rs"]
mod fuzz_body;

/// A kernel-like fake configfs-tsm entry, as vouch-attest's own tests use it.
#[path = "../../../vouch-attest/tests/tsm_support/mod.rs"]
mod tsm_support;

/// A real swtpm per test, as vouch-attest's own tests start it.
#[cfg(feature = "tpm")]
#[path = "../../../vouch-attest/tests/tpm_support/mod.rs"]
mod tpm_support;

/// SEV-SNP sample: inside the Milan VCEK's validity.
const SNP_AT: &str = "1704067200";
/// TDX and SGX samples: inside every collateral window.
const DCAP_AT: &str = "1751328000";
/// The TPM vector: inside its certificates' validity.
const TPM_AT: &str = "1900000000";

fn testdata(rel: &str) -> String {
    repo_root().join("crates/vouch-attest/testdata").join(rel).to_str().unwrap().to_owned()
}

/// Run `args`, return (exit code, stdout, stderr).
fn run(v: &Vouch, args: &[&str]) -> (i32, String, String) {
    let out = v.run(args);
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `attest verify … --json`: (exit code, parsed JSON).
fn verify_json(v: &Vouch, args: &[&str]) -> (i32, Value) {
    let mut a = vec!["attest", "verify"];
    a.extend_from_slice(args);
    a.push("--json");
    let (code, stdout, stderr) = run(v, &a);
    assert!(!stderr.contains("panicked"), "vouch {a:?} panicked: {stderr}");
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{a:?}: {e}: {stdout} / {stderr}"));
    (code, json)
}

fn status_of<'a>(json: &'a Value, claim: &str) -> &'a Value {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["claim"] == claim)
        .unwrap_or_else(|| panic!("no claim {claim} in {json:#}"))
}

/// Every claim passed or skipped except exactly `failing`, whose `found` contains `needle`.
#[track_caller]
fn only_failure(json: &Value, failing: &str, needle: &str) {
    assert_eq!(json["verified"], false, "{json:#}");
    for c in json["checks"].as_array().unwrap() {
        if c["claim"] == failing {
            assert_eq!(c["status"], "failed", "{json:#}");
            assert!(c["found"].as_str().unwrap().contains(needle), "{failing}: {c:#}");
        } else {
            assert_ne!(c["status"], "failed", "{} failed: {json:#}", c["claim"]);
        }
    }
}

fn snp_report_data_head() -> String {
    let report = std::fs::read(testdata("snp/milan-report.bin")).unwrap();
    hex::encode(&report[0x50..0x70])
}

/// Report data of a TDX v4 quote: the last 64 bytes of the 584-byte TD report after the header.
fn tdx_report_data_head() -> String {
    let quote = std::fs::read(testdata("tdx/quote.bin")).unwrap();
    hex::encode(&quote[48 + 520..48 + 552])
}

/// Report data of an SGX v3 quote: bytes 320..384 of the 384-byte enclave report after the header.
fn sgx_report_data_head() -> String {
    let quote = std::fs::read(testdata("sgx/quote.bin")).unwrap();
    hex::encode(&quote[48 + 320..48 + 352])
}

#[test]
fn snp_sample_passes_every_claim_but_report_data() {
    let v = Vouch::new();
    let (report, vcek) = (testdata("snp/milan-report.bin"), testdata("snp/milan-vcek.der"));
    let rd = snp_report_data_head();
    let args = ["--format", "snp-report", "--vcek", &vcek, "--at", SNP_AT, "--report-data", &rd];
    let (code, json) = verify_json(&v, &[&[report.as_str()][..], &args].concat());
    assert_eq!(code, 1);
    only_failure(&json, "snp-report-data", "not made for a Vouch binding");
    for claim in ["snp-cert-chain", "snp-cert-validity", "snp-report-signature", "snp-chip-id", "snp-vcek-tcb"] {
        assert_eq!(status_of(&json, claim)["status"], "passed", "{claim}");
    }
    assert_eq!(json["technology"], "sev-snp");
    assert_eq!(json["report_data"], rd);

    // Human output: --explain prints one line per claim, without it only the failures.
    let mut a = vec!["attest", "verify", &report];
    a.extend_from_slice(&args);
    let (code, stdout, stderr) = run(&v, &[&a[..], &["--explain"]].concat());
    assert_eq!(code, 1);
    assert!(stdout.contains("PASS snp-report-signature: "), "{stdout}");
    assert!(stdout.contains("SKIP snp-measurement: "), "{stdout}");
    assert!(stdout.contains("FAIL snp-report-data: expected "), "{stdout}");
    assert!(stdout.lines().last().unwrap().starts_with("NOT VERIFIED"), "{stdout}");
    assert!(one_line_error(&stderr).contains("snp-report-data"), "{stderr}");
    let (_, stdout, _) = run(&v, &a);
    assert_eq!(stdout.lines().count(), 2, "only the failure and the verdict: {stdout}");

    // A PEM VCEK works as well as DER.
    let der = std::fs::read(&vcek).unwrap();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
    );
    let pem_path = v.write("vcek.pem", pem.as_bytes());
    let (_, json) = verify_json(
        &v,
        &[
            &report,
            "--format",
            "snp-report",
            "--vcek",
            pem_path.to_str().unwrap(),
            "--at",
            SNP_AT,
            "--report-data",
            &rd,
        ],
    );
    only_failure(&json, "snp-report-data", "not made for a Vouch binding");
}

#[test]
fn missing_report_data_fails_the_binding_claim_and_says_why() {
    let v = Vouch::new();
    let (report, vcek) = (testdata("snp/milan-report.bin"), testdata("snp/milan-vcek.der"));
    let (code, json) = verify_json(&v, &[&report, "--format", "snp-report", "--vcek", &vcek, "--at", SNP_AT]);
    assert_eq!(code, 1);
    only_failure(&json, "snp-report-data", "--report-data was not given");
    assert_eq!(json["report_data"], Value::Null);
    // A wrong binding fails with expected and found.
    let (code, json) = verify_json(
        &v,
        &[&report, "--format", "snp-report", "--vcek", &vcek, "--at", SNP_AT, "--report-data", &"00".repeat(32)],
    );
    assert_eq!(code, 1);
    only_failure(&json, "snp-report-data", &snp_report_data_head());
}

#[test]
fn tdx_and_sgx_samples_with_collateral() {
    let v = Vouch::new();
    let (quote, coll) = (testdata("tdx/quote.bin"), testdata("tdx/collateral.json"));
    let rd = tdx_report_data_head();
    let (code, json) = verify_json(
        &v,
        &[&quote, "--format", "tdx-quote", "--collateral", &coll, "--at", DCAP_AT, "--report-data", &rd],
    );
    assert_eq!(code, 1);
    only_failure(&json, "tdx-report-data", "not made for a Vouch binding");
    for claim in ["tdx-collateral", "tdx-quote-signature", "tdx-tcb-level", "tdx-tcb-status", "tdx-debug"] {
        assert_eq!(status_of(&json, claim)["status"], "passed", "{claim}: {json:#}");
    }

    // The SGX sample's platform needs configuration and has two advisories: a policy accepts them.
    let policy = v.write(
        "sgx.toml",
        b"[sgx]\ntcb_statuses = [\"ConfigurationAndSWHardeningNeeded\"]\nadvisories = [\"INTEL-SA-00289\", \"INTEL-SA-00615\"]\n",
    );
    let (quote, coll) = (testdata("sgx/quote.bin"), testdata("sgx/collateral.json"));
    let rd = sgx_report_data_head();
    let base = [quote.as_str(), "--format", "sgx-quote", "--collateral", &coll, "--at", DCAP_AT, "--report-data", &rd];
    // Its report data happens to have the Vouch layout (bytes 32..64 zero): every claim holds.
    let (code, json) = verify_json(&v, &[&base[..], &["--policy", policy.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["verified"], true);
    assert_eq!(status_of(&json, "sgx-report-data")["status"], "passed");
    // The default policy names the TCB status it wanted and found.
    let (_, json) = verify_json(&v, &base);
    let c = status_of(&json, "sgx-tcb-status");
    assert_eq!(c["status"], "failed");
    assert!(c["found"].as_str().unwrap().contains("ConfigurationAndSWHardeningNeeded"), "{c}");

    // After the collateral expired: the collateral claim fails.
    let (code, json) = verify_json(&v, &[&quote, "--format", "sgx-quote", "--collateral", &coll, "--at", "1754006400"]);
    assert_eq!(code, 1);
    assert_eq!(status_of(&json, "sgx-collateral")["status"], "failed", "{json:#}");
}

/// A policy's `max_evidence_age` cannot be applied to raw evidence (no wall-clock production
/// time in a report or quote): `attest verify` records `evidence-age` as skipped with the
/// reason, and prints it even without `--explain`, rather than verifying as if it had checked.
#[test]
fn attest_verify_says_it_did_not_apply_the_evidence_age() {
    let v = Vouch::new();
    let policy = v.write(
        "aged.toml",
        b"max_evidence_age = \"1h\"\n[sgx]\ntcb_statuses = [\"ConfigurationAndSWHardeningNeeded\"]\n\
          advisories = [\"INTEL-SA-00289\", \"INTEL-SA-00615\"]\n",
    );
    let (quote, coll) = (testdata("sgx/quote.bin"), testdata("sgx/collateral.json"));
    let rd = sgx_report_data_head();
    let policy = policy.to_str().unwrap();
    let base = [quote.as_str(), "--format", "sgx-quote", "--collateral", &coll, "--at", DCAP_AT, "--report-data", &rd];
    let (code, json) = verify_json(&v, &[&base[..], &["--policy", policy]].concat());
    assert_eq!(code, 0, "{json:#}");
    let age = status_of(&json, "evidence-age");
    assert_eq!(age["status"], "skipped", "{json:#}");
    let reason = age["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("not applied: the policy's max_evidence_age (3600 s)") && reason.contains("sgx"),
        "{reason}"
    );
    let (code, stdout, _) = run(&v, &[&["attest", "verify"][..], &base, &["--policy", policy]].concat());
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("SKIP evidence-age: not applied"), "{stdout}");
    // Without the setting there is nothing to say.
    let (_, json) = verify_json(&v, &base);
    assert!(!json["checks"].as_array().unwrap().iter().any(|c| c["claim"] == "evidence-age"), "{json:#}");
}

/// Given their whole 64-byte report data (read from the sample bytes), the real SEV-SNP and TDX
/// samples, made by other tools with arbitrary report data, verify completely at their pinned
/// times; one flipped bit of that value fails the report-data claim naming both values.
#[test]
fn whole_report_data_verifies_the_snp_and_tdx_samples() {
    let v = Vouch::new();
    let report = std::fs::read(testdata("snp/milan-report.bin")).unwrap();
    let quote = std::fs::read(testdata("tdx/quote.bin")).unwrap();
    let (snp, vcek) = (testdata("snp/milan-report.bin"), testdata("snp/milan-vcek.der"));
    let (tdx, coll) = (testdata("tdx/quote.bin"), testdata("tdx/collateral.json"));
    let cases: [(&[u8], [&str; 5]); 2] = [
        (&report[0x50..0x90], [snp.as_str(), "snp-report", "--vcek", vcek.as_str(), SNP_AT]),
        (&quote[48 + 520..48 + 584], [tdx.as_str(), "tdx-quote", "--collateral", coll.as_str(), DCAP_AT]),
    ];
    for (data, [file, format, opt, val, at]) in cases {
        let rd = hex::encode(data);
        let base = [file, "--format", format, opt, val, "--at", at, "--report-data"];
        let (code, json) = verify_json(&v, &[&base[..], &[rd.as_str()]].concat());
        assert_eq!(code, 0, "{json:#}");
        assert_eq!(json["report_data"], rd);
        let claim = format!("{}-report-data", json["technology"].as_str().unwrap().trim_start_matches("sev-"));
        assert_eq!(status_of(&json, &claim)["status"], "passed", "{json:#}");
        let mut wrong = data.to_vec();
        wrong[63] ^= 1;
        let (code, json) = verify_json(&v, &[&base[..], &[hex::encode(&wrong).as_str()]].concat());
        assert_eq!(code, 1);
        only_failure(&json, &claim, &rd);
    }
}

/// The committed TPM vector's policy (`testdata/tpm/policy.toml` holds the `[tpm]` section's
/// contents) as a policy file: the enrolment key and every quoted PCR value.
fn tpm_policy(v: &Vouch) -> String {
    let section = std::fs::read_to_string(testdata("tpm/policy.toml")).unwrap();
    let text = format!("[tpm]\n{}", section.replace("[pcrs]", "[tpm.pcrs]"));
    v.write("tpm-policy.toml", text.as_bytes()).to_str().unwrap().to_owned()
}

#[test]
fn committed_tpm_vector_verifies() {
    let v = Vouch::new();
    let binding = hex::encode(Sha256::digest(b"nonce-1"));
    let (ev, root, policy) = (testdata("tpm/evidence.cbor"), testdata("tpm/ek-root.der"), tpm_policy(&v));
    for format in ["tpm-quote", "vouch"] {
        let args =
            ["attest", "verify", &ev, "--format", format, "--trust-root", &root, "--policy", &policy, "--at", TPM_AT];
        let out = v.ok(&[&args[..], &["--report-data", &binding, "--explain"]].concat());
        assert!(out.contains("PASS tpm-qualifying-data: "), "{out}");
        assert!(out.contains("PASS tpm-ak-binding: "), "{out}");
        assert!(out.lines().last().unwrap().starts_with("verified: tpm evidence"), "{out}");
        // Another binding: the qualifying data claim fails with both values.
        let (code, stdout, _) = run(&v, &[&args[..], &["--report-data", &"11".repeat(32)]].concat());
        assert_eq!(code, 1);
        assert!(stdout.contains("FAIL tpm-qualifying-data: expected 1111"), "{stdout}");
        assert!(stdout.contains(&binding), "{stdout}");
    }
    // Without the EK root the chain claim fails.
    let (code, json) = verify_json(
        &v,
        &[&ev, "--format", "tpm-quote", "--policy", &policy, "--at", TPM_AT, "--report-data", &binding],
    );
    assert_eq!(code, 1);
    assert_eq!(status_of(&json, "tpm-ek-chain")["status"], "failed");
}

#[test]
fn a_flipped_byte_fails_the_claim_it_breaks() {
    let v = Vouch::new();
    // SNP: a byte of the measurement: the signature no longer verifies, the contents are skipped.
    let mut report = std::fs::read(testdata("snp/milan-report.bin")).unwrap();
    report[0x90] ^= 1;
    let bad = v.write("report.bin", &report);
    let vcek = testdata("snp/milan-vcek.der");
    let args = ["attest", "verify", bad.to_str().unwrap(), "--format", "snp-report", "--vcek", &vcek, "--at", SNP_AT];
    let (code, stdout, stderr) = run(&v, &[&args[..], &["--report-data", &snp_report_data_head()]].concat());
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.contains("FAIL snp-report-signature: "), "{stdout}");
    assert!(one_line_error(&stderr).contains("snp-report-signature"), "{stderr}");

    // TDX: a byte of the TD report (inside the signed body).
    let mut quote = std::fs::read(testdata("tdx/quote.bin")).unwrap();
    quote[48 + 200] ^= 1;
    let bad = v.write("quote.bin", &quote);
    let coll = testdata("tdx/collateral.json");
    let (code, json) =
        verify_json(&v, &[bad.to_str().unwrap(), "--format", "tdx-quote", "--collateral", &coll, "--at", DCAP_AT]);
    assert_eq!(code, 1);
    assert_eq!(status_of(&json, "tdx-quote-signature")["status"], "failed", "{json:#}");

    // TPM: a byte of the quote.
    let ev = std::fs::read(testdata("tpm/evidence.cbor")).unwrap();
    let mut tpm_ev: vouch_attest::tpm::TpmEvidence = vouch_attest::tpm::TpmEvidence::from_bytes(&ev).unwrap();
    let last = tpm_ev.quote.len() - 1;
    tpm_ev.quote[last] ^= 1;
    let bad = v.write("ev.cbor", &tpm_ev.to_bytes());
    let (code, json) = verify_json(
        &v,
        &[
            bad.to_str().unwrap(),
            "--format",
            "tpm-quote",
            "--trust-root",
            &testdata("tpm/ek-root.der"),
            "--policy",
            &tpm_policy(&v),
            "--at",
            TPM_AT,
            "--report-data",
            &hex::encode(Sha256::digest(b"nonce-1")),
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(status_of(&json, "tpm-quote-signature")["status"], "failed", "{json:#}");
}

#[test]
fn garbage_never_panics_and_says_what_is_wrong() {
    let v = Vouch::new();
    let vcek = testdata("snp/milan-vcek.der");
    let coll = testdata("tdx/collateral.json");
    for (i, len) in [0usize, 1, 100, 1184, 5000].into_iter().enumerate() {
        let garbage = v.write(&format!("garbage{i}"), &random_bytes(900 + i as u64, len));
        for format in ["snp-report", "tdx-quote", "sgx-quote", "tpm-quote", "vouch"] {
            let args = ["attest", "verify", garbage.to_str().unwrap(), "--format", format, "--vcek", &vcek];
            let (code, stdout, stderr) = run(&v, &[&args[..], &["--collateral", &coll]].concat());
            assert!(code == 1 || code == 2, "{format} len {len}: exit {code}");
            assert!(!stderr.contains("panicked"), "{format} len {len}: {stderr}");
            let line = one_line_error(&stderr);
            if code == 1 {
                assert!(stdout.contains("-decode: expected"), "{format} len {len}: {stdout}");
            } else {
                assert!(line.contains("Vouch evidence body") || line.contains("nothing to verify"), "{line}");
            }
        }
    }
    // Usage errors: exit 2, one line naming the problem.
    let report = testdata("snp/milan-report.bin");
    assert!(v.err(&["attest", "verify", &report, "--format", "snp-report"]).contains("needs --vcek"));
    assert!(v.err(&["attest", "verify", &report, "--format", "tdx-quote"]).contains("needs --collateral"));
    assert!(v.err(&["attest", "verify", "missing.bin", "--format", "tpm-quote"]).contains("missing.bin"));
    let e = v.err(&["attest", "verify", &report, "--format", "snp-report", "--vcek", &report]);
    assert!(e.contains("--vcek"), "{e}");
    let e = v.err(&["attest", "verify", &report, "--format", "tpm-quote", "--report-data", "abcd"]);
    assert!(e.contains("--report-data") && e.contains("2 bytes"), "{e}");
    let e = v.err(&["attest", "verify", &report, "--format", "tpm-quote", "--report-data", &"ab".repeat(64)]);
    // 64 bytes are the whole SNP/TDX/SGX report data; a TPM binds only the 32-byte binding.
    assert!(e.contains("TPM qualifying data is the 32-byte binding"), "{e}");
    let bad_policy = v.write("p.toml", b"accept = []\n");
    let e = v.err(&["attest", "verify", &report, "--format", "tpm-quote", "--policy", bad_policy.to_str().unwrap()]);
    assert!(e.contains("accept"), "{e}");
    let not_json = v.write("c.json", b"{not json");
    let e = v.err(&["attest", "verify", &report, "--format", "tdx-quote", "--collateral", not_json.to_str().unwrap()]);
    assert!(e.contains("not JSON"), "{e}");
    assert!(v.err(&["attest", "verify", &report, "--format", "pdf"]).contains("pdf"));
}

#[test]
fn tee_none_prints_the_binding_of_the_node_key() {
    let v = Vouch::new();
    let out: Value = serde_json::from_str(&v.ok(&["attest", "--tee", "none", "--json", "--nonce", "00ff"])).unwrap();
    assert_eq!(out["technology"], "none");
    assert_eq!(out["nonce"], "00ff");
    assert_eq!(out["evidence"], "");
    assert_eq!(out["evidence_bytes"], 0);
    let id: Value = serde_json::from_str(&v.ok(&["id", "--json"])).unwrap();
    let key_hex = out["node_key"].as_str().unwrap();
    assert!(id.to_string().contains(key_hex), "node_key {key_hex} is the node's identity {id}");
    let mut h = Sha256::new();
    h.update(b"vouch-report-data-v1\0");
    h.update(hex::decode(key_hex).unwrap());
    h.update([0x00, 0xff]);
    assert_eq!(out["binding"], hex::encode(h.finalize()));
    // A random 16-byte nonce when none is given; the default technology is none.
    let out: Value = serde_json::from_str(&v.ok(&["attest", "--json"])).unwrap();
    assert_eq!(out["nonce"].as_str().unwrap().len(), 32);
    assert_eq!(out["technology"], "none");
    let text = v.ok(&["attest"]);
    assert!(text.contains("technology  none") && text.contains("binding     "), "{text}");
    // An empty body has nothing to verify.
    v.ok(&["attest", "-o", "none.bin"]);
    assert!(v.err(&["attest", "verify", "none.bin", "--format", "vouch"]).contains("nothing to verify"));
    assert!(v.err(&["attest", "--nonce", "xyz"]).contains("--nonce"));
}

#[test]
fn tee_sev_snp_without_configfs_is_a_clear_error() {
    let v = Vouch::new();
    let e = v.err(&["attest", "--tee", "sev-snp", "--tsm-root", "no-such-dir"]);
    assert!(e.contains("configfs-tsm not available"), "{e}");
}

/// `vouch attest --tee sev-snp --tsm-root ENTRY --json` end to end against a kernel-like fake
/// configfs-tsm entry (`tsm_support`: writes to `inblob` bump `generation`, `outblob` replays the
/// real Milan report with the written report data, `auxblob` carries its VCEK, ASK and ARK). The
/// printed evidence binds the node key and nonce; verified, AMD's chain and this chip's VCEK
/// pass but the signature fails, since the firmware never signed that report data. The raw
/// report it printed, with the sample's own report data put back, is the real sample and
/// verifies completely at its pinned time with the VCEK the entry supplied.
#[test]
fn tee_sev_snp_through_a_kernel_like_configfs_entry() {
    use vouch_attest::evidence::SnpEvidence;
    let v = Vouch::new();
    let tmp = tempfile::tempdir().unwrap();
    let fake = tsm_support::FakeEntry::sev_snp(&tmp.path().join("entry"), vec![]);
    let entry = fake.dir().to_str().unwrap().to_owned();
    let out =
        v.ok(&["attest", "--tee", "sev-snp", "--tsm-root", &entry, "--nonce", "c0ffee", "--json", "-o", "ev.bin"]);
    assert_eq!(fake.finish(), ["write inblob", "read generation", "read outblob", "read auxblob", "read generation"]);
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["technology"], "sev-snp");
    assert_eq!(out["nonce"], "c0ffee");
    let node_key = hex::decode(out["node_key"].as_str().unwrap()).unwrap();
    let binding = vouch_receipt::report_data(&node_key.try_into().unwrap(), &[0xc0, 0xff, 0xee]);
    assert_eq!(out["binding"], hex::encode(binding));
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.decode(out["evidence"].as_str().unwrap()).unwrap();
    assert_eq!(body, std::fs::read(v.work().join("ev.bin")).unwrap());
    let ev = SnpEvidence::from_cbor(&body).unwrap();
    assert_eq!(&ev.report[0x50..0x70], &binding);
    assert_eq!(ev.vcek, tsm_support::VCEK);

    // The evidence body as printed: every claim but the signature.
    let (code, json) =
        verify_json(&v, &["ev.bin", "--format", "vouch", "--at", SNP_AT, "--report-data", &hex::encode(binding)]);
    assert_eq!(code, 1, "{json:#}");
    for claim in ["snp-cert-chain", "snp-cert-validity", "snp-chip-id"] {
        assert_eq!(status_of(&json, claim)["status"], "passed", "{claim}: {json:#}");
    }
    only_failure(&json, "snp-report-signature", "");

    // Its raw report with the sample's report data back is the sample, and verifies.
    let mut report = ev.report.clone();
    let sample = std::fs::read(testdata("snp/milan-report.bin")).unwrap();
    report[0x50..0x90].copy_from_slice(&sample[0x50..0x90]);
    assert_eq!(report, sample);
    std::fs::write(v.work().join("report.bin"), &report).unwrap();
    std::fs::write(v.work().join("vcek.der"), &ev.vcek).unwrap();
    let rd = hex::encode(&sample[0x50..0x90]);
    let args = ["report.bin", "--format", "snp-report", "--vcek", "vcek.der", "--at", SNP_AT, "--report-data", &rd];
    let (code, json) = verify_json(&v, &args);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(status_of(&json, "snp-report-signature")["status"], "passed");
}

/// `vouch attest` and `vouch run` read `tee` and `tsm_root` from config.json when no flag is
/// given; a flag wins; a value that names no TEE is an error naming config.json.
#[test]
fn tee_and_tsm_root_come_from_config_unless_flagged() {
    let v = Vouch::new();
    v.ok(&["config", "tee", "sev-snp"]);
    v.ok(&["config", "tsm_root", "no-such-tsm-dir"]);
    let e = v.err(&["attest"]);
    assert!(e.contains("configfs-tsm not available") && e.contains("no-such-tsm-dir"), "{e}");
    let e = v.err(&["attest", "--tsm-root", "flagged-tsm-dir"]);
    assert!(e.contains("flagged-tsm-dir") && !e.contains("no-such-tsm-dir"), "the flag wins: {e}");
    let out: Value = serde_json::from_str(&v.ok(&["attest", "--tee", "none", "--json"])).unwrap();
    assert_eq!(out["technology"], "none");

    v.ok(&["config", "tee", "bogus"]);
    let config = v.home().join("config.json");
    let want = format!("tee \"bogus\" in {}: expected none, tpm, sev-snp or tdx", config.display());
    let e = v.err(&["attest"]);
    assert!(e.contains(&want), "{e}");
    let guest = repo_root().join("guests/wasm/echo_args.wasm");
    let e = v.err(&["run", guest.to_str().unwrap(), "--arg", "x"]);
    assert!(e.contains(&want), "{e}");
    v.ok(&["run", guest.to_str().unwrap(), "--arg", "x", "--tee", "none"]);
    v.ok(&["config", "tee", "3"]);
    assert!(v.err(&["attest"]).contains("tee in"), "a non-string value is named");
}

#[cfg(not(feature = "tpm"))]
#[test]
fn tee_tpm_without_the_feature_says_how_to_get_it() {
    let v = Vouch::new();
    for args in [
        &["attest", "--tee", "tpm"][..],
        &["attest", "enroll", "request", "-o", "req.cbor"],
        &["attest", "enroll", "install", "x.cbor"],
    ] {
        let e = v.err(args);
        assert!(e.contains("built without TPM support") && e.contains("--features tpm"), "{args:?}: {e}");
    }
}

/// The fuzz targets' bodies over the real samples, their truncations and byte flips.
#[test]
fn evidence_fuzz_bodies_over_the_samples() {
    let read = |p: &str| std::fs::read(testdata(p)).unwrap();
    let vcek = read("snp/milan-vcek.der");
    let seeds: [(&str, Vec<u8>); 4] = [
        ("snp", read("snp/milan-report.bin")),
        ("dcap", read("tdx/quote.bin")),
        ("dcap", read("sgx/quote.bin")),
        ("tpm", read("tpm/evidence.cbor")),
    ];
    for (target, seed) in &seeds {
        let mut inputs = vec![seed.clone(), Vec::new()];
        for cut in [1, 6, 48, 100, seed.len() / 2, seed.len().saturating_sub(1)] {
            inputs.push(seed[..cut.min(seed.len())].to_vec());
        }
        for i in (0..seed.len()).step_by((seed.len() / 24).max(1)) {
            let mut flipped = seed.clone();
            flipped[i] ^= 0x80;
            inputs.push(flipped);
        }
        for input in &inputs {
            match *target {
                "snp" => fuzz_body::evidence_snp_with(input, Some(&vcek)),
                "dcap" => fuzz_body::evidence_dcap(input),
                _ => fuzz_body::evidence_tpm(input),
            }
        }
    }
    // The committed fuzz seeds, and random bytes.
    let seed_root = repo_root().join("fuzz/seeds");
    for target in ["evidence_snp", "evidence_dcap", "evidence_tpm"] {
        let dir: PathBuf = seed_root.join(target);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            fuzz_body::evidence_snp(&data);
            fuzz_body::evidence_dcap(&data);
            fuzz_body::evidence_tpm(&data);
        }
    }
    for seed in 0..16 {
        let data = random_bytes(7000 + seed, (seed as usize * 97) % 2000);
        fuzz_body::evidence_snp(&data);
        fuzz_body::evidence_dcap(&data);
        fuzz_body::evidence_tpm(&data);
    }
}

/// The `evidence_tpm_tools` fuzz body over its committed seeds (real swtpm + tpm2-tools output),
/// their truncations and byte flips, and random bytes.
#[test]
fn tpm_tools_fuzz_body_over_its_seeds() {
    let dir = repo_root().join("fuzz/seeds/evidence_tpm_tools");
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let seed = std::fs::read(entry.unwrap().path()).unwrap();
        seeds += 1;
        for cut in 0..seed.len() {
            fuzz_body::evidence_tpm_tools(&seed[..cut]);
        }
        for i in 0..seed.len() {
            let mut flipped = seed.clone();
            flipped[i] ^= 0x41;
            fuzz_body::evidence_tpm_tools(&flipped);
        }
    }
    assert!(seeds >= 2, "seeds in {}", dir.display());
    for seed in 0..16 {
        fuzz_body::evidence_tpm_tools(&random_bytes(9100 + seed, (seed as usize * 131) % 3000));
    }
}

/// The `evidence_snp_certs` fuzz body (configfs-tsm's `auxblob` certificate table) over its
/// committed seed (the Milan VCEK, ASK and ARK in a table), its truncations and byte flips, and
/// random bytes.
#[test]
fn snp_cert_table_fuzz_body_over_its_seeds() {
    let dir = repo_root().join("fuzz/seeds/evidence_snp_certs");
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let seed = std::fs::read(entry.unwrap().path()).unwrap();
        seeds += 1;
        // The seed is a real table: it parses, and the body's invariants run on its certificates.
        let table = vouch_attest::tsm::parse_cert_table(&seed).unwrap();
        assert_eq!(table.vcek, Some(std::fs::read(testdata("snp/milan-vcek.der")).unwrap()));
        fuzz_body::evidence_snp_certs(&seed);
        for cut in 0..seed.len() {
            fuzz_body::evidence_snp_certs(&seed[..cut]);
        }
        for i in (0..seed.len()).step_by(7) {
            let mut flipped = seed.clone();
            flipped[i] ^= 0x41;
            fuzz_body::evidence_snp_certs(&flipped);
        }
    }
    assert!(seeds >= 1, "seeds in {}", dir.display());
    for seed in 0..16 {
        fuzz_body::evidence_snp_certs(&random_bytes(9300 + seed, (seed as usize * 131) % 3000));
    }
}

#[cfg(feature = "tpm")]
mod swtpm {
    use super::*;

    use super::tpm_support::{Swtpm, swtpm_available};

    /// The whole enrolment through the CLI against a real swtpm with its own EK CA, then fresh
    /// TPM evidence for the node key that `attest verify` accepts.
    #[test]
    fn enrolment_flow_then_tpm_evidence_verifies() {
        if !swtpm_available() {
            return;
        }
        let tpm = Swtpm::start();
        let v = Vouch::new();
        let tcti = tpm.tcti();
        let ca = tpm.dir.path().join("ca");
        let root = ca.join("swtpm-localca-rootca-cert.pem");
        let issuer = ca.join("issuercert.pem");
        let (root, issuer) = (root.to_str().unwrap(), issuer.to_str().unwrap());

        // No enrolment yet: the error says how to enrol.
        let e = v.err(&["attest", "--tee", "tpm", "--tcti", &tcti]);
        assert!(e.contains("no TPM enrolment") && e.contains("vouch attest enroll request"), "{e}");

        let authority = v.ok(&["attest", "enroll", "keygen", "-o", "authority.pem"]).trim().to_owned();
        assert_eq!(authority.len(), 64, "{authority}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(v.path("authority.pem")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(v.err(&["attest", "enroll", "keygen", "-o", "authority.pem"]).contains("authority.pem"));

        // Enrolment reads `tcti` from config.json as `vouch attest` does (none of request,
        // activate and install is given --tcti below); a flag wins over it.
        v.ok(&["config", "tcti", &tcti]);
        let (code, stderr) =
            v.fails(&["attest", "enroll", "request", "--tcti", "swtpm:host=127.0.0.1,port=1", "-o", "x.cbor"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("opening the TPM: TCTI \"swtpm:host=127.0.0.1,port=1\""), "the flag wins: {stderr}");
        v.ok(&["attest", "enroll", "request", "--ek-chain", issuer, "-o", "req.cbor"]);
        // The authority refuses an EK certificate that does not chain to its roots.
        let other_root = testdata("tpm/ek-root.der");
        let (code, _, stderr) = run(
            &v,
            &[
                "attest",
                "enroll",
                "challenge",
                "req.cbor",
                "--trust-root",
                &other_root,
                "--key",
                "authority.pem",
                "-o",
                "x",
            ],
        );
        assert_eq!(code, 1, "{stderr}");
        assert!(one_line_error(&stderr).contains("request refused: EK certificate chain"), "{stderr}");

        v.ok(&[
            "attest",
            "enroll",
            "challenge",
            "req.cbor",
            "--trust-root",
            root,
            "--key",
            "authority.pem",
            "-o",
            "chal.cbor",
        ]);
        v.ok(&["attest", "enroll", "activate", "chal.cbor", "-o", "resp.cbor"]);

        // A response whose secret was not released by the TPM, or checked with another key: exit 1.
        let bytes = std::fs::read(v.path("resp.cbor")).unwrap();
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1; // the secret is the last field
        v.write("bad-resp.cbor", &bad);
        let (code, _, stderr) =
            run(&v, &["attest", "enroll", "sign", "bad-resp.cbor", "--key", "authority.pem", "-o", "x"]);
        assert_eq!(code, 1, "{stderr}");
        assert!(one_line_error(&stderr).contains("secret"), "{stderr}");
        v.ok(&["attest", "enroll", "keygen", "-o", "other.pem"]);
        let (code, _, _) = run(&v, &["attest", "enroll", "sign", "resp.cbor", "--key", "other.pem", "-o", "x"]);
        assert_eq!(code, 1);

        let signed =
            v.ok(&["attest", "enroll", "sign", "resp.cbor", "--key", "authority.pem", "-o", "enrollment.cbor"]);
        assert!(signed.contains(&authority), "{signed}");
        v.ok(&["attest", "enroll", "install", "enrollment.cbor"]);
        assert!(v.home().join("tpm-enrollment.cbor").is_file());

        let out = v.ok(&["attest", "--tee", "tpm", "--tcti", &tcti, "--json", "-o", "ev.cbor"]);
        let json: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["technology"], "tpm");
        assert_eq!(json["enrolled_by"], authority.as_str());
        assert!(json["pcrs"]["23"].is_string(), "{json:#}");
        let binding = json["binding"].as_str().unwrap().to_owned();

        let policy = v.write("policy.toml", format!("[tpm]\nenrollment_keys = [\"{authority}\"]\n").as_bytes());
        let policy = policy.to_str().unwrap();
        let verify = ["attest", "verify", "ev.cbor", "--format", "vouch", "--trust-root", root, "--policy", policy];
        let out = v.ok(&[&verify[..], &["--report-data", &binding, "--explain"]].concat());
        assert!(out.contains("PASS tpm-ak-binding: ") && out.contains("PASS tpm-qualifying-data: "), "{out}");
        // Human output: what the quote binds.
        let text = v.ok(&["attest", "--tee", "tpm", "--tcti", &tcti]);
        for needle in ["technology  tpm", "ak name     000b", "ek issuer   ", "pcr 23      "] {
            assert!(text.contains(needle), "{needle:?} in {text}");
        }
        // Without the authority in the policy, the AK binding fails.
        let (code, stdout, _) = run(
            &v,
            &["attest", "verify", "ev.cbor", "--format", "vouch", "--trust-root", root, "--report-data", &binding],
        );
        assert_eq!(code, 1);
        assert!(stdout.contains("FAIL tpm-ak-binding: "), "{stdout}");

        // PCR 23 measures the vouch binary: one extend of SHA-256(binary) since the TPM started.
        let binary = Sha256::digest(std::fs::read(env!("CARGO_BIN_EXE_vouch")).unwrap());
        let pcr23 = hex::encode(Sha256::new().chain_update([0u8; 32]).chain_update(binary).finalize());
        assert_eq!(json["pcrs"]["23"], pcr23.as_str(), "{json:#}");

        job_receipt_with_tpm_evidence_verifies_offline(&v, &tcti, root, &authority, &pcr23);
        sealed_input_released_on_tpm_evidence(&v, &tcti, root, &authority, &pcr23);
        tee_from_config_nonce_freshness_and_refresh(&v, &tcti, root, &authority);
    }

    /// `tee`/`tcti` in config.json select the TPM for `vouch attest` and `vouch run` when no flag
    /// is given, and a flag wins. A verifier's nonce (`vouch run --nonce`) gets fresh TPM
    /// evidence bound to it, which `vouch verify --nonce` accepts for that nonce only. With
    /// `evidence_refresh_secs` = 1, evidence older than that is replaced by a new quote.
    fn tee_from_config_nonce_freshness_and_refresh(v: &Vouch, tcti: &str, root: &str, authority: &str) {
        let unix_now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let json = |args: &[&str]| -> Value { serde_json::from_str(&v.ok(args)).unwrap() };
        v.ok(&["config", "tee", "tpm"]);
        v.ok(&["config", "tcti", tcti]);
        assert_eq!(json(&["attest", "--json"])["technology"], "tpm");
        // Flags win over config.json.
        assert_eq!(json(&["attest", "--tee", "none", "--json"])["technology"], "none");
        // (libtss2 logs its own lines to stderr before vouch's error.)
        let (code, stderr) = v.fails(&["attest", "--tcti", "swtpm:host=127.0.0.1,port=1"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("opening the TPM: TCTI \"swtpm:host=127.0.0.1,port=1\""), "the flag wins: {stderr}");

        // `vouch run` with no --tee/--tcti: TPM evidence, from config.json.
        v.ok(&["config", "evidence_refresh_secs", "1"]);
        let guest = repo_root().join("guests/wasm/echo_args.wasm");
        let guest = guest.to_str().unwrap();
        let run = |args: &[&str]| -> (String, Value) {
            let ran = json(&[&["run", guest, "--json"][..], args].concat());
            let receipt = ran["receipt"].as_str().unwrap().to_owned();
            let shown = json(&["receipt", "show", &receipt, "--json"]);
            (receipt, shown["evidence"].clone())
        };
        let (_, first) = run(&["--arg", "refresh-1"]);
        assert_eq!(first["technology"], "tpm", "{first:#}");
        // Older than evidence_refresh_secs: the next receipt carries a new quote.
        std::thread::sleep(std::time::Duration::from_secs(2));
        let (_, second) = run(&["--arg", "refresh-2"]);
        assert_ne!(second["body"], first["body"], "evidence regenerated after evidence_refresh_secs");
        assert!(second["produced_at"].as_u64() > first["produced_at"].as_u64(), "{first:#} {second:#}");

        // A verifier's nonce: evidence made for it after the question, not the remembered one.
        let nonce = "5eed0f0f1ce0000000000000000000a1";
        let asked = unix_now();
        let (receipt, fresh) = run(&["--arg", "fresh", "--nonce", nonce]);
        assert_eq!(fresh["technology"], "tpm");
        assert_ne!(fresh["body"], second["body"], "fresh evidence for the nonce");
        let produced = fresh["produced_at"].as_u64().unwrap();
        assert!(produced >= asked && produced <= unix_now(), "produced at {produced}, asked at {asked}");
        v.ok(&["receipt", "export", &receipt, "-o", "nonce.car"]);

        let verifier = Vouch::new();
        let policy = verifier.write(
            "policy.toml",
            format!("accept = [\"tpm\"]\nmax_evidence_age = \"1h\"\n[tpm]\nenrollment_keys = [\"{authority}\"]\n")
                .as_bytes(),
        );
        let car = v.path("nonce.car");
        let base = ["verify", car.to_str().unwrap(), "--policy", policy.to_str().unwrap(), "--trust-root", root];
        let out = verifier.ok(&[&base[..], &["--nonce", nonce, "--explain"]].concat());
        for needle in ["pass  tpm-qualifying-data", "pass  evidence-age", "verifier-nonce"] {
            assert!(out.contains(needle), "{needle:?} in {out}");
        }
        // Another verifier's nonce: the receipt does not answer it.
        let other = "5eed0f0f1ce0000000000000000000a2";
        let (code, stdout, stderr) = super::run(&verifier, &[&base[..], &["--nonce", other]].concat());
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(stdout.contains("verifier-nonce") && stdout.contains(&format!("expected nonce {other}")), "{stdout}");
        assert!(one_line_error(&stderr).contains("claim verifier-nonce failed"), "{stderr}");

        v.ok(&["config", "tee", "none"]);
    }

    /// The hospital's broker (a `vouch node` daemon) requires TPM evidence from an enrolled TPM
    /// with the vouch binary measured in PCR 23; the compute node (this swtpm) gets the key with
    /// `--tee tpm`, and is refused without it or when the policy pins another PCR 23.
    fn sealed_input_released_on_tpm_evidence(v: &Vouch, tcti: &str, root: &str, authority: &str, pcr23: &str) {
        let module = repo_root().join("guests/wasm/clinical_summary.wasm");
        let module = module.to_str().unwrap();
        let csv = repo_root().join("examples/clinical/patients.csv");
        let module_cid = v.add_q(&[module]);
        let owner = Vouch::new();
        owner.ok(&["config", "broker_trust_roots", &serde_json::json!([root]).to_string()]);
        let lab = owner.keygen("lab.key");
        let attest = |pcr: &str| {
            format!("accept = [\"tpm\"]\n[tpm]\nenrollment_keys = [\"{authority}\"]\npcrs = {{ \"23\" = \"{pcr}\" }}\n")
        };
        owner.write("attest.toml", attest(pcr23).as_bytes());
        let policy = owner.write(
            "hospital.toml",
            format!(
                "[modules]\nallow = [\"{module_cid}\"]\n[evidence]\nrequire = [\"tpm\"]\nappraisal_file = \"attest.toml\"\n\
                 [results]\nrecipients = [\"{lab}\"]\nmax_output_bytes = 8388608\n"
            )
            .as_bytes(),
        );
        let sealed = owner.ok(&["seal", csv.to_str().unwrap(), "--policy", policy.to_str().unwrap(), "--json"]);
        let sealed = serde_json::from_str::<Value>(&sealed).unwrap()["cid"].as_str().unwrap().to_string();
        owner.ok(&["car", "export", &sealed, "-o", "sealed.car"]);
        v.ok(&["car", "import", owner.path("sealed.car").to_str().unwrap()]);
        let hospital = crate::network::Daemon::start_in(owner, &[]);
        let input = format!("{sealed}:patients.csv");
        let run = |extra: &[&str]| {
            let mut a = vec!["run", module, "--input", &input, "--recipient", &lab, "--max-output", "1MiB"];
            a.extend_from_slice(&["--broker", &hospital.addr]);
            a.extend_from_slice(extra);
            super::run(v, &a)
        };
        let (code, stdout, stderr) = run(&["--tee", "tpm", "--tcti", tcti, "--json"]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(!stderr.contains("NO HARDWARE CLAIM"), "released on TPM evidence, not none: {stderr}");
        let out: Value = serde_json::from_str(&stdout).unwrap();
        let key = hospital.v.path("lab.key");
        v.ok(&["open", out["output"].as_str().unwrap(), "--key", key.to_str().unwrap(), "-o", "tpm-results"]);
        assert!(v.path("tpm-results/summary.csv").is_file());
        let log = hospital.v.ok(&["broker", "log"]);
        assert!(log.contains(" granted ") && log.contains("(tpm)"), "{log}");

        // No TPM evidence: the policy requires it.
        let (code, _, stderr) = run(&["--timeout", "59s"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(one_line_error(&stderr).contains("evidence.require"), "{stderr}");
        // The hospital now pins another binary in PCR 23: this node's evidence fails it.
        hospital.v.write("attest.toml", attest(&"ab".repeat(32)).as_bytes());
        let (code, _, stderr) = run(&["--tee", "tpm", "--tcti", tcti, "--timeout", "58s"]);
        assert_eq!(code, 2, "{stderr}");
        assert!(one_line_error(&stderr).contains("tpm-pcr-values"), "{stderr}");
    }

    /// `vouch run --tee tpm`: the receipt links TPM evidence for the node key; exported, it
    /// verifies in another home with no store, under a policy naming the enrolment authority and
    /// PCR 23, with the EK CA as trust root; each missing trust or wrong reference value fails
    /// the `evidence` claim naming the TPM claim.
    fn job_receipt_with_tpm_evidence_verifies_offline(v: &Vouch, tcti: &str, root: &str, authority: &str, pcr23: &str) {
        let guest = repo_root().join("guests/wasm/echo_args.wasm");
        let out = v.ok(&["run", guest.to_str().unwrap(), "--arg", "hello", "--tee", "tpm", "--tcti", tcti, "--json"]);
        let ran: Value = serde_json::from_str(&out).unwrap();
        let receipt = ran["receipt"].as_str().unwrap().to_owned();
        let shown: Value = serde_json::from_str(&v.ok(&["receipt", "show", &receipt, "--json"])).unwrap();
        assert_eq!(shown["evidence"]["technology"], "tpm", "{shown:#}");
        v.ok(&["receipt", "export", &receipt, "-o", "r.car"]);

        // A second job reuses the evidence (one quote per refresh period), linked by the same CID.
        let out2 = v.ok(&["run", guest.to_str().unwrap(), "--arg", "again", "--tee", "tpm", "--tcti", tcti, "--json"]);
        let receipt2 = serde_json::from_str::<Value>(&out2).unwrap()["receipt"].as_str().unwrap().to_owned();
        let shown2: Value = serde_json::from_str(&v.ok(&["receipt", "show", &receipt2, "--json"])).unwrap();
        assert_eq!(shown2["evidence"]["body"], shown["evidence"]["body"]);

        let verifier = Vouch::new();
        let car = v.path("r.car");
        let car = car.to_str().unwrap();
        let good = verifier.write(
            "policy.toml",
            format!(
                "accept = [\"tpm\"]\n[tpm]\nenrollment_keys = [\"{authority}\"]\npcrs = {{ \"23\" = \"{pcr23}\" }}\n"
            )
            .as_bytes(),
        );
        let good = good.to_str().unwrap();
        let out = verifier.ok(&["verify", car, "--policy", good, "--trust-root", root, "--explain"]);
        assert!(out.contains("pass  evidence: tpm evidence appraised"), "{out}");
        assert!(out.contains("pass  tpm-pcr-values"), "{out}");
        assert!(out.contains(&format!("verified {receipt}")), "{out}");

        let fails = |args: &[&str], claim: &str| {
            let (code, stdout, stderr) = run(&verifier, &[&["verify", car][..], args].concat());
            assert_eq!(code, 1, "{stdout}{stderr}");
            assert!(
                stdout.contains("FAIL  evidence: expected ") && stdout.contains(&format!("FAIL  {claim}: ")),
                "{stdout}"
            );
        };
        // No EK CA given: the EK chain does not verify.
        fails(&["--policy", good], "tpm-ek-chain");
        // The default policy trusts no enrolment authority.
        fails(&["--trust-root", root], "tpm-ak-binding");
        // A policy pinning another binary's PCR 23.
        let other = verifier.write(
            "other.toml",
            format!("[tpm]\nenrollment_keys = [\"{authority}\"]\npcrs = {{ \"23\" = \"{}\" }}\n", "ab".repeat(32))
                .as_bytes(),
        );
        fails(&["--policy", other.to_str().unwrap(), "--trust-root", root], "tpm-pcr-values");
        // Evidence older than the policy allows.
        let aged = verifier.write(
            "aged.toml",
            format!("max_evidence_age = \"1h\"\n[tpm]\nenrollment_keys = [\"{authority}\"]\n").as_bytes(),
        );
        let later =
            (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 7200).to_string();
        fails(&["--policy", aged.to_str().unwrap(), "--trust-root", root, "--at", &later], "evidence-age");

        receipt_tampering_with_tpm_evidence(v, &verifier, good, root);
    }

    /// The exported receipt CAR of a real TPM-attested job, tampered with: a flipped byte in the
    /// evidence block, and receipts re-signed (by another key, or by the node key with another
    /// nonce) whose `report_data` is recomputed so that `evidence-binding` holds. Each is
    /// rejected, naming what broke.
    fn receipt_tampering_with_tpm_evidence(node: &Vouch, verifier: &Vouch, policy: &str, root: &str) {
        use ed25519_dalek::SigningKey;
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        use vouch_dag::car::{CarReader, CarWriter};
        use vouch_receipt::{EvidenceBody, Receipt, report_data};

        let car_bytes = std::fs::read(node.path("r.car")).unwrap();
        let mut reader = CarReader::new(&car_bytes[..]).unwrap();
        let root_cid = reader.roots()[0];
        let mut blocks = Vec::new();
        while let Some(block) = reader.next_block().unwrap() {
            blocks.push(block);
        }
        let receipt = Receipt::decode(&blocks.iter().find(|(c, _)| *c == root_cid).unwrap().1).unwrap();
        let Some(EvidenceBody::Link(evidence_cid)) = receipt.body.evidence.body.clone() else {
            panic!("a node links its TPM evidence by CID: {:?}", receipt.body.evidence)
        };

        // A flipped byte inside the evidence block: the CAR no longer hashes right.
        let (_, sections) = crate::car_sections(&car_bytes);
        let section = sections.iter().find(|s| s.cid == evidence_cid.to_string()).unwrap();
        let mut flipped = car_bytes.clone();
        flipped[(section.data + section.end) / 2] ^= 0x01;
        let path = verifier.write("flipped.car", &flipped);
        let (code, stdout, stderr) =
            run(verifier, &["verify", path.to_str().unwrap(), "--policy", policy, "--trust-root", root]);
        assert_eq!(code, 1, "{stdout}{stderr}");
        let e = one_line_error(&stderr);
        assert!(e.contains(&format!("block {evidence_cid}: its bytes hash to")), "{stderr}");

        // The receipt (root block) replaced by `body` signed with `key`, the evidence unchanged.
        let resigned = |name: &str, body: vouch_receipt::ReceiptBody, key: &SigningKey| -> String {
            let r = Receipt::sign(body, key).unwrap();
            let cid = r.cid();
            let mut w = CarWriter::new(Vec::new(), &[cid]).unwrap();
            w.write(&cid, &r.encode()).unwrap();
            for (c, d) in blocks.iter().filter(|(c, _)| *c != root_cid) {
                w.write(c, d).unwrap();
            }
            verifier.write(name, &w.finish().unwrap()).to_str().unwrap().to_owned()
        };
        let rejected = |car: &str, claim: &str| {
            let (code, stdout, stderr) = run(verifier, &["verify", car, "--policy", policy, "--trust-root", root]);
            assert_eq!(code, 1, "{stdout}{stderr}");
            // The receipt's own claims hold: only the hardware evidence gives the tampering away.
            for holds in ["signature", "evidence-binding"] {
                assert!(!stdout.contains(&format!("FAIL  {holds}: ")), "{holds} should hold: {stdout}");
            }
            assert!(
                stdout.contains(&format!("FAIL  evidence: expected {claim}: "))
                    && stdout.contains(&format!("FAIL  {claim}: ")),
                "{stdout}"
            );
        };

        // Another key claims the TPM evidence: it signs, and its report_data is consistent with
        // its key and the nonce, but the quote's qualifying data binds the node's key.
        let thief = SigningKey::generate(&mut rand::rngs::OsRng);
        let mut body = receipt.body.clone();
        body.node_key = thief.verifying_key().to_bytes();
        body.evidence.report_data = report_data(&body.node_key, &body.evidence.nonce);
        rejected(&resigned("other-key.car", body, &thief), "tpm-qualifying-data");

        // The node's own key with another nonce (e.g. a verifier's challenge answered with old
        // evidence): report_data recomputed, re-signed, and still the quote binds the old nonce.
        let pem = std::fs::read_to_string(node.home().join("identity.pem")).unwrap();
        let node_key = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(node_key.verifying_key().to_bytes(), receipt.body.node_key);
        let mut body = receipt.body.clone();
        body.evidence.nonce.push(0x01);
        body.evidence.report_data = report_data(&body.node_key, &body.evidence.nonce);
        rejected(&resigned("other-nonce.car", body, &node_key), "tpm-qualifying-data");

        // Unchanged, the same re-encoding path verifies: the rejections above are the tampering's.
        let same = resigned("same.car", receipt.body.clone(), &node_key);
        let (code, stdout, stderr) = run(verifier, &["verify", &same, "--policy", policy, "--trust-root", root]);
        assert_eq!(code, 0, "{stdout}{stderr}");
    }

    /// Run a tpm2-tools command line (`tool args…`, split at spaces) in `dir` against `tpm`
    /// (bounded: killed after 60 s), then flush the transient objects and sessions it left (swtpm
    /// has no resource manager).
    fn tpm2(tpm: &Swtpm, dir: &std::path::Path, command: &str) {
        use std::process::{Command, Stdio};
        use std::time::Duration;
        let run = |command: &str| {
            let mut words = command.split_whitespace();
            let tool = words.next().unwrap();
            let mut child = Command::new(tool)
                .args(words)
                .current_dir(dir)
                .env("TPM2TOOLS_TCTI", tpm.tcti())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("running {tool}: {e}"));
            let Some(status) = crate::wait_within(&mut child, Duration::from_secs(60)) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{command} did not finish in 60 s");
            };
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            assert!(status.success(), "{command}: {status}: {stderr}");
        };
        run(command);
        run("tpm2_flushcontext -t");
        run("tpm2_flushcontext -s");
    }

    /// Are tpm2-tools installed? Skips without them, fails under CI=true.
    fn tpm2_tools_available() -> bool {
        let found = ["tpm2_createek", "tpm2_createak", "tpm2_quote", "tpm2_readpublic", "tpm2_flushcontext"]
            .iter()
            .all(|t| std::process::Command::new(t).arg("--version").output().is_ok_and(|o| o.status.success()));
        if !found {
            crate::skip_or_fail("tpm2-tools not found (apt-get install tpm2-tools)");
        }
        found
    }

    /// `vouch` arguments: `words` split at spaces.
    fn args(words: &str) -> Vec<&str> {
        words.split_whitespace().collect()
    }

    /// `vouch attest verify --format tpm-quote` over what real tpm2-tools wrote for a real
    /// swtpm: an ECC and an RSA AK, each in its TPM2B_PUBLIC and PEM forms, signatures in the
    /// tss and plain forms, PCR files in the serialized and values forms; then every tampering
    /// fails the claim it breaks, and malformed companion files are one-line errors.
    #[test]
    fn tpm2_tools_quotes_verify() {
        if !swtpm_available() || !tpm2_tools_available() {
            return;
        }
        let tpm = Swtpm::start();
        let v = Vouch::new();
        let dir = v.work();
        tpm2(&tpm, &dir, "tpm2_createek -c ek.ctx -G rsa -u ek.pub");
        let nonce = "0123456789abcdef00112233";
        for (alg, scheme) in [("ecc", "ecdsa"), ("rsa", "rsassa")] {
            let createak = format!("tpm2_createak -C ek.ctx -c {alg}.ctx -G {alg} -g sha256 -s {scheme}");
            if alg == "ecc" {
                tpm2(&tpm, &dir, &format!("{createak} -u {alg}-ak.pub"));
                tpm2(&tpm, &dir, &format!("tpm2_readpublic -c {alg}.ctx -f pem -o {alg}-ak.pem"));
            } else {
                tpm2(&tpm, &dir, &format!("{createak} -f pem -u {alg}-ak.pem"));
                tpm2(&tpm, &dir, &format!("tpm2_readpublic -c {alg}.ctx -o {alg}-ak.pub"));
            }
            tpm2(
                &tpm,
                &dir,
                &format!(
                    "tpm2_quote -c {alg}.ctx -l sha256:0,1,2,3,16 -q {nonce} -m {alg}.msg -s {alg}.sig -o {alg}.pcrs \
                     -g sha256"
                ),
            );
            let files = [alg, "sig", "pub", "pem", "pcrs"].map(|ext| match ext {
                "pub" | "pem" => format!("{alg}-ak.{ext}"),
                e if e == alg => format!("{alg}.msg"),
                e => format!("{alg}.{e}"),
            });
            check_tools_quote(&v, &files, nonce);

            // The other output forms: a plain signature (DER ECDSA, raw RSA) and bare PCR values.
            tpm2(
                &tpm,
                &dir,
                &format!(
                    "tpm2_quote -c {alg}.ctx -l sha256:0,7,23 -q ab -m {alg}2.msg -s {alg}2.sig -f plain \
                     -o {alg}2.pcrs -F values -g sha256"
                ),
            );
            let second = format!("{alg}2.msg --signature {alg}2.sig --ak {alg}-ak.pub --pcrs {alg}2.pcrs");
            let json = tools_ok(&v, &second, "ab");
            let decode = status_of(&json, "tpm-decode")["detail"].as_str().unwrap().to_owned();
            assert!(decode.contains("plain") && decode.contains("3 PCR values (values)"), "{decode}");
            assert!(status_of(&json, "tpm-pcr-digest")["detail"].as_str().unwrap().contains("[0, 7, 23]"), "{json:#}");

            // The real files, their truncations and byte flips through the fuzz body.
            let read = |n: &str| std::fs::read(v.path(n)).unwrap();
            let real: Vec<Vec<u8>> = files.iter().map(|f| read(f)).collect();
            for i in [0, 1, 2, 4] {
                for cut in (0..real[i].len()).step_by(3) {
                    let mut parts = real.clone();
                    parts[i].truncate(cut);
                    fuzz_body::tpm_tools_files(&parts[0], &parts[1], &parts[2], Some(&parts[4]));
                    fuzz_body::tpm_tools_files(&parts[0], &parts[1], &parts[3], None);
                    parts[i] = real[i].clone();
                    parts[i][cut] ^= 0x10;
                    fuzz_body::tpm_tools_files(&parts[0], &parts[1], &parts[2], Some(&parts[4]));
                }
            }
        }
    }

    /// `attest verify --format tpm-quote ARGS --report-data HEX --json`: (exit code, JSON).
    fn tools_verify(v: &Vouch, rest: &str, report_data: &str) -> (i32, Value) {
        let mut a = args(rest);
        a.extend(["--format", "tpm-quote"]);
        if !report_data.is_empty() {
            a.extend(["--report-data", report_data]);
        }
        verify_json(v, &a)
    }

    /// Exit 0, every claim passed or skipped.
    #[track_caller]
    fn tools_ok(v: &Vouch, rest: &str, report_data: &str) -> Value {
        let (code, json) = tools_verify(v, rest, report_data);
        assert_eq!(code, 0, "{json:#}");
        assert_eq!(json["verified"], true);
        json
    }

    /// Exit 1 with exactly `claim` failed, its `found` containing `needle`.
    #[track_caller]
    fn tools_fails(v: &Vouch, rest: &str, report_data: &str, claim: &str, needle: &str) {
        let (code, json) = tools_verify(v, rest, report_data);
        assert_eq!(code, 1, "{json:#}");
        only_failure(&json, claim, needle);
    }

    /// The claims over one quote's files: `[quote, signature, AK TPM2B_PUBLIC, AK PEM, PCR file]`.
    fn check_tools_quote(v: &Vouch, files: &[String; 5], nonce: &str) {
        let [msg, sig, ak_pub, ak_pem, pcrs] = files;
        let base = format!("{msg} --signature {sig} --ak {ak_pub} --pcrs {pcrs}");
        let json = tools_ok(v, &base, nonce);
        for claim in [
            "technology",
            "tpm-decode",
            "tpm-ak-attributes",
            "tpm-quote-signature",
            "tpm-quote-magic-type",
            "tpm-qualifying-data",
            "tpm-pcr-digest",
        ] {
            assert_eq!(status_of(&json, claim)["status"], "passed", "{claim}: {json:#}");
        }
        // What these files cannot show is skipped, saying the AK is taken on trust.
        for claim in ["tpm-ek-chain", "tpm-ek-validity", "tpm-ak-binding", "tpm-pcr-values"] {
            assert_eq!(status_of(&json, claim)["status"], "skipped", "{claim}: {json:#}");
        }
        let why = status_of(&json, "tpm-ak-binding")["reason"].as_str().unwrap();
        assert!(why.contains("AK name 000b") && why.contains("trusted as given"), "{why}");
        assert_eq!(status_of(&json, "tpm-qualifying-data")["detail"], nonce);
        assert!(status_of(&json, "tpm-pcr-digest")["detail"].as_str().unwrap().contains("[0, 1, 2, 3, 16]"));
        // Human output: the trust assumption first, whatever the verdict.
        let tail = ["--format", "tpm-quote", "--report-data", nonce];
        let out = v.ok(&[&["attest", "verify"][..], &args(&base), &tail].concat());
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("TRUST ASSUMPTION: the AK public key given"), "{out}");
        assert!(lines.last().unwrap().starts_with("verified: tpm evidence, 7 claims passed, 4 skipped"), "{out}");

        // The PEM form of the same AK: no TPM attributes to check, everything else holds.
        let json = tools_ok(v, &format!("{msg} --signature {sig} --ak {ak_pem} --pcrs {pcrs}"), nonce);
        assert_eq!(status_of(&json, "tpm-ak-attributes")["status"], "skipped");
        let why = status_of(&json, "tpm-ak-binding")["reason"].as_str().unwrap();
        assert!(why.contains("AK SHA-256(") && why.contains("trusted as given"), "{why}");

        // Without --pcrs the digest is attested but not what it covers; a policy's reference
        // values then cannot hold. A fresh swtpm's PCRs 0..=16 are zero: the policy pins them.
        let no_pcrs = format!("{msg} --signature {sig} --ak {ak_pub}");
        let json = tools_ok(v, &no_pcrs, nonce);
        let why = status_of(&json, "tpm-pcr-digest")["reason"].as_str().unwrap();
        assert!(why.contains("no PCR values given") && why.contains("sha256:0,1,2,3,16"), "{why}");
        let zero = "00".repeat(32);
        v.write("good.toml", format!("[tpm.pcrs]\n\"0\" = \"{zero}\"\n\"16\" = \"{zero}\"\n").as_bytes());
        v.write("bad.toml", format!("[tpm.pcrs]\n\"16\" = \"{}\"\n", "ab".repeat(32)).as_bytes());
        let json = tools_ok(v, &format!("{base} --policy good.toml"), nonce);
        assert_eq!(status_of(&json, "tpm-pcr-values")["status"], "passed");
        tools_fails(v, &format!("{base} --policy bad.toml"), nonce, "tpm-pcr-values", &format!("PCR 16 = {zero}"));
        tools_fails(v, &format!("{no_pcrs} --policy good.toml"), nonce, "tpm-pcr-values", "no PCR values given");

        // Another nonce, or none.
        tools_fails(v, &base, "0123", "tpm-qualifying-data", nonce);
        tools_fails(v, &base, "", "tpm-qualifying-data", "none given");

        // A flipped byte of the quote (its PCR digest) or of the signature: the signature fails,
        // and what the quote says is not looked at.
        let flipped = |name: &str, at: fn(usize) -> usize| -> String {
            let mut bytes = std::fs::read(v.path(name)).unwrap();
            let i = at(bytes.len());
            bytes[i] ^= 0x01;
            v.write(&format!("flipped-{name}"), &bytes);
            format!("flipped-{name}")
        };
        let bad = format!("{} --signature {sig} --ak {ak_pub} --pcrs {pcrs}", flipped(msg, |n| n - 1));
        tools_fails(v, &bad, nonce, "tpm-quote-signature", "does not verify");
        let (code, stdout, stderr) = run(v, &[&["attest", "verify"][..], &args(&bad), &tail].concat());
        assert_eq!(code, 1);
        assert!(stdout.contains("FAIL tpm-quote-signature: "), "{stdout}");
        assert!(one_line_error(&stderr).contains("tpm-quote-signature failed"), "{stderr}");
        let bad = format!("{msg} --signature {} --ak {ak_pub} --pcrs {pcrs}", flipped(sig, |n| n - 2));
        tools_fails(v, &bad, nonce, "tpm-quote-signature", "");
        // A changed PCR value (the first digest of the serialized file): the digest fails.
        let bad = format!("{msg} --signature {sig} --ak {ak_pub} --pcrs {}", flipped(pcrs, |_| 136 + 4 + 2));
        tools_fails(v, &bad, nonce, "tpm-pcr-digest", "from the carried PCR values");
        // A quote cut short does not decode: exit 1, every later claim skipped.
        v.write("cut.msg", &std::fs::read(v.path(msg)).unwrap()[..40]);
        let (code, json) = tools_verify(v, &format!("cut.msg --signature {sig} --ak {ak_pub}"), nonce);
        assert_eq!(code, 1);
        assert_eq!(status_of(&json, "tpm-decode")["status"], "failed", "{json:#}");
        assert_eq!(status_of(&json, "tpm-quote-signature")["status"], "skipped", "{json:#}");

        // Malformed or missing companion files: exit 2, one line naming the file and the problem.
        let short = |name: &str| {
            let bytes = std::fs::read(v.path(name)).unwrap();
            v.write(&format!("short-{name}"), &bytes[..bytes.len() / 2]);
            format!("short-{name}")
        };
        let err = |rest: String| v.err(&[&["attest", "verify"][..], &args(&rest), &["--format", "tpm-quote"]].concat());
        let e = err(format!("{msg} --signature {} --ak {ak_pub}", short(sig)));
        assert!(e.contains("--signature short-") && e.contains("TPMT_SIGNATURE"), "{e}");
        let e = err(format!("{msg} --signature {sig} --ak {}", short(ak_pub)));
        assert!(e.contains("--ak short-") && e.contains("TPM2B_PUBLIC"), "{e}");
        let e = err(format!("{msg} --signature {sig} --ak {ak_pub} --pcrs {}", short(pcrs)));
        assert!(e.contains("--pcrs short-") && e.contains("not a tpm2-tools PCR file"), "{e}");
        assert!(err(format!("{msg} --ak {ak_pub}")).contains("needs --signature"));
        assert!(err(format!("{msg} --signature {sig}")).contains("needs --ak"));
        let e = err(format!("{msg} --signature {sig} --ak {ak_pub} --report-data zz"));
        assert!(e.contains("--report-data: not hex"), "{e}");
        // The companion options on a file that is not a raw quote.
        let e = err(format!("{sig} --signature {sig} --ak {ak_pub}"));
        assert!(e.contains("--signature goes with --format tpm-quote and a raw TPMS_ATTEST"), "{e}");
    }
}
