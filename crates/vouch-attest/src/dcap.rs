//! Intel TDX and SGX evidence: a DCAP quote and its collateral, verified offline with dcap-qvl at
//! the context's time. Claims are prefixed `tdx-` or `sgx-` (table in `docs/attestation.md`).
//!
//! dcap-qvl runs one pipeline and stops at the first failure; its error is mapped to the stage
//! that failed (`collateral`, `qe-report`, `qe-identity`, `quote-signature`, `tcb-level`,
//! `attributes`), the stages before it are recorded as passed and the ones after as skipped.
//! Debug is checked here (not by dcap-qvl) so that it is a claim of its own and the policy can
//! allow it.

use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::quote::{Quote, Report};
use dcap_qvl::verify::{QuoteVerifier, VerifiedReport};

use crate::evidence::DcapEvidence;
use crate::policy::{SgxPolicy, TdxPolicy};
use crate::{Checks, Context};

/// Which DCAP flavour is appraised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Tdx,
    Sgx,
}

impl Flavour {
    fn prefix(self) -> &'static str {
        match self {
            Flavour::Tdx => "tdx",
            Flavour::Sgx => "sgx",
        }
    }
}

/// dcap-qvl's pipeline stages, in the order it runs them.
const STAGES: [(&str, &str); 6] = [
    ("collateral", "TCB info, QE identity and CRLs signed by Intel and current; PCK chain to the Intel SGX Root CA"),
    ("qe-report", "QE report signed by the PCK key and binding the attestation key"),
    ("qe-identity", "quoting enclave matches Intel's QE identity"),
    ("quote-signature", "quote body signed by the attestation key"),
    ("tcb-level", "platform TCB matches a level of the TCB info (FMSPC, SVNs, TDX module), not revoked"),
    ("attributes", "TD / enclave attributes acceptable (no migration, SEPT_VE_DISABLE, no service TD)"),
];

/// Map a dcap-qvl error (its full `{:#}` chain) to the stage that produced it.
fn stage_of(message: &str) -> &'static str {
    let has = |needles: &[&str]| needles.iter().any(|n| message.contains(n));
    if has(&["Failed to decode quote", "quote version", "QE vendor ID", "Unsupported TEE type", "must have version"]) {
        return "decode";
    }
    if has(&["attestation key type"]) {
        return "decode";
    }
    if has(&["ISV enclave report signature", "signed quote scope"]) {
        return "quote-signature";
    }
    if has(&["Signature is invalid for qe_report", "Failed to decode QE report", "QE report hash", "QE auth data"]) {
        return "qe-report";
    }
    if has(&[
        "Fmspc",
        "FMSPC",
        "non-TDX TCB info",
        "non-SGX TCB info",
        "No matching TCB level",
        "TDX module",
        "tdxModule",
        "Revoked",
        "Unrecognized TCB status",
        "TD10 report",
        "current TDX TCB",
        "tcbDate",
    ]) {
        return "tcb-level";
    }
    if has(&["QE report validation"]) {
        return "qe-identity";
    }
    if has(&[
        "Debug mode",
        "TD profiling",
        "Reserved bits in TD attributes",
        "TD migration",
        "SERVTD_EXT",
        "SEPT_VE_DISABLE",
        "MR service TD",
        "TD attributes",
    ]) {
        return "attributes";
    }
    if has(&["QE Identity", "QeIdentity"]) {
        return "collateral";
    }
    if has(&["QE "]) {
        return "qe-identity";
    }
    "collateral"
}

/// Appraise a TDX or SGX evidence body (a DAG-CBOR [`DcapEvidence`]).
pub fn appraise_tdx(evidence: &[u8], policy: &TdxPolicy, ctx: &Context<'_>, checks: &mut Checks) {
    let refs: [(&str, &Option<Vec<[u8; 48]>>); 5] = [
        ("mrtd", &policy.mrtd),
        ("rtmr0", &policy.rtmr0),
        ("rtmr1", &policy.rtmr1),
        ("rtmr2", &policy.rtmr2),
        ("rtmr3", &policy.rtmr3),
    ];
    let Some(verified) = verify(Flavour::Tdx, evidence, ctx, checks, &claims_tdx()) else { return };
    let common =
        Common { tcb_statuses: &policy.tcb_statuses, advisories: &policy.advisories, allow_debug: policy.allow_debug };
    common_claims(Flavour::Tdx, &verified, &common, ctx, checks);
    let Some(td) = verified.report.as_td10() else {
        for (name, _) in refs {
            checks.fail(&format!("tdx-{name}"), "a TD report", "the quote holds an SGX enclave report");
        }
        return;
    };
    let values = [&td.mr_td, &td.rt_mr0, &td.rt_mr1, &td.rt_mr2, &td.rt_mr3];
    for ((name, list), value) in refs.into_iter().zip(values) {
        reference(checks, &format!("tdx-{name}"), name, list.as_deref(), value);
    }
}

