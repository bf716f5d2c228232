//! The HTTP API (`/api/v0/…`): routes, JSON errors, streaming bodies. Spec: `docs/http-api.md`.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use vouch_dag::export::{self, Kind};
use vouch_dag::file::FileImporter;
use vouch_dag::{Cid, DagError, Params};
use vouch_net::{AGENT_VERSION, Multiaddr, NetError, NodeHandle};
use vouch_store::{Store, StoreError};

use crate::DaemonInfo;
use crate::jobs::{JobStatus, Jobs, Refusal, Requester};

/// Shared by every handler: cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Arc<Store>,
    pub(crate) net: NodeHandle,
    info: Arc<DaemonInfo>,
    jobs: Arc<Jobs>,
}

impl AppState {
    pub(crate) fn new(store: Arc<Store>, net: NodeHandle, info: &DaemonInfo, jobs: Arc<Jobs>) -> AppState {
        AppState { store, net, info: Arc::new(info.clone()), jobs }
    }
}

/// Every route, as the OpenAPI document lists it.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v0/id", get(id).post(id))
        .route("/api/v0/swarm/connect", post(swarm_connect))
        .route("/api/v0/swarm/peers", get(swarm_peers).post(swarm_peers))
        .route("/api/v0/stats/bw", get(stats_bw).post(stats_bw))
        // The body streams into the store: no size limit here (the disk is the limit).
        .route("/api/v0/add", post(add).layer(DefaultBodyLimit::disable()))
        .route("/api/v0/cat", get(cat).post(cat))
        .route("/api/v0/routing/provide", post(provide))
        .route("/api/v0/dag/fetch", post(dag_fetch))
        // A job spec is small: 1 MiB, as on the job protocol.
        .route("/api/v0/job/submit", post(job_submit).layer(DefaultBodyLimit::max(vouch_net::rpc::MAX_REQUEST)))
        .route("/api/v0/job/status", get(job_status).post(job_status))
        .route("/api/v0/receipt", get(receipt).post(receipt))
        .route("/api/v0/evidence", get(evidence).post(evidence))
        .route("/api/v0/openapi.json", get(openapi))
        .route("/ipfs/{cid}", get(crate::gateway::get))
        .route("/ipfs/{cid}/{*path}", get(crate::gateway::get))
        .fallback(
            |uri: Uri| async move { ApiError::new(StatusCode::NOT_FOUND, format!("no such route: {}", uri.path())) },
        )
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this route (see /api/v0/openapi.json)")
        })
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state)
}

/// Most bytes of a plain-text error body read to turn it into JSON.
const MAX_TEXT_ERROR: usize = 64 << 10;

/// Every error answer is JSON: one that is not yet (axum's own rejections, e.g. the plain-text
/// 413 of a body over its route's limit) becomes `{"error": its text, "code": status}`.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json =
        resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), MAX_TEXT_ERROR).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let reason = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the request body is larger than this route accepts (a job spec: at most {} bytes): {text}",
            vouch_net::rpc::MAX_REQUEST
        ),
        _ if text.is_empty() => status.canonical_reason().unwrap_or("request failed").to_string(),
        _ => text,
    };
    ApiError::new(status, reason).into_response()
}

/// A failed request: `{"error": reason, "code": HTTP status}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub(crate) fn internal(message: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, error = %self.message, "request failed");
        }
        (self.status, Json(json!({ "error": self.message, "code": self.status.as_u16() }))).into_response()
    }
}

/// A store error as a response: missing blocks and paths are 404, malformed input 400, the rest
/// 500.
pub(crate) fn store_error(e: StoreError) -> ApiError {
    match &e {
        StoreError::NotFound { cid } => {
            ApiError::new(StatusCode::NOT_FOUND, format!("block {cid} is not stored on this node"))
        }
        StoreError::Incomplete { .. } | StoreError::Dag(DagError::NoSuchPath { .. }) => {
            ApiError::new(StatusCode::NOT_FOUND, e.to_string())
        }
        StoreError::Dag(DagError::InvalidCid { .. } | DagError::WrongKind { .. }) => {
            ApiError::bad_request(e.to_string())
        }
        _ => ApiError::internal(e),
    }
}

