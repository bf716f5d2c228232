//! TPM quotes as tpm2-tools writes them: the raw `TPMS_ATTEST` (`tpm2_quote -m quote.msg`), its
//! `TPMT_SIGNATURE` (`tpm2_quote -s quote.sig`, formats `tss` or `plain`), the AK public key
//! (`tpm2_createak -u ak.pub`: `TPM2B_PUBLIC`, or a PEM / DER SubjectPublicKeyInfo from
//! `tpm2_createak -f pem`, `tpm2_readpublic -f pem|der`) and the PCR values (`tpm2_quote -o
//! pcrs.out`, formats `serialized` (the default), `marshaled` and `values`).
//!
//! [`appraise`] records the same claims as the Vouch evidence appraisal ([`super::appraise`]),
//! with the same checks for the quote signature, magic and type, qualifying data, PCR digest and
//! PCR reference values. These files carry no EK certificate and no proof that the AK lives in a
//! TPM: `tpm-ek-chain`, `tpm-ek-validity` and `tpm-ak-binding` are skipped, saying so. The AK is
//! trusted as given ([`AK_TRUST_ASSUMPTION`]).

use sha2::{Digest, Sha256};
use x509_cert::der::Decode;

use super::wire::{self, PublicArea, PublicKey, Signature};
use super::{PcrValue, check_ak_attributes, check_magic_type, check_pcr_digest, check_pcr_values, describe_key};
use crate::{Checks, Policy, Technology};

/// What a verifier of tpm2-tools files takes on trust: said in every result.
pub const AK_TRUST_ASSUMPTION: &str = "the AK public key given with the quote is trusted as given: tpm2-tools' \
     quote files carry no EK certificate and no proof that the AK lives in a TPM (enrol the AK with `vouch attest \
     enroll` and verify Vouch TPM evidence for that)";

/// Size of tpm2-tools' serialized `TPML_PCR_SELECTION` (C struct: count, 16 × 8-byte selections).
const SERIALIZED_SELECTION_LEN: usize = 4 + 16 * 8;
/// Size of tpm2-tools' serialized `TPML_DIGEST` (C struct: count, 8 × (u16 size, 64 bytes)).
const SERIALIZED_DIGESTS_LEN: usize = 4 + 8 * 66;
/// `TPM2_NUM_PCR_BANKS`, `TPM2_PCR_SELECT_MAX`, `TPM2_MAX_PCRS`, digests per `TPML_DIGEST`.
const MAX_BANKS: usize = 16;
const MAX_SELECT: usize = 4;
const MAX_DIGEST_LISTS: usize = 32;
const MAX_DIGESTS_PER_LIST: usize = 8;

/// Does `bytes` start like a `TPMS_ATTEST` (the `TPM_GENERATED_VALUE` magic, 0xff544347)?
/// A Vouch DAG-CBOR evidence body starts with a CBOR map header instead.
pub fn is_tpms_attest(bytes: &[u8]) -> bool {
    bytes.starts_with(&wire::TPM_GENERATED_VALUE.to_be_bytes())
}

/// An attestation key public key, from a `TPM2B_PUBLIC` or a SubjectPublicKeyInfo.
#[derive(Clone, Debug)]
pub struct Ak {
    pub key: PublicKey,
    /// The TPM public area when the key came as a `TPM2B_PUBLIC` (attributes, name).
    pub public: Option<PublicArea>,
    /// Which form it came in, for messages.
    pub form: &'static str,
}

impl Ak {
    /// The TPM name (`TPM2B_PUBLIC`) or the SHA-256 of the key material (SPKI), hex, for messages.
    fn identity(&self) -> String {
        match &self.public {
            Some(p) => match p.name() {
                Ok(name) => format!("AK name {}", hex::encode(name)),
                Err(e) => format!("AK {e}"),
            },
            None => match &self.key {
                PublicKey::EccP256 { x, y, .. } => {
                    format!(
                        "AK SHA-256(x ‖ y) {}",
                        hex::encode(Sha256::new().chain_update(x).chain_update(y).finalize())
                    )
                }
                PublicKey::Rsa { modulus, .. } => {
                    format!("AK SHA-256(modulus) {}", hex::encode(Sha256::digest(modulus)))
                }
                PublicKey::Other(what) => format!("AK {what}"),
            },
        }
    }
}

