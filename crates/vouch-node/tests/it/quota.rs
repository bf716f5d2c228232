//! Job quotas over the job protocol (`/vouch/job/1.0.0`): a real daemon and real client nodes on
//! loopback. The executor is a gate that holds each job until the test lets it go, so "this
//! requester already has a job" is a state the test reaches, not a race it hopes to win.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use vouch_dag::{Cid, MemoryBlocks, Params, file::import_bytes};
use vouch_net::{Config, Node, NodeHandle, PeerId};
use vouch_node::{Daemon, Executor, JobRequest, JobResponse, KeySources, NodeConfig, Quota, Refusal};
use vouch_receipt::JobSpec;
use vouch_store::Store;

use crate::{home_with_key, loopback_config};

/// Bound on every wait in this file: generous, for a loaded 2-core machine.
const T: Duration = Duration::from_secs(60);

/// An executor that reports each job it is handed, then waits for a release and runs nothing
/// (answering `policy`, so the test can tell "reached the executor" from "refused before").
struct Gate {
    entered: Mutex<mpsc::Sender<Cid>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl Executor for Gate {
    fn execute(&self, _store: &Store, spec: &JobSpec, _keys: &KeySources) -> Result<Cid, Refusal> {
        let _ = self.entered.lock().unwrap().send(spec.cid());
        // A timeout here only ends the test's job early; the test itself fails on its own bound.
        let _ = self.release.lock().unwrap().recv_timeout(T);
        Err(Refusal::Policy("gate: released, nothing run".into()))
    }
    fn evidence(&self, _store: &Store, _nonce: Option<&[u8]>) -> Result<serde_json::Value, Refusal> {
        Err(Refusal::Internal("gate: no evidence".into()))
    }
}

/// A client node with a fresh key that serves `module` (the daemon fetches it from there).
async fn client(seed: u8, module: &MemoryBlocks, daemon: &Daemon) -> (NodeHandle, PeerId) {
    let (net, _task) = Node::spawn(Config::new([seed; 32]), Arc::new(module.clone())).unwrap();
    let peer = net.connect(daemon.info().swarm[0].clone()).await.unwrap();
    (net, peer)
}

async fn submit(net: &NodeHandle, to: PeerId, spec: &JobSpec) -> JobResponse {
    let body = JobRequest::new(spec, Duration::from_secs(20)).encode();
    let answer = net.request(to, &body, T * 2).await.unwrap();
    JobResponse::decode(&answer).unwrap()
}

fn refused(r: &JobResponse) -> (&str, &str) {
    match r {
        JobResponse::Refused { code, reason } => (code, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_over_the_quota_is_refused_and_one_peer_cannot_take_every_slot() {
    let dir = tempfile::tempdir().unwrap();
    home_with_key(dir.path(), 40);
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let gate = Gate { entered: Mutex::new(entered_tx), release: Mutex::new(release_rx) };
    let config = NodeConfig {
        jobs: 4,
        quota: Quota { jobs_per_peer: Some(1), max_wall_time_ms: 10_000, ..Quota::default() },
        ..loopback_config()
    };
    let d = Daemon::start(dir.path(), config, Some(Arc::new(gate))).await.unwrap();
    let me = d.info().peer_id;
    let mut module = MemoryBlocks::default();
    let module_cid = import_bytes(&Params::default(), b"\0asm\x01\0\0\0", &mut module).unwrap().cid;
    let spec = |arg: &str, wall: u64| {
        let mut s = JobSpec::new(module_cid);
        s.args = vec![arg.into()];
        s.limits.wall_time_ms = wall;
        s
    };
    let (a, _) = client(41, &module, &d).await;

    // Over a ceiling: refused before anything is fetched or run, naming limit, ceiling, ask.
    let over = submit(&a, me, &spec("big", 20_000)).await;
    let (code, reason) = refused(&over);
    assert_eq!(code, "quota", "{reason}");
    assert!(reason.contains("limits.wall_time_ms is 20000; this node allows at most 10000"), "{reason}");

    // A's first job reaches the executor and stays there.
    let first = spec("1", 5_000);
    let a2 = a.clone();
    let first_answer = tokio::spawn({
        let first = first.clone();
        async move { submit(&a2, me, &first).await }
    });
    let got = tokio::task::block_in_place(|| entered.recv_timeout(T)).expect("the first job reached the executor");
    assert_eq!(got, first.cid());

    // A second job from A: busy, naming the per-requester limit.
    let second = spec("2", 5_000);
    let busy = submit(&a, me, &second).await;
    let (code, reason) = refused(&busy);
    assert_eq!(code, "busy", "{reason}");
    assert!(reason.contains("quota.jobs_per_peer = 1") && reason.contains(&a.peer_id().to_string()), "{reason}");

    // Another peer is not held back by A's job.
    let (b, _) = client(42, &module, &d).await;
    let other = spec("3", 5_000);
    let b_answer = tokio::spawn({
        let other = other.clone();
        async move { submit(&b, me, &other).await }
    });
    let got = tokio::task::block_in_place(|| entered.recv_timeout(T)).expect("B's job reached the executor");
    assert_eq!(got, other.cid());

    // Released, A's slot is free again: its second job now reaches the executor.
    release.send(()).unwrap();
    release.send(()).unwrap();
    for answer in [first_answer.await.unwrap(), b_answer.await.unwrap()] {
        assert_eq!(refused(&answer), ("policy", "gate: released, nothing run"));
    }
    let again = tokio::spawn({
        let (a, second) = (a.clone(), second.clone());
        async move { submit(&a, me, &second).await }
    });
    let got = tokio::task::block_in_place(|| entered.recv_timeout(T)).expect("A's second job reached the executor");
    assert_eq!(got, second.cid());
    release.send(()).unwrap();
    assert_eq!(refused(&again.await.unwrap()).0, "policy");
    d.shutdown().await.unwrap();
}
