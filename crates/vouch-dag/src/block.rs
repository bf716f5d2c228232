//! Blocks: hashing, verification, codecs and link extraction.

use cid::Cid;
use multihash::Multihash;
use sha2::{Digest, Sha256};

use crate::DagError;

/// Multicodec of dag-pb (the UnixFS container).
pub const DAG_PB: u64 = 0x70;
/// Multicodec of raw bytes.
pub const RAW: u64 = 0x55;
/// Multicodec of dag-cbor.
pub const DAG_CBOR: u64 = 0x71;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of the identity "hash" (the data is inlined in the CID).
pub const IDENTITY: u64 = 0x00;

/// Largest block Vouch accepts from outside (CAR import, `block put`), as Kubo and bitswap do.
pub const MAX_BLOCK_SIZE: usize = 2 * 1024 * 1024;

/// SHA-256 of `data` as a multihash.
pub fn sha256_multihash(data: &[u8]) -> Multihash<64> {
    let digest = Sha256::digest(data);
    // Cannot fail: 32 bytes fit the 64-byte multihash.
    Multihash::wrap(SHA2_256, &digest).expect("32-byte digest fits")
}

/// The CID of `data` under `codec`: CIDv0 when `v0` (dag-pb only), else CIDv1; sha2-256.
pub fn cid_of(codec: u64, data: &[u8], v0: bool) -> Cid {
    let mh = sha256_multihash(data);
    if v0 && codec == DAG_PB {
        // Cannot fail: v0 requires dag-pb + sha2-256, which is what we have.
        Cid::new_v0(mh).expect("dag-pb sha2-256")
    } else {
        Cid::new_v1(codec, mh)
    }
}

/// Hash `data` with the function named by `cid`'s multihash and compare.
pub fn verify(cid: &Cid, data: &[u8]) -> Result<(), DagError> {
    let mh = cid.hash();
    let found: Multihash<64> = match mh.code() {
        SHA2_256 => sha256_multihash(data),
        IDENTITY => Multihash::wrap(IDENTITY, data)
            .map_err(|_| DagError::HashMismatch { cid: *cid, found: "identity data longer than 64 bytes".into() })?,
        code => return Err(DagError::UnsupportedHash { cid: *cid, code }),
    };
    if found.digest() == mh.digest() {
        Ok(())
    } else {
        Err(DagError::HashMismatch { cid: *cid, found: hex_string(found.digest()) })
    }
}

/// Parse a CID string (CIDv0 base58btc or multibase CIDv1) into a [`Cid`] with a message that
/// names the input.
pub fn parse_cid(s: &str) -> Result<Cid, DagError> {
    let bad = |reason: String| DagError::InvalidCid { input: s.to_string(), reason };
    // Decoded here rather than with `str::parse::<Cid>`, which accepts bytes after the CID and
    // any text before an "/ipfs/"; go-cid (Kubo) rejects both.
    let bytes = if s.len() == 46 && s.starts_with("Qm") {
        cid::multibase::Base::Base58Btc.decode(s).map_err(|e| bad(e.to_string()))?
    } else {
        cid::multibase::decode(s).map_err(|e| bad(e.to_string()))?.1
    };
    let mut rest = &bytes[..];
    let cid = Cid::read_bytes(&mut rest).map_err(|e| bad(e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad(format!("{} bytes after the CID", rest.len())));
    }
    Ok(cid)
}

/// The CIDs a block links to, by codec. Raw blocks have none.
pub fn links(cid: &Cid, data: &[u8]) -> Result<Vec<Cid>, DagError> {
    match cid.codec() {
        RAW => Ok(Vec::new()),
        DAG_PB => Ok(crate::dagpb::PbNode::decode(cid, data)?.links.into_iter().map(|l| l.cid).collect()),
        DAG_CBOR => {
            let ipld: ipld_core::ipld::Ipld = serde_ipld_dagcbor::from_slice(data)
                .map_err(|e| DagError::InvalidDagCbor { cid: *cid, reason: e.to_string() })?;
            let mut out = Vec::new();
            collect_cbor_links(&ipld, &mut out);
            Ok(out)
        }
        codec => Err(DagError::UnsupportedCodec { cid: *cid, codec }),
    }
}

fn collect_cbor_links(ipld: &ipld_core::ipld::Ipld, out: &mut Vec<Cid>) {
    use ipld_core::ipld::Ipld;
    match ipld {
        Ipld::Link(c) => out.push(*c),
        Ipld::List(items) => items.iter().for_each(|i| collect_cbor_links(i, out)),
        Ipld::Map(m) => m.values().for_each(|i| collect_cbor_links(i, out)),
        _ => {}
    }
}

pub(crate) fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