/// Parse an AK public key file: PEM (`-----BEGIN PUBLIC KEY-----`), DER SubjectPublicKeyInfo
/// (starts with 0x30) or a `TPM2B_PUBLIC` (anything else).
pub fn parse_ak(bytes: &[u8]) -> Result<Ak, String> {
    if bytes.starts_with(b"-----BEGIN") {
        let (label, der) = x509_cert::der::pem::decode_vec(bytes).map_err(|e| format!("PEM public key: {e}"))?;
        if label != "PUBLIC KEY" {
            return Err(format!("PEM block {label:?}: expected a PUBLIC KEY (SubjectPublicKeyInfo)"));
        }
        return Ok(Ak { key: parse_spki(&der)?, public: None, form: "PEM SubjectPublicKeyInfo" });
    }
    if bytes.first() == Some(&0x30) {
        return Ok(Ak { key: parse_spki(bytes)?, public: None, form: "DER SubjectPublicKeyInfo" });
    }
    let public = wire::parse_public(bytes)?;
    Ok(Ak { key: public.key.clone(), public: Some(public), form: "TPM2B_PUBLIC" })
}

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

fn parse_spki(der: &[u8]) -> Result<PublicKey, String> {
    let spki =
        x509_cert::spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|e| format!("SubjectPublicKeyInfo: {e}"))?;
    let key = spki.subject_public_key.as_bytes().ok_or("SubjectPublicKeyInfo: key with unused bits")?;
    let null = 0x0010; // TPM_ALG_NULL: no scheme in a SubjectPublicKeyInfo
    match spki.algorithm.oid.to_string().as_str() {
        OID_EC_PUBLIC_KEY => {
            let curve = spki.algorithm.parameters_oid().map_err(|e| format!("EC key without a named curve: {e}"))?;
            if curve.to_string() != OID_P256 {
                return Ok(PublicKey::Other(format!("ECC curve {curve}")));
            }
            match key {
                [4, xy @ ..] if xy.len() == 64 => Ok(PublicKey::EccP256 {
                    x: xy[..32].to_vec(),
                    y: xy[32..].to_vec(),
                    scheme: null,
                    scheme_hash: null,
                }),
                _ => Err(format!("P-256 key: {} bytes, not an uncompressed point", key.len())),
            }
        }
        OID_RSA_ENCRYPTION => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            use rsa::traits::PublicKeyParts;
            let pk = rsa::RsaPublicKey::from_pkcs1_der(key).map_err(|e| format!("RSA key: {e}"))?;
            let e = pk.e().to_bytes_be();
            if e.len() > 4 {
                return Err(format!("RSA exponent of {} bytes", e.len()));
            }
            let exponent = e.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
            let modulus = pk.n().to_bytes_be();
            let key_bits = u16::try_from(modulus.len() * 8).map_err(|_| "RSA modulus too long".to_string())?;
            Ok(PublicKey::Rsa { modulus, exponent, key_bits, scheme: null, scheme_hash: null })
        }
        other => Ok(PublicKey::Other(format!("key algorithm {other}"))),
    }
}

/// A quote signature and the form it came in.
#[derive(Clone, Debug)]
pub struct ToolsSignature {
    pub sig: Signature,
    pub form: &'static str,
}

/// Parse a signature file: a `TPMT_SIGNATURE` (`-f tss`, the default), or, when it is not one,
/// `-f plain`: a DER ECDSA signature for a P-256 AK, the raw signature for an RSA AK (the plain
/// form drops the hash algorithm: SHA-256 is assumed, as `tpm2_quote -g sha256` signs).
pub fn parse_signature(bytes: &[u8], ak: &Ak) -> Result<ToolsSignature, String> {
    let tss = match wire::parse_signature(bytes) {
        Ok(sig) => return Ok(ToolsSignature { sig, form: "TPMT_SIGNATURE" }),
        Err(e) => e,
    };
    match &ak.key {
        PublicKey::EccP256 { .. } => match p256::ecdsa::Signature::from_der(bytes) {
            Ok(sig) => {
                let (r, s) = sig.split_bytes();
                Ok(ToolsSignature {
                    sig: Signature::Ecdsa { hash: wire::TPM_ALG_SHA256, r: r.to_vec(), s: s.to_vec() },
                    form: "plain DER ECDSA (SHA-256 assumed)",
                })
            }
            Err(_) => Err(format!("neither a {tss} nor a plain DER ECDSA signature")),
        },
        PublicKey::Rsa { modulus, .. } if bytes.len() == modulus.len() => Ok(ToolsSignature {
            sig: Signature::Rsassa { hash: wire::TPM_ALG_SHA256, sig: bytes.to_vec() },
            form: "plain RSASSA (SHA-256 assumed)",
        }),
        PublicKey::Rsa { modulus, .. } => Err(format!(
            "neither a {tss} nor a plain RSA signature ({} bytes, the AK modulus has {})",
            bytes.len(),
            modulus.len()
        )),
        PublicKey::Other(_) => Err(tss),
    }
}

