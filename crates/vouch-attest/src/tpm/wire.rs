//! The few TPM 2.0 wire structures a quote verifier reads (TPMS_ATTEST, TPMT_SIGNATURE,
//! TPM2B_PUBLIC), parsed with `tpm2-protocol`, which checks every length against its buffer and
//! returns an error rather than panicking on hostile bytes.

use sha2::{Digest, Sha256};
use tpm2_protocol::TpmUnmarshal;
use tpm2_protocol::data::{
    Tpm2bPublic, TpmAlgId, TpmEccCurve, TpmSt, TpmaObject, TpmlDigest, TpmlPcrSelection, TpmsAttest, TpmtSignature,
    TpmuAttest, TpmuPublicId, TpmuPublicParms, TpmuSignature, TpmuSymKeyBits, TpmuSymMode,
};

/// `TPM_GENERATED_VALUE`: the first four bytes of every structure the TPM signs.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_ALG_SHA256`.
pub const TPM_ALG_SHA256: u16 = 0x000b;

/// A parsed attestation key (or EK) public area.
#[derive(Clone, Debug)]
pub struct PublicArea {
    /// The `TPMT_PUBLIC` bytes (the TPM2B contents): the key's name is computed over them.
    pub tpmt_bytes: Vec<u8>,
    /// `TPMA_OBJECT` bits.
    pub attributes: u32,
    pub name_alg: u16,
    /// The storage symmetric algorithm (restricted decryption keys such as an EK): true for
    /// AES-128-CFB, the only one `make_credential` implements.
    pub symmetric_aes128_cfb: bool,
    pub key: PublicKey,
}

/// The key material of a [`PublicArea`].
#[derive(Clone, Debug)]
pub enum PublicKey {
    /// NIST P-256 point, and the signing scheme's hash (`TPM_ALG_NULL` = 0x0010 when unset).
    EccP256 { x: Vec<u8>, y: Vec<u8>, scheme: u16, scheme_hash: u16 },
    /// RSA modulus and exponent (0 in the TPM means 65537).
    Rsa { modulus: Vec<u8>, exponent: u32, key_bits: u16, scheme: u16, scheme_hash: u16 },
    /// Anything else: named for the error message.
    Other(String),
}

impl PublicArea {
    /// The TPM name of this object: `nameAlg ‖ H_nameAlg(TPMT_PUBLIC)`. Only SHA-256 names.
    pub fn name(&self) -> Result<Vec<u8>, String> {
        if self.name_alg != TPM_ALG_SHA256 {
            return Err(format!("nameAlg 0x{:04x} (only SHA-256 names are supported)", self.name_alg));
        }
        let mut name = TPM_ALG_SHA256.to_be_bytes().to_vec();
        name.extend_from_slice(&Sha256::digest(&self.tpmt_bytes));
        Ok(name)
    }
}

fn alg(a: TpmAlgId) -> u16 {
    a as u16
}

