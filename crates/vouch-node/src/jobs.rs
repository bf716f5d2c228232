//! The job protocol (`/vouch/job/1.0.0`): a client or node sends a job spec to the node that
//! holds the data, and gets back the signed receipt with its small results, or a refusal that
//! says why. Wire format: `docs/job-protocol.md`.
//!
//! The daemon side ([`serve`]) makes the job's module, inputs and mounts local first (fetched
//! over bitswap from connected peers, every block verified, committed only when complete), then
//! hands the job to the [`Executor`] the binary supplies (the sandbox and receipt signing live
//! there, so this crate does not link wasmtime). The answer carries the receipt, its spec and
//! evidence blocks and, while they fit in [`INLINE_RESULTS`], the output, stdout and stderr
//! DAGs; never the module or the inputs: the data stays where it is.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vouch_dag::car::{CarReader, CarWriter, walk_dag};
use vouch_dag::{BlockSink, Cid, DagError};
use vouch_net::{NodeHandle, PeerId};
use vouch_receipt::{EvidenceBody, JobSpec, Receipt};
use vouch_store::{Store, StoreError};

/// Version of [`JobRequest`] and [`JobResponse`].
pub const PROTOCOL_VERSION: u64 = 1;
/// Output, stdout and stderr DAGs travel inside the answer while their blocks add up to at most
/// this many bytes; larger results stay on the node (fetch them over bitswap or the gateway).
pub const INLINE_RESULTS: u64 = 16 << 20;
/// Longest wait for a missing block of the job's module, inputs or mounts when the request
/// names no shorter one.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// What a client sends: one per stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// [`PROTOCOL_VERSION`].
    pub version: u64,
    /// The DAG-CBOR job spec ([`JobSpec::encode`]); its CID is the job id.
    #[serde(with = "serde_bytes")]
    pub spec: Vec<u8>,
    /// How long the node may wait for any one missing block of the module, inputs or mounts
    /// (milliseconds; capped by the node).
    pub fetch_timeout_ms: u64,
    /// Nodes (multiaddrs with `/p2p/PEER`) whose key brokers may release the keys of the job's
    /// sealed module or inputs (`docs/seal.md`). Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<String>,
    /// Module endorsements (each a DAG-CBOR `vouch_seal::ModuleEndorsement`) the node shows
    /// the brokers, for policies that admit modules by their signer. Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endorsements: Vec<serde_bytes::ByteBuf>,
}

/// Where the keys of a job's sealed parts come from: the brokers to ask and the endorsements to
/// show them (both from the request).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySources {
    pub brokers: Vec<String>,
    pub endorsements: Vec<Vec<u8>>,
}

/// What the node answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobResponse {
    /// The job ran (or had run: deterministic jobs are memoised). `car` is a CARv1 rooted at
    /// the receipt: the receipt, spec and evidence blocks, and the results that fit.
    Receipt {
        receipt: Cid,
        #[serde(with = "serde_bytes")]
        car: Vec<u8>,
        /// The output, stdout and stderr DAGs are all in `car`.
        results_inline: bool,
    },
    /// The node did not run the job: `code` is one of the [`Refusal`] codes.
    Refused { code: String, reason: String },
}

/// Why a node refuses a job. The wire `code` is the variant in kebab-case.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request or its spec does not decode or validate.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A module, input or mount is neither stored here nor available from a connected peer.
    #[error("{0}")]
    Unavailable(String),
    /// Too many jobs are already queued or running.
    #[error("{0}")]
    Busy(String),
    /// The node runs no jobs, or its policy forbids this one.
    #[error("{0}")]
    Policy(String),
    /// The job asks for more than this node's [`Quota`] allows (the reason names the limit,
    /// the ceiling and what was asked).
    #[error("{0}")]
    Quota(String),
    /// The node failed (its store, its sandbox): not the job's fault.
    #[error("node error: {0}")]
    Internal(String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::BadRequest(_) => "bad-request",
            Refusal::Unavailable(_) => "unavailable",
            Refusal::Busy(_) => "busy",
            Refusal::Policy(_) => "policy",
            Refusal::Quota(_) => "quota",
            Refusal::Internal(_) => "internal",
        }
    }

    /// The reason, without the code.
    pub fn reason(&self) -> &str {
        match self {
            Refusal::BadRequest(r)
            | Refusal::Unavailable(r)
            | Refusal::Busy(r)
            | Refusal::Policy(r)
            | Refusal::Quota(r)
            | Refusal::Internal(r) => r,
        }
    }

    fn response(&self) -> JobResponse {
        JobResponse::Refused { code: self.code().to_string(), reason: self.reason().to_string() }
    }
}

