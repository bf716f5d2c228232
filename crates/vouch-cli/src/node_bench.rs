//! `vouch bench node`: a `vouch node` daemon in this process on loopback, measured from the
//! outside. Job round trips for a tiny module whose compiled form is cached, through the HTTP
//! API and through the libp2p job protocol, next to the executor called directly (the work
//! without the transport) and a bare HTTP round trip (`/api/v0/id`): once for a memoised job
//! (answered from the stored receipt) and once for fresh jobs (each request a new job CID, so
//! the module runs, a receipt is signed and its own commit is fsynced before the answer); then
//! trustless-gateway CAR throughput for a large DAG next to exporting the same DAG as a CAR in
//! process. Nothing is asserted: it prints figures and ratios from one run.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vouch_dag::{BlockSink, Params};
use vouch_node::{Executor, JobRequest, JobResponse, NodeConfig};

use crate::bench::{TINY, generate, mbps, percentiles, time_us};
use crate::home::Home;
use crate::node_cli::NodeExecutor;

pub fn bench_node(runs: usize, car_size: u64) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let home = Home { dir: scratch.path().join("home") };
    let store = home.store()?;
    home.identity()?;
    // The tiny module, and the large DAG for the gateway, go in before the daemon starts.
    let mut batch = store.batch()?;
    let module = vouch_dag::file::import_bytes(&Params::default(), TINY.as_bytes(), &mut batch)?.cid;
    batch.commit()?;
    let data = scratch.path().join("data.bin");
    eprintln!("generating and adding {car_size} bytes");
    generate(&data, car_size)?;
    let mut batch = store.batch()?;
    let root =
        crate::import::import_reader(&Params::default(), std::fs::File::open(&data)?, true, &mut batch, &|_| {})?.cid;
    batch.pin(root);
    batch.commit()?;
    std::fs::remove_file(&data)?;

    let mut spec = vouch_receipt::JobSpec::new(module);
    spec.args = vec!["tiny.wasm".into()];
    let spec_bytes = spec.encode();
    // A fresh job per call: the same module, an argument that makes a new job CID.
    let mut fresh_count = 0u64;
    let mut fresh = move || {
        fresh_count += 1;
        let mut s = vouch_receipt::JobSpec::new(module);
        s.args = vec!["tiny.wasm".into(), format!("fresh-{fresh_count}")];
        s
    };
    let executor = Arc::new(NodeExecutor::new(&home, Some("none"), None)?);
    // First run executes; every later one is answered from the memoised receipt.
    let receipt = executor.execute(&store, &spec, &Default::default()).map_err(|r| anyhow::anyhow!("{r}"))?;
    let warmup = 50;
    let time = |f: &mut dyn FnMut() -> Result<()>| time_us(runs, warmup, f);
    let direct = time(&mut || {
        let r = executor.execute(&store, &spec, &Default::default()).map_err(|r| anyhow::anyhow!("{r}"))?;
        anyhow::ensure!(r == receipt, "the memoised receipt changed");
        Ok(())
    })?;
    let direct_fresh = time(&mut || {
        executor.execute(&store, &fresh(), &Default::default()).map_err(|r| anyhow::anyhow!("{r}"))?;
        Ok(())
    })?;

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let config = NodeConfig {
        api: "127.0.0.1:0".parse()?,
        swarm: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        ..NodeConfig::default()
    };
    let daemon = rt.block_on(vouch_node::Daemon::start(&home.dir, config, Some(executor.clone())))?;
    let api = daemon.info().api;
    let swarm = daemon.info().swarm.first().context("the daemon listens nowhere")?.clone();

    // HTTP, one keep-alive connection.
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(30))).build().into();
    let id_url = format!("http://{api}/api/v0/id");
    let bare_http = time(&mut || {
        agent.get(&id_url).call()?.body_mut().read_to_vec()?;
        Ok(())
    })?;
    let submit_url = format!("http://{api}/api/v0/job/submit");
    let http_job = time(&mut || {
        let body = agent.post(&submit_url).send(&spec_bytes[..])?.body_mut().read_to_vec()?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        anyhow::ensure!(v["Receipt"] == receipt.to_string().as_str(), "HTTP answer: {v}");
        Ok(())
    })?;
    let http_fresh = time(&mut || {
        let body = agent.post(&submit_url).send(&fresh().encode()[..])?.body_mut().read_to_vec()?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        anyhow::ensure!(v["Receipt"].is_string(), "HTTP answer: {v}");
        Ok(())
    })?;

    // libp2p: a client node connected once; each job is one stream, one frame each way.
    let store = Arc::new(store);
    let (net, task) = {
        let _in_runtime = rt.enter();
        vouch_net::Node::spawn(vouch_net::Config::new(rand::random()), store.clone())?
    };
    let peer = rt.block_on(net.connect(swarm))?;
    let request = JobRequest::new(&spec, Duration::from_secs(10)).encode();
    let p2p_job = time(&mut || {
        let answer = rt.block_on(net.request(peer, &request, Duration::from_secs(30)))?;
        match JobResponse::decode(&answer).map_err(anyhow::Error::msg)? {
            JobResponse::Receipt { receipt: r, .. } if r == receipt => Ok(()),
            other => bail!("job protocol answer: {other:?}"),
        }
    })?;
    let p2p_fresh = time(&mut || {
        let request = JobRequest::new(&fresh(), Duration::from_secs(10)).encode();
        let answer = rt.block_on(net.request(peer, &request, Duration::from_secs(30)))?;
        match JobResponse::decode(&answer).map_err(anyhow::Error::msg)? {
            JobResponse::Receipt { .. } => Ok(()),
            other => bail!("job protocol answer: {other:?}"),
        }
    })?;

    let row = |name: &str, v: Vec<f64>, anchor: f64| {
        let (p50, p99) = percentiles(v);
        println!("{name:<62} {p50:>9.1} {p99:>9.1} {:>9.2}x", p50 / anchor);
    };
    let (direct_p50, _) = percentiles(direct.clone());
    println!("job round trip, tiny module compiled once, loopback ({runs} runs each, after {warmup} warm-up runs)");
    println!(
        "{:<62} {:>9} {:>9} {:>10}",
        "memoised job (answered from its stored receipt)", "p50 µs", "p99 µs", "p50/direct"
    );
    row("executor called in process (anchor: the work, no transport)", direct, direct_p50);
    row("bare HTTP round trip, GET /api/v0/id", bare_http, direct_p50);
    row("HTTP POST /api/v0/job/submit (JSON answer)", http_job, direct_p50);
    row("libp2p /vouch/job/1.0.0 (receipt CAR answer)", p2p_job, direct_p50);
    let (fresh_p50, _) = percentiles(direct_fresh.clone());
    println!("{:<62} {:>9} {:>9} {:>10}", "fresh job (runs, signs, fsyncs its commit)", "", "", "p50/direct");
    row("executor called in process (anchor)", direct_fresh, fresh_p50);
    row("HTTP POST /api/v0/job/submit", http_fresh, fresh_p50);
    row("libp2p /vouch/job/1.0.0", p2p_fresh, fresh_p50);

    // Gateway CAR throughput, against exporting the same DAG as a CAR in process.
    let t = Instant::now();
    let mut w = vouch_dag::car::CarWriter::new(std::io::sink(), &[root])?;
    vouch_dag::car::walk_dag(&*store, &root, |c, d| w.put(c, d).map_err(vouch_store::StoreError::Dag))?;
    w.finish()?;
    let in_process = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut resp = agent.get(&format!("http://{api}/ipfs/{root}?format=car")).call()?;
    let mut body = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 1 << 20];
    let mut car_bytes = 0u64;
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            break;
        }
        car_bytes += n as u64;
    }
    let gateway = t.elapsed().as_secs_f64();
    println!(
        "gateway CAR of a {car_size}-byte file ({car_bytes} CAR bytes): in process {:.0} MB/s (anchor), \
         GET /ipfs/{{cid}}?format=car {:.0} MB/s ({:.2}x)",
        mbps(car_bytes, in_process),
        mbps(car_bytes, gateway),
        in_process / gateway
    );

    rt.block_on(async {
        net.shutdown().await;
        let _ = task.await;
        daemon.shutdown().await
    })?;
    Ok(())
}
