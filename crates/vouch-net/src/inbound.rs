//! Accepting inbound bitswap streams.
//!
//! go-bitswap (Kubo) opens a new stream for every message its server sends, so a burst of
//! responses arrives as a burst of streams. `libp2p-stream`'s `accept` queue holds one stream
//! and drops the rest (measured: most of Kubo's responses were lost, and fetches stalled until a
//! rebroadcast), so inbound streams come through this small behaviour instead: every negotiated
//! stream goes into a bounded queue (`Config::max_pending_streams`, default 1024); past that,
//! streams are dropped and logged (the remote sees a reset, as with any overloaded peer).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::{DeniedUpgrade, InboundUpgrade, UpgradeInfo};
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm, NetworkBehaviour, Stream,
    SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::mpsc;
use tracing::warn;

use crate::message::{PROTOCOL_1_0, PROTOCOL_1_1, PROTOCOL_1_2};

/// The behaviour: hands every inbound bitswap stream to the accept task.
pub struct Behaviour {
    tx: mpsc::Sender<(PeerId, Stream)>,
    queue: usize,
}

impl Behaviour {
    /// At most `queue` streams wait for a reader.
    pub fn new(queue: usize) -> (Behaviour, mpsc::Receiver<(PeerId, Stream)>) {
        let queue = queue.max(1);
        let (tx, rx) = mpsc::channel(queue);
        (Behaviour { tx, queue }, rx)
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::default())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::default())
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(&mut self, peer: PeerId, _: ConnectionId, stream: THandlerOutEvent<Self>) {
        if self.tx.try_send((peer, stream)).is_err() {
            warn!(%peer, queue = self.queue, "inbound bitswap stream queue full; dropping a stream");
        }
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// Negotiates any of the three bitswap versions; the message decoder handles all three.
#[derive(Clone, Copy, Debug)]
pub struct Accept;

impl UpgradeInfo for Accept {
    type Info = StreamProtocol;
    type InfoIter = [StreamProtocol; 3];
    fn protocol_info(&self) -> Self::InfoIter {
        [PROTOCOL_1_2, PROTOCOL_1_1, PROTOCOL_1_0]
    }
}

impl InboundUpgrade<Stream> for Accept {
    type Output = Stream;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Stream, Infallible>>;
    fn upgrade_inbound(self, stream: Stream, _: StreamProtocol) -> Self::Future {
        std::future::ready(Ok(stream))
    }
}

/// Per connection: passes negotiated inbound streams up; opens none itself.
#[derive(Default)]
pub struct Handler {
    ready: VecDeque<Stream>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Stream;
    type InboundProtocol = Accept;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Accept, ()> {
        SubstreamProtocol::new(Accept, ())
    }

    fn connection_keep_alive(&self) -> bool {
        false
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>> {
        match self.ready.pop_front() {
            Some(s) => Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(s)),
            None => Poll::Pending,
        }
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, .. }) = event {
            self.ready.push_back(protocol);
        }
    }
}
