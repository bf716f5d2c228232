//! AMD SEV-SNP evidence: an attestation report signed by the chip's VCEK, the VCEK certified by
//! AMD (ARK → ASK → VCEK). Appraisal records one [`crate::Check`] per claim, named `snp-*`
//! (table in `docs/attestation.md`).
//!
//! Claims that compare the report with the VCEK (`snp-chip-id`, `snp-vcek-tcb`) are checked
//! whenever both decode: they say what is wrong when evidence carries another chip's VCEK. Claims
//! about the report's contents against the policy and the binding are skipped when the report's
//! signature does not verify: unsigned contents prove nothing.

use sev::certs::snp::{Certificate, Verifiable, builtin, ca};
use sev::firmware::guest::AttestationReport;
use sev::firmware::host::TcbVersion;
use sev::parser::ByteParser;
use x509_cert::der::{Decode, asn1::OctetString};

use crate::evidence::SnpEvidence;
use crate::policy::{SnpPolicy, SnpTcb};
use crate::{Checks, Context};

/// Size of an SEV-SNP `ATTESTATION_REPORT`.
pub const REPORT_LEN: usize = 1184;

const OID_HWID: &str = "1.3.6.1.4.1.3704.1.4";
/// VCEK TCB extensions: (OID, component name).
const OID_SPLS: [(&str, &str); 5] = [
    ("1.3.6.1.4.1.3704.1.3.1", "bootloader"),
    ("1.3.6.1.4.1.3704.1.3.2", "tee"),
    ("1.3.6.1.4.1.3704.1.3.3", "snp"),
    ("1.3.6.1.4.1.3704.1.3.8", "microcode"),
    ("1.3.6.1.4.1.3704.1.3.9", "fmc"),
];

/// Offsets of the signature's R and S fields (72 bytes each) in the report.
const SIG_R: usize = 0x2a0;
const SIG_S: usize = 0x2e8;

/// The guest policy's DEBUG bit.
const POLICY_DEBUG_BIT: u64 = 1 << 19;

/// Everything decoded from the evidence body.
struct Decoded {
    raw: Vec<u8>,
    report: AttestationReport,
    vcek: Certificate,
    vcek_x509: x509_cert::Certificate,
    ask: Option<Certificate>,
    ark: Option<Certificate>,
}

/// Appraise an SEV-SNP evidence body (a DAG-CBOR [`SnpEvidence`]).
pub fn appraise(evidence: &[u8], policy: &SnpPolicy, ctx: &Context<'_>, checks: &mut Checks) {
    let d = match decode(evidence) {
        Ok(d) => {
            checks.pass(
                "snp-decode",
                format!(
                    "report version {}, {} bytes; VCEK {}",
                    d.report.version,
                    d.raw.len(),
                    subject_cn(&d.vcek_x509).unwrap_or_else(|| "(no CN)".to_owned())
                ),
            );
            d
        }
        Err((expected, found)) => {
            checks.fail("snp-decode", expected, found);
            for claim in CLAIMS_AFTER_DECODE {
                checks.skip(claim, "snp-decode failed: nothing to check");
            }
            return;
        }
    };

    // snp-cert-chain: which (ARK, ASK) pair certifies the VCEK.
    let chain = cert_chain(&d, ctx);
    match &chain {
        Ok((ark, _, label)) => checks.pass(
            "snp-cert-chain",
            format!("ARK self-signed, ARK → ASK → VCEK verified; root: {label} ({})", x509_cn(ark)),
        ),
        Err((expected, found)) => checks.fail("snp-cert-chain", expected.clone(), found.clone()),
    }

    // snp-cert-validity: the VCEK and, when the chain is known, the ASK and ARK at ctx.at.
    let mut certs: Vec<(&str, x509_cert::Certificate)> = vec![("VCEK", d.vcek_x509.clone())];
    if let Ok((ark, ask, _)) = &chain {
        certs.push(("ASK", ask.clone().into()));
        certs.push(("ARK", ark.clone().into()));
    }
    checks.record("snp-cert-validity", cert_validity(&certs, ctx.at));

    // snp-report-signature.
    let sig_ok = checks.record("snp-report-signature", report_signature(&d));

    checks.record("snp-chip-id", chip_id(&d));
    checks.record("snp-vcek-tcb", vcek_tcb(&d));

    if !sig_ok {
        for claim in CONTENT_CLAIMS {
            checks.skip(claim, "snp-report-signature failed: the report's contents are not authenticated");
        }
        return;
    }
    report_claims(&d.report, policy, ctx, checks);
}

