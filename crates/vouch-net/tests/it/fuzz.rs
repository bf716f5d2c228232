//! The `bitswap_message` fuzz target's logic (fuzz/bitswap/body.rs) over a seed corpus, so CI runs
//! it without libFuzzer: the committed `fuzz/seeds/bitswap_message` (regenerate with
//! `cargo test -p vouch-net --test it -- --ignored write_bitswap_fuzz_seeds`), anything kept in
//! `fuzz/regressions/bitswap_message`, every truncation and byte flip of those, and random bytes.

#[path = "../../../../fuzz/bitswap/body.rs"]
mod body;

use std::path::{Path, PathBuf};

use vouch_dag::block::{DAG_PB, RAW, cid_of};
use vouch_net::message::{self, MAX_MESSAGE_SIZE, pb};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn frame(msg: &pb::Message) -> Vec<u8> {
    let mut out = Vec::new();
    futures::executor::block_on(message::write_message(&mut out, msg)).unwrap();
    out
}

/// Named samples: each kind of message a peer sends, and the framing edge cases.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let v1 = cid_of(RAW, b"hello", false);
    let v0 = cid_of(DAG_PB, b"\x0a\x02\x08\x01", true);
    let wants = message::wantlist(
        vec![
            message::want(&v1, pb::WantType::Block, 1),
            message::want(&v0, pb::WantType::Have, 2),
            message::cancel(&v1),
        ],
        true,
    );
    let payload = pb::Message {
        payload: vec![
            pb::Block { prefix: message::prefix(&v1), data: b"hello".to_vec() },
            pb::Block { prefix: message::prefix(&v0), data: b"\x0a\x02\x08\x01".to_vec() },
        ],
        ..Default::default()
    };
    let presences = pb::Message {
        block_presences: vec![
            pb::BlockPresence { cid: v1.to_bytes(), r#type: pb::BlockPresenceType::Have as i32 },
            pb::BlockPresence { cid: v0.to_bytes(), r#type: pb::BlockPresenceType::DontHave as i32 },
        ],
        ..Default::default()
    };
    let raw_blocks = pb::Message { blocks: vec![b"\x0a\x02\x08\x01".to_vec()], ..Default::default() };
    let mut mixed = wants.clone();
    mixed.payload = payload.payload.clone();
    mixed.block_presences = presences.block_presences.clone();
    mixed.pending_bytes = 1234;
    let mut stream = frame(&wants);
    stream.extend(frame(&payload));
    stream.extend(frame(&presences));
    let mut too_large = Vec::new();
    let mut vb = unsigned_varint::encode::u64_buffer();
    too_large.extend_from_slice(unsigned_varint::encode::u64(MAX_MESSAGE_SIZE as u64 + 1, &mut vb));
    vec![
        ("wantlist", frame(&wants)),
        ("payload", frame(&payload)),
        ("presences", frame(&presences)),
        ("blocks-1.0.0", frame(&raw_blocks)),
        ("mixed", frame(&mixed)),
        ("three-frames", stream),
        ("empty-message", frame(&pb::Message::default())),
        ("too-large-length", too_large),
        ("endless-varint", vec![0xff; 11]),
    ]
}

#[test]
fn bitswap_message_fuzz_body_over_seeds() {
    let mut seeds: Vec<Vec<u8>> = samples().into_iter().map(|(_, b)| b).collect();
    let mut committed = 0;
    for dir in ["seeds/bitswap_message", "regressions/bitswap_message"] {
        if let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir)) {
            for e in entries {
                seeds.push(std::fs::read(e.unwrap().path()).unwrap());
                committed += 1;
            }
        }
    }
    assert!(committed >= samples().len(), "the committed seeds in fuzz/seeds/bitswap_message are missing");
    let mut runs = 0;
    for seed in &seeds {
        body::bitswap_message(seed);
        for cut in 0..seed.len() {
            body::bitswap_message(&seed[..cut]);
        }
        for i in 0..seed.len() {
            for bit in [0x01, 0x80] {
                let mut b = seed.clone();
                b[i] ^= bit;
                body::bitswap_message(&b);
            }
        }
        runs += 1 + 3 * seed.len();
    }
    // Random bytes, bare and behind a valid length prefix.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for len in 0..1500usize {
        let mut buf = Vec::with_capacity(len + 2);
        let mut vb = unsigned_varint::encode::u64_buffer();
        buf.extend_from_slice(unsigned_varint::encode::u64(len as u64, &mut vb));
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(x as u8);
        }
        body::bitswap_message(&buf);
        body::bitswap_message(&buf[1..]);
        runs += 2;
    }
    assert!(runs > 3000, "{runs}");
}

/// Regenerate `fuzz/seeds/bitswap_message/` from [`samples`].
#[test]
#[ignore]
fn write_bitswap_fuzz_seeds() {
    let dir = fuzz_dir().join("seeds/bitswap_message");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in samples() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
