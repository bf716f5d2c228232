//! The Vouch daemon: the store, the libp2p node ([`vouch_net`]) and a loopback HTTP API with a
//! trustless-gateway subset, composed into one [`Daemon`].
//!
//! [`Daemon::start`] opens `$VOUCH_HOME` (the ed25519 node key `identity.pem`, which is also the
//! libp2p identity, and the store `store/`), starts the swarm and the HTTP server, and writes
//! `$VOUCH_HOME/api` (the HTTP address) and `$VOUCH_HOME/swarm` (the listen multiaddrs) so that
//! CLI commands can find it, and `$VOUCH_HOME/pid`, locked while it runs, so that a second daemon
//! on the same home is refused; [`Daemon::shutdown`] removes them again. Routes: `docs/http-api.md`.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), vouch_node::NodeError> {
//! use vouch_node::{Daemon, NodeConfig};
//!
//! let home = std::path::Path::new("/tmp/vouch-home"); // holds identity.pem
//! let mut config = NodeConfig::default();
//! config.api = "127.0.0.1:0".parse().unwrap();
//! let daemon = Daemon::start(home, config, None).await?; // None: runs no jobs
//! println!("{} at http://{}", daemon.info().peer_id, daemon.info().api);
//! vouch_node::wait_for_signal().await?;
//! daemon.shutdown().await
//! # }
//! ```

mod api;
mod gateway;
pub mod jobs;

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{SigningKey, VerifyingKey};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vouch_net::{Multiaddr, NetError, Node, NodeHandle, PeerId, Protocol};
use vouch_store::{Store, StoreError};

pub use jobs::{Executor, JobRequest, JobResponse, JobStatus, KeySources, Quota, Refusal, Requester};
pub use vouch_net::AGENT_VERSION;

/// File in `$VOUCH_HOME` holding the HTTP API address (`127.0.0.1:5080`) while a daemon runs.
pub const API_FILE: &str = "api";
/// File in `$VOUCH_HOME` holding the daemon's process id while it runs, locked (`flock`) for the
/// daemon's lifetime: a second daemon on the same home is refused, and a file left by a crash
/// holds no lock and is taken over.
pub const PID_FILE: &str = "pid";
/// File in `$VOUCH_HOME` holding the swarm listen multiaddrs (one per line, with `/p2p/`) while a
/// daemon runs.
pub const SWARM_FILE: &str = "swarm";

/// How the daemon listens. Every field documents its default; `config.json` and `vouch node
/// --config FILE` set them through [`NodeConfig::apply_json`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// Swarm listen addresses (`swarm`). Default: `/ip4/127.0.0.1/tcp/4002` and
    /// `/ip4/127.0.0.1/udp/4002/quic-v1` (loopback; 4001 is left to a Kubo on the same
    /// machine). Anything wider is a deliberate choice.
    pub swarm: Vec<Multiaddr>,
    /// HTTP API and gateway address (`api`). Default: `127.0.0.1:5080`. The API has no
    /// authentication: keep it on loopback unless something in front of it authenticates.
    pub api: SocketAddr,
    /// Kademlia bootstrap peers, each with `/p2p/PEER` (`bootstrap`). Default: empty.
    pub bootstrap: Vec<Multiaddr>,
    /// Jobs run at once for the network (`jobs`); more are refused as busy. Default: 2.
    pub jobs: usize,
    /// `local_only`: talk to this machine only (loopback listen and bootstrap addresses; any
    /// other connection refused; `vouch_net::local`). Default: `false`.
    pub local_only: bool,
    /// Ceilings on what one job may ask for and jobs per requester (`quota`: an object with
    /// `jobs_per_peer`, `max_fuel`, `max_memory_bytes`, `max_wall_time_ms`,
    /// `max_output_bytes`). Default: [`Quota::default`], which refuses no default job.
    pub quota: Quota,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            // Cannot fail: constant, valid addresses.
            swarm: vec![
                "/ip4/127.0.0.1/tcp/4002".parse().expect("valid multiaddr"),
                "/ip4/127.0.0.1/udp/4002/quic-v1".parse().expect("valid multiaddr"),
            ],
            api: "127.0.0.1:5080".parse().expect("valid socket address"),
            bootstrap: Vec::new(),
            jobs: 2,
            local_only: false,
            quota: Quota::default(),
        }
    }
}