const CLAIMS_AFTER_DECODE: [&str; 10] = [
    "snp-cert-chain",
    "snp-cert-validity",
    "snp-report-signature",
    "snp-chip-id",
    "snp-vcek-tcb",
    "snp-debug",
    "snp-vmpl",
    "snp-report-data",
    "snp-measurement",
    "snp-min-tcb",
];

const CONTENT_CLAIMS: [&str; 5] = ["snp-debug", "snp-vmpl", "snp-report-data", "snp-measurement", "snp-min-tcb"];

/// The claims about a report's contents against the policy and the binding.
fn report_claims(report: &AttestationReport, policy: &SnpPolicy, ctx: &Context<'_>, checks: &mut Checks) {
    let guest_policy = u64::from(report.policy);
    let debug = guest_policy & POLICY_DEBUG_BIT != 0;
    checks.record(
        "snp-debug",
        if !debug {
            Ok(format!("guest policy {guest_policy:#x}: DEBUG (bit 19) clear"))
        } else if policy.allow_debug {
            Ok(format!("guest policy {guest_policy:#x}: DEBUG (bit 19) set, allowed by policy allow_debug"))
        } else {
            Err((
                "guest policy DEBUG bit (19) clear: the host cannot read or change guest memory".to_owned(),
                format!("guest policy {guest_policy:#x}: DEBUG set (policy allow_debug = false)"),
            ))
        },
    );
    checks.record(
        "snp-vmpl",
        if report.vmpl <= policy.max_vmpl {
            Ok(format!("report requested at VMPL {} (policy max {})", report.vmpl, policy.max_vmpl))
        } else {
            Err((format!("VMPL ≤ {}", policy.max_vmpl), format!("VMPL {}", report.vmpl)))
        },
    );
    checks.record("snp-report-data", report_data(&report.report_data, &ctx.binding));
    match &policy.measurements {
        None => checks.skip("snp-measurement", "policy gives no reference measurements"),
        Some(list) => {
            let found = hex::encode(report.measurement);
            checks.record(
                "snp-measurement",
                if list.contains(&report.measurement) {
                    Ok(format!("measurement {found} is in the policy's list"))
                } else {
                    Err((one_of_hex(list), found))
                },
            );
        }
    }
    match &policy.min_tcb {
        None => checks.skip("snp-min-tcb", "policy gives no minimum TCB"),
        Some(min) => {
            checks.record("snp-min-tcb", min_tcb(&report.reported_tcb, min));
        }
    }
}

fn one_of_hex<const N: usize>(list: &[[u8; N]]) -> String {
    let items: Vec<String> = list.iter().map(hex::encode).collect();
    format!("one of [{}]", items.join(", "))
}

/// First 32 bytes equal to the binding, last 32 zero (shared with TDX and SGX).
pub(crate) fn report_data(data: &[u8; 64], binding: &[u8; 32]) -> Result<String, (String, String)> {
    let (head, tail) = data.split_at(32);
    if head != binding {
        return Err((
            format!("report data = binding {} ‖ 32 zero bytes", hex::encode(binding)),
            format!("first 32 bytes {}", hex::encode(head)),
        ));
    }
    if tail.iter().any(|b| *b != 0) {
        return Err((
            "report data bytes 32..64 zero".to_owned(),
            format!("bytes 32..64 = {} (evidence not made for a Vouch binding)", hex::encode(tail)),
        ));
    }
    Ok(format!("report data binds {}", hex::encode(binding)))
}

fn tcb_components(t: &TcbVersion) -> Vec<(&'static str, u8)> {
    let mut v = vec![("bootloader", t.bootloader), ("tee", t.tee), ("snp", t.snp), ("microcode", t.microcode)];
    if let Some(fmc) = t.fmc {
        v.push(("fmc", fmc));
    }
    v
}

