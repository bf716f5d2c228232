//! TPM 2.0 quotes: offline, pure-Rust verification (and, behind `tpm-attester`, generation).
//!
//! The evidence ([`TpmEvidence`]) carries an AK-signed quote over the SHA-256 PCR bank with the
//! 32-byte binding as qualifying data, the PCR values, the EK certificate (and intermediates),
//! and an [`Enrollment`]: an enrolment authority's ed25519 statement that, after a
//! make/activate-credential round trip ([`make_credential`]), this AK lives in the TPM of this
//! EK certificate. [`appraise`] checks every link and records one claim per check.

pub mod certs;
mod credential;
mod evidence;
pub mod tools;
pub mod wire;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use credential::{
    Credential, CredentialError, EkPublic, kdfa, make_credential, make_credential_with_rng, make_credential_with_secret,
};
pub use evidence::{ENROLLMENT_DOMAIN, Enrollment, EnrollmentStatement, PcrValue, TpmEvidence, enrollment_message};

use crate::{Checks, Context};
use wire::{PublicKey, Signature};

/// The PCRs quoted when the policy does not say: the SRTM PCRs 0–7 and PCR 23, where Vouch
/// extends the SHA-256 of its own binary.
pub const DEFAULT_PCR_SELECTION: [u32; 9] = [0, 1, 2, 3, 4, 5, 6, 7, 23];
/// The PCR Vouch extends with its binary measurement.
pub const SELF_MEASUREMENT_PCR: u32 = 23;

/// The `[tpm]` section of an appraisal policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmPolicy {
    /// Ed25519 public keys (64 hex digits) of the enrolment authorities whose AK enrolment
    /// statements are trusted. None configured: `tpm-ak-binding` fails.
    #[serde(default)]
    pub enrollment_keys: Vec<String>,
    /// Reference values of the SHA-256 bank: PCR index (as a string, TOML keys are strings) →
    /// 64 hex digits. Empty: `tpm-pcr-values` is skipped.
    #[serde(default)]
    pub pcrs: BTreeMap<String, String>,
    /// PCRs the quote must cover; default [`DEFAULT_PCR_SELECTION`].
    #[serde(default)]
    pub pcr_selection: Option<Vec<u32>>,
}

impl TpmPolicy {
    fn selection(&self) -> Vec<u32> {
        self.pcr_selection.clone().unwrap_or_else(|| DEFAULT_PCR_SELECTION.to_vec())
    }
}

const CLAIMS_AFTER_DECODE: [&str; 9] = [
    "tpm-ek-chain",
    "tpm-ek-validity",
    "tpm-ak-binding",
    "tpm-ak-attributes",
    "tpm-quote-signature",
    "tpm-quote-magic-type",
    "tpm-qualifying-data",
    "tpm-pcr-digest",
    "tpm-pcr-values",
];

