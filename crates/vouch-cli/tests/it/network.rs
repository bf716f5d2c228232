//! `vouch node` daemons as real processes on loopback: jobs sent to the node that holds the data
//! (`--node`, and `--near` through the DHT across five nodes), `cat`/`get` through a running
//! daemon, refusals, and a peer killed mid-transfer.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Vouch, repo_root, write_random_file};

/// A `vouch node` process, stopped with SIGTERM when dropped.
pub struct Daemon {
    pub v: Vouch,
    child: Child,
    pub peer: String,
    /// The first swarm multiaddr, with `/p2p/PEER`.
    pub addr: String,
    pub api: String,
}

impl Daemon {
    /// Start a daemon on ephemeral loopback ports, bootstrapping from `bootstrap`.
    pub fn start(bootstrap: &[&str]) -> Daemon {
        Daemon::start_in(Vouch::new(), bootstrap)
    }

    /// [`Daemon::start`] in a home prepared beforehand.
    pub fn start_in(v: Vouch, bootstrap: &[&str]) -> Daemon {
        Daemon::start_with(v, bootstrap, json!({}))
    }

    /// [`Daemon::start_in`] with the keys of `extra` added to the node config.
    pub fn start_with(v: Vouch, bootstrap: &[&str], extra: Value) -> Daemon {
        let mut config = json!({ "swarm": ["/ip4/127.0.0.1/tcp/0"], "api": "127.0.0.1:0", "bootstrap": bootstrap });
        for (k, val) in extra.as_object().expect("extra config is an object") {
            config[k] = val.clone();
        }
        v.write("node.json", config.to_string().as_bytes());
        let (child, peer, addr, api) = Daemon::spawn(&v);
        Daemon { v, child, peer, addr, api }
    }

