//! CARv1 (and the CARv1 payload inside a CARv2), as `ipfs dag export` writes and
//! `ipfs dag import` reads it. Streaming in both directions; every block read is verified
//! against its CID before it is handed out.

use std::io::{self, Read, Write};

use cid::Cid;
use ipld_core::ipld::Ipld;

use crate::DagError;
use crate::block::verify;

/// Largest header accepted (go-car's default is 32 MiB; real headers are a few hundred bytes).
pub const MAX_HEADER_SIZE: u64 = 4 * 1024 * 1024;
/// Largest section (CID + block) accepted.
pub const MAX_SECTION_SIZE: u64 = 8 * 1024 * 1024;

/// The CARv2 pragma: a CARv1 header `{version: 2}`.
const V2_PRAGMA: [u8; 11] = [0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02];

fn car_err(msg: impl Into<String>) -> DagError {
    DagError::Car(msg.into())
}

/// Read an unsigned LEB128 varint. `Ok(None)` at a clean end of input (no byte read).
fn read_varint<R: Read>(r: &mut R, what: &str) -> Result<Option<u64>, DagError> {
    let mut v = 0u64;
    for i in 0..10 {
        let mut b = [0u8];
        if r.read(&mut b).map_err(DagError::Io)? == 0 {
            return if i == 0 { Ok(None) } else { Err(car_err(format!("truncated varint in {what}"))) };
        }
        v |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok(Some(v));
        }
    }
    Err(car_err(format!("varint in {what} overflows 64 bits")))
}

fn read_exact<R: Read>(r: &mut R, n: u64, what: &str) -> Result<Vec<u8>, DagError> {
    let mut buf = Vec::with_capacity(n as usize);
    r.take(n).read_to_end(&mut buf).map_err(DagError::Io)?;
    if buf.len() as u64 != n {
        return Err(car_err(format!("truncated {what}: expected {n} bytes, found {}", buf.len())));
    }
    Ok(buf)
}

/// A streaming CAR reader.
pub struct CarReader<R> {
    r: R,
    roots: Vec<Cid>,
    /// Bytes of CARv1 payload left to read (CARv2 bounds the payload; CARv1 runs to EOF).
    remaining: Option<u64>,
    sections: u64,
}

impl<R: Read> CarReader<R> {
    /// Read and check the header.
    pub fn new(mut r: R) -> Result<Self, DagError> {
        let len = read_varint(&mut r, "header length")?.ok_or_else(|| car_err("empty file: no CAR header"))?;
        if len == 0 || len > MAX_HEADER_SIZE {
            return Err(car_err(format!("header length {len} out of range 1..={MAX_HEADER_SIZE}")));
        }
        let head = read_exact(&mut r, len, "header")?;
        let mut remaining = None;
        let head = if [&[len as u8][..], &head].concat() == V2_PRAGMA {
            // CARv2: a 40-byte header then the CARv1 payload at data_offset.
            let h = read_exact(&mut r, 40, "CARv2 header")?;
            let u = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"));
            let (offset, size) = (u(16), u(24));
            let consumed = (V2_PRAGMA.len() + 40) as u64;
            let skip = offset
                .checked_sub(consumed)
                .ok_or_else(|| car_err(format!("CARv2 data offset {offset} inside the header")))?;
            io::copy(&mut (&mut r).take(skip), &mut io::sink()).map_err(DagError::Io)?;
            let inner_len =
                read_varint(&mut r, "CARv2 inner header length")?.ok_or_else(|| car_err("CARv2 payload is empty"))?;
            if inner_len == 0 || inner_len > MAX_HEADER_SIZE {
                return Err(car_err(format!("inner header length {inner_len} out of range")));
            }
            let inner = read_exact(&mut r, inner_len, "CARv2 inner header")?;
            let used = unsigned_varint::encode::u64(inner_len, &mut [0; 10]).len() as u64 + inner_len;
            remaining = Some(size.checked_sub(used).ok_or_else(|| car_err("CARv2 data size smaller than its header"))?);
            inner
        } else {
            head
        };
        let roots = parse_header(&head)?;
        Ok(CarReader { r, roots, remaining, sections: 0 })
    }

    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The next verified block, or `None` at the end.
    pub fn next_block(&mut self) -> Result<Option<(Cid, Vec<u8>)>, DagError> {
        if self.remaining == Some(0) {
            return Ok(None);
        }
        let index = self.sections;
        let what = format!("section {index}");
        let Some(len) = read_varint(&mut self.r, &what)? else {
            return match self.remaining {
                Some(n) => Err(car_err(format!("truncated CARv2 payload: {n} bytes missing"))),
                None => Ok(None),
            };
        };
        if len == 0 {
            return Err(car_err(format!("{what} has length zero")));
        }
        if len > MAX_SECTION_SIZE {
            return Err(car_err(format!("{what} is {len} bytes, larger than the {MAX_SECTION_SIZE} allowed")));
        }
        let body = read_exact(&mut self.r, len, &what)?;
        if let Some(rem) = self.remaining.as_mut() {
            let used = unsigned_varint::encode::u64(len, &mut [0; 10]).len() as u64 + len;
            *rem = rem.checked_sub(used).ok_or_else(|| car_err(format!("{what} runs past the CARv2 payload")))?;
        }
        let mut cur = io::Cursor::new(&body[..]);
        let cid = Cid::read_bytes(&mut cur).map_err(|e| car_err(format!("{what}: bad CID: {e}")))?;
        let data = body[cur.position() as usize..].to_vec();
        verify(&cid, &data)?;
        self.sections += 1;
        Ok(Some((cid, data)))
    }
}