/// One PCR bank of a PCR file: hash algorithm and (index, value) in ascending index order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrBank {
    pub hash: u16,
    pub values: Vec<(u32, Vec<u8>)>,
}

/// The PCR values `tpm2_quote -o` wrote, and the form they came in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrFile {
    pub banks: Vec<PcrBank>,
    pub form: &'static str,
}

impl PcrFile {
    fn selection(&self) -> Vec<(u16, Vec<u32>)> {
        self.banks.iter().map(|b| (b.hash, b.values.iter().map(|(i, _)| *i).collect())).collect()
    }

    fn count(&self) -> usize {
        self.banks.iter().map(|b| b.values.len()).sum()
    }
}

/// Digest size of a TPM hash algorithm: SHA-1, SHA-256, SHA-384, SHA-512, SM3-256.
fn digest_len(alg: u16) -> Option<usize> {
    match alg {
        0x0004 => Some(20),
        0x000b | 0x0012 => Some(32),
        0x000c => Some(48),
        0x000d => Some(64),
        _ => None,
    }
}

/// Parse a `tpm2_quote -o` PCR file. `serialized` (tpm2-tools' default: C structs in little
/// endian, `lib/pcr.c` `pcr_fwrite_serialized`), `marshaled` (TPM wire encoding, big endian) or
/// `values` (the digests only, concatenated: their PCRs are `quote_selection`'s, in order).
pub fn parse_pcrs(bytes: &[u8], quote_selection: &[(u16, Vec<u32>)]) -> Result<PcrFile, String> {
    let serialized = parse_serialized(bytes);
    if let Ok(banks) = serialized {
        return Ok(PcrFile { banks, form: "serialized" });
    }
    if let Ok(banks) = parse_marshaled(bytes) {
        return Ok(PcrFile { banks, form: "marshaled" });
    }
    if let Some(banks) = parse_values(bytes, quote_selection) {
        return Ok(PcrFile { banks, form: "values" });
    }
    Err(format!(
        "not a tpm2-tools PCR file ({} bytes): as serialized (the default): {}; nor marshaled, nor the {} bytes of \
         the quote's PCR values",
        bytes.len(),
        serialized.err().unwrap_or_default(),
        values_len(quote_selection).map(|n| n.to_string()).unwrap_or_else(|| "?".into())
    ))
}

/// A bounds-checked reader of tpm2-tools' little-endian C structs.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {} (needs {n} more)", self.pos))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16_le(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }

    fn u32_le(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes([self.u8()?, self.u8()?, self.u8()?, self.u8()?]))
    }
}

/// Hand the digests out to the selection's PCRs in order; every selected PCR gets exactly one
/// digest of its bank's size.
fn assign(selection: Vec<(u16, Vec<u32>)>, digests: Vec<&[u8]>) -> Result<Vec<PcrBank>, String> {
    let wanted: usize = selection.iter().map(|(_, idx)| idx.len()).sum();
    if digests.len() != wanted {
        return Err(format!("{} PCR values for {wanted} selected PCRs", digests.len()));
    }
    let mut digests = digests.into_iter();
    let mut banks = Vec::new();
    for (hash, indices) in selection {
        let len = digest_len(hash).ok_or_else(|| format!("unknown PCR bank hash 0x{hash:04x}"))?;
        let mut values = Vec::new();
        for index in indices {
            // Cannot be None: the counts were compared above.
            let d = digests.next().ok_or("fewer values than selected PCRs")?;
            if d.len() != len {
                return Err(format!("PCR {index} of bank 0x{hash:04x}: {} bytes, expected {len}", d.len()));
            }
            values.push((index, d.to_vec()));
        }
        banks.push(PcrBank { hash, values });
    }
    Ok(banks)
}

