//! `vouch run`, `vouch receipt show|export`, `vouch verify` and `vouch demo` through the real
//! binary: the demo analysis checked against statistics computed here, memoisation and
//! determinism, what a guest can and cannot see, the hostile corpus (each with its documented
//! outcome, a receipt that verifies, and a node that still works), bad input, and receipts
//! verified, exported, replayed in a fresh home and tampered with.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::{Vouch, car_sections, repo_root};

/// `guests/wasm/NAME.wasm`.
fn guest(name: &str) -> String {
    repo_root().join("guests/wasm").join(format!("{name}.wasm")).to_str().unwrap().to_string()
}

/// The demo dataset: `examples/clinical/patients.csv`.
fn patients_csv() -> PathBuf {
    repo_root().join("examples/clinical/patients.csv")
}

/// `vouch run ARGS… --json`: (exit code, the JSON it printed, stderr).
#[track_caller]
fn run_json(v: &Vouch, args: &[&str]) -> (i32, Value, String) {
    let mut a = vec!["run"];
    a.extend_from_slice(args);
    a.push("--json");
    let out = v.run(&a);
    let code = out.status.code().expect("exited, not killed");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("vouch {a:?} (exit {code}): stdout is not JSON ({e}): {stdout:?}; stderr: {stderr}")
    });
    (code, json, stderr)
}

/// `vouch run ARGS… --json` that must exit 0 with outcome `exited` code 0.
#[track_caller]
fn run_ok(v: &Vouch, args: &[&str]) -> Value {
    let (code, j, stderr) = run_json(v, args);
    assert_eq!(code, 0, "vouch run {args:?}: {j}; stderr: {stderr}");
    assert_eq!(j["outcome"], json!({"kind": "exited", "text": "exited with code 0"}), "vouch run {args:?}");
    assert_eq!(stderr, "", "vouch run {args:?}");
    j
}

/// The string field `k` of `j`.
#[track_caller]
fn field<'a>(j: &'a Value, k: &str) -> &'a str {
    j[k].as_str().unwrap_or_else(|| panic!("no string {k:?} in {j}"))
}

/// Parse `s` as a CID and return its codec.
#[track_caller]
fn codec(s: &str) -> u64 {
    cid::Cid::try_from(s).unwrap_or_else(|e| panic!("{s:?} is not a CID: {e}")).codec()
}

const DAG_PB: u64 = 0x70;
const DAG_CBOR: u64 = 0x71;
/// The CID of an empty UnixFS directory.
const EMPTY_DIR: &str = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn";

/// `vouch verify ARGS…`: (exit code, stdout, stderr).
fn verify(v: &Vouch, args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["verify"];
    a.extend_from_slice(args);
    let out = v.run(&a);
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `vouch receipt show ARG --json`.
#[track_caller]
fn receipt_json(v: &Vouch, arg: &str) -> Value {
    serde_json::from_str(&v.ok(&["receipt", "show", arg, "--json"])).unwrap()
}

/// Add the demo dataset and run the analysis on it; the `run --json` line.
fn clinical_run(v: &Vouch) -> Value {
    let data = v.add_q(&[patients_csv().to_str().unwrap()]);
    run_ok(v, &[&guest("clinical_summary"), "--input", &format!("{data}:patients.csv")])
}

/// One row of `summary.csv`.
#[derive(Debug)]
struct Row {
    treatment: String,
    group: &'static str,
    n: u64,
    mean: f64,
    sd: f64,
}

/// What clinical_summary.c should write, computed here the plain way (sum, then squared
/// deviations: not the guest's Welford updates): per treatment in byte order of its name, the
/// groups `all`, `smoker`, `non_smoker` with n, mean and sample sd of `outcome_score`.
fn expected_summary(csv: &str) -> Vec<Row> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (c_smoker, c_treatment, c_score) = (col("smoker"), col("treatment"), col("outcome_score"));
    // treatment -> [all, smoker, non_smoker] scores
    let mut groups: BTreeMap<String, [Vec<f64>; 3]> = BTreeMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), header.len(), "{line}");
        let score: f64 = f[c_score].parse().unwrap();
        let g = groups.entry(f[c_treatment].to_string()).or_default();
        g[0].push(score);
        match f[c_smoker] {
            "1" => g[1].push(score),
            "0" => g[2].push(score),
            s => panic!("smoker {s:?}"),
        }
    }
    let mut rows = Vec::new();
    for (treatment, g) in groups {
        for (scores, group) in g.iter().zip(["all", "smoker", "non_smoker"]) {
            let n = scores.len() as f64;
            let mean = scores.iter().sum::<f64>() / n;
            let sd = if scores.len() > 1 {
                (scores.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt()
            } else {
                0.0
            };
            rows.push(Row { treatment: treatment.clone(), group, n: scores.len() as u64, mean, sd });
        }
    }
    rows
}

/// `got` (summary.csv as the guest wrote it) has the header, the rows in order, exact counts,
/// and means and sds that are ours rounded to 4 decimals (`%.4f`).
#[track_caller]
fn assert_summary(got: &str, want: &[Row]) {
    let mut lines = got.lines();
    assert_eq!(lines.next(), Some("treatment,group,n,mean_outcome,sd_outcome"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), want.len(), "summary.csv:\n{got}");
    for (line, w) in rows.iter().zip(want) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 5, "{line}");
        assert_eq!((f[0], f[1], f[2].parse::<u64>().unwrap()), (w.treatment.as_str(), w.group, w.n), "{line}");
        for (text, value) in [(f[3], w.mean), (f[4], w.sd)] {
            assert_eq!(text.split_once('.').map(|(_, d)| d.len()), Some(4), "{line}: not %.4f");
            let x: f64 = text.parse().unwrap();
            assert!((x - value).abs() <= 0.00005 + 1e-9, "{line}: {text} is not {value} to 4 decimals ({w:?})");
        }
    }
}

