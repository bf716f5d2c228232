//! Hand-driven libp2p peers that speak raw bitswap frames at a Vouch node: a block nobody asked
//! for, a wantlist longer than the per-message cap, the want limit, cancels after a block
//! arrives, and late duplicates (forgiven) next to lies (banned).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, Swarm, noise, tcp, yamux};
use tokio::sync::mpsc;
use vouch_dag::block::{RAW, cid_of};
use vouch_dag::{BlockSink, MemoryBlocks, Params};
use vouch_net::message::{self, PROTOCOL_1_2, pb};
use vouch_net::{Blocks, Cid, Config, NetError, NodeHandle};

use crate::{bytes, eventually, node, node_with};

const T: Duration = Duration::from_secs(30);

/// A swarm with only `libp2p-stream`: it opens bitswap streams and writes whatever it is told.
fn raw_peer() -> Swarm<libp2p_stream::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// A raw peer connected to a Vouch node.
struct Raw {
    id: PeerId,
    control: libp2p_stream::Control,
    /// Every bitswap message the node sent it, on any stream.
    from_node: mpsc::UnboundedReceiver<pb::Message>,
    /// Peers whose last connection to it closed.
    closed: mpsc::UnboundedReceiver<PeerId>,
}

impl Raw {
    /// Dial `vouch` and wait (bounded) until the node lists the connection.
    async fn connect(vouch: &NodeHandle) -> Raw {
        let mut swarm = raw_peer();
        let id = *swarm.local_peer_id();
        let mut control = swarm.behaviour().new_control();
        let mut incoming = control.accept(PROTOCOL_1_2).unwrap();
        let (msg_tx, from_node) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some((_, mut stream)) = incoming.next().await {
                let tx = msg_tx.clone();
                tokio::spawn(async move {
                    while let Ok(Some(m)) = message::read_message(&mut stream).await {
                        if tx.send(m).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        swarm.dial(vouch.listen_addrs().await.unwrap()[0].clone()).unwrap();
        let (closed_tx, closed) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                if let SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } = swarm.select_next_some().await
                {
                    let _ = closed_tx.send(peer_id);
                }
            }
        });
        eventually("the raw peer is connected", Duration::from_secs(10), || async {
            vouch.peers().await.unwrap().contains(&id)
        })
        .await;
        Raw { id, control, from_node, closed }
    }

    /// The next message from the node for which `pick` returns something (bounded wait).
    async fn next<R>(&mut self, what: &str, mut pick: impl FnMut(&pb::Message) -> Option<R>) -> R {
        let wait = async {
            loop {
                let m = self.from_node.recv().await.expect("the raw peer's reader stopped");
                if let Some(r) = pick(&m) {
                    return r;
                }
            }
        };
        tokio::time::timeout(T, wait).await.unwrap_or_else(|_| panic!("no message from the node {what} within {T:?}"))
    }

    /// Wait (bounded) until the node's connection to this peer has closed, on this side.
    async fn assert_disconnected_by(&mut self, vouch: &NodeHandle) {
        let gone = tokio::time::timeout(T, self.closed.recv()).await.expect("raw peer not disconnected");
        assert_eq!(gone, Some(vouch.peer_id()));
    }
}

/// Entries of `m`'s wantlist naming `cid`.
fn entries_for<'a>(m: &'a pb::Message, cid: &Cid) -> impl Iterator<Item = &'a pb::Entry> {
    let bytes = cid.to_bytes();
    m.wantlist.iter().flat_map(|wl| wl.entries.iter()).filter(move |e| e.block == bytes)
}

