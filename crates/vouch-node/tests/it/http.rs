//! The HTTP API and the trustless gateway of a real daemon.

use serde_json::Value;
use vouch_dag::car::CarReader;
use vouch_dag::{MemoryBlocks, Params, export, file::import_bytes};

use crate::{bytes, daemon};

/// An agent that hands back non-2xx responses instead of erroring, so tests read the JSON error.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// `(status, content type, body)` of a blocking request, run off the async threads.
async fn request(
    method: &'static str,
    url: String,
    body: Option<Vec<u8>>,
    accept: Option<&'static str>,
) -> (u16, String, Vec<u8>) {
    tokio::task::spawn_blocking(move || {
        let agent = agent();
        let mut resp = match (method, body) {
            ("POST", Some(b)) => agent.post(&url).send(&b[..]).unwrap(),
            ("POST", None) => agent.post(&url).send_empty().unwrap(),
            _ => {
                let mut req = agent.get(&url);
                if let Some(a) = accept {
                    req = req.header("Accept", a);
                }
                req.call().unwrap()
            }
        };
        let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = resp.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
        (resp.status().as_u16(), ct, body)
    })
    .await
    .unwrap()
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_cat_and_gateway_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path(), 1).await;
    let base = format!("http://{}", d.info().api);
    // The daemon advertises itself for CLI commands.
    assert_eq!(std::fs::read_to_string(dir.path().join("api")).unwrap().trim(), d.info().api.to_string());

    let (status, _, body) = request("GET", format!("{base}/api/v0/id"), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["ID"], d.info().peer_id.to_string());

    // 3 MB: a multi-leaf balanced DAG. The expected CID is computed independently, in memory.
    let data = bytes(3_000_000, 7);
    let mut mem = MemoryBlocks::default();
    let expected = import_bytes(&Params::default(), &data, &mut mem).unwrap();
    let (status, _, body) = request("POST", format!("{base}/api/v0/add?name=x.bin"), Some(data.clone()), None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let added = json(&body);
    assert_eq!(added["Hash"], expected.cid.to_string());
    assert_eq!(added["Name"], "x.bin");
    assert_eq!(added["Bytes"], data.len() as u64);

    let (status, _, body) = request("GET", format!("{base}/api/v0/cat?arg={}", expected.cid), None, None).await;
    assert_eq!(status, 200);
    assert!(body == data, "cat returned {} bytes, not the {} added", body.len(), data.len());

    // Raw block: exactly the root block's bytes.
    let (status, ct, body) =
        request("GET", format!("{base}/ipfs/{}", expected.cid), None, Some("application/vnd.ipld.raw")).await;
    assert_eq!(status, 200);
    assert_eq!(ct, "application/vnd.ipld.raw");
    assert_eq!(body, mem.blocks[&expected.cid]);

    // CAR: every block verifies against its CID (CarReader hash-checks), the root is the CID
    // asked for, and the file reassembles from the CAR alone.
    let (status, ct, body) = request("GET", format!("{base}/ipfs/{}?format=car", expected.cid), None, None).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/vnd.ipld.car"), "{ct}");
    let mut reader = CarReader::new(&body[..]).unwrap();
    assert_eq!(reader.roots(), &[expected.cid]);
    let mut from_car = MemoryBlocks::default();
    while let Some((cid, block)) = reader.next_block().unwrap() {
        from_car.blocks.insert(cid, block);
    }
    assert_eq!(from_car.blocks.len(), mem.blocks.len());
    let mut out = Vec::new();
    export::read_file(&from_car, &expected.cid, &mut out).unwrap();
    assert!(out == data);

    d.shutdown().await.unwrap();
    assert!(!dir.path().join("api").exists(), "shutdown removes the api file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path(), 2).await;
    let base = format!("http://{}", d.info().api);
    let cases: [(&str, u16, &str); 5] = [
        ("/api/v0/cat?arg=notacid", 400, "notacid"),
        ("/api/v0/cat", 400, "missing query parameter `arg`"),
        ("/api/v0/cat?arg=QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN", 404, "no peer is connected"),
        ("/ipfs/QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN?format=tar", 400, "unsupported format"),
        ("/no/such/route", 404, "no such route"),
    ];
    for (path, want, reason) in cases {
        let (status, ct, body) = request("GET", format!("{base}{path}"), None, None).await;
        assert_eq!(status, want, "{path}: {}", String::from_utf8_lossy(&body));
        assert_eq!(ct, "application/json", "{path}");
        let v = json(&body);
        assert_eq!(v["code"], want, "{path}");
        assert!(v["error"].as_str().unwrap().contains(reason), "{path}: {v}");
    }
    // A body over the route's limit (a job spec: 1 MiB) is a JSON 413 too, not axum's text.
    // The whole body is sent before the answer is read (one byte over: the server has read
    // everything when it refuses, so its close is not a reset).
    let addr = d.info().api;
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
        let len = vouch_net::rpc::MAX_REQUEST + 1;
        write!(
            tcp,
            "POST /api/v0/job/submit HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        tcp.write_all(&vec![0u8; len]).unwrap();
        let mut out = Vec::new();
        tcp.read_to_end(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    })
    .await
    .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{answer}");
    let v = json(body.as_bytes());
    assert_eq!(v["code"], 413);
    assert!(v["error"].as_str().unwrap().contains("larger than this route accepts"), "{v}");
    // No Accept and no format: the trustless gateway says what to send.
    let (status, _, body) =
        request("GET", format!("{base}/ipfs/QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"), None, None).await;
    assert_eq!(status, 406);
    assert!(json(&body)["error"].as_str().unwrap().contains("application/vnd.ipld.car"));
    d.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_home_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path(), 3).await;
    let err = match vouch_node::Daemon::start(dir.path(), crate::loopback_config(), None).await {
        Ok(_) => panic!("a second daemon started on a home in use"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("already running"), "{err}");
    // The pid file's lock holds even when the api file is gone.
    let pid = dir.path().join("pid");
    assert_eq!(std::fs::read_to_string(&pid).unwrap().trim(), std::process::id().to_string());
    std::fs::remove_file(dir.path().join("api")).unwrap();
    let err = match vouch_node::Daemon::start(dir.path(), crate::loopback_config(), None).await {
        Ok(_) => panic!("a second daemon started on a home whose pid file is locked"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("already running") && err.contains("holding the lock"), "{err}");
    d.shutdown().await.unwrap();
    assert!(!pid.exists(), "shutdown removes the pid file");
    // A pid file left behind (as by a crash) holds no lock: the next daemon starts.
    std::fs::write(&pid, "999999\n").unwrap();
    let d = vouch_node::Daemon::start(dir.path(), crate::loopback_config(), None).await.unwrap();
    d.shutdown().await.unwrap();
}
