//! Local-only mode (`Config::local_only`): the node talks to this machine only. Listen and
//! bootstrap addresses must be loopback (checked at start); an inbound connection from a
//! non-loopback address is refused before its handshake, an outbound one to such an address
//! is dropped as soon as it is established, before any protocol runs on it; addresses other
//! peers advertise are kept out of the routing table.

use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    dummy,
};
use tracing::warn;

/// Whether `addr` names this machine: 127.0.0.0/8, ::1 or `localhost`.
pub fn is_loopback(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_loopback(),
        Some(Protocol::Ip6(ip)) => ip.is_loopback(),
        Some(Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h)) => h == "localhost",
        _ => false,
    }
}

#[derive(Debug)]
struct NotLocal(Multiaddr);

impl std::fmt::Display for NotLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "local-only mode: {} is not a loopback address", self.0)
    }
}

impl std::error::Error for NotLocal {}

/// The connection gate; inert unless `enabled`.
pub(crate) struct Behaviour {
    pub(crate) enabled: bool,
}

impl Behaviour {
    fn check(&self, addr: &Multiaddr) -> Result<(), ConnectionDenied> {
        if self.enabled && !is_loopback(addr) {
            warn!(%addr, "connection refused: local-only mode");
            return Err(ConnectionDenied::new(NotLocal(addr.clone())));
        }
        Ok(())
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.check(remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(remote).map(|()| dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        addr: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(addr).map(|()| dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, e: THandlerOutEvent<Self>) {
        match e {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
