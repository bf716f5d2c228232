//! Bitswap wire messages: the protobuf schema of go-bitswap / boxo (`message.proto`), framing
//! (one unsigned-varint length prefix per message, several messages per stream), block prefixes,
//! and the checks that turn a received payload into a hash-verified block.
//!
//! Nothing here panics on hostile bytes: oversized frames, malformed protobuf and bad prefixes are
//! errors or rejected blocks.

use std::io;

use cid::Cid;
use cid::multihash::Multihash;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use prost::Message as _;
use vouch_dag::block::{MAX_BLOCK_SIZE, SHA2_256, sha256_multihash};

/// Bitswap 1.2.0: want-have / have / dont-have. What Vouch opens.
pub const PROTOCOL_1_2: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.2.0");
/// Bitswap 1.1.0: CIDv1 payloads with prefixes, no presences. Accepted inbound.
pub const PROTOCOL_1_1: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.1.0");
/// Bitswap 1.0.0: raw blocks only (CIDv0). Accepted inbound.
pub const PROTOCOL_1_0: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.0.0");

/// Largest frame read or written (go-bitswap's `MessageSizeMax`).
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;
/// Responses are cut into messages of about this many block bytes, so that one message never
/// exceeds [`MAX_MESSAGE_SIZE`] even with a 2 MiB block in it.
pub const RESPONSE_TARGET_SIZE: usize = 1024 * 1024;