impl JobRequest {
    pub fn new(spec: &JobSpec, fetch_timeout: Duration) -> JobRequest {
        JobRequest {
            version: PROTOCOL_VERSION,
            spec: spec.encode(),
            fetch_timeout_ms: u64::try_from(fetch_timeout.as_millis()).unwrap_or(u64::MAX),
            brokers: Vec::new(),
            endorsements: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Cannot fail: plain structs of bytes and integers.
        serde_ipld_dagcbor::to_vec(self).expect("a job request encodes")
    }

    pub fn decode(bytes: &[u8]) -> Result<JobRequest, Refusal> {
        let r: JobRequest = serde_ipld_dagcbor::from_slice(bytes)
            .map_err(|e| Refusal::BadRequest(format!("not a job request: {e}")))?;
        if r.version != PROTOCOL_VERSION {
            return Err(Refusal::BadRequest(format!(
                "job request version {} (this node speaks {PROTOCOL_VERSION})",
                r.version
            )));
        }
        Ok(r)
    }
}

impl JobResponse {
    pub fn encode(&self) -> Vec<u8> {
        // Cannot fail: plain structs of bytes, strings and CIDs.
        serde_ipld_dagcbor::to_vec(self).expect("a job response encodes")
    }

    pub fn decode(bytes: &[u8]) -> Result<JobResponse, String> {
        serde_ipld_dagcbor::from_slice(bytes).map_err(|e| format!("not a job response: {e}"))
    }
}

/// Who asked for a job; per-requester limits ([`Quota::jobs_per_peer`]) count by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Requester {
    /// A peer, over the job protocol.
    Peer(PeerId),
    /// The loopback HTTP API: all its clients together count as one requester.
    Http,
}

impl std::fmt::Display for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requester::Peer(p) => write!(f, "peer {p}"),
            Requester::Http => f.write_str("the HTTP API"),
        }
    }
}

/// What one job may ask for, and how many jobs one requester may run at once (`quota` in the
/// node config). A job past a ceiling is refused `quota`, past the per-requester count `busy`.
/// The defaults refuse nothing a default job spec asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Jobs one requester (a peer, or the HTTP API as a whole) may have fetching or running at
    /// once (`jobs_per_peer`). Default: `None`, only the node's `jobs` limit applies.
    pub jobs_per_peer: Option<usize>,
    /// Most fuel a job may ask for (`max_fuel`); when set, a job asking for unmetered fuel is
    /// refused. Default: `None` (no ceiling).
    pub max_fuel: Option<u64>,
    /// Most linear memory a job may ask for (`max_memory_bytes`). Default: 4 GiB (all a wasm32
    /// memory can address).
    pub max_memory_bytes: u64,
    /// Longest wall time a job may ask for (`max_wall_time_ms`). Default: 1 h.
    pub max_wall_time_ms: u64,
    /// Most output bytes a job may ask for (`max_output_bytes`). Default: 16 GiB.
    pub max_output_bytes: u64,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            jobs_per_peer: None,
            max_fuel: None,
            max_memory_bytes: 4 << 30,
            max_wall_time_ms: 3_600_000,
            max_output_bytes: 16 << 30,
        }
    }
}

impl Quota {
    /// `Err(Refusal::Quota)` naming the first limit of `spec` over its ceiling, with the
    /// ceiling and what the job asked for.
    pub fn check(&self, spec: &JobSpec) -> Result<(), Refusal> {
        let l = &spec.limits;
        let over = |limit: &str, allowed: u64, asked: String| {
            Err(Refusal::Quota(format!(
                "job {}: limits.{limit} is {asked}; this node allows at most {allowed} (quota.max_{limit})",
                spec.cid()
            )))
        };
        match (self.max_fuel, l.fuel) {
            (Some(max), None) => return over("fuel", max, "unmetered".into()),
            (Some(max), Some(f)) if f > max => return over("fuel", max, f.to_string()),
            _ => {}
        }
        if l.memory_bytes > self.max_memory_bytes {
            return over("memory_bytes", self.max_memory_bytes, l.memory_bytes.to_string());
        }
        if l.wall_time_ms > self.max_wall_time_ms {
            return over("wall_time_ms", self.max_wall_time_ms, l.wall_time_ms.to_string());
        }
        if l.output_bytes > self.max_output_bytes {
            return over("output_bytes", self.max_output_bytes, l.output_bytes.to_string());
        }
        Ok(())
    }
}

