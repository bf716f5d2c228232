//! The UnixFS `Data` message carried in a dag-pb node's data field.

use cid::Cid;

use crate::DagError;
use crate::pb::{self, Reader, WT_I32, WT_LEN, WT_VARINT};

/// UnixFS node types, with their protobuf numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    Raw = 0,
    Directory = 1,
    File = 2,
    Metadata = 3,
    Symlink = 4,
    HamtShard = 5,
}

impl DataType {
    fn from_u64(v: u64) -> Option<Self> {
        Some(match v {
            0 => DataType::Raw,
            1 => DataType::Directory,
            2 => DataType::File,
            3 => DataType::Metadata,
            4 => DataType::Symlink,
            5 => DataType::HamtShard,
            _ => return None,
        })
    }
}

/// A decoded UnixFS `Data` message; `data` borrows from the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixFs<'a> {
    pub kind: DataType,
    pub data: Option<&'a [u8]>,
    pub filesize: Option<u64>,
    pub blocksizes: Vec<u64>,
    pub hash_type: Option<u64>,
    pub fanout: Option<u64>,
    pub mode: Option<u32>,
    /// (seconds, nanoseconds)
    pub mtime: Option<(i64, u32)>,
}

impl<'a> UnixFs<'a> {
    pub fn new(kind: DataType) -> Self {
        UnixFs {
            kind,
            data: None,
            filesize: None,
            blocksizes: Vec::new(),
            hash_type: None,
            fanout: None,
            mode: None,
            mtime: None,
        }
    }

    /// Encode in field-number order, as Kubo (gogo-protobuf, proto2, unpacked repeated) does.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.data.map_or(0, <[u8]>::len) + 10 * self.blocksizes.len());
        pb::put_u64(&mut out, 1, self.kind as u64);
        if let Some(d) = self.data {
            pb::put_bytes(&mut out, 2, d);
        }
        if let Some(s) = self.filesize {
            pb::put_u64(&mut out, 3, s);
        }
        for b in &self.blocksizes {
            pb::put_u64(&mut out, 4, *b);
        }
        if let Some(h) = self.hash_type {
            pb::put_u64(&mut out, 5, h);
        }
        if let Some(f) = self.fanout {
            pb::put_u64(&mut out, 6, f);
        }
        if let Some(m) = self.mode {
            pb::put_u64(&mut out, 7, u64::from(m));
        }
        if let Some((secs, nanos)) = self.mtime {
            let mut t = Vec::new();
            pb::put_u64(&mut t, 1, secs as u64);
            if nanos != 0 {
                pb::put_key(&mut t, 2, WT_I32);
                t.extend_from_slice(&nanos.to_le_bytes());
            }
            pb::put_bytes(&mut out, 8, &t);
        }
        out
    }

    /// Decode; `cid` only names the block in errors. Unknown fields are skipped (UnixFS is
    /// extensible), known fields with the wrong wire type are errors.
    pub fn decode(cid: &Cid, bytes: &'a [u8]) -> Result<Self, DagError> {
        let err = |r: &str| DagError::ufs(cid, r);
        let mut r = Reader::new(bytes);
        let mut kind = None;
        let mut out = UnixFs::new(DataType::Raw);
        while !r.done() {
            let (field, wt) = r.key().map_err(err)?;
            match (field, wt) {
                (1, WT_VARINT) => {
                    let v = r.varint().map_err(err)?;
                    kind = Some(DataType::from_u64(v).ok_or_else(|| err(&format!("unknown type {v}")))?);
                }
                (2, WT_LEN) => out.data = Some(r.bytes().map_err(err)?),
                (3, WT_VARINT) => out.filesize = Some(r.varint().map_err(err)?),
                (4, WT_VARINT) => out.blocksizes.push(r.varint().map_err(err)?),
                (4, WT_LEN) => {
                    let mut packed = Reader::new(r.bytes().map_err(err)?);
                    while !packed.done() {
                        out.blocksizes.push(packed.varint().map_err(err)?);
                    }
                }
                (5, WT_VARINT) => out.hash_type = Some(r.varint().map_err(err)?),
                (6, WT_VARINT) => out.fanout = Some(r.varint().map_err(err)?),
                (7, WT_VARINT) => {
                    let m = r.varint().map_err(err)?;
                    out.mode = Some(u32::try_from(m).map_err(|_| err("mode does not fit 32 bits"))?);
                }
                (8, WT_LEN) => out.mtime = Some(decode_time(r.bytes().map_err(err)?).map_err(err)?),
                (1..=8, _) => return Err(err(&format!("field {field} has wire type {wt}"))),
                (_, wt) => r.skip(wt).map_err(err)?,
            }
        }
        out.kind = kind.ok_or_else(|| err("missing Type"))?;
        Ok(out)
    }
}

fn decode_time(bytes: &[u8]) -> Result<(i64, u32), &'static str> {
    let mut r = Reader::new(bytes);
    let (mut secs, mut nanos) = (0i64, 0u32);
    while !r.done() {
        match r.key()? {
            (1, WT_VARINT) => secs = r.varint()? as i64,
            (2, WT_I32) => {
                let b = r.fixed(4)?;
                nanos = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            (_, wt) => r.skip(wt)?,
        }
    }
    Ok((secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{DAG_PB, cid_of};

    #[test]
    fn round_trip_all_fields() {
        let mut u = UnixFs::new(DataType::HamtShard);
        u.data = Some(b"\x01\x02");
        u.filesize = Some(7);
        u.blocksizes = vec![3, 4];
        u.hash_type = Some(0x22);
        u.fanout = Some(256);
        u.mode = Some(0o644);
        u.mtime = Some((1_700_000_000, 5));
        let bytes = u.encode();
        assert_eq!(UnixFs::decode(&cid_of(DAG_PB, b"", true), &bytes).unwrap(), u);
    }

    #[test]
    fn rejects_missing_type_and_unknown_type() {
        let c = cid_of(DAG_PB, b"", true);
        assert!(UnixFs::decode(&c, &[0x18, 0x00]).unwrap_err().to_string().contains("missing Type"));
        assert!(UnixFs::decode(&c, &[0x08, 0x09]).unwrap_err().to_string().contains("unknown type 9"));
    }
}