/// The protobuf schema, field for field (`boxo/bitswap/message/pb/message.proto`).
pub mod pb {
    /// A bitswap message: any mix of wantlist, blocks and presences.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Message {
        #[prost(message, optional, tag = "1")]
        pub wantlist: Option<Wantlist>,
        /// Bitswap 1.0.0 blocks: bytes only, the CID is the CIDv0 of the bytes.
        #[prost(bytes = "vec", repeated, tag = "2")]
        pub blocks: Vec<Vec<u8>>,
        #[prost(message, repeated, tag = "3")]
        pub payload: Vec<Block>,
        #[prost(message, repeated, tag = "4")]
        pub block_presences: Vec<BlockPresence>,
        #[prost(int32, tag = "5")]
        pub pending_bytes: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Wantlist {
        #[prost(message, repeated, tag = "1")]
        pub entries: Vec<Entry>,
        /// Whether this is the sender's full wantlist (replacing what was sent before).
        #[prost(bool, tag = "2")]
        pub full: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Entry {
        /// CID bytes.
        #[prost(bytes = "vec", tag = "1")]
        pub block: Vec<u8>,
        #[prost(int32, tag = "2")]
        pub priority: i32,
        #[prost(bool, tag = "3")]
        pub cancel: bool,
        #[prost(enumeration = "WantType", tag = "4")]
        pub want_type: i32,
        #[prost(bool, tag = "5")]
        pub send_dont_have: bool,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum WantType {
        Block = 0,
        Have = 1,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Block {
        /// CID prefix: varint version ‖ codec ‖ multihash code ‖ multihash length.
        #[prost(bytes = "vec", tag = "1")]
        pub prefix: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub data: Vec<u8>,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum BlockPresenceType {
        Have = 0,
        DontHave = 1,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BlockPresence {
        #[prost(bytes = "vec", tag = "1")]
        pub cid: Vec<u8>,
        #[prost(enumeration = "BlockPresenceType", tag = "2")]
        pub r#type: i32,
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("message of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: u64, max: usize },
    #[error("bad length prefix")]
    BadLength,
    #[error("malformed bitswap protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Read one frame (an unsigned-varint length prefix and that many bytes) of at most `max`
/// bytes; `Ok(None)` at a clean end of stream. The length is checked before anything is
/// allocated. Shared by bitswap and the job protocol.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len: u64 = 0;
    for i in 0..10 {
        let mut byte = [0u8];
        if r.read(&mut byte).await? == 0 {
            return if i == 0 { Ok(None) } else { Err(FrameError::BadLength) };
        }
        len |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            if len > max as u64 {
                return Err(FrameError::TooLarge { len, max });
            }
            // Cannot truncate: checked against `max` just above.
            let mut buf = vec![0u8; len as usize];
            r.read_exact(&mut buf).await?;
            return Ok(Some(buf));
        }
    }
    Err(FrameError::BadLength)
}

/// Write one frame (unsigned-varint length prefix, then `data`) and flush.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> io::Result<()> {
    let mut prefix = unsigned_varint::encode::usize_buffer();
    w.write_all(unsigned_varint::encode::usize(data.len(), &mut prefix)).await?;
    w.write_all(data).await?;
    w.flush().await
}

/// Read one length-prefixed message; `Ok(None)` at a clean end of stream.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<pb::Message>, FrameError> {
    match read_frame(r, MAX_MESSAGE_SIZE).await? {
        Some(buf) => Ok(Some(pb::Message::decode(&buf[..])?)),
        None => Ok(None),
    }
}

/// Write one length-prefixed message and flush.
pub async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, msg: &pb::Message) -> io::Result<()> {
    w.write_all(&msg.encode_length_delimited_to_vec()).await?;
    w.flush().await
}

/// The CID prefix bitswap sends with a block (go-cid `Prefix.Bytes()`).
pub fn prefix(cid: &Cid) -> Vec<u8> {
    let mut out = Vec::with_capacity(8);
    let mut buf = unsigned_varint::encode::u64_buffer();
    let version: u64 = cid.version().into();
    for n in [version, cid.codec(), cid.hash().code(), u64::from(cid.hash().size())] {
        out.extend_from_slice(unsigned_varint::encode::u64(n, &mut buf));
    }
    out
}

/// A block as received: its bytes and the sha2-256 multihash they hash to, or why the sender's
/// prefix was unusable.
#[derive(Debug)]
pub struct Received {
    /// What the bytes hash to, if the prefix names sha2-256 (the only hash Vouch fetches).
    pub hash: Result<Multihash<64>, String>,
    /// The CID the sender's prefix claims, when it parses (for logs).
    pub claimed: Option<Cid>,
    pub data: Vec<u8>,
}

/// Hash a 1.1/1.2 payload block under its prefix.
pub fn received_payload(block: pb::Block) -> Received {
    let parsed = parse_prefix(&block.prefix);
    let hash = match &parsed {
        _ if block.data.len() > MAX_BLOCK_SIZE => {
            Err(format!("block of {} bytes is over the 2 MiB limit", block.data.len()))
        }
        Ok((_, _, SHA2_256, 32)) => Ok(sha256_multihash(&block.data)),
        Ok((_, _, code, len)) => Err(format!("unsupported multihash code {code:#x} (length {len})")),
        Err(e) => Err(e.clone()),
    };
    let claimed = match (&parsed, &hash) {
        (Ok((0, _, _, _)), Ok(mh)) => Cid::new_v0(*mh).ok(),
        (Ok((1, codec, _, _)), Ok(mh)) => Some(Cid::new_v1(*codec, *mh)),
        _ => None,
    };
    Received { hash, claimed, data: block.data }
}

/// Hash a 1.0.0 block (implicitly CIDv0: dag-pb, sha2-256).
pub fn received_raw(data: Vec<u8>) -> Received {
    if data.len() > MAX_BLOCK_SIZE {
        return Received {
            hash: Err(format!("block of {} bytes is over the 2 MiB limit", data.len())),
            claimed: None,
            data,
        };
    }
    let mh = sha256_multihash(&data);
    Received { hash: Ok(mh), claimed: Cid::new_v0(mh).ok(), data }
}

fn parse_prefix(bytes: &[u8]) -> Result<(u64, u64, u64, u64), String> {
    let mut rest = bytes;
    let mut next = || -> Result<u64, String> {
        let (n, r) = unsigned_varint::decode::u64(rest).map_err(|e| format!("bad CID prefix: {e}"))?;
        rest = r;
        Ok(n)
    };
    let out = (next()?, next()?, next()?, next()?);
    Ok(out)
}

/// A wantlist entry for `cid`.
pub fn want(cid: &Cid, want_type: pb::WantType, priority: i32) -> pb::Entry {
    pb::Entry { block: cid.to_bytes(), priority, cancel: false, want_type: want_type as i32, send_dont_have: true }
}

/// A cancel entry for `cid`.
pub fn cancel(cid: &Cid) -> pb::Entry {
    pb::Entry { block: cid.to_bytes(), cancel: true, ..Default::default() }
}

/// A message carrying only wantlist entries.
pub fn wantlist(entries: Vec<pb::Entry>, full: bool) -> pb::Message {
    pb::Message { wantlist: Some(pb::Wantlist { entries, full }), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_dag::block::{DAG_PB, RAW, cid_of};

    #[test]
    fn prefix_round_trip_v0_and_v1() {
        for cid in [cid_of(DAG_PB, b"x", true), cid_of(RAW, b"x", false), cid_of(DAG_PB, b"x", false)] {
            let r = received_payload(pb::Block { prefix: prefix(&cid), data: b"x".to_vec() });
            assert_eq!(r.claimed, Some(cid));
            assert_eq!(r.hash.unwrap(), *cid.hash());
        }
    }

    #[test]
    fn bad_prefixes_are_errors_not_panics() {
        for p in [vec![], vec![0xff], vec![1, 0x55, 0x1e, 32], vec![1, 0x55, 0x12, 20], vec![0x80; 12]] {
            let r = received_payload(pb::Block { prefix: p, data: b"x".to_vec() });
            assert!(r.hash.is_err());
        }
    }

    #[test]
    fn oversized_blocks_are_rejected_unhashed() {
        let cid = cid_of(RAW, b"x", false);
        let big = vec![0u8; MAX_BLOCK_SIZE + 1];
        assert!(received_payload(pb::Block { prefix: prefix(&cid), data: big.clone() }).hash.is_err());
        assert!(received_raw(big).hash.is_err());
    }

    /// Garbage of every length never panics the decoder (a cheap stand-in for a fuzz target).
    #[tokio::test]
    async fn garbage_never_panics() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for len in 0..2000usize {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(x as u8);
            }
            // A valid length prefix in front of garbage reaches the protobuf decoder.
            let mut framed = Vec::new();
            let mut vb = unsigned_varint::encode::u64_buffer();
            framed.extend_from_slice(unsigned_varint::encode::u64(len as u64, &mut vb));
            framed.extend_from_slice(&buf);
            for input in [&buf[..], &framed[..]] {
                if let Ok(Some(msg)) = read_message(&mut &input[..]).await {
                    for b in msg.payload {
                        let _ = received_payload(b);
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_limits_hold() {
        let cid = cid_of(RAW, b"hello", false);
        let msg = pb::Message {
            wantlist: Some(pb::Wantlist { entries: vec![want(&cid, pb::WantType::Have, 7), cancel(&cid)], full: true }),
            payload: vec![pb::Block { prefix: prefix(&cid), data: b"hello".to_vec() }],
            block_presences: vec![pb::BlockPresence { cid: cid.to_bytes(), r#type: 1 }],
            ..Default::default()
        };
        let mut buf = Vec::new();
        write_message(&mut buf, &msg).await.unwrap();
        write_message(&mut buf, &msg).await.unwrap();
        let mut r = &buf[..];
        assert_eq!(read_message(&mut r).await.unwrap(), Some(msg.clone()));
        assert_eq!(read_message(&mut r).await.unwrap(), Some(msg));
        assert!(read_message(&mut r).await.unwrap().is_none());

        // Oversized length prefix: refused before allocating.
        let mut big = Vec::new();
        let mut vb = unsigned_varint::encode::u64_buffer();
        big.extend_from_slice(unsigned_varint::encode::u64(MAX_MESSAGE_SIZE as u64 + 1, &mut vb));
        assert!(matches!(read_message(&mut &big[..]).await, Err(FrameError::TooLarge { .. })));
        // Endless varint, truncated body, garbage protobuf.
        assert!(read_message(&mut &[0xffu8; 11][..]).await.is_err());
        assert!(read_message(&mut &[5u8, 1, 2][..]).await.is_err());
        assert!(read_message(&mut &[3u8, 0xff, 0xff, 0xff][..]).await.is_err());
    }
}