/// Runs jobs whose module, inputs and mounts are in `store`: the sandbox, the receipt and its
/// evidence, memoisation. Supplied by the binary (`vouch node`).
pub trait Executor: Send + Sync + 'static {
    /// Run `spec` (or find its memoised receipt) and return the receipt's CID, stored and
    /// pinned in `store`. Blocking; called on a blocking thread.
    /// `keys` says where the keys of sealed parts come from.
    fn execute(&self, store: &Store, spec: &JobSpec, keys: &KeySources) -> Result<Cid, Refusal>;

    /// The evidence this node's receipts carry now, or, given a verifier's `nonce`, fresh
    /// evidence bound to it; its body stored in `store`. Answered as JSON by
    /// `GET /api/v0/evidence` (fields in `docs/http-api.md`). Blocking.
    fn evidence(&self, store: &Store, nonce: Option<&[u8]>) -> Result<serde_json::Value, Refusal>;
}

/// Where a job submitted to this daemon is (`GET /api/v0/job/status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "Status", rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted (`wait=false`), not started yet.
    Submitted,
    /// Its module, inputs or mounts are being fetched from peers.
    Fetching,
    /// In the sandbox.
    Running,
    /// Ran (or had run); the receipt is stored here.
    Done {
        #[serde(rename = "Receipt", serialize_with = "ser_cid")]
        receipt: Cid,
    },
    /// Not run: why.
    Refused {
        #[serde(rename = "Code")]
        code: String,
        #[serde(rename = "Reason")]
        reason: String,
    },
}

fn ser_cid<S: serde::Serializer>(c: &Cid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&c.to_string())
}

/// How many job statuses a daemon remembers (the oldest are forgotten first; receipts stay in
/// the store).
pub const STATUS_HISTORY: usize = 4096;

/// The daemon's job runner, shared by the libp2p job protocol and the HTTP API: at most
/// `concurrency` jobs at once, from both together; past that, `busy`.
pub(crate) struct Jobs {
    net: NodeHandle,
    store: Arc<Store>,
    executor: Option<Arc<dyn Executor>>,
    running: tokio::sync::Semaphore,
    concurrency: usize,
    quota: Quota,
    /// Jobs fetching or running per requester (entries at zero are removed).
    per_requester: Mutex<HashMap<Requester, usize>>,
    table: Mutex<(HashMap<Cid, JobStatus>, VecDeque<Cid>)>,
}

/// One requester's claim on a job slot, given back when dropped.
struct RequesterSlot<'a> {
    jobs: &'a Jobs,
    who: Requester,
}

impl Drop for RequesterSlot<'_> {
    fn drop(&mut self) {
        let mut map = self.jobs.per_requester.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.who);
            }
        }
    }
}

impl Jobs {
    pub(crate) fn new(
        net: NodeHandle,
        store: Arc<Store>,
        executor: Option<Arc<dyn Executor>>,
        concurrency: usize,
        quota: Quota,
    ) -> Arc<Jobs> {
        let concurrency = concurrency.max(1);
        Arc::new(Jobs {
            net,
            store,
            executor,
            running: tokio::sync::Semaphore::new(concurrency),
            concurrency,
            quota,
            per_requester: Mutex::new(HashMap::new()),
            table: Mutex::new((HashMap::new(), VecDeque::new())),
        })
    }