#[test]
fn clinical_summary_matches_an_independent_computation_and_is_memoised() {
    let v = Vouch::new();
    let csv = fs::read_to_string(patients_csv()).unwrap();
    let data = v.add_q(&[patients_csv().to_str().unwrap()]);
    let module = guest("clinical_summary");
    let input = format!("{data}:patients.csv");
    let run = [module.as_str(), "--input", &input];

    let first = run_ok(&v, &run);
    let keys: BTreeSet<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "cached",
            "job",
            "module_source",
            "outcome",
            "output",
            "ran_on",
            "receipt",
            "stderr",
            "stdout",
            "stdout_text",
            "usage"
        ])
    );
    assert_eq!(first["ran_on"], serde_json::Value::Null, "ran here, not on a peer");
    assert_eq!(first["cached"], false);
    assert_eq!(first["stderr"], Value::Null, "the analysis writes nothing to stderr");
    let (job, output, stdout, receipt) =
        (field(&first, "job"), field(&first, "output"), field(&first, "stdout"), field(&first, "receipt"));
    assert_eq!((codec(job), codec(receipt)), (DAG_CBOR, DAG_CBOR));
    assert_eq!((codec(output), codec(stdout)), (DAG_PB, DAG_PB));
    // The engine always meters fuel, so the receipt records it without a --fuel budget too.
    let fuel = first["usage"]["fuel_consumed"].as_u64().expect("fuel consumed is recorded without --fuel");
    assert!(fuel > 100_000, "fuel consumed {fuel}");
    assert_eq!(stored_receipt(&v, field(&first, "receipt")).body.usage.fuel_consumed, Some(fuel));
    assert!(first["usage"]["wall_time_ns"].as_u64().unwrap() > 0);
    let peak = first["usage"]["peak_memory_bytes"].as_u64().unwrap();
    assert!(peak > 0 && peak <= 512 << 20, "peak memory {peak}");

    // The job spec is stored under the job CID and says what ran.
    let spec: Value = serde_json::from_str(&v.ok(&["dag", "get", job])).unwrap();
    assert_eq!(spec["module"]["/"], v.add_q(&["-n", &module]));
    assert_eq!(spec["inputs"], json!({"patients.csv": {"/": data}}));
    assert_eq!(spec["args"], json!(["clinical_summary.wasm"]));
    assert_eq!(spec["env"], json!({}));
    assert_eq!(spec["deterministic"], true);
    assert_eq!(
        spec["limits"],
        json!({"memory_bytes": 512u64 << 20, "wall_time_ms": 60_000, "output_bytes": 1u64 << 30,
               "stdout_bytes": 1 << 20, "stderr_bytes": 1 << 20})
    );

    // /outputs holds exactly summary.csv, with the numbers computed here.
    let listing = v.ok(&["ls", output]);
    assert_eq!(listing.lines().map(|l| l.rsplit(' ').next().unwrap()).collect::<Vec<_>>(), ["summary.csv"]);
    let want = expected_summary(&csv);
    assert_eq!(want.len(), 9, "3 treatments × 3 groups");
    assert_summary(&v.ok(&["cat", &format!("{output}/summary.csv")]), &want);

    // stdout: stored under its CID, echoed in the JSON, and starting with the counts.
    let text = field(&first, "stdout_text");
    assert_eq!(v.ok(&["cat", stdout]), text);
    let patients = csv.lines().skip(1).filter(|l| !l.is_empty()).count();
    assert_eq!(text.lines().next().unwrap(), format!("clinical_summary: {patients} patients, 3 treatments"));
    assert_eq!(text.lines().last().unwrap(), "wrote /outputs/summary.csv");

    // The same job again: the stored receipt, not a new run.
    let again = run_ok(&v, &run);
    assert_eq!(again["cached"], true);
    for k in ["job", "output", "stdout", "receipt", "stdout_text", "usage"] {
        assert_eq!(again[k], first[k], "{k} of the memoised run");
    }
    let human = v.ok(&[&["run"][..], &run[..]].concat());
    assert!(human.contains("(memoised: an earlier run on this node)"), "{human}");
    assert!(human.contains(&format!("receipt  {receipt}\n")), "{human}");
    assert!(human.contains(&format!("--- stdout ---\n{text}")), "{human}");

    // --no-cache runs again: a new receipt (new time and nonce), the same job and results.
    let rerun = run_ok(&v, &[&run[..], &["--no-cache"][..]].concat());
    assert_eq!(rerun["cached"], false);
    assert_ne!(field(&rerun, "receipt"), receipt, "a rerun signs a new receipt");
    for k in ["job", "output", "stdout", "stdout_text"] {
        assert_eq!(rerun[k], first[k], "{k}: a deterministic job gives the same result");
    }
    assert_eq!(rerun["usage"]["fuel_consumed"], fuel, "and consumes the same fuel");
    let (r1, r2) = (receipt_json(&v, receipt), receipt_json(&v, field(&rerun, "receipt")));
    assert_ne!(r1["evidence"]["nonce"], r2["evidence"]["nonce"], "each receipt has a fresh nonce");
    // The newest receipt is the one remembered.
    assert_eq!(run_ok(&v, &run)["receipt"], rerun["receipt"]);

    // --nondeterministic is another job (the flag is in the spec), and never memoised.
    let nd: Vec<&str> = [&run[..], &["--nondeterministic"][..]].concat();
    let (nd1, nd2) = (run_ok(&v, &nd), run_ok(&v, &nd));
    assert_ne!(nd1["job"], first["job"], "the determinism flag is part of the job");
    assert_eq!(nd1["job"], nd2["job"]);
    assert_eq!((&nd1["cached"], &nd2["cached"]), (&json!(false), &json!(false)));
    assert_ne!(nd1["receipt"], nd2["receipt"]);
    assert_eq!(nd1["output"], first["output"], "this analysis reads no clock, so its output is the same");
    let nd_receipt = field(&nd1, "receipt");
    assert_eq!(receipt_json(&v, nd_receipt)["spec"]["deterministic"], false);
    // It verifies, but cannot be replayed.
    assert_eq!(verify(&v, &[nd_receipt, "--allow-insecure"]).0, 0);
    let (code, out, _) = verify(&v, &[nd_receipt, "--allow-insecure", "--replay"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED  replay: the job was run nondeterministically"), "{out}");
}

/// 64-bit FNV-1a, as echo_args.c hashes files.
fn fnv1a(data: &[u8]) -> String {
    let h = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{h:016x}")
}

#[test]
fn guest_sees_exactly_its_args_env_and_inputs() {
    let v = Vouch::new();
    let files: [(&str, &[u8]); 3] = [("a.txt", b"hello"), ("sub/b.txt", b"world!\n"), ("sub/empty", b"")];
    for (name, data) in files {
        v.write(&format!("data/{name}"), data);
    }
    let dir = v.add_q(&["-r", "data"]);
    let single = crate::random_bytes(40, 70_000);
    v.write("single.bin", &single);
    let file = v.add_q(&["single.bin"]);

    let out = v
        .cmd(&[
            "run",
            &guest("echo_args"),
            "--input",
            &format!("{dir}:data"),
            "--input",
            &file, // no NAME: mounted under its CID
            "--arg",
            "one",
            "--arg",
            "two words",
            "--arg",
            "--dash",
            "--arg",
            "",
            "--env",
            "K=V",
            "--env",
            "X=a=b",
            "--env",
            "EMPTY=",
            "--json",
        ])
        .env("VOUCH_IT_HOST_SECRET", "host-value-must-not-leak")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();

    // /inputs sorted byte-wise: the CID ("Qm…") before "data".
    let mut manifest = format!("/inputs/{file} {} {}\n", single.len(), fnv1a(&single));
    for (name, data) in files {
        manifest += &format!("/inputs/data/{name} {} {}\n", data.len(), fnv1a(data));
    }
    let file_lines: String = manifest.lines().map(|l| format!("file {l}\n")).collect();
    let want = "argc=5\nargv[0]=echo_args.wasm\nargv[1]=one\nargv[2]=two words\nargv[3]=--dash\nargv[4]=\n\
                env=EMPTY=\nenv=K=V\nenv=X=a=b\n"
        .to_string()
        + &file_lines;
    let stdout = field(&j, "stdout_text");
    assert_eq!(stdout, want);
    for leak in ["VOUCH_IT_HOST_SECRET", "host-value-must-not-leak", "VOUCH_HOME", "PATH=", "HOME="] {
        assert!(!stdout.contains(leak), "the host's {leak} reached the guest");
    }
    assert_eq!(v.ok(&["cat", &format!("{}/manifest.txt", field(&j, "output"))]), manifest);
    let spec = receipt_json(&v, field(&j, "receipt"))["spec"].clone();
    assert_eq!(spec["env"], json!({"EMPTY": "", "K": "V", "X": "a=b"}));
    assert_eq!(spec["args"], json!(["echo_args.wasm", "one", "two words", "--dash", ""]));
    let mut inputs = serde_json::Map::new();
    inputs.insert("data".into(), json!({"/": dir}));
    inputs.insert(file.clone(), json!({"/": file}));
    assert_eq!(spec["inputs"], Value::Object(inputs));
    // The inputs were mounted from the store, not changed by the run.
    assert_eq!(v.ok(&["cat", &format!("{dir}/sub/b.txt")]), "world!\n");
}

/// A hostile run: exit 3 with outcome `kind`, recorded the same way by `receipt show` (human
/// and JSON), a receipt that verifies with `--allow-insecure`, and a node that then runs a
/// normal job. Returns the `run --json` line.
#[track_caller]
fn contained(v: &Vouch, args: &[&str], kind: &str) -> Value {
    let (code, j, stderr) = run_json(v, args);
    assert_eq!(code, 3, "vouch run {args:?}: {j}; stderr: {stderr}");
    assert_eq!(j["outcome"]["kind"], kind, "vouch run {args:?}: {j}");
    assert_eq!(j["cached"], false);
    let text = field(&j["outcome"], "text");
    let headline = text.lines().next().unwrap();
    assert_eq!(stderr, format!("Error: the job did not exit 0: {headline}\n"), "vouch run {args:?}");

    let receipt = field(&j, "receipt");
    let shown = v.ok(&["receipt", "show", receipt]);
    assert!(shown.lines().any(|l| l == format!("outcome   {headline}")), "receipt show:\n{shown}");
    let r = receipt_json(v, receipt);
    assert_eq!(r["outcome"]["kind"], kind);
    assert_eq!(r["job"]["/"], j["job"]);
    let (code, out, err) = verify(v, &[receipt, "--allow-insecure"]);
    assert_eq!(code, 0, "verify {receipt}: {out}{err}");
    assert!(out.starts_with(&format!("verified {receipt} ")), "{out}");

    // The node is fine: a normal job runs (a new one each time, so nothing is memoised).
    let tag = format!("after {}", args.join(" "));
    let after = run_ok(v, &[&guest("echo_args"), "--arg", &tag]);
    assert_eq!(after["cached"], false);
    assert!(field(&after, "stdout_text").contains(&format!("argv[1]={tag}\n")));
    j
}

/// Every pin is a receipt of one of `runs`, and every stored block is intact.
#[track_caller]
fn only_results_recorded(v: &Vouch, runs: &[&Value]) {
    let pins: BTreeSet<String> =
        v.ok(&["pin", "ls"]).lines().map(|l| l.split_whitespace().next().unwrap().to_string()).collect();
    let receipts: BTreeSet<String> = runs.iter().map(|j| field(j, "receipt").to_string()).collect();
    assert!(pins.is_superset(&receipts), "pins {pins:?} lack receipts {receipts:?}");
    for p in &pins {
        assert_eq!(codec(p), DAG_CBOR, "pin {p} is not a receipt");
        assert!(receipt_json(v, p)["outcome"].is_object());
    }
    v.ok(&["repo", "verify"]);
}

#[test]
fn hostile_loop_times_out_or_runs_out_of_fuel() {
    let v = Vouch::new();
    let looping = guest("hostile_loop");
    let t = contained(&v, &[&looping, "--timeout", "1s"], "timeout");
    assert_eq!(t["outcome"]["text"], "timed out");
    let wall = t["usage"]["wall_time_ns"].as_u64().unwrap();
    assert!((1_000_000_000..20_000_000_000).contains(&wall), "wall time {wall} ns for a 1 s limit");
    let r = receipt_json(&v, field(&t, "receipt"));
    assert_eq!(r["spec"]["limits"]["wall_time_ms"], 1000);

    let f = contained(&v, &[&looping, "--fuel", "1000000"], "out_of_fuel");
    assert_eq!(f["usage"]["fuel_consumed"], 1_000_000, "all the fuel was used");
    assert_eq!(receipt_json(&v, field(&f, "receipt"))["spec"]["limits"]["fuel"], 1_000_000);
    only_results_recorded(&v, &[&t, &f]);
}

#[test]
fn hostile_memory_hits_the_memory_limit() {
    let v = Vouch::new();
    let bomb = guest("hostile_memory");
    let j = contained(&v, &[&bomb, "--memory", "16MiB"], "memory_limit");
    let peak = j["usage"]["peak_memory_bytes"].as_u64().unwrap();
    assert!(peak <= 16 << 20 && peak > 8 << 20, "peak memory {peak}");
    let got: u64 = field(&j, "stdout_text")
        .strip_prefix("malloc failed after ")
        .and_then(|s| s.strip_suffix(" MiB\n"))
        .unwrap_or_else(|| panic!("stdout {j}"))
        .parse()
        .unwrap();
    assert!((8..16).contains(&got), "got {got} MiB under a 16 MiB limit");
    // The graceful variant handles malloc failing and exits 0.
    let g = run_ok(&v, &[&bomb, "--memory", "16MiB", "--arg", "graceful"]);
    assert_eq!(g["stdout_text"], j["stdout_text"]);
    only_results_recorded(&v, &[&j, &g]);
}

#[test]
fn hostile_traps_are_recorded_with_their_message() {
    let v = Vouch::new();
    let trap = guest("hostile_trap");
    let mut runs = Vec::new();
    for (how, message) in [
        (None, "wasm `unreachable` instruction executed"),
        (Some("unreachable"), "wasm `unreachable` instruction executed"),
        (Some("divzero"), "integer divide by zero"),
        (Some("oob"), "out of bounds memory access"),
    ] {
        let mut args = vec![trap.as_str()];
        args.extend(how.iter().flat_map(|&h| ["--arg", h]));
        let j = contained(&v, &args, "trapped");
        let text = field(&j["outcome"], "text");
        assert!(text.starts_with("trapped: ") && text.contains(message), "{how:?}: {text}");
        assert!(text.contains("wasm backtrace"), "{how:?}: {text}");
        assert_eq!(field(&j, "stdout_text"), format!("dying by {}\n", how.unwrap_or("abort")));
        let r = receipt_json(&v, field(&j, "receipt"));
        assert_eq!(r["outcome"]["message"], text.strip_prefix("trapped: ").unwrap());
        runs.push(j);
    }
    if let [.., oob] = &runs[..] {
        assert!(field(&oob["outcome"], "text").contains("0xfffffff0"), "the address is named");
    }
    // exit(42) is not a trap: exit 3, outcome exited with its code.
    let exit = contained(&v, &[&trap, "--arg", "exit42"], "exited");
    assert_eq!(exit["outcome"]["text"], "exited with code 42");
    assert_eq!(receipt_json(&v, field(&exit, "receipt"))["outcome"], json!({"kind": "exited", "code": 42}));
    runs.push(exit);
    only_results_recorded(&v, &runs.iter().collect::<Vec<_>>());
}

#[test]
fn hostile_outputs_stdout_and_recursion_are_cut_off() {
    let v = Vouch::new();
    let o = contained(&v, &[&guest("hostile_outputs"), "--max-output", "1MiB"], "output_limit");
    assert_eq!(o["output"], Value::Null, "an output bomb's outputs are not stored");
    assert_eq!(receipt_json(&v, field(&o, "receipt"))["spec"]["limits"]["output_bytes"], 1 << 20);

    let s = contained(&v, &[&guest("hostile_stdout")], "stdout_limit");
    let captured = v.ok_bytes(&["cat", field(&s, "stdout")]);
    assert_eq!(captured.len(), 1 << 20, "stdout is kept up to the 1 MiB default cap");
    assert!(captured.iter().all(|&b| b == b'A' || b == b'\n'));
    assert_eq!(field(&s, "stdout_text").len(), 1 << 20);

    let r = contained(&v, &[&guest("hostile_recursion")], "stack_overflow");
    assert_eq!(r["outcome"]["text"], "call stack overflowed");
    // Bounded recursion is fine.
    assert_eq!(run_ok(&v, &[&guest("hostile_recursion"), "--arg", "1000"])["stdout_text"], "1000\n");
    only_results_recorded(&v, &[&o, &s, &r]);
}

/// A minimal Wasm binary importing `module::name` (a `[] -> []` function) and exporting a
/// `_start` that does nothing.
fn wasm_importing(module: &str, name: &str) -> Vec<u8> {
    let string = |s: &str| [&[s.len() as u8][..], s.as_bytes()].concat();
    let section = |id: u8, body: Vec<u8>| [vec![id, body.len() as u8], body].concat();
    [
        b"\0asm\x01\0\0\0".to_vec(),
        section(1, vec![1, 0x60, 0, 0]),
        section(2, [vec![1], string(module), string(name), vec![0, 0]].concat()),
        section(3, vec![1, 0]),
        section(7, [vec![1], string("_start"), vec![0, 1]].concat()),
        section(10, vec![1, 2, 0, 0x0b]),
    ]
    .concat()
}

#[test]
fn invalid_modules_are_rejected_with_a_receipt() {
    let v = Vouch::new();
    let mut runs = Vec::new();
    let cases: [(&str, Vec<u8>, &str, &[&str]); 6] = [
        (
            "text.wasm",
            b"hello, this is not wasm\n".to_vec(),
            "rejected",
            &["neither a Wasm binary nor valid WAT text: expected `(`"],
        ),
        ("empty.wasm", Vec::new(), "rejected", &["is not WebAssembly", "no \\0asm magic number"]),
        (
            "import.wat",
            b"(module (import \"env\" \"frobnicate\" (func)) (func (export \"_start\")))".to_vec(),
            "rejected",
            &["cannot be linked", "env::frobnicate"],
        ),
        (
            "import.wasm",
            wasm_importing("wasi_snapshot_preview1", "no_such_call"),
            "rejected",
            &["cannot be linked", "wasi_snapshot_preview1::no_such_call"],
        ),
        ("noentry.wasm", b"\0asm\x01\0\0\0".to_vec(), "rejected", &["no entry point"]),
        (
            "start-traps.wat",
            b"(module (func $s unreachable) (start $s) (func (export \"_start\")))".to_vec(),
            "trapped",
            &["unreachable"],
        ),
    ];
    for (name, bytes, kind, needles) in cases {
        v.write(name, &bytes);
        let module = v.add_q(&["-n", name]);
        let j = contained(&v, &[name], kind);
        let text = field(&j["outcome"], "text");
        for n in needles {
            assert!(text.contains(n), "{name}: {text:?} does not mention {n:?}");
        }
        if kind == "rejected" {
            assert!(text.starts_with(&format!("rejected: module {module}")), "{name}: {text}");
            assert_eq!(j["usage"], json!({"fuel_consumed": null, "wall_time_ns": 0, "peak_memory_bytes": 0}));
        }
        if kind == "rejected" {
            assert_eq!((&j["output"], &j["stdout"], &j["stderr"]), (&Value::Null, &Value::Null, &Value::Null));
        } else {
            assert_eq!(j["output"], EMPTY_DIR, "{name}: the empty /outputs of a run that started");
        }
        assert_eq!(receipt_json(&v, field(&j, "receipt"))["spec"]["module"]["/"], module);
        runs.push(j);
    }
    only_results_recorded(&v, &runs.iter().collect::<Vec<_>>());
}

#[test]
fn bad_run_arguments_are_one_line_errors_that_change_nothing() {
    let v = Vouch::new();
    let data = v.add_q(&[patients_csv().to_str().unwrap()]);
    let m = guest("clinical_summary");
    let input = format!("{data}:patients.csv");
    // A valid CID of content that is in no store.
    let unknown = "QmVepwP2zCb78YCScCPax1M1gupS6K4VdNpdzwGjxBsqr1";
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (vec!["--memory".into(), "12XB".into()], vec!["--memory", "\"12XB\"", "unknown unit"]),
        (vec!["--memory".into(), "1B".into()], vec!["limits.memory_bytes", "is 1"]),
        (vec!["--timeout".into(), "10x".into()], vec!["--timeout", "\"10x\"", "unknown unit"]),
        (vec!["--timeout".into(), "0s".into()], vec!["limits.wall_time_ms", "is 0"]),
        (vec!["--max-output".into(), "1.5GiB".into()], vec!["--max-output", "\"1.5GiB\""]),
        (vec!["--fuel".into(), "lots".into()], vec!["--fuel", "'lots'"]),
        (vec!["--env".into(), "NOEQUALS".into()], vec!["--env", "\"NOEQUALS\"", "K=V"]),
        (vec!["--input".into(), format!("{unknown}:x")], vec!["input x", unknown, "not in the store"]),
        (vec!["--input".into(), "notacid:x".into()], vec!["--input notacid:x", "invalid CID", "\"notacid\""]),
        (vec!["--input".into(), format!("{data}:a/b")], vec!["\"a/b\"", "'/'"]),
        (vec!["--input".into(), format!("{data}:..")], vec!["\"..\""]),
        (vec!["--input".into(), input.clone(), "--input".into(), input.clone()], vec!["\"patients.csv\"", "twice"]),
    ];
    let before = v.snapshot();
    for (extra, needles) in &cases {
        let args: Vec<&str> = ["run", m.as_str()].into_iter().chain(extra.iter().map(String::as_str)).collect();
        let e = v.err(&args);
        for n in needles {
            assert!(e.contains(n), "vouch {args:?}: error {e:?} does not mention {n:?}");
        }
        assert_eq!(v.snapshot(), before, "vouch {args:?} changed the store");
    }
    let e = v.err(&["run", "no-such-module.wasm"]);
    assert!(e.contains("\"no-such-module.wasm\" is neither a file nor a CID"), "{e}");
    let e = v.err(&["run", unknown]);
    assert!(e.contains(&format!("module {unknown}")) && e.contains("not in the store"), "{e}");
    assert_eq!(v.snapshot(), before);

    // verify and receipt: errors (exit 2), not verdicts.
    let e = v.err(&["verify", "notacid"]);
    assert!(e.contains("\"notacid\" is neither a file nor a CID"), "{e}");
    assert!(v.err(&["verify", unknown]).contains(unknown));
    assert!(v.err(&["receipt", "show", unknown]).contains(unknown));
    let e = v.err(&["receipt", "export", &data, "-o", "r.car"]);
    assert!(e.contains(&format!("{data} is not a receipt")), "{e}");
    assert!(!v.path("r.car").exists());
    let receipt = clinical_run(&v)["receipt"].as_str().unwrap().to_string();
    let e = v.err(&["verify", &receipt, "--node-key", "abcd"]);
    assert!(e.contains("--node-key \"abcd\"") && e.contains("64 hex digits"), "{e}");
}

