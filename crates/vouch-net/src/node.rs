//! The node: one swarm task that owns the libp2p swarm and the wantlist, stream tasks that read
//! and write bitswap messages, and the [`NodeHandle`] callers talk to.
//!
//! Tasks and queues (every queue bounded):
//! - the **swarm task** ([`Node::run`]) owns the swarm, the wants and the set of connected peers;
//!   it takes [`Command`]s from handles and [`FromReader`] block batches from readers;
//! - one **reader** per inbound bitswap stream: decodes frames (≤ 4 MiB), serves the wantlist
//!   part itself (store lookups on the blocking pool, at most `serve_concurrency` at once) and
//!   hands received blocks, already hashed, to the swarm task;
//! - one **writer** per connected peer: a single outbound `/ipfs/bitswap/1.2.0` stream carrying
//!   every message to that peer, reopened once if it breaks.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cid::Cid;
use cid::multihash::Multihash;
use futures::stream::FuturesUnordered;
use futures::{AsyncWriteExt, StreamExt};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, connection_limits, identify, identity, kad, noise, ping, tcp, yamux};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use vouch_dag::BlockSink;
use vouch_dag::block::{IDENTITY, MAX_BLOCK_SIZE, SHA2_256, links, verify};

use crate::message::{self, FrameError, PROTOCOL_1_2, Received, pb};
use crate::{AGENT_VERSION, Blocks, Config, NetError};

/// Wanted blocks are re-sent to every peer this often, in case a message was dropped.
const REBROADCAST: Duration = Duration::from_secs(10);
/// Blocks recently received or given up on, remembered (as [`recent_key`]s, ~24 bytes each) so
/// that a late copy from a second peer is a duplicate, not a lie: 2^18 blocks, 64 GiB of
/// 256 KiB chunks, far more than any peer can have in flight. A duplicate older than this is
/// still forgiven if the node holds the block (the reader checks, see [`FromReader`]).
const RECENT: usize = 1 << 18;
/// How long a peer that sent a bad block stays disconnected (its new connections are closed).
const BAN: Duration = Duration::from_secs(600);
/// Most banned peers remembered (the oldest ban is forgotten first).
const MAX_BANNED: usize = 4096;
/// Messages queued per peer writer (each at most ~3 MiB: 1 MiB target plus one 2 MiB block).
const WRITER_QUEUE: usize = 16;
/// A provider search stops once it has found this many providers (Kubo's `findprovs` default).
const MAX_PROVIDERS: usize = 20;
/// How often the swarm task checks provider searches against their deadline.
const FIND_TICK: Duration = Duration::from_millis(100);
/// Most Identify listen addresses remembered per connected peer.
const MAX_ADDRS: usize = 16;

/// A provider of a CID found on the DHT: its peer id and the addresses it can be dialled at.
pub type Provider = (PeerId, Vec<Multiaddr>);

#[derive(NetworkBehaviour)]
struct Behaviour {
    local: crate::local::Behaviour,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    stream: libp2p_stream::Behaviour,
    inbound: crate::inbound::Behaviour,
}

enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Connect(Multiaddr, oneshot::Sender<Result<PeerId, NetError>>),
    Peers(oneshot::Sender<Vec<PeerId>>),
    Want {
        cid: Cid,
        id: u64,
        reply: Reply,
    },
    Unwant {
        cid: Cid,
        id: u64,
    },
    /// Announce `cid`; the reply, if any, when the record has been sent to the closest peers.
    Provide(Cid, Option<oneshot::Sender<Result<(), NetError>>>),
    FindProviders {
        cid: Cid,
        timeout: Duration,
        reply: oneshot::Sender<Vec<Provider>>,
    },
    Bootstrap(Vec<Multiaddr>, oneshot::Sender<Result<(), NetError>>),
    Disconnect(PeerId, oneshot::Sender<bool>),
    Shutdown,
}

/// What readers tell the swarm task.
enum FromReader {
    Blocks(Inbound),
    /// Blocks of an earlier [`Inbound`] that matched no want, current or recent, and that the
    /// node does not hold either: a lie or spam.
    Unheld {
        peer: PeerId,
        cid: Cid,
        bytes: usize,
    },
}

/// Blocks a reader received from `peer`, hashed, and the presences it sent (`true`: HAVE).
struct Inbound {
    peer: PeerId,
    blocks: Vec<Received>,
    presences: Vec<(Cid, bool)>,
    /// Where the swarm task sends back the received blocks that matched no want, current or
    /// recent (CID and size). The reader looks them up in the node's [`Blocks`] (a duplicate
    /// of a block we hold is harmless; the swarm task must not do I/O) and reports the others
    /// as [`FromReader::Unheld`] before it passes on anything else the peer sent on that stream.
    unsolicited: oneshot::Sender<Vec<(Cid, usize)>>,
}

/// A running provider search (Kademlia `GET_PROVIDERS`).
struct Find {
    deadline: Instant,
    found: Vec<Provider>,
    /// Providers whose addresses are known only to the running query: dialled while the query
    /// still holds them, and listed once the connection is up (or has failed).
    dialing: HashSet<PeerId>,
    /// The Kademlia query has finished.
    done: bool,
    reply: oneshot::Sender<Vec<Provider>>,
}

type Writers = Arc<Mutex<HashMap<PeerId, PeerTx>>>;

/// The two queues of a peer's writer: small wantlist messages from the swarm task (never
/// waited on, so sized for every want and cancel the node can have outstanding), and block
/// responses from readers (waited on: back-pressure).
#[derive(Clone)]
struct PeerTx {
    wants: mpsc::Sender<pb::Message>,
    responses: mpsc::Sender<pb::Message>,
}
/// Where a fetch's result goes.
type Reply = oneshot::Sender<Result<Vec<u8>, NetError>>;

struct Want {
    cid: Cid,
    waiters: Vec<(u64, Reply)>,
    /// Peers that answered DONT_HAVE: when every connected peer has, the fetch fails early.
    dont_have: HashSet<PeerId>,
    /// Peers that answered HAVE, in order.
    have: Vec<PeerId>,
    /// The one peer sent want-block (the others got want-have), if any.
    block_from: Option<PeerId>,
}