fn fmt_tcb(t: &TcbVersion) -> String {
    tcb_components(t).iter().map(|(n, v)| format!("{n} {v}")).collect::<Vec<_>>().join(", ")
}

fn min_tcb(reported: &TcbVersion, min: &SnpTcb) -> Result<String, (String, String)> {
    let mut wanted =
        vec![("bootloader", min.bootloader), ("tee", min.tee), ("snp", min.snp), ("microcode", min.microcode)];
    if let Some(fmc) = min.fmc {
        wanted.push(("fmc", fmc));
    }
    let have = tcb_components(reported);
    let mut below = Vec::new();
    for (name, want) in &wanted {
        match have.iter().find(|(n, _)| n == name) {
            Some((_, got)) if got >= want => {}
            Some((_, got)) => below.push(format!("{name} {got} < {want}")),
            None => below.push(format!("{name} absent (the report's generation has no {name} SPL)")),
        }
    }
    let want_text = wanted.iter().map(|(n, v)| format!("{n} ≥ {v}")).collect::<Vec<_>>().join(", ");
    if below.is_empty() {
        Ok(format!("reported TCB {} meets {want_text}", fmt_tcb(reported)))
    } else {
        Err((want_text, format!("reported TCB {}: {}", fmt_tcb(reported), below.join("; "))))
    }
}

fn decode(evidence: &[u8]) -> Result<Decoded, (String, String)> {
    let expected = || "a DAG-CBOR map {report, vcek, ask?, ark?} holding a 1184-byte SEV-SNP report".to_owned();
    let ev = SnpEvidence::from_cbor(evidence).map_err(|e| (expected(), e.to_string()))?;
    if ev.report.len() != REPORT_LEN {
        return Err((format!("report of {REPORT_LEN} bytes"), format!("{} bytes", ev.report.len())));
    }
    let report = AttestationReport::from_bytes(&ev.report)
        .map_err(|e| ("a well-formed SEV-SNP report".to_owned(), format!("report does not parse: {e}")))?;
    // The signature is checked over the re-encoded report: it must be byte-identical to what
    // arrived, or bytes the parser skips would escape the signature check.
    match report.to_bytes() {
        Ok(again) if again.as_ref() == ev.report.as_slice() => {}
        Ok(again) => {
            let at = again.as_ref().iter().zip(&ev.report).position(|(a, b)| a != b).unwrap_or(0);
            return Err((
                "a canonical SEV-SNP report (reserved bytes zero)".to_owned(),
                format!("byte {at:#x} is {:#04x}, a reserved or unparsed field", ev.report[at]),
            ));
        }
        Err(e) => return Err(("a re-encodable SEV-SNP report".to_owned(), e.to_string())),
    }
    // The signature's R and S are 72-byte little-endian fields of which P-384 uses 48: the
    // verifier reads only those, so non-zero high bytes would be accepted unnoticed (found by
    // the flip-byte test). Canonical evidence has them zero.
    for (name, at) in [("R", SIG_R), ("S", SIG_S)] {
        if let Some(i) = ev.report[at + 48..at + 72].iter().position(|b| *b != 0) {
            return Err((
                format!("signature {name} bytes 48..72 zero (a P-384 component in a 72-byte field)"),
                format!("byte {:#x} is {:#04x}", at + 48 + i, ev.report[at + 48 + i]),
            ));
        }
    }
    let cert = |name: &str, der: &[u8]| -> Result<(Certificate, x509_cert::Certificate), (String, String)> {
        let x = x509_cert::Certificate::from_der(der)
            .map_err(|e| (format!("{name}: a DER X.509 certificate"), format!("does not parse: {e}")))?;
        let c = Certificate::from_der(der)
            .map_err(|e| (format!("{name}: a DER X.509 certificate"), format!("does not parse: {e}")))?;
        Ok((c, x))
    };
    let (vcek, vcek_x509) = cert("vcek", &ev.vcek)?;
    let ask = ev.ask.as_deref().map(|der| cert("ask", der)).transpose()?.map(|(c, _)| c);
    let ark = ev.ark.as_deref().map(|der| cert("ark", der)).transpose()?.map(|(c, _)| c);
    Ok(Decoded { raw: ev.report, report, vcek, vcek_x509, ask, ark })
}