fn parse_serialized(bytes: &[u8]) -> Result<Vec<PcrBank>, String> {
    let mut r = Reader { bytes, pos: 0 };
    let head = r.take(SERIALIZED_SELECTION_LEN)?;
    let mut sel = Reader { bytes: head, pos: 0 };
    let count = sel.u32_le()? as usize;
    if count > MAX_BANKS {
        return Err(format!("{count} PCR selections (at most {MAX_BANKS})"));
    }
    let mut selection = Vec::new();
    for _ in 0..count {
        let hash = sel.u16_le()?;
        let size = sel.u8()? as usize;
        let bitmap = sel.take(MAX_SELECT)?;
        sel.take(1)?; // C struct padding
        if size > MAX_SELECT {
            return Err(format!("sizeofSelect {size} (at most {MAX_SELECT})"));
        }
        selection.push((hash, wire::pcr_indices(&bitmap[..size])));
    }
    let lists = r.u32_le()? as usize;
    if lists > MAX_DIGEST_LISTS {
        return Err(format!("{lists} digest lists (at most {MAX_DIGEST_LISTS})"));
    }
    let expected_len = SERIALIZED_SELECTION_LEN + 4 + lists * SERIALIZED_DIGESTS_LEN;
    if bytes.len() != expected_len {
        return Err(format!("{} bytes; {lists} digest lists make {expected_len}", bytes.len()));
    }
    let mut digests = Vec::new();
    for _ in 0..lists {
        let mut list = Reader { bytes: r.take(SERIALIZED_DIGESTS_LEN)?, pos: 0 };
        let n = list.u32_le()? as usize;
        if n > MAX_DIGESTS_PER_LIST {
            return Err(format!("a digest list of {n} (at most {MAX_DIGESTS_PER_LIST})"));
        }
        for _ in 0..n {
            let size = list.u16_le()? as usize;
            let buffer = list.take(64)?;
            if size > 64 {
                return Err(format!("a digest of {size} bytes (at most 64)"));
            }
            digests.push(&buffer[..size]);
        }
    }
    assign(selection, digests)
}

fn parse_marshaled(bytes: &[u8]) -> Result<Vec<PcrBank>, String> {
    let (selection, digests) = wire::parse_marshaled_pcrs(bytes)?;
    assign(selection, digests.iter().map(Vec::as_slice).collect())
}

fn values_len(selection: &[(u16, Vec<u32>)]) -> Option<usize> {
    selection.iter().map(|(hash, idx)| digest_len(*hash).map(|l| l * idx.len())).sum()
}

fn parse_values(bytes: &[u8], selection: &[(u16, Vec<u32>)]) -> Option<Vec<PcrBank>> {
    if selection.is_empty() || values_len(selection)? != bytes.len() {
        return None;
    }
    let mut pos = 0;
    let mut digests = Vec::new();
    for (hash, indices) in selection {
        let len = digest_len(*hash)?;
        for _ in indices {
            digests.push(bytes.get(pos..pos + len)?);
            pos += len;
        }
    }
    assign(selection.to_vec(), digests).ok()
}

/// The PCR selection of a quote, for [`parse_pcrs`]'s `values` form; empty when `quote` is not a
/// well-formed `TPMS_ATTEST` quote.
pub fn quote_selection(quote: &[u8]) -> Vec<(u16, Vec<u32>)> {
    wire::parse_quote(quote).map(|q| q.selections).unwrap_or_default()
}

