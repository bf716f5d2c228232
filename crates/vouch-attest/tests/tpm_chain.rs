//! EK certificate chains: every issuer must be a CA, every certificate of the chain (the trust
//! root included) valid at the verification time. The certificates are made here with `rcgen`
//! (ECDSA P-256 / SHA-256, fresh keys each run); nothing is committed. The chains are checked
//! through `certs::verify_chain` and through `tpm::appraise`, with the committed swtpm vector's
//! EK certificate and chain replaced (so the enrolment binding fails there too; these tests look
//! at the `tpm-ek-*` claims only).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, date_time_ymd};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use vouch_attest::tpm::{self, TpmEvidence, certs};
use vouch_attest::{Checks, Context};

mod common;
use common::{failed, passed};

/// 2030-03-17, inside the validity of every certificate made with [`VALID`].
const AT: u64 = 1_900_000_000;
/// 2020-01-01 to 2040-01-01.
const VALID: ((i32, u8, u8), (i32, u8, u8)) = ((2020, 1, 1), (2040, 1, 1));
/// 2000-01-01 to 2001-01-01: long expired at [`AT`].
const EXPIRED: ((i32, u8, u8), (i32, u8, u8)) = ((2000, 1, 1), (2001, 1, 1));

/// A made certificate with its key, to sign others.
struct Made {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Made {
    fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    fn parsed(&self) -> x509_cert::Certificate {
        certs::parse(self.cert.der()).expect("rcgen makes parsable certificates")
    }
}

fn params(
    cn: &str,
    ca: IsCa,
    usages: Vec<KeyUsagePurpose>,
    validity: ((i32, u8, u8), (i32, u8, u8)),
) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("no subject alt names");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = ca;
    p.key_usages = usages;
    let ((y0, m0, d0), (y1, m1, d1)) = validity;
    p.not_before = date_time_ymd(y0, m0, d0);
    p.not_after = date_time_ymd(y1, m1, d1);
    p
}

fn ca_usages() -> Vec<KeyUsagePurpose> {
    vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign]
}

fn ca() -> IsCa {
    IsCa::Ca(BasicConstraints::Unconstrained)
}

/// A certificate for `p`, signed by `issuer` or, without one, by its own key.
fn make(p: CertificateParams, issuer: Option<&Made>) -> Made {
    let key = KeyPair::generate().expect("P-256 key");
    let cert = match issuer {
        Some(i) => p.signed_by(&key, &i.cert, &i.key),
        None => p.self_signed(&key),
    }
    .expect("signing");
    Made { cert, key }
}

fn root() -> Made {
    make(params("Test EK Root CA", ca(), ca_usages(), VALID), None)
}

fn ek_leaf(issuer: &Made) -> Made {
    make(params("Test EK", IsCa::NoCa, vec![KeyUsagePurpose::KeyEncipherment], VALID), Some(issuer))
}

/// `verify_chain` over DER certificates: Ok(subjects leaf..root) or the message.
fn chain(leaf: &Made, intermediates: &[&Made], roots: &[&Made]) -> Result<Vec<String>, String> {
    let leaf = leaf.parsed();
    let intermediates: Vec<_> = intermediates.iter().map(|c| c.parsed()).collect();
    let roots: Vec<_> = roots.iter().map(|c| c.parsed()).collect();
    certs::verify_chain(&leaf, &intermediates, &roots).map(|p| p.iter().map(|c| certs::subject(c)).collect())
}

/// The committed swtpm vector with its EK certificate and chain replaced, appraised with
/// `root` as the only trust root.
fn appraise(leaf: &Made, intermediates: &[&Made], root: &Made) -> Checks {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tpm");
    let mut ev = TpmEvidence::from_bytes(&std::fs::read(dir.join("evidence.cbor")).unwrap()).unwrap();
    ev.ek_certificate = leaf.der();
    ev.ek_chain = intermediates.iter().map(|c| ByteBuf::from(c.der())).collect();
    let roots = vec![root.der()];
    let ctx = Context { binding: Sha256::digest(b"nonce-1").into(), trust_roots: &roots, at: AT };
    let mut checks = Checks::new();
    tpm::appraise(&ev.to_bytes(), None, &ctx, &mut checks);
    checks
}

#[test]
fn a_ca_chain_verifies() {
    let root = root();
    let inter = make(params("Test EK Intermediate CA", ca(), ca_usages(), VALID), Some(&root));
    let leaf = ek_leaf(&inter);
    assert_eq!(
        chain(&leaf, &[&inter], &[&root]).unwrap(),
        ["CN=Test EK", "CN=Test EK Intermediate CA", "CN=Test EK Root CA"]
    );
    let checks = appraise(&leaf, &[&inter], &root);
    assert!(passed(&checks, "tpm-ek-chain"), "{checks:#?}");
    assert!(passed(&checks, "tpm-ek-validity"), "{checks:#?}");
}