impl NodeConfig {
    /// Override the fields named in `v` (a JSON object: `swarm` and `bootstrap` lists of
    /// multiaddrs, `api` an `IP:PORT`); other keys are left for other readers. `origin` names the
    /// file in errors.
    pub fn apply_json(&mut self, v: &serde_json::Value, origin: &str) -> Result<(), NodeError> {
        let bad = |reason: String| NodeError::Config { origin: origin.to_string(), reason };
        let obj = v.as_object().ok_or_else(|| bad("expected a JSON object".into()))?;
        let addrs = |key: &str, value: &serde_json::Value| -> Result<Vec<Multiaddr>, NodeError> {
            let list = value.as_array().ok_or_else(|| bad(format!("`{key}` must be a list of multiaddrs")))?;
            list.iter()
                .map(|a| {
                    let s = a.as_str().ok_or_else(|| bad(format!("`{key}`: {a} is not a string")))?;
                    s.parse().map_err(|e| bad(format!("`{key}`: {s:?} is not a multiaddr: {e}")))
                })
                .collect()
        };
        if let Some(v) = obj.get("swarm") {
            self.swarm = addrs("swarm", v)?;
        }
        if let Some(v) = obj.get("bootstrap") {
            self.bootstrap = addrs("bootstrap", v)?;
        }
        if let Some(v) = obj.get("jobs") {
            let n = v.as_u64().filter(|n| (1..=1024).contains(n));
            self.jobs = n.ok_or_else(|| bad(format!("`jobs` must be a number from 1 to 1024, not {v}")))? as usize;
        }
        if let Some(v) = obj.get("local_only") {
            self.local_only = v.as_bool().ok_or_else(|| bad(format!("`local_only` must be true or false, not {v}")))?;
        }
        if let Some(v) = obj.get("quota") {
            self.quota = quota_json(&self.quota, v).map_err(|r| bad(format!("`quota`: {r}")))?;
        }
        if let Some(v) = obj.get("api") {
            let s = v.as_str().ok_or_else(|| bad("`api` must be a string like \"127.0.0.1:5080\"".into()))?;
            self.api = s.parse().map_err(|e| bad(format!("`api`: {s:?} is not an IP:PORT address: {e}")))?;
        }
        Ok(())
    }
}

/// `quota` over `base`: every key optional, unknown keys refused.
fn quota_json(base: &Quota, v: &serde_json::Value) -> Result<Quota, String> {
    let obj = v.as_object().ok_or_else(|| format!("expected an object, not {v}"))?;
    let mut q = base.clone();
    for (key, value) in obj {
        let n =
            value.as_u64().filter(|n| *n > 0).ok_or_else(|| format!("`{key}` must be a positive integer, not {value}"));
        match key.as_str() {
            "jobs_per_peer" => q.jobs_per_peer = Some(usize::try_from(n?).map_err(|e| format!("`{key}`: {e}"))?),
            "max_fuel" => q.max_fuel = Some(n?),
            "max_memory_bytes" => q.max_memory_bytes = n?,
            "max_wall_time_ms" => q.max_wall_time_ms = n?,
            "max_output_bytes" => q.max_output_bytes = n?,
            other => {
                return Err(format!(
                    "unknown key `{other}` (known: jobs_per_peer, max_fuel, max_memory_bytes, max_wall_time_ms, max_output_bytes)"
                ));
            }
        }
    }
    Ok(q)
}

/// Everything the daemon can fail with. Variants name the file, address or peer they are about.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{origin}: {reason}")]
    Config { origin: String, reason: String },
    #[error("node key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("a daemon is already running with this home (process {pid}, holding the lock on {file})")]
    Locked { pid: String, file: PathBuf },
    #[error("cannot listen for the HTTP API on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("installing the signal handlers: {0}")]
    Signal(std::io::Error),
    #[error("starting the tokio runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] NetError),
}

/// What a running daemon reports about itself.
#[derive(Clone, Debug)]
pub struct DaemonInfo {
    pub peer_id: PeerId,
    /// The node's ed25519 public key (also its libp2p identity).
    pub public_key: VerifyingKey,
    /// Swarm listen addresses, each ending in `/p2p/PEER`.
    pub swarm: Vec<Multiaddr>,
    /// The bound HTTP address (the actual port when the config asked for port 0).
    pub api: SocketAddr,
}

/// A running daemon: the swarm task and the HTTP server, on the current tokio runtime.
pub struct Daemon {
    home: PathBuf,
    info: DaemonInfo,
    net: NodeHandle,
    net_task: JoinHandle<()>,
    http_task: JoinHandle<std::io::Result<()>>,
    stop_http: oneshot::Sender<()>,
    /// [`PID_FILE`], locked until the daemon is dropped.
    _pid: fs::File,
}

/// How long a shutdown waits for in-flight HTTP requests before cutting them off.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

