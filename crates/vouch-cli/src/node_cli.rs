//! The network side of the CLI: `vouch node` (the daemon, running jobs through this binary's
//! executor), `vouch swarm`, `vouch config`, jobs sent to other nodes (`vouch run --node`,
//! `--near`), and finding a running daemon so commands can use it the way `ipfs` does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use vouch_dag::{BlockSink, Cid, MemoryBlocks};
use vouch_net::{Multiaddr, PeerId};
use vouch_node::{Executor, JobRequest, JobResponse, NodeConfig, Refusal};
use vouch_receipt::{JobSpec, Receipt};
use vouch_store::Store;

use crate::VerificationFailed;
use crate::home::Home;
use crate::job::{self, JobResult};

#[derive(Args)]
pub struct NodeArgs {
    /// A JSON file whose `swarm`, `api`, `bootstrap`, `jobs`, `local_only` and `quota` override
    /// config.json's.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Evidence for receipts of jobs this node runs (default: `tee` in config.json, else none).
    #[arg(long, value_name = "TEE")]
    pub tee: Option<String>,
    /// TPM to quote with (default: $VOUCH_TCTI, else `tcti` in config.json).
    #[arg(long, value_name = "STRING", env = "VOUCH_TCTI")]
    pub tcti: Option<String>,
}

/// This binary's job executor, lent to the daemon: the sandbox, the node key and its evidence.
pub(crate) struct NodeExecutor {
    home: Home,
    sandbox: vouch_sandbox::Sandbox,
    key: crate::home::NodeKey,
    attest: job::Attest,
}

impl NodeExecutor {
    /// The executor `vouch node` runs jobs with: this home's key, sandbox and attestation.
    pub(crate) fn new(home: &Home, tee: Option<&str>, tcti: Option<&str>) -> Result<NodeExecutor> {
        Ok(NodeExecutor {
            home: Home { dir: home.dir.clone() },
            sandbox: job::sandbox(home)?,
            key: home.identity()?,
            attest: crate::jobs_cli::node_attest(home, tee, tcti)?,
        })
    }
}

impl Executor for NodeExecutor {
    fn execute(&self, store: &Store, spec: &JobSpec, sources: &vouch_node::KeySources) -> Result<Cid, Refusal> {
        let internal = |e: anyhow::Error| Refusal::Internal(format!("{e:#}"));
        if spec.deterministic
            && let Some((cid, _)) =
                job::memoised(&self.home, store, &spec.cid(), self.attest.technology).map_err(internal)?
        {
            return Ok(cid);
        }
        let endorsements = sources
            .endorsements
            .iter()
            .map(|b| {
                serde_ipld_dagcbor::from_slice::<vouch_seal::ModuleEndorsement>(b)
                    .map_err(|e| Refusal::BadRequest(format!("a module endorsement does not decode: {e}")))
            })
            .collect::<Result<Vec<_>, Refusal>>()?;
        let brokers = sources
            .brokers
            .iter()
            .map(|b| b.parse().map_err(|e| Refusal::BadRequest(format!("broker {b:?} is not a multiaddr: {e}"))))
            .collect::<Result<Vec<vouch_net::Multiaddr>, Refusal>>()?;
        // Keys for sealed parts: a broker's refusal is the job's refusal, with its rule.
        let keys = crate::seal_cli::release(&self.home, store, spec, &self.attest, &self.key, &brokers, &endorsements)
            .map_err(|e| Refusal::Policy(format!("{e:#}")))?;
        let r =
            job::execute(&self.home, store, &self.sandbox, &self.key, &self.attest, spec, &keys).map_err(internal)?;
        Ok(r.receipt_cid)
    }

    fn evidence(&self, store: &Store, nonce: Option<&[u8]>) -> Result<serde_json::Value, Refusal> {
        let e = self
            .attest
            .current(&self.home, store, &self.key, nonce)
            .map_err(|e| Refusal::Internal(format!("{e:#}")))?;
        let body = match &e.body {
            Some(vouch_receipt::EvidenceBody::Link(c)) => Some(c.to_string()),
            _ => None,
        };
        Ok(serde_json::json!({
            "Technology": e.technology.as_str(),
            "NodeKey": hex::encode(self.key.verifying_key().to_bytes()),
            "Nonce": hex::encode(&e.nonce),
            "ReportData": hex::encode(e.report_data),
            "ProducedAt": e.produced_at,
            "Body": body,
            "HardwareClaim": e.technology.as_str() != "none",
        }))
    }
}

