//! dag-pb nodes (the container UnixFS lives in), encoded and decoded in the canonical form the
//! dag-pb spec requires: links before data, link fields in order, no unknown fields.

use cid::Cid;

use crate::DagError;
use crate::pb::{self, Reader, WT_LEN, WT_VARINT};

/// A dag-pb link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbLink {
    pub cid: Cid,
    /// `None` when the field is absent; Kubo always writes it (empty for file chunks).
    pub name: Option<String>,
    /// Cumulative size of the linked DAG: the block and everything under it.
    pub tsize: Option<u64>,
}

impl PbLink {
    pub fn new(cid: Cid, name: impl Into<String>, tsize: u64) -> Self {
        PbLink { cid, name: Some(name.into()), tsize: Some(tsize) }
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }

    /// Encoded size of this link as a PBNode field, including its key and length prefix.
    pub(crate) fn encoded_len(&self) -> usize {
        let body = self.body_len();
        1 + pb::varint_len(body as u64) + body
    }

    fn body_len(&self) -> usize {
        let cid_len = self.cid.encoded_len();
        let mut n = 1 + pb::varint_len(cid_len as u64) + cid_len;
        if let Some(name) = &self.name {
            n += 1 + pb::varint_len(name.len() as u64) + name.len();
        }
        if let Some(t) = self.tsize {
            n += 1 + pb::varint_len(t);
        }
        n
    }
}

/// A decoded dag-pb node; `data` borrows from the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbNode<'a> {
    pub links: Vec<PbLink>,
    pub data: Option<&'a [u8]>,
}

/// Encode a dag-pb node. Links are written in the order given; callers sort them when the format
/// asks for it (directories: by name).
pub fn encode(links: &[PbLink], data: Option<&[u8]>) -> Vec<u8> {
    let cap = links.iter().map(PbLink::encoded_len).sum::<usize>()
        + data.map_or(0, |d| 1 + pb::varint_len(d.len() as u64) + d.len());
    let mut out = Vec::with_capacity(cap);
    let mut cid_buf = Vec::with_capacity(64);
    for link in links {
        pb::put_key(&mut out, 2, WT_LEN);
        pb::put_varint(&mut out, link.body_len() as u64);
        cid_buf.clear();
        // Cannot fail: writing into a Vec.
        link.cid.write_bytes(&mut cid_buf).expect("write to Vec");
        pb::put_bytes(&mut out, 1, &cid_buf);
        if let Some(name) = &link.name {
            pb::put_bytes(&mut out, 2, name.as_bytes());
        }
        if let Some(t) = link.tsize {
            pb::put_u64(&mut out, 3, t);
        }
    }
    if let Some(d) = data {
        pb::put_bytes(&mut out, 1, d);
    }
    debug_assert_eq!(out.len(), cap);
    out
}

impl<'a> PbNode<'a> {
    /// Decode strictly; `cid` only names the block in errors.
    pub fn decode(cid: &Cid, bytes: &'a [u8]) -> Result<Self, DagError> {
        let err = |r: &str| DagError::pb(cid, r);
        let mut r = Reader::new(bytes);
        let mut links = Vec::new();
        let mut data = None;
        while !r.done() {
            let (field, wt) = r.key().map_err(err)?;
            match (field, wt) {
                (2, WT_LEN) => {
                    if data.is_some() {
                        return Err(err("a link follows the data field"));
                    }
                    let body = r.bytes().map_err(err)?;
                    links.push(decode_link(cid, body)?);
                }
                (1, WT_LEN) => {
                    if data.is_some() {
                        return Err(err("duplicate data field"));
                    }
                    data = Some(r.bytes().map_err(err)?);
                }
                _ => return Err(err(&format!("unexpected field {field} (wire type {wt})"))),
            }
        }
        Ok(PbNode { links, data })
    }
}

fn decode_link(cid: &Cid, body: &[u8]) -> Result<PbLink, DagError> {
    let err = |r: &str| DagError::pb(cid, format!("link: {r}"));
    let mut r = Reader::new(body);
    let mut hash = None;
    let mut name = None;
    let mut tsize = None;
    let mut last = 0;
    while !r.done() {
        let (field, wt) = r.key().map_err(err)?;
        if field <= last {
            return Err(err("fields out of order or repeated"));
        }
        last = field;
        match (field, wt) {
            (1, WT_LEN) => {
                let mut b = r.bytes().map_err(err)?;
                // Cid::try_from would ignore bytes after the CID; the canonical form has none.
                hash = Some(Cid::read_bytes(&mut b).map_err(|e| err(&format!("bad CID: {e}")))?);
                if !b.is_empty() {
                    return Err(err("bytes after the CID in Hash"));
                }
            }
            (2, WT_LEN) => {
                let b = r.bytes().map_err(err)?;
                name = Some(String::from_utf8(b.to_vec()).map_err(|_| err("name is not UTF-8"))?);
            }
            (3, WT_VARINT) => tsize = Some(r.varint().map_err(err)?),
            _ => return Err(err(&format!("unexpected field {field} (wire type {wt})"))),
        }
    }
    let cid = hash.ok_or_else(|| err("missing Hash"))?;
    Ok(PbLink { cid, name, tsize })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{DAG_PB, cid_of};

    fn some_cid() -> Cid {
        cid_of(DAG_PB, b"x", true)
    }

    #[test]
    fn encode_decode_round_trip() {
        let links = vec![PbLink::new(some_cid(), "a", 10), PbLink { cid: some_cid(), name: None, tsize: None }];
        let bytes = encode(&links, Some(b"\x08\x01"));
        let node = PbNode::decode(&some_cid(), &bytes).unwrap();
        assert_eq!(node.links, links);
        assert_eq!(node.data, Some(&b"\x08\x01"[..]));
    }

    #[test]
    fn empty_directory_block_is_kubos() {
        // The empty UnixFS directory: CID QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn, known
        // from every IPFS implementation.
        let bytes = encode(&[], Some(b"\x08\x01"));
        assert_eq!(bytes, b"\x0a\x02\x08\x01");
        assert_eq!(cid_of(DAG_PB, &bytes, true).to_string(), "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
    }

    #[test]
    fn rejects_non_canonical() {
        let c = some_cid();
        // data before links
        let mut b = encode(&[], Some(b"x"));
        b.extend(encode(&[PbLink::new(c, "a", 1)], None));
        assert!(PbNode::decode(&c, &b).unwrap_err().to_string().contains("a link follows the data"));
        // unknown field
        assert!(PbNode::decode(&c, &[0x18, 0x01]).unwrap_err().to_string().contains("unexpected field 3"));
        // truncated
        assert!(PbNode::decode(&c, &[0x0a, 0x05, 0x01]).is_err());
    }
}