/// A running node, as seen from the swarm task.
pub struct Node {
    swarm: Swarm<Behaviour>,
    config: Config,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Receiver<FromReader>,
    writers: Writers,
    wants: HashMap<Multihash<64>, Want>,
    recent: VecDeque<u64>,
    recent_set: HashSet<u64>,
    addr_waiters: Vec<oneshot::Sender<Vec<Multiaddr>>>,
    /// Per connected peer: cleared when its last connection closes, so its writer never
    /// re-dials a peer (`libp2p-stream` dials on `open_stream`), e.g. one we just disconnected.
    connected: HashMap<PeerId, Arc<AtomicBool>>,
    banned: HashMap<PeerId, Instant>,
    dials: HashMap<libp2p::swarm::ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, NetError>>)>,
    finds: HashMap<kad::QueryId, Find>,
    /// Announcements whose caller waits for the record to be stored.
    provides: HashMap<kad::QueryId, (Cid, oneshot::Sender<Result<(), NetError>>)>,
    /// Listen addresses connected peers reported through Identify (forgotten on disconnect).
    identified: HashMap<PeerId, Vec<Multiaddr>>,
    /// The peer that last sent a wanted block: new wants go to it as want-block first.
    last_sender: Option<PeerId>,
}

/// What callers hold: cheap to clone, usable from any task.
#[derive(Clone)]
pub struct NodeHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    blocks: Arc<dyn Blocks>,
    next_id: Arc<AtomicU64>,
    fetch_window: usize,
    /// Opens and accepts request/response streams ([`crate::rpc`]).
    control: libp2p_stream::Control,
    /// libp2p's bandwidth counters (bytes on every stream of every connection, per direction).
    metrics: Arc<prometheus_client::registry::Registry>,
}

/// Bytes this node's connections carried on their streams since it started, all peers and
/// protocols together (libp2p's bandwidth metering: stream payload after Noise and Yamux).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bandwidth {
    pub total_in: u64,
    pub total_out: u64,
}

/// What [`NodeHandle::fetch_dag`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DagStats {
    /// Blocks fetched from peers and written to the sink.
    pub fetched: u64,
    /// Bytes of those blocks.
    pub bytes: u64,
    /// Blocks found in the node's own [`Blocks`] (not written again).
    pub local: u64,
}