    /// Start `vouch node --config node.json` in `v`: the child, its peer id, first swarm
    /// multiaddr and API address, once it has said `node ready` (at most 60 s).
    fn spawn(v: &Vouch) -> (Child, String, String, String) {
        let mut child = v
            .cmd(&["node", "--config", v.path("node.json").to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning vouch node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut peer, mut addr, mut api) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| panic!("vouch node did not report ready within 60 s"));
            if let Some(p) = line.strip_prefix("peer id  ") {
                peer = Some(p.to_string());
            } else if let Some(a) = line.strip_prefix("swarm    ") {
                addr.get_or_insert_with(|| a.to_string());
            } else if let Some(a) = line.strip_prefix("api      http://") {
                api = Some(a.to_string());
            } else if line == "node ready" {
                break;
            }
        }
        (child, peer.unwrap(), addr.unwrap(), api.unwrap())
    }

    /// Start it again in the same home with the same config, after [`Daemon::kill`]: the same
    /// peer id, new ports (`addr` and `api` are updated).
    pub fn restart(&mut self) {
        assert!(self.child.try_wait().unwrap().is_some(), "restart: the daemon is still running");
        let (child, peer, addr, api) = Daemon::spawn(&self.v);
        assert_eq!(peer, self.peer, "a restarted daemon keeps its key");
        (self.child, self.addr, self.api) = (child, addr, api);
    }

    /// Stop it now, the hard way (a crash, not a shutdown).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send `sig` (`libc::SIGSTOP`, `SIGCONT`, `SIGTERM`, …) to the daemon process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: a signal to our own child, not yet reaped (its pid cannot have been reused).
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({}, {sig}): {}", self.child.id(), std::io::Error::last_os_error());
    }

    /// Wait (at most `within`) for the process to exit; its status.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        crate::wait_within(&mut self.child, within)
            .unwrap_or_else(|| panic!("vouch node did not exit within {within:?}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            // Already reaped: its pid may belong to another process by now.
            return;
        }
        // SAFETY: a signal to our own child's pid; a stopped daemon is continued so it can
        // handle SIGTERM.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGCONT);
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn guest(name: &str) -> String {
    repo_root().join("guests/wasm").join(format!("{name}.wasm")).to_str().unwrap().to_string()
}

fn patients_csv() -> String {
    repo_root().join("examples/clinical/patients.csv").to_str().unwrap().to_string()
}

/// `vouch run ARGS… --json` in `v`: (exit code, JSON or Null, stderr).
fn run_json(v: &Vouch, args: &[&str]) -> (i32, Value, String) {
    let mut a = vec!["run"];
    a.extend_from_slice(args);
    a.push("--json");
    let out = v.run(&a);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().expect("exited"), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Whether the store of `v` holds block `cid`.
fn has_block(v: &Vouch, cid: &str) -> bool {
    v.run(&["block", "stat", cid]).status.success()
}

#[test]
fn five_nodes_route_a_job_to_the_node_that_holds_the_data() {
    let first = Daemon::start(&[]);
    let others: Vec<Daemon> = (0..4).map(|_| Daemon::start(&[&first.addr])).collect();
    let holder = &others[2];
    // The data goes to one node only; its daemon announces it on the DHT. With the records, a
    // 6 MB second input, so that moving the data would show in the byte counts.
    let data = holder.v.add_q(&[&patients_csv()]);
    const BIG: u64 = 6_000_000;
    write_random_file(&holder.v.path("big.bin"), 14, BIG);
    let big = holder.v.add_q(&["big.bin"]);

    // A client that knows only the first node, and does not have the data.
    let client = Vouch::new();
    client.ok(&["config", "bootstrap", &json!([first.addr]).to_string()]);
    let module = guest("clinical_summary");
    let (records, extra) = (format!("{data}:patients.csv"), format!("{big}:big.bin"));
    let args = [&module as &str, "--near", &data, "--input", &records, "--input", &extra, "--allow-insecure"];
    // Provider records spread asynchronously: retry while the DHT does not know the data yet.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (code, j, stderr) = loop {
        let r = run_json(&client, &args);
        if r.0 == 0 || !r.2.contains("no node on the DHT provides it") || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(code, 0, "{j}\n{stderr}");
    assert_eq!(j["outcome"]["kind"], "exited");
    assert_eq!(j["ran_on"], holder.peer.as_str(), "the job ran on the node holding the data");

    // What moved was the job and the result, not the data: of the client and all five nodes,
    // only the holder has the dataset's block; the client holds the output.
    assert!(!has_block(&client, &data), "the dataset reached the client");
    for d in std::iter::once(&first).chain(&others).filter(|d| d.peer != holder.peer) {
        assert!(!has_block(&d.v, &data), "the dataset reached node {}", d.peer);
    }
    assert!(has_block(&holder.v, &data));
    // And in bytes: the holder sent far less than the data to anyone, and no other node
    // received anything near it (libp2p's counters, `/api/v0/stats/bw`).
    let bw = |d: &Daemon| http_json("GET", &format!("http://{}/api/v0/stats/bw", d.api), b"").1;
    let (sent, got) = (bw(holder)["TotalOut"].as_u64().unwrap(), bw(holder)["TotalIn"].as_u64().unwrap());
    assert!(sent < BIG / 6, "the holder sent {sent} bytes; the data is {BIG}");
    // The counters are live: the holder received the module (46 KB) from the client.
    let module_len = std::fs::metadata(&module).unwrap().len();
    assert!(got > module_len, "the holder received {got} bytes, less than the {module_len}-byte module");
    for d in std::iter::once(&first).chain(&others).filter(|d| d.peer != holder.peer) {
        let got = bw(d)["TotalIn"].as_u64().unwrap();
        assert!(got < BIG / 6, "node {} received {got} bytes; the data is {BIG}", d.peer);
    }
    let output = j["output"].as_str().unwrap().to_string();
    let summary = client.ok(&["cat", &format!("{output}/summary.csv")]);
    assert!(summary.starts_with("treatment,"), "{summary}");

    // The same job run locally next to the data gives the same output CID (deterministic), and
    // the saved receipt verifies offline.
    let local = Vouch::new();
    let local_data = local.add_q(&[&patients_csv()]);
    assert_eq!(local_data, data);
    write_random_file(&local.path("big.bin"), 14, BIG);
    assert_eq!(local.add_q(&["big.bin"]), big);
    let (code, lj, stderr) = run_json(&local, &[&module, "--input", &records, "--input", &extra]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lj["output"], j["output"]);
    let receipt = j["receipt"].as_str().unwrap();
    let car = client.home().join("receipts").join(format!("{receipt}.car"));
    let out = client.run(&["verify", car.to_str().unwrap(), "--allow-insecure"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // Without --allow-insecure the client refuses a `none` receipt it is handed (exit 1).
    let (code, _, stderr) =
        run_json(&client, &[&module, "--node", &holder.addr, "--input", &records, "--input", &extra]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("evidence"), "{stderr}");
}

#[test]
fn a_job_whose_input_nobody_has_is_refused_with_the_reason() {
    let node = Daemon::start(&[]);
    let client = Vouch::new();
    // A CID of bytes that were never added anywhere.
    let missing = client.ok(&["add", "-Q", "-n", &client.write("x", b"never stored").to_string_lossy()]);
    let missing = missing.trim();
    let (code, _, stderr) = run_json(
        &client,
        &[
            &guest("echo_args"),
            "--node",
            &node.addr,
            "--input",
            &format!("{missing}:x"),
            "--fetch-timeout",
            "3s",
            "--allow-insecure",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("refused") && stderr.contains("input x") && stderr.contains(missing), "{stderr}");
    // The node is healthy and ran nothing.
    assert!(node.v.ok(&["pin", "ls"]).trim().is_empty());
}

#[test]
fn cat_and_get_fetch_through_the_running_daemon() {
    let a = Daemon::start(&[]);
    let b = Daemon::start(&[&a.addr]);
    let file = a.v.path("blob");
    write_random_file(&file, 11, 3_000_000);
    let cid = a.v.add_q(&[file.to_str().unwrap()]);
    assert!(!has_block(&b.v, &cid));
    b.v.assert_cat_eq_file(&cid, &file);
    // Now local to b: get works without the network too.
    b.v.ok(&["get", &cid, "-o", "copy"]);
    assert_eq!(std::fs::read(b.v.path("copy")).unwrap(), std::fs::read(&file).unwrap());
    let id: Value = serde_json::from_str(&b.v.ok(&["id", "--json"])).unwrap();
    assert_eq!(id["ID"], b.peer.as_str());
    let peers = b.v.ok(&["swarm", "peers"]);
    assert!(peers.contains(&a.peer), "{peers}");
    // The daemon's API answers the same id the CLI printed.
    let mut resp = ureq::get(&format!("http://{}/api/v0/id", b.api)).call().unwrap();
    let body = resp.body_mut().read_to_string().unwrap();
    let api_id: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(api_id["ID"], b.peer.as_str(), "{body}");
}

/// The sender is killed (SIGKILL) while a block transfer is part way: the receiver's store stays
/// consistent, gains nothing from the failed fetch (no partial DAG, no pin), and a fetch from
/// the restarted sender completes, byte-identical. "Part way" is made certain, not raced: the
/// sender runs in short SIGCONT/SIGSTOP slices until the receiver's `/api/v0/stats/bw` shows
/// some of the file's bytes arrived, and it is killed while stopped, well before the end.
#[test]
fn a_peer_killed_mid_transfer_leaves_the_other_store_intact() {
    const SIZE: u64 = 64 << 20;
    let mut a = Daemon::start(&[]);
    let b = Daemon::start(&[&a.addr]);
    let file = a.v.path("big");
    write_random_file(&file, 12, SIZE);
    let cid = a.v.add_q(&[file.to_str().unwrap()]);
    wait_connected(&b, &a.peer);
    let before = b.v.snapshot();
    let bw_in = || http_json("GET", &format!("http://{}/api/v0/stats/bw", b.api), b"").1["TotalIn"].as_u64().unwrap();
    let start_in = bw_in();

    a.signal(libc::SIGSTOP);
    let mut cat =
        b.v.cmd(&["cat", &cid, "--timeout", "5s"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // Each slice lets the sender move at most a few MB; stop once 1 MiB has arrived.
    let deadline = Instant::now() + Duration::from_secs(120);
    let moved = loop {
        a.signal(libc::SIGCONT);
        std::thread::sleep(Duration::from_millis(10));
        a.signal(libc::SIGSTOP);
        let moved = bw_in() - start_in;
        if moved >= 1 << 20 {
            break moved;
        }
        assert!(Instant::now() < deadline, "the receiver got only {moved} bytes in 120 s of slices");
    };
    assert!(moved < SIZE / 2, "{moved} of {SIZE} bytes had moved: not part way");
    a.kill();
    eprintln!("sender killed with {moved} of {SIZE} bytes received");

    let Some(status) = crate::wait_within(&mut cat, Duration::from_secs(120)) else {
        let _ = cat.kill();
        let _ = cat.wait();
        panic!("vouch cat did not give up within 120 s of the sender's death");
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut cat.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "vouch cat succeeded with the sender killed part way");
    assert!(stderr.starts_with("Error: ") && stderr.contains("timed out"), "{stderr}");
    // Consistent, and unchanged: the blocks that did arrive were never committed or pinned.
    b.v.ok(&["repo", "verify"]);
    assert_eq!(b.v.snapshot(), before, "a failed fetch changed the store");
    assert!(!has_block(&b.v, &cid));

    // The sender comes back (same key, new port): the fetch completes, byte-identical.
    a.restart();
    b.v.ok(&["swarm", "connect", &a.addr]);
    b.v.assert_cat_eq_file(&cid, &file);
    b.v.ok(&["repo", "verify"]);
}

/// `METHOD url` with `body` against a daemon: (status, body bytes); HTTP errors are answers.
fn http(method: &str, url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut resp = match method {
        "GET" => agent.get(url).call(),
        "POST" => agent.post(url).send(body),
        other => panic!("method {other}"),
    }
    .unwrap();
    (resp.status().as_u16(), resp.body_mut().read_to_vec().unwrap())
}

fn http_json(method: &str, url: &str, body: &[u8]) -> (u16, Value) {
    let (status, bytes) = http(method, url, body);
    let v =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{url}: {e}: {}", String::from_utf8_lossy(&bytes)));
    (status, v)
}

#[test]
fn the_http_api_runs_jobs_and_serves_receipts_and_evidence() {
    let d = Daemon::start(&[]);
    let api = format!("http://{}/api/v0", d.api);
    let module = d.v.add_q(&[&guest("echo_args")]);
    let mut spec = vouch_receipt::JobSpec::new(module.parse().unwrap());
    spec.args = vec!["hello".into(), "api".into()];
    let job = spec.cid().to_string();

    // Submit and wait: the answer names the job, the receipt and the results.
    let (status, done) = http_json("POST", &format!("{api}/job/submit"), &spec.encode());
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["Job"], job.as_str());
    assert_eq!(done["Status"], "done");
    assert_eq!(done["Evidence"], "none");
    let receipt = done["Receipt"].as_str().expect("a receipt CID").to_string();
    let (status, st) = http_json("GET", &format!("{api}/job/status?arg={job}"), b"");
    assert_eq!((status, &st["Receipt"]), (200, &done["Receipt"]), "{st}");
    let stdout = d.v.ok(&["cat", done["Stdout"].as_str().unwrap()]);
    assert!(stdout.contains("=hello") && stdout.contains("=api"), "{stdout}");

    // The receipt as a CAR verifies offline, and only with --allow-insecure (`none` evidence).
    let (status, car) = http("GET", &format!("{api}/receipt?arg={receipt}"), b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&car));
    let file = d.v.path("receipt.car");
    std::fs::write(&file, &car).unwrap();
    let f = file.to_str().unwrap();
    let verified = d.v.run(&["verify", f, "--allow-insecure"]);
    assert_eq!(verified.status.code(), Some(0), "{}", String::from_utf8_lossy(&verified.stderr));
    assert_eq!(d.v.run(&["verify", f]).status.code(), Some(1), "none evidence verified without --allow-insecure");
    // A block that is not a receipt is named as such.
    let (status, e) = http_json("GET", &format!("{api}/receipt?arg={module}"), b"");
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("is not a receipt"), "{e}");

    // Evidence: the current one, and a fresh one bound to a verifier's nonce.
    let (status, ev) = http_json("GET", &format!("{api}/evidence?nonce=00ff11"), b"");
    assert_eq!(status, 200, "{ev}");
    assert_eq!(
        (&ev["Technology"], &ev["Nonce"], &ev["HardwareClaim"]),
        (&json!("none"), &json!("00ff11"), &json!(false))
    );
    let (_, ev2) = http_json("GET", &format!("{api}/evidence?nonce=00ff12"), b"");
    assert_ne!(ev["ReportData"], ev2["ReportData"], "the report data binds the nonce");
    let (status, e) = http_json("GET", &format!("{api}/evidence?nonce=zz"), b"");
    assert_eq!(status, 400, "{e}");

    // Refusals, each with its kind and reason.
    let (status, e) = http_json("POST", &format!("{api}/job/submit"), b"not cbor");
    assert_eq!((status, &e["refusal"]), (400, &json!("bad-request")), "{e}");
    let nowhere =
        vouch_receipt::JobSpec::new("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".parse().unwrap());
    let (status, e) = http_json("POST", &format!("{api}/job/submit?fetch-timeout=1s"), &nowhere.encode());
    assert_eq!((status, &e["refusal"]), (404, &json!("unavailable")), "{e}");
    assert!(e["error"].as_str().unwrap().contains("module"), "{e}");
    let (_, st) = http_json("GET", &format!("{api}/job/status?arg={}", nowhere.cid()), b"");
    assert_eq!((&st["Status"], &st["Code"]), (&json!("refused"), &json!("unavailable")), "{st}");
    let (status, _) = http_json("GET", &format!("{api}/job/status?arg={module}"), b"");
    assert_eq!(status, 404, "a CID never submitted has no status");

    // In the background: 202 at once, then the status reaches done.
    spec.args.push("again".into());
    let (status, sub) = http_json("POST", &format!("{api}/job/submit?wait=false"), &spec.encode());
    assert_eq!((status, &sub["Job"]), (202, &json!(spec.cid().to_string())), "{sub}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, st) = http_json("GET", &format!("{api}/job/status?arg={}", spec.cid()), b"");
        if st["Status"] == "done" {
            break;
        }
        assert!(Instant::now() < deadline && st["Status"] != "refused", "{st}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_route_the_openapi_document_lists_is_served() {
    let d = Daemon::start(&[]);
    let (status, doc) = http_json("GET", &format!("http://{}/api/v0/openapi.json", d.api), b"");
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v0/job/submit") && paths.contains_key("/api/v0/evidence"), "{:?}", paths.keys());
    for (path, ops) in paths {
        let concrete = path.replace("{cid}", "bafkqaaa").replace("{path}", "x");
        for method in ops.as_object().unwrap().keys() {
            let (status, body) = http(&method.to_uppercase(), &format!("http://{}{concrete}", d.api), b"");
            let text = String::from_utf8_lossy(&body);
            assert!(status != 405 && !text.contains("no such route"), "{method} {path}: {status} {text}");
        }
    }
}

#[test]
fn a_local_run_fetches_missing_inputs_through_the_running_daemon() {
    let a = Daemon::start(&[]);
    let b = Daemon::start(&[&a.addr]);
    let data = a.v.add_q(&[&patients_csv()]);
    assert!(!has_block(&b.v, &data));
    let input = format!("{data}:patients.csv");
    let (code, j, stderr) = run_json(&b.v, &[&guest("clinical_summary"), "--input", &input]);
    assert_eq!(code, 0, "{j}\n{stderr}");
    assert_eq!(j["ran_on"], Value::Null, "a local run");
    assert!(has_block(&b.v, &data), "the input was fetched into b's store");
    // Without a daemon, a missing input is an error naming it.
    let lone = Vouch::new();
    let e = lone.err(&["run", &guest("clinical_summary"), "--input", &input]);
    assert!(e.contains("patients.csv") && e.contains("not in the store"), "{e}");
}

#[test]
fn a_sealed_input_opens_on_another_node_only_with_its_owners_broker_consent() {
    let module = guest("clinical_summary");
    let Story { summary, hospital, lab, lab_pub, input } = story(&module);

    // The compute node fetches the ciphertext and asks the hospital's broker for the key.
    let compute = Daemon::start(&[&hospital.addr]);
    let args =
        [&module, "--input", &input, "--recipient", &lab_pub, "--max-output", "1MiB", "--broker", &hospital.addr];
    let (code, run, stderr) = run_json(&compute.v, &args);
    assert_eq!(code, 0, "{run}\n{stderr}");
    assert!(stderr.contains("NO HARDWARE CLAIM"), "{stderr}");
    // The lab opens the result; it is the clear run's.
    let key = lab.path("lab.key");
    compute.v.ok(&["open", run["output"].as_str().unwrap(), "--key", key.to_str().unwrap(), "-o", "results"]);
    assert!(std::fs::read(compute.v.path("results/summary.csv")).unwrap() == summary, "the result differs");
    // The hospital's log records the grant to the compute node's key.
    let id: Value = serde_json::from_str(&compute.v.ok(&["id", "--json"])).unwrap();
    let log = hospital.v.ok(&["broker", "log", "--json"]);
    let granted: Vec<Value> =
        log.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|e| e["decision"] == "granted").collect();
    assert_eq!(granted.len(), 1, "{log}");
    assert_eq!(granted[0]["node_key"], id["PublicKey"], "{log}");

    // The same through the compute node's HTTP API, naming the broker in the query.
    let module_cid: vouch_dag::Cid = compute.v.add_q(&["-n", &module]).parse().unwrap();
    let mut spec = vouch_receipt::JobSpec::new(module_cid);
    spec.args = vec!["clinical_summary.wasm".into()];
    spec.inputs.insert("patients.csv".into(), input.split(':').next().unwrap().parse().unwrap());
    spec.recipient = Some(hex::decode(&lab_pub).unwrap());
    spec.limits.output_bytes = 1 << 20;
    spec.limits.wall_time_ms = 57_000;
    let api = format!("http://{}/api/v0/job/submit", compute.api);
    let (status, e) = http_json("POST", &api, &spec.encode());
    assert_eq!((status, &e["refusal"]), (403, &json!("policy")), "no broker named: {e}");
    spec.limits.wall_time_ms = 56_000;
    let (status, done) = http_json("POST", &format!("{api}?brokers={}", hospital.addr), &spec.encode());
    assert_eq!((status, &done["Status"]), (200, &json!("done")), "{done}");

    // Another module: refused by the hospital's broker, naming the rule.
    let other = guest("echo_args");
    let e = compute.v.err(&[
        "run",
        &other,
        "--input",
        &input,
        "--recipient",
        &lab_pub,
        "--max-output",
        "1MiB",
        "--broker",
        &hospital.addr,
    ]);
    assert!(e.contains(&format!("the broker at {}", hospital.addr)) && e.contains("modules.allow"), "{e}");
    // No broker named: nobody releases it, and the error says what to do. (Another timeout makes
    // it another job: the job above is memoised, its sealed result already stored.)
    let e = compute.v.err(&[
        "run",
        &module,
        "--input",
        &input,
        "--recipient",
        &lab_pub,
        "--max-output",
        "1MiB",
        "--timeout",
        "59s",
    ]);
    assert!(e.contains("--broker"), "{e}");
}

#[test]
fn a_sealed_job_sent_with_node_gets_its_keys_on_the_node_that_runs_it() {
    let module = guest("clinical_summary");
    let Story { summary, hospital, lab, lab_pub, input } = story(&module);
    let compute = Daemon::start(&[&hospital.addr]);

    // The lab sends the job to the compute node, naming the hospital's broker.
    let args = |module: &str| -> Vec<String> {
        [module, "--node", &compute.addr, "--input", &input, "--recipient", &lab_pub, "--max-output", "1MiB"]
            .into_iter()
            .chain(["--broker", &hospital.addr, "--allow-insecure"])
            .map(str::to_owned)
            .collect()
    };
    let (code, run, stderr) = run_json(&lab, &strs(&args(&module)));
    assert_eq!(code, 0, "{run}\n{stderr}");
    assert_eq!(run["ran_on"], compute.peer.as_str());
    // The sealed result travelled back inline; only the lab opens it.
    lab.ok(&["open", run["output"].as_str().unwrap(), "--key", "lab.key", "-o", "results"]);
    assert!(std::fs::read(lab.path("results/summary.csv")).unwrap() == summary, "the result differs");
    let log = hospital.v.ok(&["broker", "log"]);
    assert_eq!(log.matches(" granted ").count(), 1, "{log}");

    // A module the hospital did not approve: the compute node's refusal carries the rule.
    let other = guest("echo_args");
    let (code, _, stderr) = run_json(&lab, &strs(&args(&other)));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("refused") && stderr.contains("modules.allow") && stderr.contains("(policy)"), "{stderr}");
}

/// The hospital and the lab, set up: the summary `module` computes in the clear (what the lab
/// must get back), the hospital's daemon holding the records sealed under a policy that admits
/// `module` and results for the lab only, the lab's home with its key (`lab.key`).
struct Story {
    summary: Vec<u8>,
    hospital: Daemon,
    lab: Vouch,
    lab_pub: String,
    /// `SEALED:patients.csv`.
    input: String,
}

fn story(module: &str) -> Story {
    let csv = patients_csv();
    let clear = Vouch::new();
    let d = clear.add_q(&[&csv]);
    let (_, plain, _) = run_json(&clear, &[module, "--input", &format!("{d}:patients.csv")]);
    let summary = clear.ok_bytes(&["cat", &format!("{}/summary.csv", plain["output"].as_str().unwrap())]);
    let hospital = Daemon::start(&[]);
    let lab = Vouch::new();
    let lab_pub = lab.keygen("lab.key");
    let module_cid = clear.add_q(&["-n", module]);
    let policy = hospital.v.write(
        "hospital.toml",
        format!(
            "[modules]\nallow = [\"{module_cid}\"]\n[evidence]\nrequire = [\"none\"]\nallow_insecure = true\n\
             [results]\nrecipients = [\"{lab_pub}\"]\nmax_output_bytes = 8388608\n"
        )
        .as_bytes(),
    );
    let out = hospital.v.ok(&["seal", &csv, "--policy", policy.to_str().unwrap(), "--json"]);
    let sealed = serde_json::from_str::<Value>(&out).unwrap()["cid"].as_str().unwrap().to_string();
    Story { summary, hospital, lab, lab_pub, input: format!("{sealed}:patients.csv") }
}

/// Borrowed views of owned arguments.
fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_job_submitted_over_http_shows_its_endorsements_to_the_brokers() {
    let d = Daemon::start(&[]);
    let module = guest("clinical_summary");
    let module_cid = d.v.add_q(&[&module]);
    let out = d.v.ok(&["broker", "endorse", &module_cid, "-o", "endorsement.cbor"]);
    let signer = out.lines().find_map(|l| l.strip_prefix("signer   ")).unwrap().trim().to_string();
    let lab = d.v.keygen("lab.key");
    let policy = d.v.write(
        "p.toml",
        format!(
            "[modules]\nsigners = [\"{signer}\"]\n[evidence]\nrequire = [\"none\"]\nallow_insecure = true\n\
             [results]\nrecipients = [\"{lab}\"]\nmax_output_bytes = 8388608\n"
        )
        .as_bytes(),
    );
    let out = d.v.ok(&["seal", &patients_csv(), "--policy", policy.to_str().unwrap(), "--json"]);
    let sealed: vouch_dag::Cid = serde_json::from_str::<Value>(&out).unwrap()["cid"].as_str().unwrap().parse().unwrap();
    let mut spec = vouch_receipt::JobSpec::new(module_cid.parse().unwrap());
    spec.args = vec!["clinical_summary.wasm".into()];
    spec.inputs.insert("patients.csv".into(), sealed);
    spec.recipient = Some(hex::decode(&lab).unwrap());
    spec.limits.output_bytes = 1 << 20;
    let api = format!("http://{}/api/v0/job/submit", d.api);

    // No endorsement: the policy admits modules only by signer.
    spec.limits.wall_time_ms = 59_000;
    let (status, e) = http_json("POST", &api, &spec.encode());
    assert_eq!((status, &e["refusal"]), (403, &json!("policy")), "{e}");
    assert!(e.to_string().contains("modules.allow"), "{e}");
    // Not hex: named, nothing runs.
    let (status, e) = http_json("POST", &format!("{api}?endorsements=zz"), &spec.encode());
    assert_eq!(status, 400, "{e}");
    assert!(e.to_string().contains("endorsements[0]"), "{e}");
    // The module's own endorsement: released, the job runs.
    spec.limits.wall_time_ms = 58_000;
    let endorsement = hex::encode(std::fs::read(d.v.path("endorsement.cbor")).unwrap());
    let (status, done) = http_json("POST", &format!("{api}?endorsements={endorsement}"), &spec.encode());
    assert_eq!((status, &done["Status"]), (200, &json!("done")), "{done}");
    let log = d.v.ok(&["broker", "log"]);
    assert_eq!((log.matches(" granted ").count(), log.matches(" refused ").count()), (1, 1), "{log}");
}

/// Poll `job/status` until `done(status)` holds; panics after 60 s or on a refusal.
fn wait_status(api: &str, job: &str, done: impl Fn(&str) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, st) = http_json("GET", &format!("{api}/job/status?arg={job}"), b"");
        if done(st["Status"].as_str().unwrap_or("")) {
            return st;
        }
        assert!(Instant::now() < deadline && st["Status"] != "refused", "{st}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_job_over_the_nodes_quota_is_refused_and_busy_is_reported() {
    let quota = json!({ "jobs": 4, "quota": { "jobs_per_peer": 1, "max_wall_time_ms": 20000 } });
    let d = Daemon::start_with(Vouch::new(), &[], quota);
    let api = format!("http://{}/api/v0", d.api);

    // Over libp2p: more wall time than the node allows; the client reports the kind and reason.
    let client = Vouch::new();
    let args = [&guest("echo_args") as &str, "--node", &d.addr, "--timeout", "30s", "--allow-insecure"];
    let (code, _, stderr) = run_json(&client, &args);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("(quota)") && stderr.contains("limits.wall_time_ms is 30000; this node allows at most 20000"),
        "{stderr}"
    );

    // Over HTTP: 403 with the same kind and reason.
    let looping = d.v.add_q(&[&guest("hostile_loop")]);
    let mut spec = vouch_receipt::JobSpec::new(looping.parse().unwrap());
    spec.limits.wall_time_ms = 30_000;
    let (status, e) = http_json("POST", &format!("{api}/job/submit"), &spec.encode());
    assert_eq!((status, &e["refusal"]), (403, &json!("quota")), "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("limits.wall_time_ms is 30000; this node allows at most 20000"),
        "{e}"
    );

    // Busy: a slow job holds the HTTP API's one slot; a second one is refused with the reason.
    spec.limits.wall_time_ms = 15_000;
    let slow = spec.cid().to_string();
    let (status, sub) = http_json("POST", &format!("{api}/job/submit?wait=false"), &spec.encode());
    assert_eq!(status, 202, "{sub}");
    wait_status(&api, &slow, |s| s == "fetching" || s == "running");
    let quick = d.v.add_q(&[&guest("echo_args")]);
    let mut quick = vouch_receipt::JobSpec::new(quick.parse().unwrap());
    quick.limits.wall_time_ms = 10_000;
    let (status, e) = http_json("POST", &format!("{api}/job/submit"), &quick.encode());
    assert_eq!((status, &e["refusal"]), (503, &json!("busy")), "{e}");
    let reason = e["error"].as_str().unwrap();
    assert!(reason.contains("the HTTP API") && reason.contains("quota.jobs_per_peer = 1"), "{e}");

    // The slow job ends (its wall time), the slot comes back and the next job runs.
    let st = wait_status(&api, &slow, |s| s == "done");
    assert_eq!(st["Outcome"]["kind"], "timeout", "{st}");
    let (status, done) = http_json("POST", &format!("{api}/job/submit"), &quick.encode());
    assert_eq!((status, &done["Status"]), (200, &json!("done")), "{done}");
}

/// Wait until `d` lists `peer` among its connected peers (at most 60 s).
fn wait_connected(d: &Daemon, peer: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !d.v.ok(&["swarm", "peers"]).contains(peer) {
        assert!(Instant::now() < deadline, "{} never connected to {peer}", d.peer);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_job_whose_input_holder_never_answers_fails_with_a_timeout_naming_the_cid() {
    let holder = Daemon::start(&[]);
    let node = Daemon::start(&[&holder.addr]);
    let data = holder.v.add_q(&[&patients_csv()]);
    wait_connected(&node, &holder.peer);
    // The holder stays connected but answers nothing: its process is stopped.
    holder.signal(libc::SIGSTOP);
    let client = Vouch::new();
    let input = format!("{data}:patients.csv");
    let args = [&guest("echo_args") as &str, "--node", &node.addr, "--input", &input, "--fetch-timeout", "3s"];
    let mut run = client
        .cmd(&["run"])
        .args(args)
        .args(["--allow-insecure"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: the client gives up on its own long before this; a hang fails the test.
    let Some(status) = crate::wait_within(&mut run, Duration::from_secs(120)) else {
        let _ = run.kill();
        let _ = run.wait();
        holder.signal(libc::SIGCONT);
        panic!("vouch run did not finish within 120 s");
    };
    holder.signal(libc::SIGCONT);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("(unavailable)") && stderr.contains("input patients.csv"), "{stderr}");
    assert!(stderr.contains("timed out") && stderr.contains(&data), "{stderr}");
    // The node is healthy, stored nothing of the input and ran nothing.
    assert!(!has_block(&node.v, &data));
    assert!(node.v.ok(&["pin", "ls"]).trim().is_empty());
}

#[test]
fn sigterm_and_sigint_stop_the_daemon_cleanly() {
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
        let mut d = Daemon::start(&[]);
        let file = d.v.path("blob");
        write_random_file(&file, 13, 2_000_000);
        let (status, added) =
            http_json("POST", &format!("http://{}/api/v0/add", d.api), &std::fs::read(&file).unwrap());
        assert_eq!(status, 200, "{added}");
        let home = d.v.home();
        for f in ["api", "swarm", "pid"] {
            assert!(home.join(f).exists(), "{f} is missing while the daemon runs");
        }
        d.signal(sig);
        let status = d.wait_exit(Duration::from_secs(60));
        assert_eq!(status.code(), Some(0), "{name}: {status}");
        for f in ["api", "swarm", "pid"] {
            assert!(!home.join(f).exists(), "{name}: {f} left behind");
        }
        // The store is consistent and holds what was added through the daemon.
        d.v.ok(&["repo", "verify"]);
        d.v.assert_cat_eq_file(added["Hash"].as_str().unwrap(), &file);
    }
}