    /// A job slot for `who`, or `busy` when it already has [`Quota::jobs_per_peer`] jobs.
    fn claim(&self, who: Requester) -> Result<RequesterSlot<'_>, Refusal> {
        let mut map = self.per_requester.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.get(&who).copied().unwrap_or(0);
        if let Some(max) = self.quota.jobs_per_peer
            && n >= max
        {
            return Err(Refusal::Busy(format!(
                "{who} already has {n} job(s) on this node, the most one requester may have \
                 (quota.jobs_per_peer = {max}); try later"
            )));
        }
        map.insert(who, n + 1);
        Ok(RequesterSlot { jobs: self, who })
    }

    fn set(&self, job: Cid, status: JobStatus) {
        let mut guard = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, order) = &mut *guard;
        if map.insert(job, status).is_none() {
            order.push_back(job);
            while order.len() > STATUS_HISTORY {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }

    /// Record `job` as submitted (it runs in the background).
    pub(crate) fn mark_submitted(&self, job: Cid) {
        self.set(job, JobStatus::Submitted);
    }

    /// The last known status of `job`, if it was submitted since the daemon started (and is
    /// among the last [`STATUS_HISTORY`]).
    pub(crate) fn status(&self, job: &Cid) -> Option<JobStatus> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0.get(job).cloned()
    }

    /// Run `spec` here: make its module, inputs and mounts local (waiting at most `timeout`
    /// for any one block), then execute it; the receipt's CID. Every step is recorded as the
    /// job's status.
    pub(crate) async fn run(
        &self,
        from: Requester,
        spec: JobSpec,
        timeout: Duration,
        keys: KeySources,
    ) -> Result<Cid, Refusal> {
        let job = spec.cid();
        let result = self.run_inner(job, from, spec, timeout, keys).await;
        match &result {
            Ok(receipt) => self.set(job, JobStatus::Done { receipt: *receipt }),
            Err(r) => {
                tracing::info!(%job, code = r.code(), "job refused: {r}");
                self.set(job, JobStatus::Refused { code: r.code().into(), reason: r.reason().into() });
            }
        }
        result
    }

    /// [`run`](Self::run) for `job`, the CID of `spec`.
    async fn run_inner(
        &self,
        job: Cid,
        from: Requester,
        spec: JobSpec,
        timeout: Duration,
        keys: KeySources,
    ) -> Result<Cid, Refusal> {
        let Some(executor) = self.executor.clone() else {
            return Err(Refusal::Policy("this node does not run jobs".into()));
        };
        self.quota.check(&spec)?;
        let _slot = self.claim(from)?;
        let Ok(_permit) = self.running.try_acquire() else {
            return Err(Refusal::Busy(format!(
                "{} jobs are already running on this node; try later",
                self.concurrency
            )));
        };
        self.set(job, JobStatus::Fetching);
        let timeout = timeout.min(crate::api::MAX_TIMEOUT);
        let mut needed = vec![("module".to_string(), spec.module)];
        needed.extend(spec.inputs.iter().map(|(name, cid)| (format!("input {name}"), *cid)));
        needed.extend(spec.mounts.iter().map(|(path, cid)| (format!("mount {path}"), *cid)));
        for (what, cid) in needed {
            crate::make_local(&self.net, &self.store, cid, timeout).await.map_err(|e| match e {
                crate::Missing::Store(e) => Refusal::Internal(format!("job {job}: {what} ({cid}): {e}")),
                other => Refusal::Unavailable(format!("job {job}: {what} ({cid}): {other}")),
            })?;
        }
        self.set(job, JobStatus::Running);
        tracing::debug!(%job, "running a job");
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || executor.execute(&store, &spec, &keys))
            .await
            .map_err(|e| Refusal::Internal(format!("the executor failed: {e}")))?
    }

    /// See [`Executor::evidence`].
    pub(crate) async fn evidence(&self, nonce: Option<Vec<u8>>) -> Result<serde_json::Value, Refusal> {
        let Some(executor) = self.executor.clone() else {
            return Err(Refusal::Policy("this node runs no jobs and has no evidence".into()));
        };
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || executor.evidence(&store, nonce.as_deref()))
            .await
            .map_err(|e| Refusal::Internal(format!("the executor failed: {e}")))?
    }
}

/// Answer job requests arriving over libp2p until the node shuts down (past the runner's
/// concurrency they wait in the transport's bounded queue, past that they are refused).
pub(crate) async fn serve(jobs: Arc<Jobs>) {
    let mut requests = match jobs.net.serve_requests(jobs.concurrency) {
        Ok(r) => r,
        Err(e) => return tracing::warn!("job protocol not served: {e}"),
    };
    while let Some(request) = requests.recv().await {
        let jobs = jobs.clone();
        tokio::spawn(async move {
            let response = match answer(&jobs, request.peer, &request.body).await {
                Ok(r) => r,
                Err(refusal) => {
                    tracing::debug!(peer = %request.peer, "job request refused: {refusal}");
                    refusal.response()
                }
            };
            request.respond(response.encode());
        });
    }
}

async fn answer(jobs: &Jobs, peer: PeerId, body: &[u8]) -> Result<JobResponse, Refusal> {
    let request = JobRequest::decode(body)?;
    let spec = JobSpec::decode(&request.spec).map_err(|e| Refusal::BadRequest(format!("job spec: {e}")))?;
    let keys = KeySources {
        brokers: request.brokers,
        endorsements: request.endorsements.into_iter().map(serde_bytes::ByteBuf::into_vec).collect(),
    };
    let timeout = Duration::from_millis(request.fetch_timeout_ms);
    let receipt = jobs.run(Requester::Peer(peer), spec, timeout, keys).await?;
    let store = jobs.store.clone();
    tokio::task::spawn_blocking(move || receipt_answer(&store, &receipt))
        .await
        .map_err(|e| Refusal::Internal(e.to_string()))?
        .map_err(|e| Refusal::Internal(format!("packing receipt {receipt}: {e}")))
}