impl Daemon {
    /// Open `home` (its `identity.pem` must exist: `vouch id` creates it), start the swarm, the
    /// job protocol and the HTTP server, announce the pinned roots on the DHT, and write the
    /// `api` and `swarm` files. Jobs from the network run on `executor`; without one they are
    /// refused.
    pub async fn start(
        home: &Path,
        config: NodeConfig,
        executor: Option<Arc<dyn Executor>>,
    ) -> Result<Daemon, NodeError> {
        Daemon::start_with(home, config, executor, None).await
    }

    /// [`Daemon::start`], also answering key requests on `/vouch/broker/1.0.0` with `broker`
    /// (this node's key broker: `docs/seal.md`).
    pub async fn start_with(
        home: &Path,
        config: NodeConfig,
        executor: Option<Arc<dyn Executor>>,
        broker: Option<Arc<dyn KeyService>>,
    ) -> Result<Daemon, NodeError> {
        let key = load_key(&home.join("identity.pem"))?;
        // The one guard against a second daemon on this home: the pid file's lock (`api` and
        // `swarm` files left by a crash are overwritten below).
        let pid = lock_pid_file(&home.join(PID_FILE))?;
        let store_dir = home.join("store");
        // Blocking, once, at startup: opening SQLite and creating directories.
        let store = Arc::new(Store::open(&store_dir)?);

        let mut net_config = vouch_net::Config::new(key.to_bytes());
        net_config.listen = config.swarm.clone();
        net_config.bootstrap = config.bootstrap.clone();
        net_config.local_only = config.local_only;
        let (net, net_task) = Node::spawn(net_config, store.clone())?;
        let peer_id = net.peer_id();
        let swarm = net.listen_addrs().await?.into_iter().map(|a| a.with(Protocol::P2p(peer_id))).collect();

        let listener = tokio::net::TcpListener::bind(config.api)
            .await
            .map_err(|source| NodeError::Bind { addr: config.api, source })?;
        let api = listener.local_addr().map_err(|source| NodeError::Bind { addr: config.api, source })?;
        let info = DaemonInfo { peer_id, public_key: key.verifying_key(), swarm, api };
        let jobs = jobs::Jobs::new(net.clone(), store.clone(), executor, config.jobs, config.quota.clone());
        tokio::spawn(jobs::serve(jobs.clone()));
        if let Some(broker) = broker {
            tokio::spawn(serve_broker(net.clone(), broker));
        }
        tokio::spawn(reprovide(net.clone(), store.clone()));
        let router = api::router(api::AppState::new(store, net.clone(), &info, jobs));
        let (stop_http, stopped) = oneshot::channel::<()>();
        let http_task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });

        let daemon = Daemon { home: home.to_path_buf(), info, net, net_task, http_task, stop_http, _pid: pid };
        let swarm_lines: String = daemon.info.swarm.iter().map(|a| format!("{a}\n")).collect();
        write_atomic(&home.join(SWARM_FILE), swarm_lines.as_bytes())?;
        write_atomic(&home.join(API_FILE), format!("{api}\n").as_bytes())?;
        tracing::info!(%peer_id, %api, "daemon started");
        Ok(daemon)
    }

    pub fn info(&self) -> &DaemonInfo {
        &self.info
    }

    /// The libp2p node, for callers composing more on top of the daemon.
    pub fn net(&self) -> &NodeHandle {
        &self.net
    }

    /// Stop serving HTTP (in-flight requests get [`HTTP_DRAIN`]), stop the swarm and remove the
    /// `api`, `swarm` and `pid` files.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let Daemon { home, net, net_task, mut http_task, stop_http, _pid, .. } = self;
        // Remove the files first: from now on CLI commands must not find this daemon. The pid
        // file's lock is held until the end of this function.
        for name in [API_FILE, SWARM_FILE, PID_FILE] {
            let path = home.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(NodeError::Io { path, source }),
            }
        }
        let _ = stop_http.send(());
        match tokio::time::timeout(HTTP_DRAIN, &mut http_task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
            Err(_) => {
                tracing::warn!("HTTP requests still running after {HTTP_DRAIN:?}: cut off");
                http_task.abort();
            }
        }
        net.shutdown().await;
        let _ = net_task.await;
        tracing::info!("daemon stopped");
        Ok(())
    }
}

/// Why a DAG could not be made local.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Missing {
    #[error("not stored on this node, and no peer is connected to fetch it from")]
    NoPeers,
    #[error("not stored here; fetching it from {peers} connected peers: {source}")]
    Net { peers: usize, source: NetError },
    #[error(transparent)]
    Store(StoreError),
}