/// A message carrying `data` as one block under `cid`'s prefix.
fn block_msg(cid: &Cid, data: &[u8]) -> pb::Message {
    pb::Message { payload: vec![pb::Block { prefix: message::prefix(cid), data: data.to_vec() }], ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsolicited_block_is_dropped_and_its_sender_disconnected() {
    let blocks = Arc::new(MemoryBlocks::default());
    let (vouch, _v) = node(60, blocks.clone());
    let mut raw = Raw::connect(&vouch).await;

    // A well-formed, correctly hashed block that the Vouch node never asked for.
    let data = b"a block nobody wanted".to_vec();
    let cid = cid_of(RAW, &data, false);
    let mut stream = raw.control.open_stream(vouch.peer_id(), PROTOCOL_1_2).await.unwrap();
    let msg = block_msg(&cid, &data);
    message::write_message(&mut stream, &msg).await.unwrap();

    // The sender is disconnected, and its connection closes on its side too.
    raw.assert_disconnected_by(&vouch).await;
    eventually("the Vouch node drops the raw peer", Duration::from_secs(10), || async {
        !vouch.peers().await.unwrap().contains(&raw.id)
    })
    .await;
    // It is banned: a new connection from it is closed at once.
    let again = raw.control.open_stream(vouch.peer_id(), PROTOCOL_1_2).await;
    if let Ok(mut s) = again {
        // The stream may open before the node closes the connection; nothing it writes is read.
        let _ = message::write_message(&mut s, &msg).await;
        raw.assert_disconnected_by(&vouch).await;
    }

    // Nothing was stored, and the block was not kept anywhere a fetch could find it: with no
    // peer to ask the fetch waits out its timeout.
    assert!(!Blocks::has(&*blocks, &cid).unwrap());
    let err = vouch.fetch(cid, Duration::from_millis(500)).await.unwrap_err();
    assert!(matches!(err, NetError::Timeout { .. }), "{err}");
}

/// `n` distinct small raw blocks, stored in `into`.
fn raw_blocks(n: usize, tag: &str, into: &mut MemoryBlocks) -> Vec<(Cid, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let data = format!("{tag} block {i}").into_bytes();
            let cid = cid_of(RAW, &data, false);
            into.put(&cid, &data).unwrap();
            (cid, data)
        })
        .collect()
}

