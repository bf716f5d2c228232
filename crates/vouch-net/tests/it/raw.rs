//! A hand-driven libp2p peer that speaks raw bitswap frames at a Vouch node: pushes a block
//! nobody asked for.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, Swarm, noise, tcp, yamux};
use tokio::sync::mpsc;
use vouch_dag::MemoryBlocks;
use vouch_dag::block::{RAW, cid_of};
use vouch_net::message::{self, PROTOCOL_1_2, pb};
use vouch_net::{Blocks, NetError};

use crate::{eventually, node};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsolicited_block_is_dropped_and_its_sender_disconnected() {
    let blocks = Arc::new(MemoryBlocks::default());
    let (vouch, _v) = node(60, blocks.clone());
    let addr = vouch.listen_addrs().await.unwrap()[0].clone();

    let mut swarm = raw_peer();
    let raw_id: PeerId = *swarm.local_peer_id();
    let mut control = swarm.behaviour().new_control();
    swarm.dial(addr).unwrap();
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            if let SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } = swarm.select_next_some().await {
                let _ = closed_tx.send(peer_id);
            }
        }
    });
    eventually("the raw peer is connected", Duration::from_secs(10), || async {
        vouch.peers().await.unwrap().contains(&raw_id)
    })
    .await;

    // A well-formed, correctly hashed block that the Vouch node never asked for.
    let data = b"a block nobody wanted".to_vec();
    let cid = cid_of(RAW, &data, false);
    let mut stream = control.open_stream(vouch.peer_id(), PROTOCOL_1_2).await.unwrap();
    let msg = pb::Message { payload: vec![pb::Block { prefix: message::prefix(&cid), data }], ..Default::default() };
    message::write_message(&mut stream, &msg).await.unwrap();

    // The sender is disconnected, and its connection closes on its side too.
    let gone = tokio::time::timeout(Duration::from_secs(10), closed.recv()).await.expect("raw peer not disconnected");
    assert_eq!(gone, Some(vouch.peer_id()));
    eventually("the Vouch node drops the raw peer", Duration::from_secs(10), || async {
        !vouch.peers().await.unwrap().contains(&raw_id)
    })
    .await;
    // It is banned: a new connection from it is closed at once.
    let again = control.open_stream(vouch.peer_id(), PROTOCOL_1_2).await;
    if let Ok(mut s) = again {
        // The stream may open before the node closes the connection; nothing it writes is read.
        let _ = message::write_message(&mut s, &msg).await;
        let gone = tokio::time::timeout(Duration::from_secs(10), closed.recv()).await.expect("banned peer kept");
        assert_eq!(gone, Some(vouch.peer_id()));
    }

    // Nothing was stored, and the block was not kept anywhere a fetch could find it: with no
    // peer to ask the fetch waits out its timeout.
    assert!(!Blocks::has(&*blocks, &cid).unwrap());
    let err = vouch.fetch(cid, Duration::from_millis(500)).await.unwrap_err();
    assert!(matches!(err, NetError::Timeout { .. }), "{err}");
}
