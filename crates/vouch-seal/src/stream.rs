//! The sealed-object format: a 76-byte authenticated header, then AES-256-GCM chunks in the
//! STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015). Normative text:
//! `docs/seal.md`.
//!
//! ```text
//! header  = "VSEAL" ‖ version=1 ‖ aead=1 ‖ reserved=0 ‖ chunk_size:u32be ‖ object_id[16]
//!           ‖ key_id[32] ‖ header_tag[16]
//! chunk i = AES-256-GCM(chunk_key, nonce(i, final), aad = header, plaintext_i) ‖ tag[16]
//! nonce(i, f) = object_id[0..7] ‖ i:u32be ‖ f        (f: 0 = more chunks follow, 1 = final)
//! header_tag  = AES-256-GCM tag of the empty message, nonce = object_id[0..7] ‖ 0:u32be ‖ 2,
//!               aad = header[0..60]
//! chunk_key   = HKDF-SHA256(salt = object_id, ikm = data key, info = "vouch-seal-v1 chunk-key")
//! ```
//!
//! Every chunk but the last holds exactly `chunk_size` plaintext bytes; the last holds
//! 1..=`chunk_size` (0 only for the empty object), so a plaintext has exactly one sealing per
//! key and object id. The index in the nonce catches dropped, duplicated and reordered chunks;
//! the final flag catches truncation at a chunk boundary and extension; the header in every
//! chunk's AAD (and the header's own tag) catches any header change.
//!
//! Memory is bounded: sealing holds one chunk buffer, opening one ciphertext and one plaintext
//! chunk buffer, whatever the object size.

use std::io::{self, Read, Write};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;

use crate::key::{DataKey, KeyId, ObjectId};
use crate::{Error, Result};

/// The first five bytes of every sealed object.
pub const MAGIC: &[u8; 5] = b"VSEAL";
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
/// The `aead` header byte for AES-256-GCM, the only AEAD of version 1.
pub const AEAD_AES_256_GCM: u8 = 1;
/// Length of the header, its tag included.
pub const HEADER_LEN: usize = 76;
/// Length of every chunk's GCM tag (and of the header tag).
pub const TAG_LEN: usize = 16;
/// The chunk size [`SealOptions::default`] uses: 64 KiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 << 10;
/// Smallest chunk size accepted (small chunks only cost tag overhead; tests use them).
pub const MIN_CHUNK_SIZE: u32 = 64;
/// Largest chunk size accepted: 16 MiB bounds the memory an opener allocates for a header it
/// did not write.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;
/// HKDF info of the per-object chunk key.
pub const CHUNK_KEY_INFO: &[u8] = b"vouch-seal-v1 chunk-key";
/// How far from its position an opener looks for a misplaced chunk before calling it modified,
/// and how many appended bytes after a short final chunk it recognises as an extension.
const SEARCH_WINDOW: u32 = 64;

const FLAG_MORE: u8 = 0;
const FLAG_FINAL: u8 = 1;
const FLAG_HEADER: u8 = 2;
/// Header bytes covered by the header tag (everything before it).
const HEADER_BODY: usize = HEADER_LEN - TAG_LEN;

/// How to seal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealOptions {
    /// Plaintext bytes per chunk, [`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`]; default
    /// [`DEFAULT_CHUNK_SIZE`]. Larger chunks cost less tag overhead and more memory.
    pub chunk_size: u32,
}

impl Default for SealOptions {
    fn default() -> Self {
        SealOptions { chunk_size: DEFAULT_CHUNK_SIZE }
    }
}

