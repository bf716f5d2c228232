//! Request/response over libp2p streams: the transport of the job protocol (`/vouch/job/1.0.0`)
//! and the key-broker protocol (`/vouch/broker/1.0.0`).
//!
//! One stream per request: the caller writes one frame (unsigned-varint length, then the
//! request), the server answers with one frame and closes. What the bytes mean is the caller's
//! business (vouch-node puts DAG-CBOR job messages in them, `docs/job-protocol.md`); this layer
//! bounds their sizes, the time a request may take to arrive, and how many are served at once.

use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, warn};

use crate::NetError;
use crate::message::{read_frame, write_frame};

/// The job protocol id.
pub const JOB_PROTOCOL: StreamProtocol = StreamProtocol::new("/vouch/job/1.0.0");
/// The key-broker protocol id (`docs/seal.md`): key requests to a data owner's broker.
pub const BROKER_PROTOCOL: StreamProtocol = StreamProtocol::new("/vouch/broker/1.0.0");
/// Largest broker request accepted (a key request carries a job spec and evidence).
pub const MAX_BROKER_REQUEST: usize = 4 << 20;
/// Largest request accepted (a job spec is a few KiB; this leaves room for many inputs).
pub const MAX_REQUEST: usize = 1 << 20;
/// Largest response accepted (a receipt with the small results it carries inline).
pub const MAX_RESPONSE: usize = 64 << 20;
/// How long a request may take to arrive once its stream is open.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A request from a peer, waiting for its answer. Dropping it unanswered resets the stream (the
/// caller sees an error naming this peer).
#[derive(Debug)]
pub struct Request {
    pub peer: PeerId,
    pub body: Vec<u8>,
    reply: oneshot::Sender<Vec<u8>>,
}

impl Request {
    /// Send `body` (at most [`MAX_RESPONSE`] bytes) back to the requester.
    pub fn respond(self, body: Vec<u8>) {
        let _ = self.reply.send(body);
    }
}

/// Accept streams on [`JOB_PROTOCOL`]: each request read (bounded in size and time) is handed to
/// `tx`; at most `limit` are open at once (further streams are dropped, which the remote sees as a
/// reset).
pub(crate) async fn serve(
    mut incoming: libp2p_stream::IncomingStreams,
    tx: mpsc::Sender<Request>,
    limit: usize,
    max_request: usize,
) {
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    while let Some((peer, mut stream)) = incoming.next().await {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(%peer, "job request dropped: {limit} requests are already being served");
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let body = match tokio::time::timeout(REQUEST_READ_TIMEOUT, read_frame(&mut stream, max_request)).await {
                Ok(Ok(Some(body))) => body,
                Ok(Ok(None)) => return debug!(%peer, "job stream closed before a request"),
                Ok(Err(e)) => return warn!(%peer, "bad job request: {e}"),
                Err(_) => return warn!(%peer, "job request not received within {REQUEST_READ_TIMEOUT:?}"),
            };
            let (reply, answer) = oneshot::channel();
            if tx.send(Request { peer, body, reply }).await.is_err() {
                return;
            }
            let Ok(response) = answer.await else { return debug!(%peer, "job request dropped unanswered") };
            if response.len() > MAX_RESPONSE {
                return warn!(%peer, len = response.len(), "job response over {MAX_RESPONSE} bytes not sent");
            }
            match write_frame(&mut stream, &response).await {
                Ok(()) => {
                    let _ = stream.close().await;
                }
                Err(e) => debug!(%peer, "job response not delivered: {e}"),
            }
        });
    }
}

/// Send `body` to `peer` on [`JOB_PROTOCOL`] and wait (at most `timeout`) for its answer.
pub(crate) async fn call(
    mut control: libp2p_stream::Control,
    protocol: StreamProtocol,
    peer: PeerId,
    body: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, NetError> {
    let fail = |reason: String| NetError::Request { peer, reason };
    let max = if protocol == BROKER_PROTOCOL { MAX_BROKER_REQUEST } else { MAX_REQUEST };
    if body.len() > max {
        return Err(fail(format!("request of {} bytes is over the {max}-byte limit", body.len())));
    }
    let exchange = async {
        let mut stream = control
            .open_stream(peer, protocol.clone())
            .await
            .map_err(|e| fail(format!("cannot open a {protocol} stream: {e}")))?;
        write_frame(&mut stream, body).await.map_err(|e| fail(format!("sending the request: {e}")))?;
        match read_frame(&mut stream, MAX_RESPONSE).await {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(fail("the peer closed the stream without answering".into())),
            Err(e) => Err(fail(format!("reading the answer: {e}"))),
        }
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| fail(format!("no answer within {timeout:?}")))?
}