#[test]
fn verify_reports_every_claim_and_which_one_failed() {
    let v = Vouch::new();
    let run = clinical_run(&v);
    let receipt = field(&run, "receipt");

    // Strict: evidence `none` is not accepted.
    let (code, out, err) = verify(&v, &[receipt]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err, "Error: receipt not verified: claim evidence failed\n");
    assert!(out.starts_with("FAIL  evidence: expected hardware evidence"), "{out}");
    assert!(!out.contains("verified "), "{out}");

    let (code, out, err) = verify(&v, &[receipt, "--allow-insecure"]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(out, format!("verified {receipt} (evidence: none — NO HARDWARE CLAIM, accepted by --allow-insecure)\n"));

    // --explain: every claim, then the node's own checks.
    let (code, out, _) = verify(&v, &[receipt, "--allow-insecure", "--explain"]);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), vouch_receipt::CLAIMS.len() + 4, "{out}");
    for (line, name) in lines.iter().zip(vouch_receipt::CLAIMS) {
        let status = if name == "node-key" { "skip" } else { "pass" };
        assert!(line.starts_with(&format!("{status}  {name}: ")), "{line}");
    }
    let (output, stdout) = (field(&run, "output"), field(&run, "stdout"));
    let n = vouch_receipt::CLAIMS.len();
    assert_eq!(lines[n - 1], "pass  releases: nothing sealed was read");
    assert_eq!(lines[n], format!("passed  receipt-cid: {receipt}"));
    assert_eq!(lines[n + 1], format!("passed  output-blocks: {output}: 2 blocks present and intact"));
    assert_eq!(lines[n + 2], format!("passed  stdout-blocks: {stdout}: 1 block present and intact"));
    assert!(lines[n + 3].starts_with(&format!("verified {receipt}")));

    // --json: the same, as data.
    let (code, out, _) = verify(&v, &[receipt, "--allow-insecure", "--json"]);
    assert_eq!(code, 0);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["receipt"], receipt);
    assert_eq!(j["verified"], true);
    let claims = j["claims"].as_array().unwrap();
    let names: Vec<&str> = claims.iter().map(|c| field(c, "name")).collect();
    assert_eq!(names, vouch_receipt::CLAIMS);
    for c in claims {
        let keys: BTreeSet<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        if c["name"] == "node-key" {
            assert_eq!(keys, BTreeSet::from(["name", "reason", "status"]));
            assert_eq!(c["status"], "skipped");
        } else {
            assert_eq!(keys, BTreeSet::from(["detail", "name", "status"]), "{c}");
            assert_eq!(c["status"], "passed", "{c}");
        }
    }
    let checks: Vec<(&str, &str)> =
        j["node_checks"].as_array().unwrap().iter().map(|c| (field(c, "name"), field(c, "status"))).collect();
    assert_eq!(checks, [("receipt-cid", "passed"), ("output-blocks", "passed"), ("stdout-blocks", "passed")]);
    let (code, out, _) = verify(&v, &[receipt, "--json"]);
    assert_eq!(code, 1);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["verified"], false);
    let evidence = &j["claims"][9];
    assert_eq!((&evidence["name"], &evidence["status"]), (&json!("evidence"), &json!("failed")));
    assert_eq!(evidence["found"], "technology none: no hardware claim");

    // --node-key: this node's key passes, another key fails naming node-key.
    let id: Value = serde_json::from_str(&v.ok(&["id", "--json"])).unwrap();
    let ours = field(&id, "PublicKey");
    let (code, out, _) = verify(&v, &[receipt, "--allow-insecure", "--node-key", ours, "--explain"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("pass  node-key: {ours} is the expected node key")), "{out}");
    let other = "ab".repeat(32);
    let (code, out, err) = verify(&v, &[receipt, "--allow-insecure", "--node-key", &other]);
    assert_eq!(code, 1);
    assert_eq!(out, format!("FAIL  node-key: expected {other}; found {ours}\n"));
    assert_eq!(err, "Error: receipt not verified: claim node-key failed\n");

    // --at: a receipt from the future of the verification time fails the time claim.
    let (code, out, err) = verify(&v, &[receipt, "--allow-insecure", "--at", "1000"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("FAIL  time: expected issued at or before 1300"), "{out}");
    assert_eq!(err, "Error: receipt not verified: claim time failed\n");

    // receipt show: by CID, human and JSON.
    let shown = v.ok(&["receipt", "show", receipt]);
    let job = field(&run, "job");
    for line in [
        format!("receipt   {receipt}"),
        format!("job       {job}"),
        format!("input     /inputs/patients.csv = {}", v.add_q(&["-n", patients_csv().to_str().unwrap()])),
        "args      [\"clinical_summary.wasm\"]".to_string(),
        "outcome   exited with code 0".to_string(),
        format!("output    {output}"),
        format!("stdout    {stdout}   stderr -"),
        format!("node key  {ours}"),
        "evidence  none".to_string(),
    ] {
        assert!(shown.lines().any(|l| l == line), "receipt show lacks {line:?}:\n{shown}");
    }
    let r = receipt_json(&v, receipt);
    assert_eq!(r["job"]["/"], job);
    assert_eq!(r["output"]["/"], output);
    assert_eq!(r["stdout"]["/"], stdout);
    assert_eq!(r["outcome"], json!({"kind": "exited", "code": 0}));
    assert_eq!(r["evidence"]["technology"], "none");
    assert_eq!(r["spec"], serde_json::from_str::<Value>(&v.ok(&["dag", "get", job])).unwrap());
}