/// `max_entries_per_message`: of a wantlist longer than the cap only the first entries are
/// served; the rest get nothing, not even the DONT_HAVE they asked for, and the sender is not
/// punished (docs/bitswap.md, Limits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wantlist_longer_than_the_cap_is_served_only_up_to_the_cap() {
    let mut blocks = MemoryBlocks::default();
    let held = raw_blocks(7, "capped", &mut blocks);
    let mut config = Config::new([61; 32]);
    config.max_entries_per_message = 4;
    let (vouch, _v) = node_with(config, Arc::new(blocks));
    let mut raw = Raw::connect(&vouch).await;

    // One message with six want-blocks (each asking for DONT_HAVE), then a want-have for a
    // seventh block as a marker: the node answers one stream's messages in order, so once the
    // marker's HAVE arrives every answer to the first message has too.
    let mut stream = raw.control.open_stream(vouch.peer_id(), PROTOCOL_1_2).await.unwrap();
    let six = held[..6].iter().map(|(c, _)| message::want(c, pb::WantType::Block, 1)).collect();
    message::write_message(&mut stream, &message::wantlist(six, false)).await.unwrap();
    let marker = message::wantlist(vec![message::want(&held[6].0, pb::WantType::Have, 1)], false);
    message::write_message(&mut stream, &marker).await.unwrap();

    let (mut got, mut presences) = (Vec::new(), Vec::new());
    let marker_cid = held[6].0.to_bytes();
    raw.next("answering the marker", |m| {
        got.extend(m.payload.iter().map(|b| b.data.clone()));
        presences.extend(m.block_presences.iter().map(|p| (p.cid.clone(), p.r#type)));
        presences.iter().any(|(c, _)| *c == marker_cid).then_some(())
    })
    .await;
    got.sort();
    let mut first_four: Vec<Vec<u8>> = held[..4].iter().map(|(_, d)| d.clone()).collect();
    first_four.sort();
    assert_eq!(got, first_four, "served blocks");
    assert_eq!(presences, vec![(marker_cid, pb::BlockPresenceType::Have as i32)], "presences");
    // Not an offence: still connected.
    assert!(vouch.peers().await.unwrap().contains(&raw.id));
}

/// `max_wants`: a node with that many blocks wanted refuses another want at once
/// (`WantlistFull`, naming the CID and the limit), and takes new wants again once one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_its_want_limit_refuses_new_wants_until_one_ends() {
    let mut held = MemoryBlocks::default();
    let wanted = raw_blocks(3, "limit", &mut held);
    let (holder, _h) = node(62, Arc::new(held));
    let mut config = Config::new([63; 32]);
    config.max_wants = 2;
    let (vouch, _v) = node_with(config, Arc::new(MemoryBlocks::default()));

    // With no peer connected, two fetches hold the two slots. Each fetch's first poll queues its
    // want, and the node takes commands in order, so both are counted before the third.
    let mut first = Box::pin(vouch.fetch(wanted[0].0, T));
    let mut second = Box::pin(vouch.fetch(wanted[1].0, T));
    assert!(futures::poll!(&mut first).is_pending());
    assert!(futures::poll!(&mut second).is_pending());
    let err = vouch.fetch(wanted[2].0, T).await.unwrap_err();
    match &err {
        NetError::WantlistFull { cid, max: 2 } if *cid == wanted[2].0 => {}
        other => panic!("expected WantlistFull for {}: {other}", wanted[2].0),
    }
    assert!(err.to_string().contains(&wanted[2].0.to_string()), "{err}");

    // A peer with the blocks connects: the two wants are served, and the slots come back.
    vouch.connect(holder.listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    assert_eq!(first.await.unwrap(), wanted[0].1);
    assert_eq!(second.await.unwrap(), wanted[1].1);
    assert_eq!(vouch.fetch(wanted[2].0, T).await.unwrap(), wanted[2].1);
}

/// Once a wanted block arrives from one peer, the node sends CANCEL for it to the other peers
/// it had asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_that_arrives_is_cancelled_at_the_other_peers() {
    let (vouch, _v) = node(64, Arc::new(MemoryBlocks::default()));
    let mut sender = Raw::connect(&vouch).await;
    let mut other = Raw::connect(&vouch).await;
    let data = b"wanted from two peers".to_vec();
    let cid = cid_of(RAW, &data, false);

    let fetch = tokio::spawn({
        let vouch = vouch.clone();
        async move { vouch.fetch(cid, T).await }
    });
    // Both peers are asked (neither has sent a block yet, so both get want-have).
    for raw in [&mut sender, &mut other] {
        raw.next("wanting the block", |m| entries_for(m, &cid).any(|e| !e.cancel).then_some(())).await;
    }
    let mut stream = sender.control.open_stream(vouch.peer_id(), PROTOCOL_1_2).await.unwrap();
    message::write_message(&mut stream, &block_msg(&cid, &data)).await.unwrap();
    assert_eq!(fetch.await.unwrap().unwrap(), data);
    // The other peer is told to stop looking.
    other.next("cancelling the block", |m| entries_for(m, &cid).any(|e| e.cancel).then_some(())).await;
}

/// A block sent again long after it was received (more than 8192 blocks later, beyond what the
/// node remembered before), or a block the node holds but never asked for in this life, is a
/// harmless duplicate: dropped, the sender kept. A block the node neither wanted nor holds still
/// gets its sender banned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_duplicate_is_dropped_without_a_ban_but_an_unheld_block_is_not() {
    // A file of 10 000 64-byte chunks (10 059 blocks) on a Vouch node.
    let mut served = MemoryBlocks::default();
    let params = Params { chunk_size: 64, ..Params::default() };
    let root = vouch_dag::file::import_bytes(&params, &bytes(640_000, 65), &mut served).unwrap();
    let root_bytes = served.blocks[&root.cid].clone();
    let (holder, _h) = node(66, Arc::new(served));
    // The node under test holds one block of its own that it never wanted.
    let mut own = MemoryBlocks::default();
    let held = raw_blocks(1, "held", &mut own).remove(0);
    let (vouch, _v) = node(67, Arc::new(own));
    vouch.connect(holder.listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    let mut sink = MemoryBlocks::default();
    let stats = vouch.fetch_dag(root.cid, &mut sink, T).await.unwrap();
    assert!(stats.fetched > 10_000, "{stats:?}");

    // A raw peer the node now asks for a block Y only it has.
    let mut raw = Raw::connect(&vouch).await;
    let y = b"only the raw peer has this".to_vec();
    let y_cid = cid_of(RAW, &y, false);
    let fetch = tokio::spawn({
        let vouch = vouch.clone();
        async move { vouch.fetch(y_cid, T).await }
    });
    raw.next("wanting Y", |m| entries_for(m, &y_cid).any(|e| !e.cancel).then_some(())).await;
    // It sends, one message each on one stream: the DAG's root (the first block the node received,
    // over 10 000 blocks ago), the block the node holds, then Y. The node reads a stream's blocks
    // in order, each message judged before the next is accepted: had either of the first two got
    // the peer banned, Y would be dropped and the fetch would time out.
    let mut stream = raw.control.open_stream(vouch.peer_id(), PROTOCOL_1_2).await.unwrap();
    for (cid, data) in [(root.cid, &root_bytes), (held.0, &held.1), (y_cid, &y)] {
        message::write_message(&mut stream, &block_msg(&cid, data)).await.unwrap();
    }
    assert_eq!(fetch.await.unwrap().unwrap(), y);
    assert!(vouch.peers().await.unwrap().contains(&raw.id));

    // A correctly hashed block the node neither wanted nor holds: the sender is banned.
    let junk = b"never wanted, never held".to_vec();
    message::write_message(&mut stream, &block_msg(&cid_of(RAW, &junk, false), &junk)).await.unwrap();
    raw.assert_disconnected_by(&vouch).await;
    eventually("the Vouch node drops the raw peer", Duration::from_secs(10), || async {
        !vouch.peers().await.unwrap().contains(&raw.id)
    })
    .await;
}
