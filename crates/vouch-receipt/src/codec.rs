//! Strict DAG-CBOR decoding shared by job specs and receipts, in the steps verification reports
//! one by one: size and DAG-CBOR ([`parse`]), version ([`check_version`]), schema
//! ([`from_ipld`]), canonical form ([`check_canonical`]). [`decode`] chains them.

use cid::Cid;
use ipld_core::ipld::Ipld;
use multihash::Multihash;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::Error;

/// Multicodec code of DAG-CBOR.
pub(crate) const DAG_CBOR: u64 = 0x71;
/// Multicodec code of SHA2-256.
const SHA2_256: u64 = 0x12;

/// The encoded object a decoding step is about.
pub(crate) struct Format {
    pub what: &'static str,
    pub max_bytes: usize,
    pub version: u64,
}

pub(crate) const SPEC: Format =
    Format { what: "job spec", max_bytes: crate::MAX_SPEC_BYTES, version: crate::SPEC_VERSION };
pub(crate) const RECEIPT: Format =
    Format { what: "receipt", max_bytes: crate::MAX_RECEIPT_BYTES, version: crate::RECEIPT_VERSION };

/// CIDv1, dag-cbor, sha2-256 of `bytes`: the CID of a job spec or a receipt.
pub(crate) fn cid_of(bytes: &[u8]) -> Cid {
    let digest = Sha256::digest(bytes);
    // Cannot fail: a 32-byte digest fits a 64-byte multihash.
    let mh = Multihash::<64>::wrap(SHA2_256, &digest).expect("32-byte digest fits");
    Cid::new_v1(DAG_CBOR, mh)
}

/// The canonical DAG-CBOR encoding of `value` (the bytes `serde_ipld_dagcbor::to_vec` gives,
/// written faster: see [`crate::cbor`]).
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    encode_into(value, &mut out);
    out
}

/// [`encode`], appended to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Cannot fail: our types hold only integers, booleans, strings, byte strings, CIDs, lists
    // and string-keyed maps, all of which DAG-CBOR encodes, and writing to a Vec cannot fail.
    crate::cbor::encode_into(value, out).expect("DAG-CBOR can encode every value of this crate")
}

/// Size limit, then one strict DAG-CBOR value.
pub(crate) fn parse(f: &Format, bytes: &[u8]) -> Result<Ipld, Error> {
    if bytes.len() > f.max_bytes {
        return Err(Error::TooLarge { what: f.what, len: bytes.len(), max: f.max_bytes });
    }
    serde_ipld_dagcbor::from_slice::<Ipld>(bytes).map_err(|e| Error::DagCbor { what: f.what, reason: e.to_string() })
}

fn kind(i: &Ipld) -> &'static str {
    match i {
        Ipld::Null => "null",
        Ipld::Bool(_) => "a boolean",
        Ipld::Integer(_) => "an integer",
        Ipld::Float(_) => "a float",
        Ipld::String(_) => "a string",
        Ipld::Bytes(_) => "a byte string",
        Ipld::List(_) => "a list",
        Ipld::Map(_) => "a map",
        Ipld::Link(_) => "a CID",
    }
}

/// The top level is a map whose `version` is the one this build reads. Checked before the
/// schema, so a newer version is reported as such rather than as unknown fields.
pub(crate) fn check_version(f: &Format, value: &Ipld) -> Result<(), Error> {
    let found = match value {
        Ipld::Map(m) => match m.get("version") {
            Some(Ipld::Integer(v)) if *v == i128::from(f.version) => return Ok(()),
            Some(Ipld::Integer(v)) => v.to_string(),
            Some(other) => format!("{} (not an integer)", kind(other)),
            None => "no `version` field".to_string(),
        },
        other => format!("no `version` field (the top level is {}, not a map)", kind(other)),
    };
    Err(Error::UnsupportedVersion { what: f.what, found, supported: f.version })
}

/// Deserialize `value` into `T`, naming the field path on failure.
pub(crate) fn from_ipld<T: DeserializeOwned>(f: &Format, value: Ipld) -> Result<T, Error> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let reason = e.inner().to_string();
        // ipld-core prefixes every message with "serde error: ", which says nothing here.
        let reason = reason.strip_prefix("serde error: ").unwrap_or(&reason).to_string();
        schema_error(f, e.path().to_string(), reason)
    })
}

pub(crate) fn schema_error(f: &Format, path: String, reason: String) -> Error {
    Error::Schema { what: f.what, path, reason }
}

/// `given` must be exactly the canonical encoding of what it decoded to.
pub(crate) fn check_canonical(f: &Format, canonical: &[u8], given: &[u8]) -> Result<(), Error> {
    if canonical == given {
        return Ok(());
    }
    let offset = canonical.iter().zip(given).position(|(a, b)| a != b).unwrap_or(canonical.len().min(given.len()));
    Err(Error::NonCanonical { what: f.what, offset, len: given.len(), canonical_len: canonical.len() })
}

/// All four steps: the strict decoder behind `JobSpec::decode` and `Receipt::decode`.
pub(crate) fn decode<T>(
    f: &Format,
    bytes: &[u8],
    from: impl FnOnce(Ipld) -> Result<T, Error>,
    encode: impl FnOnce(&T) -> Vec<u8>,
) -> Result<T, Error> {
    let value = parse(f, bytes)?;
    check_version(f, &value)?;
    let decoded = from(value)?;
    check_canonical(f, &encode(&decoded), bytes)?;
    Ok(decoded)
}