/// A parsed sealed-object header. Parsing checks the magic and the field values but not the
/// header tag (that needs the key): [`Opener::new`] checks it.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// The object's random id.
    pub object: ObjectId,
    /// The id of the data key it is sealed under.
    pub key_id: KeyId,
    raw: [u8; HEADER_LEN],
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("chunk_size", &self.chunk_size)
            .field("object", &self.object)
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl Header {
    fn new(chunk_size: u32, object: ObjectId, key_id: KeyId, key: &LessSafeKey) -> Result<Header> {
        check_chunk_size(chunk_size)?;
        let mut raw = [0u8; HEADER_LEN];
        raw[..5].copy_from_slice(MAGIC);
        raw[5] = VERSION;
        raw[6] = AEAD_AES_256_GCM;
        raw[7] = 0;
        raw[8..12].copy_from_slice(&chunk_size.to_be_bytes());
        raw[12..28].copy_from_slice(&object.0);
        raw[28..60].copy_from_slice(&key_id.0);
        let nonce = nonce(&object, 0, FLAG_HEADER);
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(&raw[..HEADER_BODY]), &mut [])
            .map_err(|_| Error::BadHeader { field: "header_tag", problem: "AES-GCM refused to seal".into() })?;
        raw[HEADER_BODY..].copy_from_slice(tag.as_ref());
        Ok(Header { chunk_size, object, key_id, raw })
    }

    /// Parse the fixed-size header: magic, version, AEAD, reserved byte, chunk size.
    pub fn parse(raw: &[u8; HEADER_LEN]) -> Result<Header> {
        if &raw[..5] != MAGIC {
            return Err(Error::BadMagic { found: raw[..5].to_vec() });
        }
        if raw[5] != VERSION {
            return Err(Error::BadHeader {
                field: "version",
                problem: format!("{} is not supported; this build reads version {VERSION}", raw[5]),
            });
        }
        if raw[6] != AEAD_AES_256_GCM {
            return Err(Error::BadHeader {
                field: "aead",
                problem: format!("{} is unknown; version 1 defines only 1 (AES-256-GCM)", raw[6]),
            });
        }
        if raw[7] != 0 {
            return Err(Error::BadHeader { field: "reserved", problem: format!("{} (must be 0)", raw[7]) });
        }
        // The slices below have fixed lengths inside a fixed-size array: the conversions
        // cannot fail.
        let chunk_size = u32::from_be_bytes(raw[8..12].try_into().expect("4 bytes"));
        check_chunk_size(chunk_size)?;
        let object = ObjectId(raw[12..28].try_into().expect("16 bytes"));
        let key_id = KeyId(raw[28..60].try_into().expect("32 bytes"));
        Ok(Header { chunk_size, object, key_id, raw: *raw })
    }

    /// Read and parse the header at the start of `r`.
    pub fn read_from(r: &mut impl Read) -> Result<Header> {
        let mut raw = [0u8; HEADER_LEN];
        let n = read_full(r, &mut raw).map_err(Error::io("reading the sealed object header"))?;
        if n >= MAGIC.len() && &raw[..5] != MAGIC {
            return Err(Error::BadMagic { found: raw[..5].to_vec() });
        }
        if n < HEADER_LEN {
            return Err(Error::TruncatedHeader { expected: HEADER_LEN, found: n });
        }
        Header::parse(&raw)
    }

    /// The header's encoding (76 bytes), the AAD of every chunk.
    pub fn as_bytes(&self) -> &[u8; HEADER_LEN] {
        &self.raw
    }
}

fn check_chunk_size(chunk_size: u32) -> Result<()> {
    if (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        Ok(())
    } else {
        Err(Error::BadHeader {
            field: "chunk_size",
            problem: format!("{chunk_size} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"),
        })
    }
}

/// `object_id[0..7] ‖ index:u32be ‖ flag`.
fn nonce(object: &ObjectId, index: u32, flag: u8) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..7].copy_from_slice(&object.0[..7]);
    n[7..11].copy_from_slice(&index.to_be_bytes());
    n[11] = flag;
    Nonce::assume_unique_for_key(n)
}

/// The per-object AES-256-GCM key: HKDF-SHA256(salt = object id, ikm = data key,
/// info = [`CHUNK_KEY_INFO`]). Distinct object ids give independent chunk keys, so even a data
/// key reused across objects never reuses a (key, nonce) pair.
fn chunk_key(key: &DataKey, object: &ObjectId) -> LessSafeKey {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &object.0).extract(key.expose_secret());
    // 32 output bytes of HKDF-SHA256 (at most 255 × 32 allowed): expand cannot fail.
    let okm = prk.expand(&[CHUNK_KEY_INFO], &AES_256_GCM).expect("HKDF-SHA256 can expand 32 bytes");
    LessSafeKey::new(UnboundKey::from(okm))
}

