//! The logic of the `bitswap_message` fuzz target, as a plain function: `fuzz_targets/
//! bitswap_message.rs` wraps it, and vouch-net's integration tests include this file and run it
//! over seeds (`tests/it/fuzz.rs`: the committed `seeds/bitswap_message`, anything kept in
//! `regressions/bitswap_message`, their truncations and byte flips, and random bytes).

use futures::executor::block_on;
use vouch_dag::block::sha256_multihash;
use vouch_net::Cid;
use vouch_net::message::{self, FrameError, MAX_MESSAGE_SIZE, pb, read_message, received_payload, received_raw};

/// Most frames read from one input (each read consumes at least one byte, so this only bounds
/// the work per input).
const MAX_FRAMES: usize = 64;

/// Arbitrary bytes as a bitswap stream: length-prefixed frames read until the end or the first
/// error, every block hashed as a reader does, every CID field parsed. Never panics; invariants:
/// a decoded message re-encodes and decodes to itself; a block whose hash is accepted hashes
/// (sha2-256) to it and the CID its prefix claims names that hash; a claimed CID's own prefix
/// claims it again; no frame longer than the 4 MiB limit is accepted.
pub fn bitswap_message(data: &[u8]) {
    let mut stream = data;
    for _ in 0..MAX_FRAMES {
        let before = stream.len();
        let msg = match block_on(read_message(&mut stream)) {
            Ok(Some(msg)) => msg,
            Ok(None) => break,
            Err(FrameError::TooLarge { len, max }) => {
                assert_eq!(max, MAX_MESSAGE_SIZE, "the bitswap limit is the one applied");
                assert!(len > max as u64, "a frame of {len} bytes was refused as too large");
                break;
            }
            Err(_) => break,
        };
        assert!(stream.len() < before, "a message was read without consuming input");
        assert!(before - stream.len() <= MAX_MESSAGE_SIZE + 10, "a frame over the limit was accepted");
        check(msg);
    }
}

fn check(msg: pb::Message) {
    let mut again = Vec::new();
    block_on(message::write_message(&mut again, &msg)).expect("writing to a Vec");
    let back = block_on(read_message(&mut &again[..])).expect("our own frame reads back");
    assert_eq!(back.as_ref(), Some(&msg), "decode∘encode is the identity on decoded messages");

    if let Some(wl) = &msg.wantlist {
        for e in &wl.entries {
            let _ = Cid::try_from(&e.block[..]);
            let _ = pb::WantType::try_from(e.want_type);
        }
    }
    for p in &msg.block_presences {
        let _ = Cid::try_from(&p.cid[..]);
        let _ = pb::BlockPresenceType::try_from(p.r#type);
    }
    for b in msg.payload {
        let received = received_payload(b);
        if let Ok(hash) = &received.hash {
            assert_eq!(*hash, sha256_multihash(&received.data), "an accepted hash is the data's sha2-256");
            if let Some(cid) = received.claimed {
                assert_eq!(cid.hash(), hash, "the claimed CID names the data's hash");
                let round = received_payload(pb::Block { prefix: message::prefix(&cid), data: received.data });
                assert_eq!(round.claimed, Some(cid), "a claimed CID's prefix claims it again");
            }
        }
    }
    for b in msg.blocks {
        let received = received_raw(b);
        if let Ok(hash) = &received.hash {
            assert_eq!(*hash, sha256_multihash(&received.data), "a 1.0.0 block hashes to its CIDv0");
        }
    }
}