#[test]
fn exported_receipt_verifies_and_replays_in_a_fresh_home_and_tampering_is_caught() {
    let v = Vouch::new();
    let run = clinical_run(&v);
    let receipt = field(&run, "receipt");
    let out = v.ok(&["receipt", "export", receipt, "-o", "r.car"]);
    assert!(out.starts_with(&format!("exported receipt {receipt} ")), "{out}");
    let car = fs::read(v.path("r.car")).unwrap();

    // A fresh home knows nothing; the CAR carries everything, and replay leaves its store empty.
    let fresh = Vouch::new();
    fresh.write("r.car", &car);
    let (code, out, err) = verify(&fresh, &["r.car", "--allow-insecure", "--replay", "--explain"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("passed  receipt-cid: {receipt}\n")), "{out}");
    assert!(
        out.contains("passed  replay: re-ran the job: same outcome (exited with code 0), output, stdout and stderr\n"),
        "{out}"
    );
    assert!(out.ends_with("accepted by --allow-insecure)\n"), "{out}");
    assert_eq!(fresh.snapshot().blocks, 0, "verify --replay stored nothing in the user's store");
    assert_eq!(verify(&fresh, &["r.car"]).0, 1, "strict verification still refuses evidence none");

    // receipt show reads the CAR as it reads the CID.
    assert_eq!(fresh.ok(&["receipt", "show", "r.car"]), v.ok(&["receipt", "show", receipt]));
    assert_eq!(receipt_json(&fresh, "r.car"), receipt_json(&v, receipt));

    // The CAR holds the receipt, the job, the module, the input, the output tree and stdout.
    let (_, sections) = car_sections(&car);
    let output = field(&run, "output");
    let summary = v.ok(&["ls", output]).split_whitespace().next().unwrap().to_string();
    let cids: BTreeSet<&str> = sections.iter().map(|s| s.cid.as_str()).collect();
    let module = v.add_q(&["-n", &guest("clinical_summary")]);
    let data = v.add_q(&["-n", patients_csv().to_str().unwrap()]);
    let want =
        [receipt, field(&run, "job"), module.as_str(), data.as_str(), output, summary.as_str(), field(&run, "stdout")];
    assert_eq!(cids, BTreeSet::from(want), "sections of the exported CAR");

    // One byte flipped in any block: never verified.
    for s in &sections {
        let mut bad = car.clone();
        bad[(s.data + s.end) / 2] ^= 0x01;
        fresh.write("bad.car", &bad);
        let (code, out, err) = verify(&fresh, &["bad.car", "--allow-insecure"]);
        assert_eq!(code, 1, "flipped a byte in block {}: {out}{err}", s.cid);
        assert!(err.starts_with("Error: bad.car: ") && err.contains(&s.cid), "{err}");
    }
    // An output block left out: the receipt itself checks, the node check names the output.
    let s = sections.iter().find(|s| s.cid == summary).unwrap();
    fresh.write("short.car", &[&car[..s.start], &car[s.end..]].concat());
    let (code, out, err) = verify(&fresh, &["short.car", "--allow-insecure"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with("FAILED  output-blocks: ") && l.contains(&summary)), "{out}");
    assert_eq!(err, "Error: receipt not verified: claim output-blocks failed\n");
}