/// Appraise tpm2-tools quote files: `quote` (the `TPMS_ATTEST` bytes), its signature, the AK,
/// the PCR values (optional) and the qualifying data the verifier expects (`None`: the
/// `tpm-qualifying-data` claim fails, since a quote bound to nothing known proves nothing about
/// who asked for it). One [`crate::Check`] per claim, named as for Vouch TPM evidence.
pub fn appraise(
    quote: &[u8],
    sig: &ToolsSignature,
    ak: &Ak,
    pcrs: Option<&PcrFile>,
    qualifying_data: Option<&[u8]>,
    policy: &Policy,
) -> Checks {
    let mut checks = Checks::new();
    if crate::accept_technology("tpm", policy, &mut checks) != Some(Technology::Tpm) {
        return checks;
    }
    let default_policy = super::TpmPolicy::default();
    let tpm_policy = policy.tpm.as_ref().unwrap_or(&default_policy);

    // tpm-decode: the quote (the other files parsed before they got here).
    let parsed = match wire::magic_and_type(quote) {
        Some((wire::TPM_GENERATED_VALUE, wire::TPM_ST_ATTEST_QUOTE)) => wire::parse_quote(quote).map(Some),
        Some(_) => Ok(None),
        None => Err(format!("TPMS_ATTEST: {} bytes", quote.len())),
    };
    let parsed = match parsed {
        Ok(q) => {
            let pcr_text = pcrs.map(|p| format!("{} PCR values ({})", p.count(), p.form));
            checks.pass(
                "tpm-decode",
                format!(
                    "tpm2-tools files: {}-byte TPMS_ATTEST, {} signature, {} AK ({}), {}",
                    quote.len(),
                    sig.form,
                    describe_key(&ak.key),
                    ak.form,
                    pcr_text.unwrap_or_else(|| "no PCR values".into())
                ),
            );
            q
        }
        Err(found) => {
            checks.fail("tpm-decode", "a TPMS_ATTEST quote as tpm2_quote -m writes it", found);
            for claim in super::CLAIMS_AFTER_DECODE {
                checks.skip(claim, "the quote did not decode");
            }
            return checks;
        }
    };

    let no_ek = "tpm2-tools quote files carry no EK certificate";
    checks.skip("tpm-ek-chain", no_ek);
    checks.skip("tpm-ek-validity", no_ek);
    checks.skip("tpm-ak-binding", format!("{}; {AK_TRUST_ASSUMPTION}", ak.identity()));
    match &ak.public {
        Some(p) => {
            checks.record("tpm-ak-attributes", check_ak_attributes(p.attributes));
        }
        None => checks.skip(
            "tpm-ak-attributes",
            format!("a {} carries no TPM object attributes (give the TPM2B_PUBLIC of tpm2_createak -u)", ak.form),
        ),
    }
    let sig_ok = checks.record("tpm-quote-signature", super::verify_signature(&ak.key, &sig.sig, quote));
    let magic_ok = checks.record("tpm-quote-magic-type", check_magic_type(quote));
    let Some(q) = super::attested(&mut checks, parsed, sig_ok, magic_ok) else { return checks };

    // tpm-qualifying-data: compared exactly, whatever its length (tpm2_quote -q).
    checks.record(
        "tpm-qualifying-data",
        match qualifying_data {
            Some(want) if want == q.extra_data.as_slice() => Ok(hex::encode(&q.extra_data)),
            Some(want) => Err((hex::encode(want), hex::encode(&q.extra_data))),
            None => Err((
                "the qualifying data the verifier expects (tpm2_quote -q)".into(),
                format!(
                    "none given, so the quote's binding was checked against nothing; it carries {}",
                    hex::encode(&q.extra_data)
                ),
            )),
        },
    );

    // tpm-pcr-digest, tpm-pcr-values
    let Some(pcrs) = pcrs else {
        checks.skip(
            "tpm-pcr-digest",
            format!(
                "no PCR values given: the quote attests PCR digest {} over {}, not which values it covers",
                hex::encode(&q.pcr_digest),
                describe_selection(&q.selections)
            ),
        );
        if tpm_policy.pcrs.is_empty() {
            checks.skip("tpm-pcr-values", "the policy sets no PCR reference values");
        } else {
            checks.fail("tpm-pcr-values", "PCR values for the policy's reference values", "no PCR values given");
        }
        return checks;
    };
    let digest = if pcrs.selection() != q.selections {
        Err((
            format!("PCR values for the quote's selection {}", describe_selection(&q.selections)),
            format!("values for {}", describe_selection(&pcrs.selection())),
        ))
    } else {
        let sha256: Vec<PcrValue> = pcrs
            .banks
            .iter()
            .filter(|b| b.hash == wire::TPM_ALG_SHA256)
            .flat_map(|b| b.values.iter().map(|(index, v)| PcrValue { index: *index, sha256: v.clone() }))
            .collect();
        check_pcr_digest(&sha256, &q, tpm_policy.pcr_selection.as_deref().unwrap_or_default())
            .map(|detail| (detail, sha256))
    };
    match digest {
        Ok((detail, sha256)) => {
            checks.pass("tpm-pcr-digest", detail);
            if tpm_policy.pcrs.is_empty() {
                checks.skip("tpm-pcr-values", "the policy sets no PCR reference values");
            } else {
                checks.record("tpm-pcr-values", check_pcr_values(&sha256, tpm_policy));
            }
        }
        Err((expected, found)) => {
            checks.fail("tpm-pcr-digest", expected, found);
            checks.skip("tpm-pcr-values", "the PCR values given do not match the quote's PCR digest");
        }
    }
    checks
}

