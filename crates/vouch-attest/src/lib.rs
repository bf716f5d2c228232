//! Attestation for Vouch: hardware evidence that vouches for a node key, and its offline appraisal.
//!
//! Generation and verification are split. Verification ([`appraise`] and the technology modules)
//! is pure Rust, needs no network and no system library, and reports every claim it checked as a
//! [`Check`] with the expected and found values. Generation of TPM evidence needs `libtss2` and is
//! behind the `tpm-attester` feature; SEV-SNP and TDX evidence comes from Linux configfs-tsm.
//!
//! Every technology binds the node key the same way: the 32-byte `binding`
//! (`SHA-256(domain ‖ node key ‖ nonce)`, computed by the receipt layer) is the TPM quote's
//! qualifying data, and the first 32 bytes of the 64-byte SEV-SNP / TDX / SGX report data (the
//! other 32 are zero).

pub mod check;

pub use check::{Check, Checks, Status};
pub mod tpm;
#[cfg(feature = "tpm-attester")]
pub mod tpm_attester;

pub mod dcap;
pub mod evidence;
pub mod policy;
pub mod snp;
pub mod tsm;

pub use policy::{Policy, PolicyError, Technology};

/// What every technology's appraisal needs besides the evidence and its policy section.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// The 32-byte binding the evidence must carry: `SHA-256(domain ‖ node key ‖ nonce)`.
    pub binding: [u8; 32],
    /// Extra trust roots (DER X.509 certificates) beyond the vendor roots built in: a TPM
    /// manufacturer's EK CA, a local EK CA, an enrolment authority.
    pub trust_roots: &'a [Vec<u8>],
    /// Verification time, Unix seconds (certificate validity, collateral expiry, evidence age).
    pub at: u64,
}

/// Appraise `evidence` of `technology` (`tpm`, `sev-snp`, `tdx`, `sgx`) under `policy`, one
/// [`Check`] per claim. A technology the policy does not accept (and `none`, which no policy
/// accepts: the receipt layer decides about it with `--allow-insecure`) gives one failed
/// `technology` check and nothing else.
pub fn appraise(technology: &str, evidence: &[u8], policy: &Policy, ctx: &Context<'_>) -> Checks {
    let mut checks = Checks::new();
    let Some(tech) = accept_technology(technology, policy, &mut checks) else {
        return checks;
    };
    match tech {
        Technology::Tpm => tpm::appraise(evidence, policy.tpm.as_ref(), ctx, &mut checks),
        Technology::SevSnp => snp::appraise(evidence, &policy.sev_snp, ctx, &mut checks),
        Technology::Tdx => dcap::appraise_tdx(evidence, &policy.tdx, ctx, &mut checks),
        Technology::Sgx => dcap::appraise_sgx(evidence, &policy.sgx, ctx, &mut checks),
    }
    checks
}

/// The `technology` claim: does `policy` accept `technology`? Returns it when it does.
pub(crate) fn accept_technology(technology: &str, policy: &Policy, checks: &mut Checks) -> Option<Technology> {
    let accepted: Vec<&str> = policy.accept.iter().map(|t| t.name()).collect();
    let Some(tech) = Technology::from_name(technology).filter(|t| policy.accept.contains(t)) else {
        let found = match technology {
            "none" => "none (no hardware claim; only --allow-insecure accepts it)".to_owned(),
            t if Technology::from_name(t).is_some() => format!("{t}, which the policy does not accept"),
            t => format!("unknown technology {t:?}"),
        };
        checks.fail("technology", format!("one of [{}]", accepted.join(", ")), found);
        return None;
    };
    checks.pass("technology", format!("{technology} is accepted by the policy"));
    Some(tech)
}

/// The 64-byte report data an SEV-SNP (`sev-snp`) or DCAP (`tdx`, `sgx`) evidence body carries,
/// read without verifying anything; `None` for other technologies or a body that does not
/// decode. For comparing evidence made by other tools with arbitrary report data: trust it only
/// when [`appraise`] passed the evidence's signature claims.
pub fn report_data_of(technology: &str, evidence: &[u8]) -> Option<[u8; 64]> {
    match Technology::from_name(technology)? {
        Technology::SevSnp => {
            let ev = evidence::SnpEvidence::from_cbor(evidence).ok()?;
            (ev.report.len() == snp::REPORT_LEN).then(|| ev.report[0x50..0x90].try_into().ok())?
        }
        Technology::Tdx | Technology::Sgx => {
            let ev = evidence::DcapEvidence::from_cbor(evidence).ok()?;
            dcap::report_data_of(&dcap_qvl::quote::Quote::parse(&ev.quote).ok()?.report)
        }
        Technology::Tpm => None,
    }
}

/// Certificates from a trust-root file: DER (one certificate) or PEM (one or more
/// `CERTIFICATE` blocks; other PEM blocks are an error, so a private key given by mistake is
/// refused rather than ignored).
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine as _;
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "neither DER (starts with 0x30) nor PEM text".to_owned())?;
    let mut certs = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) else { continue };
        if label != "CERTIFICATE" {
            return Err(format!("PEM block {label:?}: only CERTIFICATE blocks are trust roots"));
        }
        let mut b64 = String::new();
        loop {
            match lines.next() {
                None => return Err("PEM CERTIFICATE block without its END line".into()),
                Some("-----END CERTIFICATE-----") => break,
                Some(l) => b64.push_str(l),
            }
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|e| format!("PEM CERTIFICATE block {}: {e}", certs.len() + 1))?;
        certs.push(der);
    }
    if certs.is_empty() {
        return Err("no PEM CERTIFICATE block found".into());
    }
    Ok(certs)
}
