//! Appraisal policy parsing and validation.

use std::time::Duration;

use vouch_attest::policy::{SnpTcb, Technology, parse_duration};
use vouch_attest::{Policy, PolicyError};

const EXAMPLE: &str = include_str!("../testdata/policy/example.toml");

fn invalid(text: &str) -> (String, String) {
    match Policy::from_toml_str(text) {
        Err(PolicyError::Invalid { field, problem }) => (field, problem),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn example_policy_parses() {
    let p = Policy::from_toml_str(EXAMPLE).unwrap();
    assert_eq!(p.accept, [Technology::Tpm, Technology::SevSnp, Technology::Tdx]);
    assert_eq!(p.max_evidence_age, Some(Duration::from_secs(24 * 3600)));
    assert_eq!(p.sev_snp.min_tcb, Some(SnpTcb { bootloader: 3, tee: 0, snp: 8, microcode: 115, fmc: None }));
    assert_eq!(p.sev_snp.measurements.as_ref().map(Vec::len), Some(1));
    assert!(!p.sev_snp.allow_debug);
    assert_eq!(p.tdx.tcb_statuses, ["UpToDate", "SWHardeningNeeded"]);
    assert_eq!(p.tdx.advisories, ["INTEL-SA-00615"]);
    assert!(p.tdx.mrtd.is_some() && p.tdx.rtmr0.is_none());
    assert_eq!(p.sgx.tcb_statuses, ["UpToDate"], "absent section: defaults");
    assert!(p.tpm.is_none(), "no [tpm] section");
    assert!(p.accepts("tdx") && !p.accepts("sgx") && !p.accepts("none"));
}

#[test]
fn load_reads_a_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    assert_eq!(Policy::load(&path).unwrap(), Policy::from_toml_str(EXAMPLE).unwrap());
    let missing = dir.path().join("nope.toml");
    let err = Policy::load(&missing).unwrap_err().to_string();
    assert!(err.contains("nope.toml"), "{err}");
}

#[test]
fn empty_policy_is_the_default() {
    let p = Policy::from_toml_str("").unwrap();
    assert_eq!(p, Policy::default());
    assert_eq!(p.accept, Technology::ALL);
    assert_eq!(p.tdx.tcb_statuses, ["UpToDate"]);
    assert!(!p.sev_snp.allow_debug && !p.tdx.allow_debug && !p.sgx.allow_debug);
    assert_eq!(p.sev_snp.max_vmpl, 0);
}

#[test]
fn validation_errors_name_the_field() {
    assert_eq!(invalid("accept = []").0, "accept");
    let (field, problem) = invalid(r#"accept = ["tpm", "sev"]"#);
    assert_eq!(field, "accept[1]");
    assert!(problem.contains("\"sev\""), "{problem}");
    assert!(invalid(r#"accept = ["none"]"#).1.contains("allow-insecure"));
    assert!(invalid(r#"accept = ["tdx", "tdx"]"#).1.contains("twice"));
    let (field, problem) = invalid("[sev-snp]\nmeasurements = [\"abcd\"]");
    assert_eq!(field, "sev-snp.measurements[0]");
    assert!(problem.contains("96 hex digits") && problem.contains("found 4"), "{problem}");
    assert!(invalid("[sev-snp]\nmeasurements = [\"zz\"]").1.contains("not hex"));
    assert_eq!(invalid("[sev-snp]\nmeasurements = []").0, "sev-snp.measurements");
    assert_eq!(invalid("[sev-snp]\nmax_vmpl = 4").0, "sev-snp.max_vmpl");
    let (field, problem) = invalid("[tdx]\ntcb_statuses = [\"Fine\"]");
    assert_eq!(field, "tdx.tcb_statuses[0]");
    assert!(problem.contains("UpToDate"), "{problem}");
    assert_eq!(invalid("[sgx]\nmrsigner = [\"00\"]").0, "sgx.mrsigner[0]");
    assert_eq!(invalid(&format!("[tdx]\nrtmr2 = [\"{}\"]", "0".repeat(64))).0, "tdx.rtmr2[0]");
    assert_eq!(invalid("max_evidence_age = \"10 parsecs\"").0, "max_evidence_age");
}

#[test]
fn unknown_keys_and_wrong_types_are_toml_errors() {
    for text in [
        "colour = 1",
        "[sev-snp]\nallow_debugging = true",
        "[tdx]\nallow_debug = \"no\"",
        "[sev-snp]\nmin_tcb = { boot = 1 }",
    ] {
        match Policy::from_toml_str(text) {
            Err(PolicyError::Toml(msg)) => assert!(!msg.is_empty()),
            other => panic!("{text:?}: expected a TOML error, got {other:?}"),
        }
    }
    match Policy::from_toml_str("colour = 1") {
        Err(e) => assert!(e.to_string().contains("colour"), "{e}"),
        Ok(_) => unreachable!(),
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
    assert_eq!(parse_duration("3600s"), Ok(Duration::from_secs(3_600)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
    assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    for bad in ["", "24", "h", "5w", "1.5h", "99999999999999999999s", "18446744073709551615d"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}