fn x509_cn(c: &Certificate) -> String {
    let x: x509_cert::Certificate = c.clone().into();
    subject_cn(&x).unwrap_or_else(|| "(no CN)".to_owned())
}

fn subject_cn(x: &x509_cert::Certificate) -> Option<String> {
    x.tbs_certificate.subject.0.iter().flat_map(|rdn| rdn.0.iter()).find_map(|atv| {
        (atv.oid == x509_cert::der::oid::db::rfc4519::CN).then(|| {
            // DirectoryString: take the raw value bytes as text.
            String::from_utf8_lossy(atv.value.value()).into_owned()
        })
    })
}

fn der_of(c: &Certificate) -> Vec<u8> {
    c.to_der().unwrap_or_default()
}

/// Built-in AMD roots: (product line, ARK, ASK).
fn builtin_roots() -> Vec<(&'static str, Certificate, Certificate)> {
    let mut v = Vec::new();
    if let (Ok(ark), Ok(ask)) = (builtin::milan::ark(), builtin::milan::ask()) {
        v.push(("Milan", ark, ask));
    }
    if let (Ok(ark), Ok(ask)) = (builtin::genoa::ark(), builtin::genoa::ask()) {
        v.push(("Genoa", ark, ask));
    }
    if let (Ok(ark), Ok(ask)) = (builtin::turin::ark(), builtin::turin::ask()) {
        v.push(("Turin", ark, ask));
    }
    v
}

type ChainResult = Result<(Certificate, Certificate, String), (String, String)>;

/// Find a trusted (ARK, ASK) that certifies the VCEK: ARK self-signed, ARK → ASK, ASK → VCEK.
fn cert_chain(d: &Decoded, ctx: &Context<'_>) -> ChainResult {
    let builtins = builtin_roots();
    // Trusted ARKs: built-in ones and configured trust roots that parse as certificates.
    let mut trusted: Vec<(String, Certificate)> =
        builtins.iter().map(|(name, ark, _)| (format!("built-in AMD ARK-{name}"), ark.clone())).collect();
    for (i, der) in ctx.trust_roots.iter().enumerate() {
        if let Ok(c) = Certificate::from_der(der) {
            trusted.push((format!("configured trust root #{i}"), c));
        }
    }
    // Candidate (ARK, ASK, label) triples to try.
    let mut candidates: Vec<(Certificate, Certificate, String)> = Vec::new();
    match (&d.ark, &d.ask) {
        (Some(ark), ask) => {
            let ark_der = der_of(ark);
            let Some((label, _)) = trusted.iter().find(|(_, t)| der_of(t) == ark_der) else {
                return Err((
                    "the evidence's ARK to be a built-in AMD ARK (Milan, Genoa, Turin) or a configured trust root"
                        .to_owned(),
                    format!("untrusted ARK {:?}", x509_cn(ark)),
                ));
            };
            match ask {
                Some(ask) => candidates.push((ark.clone(), ask.clone(), label.clone())),
                None => {
                    for (name, b_ark, b_ask) in &builtins {
                        if der_of(b_ark) == ark_der {
                            candidates.push((ark.clone(), b_ask.clone(), format!("{label}, built-in ASK-{name}")));
                        }
                    }
                }
            }
        }
        (None, Some(ask)) => {
            for (label, ark) in &trusted {
                candidates.push((ark.clone(), ask.clone(), label.clone()));
            }
        }
        (None, None) => {
            for (name, ark, ask) in &builtins {
                candidates.push((ark.clone(), ask.clone(), format!("built-in AMD ARK-{name}")));
            }
        }
    }
    let mut tried = Vec::new();
    for (ark, ask, label) in candidates {
        let chain = ca::Chain { ark: ark.clone(), ask: ask.clone() };
        let result = chain.verify().and_then(|ask| (ask, &d.vcek).verify());
        match result {
            Ok(()) => return Ok((ark, ask, label)),
            Err(e) => tried.push(format!("{label}: {e}")),
        }
    }
    Err((
        "VCEK certified by an ASK that a trusted AMD ARK signs (ARK self-signed, ARK → ASK → VCEK)".to_owned(),
        if tried.is_empty() { "no candidate root".to_owned() } else { tried.join("; ") },
    ))
}