/// The answer for a stored receipt: a CAR of the receipt, its spec and evidence blocks and, when
/// they fit in [`INLINE_RESULTS`], its output, stdout and stderr DAGs.
pub fn receipt_answer(store: &Store, receipt_cid: &Cid) -> Result<JobResponse, StoreError> {
    let bytes = store.get(receipt_cid)?;
    let receipt = Receipt::decode(&bytes).map_err(|e| StoreError::Dag(DagError::Car(e.to_string())))?;
    let b = &receipt.body;
    let mut car = CarWriter::new(Vec::new(), &[*receipt_cid]).map_err(|e| StoreError::Dag(e.into()))?;
    let put = |car: &mut CarWriter<Vec<u8>>, cid: &Cid, data: &[u8]| car.put(cid, data).map_err(StoreError::Dag);
    put(&mut car, receipt_cid, &bytes)?;
    put(&mut car, &b.job, &store.get(&b.job)?)?;
    if let Some(EvidenceBody::Link(e)) = &b.evidence.body {
        put(&mut car, e, &store.get(e)?)?;
    }
    let results: Vec<Cid> = [b.output, b.stdout, b.stderr].into_iter().flatten().collect();
    let mut blocks = Vec::new();
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut over = false;
    for root in &results {
        let walked = walk_dag(store, root, |c, d| {
            if seen.insert(*c) {
                total += d.len() as u64;
                if total > INLINE_RESULTS {
                    // Stops the walk: the results stay on the node.
                    over = true;
                    return Err(StoreError::Dag(DagError::Car("results too large to travel inline".into())));
                }
                blocks.push((*c, d.to_vec()));
            }
            Ok(())
        });
        if over {
            break;
        }
        walked?;
    }
    let fits = !over;
    if fits {
        for (c, d) in &blocks {
            put(&mut car, c, d)?;
        }
    }
    let car = car.finish().map_err(|e| StoreError::Dag(e.into()))?;
    Ok(JobResponse::Receipt { receipt: *receipt_cid, car, results_inline: fits })
}

/// The blocks of a [`JobResponse::Receipt`] CAR, each hash-checked; the CAR's root must be
/// `receipt`, whose block must be in it.
pub fn read_answer_car<S>(car: &[u8], receipt: &Cid, sink: &mut S) -> Result<Vec<u8>, String>
where
    S: BlockSink,
    S::Error: std::fmt::Display,
{
    let mut reader = CarReader::new(car).map_err(|e| format!("the answer's CAR: {e}"))?;
    if reader.roots() != [*receipt] {
        return Err(format!("the answer's CAR is rooted at {:?}, not at receipt {receipt}", reader.roots()));
    }
    let mut receipt_bytes = None;
    while let Some((cid, data)) = reader.next_block().map_err(|e| format!("the answer's CAR: {e}"))? {
        if cid == *receipt {
            receipt_bytes = Some(data.clone());
        }
        sink.put(&cid, &data).map_err(|e| format!("storing {cid}: {e}"))?;
    }
    receipt_bytes.ok_or_else(|| format!("the answer's CAR does not hold receipt {receipt}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_names_the_limit_the_ceiling_and_the_request() {
        let module = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".parse().unwrap();
        let mut spec = JobSpec::new(module);
        assert_eq!(Quota::default().check(&spec), Ok(()), "the defaults refuse no default job");
        let q = Quota { max_wall_time_ms: 5000, max_fuel: Some(1000), ..Quota::default() };
        let e = q.check(&spec).unwrap_err();
        assert_eq!(e.code(), "quota");
        assert!(e.reason().contains("limits.fuel is unmetered; this node allows at most 1000"), "{e}");
        spec.limits.fuel = Some(1000);
        let e = q.check(&spec).unwrap_err();
        assert!(e.reason().contains("limits.wall_time_ms is 60000; this node allows at most 5000"), "{e}");
        assert!(e.reason().contains(&spec.cid().to_string()), "{e}");
        spec.limits.wall_time_ms = 5000;
        assert_eq!(q.check(&spec), Ok(()));
        spec.limits.output_bytes = 32 << 30;
        assert!(q.check(&spec).unwrap_err().reason().contains("limits.output_bytes"));
        spec.limits.memory_bytes = 5 << 30;
        assert!(q.check(&spec).unwrap_err().reason().contains("limits.memory_bytes"));
    }
}