/// `config.json`'s network settings, then `--config FILE`'s.
fn node_config(home: &Home, file: Option<&Path>) -> Result<NodeConfig> {
    let mut config = NodeConfig::default();
    config.apply_json(&home.config()?, &home.dir.join("config.json").display().to_string())?;
    if let Some(f) = file {
        let bytes = std::fs::read(f).with_context(|| format!("--config {}", f.display()))?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("--config {}: not valid JSON", f.display()))?;
        config.apply_json(&v, &f.display().to_string())?;
    }
    Ok(config)
}

/// `vouch node`: run the daemon in the foreground until SIGINT or SIGTERM.
pub fn node(home: &Home, a: NodeArgs) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,vouch_node=info,vouch_net=info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let config = node_config(home, a.config.as_deref())?;
    let executor = NodeExecutor::new(home, a.tee.as_deref(), a.tcti.as_deref())?;
    let technology = executor.attest.technology;
    let broker: Arc<dyn vouch_node::KeyService> = Arc::new(crate::seal_cli::NodeBroker::new(home)?);
    vouch_node::run_foreground(&home.dir, config, Some(Arc::new(executor)), Some(broker), |info| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "peer id  {}", info.peer_id);
        for a in &info.swarm {
            let _ = writeln!(out, "swarm    {a}");
        }
        let _ = writeln!(out, "api      http://{}", info.api);
        let _ = writeln!(out, "evidence {technology}");
        let _ = writeln!(out, "node ready");
        let _ = out.flush();
    })?;
    Ok(())
}

/// The HTTP address of the daemon running on this home, if one answers there.
pub fn running_daemon(home: &Home) -> Option<String> {
    let addr = std::fs::read_to_string(home.dir.join(vouch_node::API_FILE)).ok()?;
    let addr = addr.trim().to_string();
    let sock: std::net::SocketAddr = addr.parse().ok()?;
    std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(1)).ok()?;
    Some(addr)
}

/// POST to the running daemon's API; its JSON answer, or its JSON error as an error.
pub fn api_post(addr: &str, path_and_query: &str, timeout: Duration) -> Result<serde_json::Value> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into();
    let url = format!("http://{addr}{path_and_query}");
    let mut resp = agent.post(&url).send_empty().with_context(|| format!("the daemon at {addr}"))?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_vec().with_context(|| format!("the daemon at {addr}"))?;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| format!("the daemon at {addr} answered {status} with a body that is not JSON"))?;
    if status != 200 {
        bail!("the daemon at {addr}: {}", v["error"].as_str().unwrap_or("request failed"));
    }
    Ok(v)
}