/// Appraise TPM evidence bytes, recording one [`crate::Check`] per claim.
pub fn appraise(evidence: &[u8], policy: Option<&TpmPolicy>, ctx: &Context<'_>, checks: &mut Checks) {
    let default_policy = TpmPolicy::default();
    let policy = policy.unwrap_or(&default_policy);

    // tpm-decode: the DAG-CBOR envelope and every TPM structure in it.
    let decoded = decode(evidence);
    let d = match decoded {
        Ok(d) => {
            checks.pass(
                "tpm-decode",
                format!(
                    "{} bytes of evidence; AK {}; {} PCR values; EK certificate {}",
                    evidence.len(),
                    describe_key(&d.ak.key),
                    d.ev.pcrs.len(),
                    certs::subject(&d.ek_cert)
                ),
            );
            d
        }
        Err(found) => {
            checks.fail("tpm-decode", "DAG-CBOR TpmEvidence with well-formed TPM structures", found);
            for claim in CLAIMS_AFTER_DECODE {
                checks.skip(claim, "the evidence did not decode");
            }
            return;
        }
    };

    // tpm-ek-chain: signatures up to a trust root, every issuer a CA.
    let roots: Vec<_> = ctx.trust_roots.iter().filter_map(|der| certs::parse(der).ok()).collect();
    let path = certs::verify_chain(&d.ek_cert, &d.chain, &roots);
    checks.record(
        "tpm-ek-chain",
        match &path {
            Ok(path) => Ok(path.iter().map(|c| certs::subject(c)).collect::<Vec<_>>().join(" <- ")),
            Err(e) => Err((
                format!("an EK certificate chain to one of {} trust roots, every issuer a CA", roots.len()),
                e.clone(),
            )),
        },
    );

    // tpm-ek-validity: every certificate of the chain (the EK certificate, the intermediates
    // and the trust root it reached) at ctx.at; without a chain, the certificates carried.
    let carried: Vec<&x509_cert::Certificate> = std::iter::once(&d.ek_cert).chain(d.chain.iter()).collect();
    checks.record("tpm-ek-validity", check_validity(path.as_deref().unwrap_or(&carried), ctx.at));

    // tpm-ak-binding
    checks.record("tpm-ak-binding", check_binding(&d, policy));

    // tpm-ak-attributes
    checks.record("tpm-ak-attributes", check_ak_attributes(d.ak.attributes));

    // tpm-quote-signature
    let sig_ok = checks.record("tpm-quote-signature", verify_signature(&d.ak.key, &d.sig, &d.ev.quote));

    // tpm-quote-magic-type
    let magic_ok = checks.record("tpm-quote-magic-type", check_magic_type(&d.ev.quote));

    let Some(quote) = attested(checks, d.quote.as_ref(), sig_ok, magic_ok) else { return };

    // tpm-qualifying-data
    checks.record(
        "tpm-qualifying-data",
        if quote.extra_data == ctx.binding {
            Ok(hex::encode(&quote.extra_data))
        } else {
            Err((hex::encode(ctx.binding), hex::encode(&quote.extra_data)))
        },
    );

    // tpm-pcr-digest
    let digest_ok = checks.record("tpm-pcr-digest", check_pcr_digest(&d.ev.pcrs, quote, &policy.selection()));

    // tpm-pcr-values
    if !digest_ok {
        checks.skip("tpm-pcr-values", "the carried PCR values do not match the quote's PCR digest");
    } else if policy.pcrs.is_empty() {
        checks.skip("tpm-pcr-values", "the policy sets no PCR reference values");
    } else {
        checks.record("tpm-pcr-values", check_pcr_values(&d.ev.pcrs, policy));
    }
}

/// An AK must be a restricted signing key that never left its TPM.
/// The parsed quote when its signature and its magic/type checks passed. Otherwise the claims
/// about its contents are skipped, saying why, and `None`: an unattested quote says nothing.
fn attested<T>(checks: &mut Checks, quote: Option<T>, sig_ok: bool, magic_ok: bool) -> Option<T> {
    if let (Some(q), true, true) = (quote, sig_ok, magic_ok) {
        return Some(q);
    }
    let reason = if !sig_ok {
        "the quote signature did not verify, so its contents are not attested"
    } else {
        "the quote is not a TPM-generated quote"
    };
    for claim in ["tpm-qualifying-data", "tpm-pcr-digest", "tpm-pcr-values"] {
        checks.skip(claim, reason);
    }
    None
}

fn check_ak_attributes(attrs: u32) -> Result<String, (String, String)> {
    if attrs & wire::AK_REQUIRED == wire::AK_REQUIRED && attrs & wire::AK_FORBIDDEN == 0 {
        Ok(wire::describe_attributes(attrs))
    } else {
        Err((
            "fixedTPM|fixedParent|sensitiveDataOrigin|restricted|sign, not decrypt".into(),
            wire::describe_attributes(attrs),
        ))
    }
}

/// A quote the TPM generated: `TPM_GENERATED_VALUE` and `TPM_ST_ATTEST_QUOTE`.
fn check_magic_type(quote: &[u8]) -> Result<String, (String, String)> {
    let (magic, st) = wire::magic_and_type(quote).unwrap_or_default();
    if magic == wire::TPM_GENERATED_VALUE && st == wire::TPM_ST_ATTEST_QUOTE {
        Ok(format!("magic 0x{magic:08x} (TPM_GENERATED_VALUE), type 0x{st:04x} (TPM_ST_ATTEST_QUOTE)"))
    } else {
        Err((
            format!(
                "magic 0x{:08x} (TPM_GENERATED_VALUE), type 0x{:04x} (TPM_ST_ATTEST_QUOTE)",
                wire::TPM_GENERATED_VALUE,
                wire::TPM_ST_ATTEST_QUOTE
            ),
            format!("magic 0x{magic:08x}, type 0x{st:04x}"),
        ))
    }
}

/// Decoded evidence with its TPM structures parsed.
struct Decoded {
    ev: TpmEvidence,
    ak: wire::PublicArea,
    sig: Signature,
    /// `None` when the magic or type is wrong (reported by `tpm-quote-magic-type`).
    quote: Option<wire::Quote>,
    ek_cert: x509_cert::Certificate,
    chain: Vec<x509_cert::Certificate>,
}

fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    let ev = TpmEvidence::from_bytes(bytes).map_err(|e| format!("DAG-CBOR: {e}"))?;
    let ak = wire::parse_public(&ev.ak_public).map_err(|e| format!("ak_public: {e}"))?;
    let sig = wire::parse_signature(&ev.signature).map_err(|e| format!("signature: {e}"))?;
    let quote = match wire::magic_and_type(&ev.quote) {
        Some((wire::TPM_GENERATED_VALUE, wire::TPM_ST_ATTEST_QUOTE)) => {
            Some(wire::parse_quote(&ev.quote).map_err(|e| format!("quote: {e}"))?)
        }
        Some(_) => None,
        None => return Err(format!("quote: {} bytes", ev.quote.len())),
    };
    let ek_cert = certs::parse(&ev.ek_certificate).map_err(|e| format!("ek_certificate: {e}"))?;
    let chain = ev
        .ek_chain
        .iter()
        .enumerate()
        .map(|(i, der)| certs::parse(der).map_err(|e| format!("ek_chain[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Decoded { ev, ak, sig, quote, ek_cert, chain })
}

fn describe_key(key: &PublicKey) -> String {
    match key {
        PublicKey::EccP256 { .. } => "ECC P-256".into(),
        PublicKey::Rsa { key_bits, .. } => format!("RSA {key_bits}"),
        PublicKey::Other(what) => what.clone(),
    }
}

fn check_validity(chain: &[&x509_cert::Certificate], at: u64) -> Result<String, (String, String)> {
    for cert in chain {
        certs::check_valid_at(cert, at).map_err(|found| (format!("{} valid at {at}", certs::subject(cert)), found))?;
    }
    let subjects: Vec<String> = chain.iter().map(|c| certs::subject(c)).collect();
    Ok(format!("{} valid at {at}", subjects.join(", ")))
}

fn check_binding(d: &Decoded, policy: &TpmPolicy) -> Result<String, (String, String)> {
    let e = &d.ev.ak_binding;
    let ak_name = d.ak.name().map_err(|found| ("an AK with a SHA-256 name".to_string(), found))?;
    let authority = hex::encode(&e.authority);
    if policy.enrollment_keys.is_empty() {
        return Err((
            "an enrolment authority key in the policy's tpm.enrollment_keys".into(),
            format!("no enrolment keys configured; the statement is signed by {authority}"),
        ));
    }
    if !policy.enrollment_keys.iter().any(|k| k.eq_ignore_ascii_case(&authority)) {
        return Err((format!("a statement signed by one of {}", policy.enrollment_keys.join(", ")), authority));
    }
    e.verify_signature().map_err(|found| (format!("a valid ed25519 signature by {authority}"), found))?;
    let ek_hash = Sha256::digest(&d.ev.ek_certificate);
    if e.statement.ek_cert_sha256 != ek_hash.as_slice() {
        return Err((
            format!("enrolment of EK certificate sha256 {}", hex::encode(ek_hash)),
            format!("EK certificate sha256 {}", hex::encode(&e.statement.ek_cert_sha256)),
        ));
    }
    if e.statement.ak_name != ak_name {
        return Err((
            format!("enrolment of AK name {}", hex::encode(&ak_name)),
            format!("AK name {}", hex::encode(&e.statement.ak_name)),
        ));
    }
    Ok(format!(
        "AK {} enrolled for this EK certificate by {authority} at {}",
        hex::encode(&ak_name),
        e.statement.enrolled_at
    ))
}

/// Does `sig` by the AK `key` verify over `quote` (the `TPMS_ATTEST` bytes)?
fn verify_signature(key: &PublicKey, sig: &Signature, quote: &[u8]) -> Result<String, (String, String)> {
    match (key, sig) {
        (PublicKey::EccP256 { x, y, .. }, Signature::Ecdsa { hash, r, s }) => {
            use p256::ecdsa::signature::Verifier;
            if *hash != wire::TPM_ALG_SHA256 {
                return Err(("ECDSA with SHA-256".into(), format!("ECDSA with hash 0x{hash:04x}")));
            }
            let expected = "an ECDSA P-256 signature by the AK".to_string();
            let point = credential::sec1_point(x, y).ok_or((expected.clone(), "AK point too long".into()))?;
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                .map_err(|_| (expected.clone(), "the AK is not a P-256 point".into()))?;
            let (r, s) = match (pad32(r), pad32(s)) {
                (Some(r), Some(s)) => (r, s),
                _ => return Err((expected, "r or s longer than 32 bytes".into())),
            };
            let sig = p256::ecdsa::Signature::from_scalars(r, s)
                .map_err(|_| (expected.clone(), "r or s out of range".into()))?;
            vk.verify(quote, &sig).map_err(|_| (expected, "the signature does not verify".into()))?;
            Ok("ECDSA P-256 / SHA-256 signature by the AK verifies".into())
        }
        (PublicKey::Rsa { modulus, exponent, .. }, Signature::Rsassa { hash, sig }) => {
            use rsa::signature::Verifier;
            if *hash != wire::TPM_ALG_SHA256 {
                return Err(("RSASSA with SHA-256".into(), format!("RSASSA with hash 0x{hash:04x}")));
            }
            let expected = "an RSASSA-PKCS1-v1_5 / SHA-256 signature by the AK".to_string();
            let e = if *exponent == 0 { 65537 } else { *exponent };
            let pk = rsa::RsaPublicKey::new(rsa::BigUint::from_bytes_be(modulus), rsa::BigUint::from(e))
                .map_err(|err| (expected.clone(), format!("AK RSA key: {err}")))?;
            let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice())
                .map_err(|err| (expected.clone(), format!("signature: {err}")))?;
            rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk)
                .verify(quote, &sig)
                .map_err(|_| (expected, "the signature does not verify".into()))?;
            Ok("RSASSA / SHA-256 signature by the AK verifies".into())
        }
        (key, sig) => Err((
            "an ECDSA P-256 or RSASSA signature matching the AK's key type".into(),
            format!("AK {} with signature {sig:?}", describe_key(key)),
        )),
    }
}