#[test]
fn a_leaf_that_signs_another_certificate_is_refused() {
    // The root certifies an end-entity certificate (no basicConstraints), whose key then
    // signs the "EK certificate": every signature verifies, but the middle one is no CA.
    let root = root();
    let not_ca = make(params("Test Not A CA", IsCa::NoCa, vec![KeyUsagePurpose::DigitalSignature], VALID), Some(&root));
    let leaf = ek_leaf(&not_ca);
    let e = chain(&leaf, &[&not_ca], &[&root]).unwrap_err();
    assert!(e.contains("CN=Test Not A CA (signer of CN=Test EK) is not a CA"), "{e}");
    let (expected, found) = failed(&appraise(&leaf, &[&not_ca], &root), "tpm-ek-chain");
    assert!(expected.contains("every issuer a CA"), "{expected}");
    assert!(found.contains("CN=Test Not A CA") && found.contains("no basicConstraints"), "{found}");

    // basicConstraints cA = FALSE, said explicitly: the same.
    let explicit = make(params("Test Explicit Non-CA", IsCa::ExplicitNoCa, vec![], VALID), Some(&root));
    let e = chain(&ek_leaf(&explicit), &[&explicit], &[&root]).unwrap_err();
    assert!(e.contains("CN=Test Explicit Non-CA") && e.contains("cA is false"), "{e}");
}

#[test]
fn a_ca_whose_key_usage_lacks_key_cert_sign_is_refused() {
    let root = root();
    let inter =
        make(params("Test CA Without keyCertSign", ca(), vec![KeyUsagePurpose::DigitalSignature], VALID), Some(&root));
    let leaf = ek_leaf(&inter);
    let (_, found) = failed(&appraise(&leaf, &[&inter], &root), "tpm-ek-chain");
    assert!(found.contains("CN=Test CA Without keyCertSign") && found.contains("lacks keyCertSign"), "{found}");
    // A CA without a keyUsage extension at all is allowed (RFC 5280: the check applies when
    // the extension is present).
    let inter = make(params("Test CA Without keyUsage", ca(), vec![], VALID), Some(&root));
    assert!(chain(&ek_leaf(&inter), &[&inter], &[&root]).is_ok());
}

#[test]
fn a_trust_root_that_is_not_a_ca_is_refused_as_issuer() {
    // A self-signed end-entity certificate configured as a trust root signs the EK certificate.
    let root = make(params("Test Self-Signed Leaf", IsCa::NoCa, vec![], VALID), None);
    let leaf = ek_leaf(&root);
    let (_, found) = failed(&appraise(&leaf, &[], &root), "tpm-ek-chain");
    assert!(
        found.contains("CN=Test Self-Signed Leaf (signer of CN=Test EK) is not a CA"),
        "the root is named: {found}"
    );
}

#[test]
fn path_length_constraint_is_enforced() {
    let p = params("Test Root pathLen 0", IsCa::Ca(BasicConstraints::Constrained(0)), ca_usages(), VALID);
    let root = make(p, None);
    let inter = make(params("Test EK Intermediate CA", ca(), ca_usages(), VALID), Some(&root));
    let e = chain(&ek_leaf(&inter), &[&inter], &[&root]).unwrap_err();
    assert!(e.contains("pathLenConstraint 0") && e.contains("found 1"), "{e}");
    // Directly under the root, the EK certificate is fine.
    assert!(chain(&ek_leaf(&root), &[], &[&root]).is_ok());
}

#[test]
fn an_expired_trust_root_fails_validity() {
    let root = make(params("Test Expired Root CA", ca(), ca_usages(), EXPIRED), None);
    let inter = make(params("Test EK Intermediate CA", ca(), ca_usages(), VALID), Some(&root));
    let leaf = ek_leaf(&inter);
    let checks = appraise(&leaf, &[&inter], &root);
    // The signatures hold; the root's validity period does not.
    assert!(passed(&checks, "tpm-ek-chain"), "{checks:#?}");
    let (expected, found) = failed(&checks, "tpm-ek-validity");
    assert_eq!(expected, format!("CN=Test Expired Root CA valid at {AT}"));
    assert!(found.contains("expired at 1900000000"), "{found}");
    // And a root not valid yet.
    let future = make(params("Test Future Root CA", ca(), ca_usages(), ((2035, 1, 1), (2040, 1, 1))), None);
    let checks = appraise(&ek_leaf(&future), &[], &future);
    let (_, found) = failed(&checks, "tpm-ek-validity");
    assert!(found.contains("CN=Test Future Root CA") && found.contains("not yet valid"), "{found}");
}
