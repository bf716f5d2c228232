//! Content routing over Kademlia: five Vouch nodes in one process, node 0 the bootstrap peer of the
//! others; a provider found through the DHT, dialled and fetched from.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vouch_dag::block::{RAW, cid_of};
use vouch_dag::file::import_bytes;
use vouch_dag::{MemoryBlocks, Params};
use vouch_net::{Config, NodeHandle};

use crate::{bytes, eventually, node, node_with, with_peer};

const T: Duration = Duration::from_secs(20);

/// Node 0 plus `blocks.len()` nodes bootstrapped from it; seeds start at `seed`.
async fn network(seed: u8, blocks: Vec<MemoryBlocks>) -> Vec<(NodeHandle, tokio::task::JoinHandle<()>)> {
    let boot = node(seed, Arc::new(MemoryBlocks::default()));
    let boot_addr = with_peer(&boot.0.listen_addrs().await.unwrap()[0], boot.0.peer_id());
    let mut nodes = vec![boot];
    for (i, b) in blocks.into_iter().enumerate() {
        let mut config = Config::new([seed + 1 + i as u8; 32]);
        config.bootstrap = vec![boot_addr.clone()];
        nodes.push(node_with(config, Arc::new(b)));
    }
    for (n, _) in &nodes[1..] {
        eventually("every node is connected to the bootstrap node", T, || async {
            n.peers().await.unwrap().contains(&nodes[0].0.peer_id())
        })
        .await;
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_found_through_the_dht_is_dialled_and_fetched_from() {
    let data = bytes(700_000, 40);
    let mut held = MemoryBlocks::default();
    let root = import_bytes(&Params::default(), &data, &mut held).unwrap().cid;
    let empty = MemoryBlocks::default;
    let nodes = network(40, vec![empty(), empty(), empty(), held]).await;
    let (n1, n2, n4) = (&nodes[1].0, &nodes[2].0, &nodes[4].0);

    // Returns once the record has been sent to the closest peers; before that a search from a
    // node that cannot reach node 4 itself could come back empty.
    n4.provide_and_wait(root).await.unwrap();
    eventually("node 2 finds node 4 as a provider", T, || async {
        n2.find_providers(root, Duration::from_secs(2)).await.unwrap().iter().any(|(p, _)| *p == n4.peer_id())
    })
    .await;

    // Node 1 has never been told about node 4: cut any connection Kademlia made between them.
    // (Kademlia may dial it again at once while refreshing its table; what matters below is
    // that the provider record carries node 4's addresses.)
    n1.disconnect(n4.peer_id()).await.unwrap();

    let started = Instant::now();
    let providers = n1.find_providers(root, Duration::from_secs(10)).await.unwrap();
    let (_, addrs) = providers
        .iter()
        .find(|(p, _)| *p == n4.peer_id())
        .unwrap_or_else(|| panic!("node 4 not among the providers {providers:?}"));
    assert!(!addrs.is_empty(), "node 4 listed without an address");
    assert_eq!(providers.len(), 1, "only node 4 provides the CID: {providers:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "search took {:?}", started.elapsed());

    assert_eq!(n1.connect(with_peer(&addrs[0], n4.peer_id())).await.unwrap(), n4.peer_id());
    let mut got = MemoryBlocks::default();
    let stats = n1.fetch_dag(root, &mut got, T).await.unwrap();
    assert!(stats.fetched >= 3, "{stats:?}");
    let mut out = Vec::new();
    vouch_dag::export::read_file(&got, &root, &mut out).unwrap();
    assert!(out == data, "fetched bytes differ");

    for (n, _) in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cid_nobody_provides_yields_no_providers_within_the_timeout() {
    let nodes = network(50, vec![MemoryBlocks::default(), MemoryBlocks::default(), MemoryBlocks::default()]).await;
    let cid = cid_of(RAW, b"provided by nobody", false);
    let timeout = Duration::from_secs(3);
    let started = Instant::now();
    let providers = nodes[2].0.find_providers(cid, timeout).await.unwrap();
    assert!(providers.is_empty(), "{providers:?}");
    assert!(started.elapsed() < timeout + Duration::from_secs(5), "took {:?}", started.elapsed());

    // A node that knows no peer at all answers at once, empty.
    let (alone, _a) = node(59, Arc::new(MemoryBlocks::default()));
    let started = Instant::now();
    assert!(alone.find_providers(cid, timeout).await.unwrap().is_empty());
    assert!(started.elapsed() < timeout + Duration::from_secs(5), "took {:?}", started.elapsed());

    // Bootstrap addresses must name the peer.
    let err = alone.bootstrap(vec!["/ip4/127.0.0.1/tcp/1".parse().unwrap()]).await.unwrap_err();
    assert!(err.to_string().contains("/p2p/"), "{err}");
    // A bootstrap added at run time connects and joins the DHT.
    let boot = with_peer(&nodes[0].0.listen_addrs().await.unwrap()[0], nodes[0].0.peer_id());
    alone.bootstrap(vec![boot]).await.unwrap();
    eventually("the late node connects to the bootstrap node", T, || async {
        alone.peers().await.unwrap().contains(&nodes[0].0.peer_id())
    })
    .await;
}