fn net_error(context: String, e: NetError) -> ApiError {
    let status = match e {
        NetError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        NetError::Dial { .. } => StatusCode::BAD_GATEWAY,
        NetError::WantlistFull { .. } | NetError::Shutdown => StatusCode::SERVICE_UNAVAILABLE,
        NetError::UnsupportedHash { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, format!("{context}: {e}"))
}

/// The query string as `T`; a malformed one is a 400 with serde's reason.
pub(crate) fn query<T: DeserializeOwned>(uri: &Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri).map(|q| q.0).map_err(|e| ApiError::bad_request(e.body_text()))
}

/// Run blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)?
}

/// A response body produced by blocking code writing to an [`io::Write`]: bounded (a few chunks
/// in flight), and aborted (the connection is cut, so the client sees a truncated body) when
/// `produce` fails after the headers went out.
pub(crate) fn stream_blocking(produce: impl FnOnce(&mut ChannelWriter) -> Result<(), String> + Send + 'static) -> Body {
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) };
        let result = produce(&mut w).and_then(|()| w.flush().map_err(|e| e.to_string()));
        if let Err(e) = result {
            tracing::debug!(error = %e, "response body aborted");
            let _ = w.tx.blocking_send(Err(io::Error::other(e)));
        }
    });
    Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

const CHUNK: usize = 256 << 10;

pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

async fn id(State(s): State<AppState>) -> Json<Value> {
    let info = &s.info;
    Json(json!({
        "ID": info.peer_id.to_string(),
        "PublicKey": hex::encode(info.public_key.as_bytes()),
        "KeyType": "ed25519",
        "Addresses": info.swarm.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "AgentVersion": AGENT_VERSION,
    }))
}

#[derive(Deserialize)]
struct ArgQuery {
    arg: Option<String>,
    timeout: Option<String>,
}

fn required_arg(q: &ArgQuery, what: &str) -> Result<String, ApiError> {
    q.arg.clone().ok_or_else(|| ApiError::bad_request(format!("missing query parameter `arg` ({what})")))
}

async fn swarm_connect(State(s): State<AppState>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let arg = required_arg(&query(&uri)?, "a multiaddr")?;
    let addr: Multiaddr = arg.parse().map_err(|e| ApiError::bad_request(format!("{arg:?} is not a multiaddr: {e}")))?;
    let peer = s.net.connect(addr).await.map_err(|e| net_error(format!("connecting to {arg}"), e))?;
    Ok(Json(json!({ "Peer": peer.to_string(), "Strings": [format!("connect {peer} success")] })))
}

async fn swarm_peers(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let peers = s.net.peers().await.map_err(|e| net_error("listing peers".into(), e))?;
    let list: Vec<Value> = peers.iter().map(|p| json!({ "Peer": p.to_string() })).collect();
    Ok(Json(json!({ "Peers": list })))
}

/// Bytes over libp2p since the daemon started, all peers and protocols, as `ipfs stats bw`
/// totals them.
async fn stats_bw(State(s): State<AppState>) -> Json<Value> {
    let bw = s.net.bandwidth();
    Json(json!({ "TotalIn": bw.total_in, "TotalOut": bw.total_out }))
}

#[derive(Deserialize)]
struct AddQuery {
    name: Option<String>,
}

/// What the request handler sends to the importing thread. Only `End` commits: a body cut short
/// (client gone, handler dropped) stores nothing.
enum AddMsg {
    Data(Bytes),
    End,
}