/// Make the DAG under `root` complete in `store`: a no-op when it is; else a bitswap fetch from
/// the connected peers (every block verified) into one batch, committed only when complete.
pub(crate) async fn make_local(
    net: &NodeHandle,
    store: &Arc<Store>,
    root: vouch_dag::Cid,
    timeout: Duration,
) -> Result<(), Missing> {
    let s = store.clone();
    match tokio::task::spawn_blocking(move || s.check_complete(&root)).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(StoreError::Incomplete { .. } | StoreError::NotFound { .. })) => {}
        Ok(Err(e)) => return Err(Missing::Store(e)),
        Err(e) => return Err(Missing::Store(StoreError::Dag(vouch_dag::DagError::Io(std::io::Error::other(e))))),
    }
    let peers = net.peers().await.map_err(|source| Missing::Net { peers: 0, source })?.len();
    if peers == 0 {
        return Err(Missing::NoPeers);
    }
    let mut batch = store.batch().map_err(Missing::Store)?;
    let stats = net.fetch_dag(root, &mut batch, timeout).await.map_err(|source| Missing::Net { peers, source })?;
    batch.commit().map_err(Missing::Store)?;
    tracing::info!(%root, fetched = stats.fetched, bytes = stats.bytes, "DAG fetched over bitswap");
    Ok(())
}

/// How often the pinned roots are announced again (Kademlia provider records expire after 48 h;
/// Kubo re-announces every 22 h).
const REPROVIDE: Duration = Duration::from_secs(12 * 3600);
/// Most pinned roots announced per round.
const MAX_PROVIDE: usize = 10_000;

/// Announce every pinned root now and every [`REPROVIDE`]. Content added later is announced
/// when it is added (`/api/v0/add`, `/api/v0/routing/provide`).
async fn reprovide(net: NodeHandle, store: Arc<Store>) {
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.pins()).await {
            Ok(Ok(pins)) => {
                for cid in pins.into_iter().take(MAX_PROVIDE) {
                    if net.provide(cid).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!("listing pins to announce: {e}"),
            Err(e) => tracing::warn!("listing pins to announce: {e}"),
        }
        tokio::time::sleep(REPROVIDE).await;
    }
}

/// Wait for SIGINT or SIGTERM; returns the signal's name.
pub async fn wait_for_signal() -> Result<&'static str, NodeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).map_err(NodeError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(NodeError::Signal)?;
    Ok(tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    })
}

/// A data owner's key broker, supplied by the binary: answers one DAG-CBOR broker message
/// (a challenge request or a key request, `docs/seal.md`) with one. Blocking; called on a
/// blocking thread. Never fails: a refusal is an answer.
pub trait KeyService: Send + Sync + 'static {
    fn answer(&self, peer: &PeerId, request: &[u8]) -> Vec<u8>;
}

/// At most this many broker requests are read or answered at once.
const BROKER_CONCURRENCY: usize = 8;

async fn serve_broker(net: NodeHandle, broker: Arc<dyn KeyService>) {
    let mut requests = match net.serve_broker_requests(BROKER_CONCURRENCY) {
        Ok(r) => r,
        Err(e) => return tracing::warn!("key broker not served: {e}"),
    };
    while let Some(request) = requests.recv().await {
        let broker = broker.clone();
        tokio::spawn(async move {
            let peer = request.peer;
            let body = request.body.clone();
            match tokio::task::spawn_blocking(move || broker.answer(&peer, &body)).await {
                Ok(answer) => request.respond(answer),
                Err(e) => tracing::warn!(%peer, "key broker failed: {e}"),
            }
        });
    }
}

/// Run a daemon in the foreground on its own runtime until SIGINT or SIGTERM, then shut it down
/// cleanly. `ready` is called once everything listens (and the signal handlers are installed).
pub fn run_foreground(
    home: &Path,
    config: NodeConfig,
    executor: Option<Arc<dyn Executor>>,
    broker: Option<Arc<dyn KeyService>>,
    ready: impl FnOnce(&DaemonInfo),
) -> Result<(), NodeError> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(NodeError::Runtime)?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        // Installed before `ready` so that a signal sent as soon as the daemon reports itself is
        // handled here, not by the default action.
        let mut int = signal(SignalKind::interrupt()).map_err(NodeError::Signal)?;
        let mut term = signal(SignalKind::terminate()).map_err(NodeError::Signal)?;
        let daemon = Daemon::start_with(home, config, executor, broker).await?;
        ready(daemon.info());
        let got = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        tracing::info!(signal = got, "shutting down");
        daemon.shutdown().await
    })
}