impl Node {
    /// Build the swarm, start listening and spawn the swarm task on the current tokio runtime.
    pub fn spawn(config: Config, blocks: Arc<dyn Blocks>) -> Result<(NodeHandle, JoinHandle<()>), NetError> {
        let keypair =
            identity::Keypair::ed25519_from_bytes(config.secret_key).map_err(|e| NetError::Key(e.to_string()))?;
        let peer_id = keypair.public().to_peer_id();
        let idle = config.idle_timeout;
        let local_only = config.local_only;
        if local_only {
            for addr in config.listen.iter().chain(&config.bootstrap) {
                if !crate::local::is_loopback(addr) {
                    return Err(NetError::Listen {
                        addr: addr.clone(),
                        reason: "local-only mode: listen and bootstrap addresses must be loopback".into(),
                    });
                }
            }
        }
        let (inbound_behaviour, inbound_streams) = crate::inbound::Behaviour::new(config.max_pending_streams);
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_pending_incoming(Some(config.max_pending_incoming))
            .with_max_established_per_peer(Some(config.max_connections_per_peer));
        let mut inbound_behaviour = Some(inbound_behaviour);
        let mut metrics = prometheus_client::registry::Registry::default();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux_config)
            .map_err(|e| NetError::Transport(e.to_string()))?
            // QUIC v1 (`/udp/PORT/quic-v1`), as Kubo speaks it: TLS 1.3 and its own streams.
            .with_quic()
            .with_bandwidth_metrics(&mut metrics)
            .with_behaviour(|key| {
                let id = key.public().to_peer_id();
                let mut kad = kad::Behaviour::with_config(
                    id,
                    kad::store::MemoryStore::new(id),
                    kad::Config::new(kad::PROTOCOL_NAME),
                );
                kad.set_mode(Some(kad::Mode::Server));
                Behaviour {
                    local: crate::local::Behaviour { enabled: local_only },
                    limits: connection_limits::Behaviour::new(limits),
                    identify: identify::Behaviour::new(
                        identify::Config::new("ipfs/0.1.0".into(), key.public())
                            .with_agent_version(AGENT_VERSION.into()),
                    ),
                    ping: ping::Behaviour::default(),
                    kad,
                    stream: libp2p_stream::Behaviour::new(),
                    // Cannot fail: the builder calls this closure once.
                    inbound: inbound_behaviour.take().expect("behaviour built once"),
                }
            })
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build();
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetError::Listen { addr: addr.clone(), reason: e.to_string() })?;
        }
        if let Err(e) = add_bootstrap(&mut swarm, &config.bootstrap) {
            warn!("{e}");
        }

        let writers: Writers = Arc::default();
        let (inbound_tx, inbound) = mpsc::channel(256);
        let serving = Arc::new(Semaphore::new(config.serve_concurrency.max(1)));
        tokio::spawn(accept_loop(
            inbound_streams,
            blocks.clone(),
            writers.clone(),
            inbound_tx,
            serving,
            Arc::new(Semaphore::new(config.max_stream_readers.max(1))),
            config.max_entries_per_message,
        ));

        let (cmd_tx, commands) = mpsc::channel(256);
        let handle = NodeHandle {
            peer_id,
            commands: cmd_tx,
            blocks,
            next_id: Arc::default(),
            fetch_window: config.fetch_window.max(1),
            control: swarm.behaviour().stream.new_control(),
            metrics: Arc::new(metrics),
        };
        let node = Node {
            swarm,
            config,
            commands,
            inbound,
            writers,
            wants: HashMap::new(),
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
            addr_waiters: Vec::new(),
            connected: HashMap::new(),
            banned: HashMap::new(),
            dials: HashMap::new(),
            finds: HashMap::new(),
            provides: HashMap::new(),
            identified: HashMap::new(),
            last_sender: None,
        };
        info!(%peer_id, "vouch-net node starting");
        Ok((handle, tokio::spawn(node.run())))
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(REBROADCAST);
        tick.tick().await;
        let mut find_tick = tokio::time::interval(FIND_TICK);
        find_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(cmd) => self.on_command(cmd),
                },
                Some(from) = self.inbound.recv() => match from {
                    FromReader::Blocks(mut inbound) => {
                        let presences = std::mem::take(&mut inbound.presences);
                        let peer = inbound.peer;
                        self.on_blocks(inbound);
                        self.on_presences(peer, presences);
                    }
                    FromReader::Unheld { peer, cid, bytes } => {
                        if !self.is_banned(&peer) {
                            warn!(
                                %peer,
                                claimed = %cid,
                                bytes,
                                "peer sent a block matching no wanted CID (unsolicited, or its bytes do not hash to the CID); disconnecting and banning it"
                            );
                            self.ban(peer);
                        }
                    }
                },
                _ = tick.tick() => self.rebroadcast(),
                _ = find_tick.tick(), if !self.finds.is_empty() => self.expire_finds(),
            }
        }
        for (_, want) in self.wants.drain() {
            for (_, w) in want.waiters {
                let _ = w.send(Err(NetError::Shutdown));
            }
        }
        // Dropping the writers closes the outbound streams; dropping the swarm closes connections.
        self.writers.lock().unwrap_or_else(|p| p.into_inner()).clear();
        info!("vouch-net node stopped");
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                let addrs: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
                for w in self.addr_waiters.drain(..) {
                    let _ = w.send(addrs.clone());
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, num_established, endpoint, .. } => {
                debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    let result = match self.is_banned(&peer_id) {
                        true => Err(NetError::Dial {
                            addr,
                            reason: format!("peer {peer_id} is banned: it sent a bad block"),
                        }),
                        false => Ok(peer_id),
                    };
                    let _ = reply.send(result);
                }
                if self.is_banned(&peer_id) {
                    debug!(%peer_id, "closing a connection from a banned peer");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                } else if num_established.get() == 1 {
                    let (wants_tx, wants_rx) = mpsc::channel(2 * self.config.max_wants + 16);
                    let (responses, responses_rx) = mpsc::channel(WRITER_QUEUE);
                    let tx = PeerTx { wants: wants_tx, responses };
                    let control = self.swarm.behaviour().stream.new_control();
                    let alive = Arc::new(AtomicBool::new(true));
                    self.connected.insert(peer_id, alive.clone());
                    tokio::spawn(writer(peer_id, control, wants_rx, responses_rx, alive));
                    if !self.wants.is_empty() {
                        let _ = tx.wants.try_send(self.full_wantlist(peer_id));
                    }
                    self.lock_writers().insert(peer_id, tx);
                }
                let addr = endpoint.is_dialer().then(|| endpoint.get_remote_address().clone());
                self.provider_dialled(peer_id, true, addr);
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, cause, .. } => {
                debug!(%peer_id, ?cause, "connection closed");
                if num_established == 0 {
                    self.lock_writers().remove(&peer_id);
                    self.identified.remove(&peer_id);
                    if let Some(alive) = self.connected.remove(&peer_id) {
                        alive.store(false, Ordering::Relaxed);
                    }
                    self.peer_gone(peer_id);
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, peer_id, error } => {
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial { addr, reason: error.to_string() }));
                }
                if let Some(peer) = peer_id
                    && !self.swarm.is_connected(&peer)
                {
                    debug!(%peer, "dial failed: {error}");
                    self.provider_dialled(peer, false, None);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                debug!(%peer_id, agent = %info.agent_version, "identified");
                let mut addrs = info.listen_addrs;
                if self.config.local_only {
                    addrs.retain(crate::local::is_loopback);
                }
                if info.protocols.contains(&kad::PROTOCOL_NAME) {
                    for addr in &addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr.clone());
                    }
                }
                addrs.truncate(MAX_ADDRS);
                self.identified.insert(peer_id, addrs);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed { id, result, .. })) => {
                match result {
                    kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders { providers, .. })) => {
                        self.providers_found(id, providers)
                    }
                    kad::QueryResult::GetProviders(r) => {
                        if let Err(e) = r {
                            debug!("provider search ended: {e}");
                        }
                        if let Some(find) = self.finds.get_mut(&id) {
                            find.done = true;
                        }
                        self.finish_find(id, false);
                    }
                    kad::QueryResult::Bootstrap(Ok(r)) => {
                        debug!(remaining = r.num_remaining, "kademlia bootstrap step")
                    }
                    kad::QueryResult::Bootstrap(Err(e)) => debug!("kademlia bootstrap: {e}"),
                    kad::QueryResult::StartProviding(r) => {
                        let waiter = self.provides.remove(&id);
                        match (r, waiter) {
                            (Ok(r), w) => {
                                debug!(key = ?r.key, "provider record stored");
                                if let Some((_, reply)) = w {
                                    let _ = reply.send(Ok(()));
                                }
                            }
                            (Err(e), Some((cid, reply))) => {
                                let _ = reply.send(Err(NetError::Provide { cid, reason: e.to_string() }));
                            }
                            (Err(e), None) => warn!("provider record not stored: {e}"),
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Providers reported by a running search. Those whose addresses we know are listed at once;
    /// the others are dialled now, while the query still holds the addresses the DHT gave it.
    fn providers_found(&mut self, id: kad::QueryId, providers: HashSet<PeerId>) {
        let local = *self.swarm.local_peer_id();
        for peer in providers {
            let Some(find) = self.finds.get(&id) else { return };
            if find.found.len() + find.dialing.len() >= MAX_PROVIDERS
                || find.found.iter().any(|(p, _)| *p == peer)
                || find.dialing.contains(&peer)
                || self.is_banned(&peer)
            {
                continue;
            }
            let addrs = if peer == local { self.swarm.listeners().cloned().collect() } else { self.known_addrs(&peer) };
            if !addrs.is_empty() {
                if let Some(find) = self.finds.get_mut(&id) {
                    find.found.push((peer, addrs));
                }
                continue;
            }
            let opts = DialOpts::peer_id(peer).condition(PeerCondition::DisconnectedAndNotDialing).build();
            match self.swarm.dial(opts) {
                Ok(()) | Err(DialError::DialPeerConditionFalse(_)) if !self.swarm.is_connected(&peer) => {
                    if let Some(find) = self.finds.get_mut(&id) {
                        find.dialing.insert(peer);
                    }
                }
                r => {
                    if let Err(e) = r {
                        debug!(%peer, "provider without a known address: {e}");
                    }
                    // Connected without a known listen address (yet): listed without addresses.
                    if let Some(find) = self.finds.get_mut(&id) {
                        find.found.push((peer, Vec::new()));
                    }
                }
            }
        }
        let enough = self.finds.get(&id).is_some_and(|f| f.found.len() >= MAX_PROVIDERS);
        self.finish_find(id, enough);
    }

    /// `peer` is now connected (dialled at `addr`), or a dial to it failed: searches waiting for
    /// it list it (or give up on it).
    fn provider_dialled(&mut self, peer: PeerId, connected: bool, addr: Option<Multiaddr>) {
        let waiting: Vec<kad::QueryId> =
            self.finds.iter().filter(|(_, f)| f.dialing.contains(&peer)).map(|(id, _)| *id).collect();
        for id in waiting {
            let mut addrs = self.known_addrs(&peer);
            if let Some(a) = &addr
                && !addrs.contains(a)
            {
                addrs.insert(0, a.clone());
            }
            if let Some(find) = self.finds.get_mut(&id) {
                find.dialing.remove(&peer);
                if connected {
                    find.found.push((peer, addrs));
                } else {
                    debug!(%peer, "provider could not be dialled; not listed");
                }
            }
            self.finish_find(id, false);
        }
    }

    /// Answer a search when its query is done and no dial is pending, when `now` is set, or at
    /// its deadline.
    fn finish_find(&mut self, id: kad::QueryId, now: bool) {
        let Some(find) = self.finds.get(&id) else { return };
        if !(now || (find.done && find.dialing.is_empty()) || find.deadline <= Instant::now()) {
            return;
        }
        if let Some(find) = self.finds.remove(&id) {
            if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                q.finish();
            }
            debug!(providers = find.found.len(), "provider search answered");
            let _ = find.reply.send(find.found);
        }
    }

    fn expire_finds(&mut self) {
        let ids: Vec<kad::QueryId> = self.finds.keys().copied().collect();
        for id in ids {
            self.finish_find(id, false);
        }
    }

    /// Addresses `peer` can be dialled at: from Kademlia's routing table and from Identify.
    fn known_addrs(&mut self, peer: &PeerId) -> Vec<Multiaddr> {
        let mut addrs: Vec<Multiaddr> = self
            .swarm
            .behaviour_mut()
            .kad
            .kbucket(*peer)
            .and_then(|b| {
                b.iter().find(|e| e.node.key.preimage() == peer).map(|e| e.node.value.iter().cloned().collect())
            })
            .unwrap_or_default();
        for a in self.identified.get(peer).into_iter().flatten() {
            if !addrs.contains(a) {
                addrs.push(a.clone());
            }
        }
        addrs
    }

    /// `peer`'s last connection closed: wants it was asked for go to another peer, and a want
    /// every remaining peer has answered DONT_HAVE to fails.
    fn peer_gone(&mut self, peer: PeerId) {
        if self.last_sender == Some(peer) {
            self.last_sender = None;
        }
        let hashes: Vec<Multihash<64>> = self.wants.keys().copied().collect();
        for hash in hashes {
            if let Some(want) = self.wants.get_mut(&hash) {
                want.dont_have.remove(&peer);
                want.have.retain(|p| *p != peer);
                if want.block_from == Some(peer) {
                    want.block_from = None;
                    self.ask_next(hash);
                }
            }
            self.fail_if_nobody_has(hash);
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::ListenAddrs(reply) => {
                let addrs: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
                if addrs.is_empty() {
                    self.addr_waiters.push(reply);
                } else {
                    let _ = reply.send(addrs);
                }
            }
            Command::Connect(addr, reply) => {
                if self.config.local_only && !crate::local::is_loopback(&addr) {
                    let reason = "local-only mode: not a loopback address".to_string();
                    let _ = reply.send(Err(NetError::Dial { addr, reason }));
                    return;
                }
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, (addr, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial { addr, reason: e.to_string() }));
                    }
                }
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Want { cid, id, reply } => {
                let key = *cid.hash();
                if let Some(want) = self.wants.get_mut(&key) {
                    want.waiters.push((id, reply));
                    return;
                }
                if self.wants.len() >= self.config.max_wants {
                    let _ = reply.send(Err(NetError::WantlistFull { cid, max: self.config.max_wants }));
                    return;
                }
                // One peer gets want-block (the last peer that sent us a wanted block, or the only
                // peer); the others get want-have, and the first to answer HAVE is asked next.
                let peers: Vec<PeerId> = self.lock_writers().keys().copied().collect();
                let block_from = match (self.last_sender, &peers[..]) {
                    (Some(p), _) if peers.contains(&p) => Some(p),
                    (_, [only]) => Some(*only),
                    _ => None,
                };
                self.wants.insert(
                    key,
                    Want { cid, waiters: vec![(id, reply)], dont_have: HashSet::new(), have: Vec::new(), block_from },
                );
                let block = message::wantlist(vec![message::want(&cid, pb::WantType::Block, 1)], false);
                let have = message::wantlist(vec![message::want(&cid, pb::WantType::Have, 1)], false);
                for (peer, tx) in self.lock_writers().iter() {
                    let msg = if Some(*peer) == block_from { block.clone() } else { have.clone() };
                    if tx.wants.try_send(msg).is_err() {
                        debug!(%peer, "writer queue full; want dropped");
                    }
                }
            }
            Command::Unwant { cid, id } => {
                let key = *cid.hash();
                if let Some(want) = self.wants.get_mut(&key) {
                    want.waiters.retain(|(i, _)| *i != id);
                    if want.waiters.is_empty() {
                        self.wants.remove(&key);
                        self.remember(key);
                        self.broadcast(message::wantlist(vec![message::cancel(&cid)], false), None);
                    }
                }
            }
            Command::Provide(cid, reply) => {
                match self.swarm.behaviour_mut().kad.start_providing(kad::RecordKey::new(&cid.hash().to_bytes())) {
                    Ok(id) => {
                        if let Some(reply) = reply {
                            self.provides.insert(id, (cid, reply));
                        }
                    }
                    Err(e) => match reply {
                        Some(reply) => {
                            let _ = reply.send(Err(NetError::Provide { cid, reason: e.to_string() }));
                        }
                        None => warn!(%cid, "cannot announce provider record: {e}"),
                    },
                }
            }
            Command::FindProviders { cid, timeout, reply } => {
                let id = self.swarm.behaviour_mut().kad.get_providers(kad::RecordKey::new(&cid.hash().to_bytes()));
                let find = Find {
                    deadline: Instant::now() + timeout,
                    found: Vec::new(),
                    dialing: HashSet::new(),
                    done: false,
                    reply,
                };
                self.finds.insert(id, find);
            }
            Command::Bootstrap(addrs, reply) => {
                let _ = reply.send(add_bootstrap(&mut self.swarm, &addrs));
            }
            Command::Disconnect(peer, reply) => {
                let _ = reply.send(self.swarm.disconnect_peer_id(peer).is_ok());
            }
            Command::Shutdown => {}
        }
    }

    /// Send want-block for `hash` to the first peer that said HAVE (and has not since said
    /// DONT_HAVE), unless a peer already has the want-block.
    fn ask_next(&mut self, hash: Multihash<64>) {
        let Some(want) = self.wants.get_mut(&hash) else { return };
        if want.block_from.is_some() {
            return;
        }
        let Some(peer) = want.have.iter().find(|p| !want.dont_have.contains(p)).copied() else { return };
        want.block_from = Some(peer);
        let msg = message::wantlist(vec![message::want(&want.cid, pb::WantType::Block, 1)], false);
        if let Some(tx) = self.lock_writers().get(&peer) {
            let _ = tx.wants.try_send(msg);
        }
    }

    /// Fail the want for `hash` when every connected peer has answered DONT_HAVE.
    fn fail_if_nobody_has(&mut self, hash: Multihash<64>) {
        let Some(want) = self.wants.get(&hash) else { return };
        if want.dont_have.is_empty() {
            return;
        }
        let peers: Vec<PeerId> = self.lock_writers().keys().copied().collect();
        if peers.is_empty() || !peers.iter().all(|p| want.dont_have.contains(p)) {
            return;
        }
        let Some(want) = self.wants.remove(&hash) else { return };
        debug!(cid = %want.cid, peers = peers.len(), "every connected peer answered DONT_HAVE");
        self.remember(hash);
        self.broadcast(message::wantlist(vec![message::cancel(&want.cid)], false), None);
        for (_, w) in want.waiters {
            let _ = w.send(Err(NetError::NotFound { cid: want.cid, peers: peers.len() }));
        }
    }

    /// HAVE / DONT_HAVE from `peer`.
    fn on_presences(&mut self, peer: PeerId, presences: Vec<(Cid, bool)>) {
        if self.is_banned(&peer) {
            return;
        }
        for (cid, have) in presences {
            let hash = *cid.hash();
            let Some(want) = self.wants.get_mut(&hash) else { continue };
            if have {
                want.dont_have.remove(&peer);
                if !want.have.contains(&peer) {
                    want.have.push(peer);
                }
                self.ask_next(hash);
            } else {
                want.dont_have.insert(peer);
                want.have.retain(|p| *p != peer);
                if want.block_from == Some(peer) {
                    want.block_from = None;
                    self.ask_next(hash);
                }
                self.fail_if_nobody_has(hash);
            }
        }
    }

    /// Received blocks: accept those that hash to a wanted CID; drop duplicates of blocks
    /// received recently. Any other block goes back to the reader, which forgives it if the node
    /// holds it and otherwise reports it ([`FromReader::Unheld`]): a lie or spam, whose sender is
    /// then disconnected and banned. A block that cannot be verified at all bans at once.
    fn on_blocks(&mut self, inbound: Inbound) {
        let peer = inbound.peer;
        if self.is_banned(&peer) {
            return;
        }
        let mut unsolicited = Vec::new();
        for block in inbound.blocks {
            let hash = match block.hash {
                Ok(h) => h,
                Err(reason) => {
                    warn!(%peer, %reason, "peer sent a block that cannot be verified; disconnecting and banning it");
                    self.ban(peer);
                    return;
                }
            };
            let Some(want) = self.wants.remove(&hash) else {
                if self.recent_set.contains(&recent_key(&hash)) {
                    debug!(%peer, "duplicate block ignored");
                    continue;
                }
                let Some(claimed) = block.claimed else {
                    warn!(%peer, "peer sent a block whose CID prefix names no CID version we know; disconnecting and banning it");
                    self.ban(peer);
                    return;
                };
                unsolicited.push((claimed, block.data.len()));
                continue;
            };
            // The trust decision, stated where it is made: the bytes must hash to the wanted CID.
            if let Err(e) = verify(&want.cid, &block.data) {
                warn!(%peer, "{e}; disconnecting and banning it");
                self.wants.insert(hash, want);
                self.ban(peer);
                return;
            }
            self.remember(hash);
            self.last_sender = Some(peer);
            self.broadcast(message::wantlist(vec![message::cancel(&want.cid)], false), Some(peer));
            for (_, w) in want.waiters {
                let _ = w.send(Ok(block.data.clone()));
            }
        }
        // The reader may have stopped waiting (stream ended): then nothing is judged, and
        // nothing was accepted either.
        let _ = inbound.unsolicited.send(unsolicited);
    }

    /// Disconnect `peer`, forget its addresses, and refuse its connections for [`BAN`].
    fn ban(&mut self, peer: PeerId) {
        let now = Instant::now();
        self.banned.retain(|_, until| *until > now);
        if self.banned.len() >= MAX_BANNED
            && let Some(oldest) = self.banned.iter().min_by_key(|(_, until)| **until).map(|(p, _)| *p)
        {
            self.banned.remove(&oldest);
        }
        self.banned.insert(peer, now + BAN);
        self.swarm.behaviour_mut().kad.remove_peer(&peer);
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned.get(peer).is_some_and(|until| *until > Instant::now())
    }

    fn remember(&mut self, hash: Multihash<64>) {
        let key = recent_key(&hash);
        if self.recent_set.insert(key) {
            self.recent.push_back(key);
            if self.recent.len() > RECENT
                && let Some(old) = self.recent.pop_front()
            {
                self.recent_set.remove(&old);
            }
        }
    }

    /// Everything wanted, for a peer that just connected: want-have, so that its HAVE picks it
    /// as the source only of blocks nobody else is sending.
    fn full_wantlist(&self, _peer: PeerId) -> pb::Message {
        let entries = self.wants.values().map(|w| message::want(&w.cid, pb::WantType::Have, 1)).collect();
        message::wantlist(entries, true)
    }

    /// Every [`REBROADCAST`]: want-block for everything still wanted, to every peer. A lost
    /// message, or a peer that was sent want-block and never answered, stalls a fetch at most
    /// this long (at the price of possible duplicates, which are dropped).
    fn rebroadcast(&self) {
        if !self.wants.is_empty() {
            let entries = self.wants.values().map(|w| message::want(&w.cid, pb::WantType::Block, 1)).collect();
            self.broadcast(message::wantlist(entries, true), None);
        }
    }

    /// Queue `msg` to every connected peer except `skip`. A full writer queue drops the message
    /// (logged); wants are re-sent every [`REBROADCAST`].
    fn broadcast(&self, msg: pb::Message, skip: Option<PeerId>) {
        for (peer, tx) in self.lock_writers().iter() {
            if Some(*peer) != skip && tx.wants.try_send(msg.clone()).is_err() {
                debug!(%peer, "writer queue full; message dropped");
            }
        }
    }

    fn lock_writers(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, PeerTx>> {
        // A poisoned lock only means a task panicked while holding it; the map is still valid.
        self.writers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What [`RECENT`] remembers of a block's multihash: the first 8 bytes of its digest (sha2-256,
/// the only hash fetched). Two blocks sharing it is a 2^-64 chance per pair; the cost of one
/// would be a bad block dropped without banning its sender, never a bad block accepted.
fn recent_key(hash: &Multihash<64>) -> u64 {
    let mut key = [0u8; 8];
    let digest = hash.digest();
    let n = digest.len().min(8);
    key[..n].copy_from_slice(&digest[..n]);
    u64::from_le_bytes(key)
}

/// Add `addrs` (each ending in `/p2p/PEER`) to the Kademlia routing table, dial them, and start
/// a Kademlia bootstrap. Addresses without a peer id are skipped and named in the error.
fn add_bootstrap(swarm: &mut Swarm<Behaviour>, addrs: &[Multiaddr]) -> Result<(), NetError> {
    let mut bad = None;
    for addr in addrs {
        match addr.iter().last() {
            Some(libp2p::multiaddr::Protocol::P2p(peer)) => {
                swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                let opts = DialOpts::peer_id(peer)
                    .addresses(vec![addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                if let Err(e) = swarm.dial(opts) {
                    debug!(%addr, "bootstrap dial: {e}");
                }
            }
            _ => {
                warn!(%addr, "bootstrap address without /p2p/PEER ignored");
                bad = Some(addr.clone());
            }
        }
    }
    if !addrs.is_empty()
        && let Err(e) = swarm.behaviour_mut().kad.bootstrap()
    {
        debug!("kademlia bootstrap not started: {e}");
    }
    match bad {
        Some(addr) => Err(NetError::Dial { addr, reason: "a bootstrap address must end in /p2p/PEER".into() }),
        None => Ok(()),
    }
}

fn yamux_config() -> yamux::Config {
    yamux::Config::default()
}

/// Accept inbound bitswap streams (any version), one reader task each.
async fn accept_loop(
    mut incoming: mpsc::Receiver<(PeerId, libp2p::Stream)>,
    blocks: Arc<dyn Blocks>,
    writers: Writers,
    inbound: mpsc::Sender<FromReader>,
    serving: Arc<Semaphore>,
    readers: Arc<Semaphore>,
    max_entries: usize,
) {
    while let Some((peer, stream)) = incoming.recv().await {
        // At most `max_stream_readers` streams are read at once; the rest wait in the queue.
        let Ok(permit) = readers.clone().acquire_owned().await else { return };
        let (blocks, writers, inbound, serving) = (blocks.clone(), writers.clone(), inbound.clone(), serving.clone());
        tokio::spawn(async move {
            reader(peer, stream, blocks, writers, inbound, serving, max_entries).await;
            drop(permit);
        });
    }
}

/// Read messages from one inbound stream until it ends or misbehaves.
async fn reader(
    peer: PeerId,
    mut stream: libp2p::Stream,
    blocks: Arc<dyn Blocks>,
    writers: Writers,
    inbound: mpsc::Sender<FromReader>,
    serving: Arc<Semaphore>,
    max_entries: usize,
) {
    // The judgment of the blocks of the last message passed on (its own task, so that it runs as
    // soon as the swarm task answers while the next frame is read and hashed). The next message's
    // blocks wait for it: a peer's later blocks never overtake the verdict on its earlier ones.
    let mut judging: Option<JoinHandle<Result<(), ()>>> = None;
    loop {
        let msg = match message::read_message(&mut stream).await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(FrameError::Io(e)) => {
                debug!(%peer, "bitswap stream ended: {e}");
                break;
            }
            Err(e) => {
                warn!(%peer, "bad bitswap message: {e}; closing the stream");
                break;
            }
        };
        let mut received: Vec<Received> = msg.payload.into_iter().map(message::received_payload).collect();
        received.extend(msg.blocks.into_iter().map(message::received_raw));
        let presences: Vec<(Cid, bool)> = msg
            .block_presences
            .iter()
            .filter_map(|p| {
                let cid = Cid::try_from(&p.cid[..]).ok()?;
                debug!(%peer, %cid, kind = p.r#type, "presence");
                match pb::BlockPresenceType::try_from(p.r#type) {
                    Ok(pb::BlockPresenceType::Have) => Some((cid, true)),
                    Ok(pb::BlockPresenceType::DontHave) => Some((cid, false)),
                    Err(_) => None,
                }
            })
            .collect();
        if !received.is_empty() || !presences.is_empty() {
            if let Some(judged) = judging.take()
                && !matches!(judged.await, Ok(Ok(())))
            {
                break;
            }
            let (tx, rx) = oneshot::channel();
            let msg = Inbound { peer, blocks: received, presences, unsolicited: tx };
            if inbound.send(FromReader::Blocks(msg)).await.is_err() {
                break;
            }
            judging = Some(tokio::spawn(judge_unsolicited(peer, rx, blocks.clone(), inbound.clone())));
        }
        if let Some(wl) = msg.wantlist {
            serve(peer, wl, &blocks, &writers, &serving, max_entries).await;
        }
    }
    let _ = stream.close().await;
}

/// Wait for the swarm task's list of blocks from `peer` that matched no want, current or recent,
/// and report the first one the node does not hold ([`FromReader::Unheld`]). A block we hold is a
/// duplicate sent late (after [`RECENT`] moved on, or across a restart): harmless, and dropped.
/// A lookup that fails counts as not held. `Err` when the swarm task has stopped.
async fn judge_unsolicited(
    peer: PeerId,
    answer: oneshot::Receiver<Vec<(Cid, usize)>>,
    blocks: Arc<dyn Blocks>,
    inbound: mpsc::Sender<FromReader>,
) -> Result<(), ()> {
    // A dropped answer: the swarm task judged nothing (it banned the peer, or stopped).
    let Ok(suspects) = answer.await else { return Ok(()) };
    if suspects.is_empty() {
        return Ok(());
    }
    let unheld = tokio::task::spawn_blocking(move || {
        suspects.into_iter().find(|(cid, _)| match blocks.has(cid) {
            Ok(held) => !held,
            Err(e) => {
                debug!(%cid, "cannot tell whether a block sent unasked is held: {e}");
                true
            }
        })
    })
    .await
    // A lookup that panicked judges nothing; the blocks were not accepted either way.
    .unwrap_or(None);
    match unheld {
        Some((cid, bytes)) => inbound.send(FromReader::Unheld { peer, cid, bytes }).await.map_err(|_| ()),
        None => {
            debug!(%peer, "late duplicate of a block the node holds ignored");
            Ok(())
        }
    }
}

/// Answer a wantlist: want-have → have / dont-have, want-block → the block / dont-have
/// (dont-have only when the peer asked for it). Wants we cannot answer now are not remembered.
async fn serve(
    peer: PeerId,
    wl: pb::Wantlist,
    blocks: &Arc<dyn Blocks>,
    writers: &Writers,
    serving: &Arc<Semaphore>,
    max_entries: usize,
) {
    if wl.entries.len() > max_entries {
        warn!(%peer, entries = wl.entries.len(), max_entries, "wantlist too long; serving only the first entries");
    }
    let wants: Vec<(Cid, bool, bool)> = wl
        .entries
        .into_iter()
        .take(max_entries)
        .filter(|e| !e.cancel)
        .filter_map(|e| {
            let cid = Cid::try_from(&e.block[..]).ok()?;
            Some((cid, e.want_type == pb::WantType::Have as i32, e.send_dont_have))
        })
        .collect();
    if wants.is_empty() {
        return;
    }
    let Some(tx) = writers.lock().unwrap_or_else(|p| p.into_inner()).get(&peer).map(|t| t.responses.clone()) else {
        return;
    };
    let Ok(_permit) = serving.acquire().await else { return };
    let (msg_tx, mut msg_rx) = mpsc::channel::<pb::Message>(2);
    let blocks = blocks.clone();
    let lookup = tokio::task::spawn_blocking(move || {
        let mut msg = pb::Message::default();
        let mut size = 0usize;
        for (cid, have_only, send_dont_have) in wants {
            let presence = |t: pb::BlockPresenceType| pb::BlockPresence { cid: cid.to_bytes(), r#type: t as i32 };
            let found = if have_only { blocks.has(&cid).map(|h| h.then(Vec::new)) } else { blocks.get(&cid) };
            match found {
                Ok(Some(_)) if have_only => msg.block_presences.push(presence(pb::BlockPresenceType::Have)),
                Ok(Some(data)) if data.len() > MAX_BLOCK_SIZE => {
                    warn!(%cid, bytes = data.len(), "block over the 2 MiB bitswap limit is not served");
                    if send_dont_have {
                        msg.block_presences.push(presence(pb::BlockPresenceType::DontHave));
                    }
                }
                Ok(Some(data)) => {
                    size += data.len();
                    msg.payload.push(pb::Block { prefix: message::prefix(&cid), data });
                }
                Ok(None) if send_dont_have => msg.block_presences.push(presence(pb::BlockPresenceType::DontHave)),
                Ok(None) => {}
                Err(e) => {
                    warn!(%cid, "cannot read block to serve it: {e}");
                    if send_dont_have {
                        msg.block_presences.push(presence(pb::BlockPresenceType::DontHave));
                    }
                }
            }
            if size >= message::RESPONSE_TARGET_SIZE {
                size = 0;
                if msg_tx.blocking_send(std::mem::take(&mut msg)).is_err() {
                    return;
                }
            }
        }
        if msg != pb::Message::default() {
            let _ = msg_tx.blocking_send(msg);
        }
    });
    while let Some(msg) = msg_rx.recv().await {
        if tx.send(msg).await.is_err() {
            break;
        }
    }
    let _ = lookup.await;
}

/// The single outbound stream to `peer`: every message we send it goes here, in order.
async fn writer(
    peer: PeerId,
    mut control: libp2p_stream::Control,
    mut wants: mpsc::Receiver<pb::Message>,
    mut responses: mpsc::Receiver<pb::Message>,
    alive: Arc<AtomicBool>,
) {
    let mut stream: Option<libp2p::Stream> = None;
    loop {
        let msg = tokio::select! {
            biased;
            m = wants.recv() => m.map(|m| coalesce(m, &mut wants)),
            m = responses.recv() => m,
        };
        let Some(msg) = msg else { break };
        for attempt in 0..2 {
            if stream.is_none() {
                if !alive.load(Ordering::Relaxed) {
                    debug!(%peer, "peer disconnected; writer stops");
                    return;
                }
                match control.open_stream(peer, PROTOCOL_1_2).await {
                    Ok(s) => stream = Some(s),
                    Err(e) => {
                        debug!(%peer, attempt, "cannot open bitswap stream: {e}");
                        continue;
                    }
                }
            }
            let Some(s) = stream.as_mut() else { continue };
            match message::write_message(s, &msg).await {
                Ok(()) => break,
                Err(e) => {
                    debug!(%peer, attempt, "bitswap write failed: {e}");
                    stream = None;
                }
            }
        }
    }
    if let Some(mut s) = stream {
        let _ = s.close().await;
    }
}

/// Merge queued incremental wantlist messages into `first` (up to 1024 entries): one frame
/// instead of one per want when `fetch_dag` opens its window.
fn coalesce(mut first: pb::Message, queue: &mut mpsc::Receiver<pb::Message>) -> pb::Message {
    let Some(wl) = first.wantlist.as_mut() else { return first };
    if wl.full {
        return first;
    }
    while wl.entries.len() < 1024 {
        match queue.try_recv() {
            Ok(pb::Message { wantlist: Some(next), .. }) if !next.full => wl.entries.extend(next.entries),
            Ok(other) => {
                // A full wantlist supersedes what was merged so far.
                return other;
            }
            Err(_) => break,
        }
    }
    first
}

impl NodeHandle {
    /// Bytes in and out since the node started ([`Bandwidth`]).
    pub fn bandwidth(&self) -> Bandwidth {
        let mut text = String::new();
        // Writing to a String does not fail; a failure would only leave counts out.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.metrics);
        let mut bw = Bandwidth::default();
        for line in text.lines().filter(|l| l.starts_with("libp2p_bandwidth_bytes_total{")) {
            let Some(n) = line.rsplit_once(' ').and_then(|(_, v)| v.parse::<u64>().ok()) else { continue };
            if line.contains("direction=\"Inbound\"") {
                bw.total_in += n;
            } else if line.contains("direction=\"Outbound\"") {
                bw.total_out += n;
            }
        }
        bw
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses the node listens on (waits for the first one to be bound).
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.ask(Command::ListenAddrs).await
    }

    /// Dial `addr` (with or without `/p2p/PEER`) and wait until the connection is up.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        self.ask(|tx| Command::Connect(addr, tx)).await?
    }

    /// Peers with an open connection.
    pub async fn peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.ask(Command::Peers).await
    }

    /// Announce on the DHT that this node provides `cid` (Kademlia provider record). Returns once
    /// the announcement has started; [`NodeHandle::provide_and_wait`] waits for it to be stored.
    pub async fn provide(&self, cid: Cid) -> Result<(), NetError> {
        self.commands.send(Command::Provide(cid, None)).await.map_err(|_| NetError::Shutdown)
    }

    /// Announce `cid` as [`NodeHandle::provide`] does, and return once Kademlia has found the
    /// closest peers and sent each of them the provider record (`ipfs routing provide` waits the
    /// same way), or with the reason it could not.
    pub async fn provide_and_wait(&self, cid: Cid) -> Result<(), NetError> {
        self.ask(|reply| Command::Provide(cid, Some(reply))).await?
    }

    /// Find providers of `cid` on the DHT (Kademlia `GET_PROVIDERS` on `/ipfs/kad/1.0.0`, keyed by
    /// the CID's multihash, as Kubo does). Returns within about `timeout` with every provider found
    /// by then (at most 20), each with the addresses it can be dialled at: from the routing table
    /// and Identify, or, for a provider known only from the DHT answer, the address a dial made
    /// during the search connected to (so a listed provider is usually connected already). This
    /// node is listed too when it provides `cid` itself. An empty list means nobody was found.
    pub async fn find_providers(&self, cid: Cid, timeout: Duration) -> Result<Vec<Provider>, NetError> {
        let found = self.ask(|reply| Command::FindProviders { cid, timeout, reply });
        // The swarm task answers at the deadline; the margin only guards against a stuck task.
        match tokio::time::timeout(timeout + Duration::from_secs(5), found).await {
            Ok(r) => r,
            Err(_) => Ok(Vec::new()),
        }
    }

    /// Add DHT bootstrap peers (each address ending in `/p2p/PEER`): they are dialled and added to
    /// the routing table, and a Kademlia bootstrap starts. Returns once started, not when done; an
    /// address without a peer id is an error (the others are still used).
    pub async fn bootstrap(&self, addrs: Vec<Multiaddr>) -> Result<(), NetError> {
        self.ask(|tx| Command::Bootstrap(addrs, tx)).await?
    }

    /// Close every connection to `peer`; `false` when there was none.
    pub async fn disconnect(&self, peer: PeerId) -> Result<bool, NetError> {
        self.ask(|tx| Command::Disconnect(peer, tx)).await
    }

    /// Send a job-protocol request to `peer` (connected, or dialable at an address the node
    /// knows) and wait at most `timeout` for the answer. Sizes are bounded by
    /// [`crate::rpc::MAX_REQUEST`] and [`crate::rpc::MAX_RESPONSE`].
    pub async fn request(&self, peer: PeerId, body: &[u8], timeout: Duration) -> Result<Vec<u8>, NetError> {
        crate::rpc::call(self.control.clone(), crate::rpc::JOB_PROTOCOL, peer, body, timeout).await
    }

    /// [`NodeHandle::request`] on [`crate::rpc::BROKER_PROTOCOL`] (requests up to
    /// [`crate::rpc::MAX_BROKER_REQUEST`] bytes).
    pub async fn broker_request(&self, peer: PeerId, body: &[u8], timeout: Duration) -> Result<Vec<u8>, NetError> {
        crate::rpc::call(self.control.clone(), crate::rpc::BROKER_PROTOCOL, peer, body, timeout).await
    }

    /// Start accepting key-broker requests, as [`NodeHandle::serve_requests`] does job requests.
    pub fn serve_broker_requests(&self, concurrency: usize) -> Result<mpsc::Receiver<crate::rpc::Request>, NetError> {
        let incoming = self
            .control
            .clone()
            .accept(crate::rpc::BROKER_PROTOCOL)
            .map_err(|e| NetError::Transport(format!("{}: {e}", crate::rpc::BROKER_PROTOCOL)))?;
        let (tx, rx) = mpsc::channel(concurrency.max(1));
        tokio::spawn(crate::rpc::serve(incoming, tx, concurrency, crate::rpc::MAX_BROKER_REQUEST));
        Ok(rx)
    }

    /// Start accepting job-protocol requests: each one arrives on the returned channel, at most
    /// `concurrency` at once (more are refused with a stream reset). Only one caller may serve.
    pub fn serve_requests(&self, concurrency: usize) -> Result<mpsc::Receiver<crate::rpc::Request>, NetError> {
        let incoming = self
            .control
            .clone()
            .accept(crate::rpc::JOB_PROTOCOL)
            .map_err(|e| NetError::Transport(format!("{}: {e}", crate::rpc::JOB_PROTOCOL)))?;
        let (tx, rx) = mpsc::channel(concurrency.max(1));
        tokio::spawn(crate::rpc::serve(incoming, tx, concurrency, crate::rpc::MAX_REQUEST));
        Ok(rx)
    }

    /// Stop the node: pending fetches fail with [`NetError::Shutdown`], connections close.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }

    /// Fetch one block from connected peers; the bytes returned hash to `cid`. Fails with
    /// [`NetError::NotFound`] as soon as every connected peer has answered DONT_HAVE, and with
    /// [`NetError::Timeout`] after `timeout` otherwise.
    pub async fn fetch(&self, cid: Cid, timeout: Duration) -> Result<Vec<u8>, NetError> {
        match cid.hash().code() {
            IDENTITY => return Ok(cid.hash().digest().to_vec()),
            SHA2_256 => {}
            code => return Err(NetError::UnsupportedHash { cid, code }),
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Want { cid, id, reply: tx }).await.map_err(|_| NetError::Shutdown)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(NetError::Shutdown),
            Err(_) => {
                let _ = self.commands.send(Command::Unwant { cid, id }).await;
                Err(NetError::Timeout { cid, after: timeout })
            }
        }
    }

    /// Fetch the whole DAG under `root`, writing every block fetched from peers (each verified)
    /// to `sink`; blocks the node already holds are read locally for their links, not rewritten.
    /// `timeout` bounds the wait for any single block. On error the sink may hold a part of the
    /// DAG: commit it only on success (a store `Batch` dropped uncommitted stores nothing).
    pub async fn fetch_dag<S>(&self, root: Cid, sink: &mut S, timeout: Duration) -> Result<DagStats, NetError>
    where
        S: BlockSink,
        S::Error: std::fmt::Display,
    {
        let started = Instant::now();
        let mut stats = DagStats::default();
        let mut queue = VecDeque::from([root]);
        let mut seen = HashSet::from([root]);
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.fetch_window
                && let Some(cid) = queue.pop_front()
            {
                in_flight.push(async move { (cid, self.local_or_fetch(cid, timeout).await) });
            }
            let Some((cid, result)) = in_flight.next().await else { break };
            let (data, local) = result?;
            if local {
                stats.local += 1;
            } else if cid.hash().code() != IDENTITY {
                sink.put(&cid, &data).map_err(|e| NetError::Sink { cid, reason: e.to_string() })?;
                stats.fetched += 1;
                stats.bytes += data.len() as u64;
            }
            for link in links(&cid, &data)? {
                if seen.insert(link) {
                    queue.push_back(link);
                }
            }
        }
        debug!(%root, ?stats, elapsed = ?started.elapsed(), "DAG fetched");
        Ok(stats)
    }

    async fn local_or_fetch(&self, cid: Cid, timeout: Duration) -> Result<(Vec<u8>, bool), NetError> {
        let blocks = self.blocks.clone();
        let local = tokio::task::spawn_blocking(move || blocks.get(&cid))
            .await
            .map_err(|e| NetError::Blocks { cid, reason: e.to_string() })?
            .map_err(|e| NetError::Blocks { cid, reason: e.to_string() })?;
        match local {
            Some(data) => Ok((data, true)),
            None => Ok((self.fetch(cid, timeout).await?, false)),
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| NetError::Shutdown)?;
        rx.await.map_err(|_| NetError::Shutdown)
    }
}