async fn add(State(s): State<AppState>, uri: Uri, body: Body) -> Result<Json<Value>, ApiError> {
    let q: AddQuery = query(&uri)?;
    let (tx, mut rx) = mpsc::channel::<AddMsg>(4);
    let store = s.store.clone();
    let import = tokio::task::spawn_blocking(move || -> Result<Option<vouch_dag::file::Node>, StoreError> {
        let mut batch = store.batch()?;
        let mut file = FileImporter::new(&Params::default());
        loop {
            match rx.blocking_recv() {
                Some(AddMsg::Data(chunk)) => file.write(&chunk, &mut batch)?,
                Some(AddMsg::End) => break,
                None => return Ok(None),
            }
        }
        let node = file.finish(&mut batch)?;
        batch.pin(node.cid);
        batch.commit()?;
        Ok(Some(node))
    });
    let mut frames = body.into_data_stream();
    let mut body_error = None;
    while let Some(frame) = frames.next().await {
        match frame {
            // A send fails only when the importer stopped with an error: reported below.
            Ok(chunk) => {
                if tx.send(AddMsg::Data(chunk)).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                body_error = Some(e);
                break;
            }
        }
    }
    if body_error.is_none() {
        let _ = tx.send(AddMsg::End).await;
    }
    drop(tx);
    let node = import.await.map_err(ApiError::internal)?.map_err(store_error)?;
    match (node, body_error) {
        (Some(node), None) => {
            // Fails only when the node is shutting down; the content is stored regardless.
            let _ = s.net.provide(node.cid).await;
            Ok(Json(json!({
            "Name": q.name.unwrap_or_else(|| node.cid.to_string()),
            "Hash": node.cid.to_string(),
            // Cumulative DAG size as a string, as `ipfs add` and `vouch add --json` report it.
            "Size": node.tsize.to_string(),
            "Bytes": node.filesize,
            })))
        }
        (_, Some(e)) => Err(ApiError::bad_request(format!("reading the request body: {e}; nothing was stored"))),
        (None, None) => Err(ApiError::internal("the import ended before the body did; nothing was stored")),
    }
}

/// Announce on the DHT that this node provides a CID it stores completely (`vouch add` calls this
/// when a daemon runs, since it writes to the store directly).
async fn provide(State(s): State<AppState>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let arg = required_arg(&query(&uri)?, "a CID")?;
    let cid = vouch_dag::block::parse_cid(&arg).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let store = s.store.clone();
    blocking(move || store.check_complete(&cid).map_err(store_error)).await?;
    s.net.provide(cid).await.map_err(|e| net_error(format!("announcing {cid}"), e))?;
    Ok(Json(json!({ "Provided": cid.to_string() })))
}

/// Default and ceiling of `cat`'s `timeout` (per block fetched from peers).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub(crate) fn parse_timeout(s: &str) -> Result<Duration, ApiError> {
    let bad = || ApiError::bad_request(format!("timeout {s:?}: expected a duration like 30s, 500ms, 2m or 1h"));
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs).min(MAX_TIMEOUT))
}

/// Make the whole DAG under `root` local (see [`crate::make_local`]), as an API error when it
/// cannot be.
async fn ensure_local(s: &AppState, root: Cid, timeout: Duration) -> Result<(), ApiError> {
    crate::make_local(&s.net, &s.store, root, timeout).await.map_err(|e| match e {
        crate::Missing::NoPeers => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{root} is not (completely) stored on this node and no peer is connected to fetch it from"),
        ),
        crate::Missing::Net { peers, source } => {
            net_error(format!("fetching {root} over bitswap from {peers} peers"), source)
        }
        crate::Missing::Store(e) => store_error(e),
    })
}

/// Fetch a whole DAG from connected peers into the store (what `vouch get`/`cat` ask a running
/// daemon for when the content is not local).
async fn dag_fetch(State(s): State<AppState>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let q: ArgQuery = query(&uri)?;
    let arg = required_arg(&q, "a CID")?;
    let timeout = q.timeout.as_deref().map(parse_timeout).transpose()?.unwrap_or(DEFAULT_TIMEOUT);
    let root = vouch_dag::block::parse_cid(&arg).map_err(|e| ApiError::bad_request(e.to_string()))?;
    ensure_local(&s, root, timeout).await?;
    Ok(Json(json!({ "Fetched": root.to_string() })))
}