fn cert_validity(certs: &[(&str, x509_cert::Certificate)], at: u64) -> Result<String, (String, String)> {
    let mut ok = Vec::new();
    for (name, c) in certs {
        let v = &c.tbs_certificate.validity;
        let nb = v.not_before.to_unix_duration().as_secs();
        let na = v.not_after.to_unix_duration().as_secs();
        let span = format!("{} to {}", v.not_before, v.not_after);
        if at < nb || at > na {
            return Err((
                format!("{name} valid at verification time {at} (Unix seconds)"),
                format!("{name} valid {span} ({})", if at < nb { "not yet valid" } else { "expired" }),
            ));
        }
        ok.push(format!("{name} {span}"));
    }
    Ok(format!("valid at {at}: {}", ok.join("; ")))
}

fn report_signature(d: &Decoded) -> Result<String, (String, String)> {
    if d.report.sig_algo != 1 {
        return Err((
            "signature algorithm 1 (ECDSA P-384 with SHA-384)".to_owned(),
            format!("signature algorithm {}", d.report.sig_algo),
        ));
    }
    match (&d.vcek, &d.report).verify() {
        Ok(()) => Ok("ECDSA P-384/SHA-384 signature over report bytes 0..0x2a0 verifies with the VCEK key".to_owned()),
        Err(e) => Err(("report signed by the VCEK's key".to_owned(), format!("signature does not verify: {e}"))),
    }
}

fn extension<'a>(x: &'a x509_cert::Certificate, oid: &str) -> Option<&'a [u8]> {
    x.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id.to_string() == oid)
        .map(|e| e.extn_value.as_bytes())
}

fn chip_id(d: &Decoded) -> Result<String, (String, String)> {
    let chip = &d.report.chip_id;
    let Some(raw) = extension(&d.vcek_x509, OID_HWID) else {
        return Err((format!("VCEK hwID extension {OID_HWID}"), "absent (a VLEK has no chip id)".to_owned()));
    };
    // hwID is an OCTET STRING (64 bytes; 8 on Turin); accept it DER-wrapped or raw.
    let hwid = match OctetString::from_der(raw) {
        Ok(o) => o.as_bytes().to_vec(),
        Err(_) => raw.to_vec(),
    };
    if hwid.is_empty() || hwid.len() > chip.len() {
        return Err(("VCEK hwID of 8 or 64 bytes".to_owned(), format!("{} bytes", hwid.len())));
    }
    let (head, tail) = chip.split_at(hwid.len());
    if head == hwid.as_slice() && tail.iter().all(|b| *b == 0) {
        Ok(format!("report chip id = VCEK hwID {}", hex::encode(&hwid)))
    } else {
        Err((
            format!("report chip id = VCEK hwID {}", hex::encode(&hwid)),
            format!("report chip id {}", hex::encode(chip)),
        ))
    }
}

fn spl(x: &x509_cert::Certificate, oid: &str) -> Option<Result<u8, String>> {
    let raw = extension(x, oid)?;
    Some(u8::from_der(raw).map_err(|e| format!("extension {oid} is not a small INTEGER: {e}")))
}

fn vcek_tcb(d: &Decoded) -> Result<String, (String, String)> {
    let reported = tcb_components(&d.report.reported_tcb);
    let mut mismatches = Vec::new();
    let mut vcek_text = Vec::new();
    for (oid, name) in OID_SPLS {
        let want = reported.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        match (spl(&d.vcek_x509, oid), want) {
            (None, None) => {}
            (None, Some(_)) => mismatches.push(format!("{name}: VCEK has no extension {oid}")),
            (Some(Err(e)), _) => mismatches.push(e),
            (Some(Ok(v)), None) if name == "fmc" => vcek_text.push(format!("{name} {v}")),
            (Some(Ok(v)), None) => mismatches.push(format!("{name}: VCEK {v}, report has none")),
            (Some(Ok(v)), Some(r)) => {
                vcek_text.push(format!("{name} {v}"));
                if v != r {
                    mismatches.push(format!("{name}: VCEK {v} ≠ report {r}"));
                }
            }
        }
    }
    if mismatches.is_empty() {
        Ok(format!("VCEK TCB = reported TCB ({})", vcek_text.join(", ")))
    } else {
        Err((
            format!("VCEK TCB extensions equal to the report's reported TCB ({})", fmt_tcb(&d.report.reported_tcb)),
            mismatches.join("; "),
        ))
    }
}