/// The sealed length of a `plaintext_len`-byte object: header, plaintext, one tag per chunk
/// (at least one chunk).
pub fn sealed_len(plaintext_len: u64, chunk_size: u32) -> u64 {
    let chunks = plaintext_len.div_ceil(u64::from(chunk_size)).max(1);
    HEADER_LEN as u64 + plaintext_len + chunks * TAG_LEN as u64
}

/// Read until `buf` is full or the reader ends; the number of bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Read one byte, `None` at the end.
fn read_byte(r: &mut impl Read) -> io::Result<Option<u8>> {
    let mut b = [0u8; 1];
    Ok((read_full(r, &mut b)? == 1).then_some(b[0]))
}

/// What [`seal`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealSummary {
    pub header: Header,
    pub plaintext_bytes: u64,
    pub sealed_bytes: u64,
    pub chunks: u64,
}

/// Streaming encryption: a [`Read`] of plaintext in, chunks of the sealed object out. Use it
/// through [`seal`] (to a [`Write`]) or as a [`Read`] of the sealed bytes (to feed an importer).
pub struct Sealer<R> {
    inner: R,
    key: LessSafeKey,
    header: Header,
    /// `chunk_size + TAG_LEN` bytes: the current chunk, sealed in place.
    buf: Vec<u8>,
    /// A byte read past a full chunk to learn that it is not the last.
    peeked: Option<u8>,
    /// Index of the next chunk to seal.
    index: u32,
    finished: bool,
    plaintext_bytes: u64,
    // `Read` state: bytes of `header` then of `buf[..out_len]` already handed out.
    header_out: usize,
    out_pos: usize,
    out_len: usize,
}

impl<R> std::fmt::Debug for Sealer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("header", &self.header).field("index", &self.index).finish_non_exhaustive()
    }
}

impl<R: Read> Sealer<R> {
    /// Start sealing `plaintext` under `key` with a fresh random object id.
    pub fn new(key: &DataKey, plaintext: R, opts: SealOptions) -> Result<Sealer<R>> {
        let object = ObjectId::generate();
        let ck = chunk_key(key, &object);
        let header = Header::new(opts.chunk_size, object, key.id(), &ck)?;
        Ok(Sealer {
            inner: plaintext,
            key: ck,
            buf: vec![0; opts.chunk_size as usize + TAG_LEN],
            header,
            peeked: None,
            index: 0,
            finished: false,
            plaintext_bytes: 0,
            header_out: 0,
            out_pos: 0,
            out_len: 0,
        })
    }

    /// The header (also the first [`HEADER_LEN`] bytes of the output).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Seal the next chunk: its ciphertext and tag, or `None` after the final chunk.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>> {
        if self.finished {
            return Ok(None);
        }
        let size = self.header.chunk_size as usize;
        let mut n = 0;
        if let Some(b) = self.peeked.take() {
            self.buf[0] = b;
            n = 1;
        }
        n += read_full(&mut self.inner, &mut self.buf[n..size]).map_err(Error::io("reading the plaintext"))?;
        let last = n < size || {
            self.peeked = read_byte(&mut self.inner).map_err(Error::io("reading the plaintext"))?;
            self.peeked.is_none()
        };
        if !last && self.index == u32::MAX {
            return Err(Error::TooManyChunks { chunk_size: self.header.chunk_size });
        }
        let flag = if last { FLAG_FINAL } else { FLAG_MORE };
        let tag = self
            .key
            .seal_in_place_separate_tag(
                nonce(&self.header.object, self.index, flag),
                Aad::from(self.header.as_bytes()),
                &mut self.buf[..n],
            )
            .map_err(|_| Error::Io { what: "sealing a chunk", source: io::Error::other("AES-GCM refused to seal") })?;
        self.buf[n..n + TAG_LEN].copy_from_slice(tag.as_ref());
        self.plaintext_bytes += n as u64;
        if last {
            self.finished = true;
        } else {
            self.index += 1;
        }
        Ok(Some(&self.buf[..n + TAG_LEN]))
    }

    fn chunks(&self) -> u64 {
        u64::from(self.index) + 1
    }
}