fn pad32(v: &[u8]) -> Option<p256::FieldBytes> {
    if v.len() > 32 {
        return None;
    }
    let mut out = p256::FieldBytes::default();
    out[32 - v.len()..].copy_from_slice(v);
    Some(out)
}

fn check_pcr_digest(pcrs: &[PcrValue], quote: &wire::Quote, required: &[u32]) -> Result<String, (String, String)> {
    // One SHA-256 bank only: that is what the attester quotes and what PcrValue carries.
    let indices = match quote.selections.as_slice() {
        [(wire::TPM_ALG_SHA256, indices)] => indices,
        other => {
            let found: Vec<String> = other.iter().map(|(alg, idx)| format!("bank 0x{alg:04x} {idx:?}")).collect();
            return Err(("a quote over the SHA-256 bank only".into(), found.join(", ")));
        }
    };
    let missing: Vec<u32> = required.iter().copied().filter(|i| !indices.contains(i)).collect();
    if !missing.is_empty() {
        return Err((format!("a quote covering PCRs {required:?}"), format!("PCRs {indices:?} (missing {missing:?})")));
    }
    let carried: Vec<u32> = pcrs.iter().map(|p| p.index).collect();
    if &carried != indices {
        return Err((format!("values for PCRs {indices:?} in that order"), format!("values for PCRs {carried:?}")));
    }
    if let Some(p) = pcrs.iter().find(|p| p.sha256.len() != 32) {
        return Err((format!("a 32-byte value for PCR {}", p.index), format!("{} bytes", p.sha256.len())));
    }
    let mut h = Sha256::new();
    for p in pcrs {
        h.update(&p.sha256);
    }
    let digest = h.finalize();
    if digest.as_slice() == quote.pcr_digest.as_slice() {
        Ok(format!("SHA-256 over PCRs {indices:?} = {}", hex::encode(digest)))
    } else {
        Err((
            format!("quote pcrDigest {}", hex::encode(&quote.pcr_digest)),
            format!("{} from the carried PCR values", hex::encode(digest)),
        ))
    }
}

fn check_pcr_values(pcrs: &[PcrValue], policy: &TpmPolicy) -> Result<String, (String, String)> {
    let mut reference: Vec<(u32, String)> = Vec::new();
    for (k, v) in &policy.pcrs {
        let index: u32 = k
            .parse()
            .ok()
            .filter(|i| *i < 24)
            .ok_or_else(|| ("a policy PCR index 0..=23".to_string(), format!("{k:?}")))?;
        reference.push((index, v.to_ascii_lowercase()));
    }
    reference.sort();
    for (index, expected) in &reference {
        match pcrs.iter().find(|p| p.index == *index) {
            None => return Err((format!("PCR {index} = {expected}"), format!("PCR {index} not quoted"))),
            Some(p) if hex::encode(&p.sha256) != *expected => {
                return Err((format!("PCR {index} = {expected}"), format!("PCR {index} = {}", hex::encode(&p.sha256))));
            }
            Some(_) => {}
        }
    }
    let list: Vec<String> = reference.iter().map(|(i, _)| i.to_string()).collect();
    Ok(format!("PCRs {} match the policy", list.join(", ")))
}
