//! Two or three Vouch nodes in one process: transfer, a lying peer, a timeout.

use std::sync::Arc;
use std::time::Duration;

use vouch_dag::block::{RAW, cid_of};
use vouch_dag::file::{Node as FileNode, import_bytes};
use vouch_dag::{MemoryBlocks, Params};
use vouch_net::{Blocks, BoxError, Cid, NetError};
use vouch_store::Store;

use crate::{bytes, node};

const T: Duration = Duration::from_secs(20);

fn file(len: usize, seed: u64) -> (Vec<u8>, FileNode, MemoryBlocks) {
    let data = bytes(len, seed);
    let mut blocks = MemoryBlocks::default();
    let root = import_bytes(&Params::default(), &data, &mut blocks).unwrap();
    (data, root, blocks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vouch_to_vouch_file_and_directory_into_a_store() {
    let (data, root, mut blocks) = file(3_000_000, 1);
    let (small, small_root) =
        (b"small file\n".to_vec(), import_bytes(&Params::default(), b"small file\n", &mut blocks).unwrap());
    let sub = vouch_dag::dir::directory(&Params::default(), vec![("big.bin".into(), root)], &mut blocks).unwrap();
    let top = vouch_dag::dir::directory(
        &Params::default(),
        vec![("sub".into(), sub), ("small.txt".into(), small_root)],
        &mut blocks,
    )
    .unwrap();
    let (server, _s) = node(1, Arc::new(blocks));

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let (client, _c) = node(2, store.clone());
    assert_eq!(client.connect(server.listen_addrs().await.unwrap()[0].clone()).await.unwrap(), server.peer_id());

    let mut batch = store.batch().unwrap();
    let stats = client.fetch_dag(top.cid, &mut batch, T).await.unwrap();
    batch.pin(top.cid);
    batch.commit().unwrap();
    assert!(stats.fetched > 10 && stats.bytes > 3_000_000, "{stats:?}");
    store.check_complete(&top.cid).unwrap();

    let mut out = Vec::new();
    let big = vouch_dag::export::resolve(&*store, &top.cid, "sub/big.bin").unwrap();
    vouch_dag::export::read_file(&*store, &big, &mut out).unwrap();
    assert!(out == data);
    out.clear();
    let s = vouch_dag::export::resolve(&*store, &top.cid, "small.txt").unwrap();
    vouch_dag::export::read_file(&*store, &s, &mut out).unwrap();
    assert_eq!(out, small);

    // Fetching again finds everything locally.
    let mut sink = MemoryBlocks::default();
    let again = client.fetch_dag(top.cid, &mut sink, T).await.unwrap();
    assert_eq!((again.fetched, again.local), (0, stats.fetched));
    // The bandwidth counters saw the file go from the server to the client, and little back.
    let (sent, got) = (server.bandwidth(), client.bandwidth());
    assert!(sent.total_out >= 3_000_000 && got.total_in >= 3_000_000, "server {sent:?}, client {got:?}");
    assert!(got.total_out < 1_000_000, "the client sent {got:?}");
    client.shutdown().await;
    server.shutdown().await;
}

/// Serves wrong bytes for every block: a peer that lies.
struct Liar(MemoryBlocks);

impl Blocks for Liar {
    fn has(&self, cid: &Cid) -> Result<bool, BoxError> {
        Blocks::has(&self.0, cid)
    }
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, BoxError> {
        Ok(Blocks::get(&self.0, cid)?.map(|mut b| {
            b[0] ^= 1;
            b
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_peer_is_disconnected_and_nothing_bad_is_stored() {
    let (data, root, blocks) = file(600_000, 2);
    let (liar, _l) = node(3, Arc::new(Liar(blocks.clone())));
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let (client, _c) = node(4, store.clone());
    client.connect(liar.listen_addrs().await.unwrap()[0].clone()).await.unwrap();

    let mut batch = store.batch().unwrap();
    let err = client.fetch_dag(root.cid, &mut batch, Duration::from_secs(3)).await.unwrap_err();
    assert!(matches!(err, NetError::Timeout { cid, .. } if cid == root.cid), "{err}");
    drop(batch);
    assert!(!client.peers().await.unwrap().contains(&liar.peer_id()), "the liar is still connected");
    assert_eq!(store.stats().unwrap().blocks, 0);
    // It stays banned: a new connection to it is refused.
    let err = client.connect(liar.listen_addrs().await.unwrap()[0].clone()).await.unwrap_err();
    assert!(err.to_string().contains("banned"), "{err}");

    // An honest peer then serves the same DAG, and only true bytes land in the store.
    let (honest, _h) = node(5, Arc::new(blocks));
    client.connect(honest.listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    let mut batch = store.batch().unwrap();
    client.fetch_dag(root.cid, &mut batch, T).await.unwrap();
    batch.commit().unwrap();
    assert!(store.verify_all().unwrap().is_empty());
    let mut out = Vec::new();
    vouch_dag::export::read_file(&*store, &root.cid, &mut out).unwrap();
    assert!(out == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_every_peer_lacks_fails_early_naming_the_cid() {
    let (a, _a) = node(6, Arc::new(MemoryBlocks::default()));
    let (c, _c) = node(8, Arc::new(MemoryBlocks::default()));
    let (b, _b) = node(7, Arc::new(MemoryBlocks::default()));
    b.connect(a.listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    b.connect(c.listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    let cid = cid_of(RAW, b"nobody has this", false);
    // Both peers answer DONT_HAVE: the fetch fails long before its timeout.
    let started = std::time::Instant::now();
    let err = b.fetch(cid, T).await.unwrap_err();
    assert!(matches!(err, NetError::NotFound { peers: 2, .. }), "{err}");
    assert!(err.to_string().contains(&format!("no connected peer has CID {cid}")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // The peers that said dont-have are still connected: not having a block is no offence.
    let peers = b.peers().await.unwrap();
    assert!(peers.contains(&a.peer_id()) && peers.contains(&c.peer_id()), "{peers:?}");
    // A block the other side has arrives, and identity CIDs need no peer at all.
    let id = Cid::new_v1(RAW, cid::multihash::Multihash::wrap(0, b"inline").unwrap());
    assert_eq!(b.fetch(id, Duration::from_millis(1)).await.unwrap(), b"inline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_no_peer_to_ask_times_out_naming_the_cid() {
    let (b, _b) = node(9, Arc::new(MemoryBlocks::default()));
    let cid = cid_of(RAW, b"nobody has this", false);
    let err = b.fetch(cid, Duration::from_millis(800)).await.unwrap_err();
    assert!(matches!(err, NetError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains(&cid.to_string()), "{err}");
}

/// Two peers hold the same file: each block is asked of one peer at a time (want-block to one,
/// want-have to the other), so no block arrives twice, and the fetch completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_holders_serve_one_dag_without_failing() {
    let (data, root, blocks) = file(1_500_000, 3);
    let (s1, _s1) = node(10, Arc::new(blocks.clone()));
    let (s2, _s2) = node(11, Arc::new(blocks));
    let (client, _c) = node(12, Arc::new(MemoryBlocks::default()));
    client.connect(s1.listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    client.connect(s2.listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    let mut got = MemoryBlocks::default();
    client.fetch_dag(root.cid, &mut got, T).await.unwrap();
    let mut out = Vec::new();
    vouch_dag::export::read_file(&got, &root.cid, &mut out).unwrap();
    assert!(out == data);
    // Neither honest server was mistaken for a liar.
    let peers = client.peers().await.unwrap();
    assert!(peers.contains(&s1.peer_id()) && peers.contains(&s2.peer_id()), "{peers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dag_moves_over_quic_and_job_requests_too() {
    let (data, root, blocks) = file(2_000_000, 7);
    let quic: vouch_net::Multiaddr = "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap();
    let mut sc = vouch_net::Config::new([31; 32]);
    sc.listen = vec![quic.clone()];
    let (server, _s) = crate::node_with(sc, Arc::new(blocks));
    let mut cc = vouch_net::Config::new([32; 32]);
    cc.listen = vec![quic];
    let (client, _c) = crate::node_with(cc, Arc::new(MemoryBlocks::default()));
    let addr = server.listen_addrs().await.unwrap().into_iter().find(|a| a.to_string().contains("/quic-v1")).unwrap();
    assert_eq!(client.connect(addr).await.unwrap(), server.peer_id());

    let mut sink = MemoryBlocks::default();
    let stats = client.fetch_dag(root.cid, &mut sink, T).await.unwrap();
    assert!(stats.bytes > 2_000_000, "{stats:?}");
    let mut out = Vec::new();
    vouch_dag::export::read_file(&sink, &root.cid, &mut out).unwrap();
    assert!(out == data, "the file fetched over QUIC differs");

    // The job protocol's one-frame exchange works over QUIC streams as well.
    let mut requests = server.serve_requests(1).unwrap();
    tokio::spawn(async move {
        while let Some(r) = requests.recv().await {
            let mut answer = r.body.clone();
            answer.reverse();
            r.respond(answer);
        }
    });
    let answer = client.request(server.peer_id(), b"over quic", T).await.unwrap();
    assert_eq!(answer, b"ciuq revo");
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_only_mode_keeps_the_node_on_this_machine() {
    // Listening beyond loopback is refused at start, naming the address.
    let mut wide = vouch_net::Config::new([41; 32]);
    wide.local_only = true;
    wide.listen = vec!["/ip4/0.0.0.0/tcp/0".parse().unwrap()];
    let err =
        vouch_net::Node::spawn(wide, Arc::new(MemoryBlocks::default())).err().expect("a wide listen was accepted");
    assert!(err.to_string().contains("0.0.0.0") && err.to_string().contains("local-only"), "{err}");

    let (data, root, blocks) = file(300_000, 9);
    let (server, _s) = node(42, Arc::new(blocks));
    let mut cc = vouch_net::Config::new([43; 32]);
    cc.local_only = true;
    let (client, _c) = crate::node_with(cc, Arc::new(MemoryBlocks::default()));
    // A peer elsewhere is never dialled.
    let far: vouch_net::Multiaddr = "/ip4/10.255.255.1/tcp/4001".parse().unwrap();
    let err = client.connect(far).await.unwrap_err();
    assert!(matches!(err, NetError::Dial { .. }) && err.to_string().contains("local-only"), "{err}");
    // Peers on this machine work as ever.
    client.connect(server.listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    let mut sink = MemoryBlocks::default();
    client.fetch_dag(root.cid, &mut sink, T).await.unwrap();
    let mut out = Vec::new();
    vouch_dag::export::read_file(&sink, &root.cid, &mut out).unwrap();
    assert!(out == data);
    client.shutdown().await;
    server.shutdown().await;
}