async fn cat(State(s): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q: ArgQuery = query(&uri)?;
    let arg = required_arg(&q, "CID[/path]")?;
    let timeout = q.timeout.as_deref().map(parse_timeout).transpose()?.unwrap_or(DEFAULT_TIMEOUT);
    let (root, path) = export::split_path(&arg).map_err(|e| ApiError::bad_request(e.to_string()))?;
    ensure_local(&s, root, timeout).await?;
    let store = s.store.clone();
    let cid = blocking(move || {
        let cid = export::resolve(&*store, &root, &path).map_err(store_error)?;
        match export::stat(&*store, &cid).map_err(store_error)? {
            Kind::File { .. } => Ok(cid),
            other => Err(ApiError::bad_request(format!("{arg} is not a file ({other:?}); cat reads files"))),
        }
    })
    .await?;
    let store = s.store.clone();
    let body = stream_blocking(move |w| export::read_file(&*store, &cid, w).map(drop).map_err(|e| e.to_string()));
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

/// A refusal as an HTTP error: its code names the reason's kind (`"refusal"` in the body).
fn refusal_error(r: Refusal) -> Response {
    let status = match r {
        Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
        Refusal::Unavailable(_) => StatusCode::NOT_FOUND,
        Refusal::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::Policy(_) | Refusal::Quota(_) => StatusCode::FORBIDDEN,
        Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::warn!(%status, error = %r, "job request failed");
    }
    let body = json!({ "error": r.reason(), "code": status.as_u16(), "refusal": r.code() });
    (status, Json(body)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SubmitQuery {
    /// Per-block wait for missing module, input or mount blocks.
    fetch_timeout: Option<String>,
    /// `false`: answer 202 at once and run the job in the background.
    wait: Option<bool>,
    /// Comma-separated multiaddrs of key brokers for the job's sealed parts.
    brokers: Option<String>,
    /// Comma-separated module endorsements, each the hex of a DAG-CBOR `ModuleEndorsement`
    /// (the file `vouch broker endorse` writes).
    endorsements: Option<String>,
}

/// At most this many endorsements in one submission.
const MAX_ENDORSEMENTS: usize = 16;

fn endorsements(arg: Option<&str>) -> Result<Vec<Vec<u8>>, ApiError> {
    let list: Vec<&str> = arg.iter().flat_map(|e| e.split(',')).filter(|e| !e.is_empty()).collect();
    if list.len() > MAX_ENDORSEMENTS {
        return Err(ApiError::bad_request(format!(
            "endorsements: {} given, at most {MAX_ENDORSEMENTS} are accepted",
            list.len()
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, e)| {
            hex::decode(e).map_err(|err| {
                ApiError::bad_request(format!("endorsements[{i}]: expected the hex of a DAG-CBOR endorsement: {err}"))
            })
        })
        .collect()
}

/// Run a job: the body is its DAG-CBOR job spec (`JobSpec::encode`, as `vouch receipt export`
/// carries it). With `wait` (the default) the answer comes when the receipt is stored.
async fn job_submit(State(s): State<AppState>, uri: Uri, body: Bytes) -> Result<Response, ApiError> {
    let q: SubmitQuery = query(&uri)?;
    let timeout =
        q.fetch_timeout.as_deref().map(parse_timeout).transpose()?.unwrap_or(crate::jobs::DEFAULT_FETCH_TIMEOUT);
    let spec = match vouch_receipt::JobSpec::decode(&body) {
        Ok(spec) => spec,
        Err(e) => return Ok(refusal_error(Refusal::BadRequest(format!("the body is not a job spec: {e}")))),
    };
    let job = spec.cid();
    let keys = crate::jobs::KeySources {
        brokers: q.brokers.iter().flat_map(|b| b.split(',')).filter(|b| !b.is_empty()).map(str::to_owned).collect(),
        endorsements: endorsements(q.endorsements.as_deref())?,
    };
    if q.wait == Some(false) {
        let jobs = s.jobs.clone();
        // The status shows it at once; the job runs on after the answer.
        jobs.mark_submitted(job);
        tokio::spawn(async move { jobs.run(Requester::Http, spec, timeout, keys).await });
        let body = json!({ "Job": job.to_string(), "Status": "submitted" });
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    match s.jobs.run(Requester::Http, spec, timeout, keys).await {
        Ok(receipt) => Ok(Json(job_json(&s, &job, &JobStatus::Done { receipt }).await?).into_response()),
        Err(r) => Ok(refusal_error(r)),
    }
}

/// A job's status as JSON; for a finished job, also what the receipt says (outcome, results).
async fn job_json(s: &AppState, job: &Cid, status: &JobStatus) -> Result<Value, ApiError> {
    let mut v = serde_json::to_value(status).map_err(ApiError::internal)?;
    v["Job"] = json!(job.to_string());
    if let JobStatus::Done { receipt } = status {
        let store = s.store.clone();
        let receipt = *receipt;
        let r = blocking(move || {
            let bytes = store.get(&receipt).map_err(store_error)?;
            vouch_receipt::Receipt::decode(&bytes).map_err(|e| ApiError::internal(format!("receipt {receipt}: {e}")))
        })
        .await?;
        let b = &r.body;
        let opt = |c: Option<Cid>| c.map(|c| c.to_string());
        v["Outcome"] = serde_json::to_value(&b.outcome).map_err(ApiError::internal)?;
        v["Output"] = json!(opt(b.output));
        v["Stdout"] = json!(opt(b.stdout));
        v["Stderr"] = json!(opt(b.stderr));
        v["Evidence"] = json!(b.evidence.technology.as_str());
    }
    Ok(v)
}

async fn job_status(State(s): State<AppState>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let arg = required_arg(&query(&uri)?, "a job CID")?;
    let job = vouch_dag::block::parse_cid(&arg).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let status = s.jobs.status(&job).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no job {job} was submitted to this daemon since it started (or it is among the forgotten oldest)"),
        )
    })?;
    Ok(Json(job_json(&s, &job, &status).await?))
}

/// A stored receipt as a CARv1 rooted at it: the receipt, its job spec and evidence and, when
/// they fit, its output, stdout and stderr DAGs (the job protocol's answer); `vouch verify`
/// checks the file offline.
async fn receipt(State(s): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let arg = required_arg(&query(&uri)?, "a receipt CID")?;
    let cid = vouch_dag::block::parse_cid(&arg).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let store = s.store.clone();
    let answer = blocking(move || {
        let bytes = store.get(&cid).map_err(store_error)?;
        vouch_receipt::Receipt::decode(&bytes)
            .map_err(|e| ApiError::bad_request(format!("{cid} is not a receipt: {e}")))?;
        crate::jobs::receipt_answer(&store, &cid).map_err(store_error)
    })
    .await?;
    let crate::JobResponse::Receipt { car, results_inline, .. } = answer else {
        return Err(ApiError::internal("a stored receipt packed as a refusal"));
    };
    let inline = if results_inline { "true" } else { "false" };
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.ipld.car; version=1"),
            (header::HeaderName::from_static("x-results-inline"), inline),
        ],
        car,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceQuery {
    nonce: Option<String>,
}

/// The evidence this node's receipts carry now, or fresh evidence bound to `nonce` (hex, 1–64
/// bytes).
async fn evidence(State(s): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q: EvidenceQuery = query(&uri)?;
    let nonce = match q.nonce.as_deref() {
        None => None,
        Some(h) => {
            let n = hex::decode(h.trim()).map_err(|e| ApiError::bad_request(format!("nonce {h:?}: not hex: {e}")))?;
            if n.is_empty() || n.len() > 64 {
                return Err(ApiError::bad_request(format!("nonce: {} bytes; give 1 to 64 bytes of hex", n.len())));
            }
            Some(n)
        }
    };
    match s.jobs.evidence(nonce).await {
        Ok(v) => Ok(Json(v).into_response()),
        Err(r) => Ok(refusal_error(r)),
    }
}

/// The OpenAPI 3 document. Keep it in step with [`router`] (a test checks both ways).
pub(crate) fn openapi_doc() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let err = |what: &str| json!({ "description": what, "content": { "application/json": { "schema": error } } });
    let arg = |desc: &str| json!({ "name": "arg", "in": "query", "required": true, "schema": {"type": "string"}, "description": desc });
    let json_ok = |desc: &str| json!({ "description": desc, "content": { "application/json": { "schema": {"type": "object"} } } });
    let id_op = json!({
        "summary": "Node identity: peer id, ed25519 public key (hex), swarm addresses, agent version",
        "responses": { "200": json_ok("ID, PublicKey, KeyType, Addresses, AgentVersion") }
    });
    let peers_op = json!({
        "summary": "Connected peers",
        "responses": { "200": json_ok("{\"Peers\": [{\"Peer\": id}]}") }
    });
    let bw_op = json!({
        "summary": "Bytes in and out over libp2p since the daemon started (stream payload, all peers and protocols)",
        "responses": { "200": json_ok("{\"TotalIn\": bytes, \"TotalOut\": bytes}") }
    });
    let cat_op = json!({
        "summary": "The bytes of a UnixFS file; missing blocks are fetched over bitswap from connected peers first",
        "parameters": [
            arg("CID[/path]"),
            { "name": "timeout", "in": "query", "required": false, "schema": {"type": "string", "default": "60s"},
              "description": "per-block wait when fetching from peers (30s, 500ms, 2m)" }
        ],
        "responses": {
            "200": { "description": "the file", "content": { "application/octet-stream": {} } },
            "400": err("malformed CID or path, not a file"),
            "404": err("not stored here and no peer connected, or no such path"),
            "504": err("a block did not arrive in time")
        }
    });
    let gateway_op = |with_path: bool| {
        let mut params = vec![
            json!({ "name": "cid", "in": "path", "required": true, "schema": {"type": "string"} }),
            json!({ "name": "format", "in": "query", "required": false,
                    "schema": {"type": "string", "enum": ["raw", "car"]} }),
            json!({ "name": "Accept", "in": "header", "required": false, "schema": {"type": "string"},
                    "description": "application/vnd.ipld.raw or application/vnd.ipld.car" }),
        ];
        if with_path {
            params.push(json!({ "name": "path", "in": "path", "required": true, "schema": {"type": "string"} }));
        }
        json!({
            "summary": "Trustless gateway: the block (raw) or a CARv1 of the DAG (car) at the CID or path",
            "parameters": params,
            "responses": {
                "200": { "description": "verifiable bytes", "content": {
                    "application/vnd.ipld.raw": {}, "application/vnd.ipld.car": {} } },
                "400": err("malformed CID or unknown format"),
                "404": err("block not stored on this node or no such path"),
                "406": err("Accept names no supported type and no format parameter was given")
            }
        })
    };
    let refused = |what: &str| json!({ "description": what, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Refusal" } } } });
    let status_op = json!({
        "summary": "A job submitted since the daemon started: submitted, fetching, running, done (with its receipt) or refused (with the reason)",
        "parameters": [arg("job CID")],
        "responses": { "200": json_ok("{\"Job\", \"Status\", \"Receipt\"?, \"Code\"?, \"Reason\"?}"),
                       "400": err("malformed CID"), "404": err("no such job submitted here") }
    });
    let receipt_op = json!({
        "summary": "A stored receipt as a CARv1 rooted at it: receipt, job spec, evidence and (header X-Results-Inline: true) the results; `vouch verify FILE` checks it offline",
        "parameters": [arg("receipt CID")],
        "responses": { "200": { "description": "the CAR", "content": { "application/vnd.ipld.car": {} } },
                       "400": err("malformed CID, or the block is not a receipt"), "404": err("not stored here") }
    });
    let evidence_op = json!({
        "summary": "The evidence this node's receipts carry now, or fresh evidence bound to a verifier's nonce; its body is served at /ipfs/{Body}",
        "parameters": [{ "name": "nonce", "in": "query", "required": false, "schema": {"type": "string"},
                         "description": "1 to 64 bytes of hex" }],
        "responses": { "200": json_ok("{\"Technology\", \"NodeKey\", \"Nonce\", \"ReportData\", \"ProducedAt\", \"Body\", \"HardwareClaim\"}"),
                       "400": err("nonce not hex or of a bad length"), "403": refused("policy: this node runs no jobs") }
    });
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Vouch node HTTP API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Loopback API of `vouch node`; see docs/http-api.md" },
        "paths": {
            "/api/v0/id": { "get": id_op, "post": id_op },
            "/api/v0/swarm/connect": { "post": {
                "summary": "Connect to a peer",
                "parameters": [arg("multiaddr, with or without /p2p/PEER")],
                "responses": { "200": json_ok("{\"Peer\": id, \"Strings\": [..]}"),
                               "400": err("not a multiaddr"), "502": err("dial failed") }
            }},
            "/api/v0/swarm/peers": { "get": peers_op, "post": peers_op },
            "/api/v0/stats/bw": { "get": bw_op, "post": bw_op },
            "/api/v0/add": { "post": {
                "summary": "Add one file (the raw request body) with the default import parameters; pinned",
                "parameters": [{ "name": "name", "in": "query", "required": false, "schema": {"type": "string"} }],
                "requestBody": { "required": true, "content": { "application/octet-stream": {} } },
                "responses": { "200": json_ok("{\"Name\", \"Hash\": cid, \"Size\": cumulative DAG size (string), \"Bytes\": file size}") }
            }},
            "/api/v0/cat": { "get": cat_op, "post": cat_op },
            "/api/v0/dag/fetch": { "post": {
                "summary": "Make a whole DAG local: fetched over bitswap from connected peers, every block verified, stored only when complete",
                "parameters": [arg("CID"),
                    { "name": "timeout", "in": "query", "required": false, "schema": {"type": "string", "default": "60s"},
                      "description": "per-block wait" }],
                "responses": { "200": json_ok("{\"Fetched\": cid}"), "400": err("malformed CID"),
                               "404": err("not stored and no peer connected"), "504": err("a block did not arrive in time") }
            }},
            "/api/v0/routing/provide": { "post": {
                "summary": "Announce on the DHT that this node provides a CID it stores completely",
                "parameters": [arg("CID")],
                "responses": { "200": json_ok("{\"Provided\": cid}"), "400": err("malformed CID"),
                               "404": err("not (completely) stored here") }
            }},
            "/api/v0/job/submit": { "post": {
                "summary": "Run a job here: missing module, input and mount blocks are fetched over bitswap first; answered when the receipt is stored (or at once with wait=false)",
                "parameters": [
                    { "name": "fetch-timeout", "in": "query", "required": false, "schema": {"type": "string", "default": "60s"},
                      "description": "per-block wait when fetching from peers" },
                    { "name": "wait", "in": "query", "required": false, "schema": {"type": "boolean", "default": true} },
                    { "name": "brokers", "in": "query", "required": false, "schema": {"type": "string"},
                      "description": "comma-separated multiaddrs of key brokers for sealed parts (docs/seal.md)" },
                    { "name": "endorsements", "in": "query", "required": false, "schema": {"type": "string"},
                      "description": "comma-separated module endorsements, each the hex of a DAG-CBOR ModuleEndorsement (vouch broker endorse)" }
                ],
                "requestBody": { "required": true, "content": { "application/vnd.ipld.dag-cbor": {} },
                                 "description": "the DAG-CBOR job spec (docs/job-spec.md), at most 1 MiB" },
                "responses": {
                    "200": json_ok("{\"Job\", \"Status\": \"done\", \"Receipt\", \"Outcome\", \"Output\", \"Stdout\", \"Stderr\", \"Evidence\"}"),
                    "202": json_ok("{\"Job\", \"Status\": \"submitted\"}"),
                    "400": refused("bad-request: the body is not a valid job spec"),
                    "403": refused("policy: this node runs no jobs; quota: the spec's limits exceed the node's ceilings"),
                    "404": refused("unavailable: a module, input or mount is neither here nor at a connected peer"),
                    "503": refused("busy: the node, or this requester, runs as many jobs as the config allows")
                }
            }},
            "/api/v0/job/status": { "get": status_op, "post": status_op },
            "/api/v0/receipt": { "get": receipt_op, "post": receipt_op },
            "/api/v0/evidence": { "get": evidence_op, "post": evidence_op },
            "/api/v0/openapi.json": { "get": {
                "summary": "This document",
                "responses": { "200": json_ok("OpenAPI 3") }
            }},
            "/ipfs/{cid}": { "get": gateway_op(false) },
            "/ipfs/{cid}/{path}": { "get": gateway_op(true) },
        },
        "components": { "schemas": { "Error": {
            "type": "object", "required": ["error", "code"],
            "properties": { "error": {"type": "string"}, "code": {"type": "integer", "description": "the HTTP status"} }
        }, "Refusal": {
            "type": "object", "required": ["error", "code", "refusal"],
            "properties": { "error": {"type": "string", "description": "the reason"},
                            "code": {"type": "integer", "description": "the HTTP status"},
                            "refusal": {"type": "string", "enum": ["bad-request", "unavailable", "busy", "policy", "quota", "internal"]} }
        }}}
    })
}

async fn openapi() -> Json<Value> {
    Json(openapi_doc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_timeout("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_timeout("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_timeout("100h").unwrap(), MAX_TIMEOUT);
        for bad in ["", "s", "0", "-1s", "3 weeks", "1.5.2s"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