/// The libp2p peer id of an ed25519 key: the identity multihash of the key's protobuf encoding
/// (`KeyType = Ed25519 (1)`, `Data = 32 bytes`; 36 bytes, under the 42-byte inlining limit), as
/// every libp2p implementation computes it. Lets `vouch id` print it without a running node.
pub fn peer_id_of(key: &VerifyingKey) -> PeerId {
    let mut mh = vec![0x00, 36, 0x08, 0x01, 0x12, 0x20];
    mh.extend_from_slice(key.as_bytes());
    // Cannot fail: a well-formed identity multihash of 36 bytes.
    PeerId::from_bytes(&mh).expect("valid identity multihash")
}

/// Read the PKCS#8 ed25519 node key that `vouch` creates (mode 0600); never creates one.
fn load_key(path: &Path) -> Result<SigningKey, NodeError> {
    let bad = |reason: String| NodeError::Key { path: path.to_path_buf(), reason };
    let pem = match fs::read_to_string(path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad("not found (`vouch id` creates the node key)".into()));
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    let mode = fs::metadata(path).map_err(|e| bad(e.to_string()))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(format!("readable by others (mode {mode:o}); run chmod 600 on it")));
    }
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| bad(format!("not an ed25519 PKCS#8 key: {e}")))
}

/// Open and lock `path` for this process, then write its pid there; another process holding
/// the lock is [`NodeError::Locked`].
fn lock_pid_file(path: &Path) -> Result<fs::File, NodeError> {
    let io = |source| NodeError::Io { path: path.to_path_buf(), source };
    let mut f = fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let pid = fs::read_to_string(path).unwrap_or_default().trim().to_string();
            return Err(NodeError::Locked { pid, file: path.to_path_buf() });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    f.set_len(0).map_err(io)?;
    f.write_all(format!("{}\n", std::process::id()).as_bytes()).map_err(io)?;
    Ok(f)
}

/// Write through a temporary file and a rename, so a reader never sees half a file.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), NodeError> {
    let tmp = path.with_extension("tmp");
    let io = |source| NodeError::Io { path: path.to_path_buf(), source };
    let mut f = fs::File::create(&tmp).map_err(io)?;
    f.write_all(data).map_err(io)?;
    drop(f);
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_overrides_only_named_fields() {
        let mut c = NodeConfig::default();
        let v = serde_json::json!({"api": "127.0.0.1:0", "bootstrap": ["/ip4/127.0.0.1/tcp/1"], "tee": "none"});
        c.apply_json(&v, "config.json").unwrap();
        assert_eq!(c.api.port(), 0);
        assert_eq!(c.bootstrap.len(), 1);
        assert_eq!(c.swarm, NodeConfig::default().swarm);
        let err = c.apply_json(&serde_json::json!({"swarm": ["nope"]}), "x.json").unwrap_err().to_string();
        assert!(err.starts_with("x.json: `swarm`: \"nope\" is not a multiaddr"), "{err}");
        let err = c.apply_json(&serde_json::json!({"api": 5}), "x.json").unwrap_err().to_string();
        assert!(err.contains("`api` must be a string"), "{err}");
        assert!(!c.local_only);
        c.apply_json(&serde_json::json!({"local_only": true}), "x.json").unwrap();
        assert!(c.local_only);
        let err = c.apply_json(&serde_json::json!({"local_only": "yes"}), "x.json").unwrap_err().to_string();
        assert!(err.contains("`local_only` must be true or false"), "{err}");
        c.apply_json(&serde_json::json!({"quota": {"jobs_per_peer": 1, "max_wall_time_ms": 5000}}), "x.json").unwrap();
        assert_eq!(c.quota.jobs_per_peer, Some(1));
        assert_eq!(c.quota.max_wall_time_ms, 5000);
        assert_eq!(c.quota.max_memory_bytes, Quota::default().max_memory_bytes);
        let err = c.apply_json(&serde_json::json!({"quota": {"cpus": 2}}), "x.json").unwrap_err().to_string();
        assert!(err.contains("`quota`: unknown key `cpus`"), "{err}");
        let err = c.apply_json(&serde_json::json!({"quota": {"max_fuel": -1}}), "x.json").unwrap_err().to_string();
        assert!(err.contains("`max_fuel` must be a positive integer"), "{err}");
    }

    #[test]
    fn peer_id_has_the_ed25519_prefix() {
        let key = SigningKey::from_bytes(&[7; 32]);
        assert!(peer_id_of(&key.verifying_key()).to_string().starts_with("12D3KooW"));
    }
}