/// Appraise an SGX evidence body (a DAG-CBOR [`DcapEvidence`]).
pub fn appraise_sgx(evidence: &[u8], policy: &SgxPolicy, ctx: &Context<'_>, checks: &mut Checks) {
    let Some(verified) = verify(Flavour::Sgx, evidence, ctx, checks, &claims_sgx()) else { return };
    let common =
        Common { tcb_statuses: &policy.tcb_statuses, advisories: &policy.advisories, allow_debug: policy.allow_debug };
    common_claims(Flavour::Sgx, &verified, &common, ctx, checks);
    let Some(enclave) = verified.report.as_sgx() else {
        checks.fail("sgx-mrenclave", "an SGX enclave report", "the quote holds a TD report");
        checks.fail("sgx-mrsigner", "an SGX enclave report", "the quote holds a TD report");
        return;
    };
    reference(checks, "sgx-mrenclave", "mrenclave", policy.mrenclave.as_deref(), &enclave.mr_enclave);
    reference(checks, "sgx-mrsigner", "mrsigner", policy.mrsigner.as_deref(), &enclave.mr_signer);
}

/// The claims recorded after the dcap-qvl stages, for skipping them.
fn claims_tdx() -> Vec<&'static str> {
    vec![
        "tdx-tcb-status",
        "tdx-advisories",
        "tdx-debug",
        "tdx-report-data",
        "tdx-mrtd",
        "tdx-rtmr0",
        "tdx-rtmr1",
        "tdx-rtmr2",
        "tdx-rtmr3",
    ]
}

fn claims_sgx() -> Vec<&'static str> {
    vec!["sgx-tcb-status", "sgx-advisories", "sgx-debug", "sgx-report-data", "sgx-mrenclave", "sgx-mrsigner"]
}

/// Decode, then run dcap-qvl; records `*-decode` and the stage claims. `None` when the quote is
/// not verified (the later claims are then recorded as skipped).
fn verify(
    flavour: Flavour,
    evidence: &[u8],
    ctx: &Context<'_>,
    checks: &mut Checks,
    later: &[&str],
) -> Option<VerifiedReport> {
    let p = flavour.prefix();
    let skip_all = |checks: &mut Checks, from_stage: usize, reason: &str| {
        for (stage, _) in &STAGES[from_stage..] {
            checks.skip(&format!("{p}-{stage}"), reason);
        }
        for claim in later {
            checks.skip(claim, reason);
        }
    };
    let decoded = decode(flavour, evidence);
    let (ev, collateral) = match decoded {
        Ok((ev, collateral, detail)) => {
            checks.pass(&format!("{p}-decode"), detail);
            (ev, collateral)
        }
        Err((expected, found)) => {
            checks.fail(&format!("{p}-decode"), expected, found);
            skip_all(checks, 0, &format!("{p}-decode failed: nothing to check"));
            return None;
        }
    };
    // Debug is a claim of its own (below), so dcap-qvl is told to let it through.
    let verifier = QuoteVerifier::new_prod().allow_debug(true);
    match verifier.verify(&ev.quote, &collateral, ctx.at) {
        Ok(report) => {
            for (stage, what) in STAGES {
                checks.pass(&format!("{p}-{stage}"), format!("{what} (dcap-qvl, at {})", ctx.at));
            }
            Some(report)
        }
        Err(e) => {
            let message = format!("{e:#}");
            let failed = stage_of(&message);
            if failed == "decode" {
                // Our decode passed but dcap-qvl refused the quote's header.
                checks.fail(&format!("{p}-quote-format"), "a quote dcap-qvl supports", message);
                skip_all(checks, 0, &format!("{p}-quote-format failed"));
                return None;
            }
            let index = STAGES.iter().position(|(s, _)| *s == failed).unwrap_or(0);
            for (stage, what) in &STAGES[..index] {
                checks.pass(&format!("{p}-{stage}"), format!("{what} (dcap-qvl, at {})", ctx.at));
            }
            checks.fail(&format!("{p}-{failed}"), STAGES[index].1, format!("dcap-qvl at {}: {message}", ctx.at));
            skip_all(checks, index + 1, &format!("{p}-{failed} failed: dcap-qvl stops at the first failure"));
            None
        }
    }
}

