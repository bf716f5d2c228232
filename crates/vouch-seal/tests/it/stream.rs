//! Round trips and every tampering case of the sealed-object format.

use proptest::prelude::*;
use vouch_seal::stream::{HEADER_LEN, TAG_LEN};
use vouch_seal::*;

const CHUNK: u32 = 64;
const CT: usize = CHUNK as usize + TAG_LEN;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

fn sealed(key: &DataKey, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    seal(key, &data(len)[..], &mut out, SealOptions { chunk_size: CHUNK }).unwrap();
    out
}

fn open_err(key: &DataKey, bytes: &[u8]) -> Error {
    let mut out = Vec::new();
    open(key, bytes, &mut out).unwrap_err()
}

proptest! {
    #[test]
    fn round_trip(len in prop_oneof![Just(0usize), Just(1), Just(63), Just(64), Just(65), Just(64 * 5), 0usize..2000]) {
        let key = DataKey::generate();
        let s = sealed(&key, len);
        prop_assert_eq!(s.len() as u64, sealed_len(len as u64, CHUNK));
        let mut out = Vec::new();
        let summary = open(&key, &s[..], &mut out).unwrap();
        prop_assert_eq!(&out, &data(len));
        prop_assert_eq!(summary.plaintext_bytes, len as u64);
        // The Read adaptor gives the same bytes.
        let mut via_read = Vec::new();
        std::io::Read::read_to_end(&mut Opener::new(&key, &s[..]).unwrap(), &mut via_read).unwrap();
        prop_assert_eq!(via_read, data(len));
    }

    #[test]
    fn any_flipped_byte_is_detected(pos in 0usize..(HEADER_LEN + 4 * CT), bit in 0u8..8) {
        let key = DataKey::generate();
        let mut s = sealed(&key, 4 * CHUNK as usize);
        s[pos] ^= 1 << bit;
        let mut out = Vec::new();
        prop_assert!(open(&key, &s[..], &mut out).is_err());
        // Nothing of a failing chunk was written: only whole earlier chunks.
        prop_assert_eq!(out.len() % CHUNK as usize, 0);
        prop_assert!(data(4 * CHUNK as usize).starts_with(&out));
    }
}

#[test]
fn default_chunk_size_round_trip_at_the_boundaries() {
    let key = DataKey::generate();
    let c = stream::DEFAULT_CHUNK_SIZE as usize;
    for len in [c - 1, c, c + 1, 3 * c] {
        let mut s = Vec::new();
        seal(&key, &data(len)[..], &mut s, SealOptions::default()).unwrap();
        let mut out = Vec::new();
        open(&key, &s[..], &mut out).unwrap();
        assert_eq!(out, data(len), "{len}");
    }
}

#[test]
fn header_tampering_names_the_field() {
    let key = DataKey::generate();
    let s = sealed(&key, 100);
    let with = |i: usize, v: u8| {
        let mut t = s.clone();
        t[i] = v;
        open_err(&key, &t)
    };
    assert!(matches!(with(0, b'X'), Error::BadMagic { .. }));
    assert!(matches!(with(5, 2), Error::BadHeader { field: "version", .. }));
    assert!(matches!(with(6, 9), Error::BadHeader { field: "aead", .. }));
    assert!(matches!(with(7, 1), Error::BadHeader { field: "reserved", .. }));
    assert!(matches!(with(8, 0xff), Error::BadHeader { field: "chunk_size", .. }));
    assert!(matches!(with(11, 65), Error::HeaderAuthentication { .. }), "chunk size 65");
    assert!(matches!(with(20, s[20] ^ 1), Error::HeaderAuthentication { .. }), "object id");
    assert!(matches!(with(40, s[40] ^ 1), Error::WrongKey { .. }), "key id");
    assert!(matches!(with(70, s[70] ^ 1), Error::HeaderAuthentication { .. }), "header tag");
    assert!(matches!(open_err(&key, &s[..30]), Error::TruncatedHeader { found: 30, .. }));
    assert!(matches!(open_err(&DataKey::generate(), &s), Error::WrongKey { .. }));
}