impl<R: Read> Read for Sealer<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.header_out < HEADER_LEN {
            let n = out.len().min(HEADER_LEN - self.header_out);
            out[..n].copy_from_slice(&self.header.raw[self.header_out..self.header_out + n]);
            self.header_out += n;
            return Ok(n);
        }
        if self.out_pos == self.out_len {
            match self.next_chunk().map_err(into_io)? {
                None => return Ok(0),
                Some(chunk) => self.out_len = chunk.len(),
            }
            self.out_pos = 0;
        }
        let n = out.len().min(self.out_len - self.out_pos);
        out[..n].copy_from_slice(&self.buf[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// A crate error as an `io::Error` (kind `InvalidData`, the [`Error`] recoverable with
/// `get_ref().downcast_ref::<Error>()`), for the [`Read`] adaptors.
fn into_io(e: Error) -> io::Error {
    match e {
        Error::Io { source, .. } => source,
        e => io::Error::new(io::ErrorKind::InvalidData, e),
    }
}

/// Seal `plaintext` under `key` into `out` with a fresh object id, one chunk in memory at a time.
pub fn seal(key: &DataKey, plaintext: impl Read, mut out: impl Write, opts: SealOptions) -> Result<SealSummary> {
    let mut s = Sealer::new(key, plaintext, opts)?;
    out.write_all(s.header.as_bytes()).map_err(Error::io("writing the sealed object"))?;
    let mut sealed_bytes = HEADER_LEN as u64;
    while let Some(chunk) = s.next_chunk()? {
        out.write_all(chunk).map_err(Error::io("writing the sealed object"))?;
        sealed_bytes += chunk.len() as u64;
    }
    out.flush().map_err(Error::io("writing the sealed object"))?;
    Ok(SealSummary { header: s.header.clone(), plaintext_bytes: s.plaintext_bytes, sealed_bytes, chunks: s.chunks() })
}

/// What [`open`] read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSummary {
    pub header: Header,
    pub plaintext_bytes: u64,
    pub chunks: u64,
}

/// Streaming decryption: a [`Read`] of a sealed object in, authenticated plaintext out, one
/// chunk at a time. A chunk's plaintext is handed out only after its tag verified; the first
/// failure is returned and every later call fails too.
///
/// Streaming means the plaintext of chunks before a failing one has already been handed out:
/// a caller that needs all-or-nothing (an import, a job input) must discard what it got when
/// [`open`] or a read fails.
pub struct Opener<R> {
    inner: R,
    key: LessSafeKey,
    header: Header,
    /// One ciphertext chunk with its tag.
    ct: Vec<u8>,
    /// The plaintext of the current chunk (valid only up to `out_len` after a verified open).
    pt: Vec<u8>,
    peeked: Option<u8>,
    index: u32,
    finished: bool,
    failed: bool,
    plaintext_bytes: u64,
    out_pos: usize,
    out_len: usize,
}

impl<R> std::fmt::Debug for Opener<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener").field("header", &self.header).field("index", &self.index).finish_non_exhaustive()
    }
}

impl<R: Read> Opener<R> {
    /// Read the header of `sealed`, check that `key` is its key and that the header
    /// authenticates.
    pub fn new(key: &DataKey, mut sealed: R) -> Result<Opener<R>> {
        let header = Header::read_from(&mut sealed)?;
        Opener::after_header(key, header, sealed)
    }