fn decode(flavour: Flavour, evidence: &[u8]) -> Result<(DcapEvidence, QuoteCollateralV3, String), (String, String)> {
    let ev = DcapEvidence::from_cbor(evidence)
        .map_err(|e| ("a DAG-CBOR map {quote, collateral} with a DCAP quote".to_owned(), e.to_string()))?;
    let collateral: QuoteCollateralV3 = serde_json::from_str(&ev.collateral).map_err(|e| {
        ("collateral: the JSON object of dcap-qvl's QuoteCollateralV3".to_owned(), format!("does not parse: {e}"))
    })?;
    let quote = Quote::parse(&ev.quote)
        .map_err(|e| ("a DCAP quote (SGX v3, TDX v4/v5)".to_owned(), format!("quote does not parse: {e:#}")))?;
    let kind = match &quote.report {
        Report::SgxEnclave(_) => "SGX enclave report",
        Report::TD10(_) => "TD 1.0 report",
        Report::TD15(_) => "TD 1.5 report",
        Report::TD15Ex(_) => "TD 1.5ex report",
    };
    let is_sgx = quote.report.is_sgx();
    match (flavour, is_sgx) {
        (Flavour::Tdx, true) => return Err(("a TDX quote".to_owned(), format!("an SGX quote ({kind})"))),
        (Flavour::Sgx, false) => return Err(("an SGX quote".to_owned(), format!("a TDX quote ({kind})"))),
        _ => {}
    }
    let detail = format!("quote version {}, {kind}, {} bytes", quote.header.version, ev.quote.len());
    Ok((ev, collateral, detail))
}

struct Common<'a> {
    tcb_statuses: &'a [String],
    advisories: &'a [String],
    allow_debug: bool,
}

