//! EK certificate chains: the EK certificate, optional intermediates, and a trust root from the
//! verifier's context. Pure Rust (x509-cert 0.2, rsa, p256).

use sha2::{Sha256, Sha384, Sha512};
use x509_cert::Certificate;
use x509_cert::der::{Decode, Encode};

const OID_SHA256_RSA: &str = "1.2.840.113549.1.1.11";
const OID_SHA384_RSA: &str = "1.2.840.113549.1.1.12";
const OID_SHA512_RSA: &str = "1.2.840.113549.1.1.13";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";

/// Longest chain followed (EK certificate plus intermediates).
const MAX_DEPTH: usize = 8;

pub fn parse(der: &[u8]) -> Result<Certificate, String> {
    Certificate::from_der(der).map_err(|e| e.to_string())
}

/// The subject, or for the empty subjects EK certificates usually have, the serial number.
pub fn subject(cert: &Certificate) -> String {
    let s = cert.tbs_certificate.subject.to_string();
    if s.is_empty() {
        format!("(empty subject, serial {})", hex::encode(cert.tbs_certificate.serial_number.as_bytes()))
    } else {
        s
    }
}

pub fn issuer(cert: &Certificate) -> String {
    cert.tbs_certificate.issuer.to_string()
}

/// (notBefore, notAfter) in Unix seconds.
pub fn validity(cert: &Certificate) -> (u64, u64) {
    let v = &cert.tbs_certificate.validity;
    (v.not_before.to_unix_duration().as_secs(), v.not_after.to_unix_duration().as_secs())
}

/// Does `issuer` sign `cert`?
pub fn verify_signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), String> {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err(format!("issuer name {} differs from subject {}", self::issuer(cert), subject(issuer)));
    }
    let tbs = cert.tbs_certificate.to_der().map_err(|e| format!("re-encoding the TBS certificate: {e}"))?;
    let sig = cert.signature.as_bytes().ok_or("signature with unused bits")?;
    let spki = &issuer.tbs_certificate.subject_public_key_info;
    let key = spki.subject_public_key.as_bytes().ok_or("issuer key with unused bits")?;
    let sig_alg = cert.signature_algorithm.oid.to_string();
    let key_alg = spki.algorithm.oid.to_string();
    match (sig_alg.as_str(), key_alg.as_str()) {
        (OID_SHA256_RSA | OID_SHA384_RSA | OID_SHA512_RSA, OID_RSA_ENCRYPTION) => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            use rsa::signature::Verifier;
            let pk = rsa::RsaPublicKey::from_pkcs1_der(key).map_err(|e| format!("issuer RSA key: {e}"))?;
            let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| format!("RSA signature: {e}"))?;
            let r = match sig_alg.as_str() {
                OID_SHA256_RSA => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk).verify(&tbs, &sig),
                OID_SHA384_RSA => rsa::pkcs1v15::VerifyingKey::<Sha384>::new(pk).verify(&tbs, &sig),
                _ => rsa::pkcs1v15::VerifyingKey::<Sha512>::new(pk).verify(&tbs, &sig),
            };
            r.map_err(|_| "RSA PKCS#1 v1.5 signature does not verify".to_string())
        }
        (OID_ECDSA_SHA256, OID_EC_PUBLIC_KEY) => {
            use p256::ecdsa::signature::Verifier;
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key)
                .map_err(|_| "issuer key is not a P-256 point (only P-256 ECDSA issuers are supported)".to_string())?;
            let sig = p256::ecdsa::Signature::from_der(sig).map_err(|e| format!("ECDSA signature: {e}"))?;
            vk.verify(&tbs, &sig).map_err(|_| "ECDSA P-256 signature does not verify".to_string())
        }
        _ => Err(format!("unsupported signature algorithm {sig_alg} with issuer key {key_alg}")),
    }
}

/// May `cert` issue certificates? RFC 5280: basicConstraints with cA = TRUE (§4.2.1.9) and,
/// when the keyUsage extension is present, keyCertSign (§4.2.1.3); `below` is the number of
/// intermediate CA certificates between it and the EK certificate, which its
/// pathLenConstraint, if any, must allow. `signed` names the certificate it signed, for the
/// message.
pub fn check_issuer(cert: &Certificate, signed: &Certificate, below: usize) -> Result<(), String> {
    use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
    let who = || format!("{} (signer of {})", subject(cert), subject(signed));
    let tbs = &cert.tbs_certificate;
    let bc = tbs.get::<BasicConstraints>().map_err(|e| format!("{}: basicConstraints: {e}", who()))?;
    match bc {
        None => return Err(format!("{} is not a CA: it has no basicConstraints extension", who())),
        Some((_, bc)) if !bc.ca => return Err(format!("{} is not a CA: basicConstraints cA is false", who())),
        Some((_, BasicConstraints { path_len_constraint: Some(max), .. })) if below > usize::from(max) => {
            return Err(format!(
                "{}: pathLenConstraint {max} allows {max} intermediate CA certificates below it, found {below}",
                who()
            ));
        }
        Some(_) => {}
    }
    match tbs.get::<KeyUsage>().map_err(|e| format!("{}: keyUsage: {e}", who()))? {
        Some((_, ku)) if !ku.key_cert_sign() => {
            Err(format!("{} may not sign certificates: its keyUsage lacks keyCertSign", who()))
        }
        _ => Ok(()),
    }
}

/// Is `cert` valid at `at` (Unix seconds)? The message names it and its validity period.
pub fn check_valid_at(cert: &Certificate, at: u64) -> Result<(), String> {
    let (not_before, not_after) = validity(cert);
    if at < not_before || at > not_after {
        let why = if at < not_before { "not yet valid" } else { "expired" };
        return Err(format!("{} is valid from {not_before} to {not_after}, {why} at {at}", subject(cert)));
    }
    Ok(())
}

/// Follow `leaf` through `intermediates` to one of `roots`. Returns the certificates from leaf
/// to root on success, or a message naming the certificate whose issuer could not be found,
/// whose signature failed, or whose issuer may not issue certificates ([`check_issuer`]: the
/// intermediates and the root alike must be CAs). Validity periods are not checked here:
/// [`check_valid_at`] over the returned path does that.
pub fn verify_chain<'a>(
    leaf: &'a Certificate,
    intermediates: &'a [Certificate],
    roots: &'a [Certificate],
) -> Result<Vec<&'a Certificate>, String> {
    let mut path = vec![leaf];
    let mut current = leaf;
    for below in 0..MAX_DEPTH {
        let mut last_error = None;
        for root in roots.iter().filter(|r| r.tbs_certificate.subject == current.tbs_certificate.issuer) {
            match verify_signed_by(current, root).and_then(|()| check_issuer(root, current, below)) {
                Ok(()) => {
                    path.push(root);
                    return Ok(path);
                }
                Err(e) => last_error = Some(e),
            }
        }
        let next = intermediates.iter().find(|c| {
            c.tbs_certificate.subject == current.tbs_certificate.issuer && verify_signed_by(current, c).is_ok()
        });
        match next {
            Some(next) => {
                check_issuer(next, current, below)?;
                path.push(next);
                current = next;
            }
            None => {
                return Err(match last_error {
                    Some(e) => format!("{} (issuer {}): {e}", subject(current), issuer(current)),
                    None => format!(
                        "{}: its issuer {} is neither a trust root nor a verifying certificate in ek_chain",
                        subject(current),
                        issuer(current)
                    ),
                });
            }
        }
    }
    Err(format!("chain longer than {MAX_DEPTH} certificates"))
}