/// Parse `TPM2B_PUBLIC` bytes (two-byte size, then `TPMT_PUBLIC`); no trailing bytes allowed.
pub fn parse_public(bytes: &[u8]) -> Result<PublicArea, String> {
    let (public, rest) = Tpm2bPublic::unmarshal(bytes).map_err(|e| format!("TPM2B_PUBLIC: {e:?}"))?;
    if !rest.is_empty() {
        return Err(format!("TPM2B_PUBLIC: {} trailing bytes", rest.len()));
    }
    let tpmt_bytes = bytes[2..].to_vec();
    let p = public.inner;
    let symmetric = match &p.parameters {
        TpmuPublicParms::Ecc(params) => Some(params.symmetric),
        TpmuPublicParms::Rsa(params) => Some(params.symmetric),
        _ => None,
    };
    let symmetric_aes128_cfb = symmetric.is_some_and(|s| {
        s.algorithm == TpmAlgId::Aes
            && matches!(s.key_bits, TpmuSymKeyBits::Aes(bits) if bits.value() == 128)
            && matches!(s.mode, TpmuSymMode::Aes(TpmAlgId::Cfb))
    });
    let key = match (&p.parameters, &p.unique) {
        (TpmuPublicParms::Ecc(params), TpmuPublicId::Ecc(point)) => {
            if params.curve_id == TpmEccCurve::NistP256 {
                PublicKey::EccP256 {
                    x: point.x.to_vec(),
                    y: point.y.to_vec(),
                    scheme: alg(params.scheme.scheme),
                    scheme_hash: scheme_hash(&params.scheme.details),
                }
            } else {
                PublicKey::Other(format!("ECC curve {:?}", params.curve_id))
            }
        }
        (TpmuPublicParms::Rsa(params), TpmuPublicId::Rsa(modulus)) => PublicKey::Rsa {
            modulus: modulus.to_vec(),
            exponent: params.exponent.value(),
            key_bits: params.key_bits.value(),
            scheme: alg(params.scheme.scheme),
            scheme_hash: scheme_hash(&params.scheme.details),
        },
        _ => PublicKey::Other(format!("object type {:?}", p.object_type)),
    };
    Ok(PublicArea {
        tpmt_bytes,
        attributes: p.object_attributes.bits(),
        name_alg: alg(p.name_alg),
        symmetric_aes128_cfb,
        key,
    })
}

fn scheme_hash(details: &tpm2_protocol::data::TpmuAsymScheme) -> u16 {
    use tpm2_protocol::data::TpmuAsymScheme as S;
    match details {
        S::Hash(h) => alg(h.hash_alg),
        S::Null => alg(TpmAlgId::Null),
    }
}

/// Attribute names for messages.
pub fn describe_attributes(bits: u32) -> String {
    const NAMES: [(u32, &str); 11] = [
        (0x0000_0002, "fixedTPM"),
        (0x0000_0004, "stClear"),
        (0x0000_0010, "fixedParent"),
        (0x0000_0020, "sensitiveDataOrigin"),
        (0x0000_0040, "userWithAuth"),
        (0x0000_0080, "adminWithPolicy"),
        (0x0000_0400, "noDA"),
        (0x0000_0800, "encryptedDuplication"),
        (0x0001_0000, "restricted"),
        (0x0002_0000, "decrypt"),
        (0x0004_0000, "sign"),
    ];
    let names: Vec<&str> = NAMES.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect();
    format!("0x{bits:08x} ({})", names.join("|"))
}

/// The attributes a quote-signing AK must have, and the one it must not.
pub const AK_REQUIRED: u32 = TpmaObject::FIXED_TPM.bits()
    | TpmaObject::FIXED_PARENT.bits()
    | TpmaObject::SENSITIVE_DATA_ORIGIN.bits()
    | TpmaObject::RESTRICTED.bits()
    | TpmaObject::SIGN_ENCRYPT.bits();
pub const AK_FORBIDDEN: u32 = TpmaObject::DECRYPT.bits();

/// A parsed `TPMT_SIGNATURE`.
#[derive(Clone, Debug)]
pub enum Signature {
    /// ECDSA: hash algorithm, r, s (big-endian, as the TPM sent them).
    Ecdsa { hash: u16, r: Vec<u8>, s: Vec<u8> },
    /// RSASSA-PKCS1-v1_5: hash algorithm and signature.
    Rsassa { hash: u16, sig: Vec<u8> },
    /// Anything else: named for the error message.
    Other(String),
}

/// Parse `TPMT_SIGNATURE` bytes; no trailing bytes allowed.
pub fn parse_signature(bytes: &[u8]) -> Result<Signature, String> {
    let (sig, rest) = TpmtSignature::unmarshal(bytes).map_err(|e| format!("TPMT_SIGNATURE: {e:?}"))?;
    if !rest.is_empty() {
        return Err(format!("TPMT_SIGNATURE: {} trailing bytes", rest.len()));
    }
    Ok(match sig.signature {
        TpmuSignature::Ecdsa(e) => {
            Signature::Ecdsa { hash: alg(e.hash), r: e.signature_r.to_vec(), s: e.signature_s.to_vec() }
        }
        TpmuSignature::Rsassa(r) => Signature::Rsassa { hash: alg(r.hash), sig: r.sig.to_vec() },
        _ => Signature::Other(format!("{:?}", sig.sig_alg)),
    })
}