    /// Continue after a header already read with [`Header::read_from`] (to look up the key by
    /// its id or object id first).
    pub fn after_header(key: &DataKey, header: Header, rest: R) -> Result<Opener<R>> {
        let id = key.id();
        if id != header.key_id {
            return Err(Error::WrongKey {
                object: header.object.to_string(),
                expected: header.key_id.to_string(),
                found: id.to_string(),
            });
        }
        let ck = chunk_key(key, &header.object);
        let raw = header.as_bytes();
        ck.open_separate_gather(
            nonce(&header.object, 0, FLAG_HEADER),
            Aad::from(&raw[..HEADER_BODY]),
            &[],
            &raw[HEADER_BODY..],
            &mut [],
        )
        .map_err(|_| Error::HeaderAuthentication { object: header.object.to_string() })?;
        let size = header.chunk_size as usize;
        Ok(Opener {
            inner: rest,
            key: ck,
            ct: vec![0; size + TAG_LEN],
            pt: vec![0; size],
            header,
            peeked: None,
            index: 0,
            finished: false,
            failed: false,
            plaintext_bytes: 0,
            out_pos: 0,
            out_len: 0,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Plaintext bytes authenticated so far.
    pub fn plaintext_bytes(&self) -> u64 {
        self.plaintext_bytes
    }

    /// Open the next chunk: its authenticated plaintext, or `None` after the final chunk.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>> {
        if self.finished {
            return Ok(None);
        }
        if self.failed {
            return Err(Error::ChunkAuthentication { object: self.header.object.to_string(), index: self.index });
        }
        match self.open_chunk() {
            Ok(n) => Ok(Some(&self.pt[..n])),
            Err(e) => {
                self.failed = true;
                self.pt.fill(0);
                Err(e)
            }
        }
    }

    fn open_chunk(&mut self) -> Result<usize> {
        let object = self.header.object.to_string();
        let full = self.ct.len();
        let mut n = 0;
        if let Some(b) = self.peeked.take() {
            self.ct[0] = b;
            n = 1;
        }
        n += read_full(&mut self.inner, &mut self.ct[n..]).map_err(Error::io("reading the sealed object"))?;
        if n == 0 && self.index > 0 {
            return Err(Error::Truncated { object, last: self.index - 1 });
        }
        if n < TAG_LEN {
            return Err(Error::TruncatedChunk { object, index: self.index, found: n });
        }
        let at_end = n < full || {
            self.peeked = read_byte(&mut self.inner).map_err(Error::io("reading the sealed object"))?;
            self.peeked.is_none()
        };
        let expected = if at_end { FLAG_FINAL } else { FLAG_MORE };
        if self.try_open(self.index, expected, n) {
            let len = n - TAG_LEN;
            self.plaintext_bytes += len as u64;
            if at_end {
                self.finished = true;
            } else {
                self.index =
                    self.index.checked_add(1).ok_or(Error::TooManyChunks { chunk_size: self.header.chunk_size })?;
            }
            return Ok(len);
        }
        // Diagnosis (error path only, bounded work): what does this chunk authenticate as?
        let other = if at_end { FLAG_MORE } else { FLAG_FINAL };
        if self.try_open(self.index, other, n) {
            return Err(if at_end {
                Error::Truncated { object, last: self.index }
            } else {
                Error::TrailingData { object, index: self.index }
            });
        }
        // A short final chunk with a few bytes appended: a prefix authenticates as final.
        let shortest = n.saturating_sub(SEARCH_WINDOW as usize).max(TAG_LEN);
        for cut in (shortest..n).rev() {
            if self.try_open(self.index, FLAG_FINAL, cut) {
                return Err(Error::TrailingData { object, index: self.index });
            }
        }
        let lo = self.index.saturating_sub(SEARCH_WINDOW);
        let hi = self.index.saturating_add(SEARCH_WINDOW);
        let index = self.index;
        for j in (lo..=hi).filter(|&j| j != index) {
            if self.try_open(j, FLAG_MORE, n) || self.try_open(j, FLAG_FINAL, n) {
                return Err(Error::ChunkOutOfPlace { object, position: self.index, found_index: j });
            }
        }
        if at_end && n < full {
            return Err(Error::LastChunkAuthentication { object, index: self.index, len: n });
        }
        Err(Error::ChunkAuthentication { object, index: self.index })
    }

    /// Whether `ct[..n]` opens as chunk `index` with `flag`, plaintext into `pt`.
    fn try_open(&mut self, index: u32, flag: u8, n: usize) -> bool {
        let (ct, tag) = self.ct[..n].split_at(n - TAG_LEN);
        self.key
            .open_separate_gather(
                nonce(&self.header.object, index, flag),
                Aad::from(self.header.as_bytes()),
                ct,
                tag,
                &mut self.pt[..n - TAG_LEN],
            )
            .is_ok()
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.out_pos == self.out_len {
            match self.next_chunk().map_err(into_io)? {
                None => return Ok(0),
                Some(chunk) => self.out_len = chunk.len(),
            }
            self.out_pos = 0;
            // An empty final chunk (the empty object) ends the stream.
            if self.out_len == 0 {
                return Ok(0);
            }
        }
        let n = out.len().min(self.out_len - self.out_pos);
        out[..n].copy_from_slice(&self.pt[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// Open the sealed object `sealed` with `key` into `out`, writing each chunk only after it
/// authenticated. On error, `out` may hold the plaintext of the chunks before the failing one:
/// discard it.
pub fn open(key: &DataKey, sealed: impl Read, mut out: impl Write) -> Result<OpenSummary> {
    let mut o = Opener::new(key, sealed)?;
    let mut chunks = 0;
    while let Some(chunk) = o.next_chunk()? {
        out.write_all(chunk).map_err(Error::io("writing the plaintext"))?;
        chunks += 1;
    }
    out.flush().map_err(Error::io("writing the plaintext"))?;
    Ok(OpenSummary { header: o.header.clone(), plaintext_bytes: o.plaintext_bytes, chunks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(key: &DataKey, len: usize, chunk: u32) -> Vec<u8> {
        let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let mut out = Vec::new();
        seal(key, &data[..], &mut out, SealOptions { chunk_size: chunk }).unwrap();
        out
    }

    #[test]
    fn layout_matches_the_spec() {
        let key = DataKey::from_bytes([9; 32]);
        let s = sealed(&key, 150, 64);
        assert_eq!(s.len() as u64, sealed_len(150, 64));
        assert_eq!(s.len(), 76 + 150 + 3 * 16);
        assert_eq!(&s[..5], b"VSEAL");
        assert_eq!(s[5..8], [1, 1, 0]);
        assert_eq!(s[8..12], 64u32.to_be_bytes());
        assert_eq!(s[28..60], key.id().0);
        // The first chunk is AES-256-GCM under the HKDF chunk key with the documented nonce
        // and the header as AAD: decrypt it independently of the Opener.
        let header = Header::parse(s[..76].try_into().unwrap()).unwrap();
        let ck = chunk_key(&key, &header.object);
        let mut n = [0u8; 12];
        n[..7].copy_from_slice(&header.object.0[..7]);
        let mut chunk0 = s[76..76 + 64 + 16].to_vec();
        let pt = ck.open_in_place(Nonce::assume_unique_for_key(n), Aad::from(&s[..76]), &mut chunk0).unwrap();
        let expected: Vec<u8> = (0..64).map(|i| (i * 7) as u8).collect();
        assert_eq!(pt, &expected[..]);
    }

    #[test]
    fn empty_object_is_one_empty_final_chunk() {
        let key = DataKey::generate();
        let s = sealed(&key, 0, 64);
        assert_eq!(s.len(), HEADER_LEN + TAG_LEN);
        let mut out = Vec::new();
        let summary = open(&key, &s[..], &mut out).unwrap();
        assert_eq!((summary.plaintext_bytes, summary.chunks), (0, 1));
        assert!(out.is_empty());
    }

    #[test]
    fn reused_key_still_gives_distinct_chunk_keys() {
        let key = DataKey::generate();
        let (a, b) = (sealed(&key, 10, 64), sealed(&key, 10, 64));
        assert_ne!(a[12..28], b[12..28], "fresh object ids");
        assert_ne!(a[76..], b[76..], "same plaintext, different ciphertext");
    }

    #[test]
    fn sealer_as_reader_gives_the_same_format() {
        let key = DataKey::generate();
        let data = vec![5u8; 1000];
        let mut s = Sealer::new(&key, &data[..], SealOptions { chunk_size: 100 }).unwrap();
        let mut bytes = Vec::new();
        // Small reads exercise the header/chunk boundaries of the Read adaptor.
        let mut small = [0u8; 7];
        loop {
            let n = s.read(&mut small).unwrap();
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&small[..n]);
        }
        assert_eq!(bytes.len() as u64, sealed_len(1000, 100));
        let mut plain = Vec::new();
        Opener::new(&key, &bytes[..]).unwrap().read_to_end(&mut plain).unwrap();
        assert_eq!(plain, data);
    }

    #[test]
    fn bad_chunk_sizes_are_refused() {
        let key = DataKey::generate();
        for size in [0, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1] {
            let e = seal(&key, &b""[..], Vec::new(), SealOptions { chunk_size: size }).unwrap_err();
            assert!(matches!(e, Error::BadHeader { field: "chunk_size", .. }), "{e}");
        }
    }
}
