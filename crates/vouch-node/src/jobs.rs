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

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vouch_dag::car::{CarReader, CarWriter, walk_dag};
use vouch_dag::{BlockSink, Cid, DagError};
use vouch_net::NodeHandle;
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
            Refusal::Internal(_) => "internal",
        }
    }

    fn response(&self) -> JobResponse {
        let reason = match self {
            Refusal::BadRequest(r)
            | Refusal::Unavailable(r)
            | Refusal::Busy(r)
            | Refusal::Policy(r)
            | Refusal::Internal(r) => r.clone(),
        };
        JobResponse::Refused { code: self.code().to_string(), reason }
    }
}

impl JobRequest {
    pub fn new(spec: &JobSpec, fetch_timeout: Duration) -> JobRequest {
        JobRequest {
            version: PROTOCOL_VERSION,
            spec: spec.encode(),
            fetch_timeout_ms: u64::try_from(fetch_timeout.as_millis()).unwrap_or(u64::MAX),
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

/// Runs jobs whose module, inputs and mounts are in `store`: the sandbox, the receipt and its
/// evidence, memoisation. Supplied by the binary (`vouch node`).
pub trait Executor: Send + Sync + 'static {
    /// Run `spec` (or find its memoised receipt) and return the receipt's CID, stored and
    /// pinned in `store`. Blocking; called on a blocking thread.
    fn execute(&self, store: &Store, spec: &JobSpec) -> Result<Cid, Refusal>;
}

/// Answer job requests arriving at `net` until the node shuts down: at most `concurrency` at
/// once (more wait in the transport's bounded queue, past it they are refused).
pub(crate) async fn serve(net: NodeHandle, store: Arc<Store>, executor: Option<Arc<dyn Executor>>, concurrency: usize) {
    let mut requests = match net.serve_requests(concurrency) {
        Ok(r) => r,
        Err(e) => return tracing::warn!("job protocol not served: {e}"),
    };
    let running = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    while let Some(request) = requests.recv().await {
        let (net, store, executor, running) = (net.clone(), store.clone(), executor.clone(), running.clone());
        tokio::spawn(async move {
            let peer = request.peer;
            let answer = match running.try_acquire() {
                Ok(_permit) => handle(&net, &store, executor, &request.body).await,
                Err(_) => Err(Refusal::Busy(format!("{concurrency} jobs are already running on this node; try later"))),
            };
            let response = match answer {
                Ok(r) => r,
                Err(refusal) => {
                    tracing::info!(%peer, code = refusal.code(), "job refused: {refusal}");
                    refusal.response()
                }
            };
            request.respond(response.encode());
        });
    }
}

async fn handle(
    net: &NodeHandle,
    store: &Arc<Store>,
    executor: Option<Arc<dyn Executor>>,
    body: &[u8],
) -> Result<JobResponse, Refusal> {
    let request = JobRequest::decode(body)?;
    let spec = JobSpec::decode(&request.spec).map_err(|e| Refusal::BadRequest(format!("job spec: {e}")))?;
    let job = spec.cid();
    let Some(executor) = executor else {
        return Err(Refusal::Policy("this node does not run jobs".into()));
    };
    let timeout = Duration::from_millis(request.fetch_timeout_ms).min(crate::api::MAX_TIMEOUT);
    let mut needed = vec![("module".to_string(), spec.module)];
    needed.extend(spec.inputs.iter().map(|(name, cid)| (format!("input {name}"), *cid)));
    needed.extend(spec.mounts.iter().map(|(path, cid)| (format!("mount {path}"), *cid)));
    for (what, cid) in needed {
        crate::make_local(net, store, cid, timeout).await.map_err(|e| match e {
            crate::Missing::Store(e) => Refusal::Internal(format!("job {job}: {what} ({cid}): {e}")),
            other => Refusal::Unavailable(format!("job {job}: {what} ({cid}): {other}")),
        })?;
    }
    tracing::info!(%job, "running a job from the network");
    let store2 = store.clone();
    let receipt = tokio::task::spawn_blocking(move || executor.execute(&store2, &spec))
        .await
        .map_err(|e| Refusal::Internal(format!("the executor failed: {e}")))??;
    let store2 = store.clone();
    tokio::task::spawn_blocking(move || receipt_answer(&store2, &receipt))
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