/// Percent-encode a query value (CIDs and multiaddrs hold `/`).
fn q(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Make `root` available locally: nothing to do when its root block is stored (DAGs arrive
/// whole: imports and fetches commit only complete DAGs, so a missing deeper block is reported
/// by the read itself); else, when a daemon runs, have it fetch the DAG from its peers over
/// bitswap into the same store.
pub fn ensure_local(home: &Home, store: &Store, root: &Cid, timeout: Duration) -> Result<()> {
    if root.hash().code() == vouch_dag::block::IDENTITY || store.has(root)? {
        return Ok(());
    }
    let Some(addr) = running_daemon(home) else {
        bail!(
            "block {root} not found in the store, and no daemon runs to fetch it from the network (start `vouch node`)"
        );
    };
    let secs = timeout.as_secs_f64();
    let query = format!("/api/v0/dag/fetch?arg={}&timeout={secs}s", q(&root.to_string()));
    // Bounded: per-block timeouts add up over a DAG; this caps the whole wait.
    api_post(&addr, &query, timeout * 16 + Duration::from_secs(5))?;
    Ok(())
}

/// Tell a running daemon to announce `cid` on the DHT (after `vouch add` wrote it to the store).
pub fn announce(home: &Home, cid: &Cid) -> Result<()> {
    if let Some(addr) = running_daemon(home) {
        api_post(&addr, &format!("/api/v0/routing/provide?arg={}", q(&cid.to_string())), Duration::from_secs(10))?;
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum SwarmCmd {
    /// Connect the running daemon to a peer.
    Connect { addr: String },
    /// The running daemon's connected peers.
    Peers {
        #[arg(long)]
        json: bool,
    },
}

pub fn swarm(home: &Home, c: SwarmCmd) -> Result<()> {
    let addr = running_daemon(home).context("no daemon is running on this home (start `vouch node`)")?;
    match c {
        SwarmCmd::Connect { addr: peer } => {
            peer.parse::<Multiaddr>().with_context(|| format!("{peer:?} is not a multiaddr"))?;
            let v = api_post(&addr, &format!("/api/v0/swarm/connect?arg={}", q(&peer)), Duration::from_secs(30))?;
            println!("connect {} success", v["Peer"].as_str().unwrap_or("?"));
        }
        SwarmCmd::Peers { json } => {
            let v = api_post(&addr, "/api/v0/swarm/peers", Duration::from_secs(10))?;
            if json {
                println!("{v}");
            } else {
                for p in v["Peers"].as_array().into_iter().flatten() {
                    println!("{}", p["Peer"].as_str().unwrap_or("?"));
                }
            }
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct ConfigArgs {
    /// The key to show or set (`swarm`, `api`, `bootstrap`, `jobs`, `tee`, `tcti`, …); all of
    /// config.json when absent.
    pub key: Option<String>,
    /// The new value: JSON (`'["/ip4/127.0.0.1/tcp/4002"]'`, `3`), or a plain string.
    pub value: Option<String>,
}

/// `vouch config [KEY [VALUE]]`: show or set config.json; network keys are checked as the daemon
/// reads them before anything is written.
pub fn config(home: &Home, a: ConfigArgs) -> Result<()> {
    let mut config = home.config()?;
    let Some(key) = a.key else {
        println!("{}", serde_json::to_string_pretty(&config)?);
        return Ok(());
    };
    let Some(value) = a.value else {
        match config.get(&key) {
            Some(v) => println!("{}", serde_json::to_string_pretty(v)?),
            None => bail!("config.json has no key {key:?}"),
        }
        return Ok(());
    };
    let value = serde_json::from_str(&value).unwrap_or(serde_json::Value::String(value));
    config[&key] = value;
    // Validate the network settings as `vouch node` will read them.
    NodeConfig::default().apply_json(&config, &format!("config {key}"))?;
    let path = home.dir.join("config.json");
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&config)?).with_context(|| format!("{}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("{}", path.display()))?;
    Ok(())
}

/// Where `vouch run` sends a job.
pub enum Target {
    /// A node's multiaddr (with or without `/p2p/PEER`).
    Node(Multiaddr),
    /// Whichever node the DHT says provides this CID.
    Near(Cid),
}

/// Bootstrap peers for a client's DHT lookups: config.json's `bootstrap`, and the running local
/// daemon's swarm addresses.
fn bootstrap_peers(home: &Home) -> Result<Vec<Multiaddr>> {
    let config = node_config(home, None)?;
    let mut peers = config.bootstrap;
    if let Ok(text) = std::fs::read_to_string(home.dir.join(vouch_node::SWARM_FILE))
        && running_daemon(home).is_some()
    {
        peers.extend(text.lines().filter_map(|l| l.trim().parse().ok()));
    }
    Ok(peers)
}

/// Send `spec` to another node and wait for its receipt: a short-lived libp2p node with a fresh
/// key serves the local store (so the remote fetches the module and any inputs it lacks), the
/// job goes over `/vouch/job/1.0.0`, and the answer is checked before it is believed: the
/// receipt must be for this job, signed by the key of the peer that answered, and verify under
/// `opts` (so `none` evidence needs `--allow-insecure`).
pub fn run_remote(
    home: &Home,
    store: Store,
    spec: &JobSpec,
    target: Target,
    fetch_timeout: Duration,
    opts: vouch_receipt::VerifyOptions,
    sources: &vouch_node::KeySources,
) -> Result<(JobResult, PeerId)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let job = spec.cid();
    let store = Arc::new(store);
    let bootstrap = if matches!(target, Target::Near(_)) { bootstrap_peers(home)? } else { Vec::new() };
    let (peer, answer) = rt.block_on(async {
        let mut config = vouch_net::Config::new(rand::random());
        config.bootstrap = bootstrap.clone();
        let (net, task) = vouch_net::Node::spawn(config, store.clone())?;
        let result = async {
            let peer = match &target {
                Target::Node(addr) => net.connect(addr.clone()).await.with_context(|| format!("--node {addr}"))?,
                Target::Near(cid) => find_near(&net, cid, bootstrap.is_empty()).await?,
            };
            let wall = Duration::from_millis(spec.limits.wall_time_ms);
            let mut request = JobRequest::new(spec, fetch_timeout);
            request.brokers = sources.brokers.clone();
            request.endorsements = sources.endorsements.iter().cloned().map(serde_bytes::ByteBuf::from).collect();
            let body = request.encode();
            let answer = net
                .request(peer, &body, fetch_timeout * 2 + wall + Duration::from_secs(60))
                .await
                .with_context(|| format!("sending job {job} to {peer}"))?;
            anyhow::Ok((peer, JobResponse::decode(&answer).map_err(anyhow::Error::msg)?))
        }
        .await;
        net.shutdown().await;
        let _ = task.await;
        result
    })?;
    let (receipt_cid, car) = match answer {
        JobResponse::Refused { code, reason } => bail!("node {peer} refused job {job}: {reason} ({code})"),
        JobResponse::Receipt { receipt, car, .. } => (receipt, car),
    };
    // Every block hash-checked by the CAR reader; kept in memory until the receipt verifies.
    let mut blocks = MemoryBlocks::default();
    let bytes = vouch_node::jobs::read_answer_car(&car, &receipt_cid, &mut blocks).map_err(anyhow::Error::msg)?;
    let receipt = Receipt::decode(&bytes).with_context(|| format!("the answer of {peer}"))?;
    let b = &receipt.body;
    if b.job != job {
        return Err(VerificationFailed(format!("{peer} answered with a receipt for job {}, not {job}", b.job)).into());
    }
    let signer = vouch_node::peer_id_of(
        &ed25519_dalek::VerifyingKey::from_bytes(&b.node_key).context("the receipt's node key")?,
    );
    if signer != peer {
        return Err(
            VerificationFailed(format!("the receipt is signed by {signer}, not by {peer} which answered")).into()
        );
    }
    let report = vouch_receipt::verify_with(&bytes, &opts, &|c| vouch_dag::BlockSource::get(&blocks, c).ok());
    if !report.verified() {
        let reason = report.first_failure().map_or_else(|| "unknown".to_string(), ToString::to_string);
        return Err(VerificationFailed(format!("the receipt from {peer} did not verify: {reason}")).into());
    }
    // Verified: keep the answer. Results that did not travel inline stay on the node.
    let mut batch = store.batch()?;
    for (cid, data) in &blocks.blocks {
        batch.put(cid, data)?;
    }
    for root in [b.output, b.stdout, b.stderr].into_iter().flatten() {
        if vouch_dag::car::walk_dag(&blocks, &root, |_, _| Ok(())).is_ok() {
            batch.pin(root);
        }
    }
    batch.commit()?;
    let dir = home.dir.join("receipts");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{receipt_cid}.car")), &car)?;
    let mut stdout = Vec::new();
    if let Some(s) = b.stdout {
        let _ = vouch_dag::export::read_file(&blocks, &s, &mut stdout);
    }
    Ok((JobResult { receipt_cid, receipt, cached: false, stdout }, peer))
}

/// A provider of `cid` other than this client, connected.
async fn find_near(net: &vouch_net::NodeHandle, cid: &Cid, no_bootstrap: bool) -> Result<PeerId> {
    if no_bootstrap {
        bail!(
            "--near {cid}: no DHT peer to ask: set `bootstrap` in config.json (vouch config bootstrap '[\"/ip4/…/p2p/…\"]') \
             or start `vouch node` on this home"
        );
    }
    // Wait for the bootstrap connections before asking.
    for _ in 0..100 {
        if !net.peers().await?.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let me = net.peer_id();
    let providers = net.find_providers(*cid, Duration::from_secs(20)).await?;
    for (peer, addrs) in providers.into_iter().filter(|(p, _)| *p != me) {
        if net.peers().await?.contains(&peer) {
            return Ok(peer);
        }
        for addr in addrs {
            if let Ok(p) = net.connect(addr.with(vouch_net::Protocol::P2p(peer))).await {
                return Ok(p);
            }
        }
    }
    bail!("--near {cid}: no node on the DHT provides it (asked through the bootstrap peers)")
}