#[test]
fn bare_receipt_file_verifies_and_every_flipped_byte_is_caught() {
    let v = Vouch::new();
    let receipt = field(&clinical_run(&v), "receipt").to_string();
    let bytes = v.ok_bytes(&["block", "get", &receipt]);

    let fresh = Vouch::new();
    fresh.write("r.bin", &bytes);
    let (code, out, err) = verify(&fresh, &["r.bin", "--allow-insecure"]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(out.starts_with(&format!("verified {receipt} ")), "{out}");
    assert_eq!(verify(&fresh, &["r.bin"]).0, 1);
    assert_eq!(fresh.ok(&["receipt", "show", "r.bin"]), v.ok(&["receipt", "show", &receipt]));
    // Without the blocks, replay cannot run: not verified (exit 1), and it says why.
    let (code, out, _) = verify(&fresh, &["r.bin", "--allow-insecure", "--replay"]);
    assert_eq!(code, 1);
    assert!(out.contains("FAILED  replay: could not replay: "), "{out}");

    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x01;
        fresh.write("bad.bin", &bad);
        let (code, out, err) = verify(&fresh, &["bad.bin", "--allow-insecure"]);
        assert_eq!(code, 1, "byte {i} of {} flipped: {out}{err}", bytes.len());
        assert!(out.contains("FAIL  "), "byte {i}: {out}");
    }
}

