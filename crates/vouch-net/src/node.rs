//! The node: one swarm task that owns the libp2p swarm and the wantlist, stream tasks that read
//! and write bitswap messages, and the [`NodeHandle`] callers talk to.
//!
//! Tasks and queues (every queue bounded):
//! - the **swarm task** ([`Node::run`]) owns the swarm, the wants and the set of connected peers;
//!   it takes [`Command`]s from handles and [`Inbound`] block batches from readers;
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
use libp2p::swarm::{NetworkBehaviour, SwarmEvent, dial_opts::DialOpts};
use libp2p::{Multiaddr, PeerId, Swarm, identify, identity, kad, noise, ping, tcp, yamux};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use vouch_dag::BlockSink;
use vouch_dag::block::{IDENTITY, MAX_BLOCK_SIZE, SHA2_256, links, verify};

use crate::message::{self, FrameError, PROTOCOL_1_2, Received, pb};
use crate::{AGENT_VERSION, Blocks, Config, NetError};

/// Wanted blocks are re-sent to every peer this often, in case a message was dropped.
const REBROADCAST: Duration = Duration::from_secs(10);
/// Multihashes of blocks recently received or given up on: a late copy from a second peer is a
/// duplicate, not a lie.
const RECENT: usize = 8192;
/// How long a peer that sent a bad block stays disconnected (its new connections are closed).
const BAN: Duration = Duration::from_secs(600);
/// Most banned peers remembered (the oldest ban is forgotten first).
const MAX_BANNED: usize = 4096;
/// Messages queued per peer writer (each at most ~3 MiB: 1 MiB target plus one 2 MiB block).
const WRITER_QUEUE: usize = 16;

#[derive(NetworkBehaviour)]
struct Behaviour {
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
    Want { cid: Cid, id: u64, reply: Reply },
    Unwant { cid: Cid, id: u64 },
    Provide(Cid),
    Shutdown,
}

/// Blocks a reader received from `peer`, hashed.
struct Inbound {
    peer: PeerId,
    blocks: Vec<Received>,
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
}

/// A running node, as seen from the swarm task.
pub struct Node {
    swarm: Swarm<Behaviour>,
    config: Config,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Receiver<Inbound>,
    writers: Writers,
    wants: HashMap<Multihash<64>, Want>,
    recent: VecDeque<Multihash<64>>,
    recent_set: HashSet<Multihash<64>>,
    addr_waiters: Vec<oneshot::Sender<Vec<Multiaddr>>>,
    /// Per connected peer: cleared when its last connection closes, so its writer never
    /// re-dials a peer (`libp2p-stream` dials on `open_stream`), e.g. one we just disconnected.
    connected: HashMap<PeerId, Arc<AtomicBool>>,
    banned: HashMap<PeerId, Instant>,
    dials: HashMap<libp2p::swarm::ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId, NetError>>)>,
}

