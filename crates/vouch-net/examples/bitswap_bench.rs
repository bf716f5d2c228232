//! Bitswap transfer benchmark on loopback: Vouch→Vouch, Kubo→Kubo, Kubo→Vouch and Vouch→Kubo,
//! printing MB/s and ratios to Kubo→Kubo. Nothing is asserted.
//!
//! `cargo run --release -p vouch-net --example bitswap_bench -- [MB]` (default 100). The Kubo legs need
//! target/venv with kubo-python (see docs/bitswap.md) and are skipped without it.
//! Each transfer is timed from the first want to the last verified block; node start-up and
//! connection set-up are not timed. The receiving side keeps blocks in memory (Vouch), or in its
//! block store, committed and fsynced (the "stores on disk" leg, as the daemon does), or writes
//! the file out (Kubo's `Download`).

#[path = "../tests/it/kubo_proc.rs"]
mod kubo_proc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use vouch_dag::file::import_bytes;
use vouch_dag::{MemoryBlocks, Params};
use vouch_net::{Config, Node, Protocol};

#[path = "../tests/support/bytes.rs"]
mod support_bytes;
use support_bytes::bytes;

#[tokio::main]
async fn main() {
    let mb: usize = std::env::args().nth(1).map(|a| a.parse().expect("size in MB")).unwrap_or(100);
    let data = bytes(mb * 1_000_000, 1);
    let t = Duration::from_secs(120);
    let mb_s = |secs: f64| data.len() as f64 / 1e6 / secs;

    // Vouch → Vouch.
    let mut blocks = MemoryBlocks::default();
    let root = import_bytes(&Params::default(), &data, &mut blocks).unwrap().cid;
    let (server, _s) = Node::spawn(Config::new([1; 32]), Arc::new(blocks)).unwrap();
    let (client, _c) = Node::spawn(Config::new([2; 32]), Arc::new(MemoryBlocks::default())).unwrap();
    client.connect(server.listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    let started = Instant::now();
    let mut sink = MemoryBlocks::default();
    client.fetch_dag(root, &mut sink, t).await.unwrap();
    let vv = started.elapsed().as_secs_f64();
    drop(sink);
    println!("vouch->vouch  {mb} MB  {vv:7.3} s  {:7.1} MB/s", mb_s(vv));

    // Vouch → Vouch with the daemon's block stores on disk: served from a store, received into
    // a batch that is committed (fsynced) before the clock stops.
    let stores = tempfile::tempdir().unwrap();
    let served = vouch_store::Store::open(&stores.path().join("served")).unwrap();
    let mut batch = served.batch().unwrap();
    import_bytes(&Params::default(), &data, &mut batch).unwrap();
    batch.commit().unwrap();
    let (store_server, _ss) = Node::spawn(Config::new([3; 32]), Arc::new(served)).unwrap();
    let received = vouch_store::Store::open(&stores.path().join("received")).unwrap();
    let (store_client, _sc) = Node::spawn(Config::new([4; 32]), Arc::new(MemoryBlocks::default())).unwrap();
    store_client.connect(store_server.listen_addrs().await.unwrap()[0].clone()).await.unwrap();
    let started = Instant::now();
    let mut batch = received.batch().unwrap();
    store_client.fetch_dag(root, &mut batch, t).await.unwrap();
    batch.pin(root);
    batch.commit().unwrap();
    let vs = started.elapsed().as_secs_f64();
    println!("vouch->vouch, stores on disk  {mb} MB  {vs:7.3} s  {:7.1} MB/s", mb_s(vs));
    drop((store_server, store_client));

    let Some(py) = kubo_proc::python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data.bin");
    std::fs::write(&file, &data).unwrap();

    // Kubo → Kubo (two processes, both through kubo.py).
    let kubo = tokio::task::block_in_place(|| kubo_proc::KuboServe::start(&py, &file));
    assert_eq!(kubo.cid, root, "Kubo and Vouch disagree on the CID");
    let out = tmp.path().join("kk.bin");
    let report = tokio::task::block_in_place(|| kubo_proc::kubo_fetch(&py, &kubo.cid, &kubo.addr, &out));
    let kk = report["seconds"].as_f64().unwrap();
    println!("kubo->kubo    {mb} MB  {kk:7.3} s  {:7.1} MB/s", mb_s(kk));

    // Kubo → Vouch.
    assert_eq!(client.connect(kubo.addr.clone()).await.unwrap().to_string(), kubo.peer_id);
    let started = Instant::now();
    let mut sink = MemoryBlocks::default();
    client.fetch_dag(root, &mut sink, t).await.unwrap();
    let kv = started.elapsed().as_secs_f64();
    drop(sink);
    println!("kubo->vouch   {mb} MB  {kv:7.3} s  {:7.1} MB/s", mb_s(kv));
    drop(kubo);

    // Vouch → Kubo.
    let addr = server.listen_addrs().await.unwrap()[0].clone().with(Protocol::P2p(server.peer_id()));
    let out = tmp.path().join("vk.bin");
    let report = tokio::task::block_in_place(|| kubo_proc::kubo_fetch(&py, &root, &addr, &out));
    let vk = report["seconds"].as_f64().unwrap();
    println!("vouch->kubo   {mb} MB  {vk:7.3} s  {:7.1} MB/s", mb_s(vk));

    println!(
        "ratios to kubo->kubo: vouch->vouch {:.2}x (stores on disk {:.2}x)  kubo->vouch {:.2}x  vouch->kubo {:.2}x",
        kk / vv,
        kk / vs,
        kk / kv,
        kk / vk
    );
}