/// Chunk `i` of a sealed object (the last may be short).
fn chunk(s: &[u8], i: usize) -> &[u8] {
    let start = HEADER_LEN + i * CT;
    &s[start..(start + CT).min(s.len())]
}

fn rebuild(s: &[u8], order: &[usize]) -> Vec<u8> {
    let mut out = s[..HEADER_LEN].to_vec();
    for &i in order {
        out.extend_from_slice(chunk(s, i));
    }
    out
}

#[test]
fn chunk_tampering_is_reported_specifically() {
    let key = DataKey::generate();
    let s = sealed(&key, 4 * CHUNK as usize + 10); // chunks 0..=3 full, chunk 4 final (10 bytes)

    let e = open_err(&key, &rebuild(&s, &[0, 2, 3, 4]));
    assert!(matches!(e, Error::ChunkOutOfPlace { position: 1, found_index: 2, .. }), "dropped: {e}");
    let e = open_err(&key, &rebuild(&s, &[0, 1, 1, 2, 3, 4]));
    assert!(matches!(e, Error::ChunkOutOfPlace { position: 2, found_index: 1, .. }), "duplicated: {e}");
    let e = open_err(&key, &rebuild(&s, &[0, 2, 1, 3, 4]));
    assert!(matches!(e, Error::ChunkOutOfPlace { position: 1, found_index: 2, .. }), "reordered: {e}");
    // An appended chunk, after a short final chunk (found as a final prefix of the read)...
    let e = open_err(&key, &rebuild(&s, &[0, 1, 2, 3, 4, 0]));
    assert!(matches!(e, Error::TrailingData { index: 4, .. }), "appended after a short final chunk: {e}");
    // ...and after a full final chunk.
    let full = sealed(&key, 4 * CHUNK as usize);
    let e = open_err(&key, &rebuild(&full, &[0, 1, 2, 3, 1]));
    assert!(matches!(e, Error::TrailingData { index: 3, .. }), "appended chunk: {e}");
    let mut ext = s.clone();
    ext.push(0);
    assert!(matches!(open_err(&key, &ext), Error::TrailingData { index: 4, .. }), "appended byte");

    let mut t = s.clone();
    t[HEADER_LEN + CT + 5] ^= 1;
    assert!(matches!(open_err(&key, &t), Error::ChunkAuthentication { index: 1, .. }), "flipped ciphertext");
    let mut t = s.clone();
    t[HEADER_LEN + 2 * CT - 1] ^= 1;
    assert!(matches!(open_err(&key, &t), Error::ChunkAuthentication { index: 1, .. }), "flipped tag");

    // A chunk from another object under the same key.
    let other = sealed(&key, 4 * CHUNK as usize + 10);
    let mut t = rebuild(&s, &[0]);
    t.extend_from_slice(chunk(&other, 1));
    t.extend_from_slice(&rebuild(&s, &[2, 3, 4])[HEADER_LEN..]);
    assert!(matches!(open_err(&key, &t), Error::ChunkAuthentication { index: 1, .. }));
}

#[test]
fn truncation_at_every_boundary_and_inside_chunks() {
    let key = DataKey::generate();
    let s = sealed(&key, 4 * CHUNK as usize + 10);
    for cut in HEADER_LEN..s.len() {
        let e = open_err(&key, &s[..cut]);
        let into = cut - HEADER_LEN;
        let (i, rem) = (into / CT, into % CT);
        match (rem, &e) {
            (0, Error::Truncated { last, .. }) if *last as usize + 1 == i => {}
            (0, Error::TruncatedChunk { index: 0, found: 0, .. }) if i == 0 => {}
            (r, Error::TruncatedChunk { index, found, .. }) if r < TAG_LEN && *index as usize == i && *found == r => {}
            (r, Error::LastChunkAuthentication { index, len, .. })
                if r >= TAG_LEN && *index as usize == i && *len == r => {}
            _ => panic!("cut at {cut} (chunk {i} + {rem}): {e}"),
        }
    }
}