#[test]
fn demo_runs_and_verifies_the_analysis() {
    let v = Vouch::new();
    let out = v.ok(&["demo"]);
    let receipt = out
        .lines()
        .find_map(|l| l.strip_prefix("6. the node signed a receipt: "))
        .unwrap_or_else(|| panic!("no receipt line:\n{out}"));
    assert_eq!(codec(receipt), DAG_CBOR);
    assert!(out.contains("\n7. verified it offline: 12 claims passed"), "{out}");
    assert!(out.contains("outcome: exited with code 0"), "{out}");
    assert!(out.contains("clinical_summary: 2000 patients, 3 treatments"), "{out}");
    // What it suggests next works, in its home.
    let (code, out, err) = verify(&v, &[receipt, "--allow-insecure", "--replay", "--explain"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("passed  replay: "), "{out}");
    assert_eq!(receipt_json(&v, receipt)["outcome"], json!({"kind": "exited", "code": 0}));
}

#[test]
fn a_verifier_nonce_is_bound_into_the_receipt_and_checked() {
    let v = Vouch::new();
    let nonce = "00112233445566778899aabbccddeeff";
    let j = run_ok(&v, &[&guest("echo_args"), "--nonce", nonce]);
    let receipt = field(&j, "receipt").to_string();
    // The nonce the evidence was produced for, as recorded (DAG-JSON bytes are base64).
    let r = receipt_json(&v, &receipt);
    let recorded = r["evidence"]["nonce"]["/"]["bytes"].as_str().unwrap().to_string();
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD.decode(recorded.trim_end_matches('=')).unwrap();
    assert_eq!(hex::encode(raw), nonce);
    let (code, out, stderr) = verify(&v, &[&receipt, "--allow-insecure", "--nonce", nonce]);
    assert_eq!(code, 0, "{out}{stderr}");
    let (code, out, _) = verify(&v, &[&receipt, "--allow-insecure", "--nonce", "ff"]);
    assert_eq!(code, 1);
    assert!(out.contains("verifier-nonce") && out.contains("expected nonce ff"), "{out}");
    // The same job without a nonce is not answered from the nonce-bound run's memo, and vice versa:
    // a second --nonce run is fresh too.
    let j2 = run_ok(&v, &[&guest("echo_args"), "--nonce", "abcd"]);
    assert_ne!(field(&j2, "receipt"), receipt);
    assert_eq!(j2["cached"], false);
    let (code, _, stderr) = verify(&v, &[field(&j2, "receipt"), "--allow-insecure", "--nonce", "abcd"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(v.err(&["run", &guest("echo_args"), "--nonce", "zz"]).contains("--nonce"));
}

/// The `.cwasm` artifacts under a compiled-module cache directory (one subdirectory per engine
/// fingerprint), with the (inode, modification time) of each.
fn cache_artifacts(dir: &std::path::Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut found = BTreeMap::new();
    for fp in fs::read_dir(dir).unwrap() {
        for f in fs::read_dir(fp.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "cwasm") {
                let meta = fs::metadata(&path).unwrap();
                found.insert(path, (meta.ino(), meta.modified().unwrap()));
            }
        }
    }
    found
}

/// The receipt `cid` decoded from the store.
#[track_caller]
fn stored_receipt(v: &Vouch, cid: &str) -> vouch_receipt::Receipt {
    vouch_receipt::Receipt::decode(&v.ok_bytes(&["block", "get", cid])).expect("a stored receipt decodes")
}

#[test]
fn receipt_records_this_runtime_identity() {
    // What the node's engine is: the same configuration `vouch run` builds (the cache
    // directory is not part of the fingerprint).
    let engine = vouch_sandbox::Sandbox::new(vouch_sandbox::SandboxConfig::default()).unwrap();
    let fingerprint = engine.engine_fingerprint().to_string();
    assert_eq!(fingerprint.len(), 64, "hex SHA-256: {fingerprint}");
    assert!(fingerprint.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{fingerprint}");
    // The wasmtime that was really built: the version in Cargo.lock.
    let lock = fs::read_to_string(repo_root().join("Cargo.lock")).unwrap();
    let locked = lock
        .split("[[package]]")
        .find_map(|p| p.strip_prefix("\nname = \"wasmtime\"\nversion = \""))
        .and_then(|rest| rest.split('"').next())
        .expect("wasmtime in Cargo.lock");
    assert_eq!(vouch_sandbox::WASMTIME_VERSION, locked, "WASMTIME_VERSION is the locked dependency");

    let (a, b) = (Vouch::new(), Vouch::new());
    let mut hashes = BTreeSet::new();
    for (v, arg) in [(&a, "one"), (&a, "two"), (&b, "one")] {
        let j = run_ok(v, &[&guest("echo_args"), "--arg", arg]);
        let r = stored_receipt(v, field(&j, "receipt")).body.runtime;
        assert_eq!(r.vouch, env!("CARGO_PKG_VERSION"));
        assert_eq!(r.wasmtime, locked);
        assert_eq!(hex::encode(r.engine_config_hash), fingerprint, "the engine fingerprint");
        hashes.insert(r.engine_config_hash);
        // The human view shows the same identity.
        let shown = v.ok(&["receipt", "show", field(&j, "receipt")]);
        let line = format!("runtime   vouch {}, wasmtime {locked}, engine {}", r.vouch, &fingerprint[..16]);
        assert!(shown.lines().any(|l| l == line), "receipt show lacks {line:?}:\n{shown}");
    }
    assert_eq!(hashes.len(), 1, "every run and every home records the same engine hash");
}

#[test]
fn compiled_module_is_reused_from_the_disk_cache_across_processes() {
    let v = Vouch::new();
    let cache = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| -> Value {
        let mut a = vec!["run", "--json"];
        a.extend_from_slice(args);
        let out = v.cmd(&a).env("VOUCH_MODULE_CACHE", cache.path()).output().unwrap();
        assert!(out.status.success(), "vouch {a:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let module = guest("echo_args");
    let first = run(&[&module, "--arg", "cache"]);
    assert_eq!(first["module_source"], "compiled", "an empty cache: {first}");
    let artifacts = cache_artifacts(cache.path());
    assert_eq!(artifacts.len(), 1, "one compiled artifact: {artifacts:?}");

    // Another process, the same job rerun: loaded from disk, the artifact neither rewritten
    // nor replaced (same inode, same modification time).
    let second = run(&[&module, "--arg", "cache", "--no-cache"]);
    assert_eq!(second["module_source"], "disk-cache", "{second}");
    assert_eq!(second["cached"], false);
    assert_eq!(second["output"], first["output"]);
    // A different job with the same module: still the one artifact.
    let third = run(&[&module, "--arg", "other"]);
    assert_eq!(third["module_source"], "disk-cache", "{third}");
    assert_eq!(cache_artifacts(cache.path()), artifacts, "the artifact was not rewritten");
    // A memoised answer prepares nothing.
    let memo = run(&[&module, "--arg", "cache"]);
    assert_eq!((&memo["cached"], &memo["module_source"]), (&json!(true), &Value::Null));

    // The artifact itself, offered as a module: refused before wasmtime could map it as code.
    let (artifact, _) = artifacts.into_iter().next().unwrap();
    v.write("artifact.cwasm", &fs::read(&artifact).unwrap());
    let j = contained(&v, &["artifact.cwasm"], "rejected");
    assert!(field(&j["outcome"], "text").contains("is a precompiled wasmtime artifact"), "{j}");
    assert_eq!(j["module_source"], Value::Null, "nothing was compiled or loaded");
}

/// One ChaCha20 block (RFC 7539 quarter rounds, 20 rounds) in the original layout: words 12-13
/// the 64-bit block counter, words 14-15 the 64-bit stream id, both little-endian. Written
/// here from the algorithm, independently of the sandbox's `chacha20` crate.
fn chacha20_block(key: &[u8; 32], counter: u64, stream: u64) -> [u8; 64] {
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    for (i, w) in key.chunks_exact(4).enumerate() {
        s[4 + i] = u32::from_le_bytes(w.try_into().unwrap());
    }
    s[12..].copy_from_slice(&[counter as u32, (counter >> 32) as u32, stream as u32, (stream >> 32) as u32]);
    let mut x = s;
    let qr = |x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize| {
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(16);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(12);
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(8);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(7);
    };
    for _ in 0..10 {
        for (a, b, c, d) in [(0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15)] {
            qr(&mut x, a, b, c, d);
        }
        for (a, b, c, d) in [(0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)] {
            qr(&mut x, a, b, c, d);
        }
    }
    let mut out = [0u8; 64];
    for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&x[i].wrapping_add(s[i]).to_le_bytes());
    }
    out
}

/// docs/job-spec.md, "Deterministic execution": the first `n` bytes `random_get` gives a job,
/// hex. The seed is SHA-256 of a domain and the binary job CID; each random byte is the low
/// byte of the next little-endian word of ChaCha20 stream 0.
fn documented_random_get(job: &str, n: usize) -> String {
    use sha2::Digest as _;
    let cid = cid::Cid::try_from(job).unwrap();
    let seed: [u8; 32] =
        sha2::Sha256::new().chain_update(b"vouch-job-seed-v1\0").chain_update(cid.to_bytes()).finalize().into();
    let keystream = (0..).flat_map(|counter| chacha20_block(&seed, counter, 0));
    hex::encode(keystream.step_by(4).take(n).collect::<Vec<u8>>())
}

/// `hostile_clock` prints `name=value` lines: its clock readings (taken in the order realtime,
/// monotonic, `time()`, with `clock_getres` between the last two), then 16 bytes of
/// `getentropy` and 16 of `random_get`, then how long a 10 ms sleep took on the monotonic clock
/// (from the monotonic reading before the `time()` call to one after the sleep).
#[test]
fn deterministic_randomness_and_clocks_follow_the_documented_derivation() {
    let v = Vouch::new();
    let clock = guest("hostile_clock");
    let values = |j: &Value| -> BTreeMap<String, String> {
        field(j, "stdout_text")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let a = run_ok(&v, &[&clock]);
    let va = values(&a);
    // random_get is one ChaCha20 stream: both reads are its first 32 bytes, in order.
    let expected = documented_random_get(field(&a, "job"), 32);
    assert_eq!(format!("{}{}", va["random"], va["random2"]), expected, "{a}");
    // The virtual clocks: every reading advances 1 µs first; a sleep advances by its length.
    assert_eq!(va["realtime"], "1577836800.000001000", "reading 1");
    assert_eq!(va["monotonic"], "0.000002000", "reading 2");
    assert_eq!(va["monotonic_res_ns"], "1000", "not a reading");
    assert_eq!(va["time"], "1577836800", "reading 3");
    assert_eq!(va["slept_ns"], "10002000 (asked 10 ms)", "reading 3, the sleep, reading 4");

    // The same job in another process (and another home): the same stream.
    let again = run_ok(&Vouch::new(), &[&clock, "--no-cache"]);
    assert_eq!(again["job"], a["job"]);
    assert_eq!(values(&again), va);
    // Another job (another argument, so another CID): another stream, by the same formula.
    let b = run_ok(&v, &[&clock, "--arg", "20"]);
    assert_ne!(b["job"], a["job"]);
    let vb = values(&b);
    assert_ne!(vb["random"], va["random"]);
    assert_eq!(format!("{}{}", vb["random"], vb["random2"]), documented_random_get(field(&b, "job"), 32));
    assert_eq!(vb["slept_ns"], "20002000 (asked 20 ms)");
}

#[test]
fn a_module_already_in_the_store_runs_by_its_cid() {
    let v = Vouch::new();
    let module = v.add_q(&[&guest("echo_args")]);
    let by_cid = run_ok(&v, &[&module, "--arg", "by-cid"]);
    let want = format!("argc=2\nargv[0]={module}.wasm\nargv[1]=by-cid\n");
    assert!(field(&by_cid, "stdout_text").starts_with(&want), "{by_cid}");
    let spec: Value = serde_json::from_str(&v.ok(&["dag", "get", field(&by_cid, "job")])).unwrap();
    assert_eq!(spec["module"]["/"], module.as_str());
    assert_eq!(spec["args"], json!([format!("{module}.wasm"), "by-cid"]));
    // By path: the same module CID (argv[0] is the file name, so it is another job).
    let by_path = run_ok(&v, &[&guest("echo_args"), "--arg", "by-cid"]);
    let path_spec: Value = serde_json::from_str(&v.ok(&["dag", "get", field(&by_path, "job")])).unwrap();
    assert_eq!(path_spec["module"], spec["module"]);
    // A CID the store does not hold is an error naming it, and runs nothing.
    let missing = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    let err = v.err(&["run", missing]);
    assert!(err.contains(missing), "{err}");
}

#[test]
fn a_receipt_signed_by_another_key_fails_the_signature_claim() {
    use ed25519_dalek::Signer as _;
    let v = Vouch::new();
    let cid = field(&run_ok(&v, &[&guest("echo_args")]), "receipt").to_string();
    let mut receipt = stored_receipt(&v, &cid);
    let ours = hex::encode(receipt.body.node_key);
    // Signed by another key over exactly the bytes the node key should have signed; the
    // receipt still names the node's key.
    let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    receipt.signature = other.sign(&receipt.body.signed_bytes()).to_bytes();
    v.write("forged.bin", &receipt.encode());
    let (code, out, err) = verify(&v, &["forged.bin", "--allow-insecure"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err, "Error: receipt not verified: claim signature failed\n");
    assert!(out.starts_with(&format!("FAIL  signature: expected an ed25519 signature by node key {ours}")), "{out}");
    // Even when the verifier expects the node's key.
    let (code, out, _) = verify(&v, &["forged.bin", "--allow-insecure", "--node-key", &ours]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("FAIL  signature: "), "{out}");
    // The untouched receipt verifies.
    assert_eq!(verify(&v, &[&cid, "--allow-insecure"]).0, 0);
}

/// `vouch bench job` keeps working: a smoke run whose every row is printed with figures that
/// parse (no timing is judged: the machine decides those).
#[test]
fn bench_job_prints_every_contender() {
    let v = Vouch::new();
    let out = v.run(&["bench", "job", "--runs", "20", "--rounds", "2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("20 runs each in 2 interleaved rounds"), "{stdout}");
    for row in ["raw wasmtime", "Sandbox::run", "job in process", "job durable"] {
        let line = stdout.lines().find(|l| l.starts_with(row)).unwrap_or_else(|| panic!("no {row} row: {stdout}"));
        let figures: Vec<f64> = line.split_whitespace().filter_map(|w| w.trim_end_matches('x').parse().ok()).collect();
        assert_eq!(figures.len(), 3, "p50, p99, ratio: {line}");
        assert!(figures.iter().all(|f| f.is_finite() && *f > 0.0), "{line}");
    }
    assert!(stdout.lines().any(|l| l.starts_with("throughput: ") && l.contains(" jobs/s")), "{stdout}");
}