impl<R: Read> Iterator for CarReader<R> {
    type Item = Result<(Cid, Vec<u8>), DagError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_block().transpose()
    }
}

fn parse_header(bytes: &[u8]) -> Result<Vec<Cid>, DagError> {
    let ipld: Ipld =
        serde_ipld_dagcbor::from_slice(bytes).map_err(|e| car_err(format!("header is not DAG-CBOR: {e}")))?;
    let Ipld::Map(map) = ipld else { return Err(car_err("header is not a map")) };
    match map.get("version") {
        Some(Ipld::Integer(1)) => {}
        Some(Ipld::Integer(v)) => return Err(car_err(format!("unsupported CAR version {v}"))),
        _ => return Err(car_err("header has no integer version")),
    }
    let Some(Ipld::List(roots)) = map.get("roots") else { return Err(car_err("header has no roots list")) };
    roots
        .iter()
        .map(|r| match r {
            Ipld::Link(c) => Ok(*c),
            _ => Err(car_err("a root is not a CID")),
        })
        .collect()
}

/// Encode a CARv1 header for `roots`.
pub fn encode_header(roots: &[Cid]) -> Vec<u8> {
    let map = Ipld::Map(
        [
            ("roots".to_string(), Ipld::List(roots.iter().map(|c| Ipld::Link(*c)).collect())),
            ("version".to_string(), Ipld::Integer(1)),
        ]
        .into_iter()
        .collect(),
    );
    // Cannot fail: links, lists, strings and integers always encode.
    serde_ipld_dagcbor::to_vec(&map).expect("header encodes")
}

/// A streaming CARv1 writer.
pub struct CarWriter<W> {
    w: W,
    cid_buf: Vec<u8>,
}

impl<W: Write> CarWriter<W> {
    pub fn new(mut w: W, roots: &[Cid]) -> io::Result<Self> {
        let head = encode_header(roots);
        w.write_all(unsigned_varint::encode::u64(head.len() as u64, &mut [0; 10]))?;
        w.write_all(&head)?;
        Ok(CarWriter { w, cid_buf: Vec::with_capacity(64) })
    }

    pub fn write(&mut self, cid: &Cid, data: &[u8]) -> io::Result<()> {
        self.cid_buf.clear();
        cid.write_bytes(&mut self.cid_buf).map_err(io::Error::other)?;
        let len = (self.cid_buf.len() + data.len()) as u64;
        self.w.write_all(unsigned_varint::encode::u64(len, &mut [0; 10]))?;
        self.w.write_all(&self.cid_buf)?;
        self.w.write_all(data)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

impl<W: Write> crate::BlockSink for CarWriter<W> {
    type Error = DagError;
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), DagError> {
        self.write(cid, data).map_err(DagError::Io)
    }
}

/// Every block of the DAG under `root`, depth-first pre-order, each once: the order
/// `ipfs dag export` writes. Identity CIDs are skipped (their data is the CID).
pub fn walk_dag<B: crate::BlockSource>(
    src: &B,
    root: &Cid,
    mut visit: impl FnMut(&Cid, &[u8]) -> Result<(), B::Error>,
) -> Result<(), B::Error> {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![*root];
    while let Some(c) = stack.pop() {
        if c.hash().code() == crate::block::IDENTITY || !seen.insert(c) {
            continue;
        }
        let data = src.get(&c)?;
        visit(&c, &data)?;
        let links = crate::block::links(&c, &data)?;
        stack.extend(links.into_iter().rev());
    }
    Ok(())
}