/// The parts of a `TPMS_ATTEST` quote a verifier checks.
#[derive(Clone, Debug)]
pub struct Quote {
    pub extra_data: Vec<u8>,
    /// (hash algorithm, selected PCR indices in ascending order) per bank, in quote order.
    pub selections: PcrSelection,
    pub pcr_digest: Vec<u8>,
    pub clock: u64,
    pub reset_count: u32,
    pub restart_count: u32,
}

/// The raw magic and type: the first six bytes of a `TPMS_ATTEST`.
pub fn magic_and_type(bytes: &[u8]) -> Option<(u32, u16)> {
    let magic = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?);
    let st = u16::from_be_bytes(bytes.get(4..6)?.try_into().ok()?);
    Some((magic, st))
}

/// A PCR selection: per bank, its hash algorithm and the selected PCR indices, ascending.
pub type PcrSelection = Vec<(u16, Vec<u32>)>;

/// A `TPML_PCR_SELECTION` as a [`PcrSelection`].
fn selections(list: &TpmlPcrSelection) -> PcrSelection {
    list.iter().map(|sel| (alg(sel.hash), pcr_indices(&sel.pcr_select))).collect()
}

/// The PCR indices set in a `pcrSelect` bitmap, ascending.
pub fn pcr_indices(bitmap: &[u8]) -> Vec<u32> {
    let mut indices = Vec::new();
    for (byte_index, byte) in bitmap.iter().enumerate() {
        for bit in 0..8u32 {
            if byte & (1 << bit) != 0 {
                indices.push(byte_index as u32 * 8 + bit);
            }
        }
    }
    indices
}

/// Parse tpm2-tools' `-F marshaled` PCR file: a `TPML_PCR_SELECTION`, a big-endian count of
/// `TPML_DIGEST`s, then those lists; no trailing bytes allowed. The selection per bank, and
/// the digests in file order.
pub fn parse_marshaled_pcrs(bytes: &[u8]) -> Result<(PcrSelection, Vec<Vec<u8>>), String> {
    let (list, rest) = TpmlPcrSelection::unmarshal(bytes).map_err(|e| format!("TPML_PCR_SELECTION: {e:?}"))?;
    let (count, mut rest) = rest.split_first_chunk::<4>().ok_or("truncated before the count of digest lists")?;
    let mut digests = Vec::new();
    // Each list is at least four bytes, so a huge count fails at the end of `bytes`.
    for i in 0..u32::from_be_bytes(*count) {
        let (digest_list, r) = TpmlDigest::unmarshal(rest).map_err(|e| format!("TPML_DIGEST #{i}: {e:?}"))?;
        digests.extend(digest_list.iter().map(|d| d.to_vec()));
        rest = r;
    }
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok((selections(&list), digests))
}

/// Parse a `TPMS_ATTEST` of type `TPM_ST_ATTEST_QUOTE`; no trailing bytes allowed.
pub fn parse_quote(bytes: &[u8]) -> Result<Quote, String> {
    let (attest, rest) = TpmsAttest::unmarshal(bytes).map_err(|e| format!("TPMS_ATTEST: {e:?}"))?;
    if !rest.is_empty() {
        return Err(format!("TPMS_ATTEST: {} trailing bytes", rest.len()));
    }
    if attest.attest_type != TpmSt::AttestQuote {
        return Err(format!("TPMS_ATTEST of type {:?}, not a quote", attest.attest_type));
    }
    let TpmuAttest::Quote(info) = attest.attested else {
        return Err("TPMS_ATTEST: quote type without TPMS_QUOTE_INFO".into());
    };
    Ok(Quote {
        extra_data: attest.extra_data.to_vec(),
        selections: selections(&info.pcr_select),
        pcr_digest: info.pcr_digest.to_vec(),
        clock: attest.clock_info.clock.value(),
        reset_count: attest.clock_info.reset_count.value(),
        restart_count: attest.clock_info.restart_count.value(),
    })
}