fn describe_selection(selection: &[(u16, Vec<u32>)]) -> String {
    let banks: Vec<String> = selection
        .iter()
        .map(|(hash, idx)| {
            let name = match hash {
                0x0004 => "sha1".to_string(),
                0x000b => "sha256".to_string(),
                0x000c => "sha384".to_string(),
                0x000d => "sha512".to_string(),
                other => format!("0x{other:04x}"),
            };
            let list: Vec<String> = idx.iter().map(u32::to_string).collect();
            format!("{name}:{}", list.join(","))
        })
        .collect();
    if banks.is_empty() { "no PCRs".into() } else { banks.join(" + ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A serialized PCR file as tpm2-tools writes it (C structs, little endian).
    fn serialized(banks: &[(u16, &[u32], usize)]) -> Vec<u8> {
        let mut out = vec![0u8; SERIALIZED_SELECTION_LEN];
        out[..4].copy_from_slice(&(banks.len() as u32).to_le_bytes());
        let mut digests: Vec<Vec<u8>> = Vec::new();
        for (i, (hash, idx, len)) in banks.iter().enumerate() {
            let at = 4 + 8 * i;
            out[at..at + 2].copy_from_slice(&hash.to_le_bytes());
            out[at + 2] = 3;
            for index in *idx {
                out[at + 3 + (*index / 8) as usize] |= 1 << (index % 8);
                digests.push(vec![*index as u8 + 1; *len]);
            }
        }
        let lists: Vec<&[Vec<u8>]> = digests.chunks(MAX_DIGESTS_PER_LIST).collect();
        out.extend((lists.len() as u32).to_le_bytes());
        for list in lists {
            let mut l = vec![0u8; SERIALIZED_DIGESTS_LEN];
            l[..4].copy_from_slice(&(list.len() as u32).to_le_bytes());
            for (j, d) in list.iter().enumerate() {
                let at = 4 + 66 * j;
                l[at..at + 2].copy_from_slice(&(d.len() as u16).to_le_bytes());
                l[at + 2..at + 2 + d.len()].copy_from_slice(d);
            }
            out.extend(l);
        }
        out
    }

    /// The same PCR values in the TPM wire encoding (`-F marshaled`).
    fn marshaled(banks: &[(u16, &[u32], usize)]) -> Vec<u8> {
        let mut out = (banks.len() as u32).to_be_bytes().to_vec();
        let mut digests: Vec<Vec<u8>> = Vec::new();
        for (hash, idx, len) in banks {
            out.extend(hash.to_be_bytes());
            out.push(3);
            let mut bitmap = [0u8; 3];
            for index in *idx {
                bitmap[(*index / 8) as usize] |= 1 << (index % 8);
                digests.push(vec![*index as u8 + 1; *len]);
            }
            out.extend(bitmap);
        }
        let lists: Vec<&[Vec<u8>]> = digests.chunks(MAX_DIGESTS_PER_LIST).collect();
        out.extend((lists.len() as u32).to_be_bytes());
        for list in lists {
            out.extend((list.len() as u32).to_be_bytes());
            for d in list {
                out.extend((d.len() as u16).to_be_bytes());
                out.extend(d);
            }
        }
        out
    }

    fn expected(banks: &[(u16, &[u32], usize)]) -> Vec<PcrBank> {
        banks
            .iter()
            .map(|(hash, idx, len)| PcrBank {
                hash: *hash,
                values: idx.iter().map(|i| (*i, vec![*i as u8 + 1; *len])).collect(),
            })
            .collect()
    }

    fn vector(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/tpm2-tools").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn status<'a>(checks: &'a Checks, claim: &str) -> &'a crate::Status {
        &checks.iter().find(|c| c.claim == claim).unwrap_or_else(|| panic!("no {claim} in {checks:#?}")).status
    }

    fn failed(checks: &Checks) -> Vec<&str> {
        checks.iter().filter(|c| matches!(c.status, crate::Status::Failed { .. })).map(|c| c.claim.as_str()).collect()
    }

    /// The committed real tpm2-tools output (testdata/tpm2-tools/README.md) verifies in every
    /// AK form; a wrong nonce, a flipped quote byte and a changed PCR value fail their claims.
    #[test]
    fn committed_tpm2_tools_quotes_verify() {
        let policy = Policy::default();
        let nonce = hex::decode("0123456789abcdef").unwrap();
        let quote = vector("ecc-quote.msg");
        assert!(is_tpms_attest(&quote));
        let pcrs = parse_pcrs(&vector("ecc-pcrs.out"), &quote_selection(&quote)).unwrap();
        assert_eq!(pcrs.form, "serialized");
        assert_eq!(pcrs.selection(), vec![(wire::TPM_ALG_SHA256, SHA256_5.to_vec())]);
        for ak_file in ["ecc-ak.pub", "ecc-ak.pem"] {
            let ak = parse_ak(&vector(ak_file)).unwrap();
            let sig = parse_signature(&vector("ecc-quote.sig"), &ak).unwrap();
            assert_eq!(sig.form, "TPMT_SIGNATURE");
            let checks = appraise(&quote, &sig, &ak, Some(&pcrs), Some(&nonce), &policy);
            assert!(checks.ok(), "{ak_file}: {checks:#?}");
            assert!(matches!(status(&checks, "tpm-pcr-digest"), crate::Status::Passed { .. }));
            assert!(
                matches!(status(&checks, "tpm-ak-binding"), crate::Status::Skipped { reason } if reason.contains("trusted as given"))
            );
            let attrs = status(&checks, "tpm-ak-attributes");
            assert_eq!(matches!(attrs, crate::Status::Passed { .. }), ak_file.ends_with(".pub"), "{attrs:?}");

            let checks = appraise(&quote, &sig, &ak, Some(&pcrs), Some(b"other"), &policy);
            assert_eq!(failed(&checks), ["tpm-qualifying-data"]);
            let mut flipped = quote.clone();
            *flipped.last_mut().unwrap() ^= 1;
            let checks = appraise(&flipped, &sig, &ak, Some(&pcrs), Some(&nonce), &policy);
            assert_eq!(failed(&checks), ["tpm-quote-signature"]);
            let mut other = pcrs.clone();
            other.banks[0].values[4].1[0] ^= 1;
            let checks = appraise(&quote, &sig, &ak, Some(&other), Some(&nonce), &policy);
            assert_eq!(failed(&checks), ["tpm-pcr-digest"]);
        }

        // RSA: TPM2B_PUBLIC and PEM from tpm2_createak; a plain signature; bare PCR values.
        let quote = vector("rsa-quote.msg");
        let pcrs = parse_pcrs(&vector("rsa-pcrs.values"), &quote_selection(&quote)).unwrap();
        assert_eq!(pcrs.form, "values");
        for ak_file in ["rsa-ak.pub", "rsa-ak.pem"] {
            let ak = parse_ak(&vector(ak_file)).unwrap();
            assert!(matches!(ak.key, PublicKey::Rsa { key_bits: 2048, exponent: 0 | 65537, .. }), "{:?}", ak.key);
            let sig = parse_signature(&vector("rsa-quote.plain.sig"), &ak).unwrap();
            assert_eq!(sig.form, "plain RSASSA (SHA-256 assumed)");
            let checks = appraise(&quote, &sig, &ak, Some(&pcrs), Some(&[0xab]), &policy);
            assert!(checks.ok(), "{ak_file}: {checks:#?}");
        }
        // The ECC signature is no RSA signature.
        let ak = parse_ak(&vector("rsa-ak.pub")).unwrap();
        let e = parse_signature(&vector("ecc-pcrs.out"), &ak).unwrap_err();
        assert!(e.contains("neither a TPMT_SIGNATURE") && e.contains("plain RSA signature (668 bytes"), "{e}");
    }

    const SHA256_5: [u32; 5] = [0, 1, 2, 3, 16];
    const ELEVEN: [u32; 11] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 23];

    #[test]
    fn serialized_marshaled_and_values_forms_parse_to_the_same_banks() {
        for banks in [
            &[(0x000b, &SHA256_5[..], 32)][..],
            &[(0x000b, &ELEVEN[..], 32)], // two digest lists (8 + 3)
            &[(0x0004, &[0, 7][..], 20), (0x000b, &SHA256_5[..], 32)],
        ] {
            let want = expected(banks);
            let selection: Vec<(u16, Vec<u32>)> =
                want.iter().map(|b| (b.hash, b.values.iter().map(|v| v.0).collect())).collect();
            let s = serialized(banks);
            assert_eq!(s.len(), 136 + 532 * s[132] as usize);
            assert_eq!(parse_pcrs(&s, &[]).unwrap(), PcrFile { banks: want.clone(), form: "serialized" });
            assert_eq!(parse_pcrs(&marshaled(banks), &[]).unwrap(), PcrFile { banks: want.clone(), form: "marshaled" });
            let values: Vec<u8> = want.iter().flat_map(|b| b.values.iter().flat_map(|v| v.1.clone())).collect();
            assert_eq!(parse_pcrs(&values, &selection).unwrap(), PcrFile { banks: want, form: "values" });
            // Without the quote's selection, bare values mean nothing.
            assert!(parse_pcrs(&values, &[]).is_err());
        }
    }

    #[test]
    fn inconsistent_pcr_files_are_errors_naming_the_problem() {
        let banks = [(0x000b, &SHA256_5[..], 32)];
        // A digest of the wrong size for its bank.
        let mut s = serialized(&banks);
        s[136 + 4] = 20;
        let e = parse_pcrs(&s, &[]).unwrap_err();
        assert!(e.contains("PCR 0 of bank 0x000b: 20 bytes, expected 32"), "{e}");
        // One value too few.
        let mut s = serialized(&banks);
        s[136] = 4;
        assert!(parse_pcrs(&s, &[]).unwrap_err().contains("4 PCR values for 5 selected PCRs"));
        // More banks than a TPML_PCR_SELECTION holds.
        let mut s = serialized(&banks);
        s[0] = 17;
        assert!(parse_pcrs(&s, &[]).unwrap_err().contains("17 PCR selections"));
        // A trailing byte.
        let mut s = serialized(&banks);
        s.push(0);
        let e = parse_pcrs(&s, &[]).unwrap_err();
        assert!(e.contains("not a tpm2-tools PCR file (669 bytes)") && e.contains("1 digest lists make 668"), "{e}");
    }

    /// Every truncation and a byte flip at every position of each form: an error or a parse,
    /// never a panic.
    #[test]
    fn truncated_and_flipped_pcr_files_never_panic() {
        let banks = [(0x0004, &[0u32, 7][..], 20), (0x000b, &ELEVEN[..], 32)];
        let selection = vec![(0x0004, vec![0, 7]), (0x000b, ELEVEN.to_vec())];
        for file in [serialized(&banks), marshaled(&banks)] {
            for cut in 0..file.len() {
                // 392 bytes are 2 SHA-1 and 11 SHA-256 values: the `values` form of this selection.
                assert_eq!(parse_pcrs(&file[..cut], &selection).is_ok(), cut == 392, "cut {cut}");
            }
            for i in 0..file.len() {
                let mut f = file.clone();
                f[i] ^= 0xff;
                let _ = parse_pcrs(&f, &selection);
            }
        }
    }

    #[test]
    fn truncated_ak_and_signature_files_never_panic() {
        let pem = b"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";
        for cut in 0..pem.len() {
            assert!(parse_ak(&pem[..cut]).is_err());
        }
        let ak = Ak {
            key: PublicKey::EccP256 { x: vec![1; 32], y: vec![2; 32], scheme: 0x0018, scheme_hash: 0x000b },
            public: None,
            form: "test",
        };
        let mut sig = vec![0x00, 0x18, 0x00, 0x0b, 0x00, 0x20];
        sig.extend([7; 32]);
        sig.extend([0x00, 0x20]);
        sig.extend([9; 32]);
        assert!(matches!(parse_signature(&sig, &ak).unwrap().sig, Signature::Ecdsa { hash: 0x000b, .. }));
        for cut in 0..sig.len() {
            let e = parse_signature(&sig[..cut], &ak).unwrap_err();
            assert!(e.contains("TPMT_SIGNATURE") && e.contains("plain DER ECDSA"), "{e}");
        }
    }
}