/// What callers hold: cheap to clone, usable from any task.
#[derive(Clone)]
pub struct NodeHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    blocks: Arc<dyn Blocks>,
    next_id: Arc<AtomicU64>,
    fetch_window: usize,
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
        let (inbound_behaviour, inbound_streams) = crate::inbound::Behaviour::new();
        let mut inbound_behaviour = Some(inbound_behaviour);
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux_config)
            .map_err(|e| NetError::Transport(e.to_string()))?
            .with_behaviour(|key| {
                let id = key.public().to_peer_id();
                let mut kad = kad::Behaviour::with_config(
                    id,
                    kad::store::MemoryStore::new(id),
                    kad::Config::new(kad::PROTOCOL_NAME),
                );
                kad.set_mode(Some(kad::Mode::Server));
                Behaviour {
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
        for addr in &config.bootstrap {
            match addr.iter().last() {
                Some(libp2p::multiaddr::Protocol::P2p(peer)) => {
                    swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                    if let Err(e) = swarm.dial(addr.clone()) {
                        warn!(%addr, "bootstrap dial failed: {e}");
                    }
                }
                _ => warn!(%addr, "bootstrap address without /p2p/PEER ignored"),
            }
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
            config.max_entries_per_message,
        ));

        let (cmd_tx, commands) = mpsc::channel(256);
        let handle = NodeHandle {
            peer_id,
            commands: cmd_tx,
            blocks,
            next_id: Arc::default(),
            fetch_window: config.fetch_window.max(1),
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
        };
        info!(%peer_id, "vouch-net node starting");
        Ok((handle, tokio::spawn(node.run())))
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(REBROADCAST);
        tick.tick().await;
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(cmd) => self.on_command(cmd),
                },
                Some(inbound) = self.inbound.recv() => self.on_blocks(inbound),
                _ = tick.tick() => self.rebroadcast(),
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
                        let _ = tx.wants.try_send(self.full_wantlist());
                    }
                    self.lock_writers().insert(peer_id, tx);
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, cause, .. } => {
                debug!(%peer_id, ?cause, "connection closed");
                if num_established == 0 {
                    self.lock_writers().remove(&peer_id);
                    if let Some(alive) = self.connected.remove(&peer_id) {
                        alive.store(false, Ordering::Relaxed);
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial { addr, reason: error.to_string() }));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                debug!(%peer_id, agent = %info.agent_version, "identified");
                if info.protocols.contains(&kad::PROTOCOL_NAME) {
                    for addr in info.listen_addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
            }
            _ => {}
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
                self.wants.insert(key, Want { cid, waiters: vec![(id, reply)] });
                self.broadcast(message::wantlist(vec![message::want(&cid, pb::WantType::Block, 1)], false), None);
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
            Command::Provide(cid) => {
                if let Err(e) =
                    self.swarm.behaviour_mut().kad.start_providing(kad::RecordKey::new(&cid.hash().to_bytes()))
                {
                    warn!(%cid, "cannot announce provider record: {e}");
                }
            }
            Command::Shutdown => {}
        }
    }

    /// Received blocks: accept those that hash to a wanted CID; a block that matches nothing we
    /// want (or wanted recently) is a lie or spam, and its sender is disconnected.
    fn on_blocks(&mut self, inbound: Inbound) {
        let peer = inbound.peer;
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
                if self.recent_set.contains(&hash) {
                    debug!(%peer, "duplicate block ignored");
                    continue;
                }
                warn!(
                    %peer,
                    claimed = ?block.claimed.map(|c| c.to_string()),
                    bytes = block.data.len(),
                    "peer sent a block matching no wanted CID (unsolicited, or its bytes do not hash to the CID); disconnecting and banning it"
                );
                self.ban(peer);
                return;
            };
            // The trust decision, stated where it is made: the bytes must hash to the wanted CID.
            if let Err(e) = verify(&want.cid, &block.data) {
                warn!(%peer, "{e}; disconnecting and banning it");
                self.wants.insert(hash, want);
                self.ban(peer);
                return;
            }
            self.remember(hash);
            self.broadcast(message::wantlist(vec![message::cancel(&want.cid)], false), Some(peer));
            for (_, w) in want.waiters {
                let _ = w.send(Ok(block.data.clone()));
            }
        }
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
        if self.recent_set.insert(hash) {
            self.recent.push_back(hash);
            if self.recent.len() > RECENT
                && let Some(old) = self.recent.pop_front()
            {
                self.recent_set.remove(&old);
            }
        }
    }

    fn full_wantlist(&self) -> pb::Message {
        let entries = self.wants.values().map(|w| message::want(&w.cid, pb::WantType::Block, 1)).collect();
        message::wantlist(entries, true)
    }

    fn rebroadcast(&self) {
        if !self.wants.is_empty() {
            self.broadcast(self.full_wantlist(), None);
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

fn yamux_config() -> yamux::Config {
    yamux::Config::default()
}

/// Accept inbound bitswap streams (any version), one reader task each.
async fn accept_loop(
    mut incoming: mpsc::Receiver<(PeerId, libp2p::Stream)>,
    blocks: Arc<dyn Blocks>,
    writers: Writers,
    inbound: mpsc::Sender<Inbound>,
    serving: Arc<Semaphore>,
    max_entries: usize,
) {
    while let Some((peer, stream)) = incoming.recv().await {
        tokio::spawn(reader(
            peer,
            stream,
            blocks.clone(),
            writers.clone(),
            inbound.clone(),
            serving.clone(),
            max_entries,
        ));
    }
}

/// Read messages from one inbound stream until it ends or misbehaves.
async fn reader(
    peer: PeerId,
    mut stream: libp2p::Stream,
    blocks: Arc<dyn Blocks>,
    writers: Writers,
    inbound: mpsc::Sender<Inbound>,
    serving: Arc<Semaphore>,
    max_entries: usize,
) {
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
        for p in &msg.block_presences {
            debug!(%peer, cid = ?Cid::try_from(&p.cid[..]).ok().map(|c| c.to_string()), kind = p.r#type, "presence");
        }
        if !received.is_empty() && inbound.send(Inbound { peer, blocks: received }).await.is_err() {
            break;
        }
        if let Some(wl) = msg.wantlist {
            serve(peer, wl, &blocks, &writers, &serving, max_entries).await;
        }
    }
    let _ = stream.close().await;
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

    /// Announce on the DHT that this node provides `cid` (Kademlia provider record).
    pub async fn provide(&self, cid: Cid) -> Result<(), NetError> {
        self.commands.send(Command::Provide(cid)).await.map_err(|_| NetError::Shutdown)
    }

    /// Stop the node: pending fetches fail with [`NetError::Shutdown`], connections close.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }

    /// Fetch one block from connected peers; the bytes returned hash to `cid`.
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