#[cfg(test)]
mod tests {
    //! Claims about a report's contents cannot be tampered with end to end (the signature
    //! breaks first), so they are tested here on the real Milan sample decoded and then modified.
    use super::*;

    const REPORT: &[u8] = include_bytes!("../testdata/snp/milan-report.bin");

    fn sample() -> AttestationReport {
        AttestationReport::from_bytes(REPORT).expect("sample report parses")
    }

    fn binding_of(r: &AttestationReport) -> [u8; 32] {
        r.report_data[..32].try_into().expect("32 bytes")
    }

    fn run(report: &AttestationReport, policy: &SnpPolicy, binding: [u8; 32]) -> Checks {
        let ctx = Context { binding, trust_roots: &[], at: 0 };
        let mut checks = Checks::new();
        report_claims(report, policy, &ctx, &mut checks);
        checks
    }

    fn status<'a>(checks: &'a Checks, claim: &str) -> &'a crate::Status {
        &checks.iter().find(|c| c.claim == claim).expect("claim recorded").status
    }

    #[test]
    fn debug_bit_fails_unless_allowed() {
        let mut r = sample();
        // The sample's own guest policy (0x30000) has DEBUG clear.
        assert!(matches!(
            status(&run(&r, &SnpPolicy::default(), binding_of(&r)), "snp-debug"),
            crate::Status::Passed { .. }
        ));
        r.policy = (u64::from(r.policy) | POLICY_DEBUG_BIT).into();
        let checks = run(&r, &SnpPolicy::default(), binding_of(&r));
        match status(&checks, "snp-debug") {
            crate::Status::Failed { found, .. } => assert!(found.contains("DEBUG set"), "{found}"),
            s => panic!("expected failure, got {s:?}"),
        }
        let allow = SnpPolicy { allow_debug: true, ..SnpPolicy::default() };
        assert!(matches!(status(&run(&r, &allow, binding_of(&r)), "snp-debug"), crate::Status::Passed { .. }));
    }

    #[test]
    fn vmpl_above_policy_fails() {
        let mut r = sample();
        r.vmpl = 2;
        let checks = run(&r, &SnpPolicy { max_vmpl: 1, ..SnpPolicy::default() }, binding_of(&r));
        assert_eq!(
            status(&checks, "snp-vmpl"),
            &crate::Status::Failed { expected: "VMPL ≤ 1".into(), found: "VMPL 2".into() }
        );
    }

    #[test]
    fn min_tcb_names_the_component_below() {
        let r = sample();
        let t = r.reported_tcb;
        let at = SnpTcb { bootloader: t.bootloader, tee: t.tee, snp: t.snp, microcode: t.microcode, fmc: None };
        let checks = run(&r, &SnpPolicy { min_tcb: Some(at), ..SnpPolicy::default() }, binding_of(&r));
        assert!(matches!(status(&checks, "snp-min-tcb"), crate::Status::Passed { .. }));
        let above = SnpTcb { microcode: t.microcode + 1, ..at };
        let checks = run(&r, &SnpPolicy { min_tcb: Some(above), ..SnpPolicy::default() }, binding_of(&r));
        match status(&checks, "snp-min-tcb") {
            crate::Status::Failed { found, .. } => {
                assert!(found.contains(&format!("microcode {} < {}", t.microcode, t.microcode + 1)), "{found}");
                assert_eq!(found.matches(" < ").count(), 1, "only microcode is below: {found}");
            }
            s => panic!("expected failure, got {s:?}"),
        }
    }
}