fn common_claims(
    flavour: Flavour,
    verified: &VerifiedReport,
    policy: &Common<'_>,
    ctx: &Context<'_>,
    checks: &mut Checks,
) {
    let p = flavour.prefix();
    let status = &verified.status;
    checks.record(
        &format!("{p}-tcb-status"),
        if policy.tcb_statuses.iter().any(|s| s == status) {
            Ok(format!(
                "TCB status {status} (platform {}, QE {})",
                verified.platform_status.status, verified.qe_status.status
            ))
        } else {
            Err((format!("TCB status one of [{}]", policy.tcb_statuses.join(", ")), format!("TCB status {status}")))
        },
    );
    let unaccepted: Vec<&String> =
        verified.advisory_ids.iter().filter(|a| !policy.advisories.iter().any(|ok| ok == *a)).collect();
    checks.record(
        &format!("{p}-advisories"),
        if unaccepted.is_empty() {
            if verified.advisory_ids.is_empty() {
                Ok("no security advisories apply".to_owned())
            } else {
                Ok(format!("advisories [{}], all accepted by policy", verified.advisory_ids.join(", ")))
            }
        } else {
            Err((
                format!("only advisories the policy accepts: [{}]", policy.advisories.join(", ")),
                format!(
                    "advisories [{}]; not accepted: [{}]",
                    verified.advisory_ids.join(", "),
                    unaccepted.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ))
        },
    );
    checks.record(&format!("{p}-debug"), debug(&verified.report, policy.allow_debug));
    let data = report_data_of(&verified.report).unwrap_or([0u8; 64]);
    checks.record(&format!("{p}-report-data"), crate::snp::report_data(&data, &ctx.binding));
}

/// The report data of an SGX enclave or TD report.
pub(crate) fn report_data_of(report: &Report) -> Option<[u8; 64]> {
    match report {
        Report::SgxEnclave(r) => Some(r.report_data),
        other => other.as_td10().map(|td| td.report_data),
    }
}

fn debug(report: &Report, allow: bool) -> Result<String, (String, String)> {
    let (set, what, expected) = match report {
        Report::SgxEnclave(r) => {
            let flags = r.attributes[0];
            (flags & 0x02 != 0, format!("enclave attributes.flags {flags:#04x}"), "DEBUG (flags bit 1) clear")
        }
        other => {
            let tud = other.as_td10().map(|td| td.td_attributes[0]).unwrap_or(0);
            (
                tud & 0x71 != 0,
                format!("TD attributes TUD byte {tud:#04x}"),
                "TUD byte DEBUG (bit 0) and profiling bits (4..6) clear",
            )
        }
    };
    match (set, allow) {
        (false, _) => Ok(format!("{what}: {expected}")),
        (true, true) => Ok(format!("{what}: debug set, allowed by policy allow_debug")),
        (true, false) => Err((expected.to_owned(), format!("{what}: debug set (policy allow_debug = false)"))),
    }
}

fn reference<const N: usize>(checks: &mut Checks, claim: &str, name: &str, list: Option<&[[u8; N]]>, value: &[u8; N]) {
    let found = hex::encode(value);
    match list {
        None => checks.skip(claim, format!("policy gives no reference {name}")),
        Some(list) if list.contains(value) => checks.pass(claim, format!("{name} {found} is in the policy's list")),
        Some(list) => {
            let items: Vec<String> = list.iter().map(hex::encode).collect();
            checks.fail(claim, format!("{name} one of [{}]", items.join(", ")), format!("{name} {found}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{debug, stage_of};
    use dcap_qvl::quote::{Quote, Report};

    /// The debug bits are covered by the quote signature, so a debug quote cannot be made from
    /// the samples end to end: the claim is tested on the decoded samples modified in memory.
    #[test]
    fn debug_bits_fail_unless_allowed() {
        let tdx = Quote::parse(include_bytes!("../testdata/tdx/quote.bin")).expect("TDX sample parses").report;
        let sgx = Quote::parse(include_bytes!("../testdata/sgx/quote.bin")).expect("SGX sample parses").report;
        for (mut report, what) in [(tdx, "TD attributes TUD byte"), (sgx, "enclave attributes.flags")] {
            let clean = debug(&report, false).expect("the samples are not debug");
            assert!(clean.starts_with(what), "{clean}");
            match &mut report {
                Report::TD10(td) => td.td_attributes[0] |= 0x01,
                Report::SgxEnclave(e) => e.attributes[0] |= 0x02,
                other => panic!("unexpected sample report {other:?}"),
            }
            let (expected, found) = debug(&report, false).expect_err("debug set must fail");
            assert!(expected.contains("DEBUG"), "{expected}");
            assert!(found.starts_with(what) && found.contains("debug set (policy allow_debug = false)"), "{found}");
            assert!(debug(&report, true).expect("allowed").contains("allowed by policy allow_debug"));
        }
        // TD profiling (TUD bits 4..6) counts as debug too.
        let Report::TD10(mut td) = Quote::parse(include_bytes!("../testdata/tdx/quote.bin")).unwrap().report else {
            panic!("the TDX sample holds a TD 1.0 report")
        };
        td.td_attributes[0] |= 0x10;
        assert!(debug(&Report::TD10(td), false).is_err());
    }

    /// Messages dcap-qvl 0.7.1 produces (from its verify.rs), mapped to the stage that failed.
    #[test]
    fn error_messages_map_to_stages() {
        for (message, stage) in [
            ("TCBInfo expired", "collateral"),
            ("QE Identity expired", "collateral"),
            ("Signature is invalid for tcb_info in quote_collateral", "collateral"),
            ("Failed to verify certificate chain: CertExpired", "collateral"),
            ("Failed to extract PCK certificates from quote: x", "collateral"),
            ("Signature is invalid for qe_report in quote", "qe-report"),
            ("QE report hash mismatch", "qe-report"),
            ("QE MRSIGNER mismatch: expected A, got B", "qe-identity"),
            ("QE report validation failed: Debug mode is enabled", "qe-identity"),
            ("ISV enclave report signature is invalid", "quote-signature"),
            ("Fmspc mismatch", "tcb-level"),
            ("No matching TCB level found", "tcb-level"),
            ("TCB status is invalid: Revoked", "tcb-level"),
            ("Unrecognized TCB status Foo in TCB Info", "tcb-level"),
            ("TD migration is enabled", "attributes"),
            ("SEPT_VE_DISABLE is not enabled", "attributes"),
        ] {
            assert_eq!(stage_of(message), stage, "{message}");
        }
    }
}
