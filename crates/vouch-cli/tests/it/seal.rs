//! `vouch seal`, `vouch open`, `vouch broker keys`: ciphertext in the store, the key only in the
//! broker's keystore, tampering detected, bad policies refused.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use sha2::Digest;

use crate::{Vouch, random_bytes, repo_root};

/// Every file under `dir`, recursively, as bytes.
fn all_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn seal_json(v: &Vouch, args: &[&str]) -> Value {
    let mut a = vec!["seal"];
    a.extend_from_slice(args);
    a.push("--json");
    serde_json::from_str(&v.ok(&a)).unwrap()
}

#[test]
fn sealed_data_is_ciphertext_in_the_store_and_opens_for_its_owner() {
    let v = Vouch::new();
    // Text with a distinctive marker, several chunks long.
    let mut plain = Vec::new();
    for i in 0..20_000 {
        plain.extend_from_slice(format!("patient-{i:05},CONFIDENTIAL-MARKER,{}\n", i % 97).as_bytes());
    }
    let file = v.write("records.csv", &plain);
    let s = seal_json(&v, &[file.to_str().unwrap()]);
    let cid = s["cid"].as_str().unwrap().to_string();
    assert_eq!(s["plaintext_bytes"], plain.len() as u64);
    assert!(s["sealed_bytes"].as_u64().unwrap() > plain.len() as u64);

    // The store holds only ciphertext: no trace of the marker in any file of the store.
    for (p, bytes) in all_files(&v.home().join("store")) {
        assert!(!contains(&bytes, b"CONFIDENTIAL-MARKER"), "plaintext in {}", p.display());
    }
    // The stored object is an ordinary UnixFS file starting with the sealed header.
    let stored = v.ok_bytes(&["cat", &cid]);
    assert_eq!(&stored[..5], b"VSEAL");
    assert_eq!(stored.len() as u64, s["sealed_bytes"].as_u64().unwrap());

    // The key lives only in the broker's keystore, 0600, and is never printed.
    let entries = all_files(&v.home().join("broker").join("keys"));
    assert_eq!(entries.len(), 1);
    let (path, entry) = &entries[0];
    assert_eq!(fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o600);
    let entry: Value = serde_json::from_slice(entry).unwrap();
    let key_hex = entry["key"].as_str().unwrap().to_string();
    assert_eq!(key_hex.len(), 64);
    let listing = v.ok(&["broker", "keys", "--json"]);
    assert!(listing.contains(&cid) && !listing.contains(&key_hex), "{listing}");
    for (p, bytes) in all_files(&v.home().join("store")) {
        assert!(!contains(&bytes, key_hex.as_bytes()), "the key in {}", p.display());
        assert!(!contains(&bytes, &hex::decode(&key_hex).unwrap()), "the raw key in {}", p.display());
    }

    // The owner opens it; the bytes are the original.
    let out = v.ok(&["open", &cid, "-o", "back.csv"]);
    assert!(!out.contains(&key_hex), "{out}");
    assert!(fs::read(v.path("back.csv")).unwrap() == plain, "opened bytes differ");
}

#[test]
fn tampered_objects_are_refused_and_leave_no_plaintext() {
    let v = Vouch::new();
    let file = v.write("data.bin", &random_bytes(5, 300_000));
    let cid = seal_json(&v, &[file.to_str().unwrap(), "--chunk-size", "4KiB"])["cid"].as_str().unwrap().to_string();
    let sealed = v.ok_bytes(&["cat", &cid]);
    let chunk = 4096 + 16;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("flipped byte", {
            let mut b = sealed.clone();
            b[76 + 3 * chunk + 100] ^= 1;
            b
        }),
        ("dropped chunk", [&sealed[..76 + chunk], &sealed[76 + 2 * chunk..]].concat()),
        ("reordered chunks", {
            let mut b = sealed[..76].to_vec();
            b.extend_from_slice(&sealed[76 + chunk..76 + 2 * chunk]);
            b.extend_from_slice(&sealed[76..76 + chunk]);
            b.extend_from_slice(&sealed[76 + 2 * chunk..]);
            b
        }),
        ("truncated", sealed[..sealed.len() - 500].to_vec()),
        ("appended chunk", [&sealed[..], &sealed[76..76 + chunk]].concat()),
    ];
    for (what, bytes) in cases {
        let t = v.write("tampered.bin", &bytes);
        let tcid = v.add_q(&[t.to_str().unwrap()]);
        let e = v.err(&["open", &tcid, "-o", "out.bin"]);
        assert!(e.contains(&tcid), "{what}: {e}");
        assert!(!v.path("out.bin").exists(), "{what}: plaintext written despite the error");
        let leftovers: Vec<_> = fs::read_dir(v.work()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(!leftovers.iter().any(|n| n.to_string_lossy().contains("partial")), "{what}: {leftovers:?}");
    }
    // Untampered, it opens.
    v.ok(&["open", &cid, "-o", "out.bin"]);
    assert!(fs::read(v.path("out.bin")).unwrap() == random_bytes(5, 300_000));
}

#[test]
fn open_without_the_key_or_of_plain_data_says_why() {
    let owner = Vouch::new();
    let file = owner.write("m.wasm", &fs::read(repo_root().join("guests/wasm/echo_args.wasm")).unwrap());
    let cid = seal_json(&owner, &[file.to_str().unwrap()])["cid"].as_str().unwrap().to_string();
    owner.ok(&["car", "export", &cid, "-o", "sealed.car"]);

    // Another node gets the ciphertext, not the key.
    let other = Vouch::new();
    other.ok(&["car", "import", owner.path("sealed.car").to_str().unwrap()]);
    let e = other.err(&["open", &cid, "-o", "m.wasm"]);
    assert!(e.contains("holds no key"), "{e}");
    let plain = other.add_q(&[repo_root().join("README.md").to_str().unwrap()]);
    let e = other.err(&["open", &plain, "-o", "x"]);
    assert!(e.contains("VSEAL"), "{e}");
}

#[test]
fn a_bad_policy_is_refused_with_its_reason_and_nothing_is_stored() {
    let v = Vouch::new();
    let file = v.write("d.csv", b"a,b\n1,2\n");
    let before = v.snapshot();
    let policy = v.write("p.toml", b"[modules]\nallow = []\n[evidence]\nrequire = [\"none\"]\n");
    let e = v.err(&["seal", file.to_str().unwrap(), "--policy", policy.to_str().unwrap()]);
    assert!(e.contains("p.toml"), "{e}");
    assert_eq!(v.snapshot(), before);
    assert!(!v.home().join("broker").join("keys").exists() || all_files(&v.home().join("broker")).is_empty());

    // A good one is accepted and recorded.
    let good = v.write(
        "good.toml",
        format!(
            "[modules]\nallow = [\"bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy\"]\n\
             [evidence]\nrequire = [\"none\"]\nallow_insecure = true\n\
             [results]\nrecipients = [\"{}\"]\nmax_output_bytes = 1048576\n",
            "11".repeat(32)
        )
        .as_bytes(),
    );
    let s = seal_json(&v, &[file.to_str().unwrap(), "--policy", good.to_str().unwrap()]);
    assert_eq!(s["policy"], true);
}

fn run_json(v: &Vouch, args: &[&str]) -> Value {
    let mut a = vec!["run"];
    a.extend_from_slice(args);
    a.push("--json");
    serde_json::from_str(&v.ok(&a)).unwrap()
}

#[test]
fn results_sealed_to_a_recipient_leave_the_runtime_as_ciphertext_and_open_with_its_key() {
    let csv = repo_root().join("examples/clinical/patients.csv");
    let module = repo_root().join("guests/wasm/clinical_summary.wasm");
    let (csv, module) = (csv.to_str().unwrap(), module.to_str().unwrap());
    // The same job in the clear, on another node: what the recipient must get back.
    let clear = Vouch::new();
    let d = clear.add_q(&[csv]);
    let input = format!("{d}:patients.csv");
    let plain = run_json(&clear, &[module, "--input", &input]);
    let plain_output = plain["output"].as_str().unwrap().to_string();
    let plain_stdout = plain["stdout_text"].as_str().unwrap().to_string();
    assert!(plain_stdout.contains("2000 patients"), "{plain_stdout}");

    let node = Vouch::new();
    node.add_q(&[csv]);
    let keygen = node.ok(&["keygen", "-o", "lab.key"]);
    let public = keygen.lines().find_map(|l| l.strip_prefix("public   ")).unwrap().trim().to_string();
    assert_eq!(fs::metadata(node.path("lab.key")).unwrap().permissions().mode() & 0o777, 0o600);
    let secret = fs::read_to_string(node.path("lab.key")).unwrap();
    assert!(!keygen.contains(secret.trim()), "keygen printed the secret");

    let sealed = run_json(&node, &[module, "--input", &input, "--recipient", &public]);
    assert_eq!(sealed["stdout_text"], "", "the node showed a sealed job's stdout");
    let output = sealed["output"].as_str().unwrap().to_string();
    let stdout = sealed["stdout"].as_str().unwrap().to_string();
    assert_ne!(output, plain_output);
    assert_eq!(&node.ok_bytes(&["cat", &output])[..5], b"VSENV");
    // Neither the summary nor its stdout is anywhere in the node's store.
    let summary = clear.ok_bytes(&["cat", &format!("{plain_output}/summary.csv")]);
    for (p, bytes) in all_files(&node.home().join("store")) {
        assert!(!contains(&bytes, &summary[..64]), "plaintext output in {}", p.display());
        assert!(!contains(&bytes, plain_stdout.lines().next().unwrap().as_bytes()), "stdout in {}", p.display());
    }
    // The receipt names the recipient and verifies.
    let receipt = sealed["receipt"].as_str().unwrap();
    let shown = node.ok(&["receipt", "show", receipt]);
    assert!(shown.contains(&format!("recipient {public}")), "{shown}");
    node.ok(&["receipt", "export", receipt, "-o", "r.car"]);
    node.ok(&["verify", node.path("r.car").to_str().unwrap(), "--allow-insecure"]);

    // The recipient opens the outputs: the very directory the clear run produced.
    let opened = node.ok(&["open", &output, "--key", "lab.key", "-o", "results"]);
    assert!(opened.contains(&plain_output), "{opened}");
    assert!(fs::read(node.path("results/summary.csv")).unwrap() == summary);
    node.ok(&["open", &stdout, "--key", "lab.key", "-o", "stdout.txt"]);
    assert_eq!(fs::read_to_string(node.path("stdout.txt")).unwrap(), plain_stdout);

    // Without the key, or with another, nothing opens and nothing is written.
    let e = node.err(&["open", &output, "-o", "x"]);
    assert!(e.contains("--key"), "{e}");
    node.ok(&["keygen", "-o", "other.key"]);
    let e = node.err(&["open", &output, "--key", "other.key", "-o", "x"]);
    assert!(e.contains("not to this key"), "{e}");
    assert!(!node.path("x").exists());
    let e = node.err(&["run", module, "--input", &input, "--recipient", "abcd"]);
    assert!(e.contains("--recipient"), "{e}");
}

#[test]
fn the_owner_computes_on_its_sealed_data_only_as_its_policy_allows() {
    let csv = repo_root().join("examples/clinical/patients.csv");
    let module = repo_root().join("guests/wasm/clinical_summary.wasm");
    let (csv, module) = (csv.to_str().unwrap(), module.to_str().unwrap());
    let clear = Vouch::new();
    let d = clear.add_q(&[csv]);
    let plain = run_json(&clear, &[module, "--input", &format!("{d}:patients.csv")]);
    let summary = clear.ok_bytes(&["cat", &format!("{}/summary.csv", plain["output"].as_str().unwrap())]);

    let v = Vouch::new();
    let module_cid = v.add_q(&[module]);
    let lab = v.keygen("lab.key");
    let policy = v.write(
        "hospital.toml",
        format!(
            "[modules]\nallow = [\"{module_cid}\"]\n\
             [evidence]\nrequire = [\"none\"]\nallow_insecure = true\n\
             [capabilities]\nenv = \"none\"\n\
             [results]\nrecipients = [\"{lab}\"]\nmax_output_bytes = 8388608\n"
        )
        .as_bytes(),
    );
    let sealed = seal_json(&v, &[csv, "--policy", policy.to_str().unwrap()])["cid"].as_str().unwrap().to_string();
    let input = format!("{sealed}:patients.csv");

    // Allowed: the key is released into the runtime, the result sealed to the lab.
    let run = run_json(&v, &[&module_cid, "--input", &input, "--recipient", &lab, "--max-output", "1MiB"]);
    assert_eq!(run["outcome"]["kind"], "exited", "{run}");
    // The receipt names the sealed input and the policy (the SHA-256 of the file's text).
    let shown = v.ok(&["receipt", "show", run["receipt"].as_str().unwrap()]);
    let digest = hex::encode(sha2::Sha256::digest(fs::read(&policy).unwrap()));
    assert!(
        shown.contains(&format!("released  {sealed} (sealed object ")) && shown.contains(&format!("sha256:{digest}")),
        "{shown}"
    );
    // The hospital checks the receipt against its own policy file; another policy fails.
    let receipt = run["receipt"].as_str().unwrap();
    let out = v.ok(&["verify", receipt, "--allow-insecure", "--access-policy", policy.to_str().unwrap(), "--explain"]);
    assert!(out.contains("pass  releases: 1 sealed part released under sha256:"), "{out}");
    let stricter =
        v.write("stricter.toml", fs::read_to_string(&policy).unwrap().replace("8388608", "1048576").as_bytes());
    let failed = v.run(&["verify", receipt, "--allow-insecure", "--access-policy", stricter.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(failed.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL  releases: expected releases under access policy sha256:"), "{out}");
    v.ok(&["open", run["output"].as_str().unwrap(), "--key", "lab.key", "-o", "results"]);
    assert!(fs::read(v.path("results/summary.csv")).unwrap() == summary, "the sealed run's result differs");
    // The plaintext records never reached the store.
    let records = fs::read(csv).unwrap();
    for (p, bytes) in all_files(&v.home().join("store")) {
        assert!(!contains(&bytes, &records[..200]), "plaintext records in {}", p.display());
    }

    // Refused, each naming its rule; nothing runs.
    let other = v.add_q(&[repo_root().join("guests/wasm/echo_args.wasm").to_str().unwrap()]);
    let other_key = v.keygen("other.key");
    for (args, rule) in [
        (vec![other.as_str(), "--input", &input, "--recipient", &lab, "--max-output", "1MiB"], "modules.allow"),
        (
            vec![&module_cid, "--input", &input, "--recipient", &lab, "--max-output", "1MiB", "--env", "K=V"],
            "capabilities.env",
        ),
        (vec![&module_cid, "--input", &input, "--recipient", &other_key, "--max-output", "1MiB"], "results.recipients"),
        (vec![&module_cid, "--input", &input, "--max-output", "1MiB"], "results.recipients"),
        (vec![&module_cid, "--input", &input, "--recipient", &lab], "results.max_output_bytes"),
    ] {
        let mut a = vec!["run"];
        a.extend_from_slice(&args);
        let e = v.err(&a);
        assert!(e.contains("refused") && e.contains(rule), "{args:?}: {e}");
    }
    // A runtime without RAM-backed scratch space is refused before any broker hears of the
    // job: no key leaves, and the audit log records no decision for it.
    let out = v
        .cmd(&["run", &module_cid, "--input", &input, "--recipient", &lab, "--max-output", "1MiB", "--timeout", "57s"])
        .env_remove("VOUCH_PRIVATE_TMPDIR")
        .env_remove("VOUCH_ALLOW_DISK_PLAINTEXT")
        .env("VOUCH_SHM_DIR", v.path("no-shm"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && e.contains("no RAM-backed (tmpfs) directory"), "{e}");
    // Every decision is in the audit log, chained.
    let log = v.ok(&["broker", "log"]);
    assert_eq!(log.matches(" granted ").count(), 1, "{log}");
    assert_eq!(log.matches(" refused ").count(), 5, "{log}");
    assert!(log.contains("6 decisions, hash chain intact"), "{log}");
    let key_hex = all_files(&v.home().join("broker/keys"))
        .iter()
        .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap()["key"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    for k in key_hex {
        assert!(!log.contains(&k), "the key is in the audit log");
        assert!(!fs::read_to_string(v.home().join("broker/audit.log")).unwrap().contains(&k));
    }
}

#[test]
fn the_confidential_demo_plays_the_three_party_story() {
    let v = Vouch::new();
    let out = v.ok(&["demo", "--confidential"]);
    for want in [
        "both brokers released their keys",
        "exited with code 0",
        "receipt verified",
        "no plaintext of the records, the module or the result",
        "hospital broker audit log #1: granted",
        "lab broker audit log #1: granted",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // The lab's opened result is the summary the same module computes in the clear.
    let clear = Vouch::new();
    let csv = repo_root().join("examples/clinical/patients.csv");
    let d = clear.add_q(&[csv.to_str().unwrap()]);
    let module = repo_root().join("guests/wasm/clinical_summary.wasm");
    let plain = run_json(&clear, &[module.to_str().unwrap(), "--input", &format!("{d}:patients.csv")]);
    let summary = clear.ok(&["cat", &format!("{}/summary.csv", plain["output"].as_str().unwrap())]);
    for line in summary.lines() {
        assert!(out.contains(&format!("   | {line}\n")), "{line:?} missing from:\n{out}");
    }
}

#[test]
fn a_sealed_job_keeps_its_scratch_space_off_the_disk() {
    let v = Vouch::new();
    let lab = v.keygen("lab.key");
    let module = repo_root().join("guests/wasm/echo_args.wasm");
    let args = ["run", module.to_str().unwrap(), "--recipient", &lab, "--json"];
    // Whatever the caller's environment says, each case below sets what it tests.
    let cmd = |args: &[&str]| {
        let mut c = v.cmd(args);
        c.env_remove("VOUCH_PRIVATE_TMPDIR").env_remove("VOUCH_SHM_DIR").env_remove("VOUCH_ALLOW_DISK_PLAINTEXT");
        c
    };
    // A disk directory standing in for the system temporary directory: it must stay empty.
    let disk_tmp = v.path("tmp");
    fs::create_dir(&disk_tmp).unwrap();
    let refused = |out: std::process::Output, what: &str| {
        assert_eq!(out.status.code(), Some(2), "{what}: {}", String::from_utf8_lossy(&out.stdout));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains("VOUCH_PRIVATE_TMPDIR")
                && err.contains("tmpfs")
                && err.contains("refused")
                && err.contains("VOUCH_ALLOW_DISK_PLAINTEXT=1"),
            "{what}: {err}"
        );
        assert_eq!(fs::read_dir(&disk_tmp).unwrap().count(), 0, "{what}: scratch space created on disk");
        err
    };
    // A private scratch directory that is a disk directory is refused, naming it.
    let out = cmd(&args).env("VOUCH_PRIVATE_TMPDIR", v.work()).env("TMPDIR", &disk_tmp).output().unwrap();
    let err = refused(out, "disk VOUCH_PRIVATE_TMPDIR");
    assert!(err.contains(v.work().to_str().unwrap()), "{err}");
    // No VOUCH_PRIVATE_TMPDIR and no tmpfs where /dev/shm would be: refused (fail closed), not
    // a fallback to the (disk) temporary directory.
    let out = cmd(&args).env("VOUCH_SHM_DIR", v.path("no-shm")).env("TMPDIR", &disk_tmp).output().unwrap();
    let err = refused(out, "no tmpfs");
    assert!(err.contains("no-shm"), "{err}");
    let out = cmd(&args).env("VOUCH_SHM_DIR", &disk_tmp).env("TMPDIR", &disk_tmp).output().unwrap();
    refused(out, "a disk directory where /dev/shm would be");
    if std::fs::metadata("/dev/shm").is_ok() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let out = v.cmd(&args).env("VOUCH_PRIVATE_TMPDIR", shm.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // It ran with its scratch space there, and left nothing behind.
        assert_eq!(std::fs::read_dir(shm.path()).unwrap().count(), 0);
    }
    // Only the loud opt-in lets it run on disk, with a warning (another job: --timeout).
    let out = cmd(&[&args[..], &["--timeout", "59s"]].concat())
        .env("VOUCH_SHM_DIR", v.path("no-shm"))
        .env("TMPDIR", &disk_tmp)
        .env("VOUCH_ALLOW_DISK_PLAINTEXT", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("WARNING: VOUCH_ALLOW_DISK_PLAINTEXT=1") && err.contains(disk_tmp.to_str().unwrap()), "{err}");
    assert_eq!(fs::read_dir(&disk_tmp).unwrap().count(), 0, "the opted-in job left its scratch space behind");
}

#[test]
fn modules_endorsed_by_an_approved_signer_get_the_key() {
    let v = Vouch::new();
    let module = repo_root().join("guests/wasm/clinical_summary.wasm");
    let module_cid = v.add_q(&[module.to_str().unwrap()]);
    let other_cid = v.add_q(&[repo_root().join("guests/wasm/echo_args.wasm").to_str().unwrap()]);
    // The algorithm owner endorses its module; its key is what the data owner's policy names.
    let out = v.ok(&["broker", "endorse", &module_cid, "-o", "endorsement.cbor"]);
    let signer = out.lines().find_map(|l| l.strip_prefix("signer   ")).unwrap().trim().to_string();
    v.ok(&["broker", "endorse", &other_cid, "-o", "other.cbor"]);
    let lab = v.keygen("lab.key");
    let policy = v.write(
        "p.toml",
        format!(
            "[modules]\nsigners = [\"{signer}\"]\n[evidence]\nrequire = [\"none\"]\nallow_insecure = true\n\
             [results]\nrecipients = [\"{lab}\"]\nmax_output_bytes = 8388608\n"
        )
        .as_bytes(),
    );
    let csv = repo_root().join("examples/clinical/patients.csv");
    let sealed = seal_json(&v, &[csv.to_str().unwrap(), "--policy", policy.to_str().unwrap()])["cid"]
        .as_str()
        .unwrap()
        .to_string();
    let input = format!("{sealed}:patients.csv");
    let base = ["run", &module_cid, "--input", &input, "--recipient", &lab, "--max-output", "1MiB"];
    // Without an endorsement, or with one for another module: refused by the module rule.
    let e = v.err(&base);
    assert!(e.contains("modules.allow"), "{e}");
    let e = v.err(&[&base[..], &["--endorsement", "other.cbor", "--timeout", "59s"]].concat());
    assert!(e.contains("modules.allow"), "{e}");
    // With the module's own endorsement: released.
    v.ok(&[&base[..], &["--endorsement", "endorsement.cbor", "--timeout", "58s"]].concat());
    // A file that is not an endorsement is named.
    let e = v.err(&[&base[..], &["--endorsement", "lab.key", "--timeout", "57s"]].concat());
    assert!(e.contains("lab.key") && e.contains("not an endorsement"), "{e}");
}

/// Every file under `dir`, recursively, as (path, bytes); nothing when `dir` does not exist.
fn files_if_any(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    if dir.exists() { all_files(dir) } else { Vec::new() }
}

#[test]
fn a_sealed_module_is_compiled_without_the_disk_cache() {
    let v = Vouch::new();
    let cache = v.path("module-cache");
    let wasm_path = repo_root().join("guests/wasm/clinical_summary.wasm");
    let lab = v.keygen("lab.key");
    // The algorithm owner seals its module, then sets a policy naming the sealed module.
    let sealed = seal_json(&v, &[wasm_path.to_str().unwrap()])["cid"].as_str().unwrap().to_string();
    let policy = v.write(
        "lab.toml",
        format!(
            "[modules]\nallow = [\"{sealed}\"]\n[evidence]\nrequire = [\"none\"]\nallow_insecure = true\n\
             [results]\nrecipients = [\"{lab}\"]\nmax_output_bytes = 8388608\n"
        )
        .as_bytes(),
    );
    v.ok(&["broker", "policy", &sealed, "--policy", policy.to_str().unwrap()]);
    let data = v.add_q(&[repo_root().join("examples/clinical/patients.csv").to_str().unwrap()]);
    let input = format!("{data}:patients.csv");
    let run = |module: &str| -> Value {
        let args = ["run", module, "--input", &input, "--recipient", &lab, "--max-output", "1MiB", "--json"];
        let out = v.cmd(&args).env("VOUCH_MODULE_CACHE", &cache).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let r = run(&sealed);
    assert_eq!(r["outcome"]["kind"], "exited", "{r}");
    let shown = v.ok(&["receipt", "show", r["receipt"].as_str().unwrap()]);
    assert!(shown.contains(&format!("released  {sealed} (sealed object ")), "the module key was released: {shown}");
    // No compiled artifact of the sealed module (nor anything holding its plaintext), under
    // either cache location: both are empty.
    let default_cache = v.home().join("cache").join("modules");
    for dir in [&cache, &default_cache] {
        let files = files_if_any(dir);
        assert!(
            files.is_empty(),
            "the sealed module left {:?} in the cache",
            files.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
    }
    // The same module in the clear is cached (the cache works here): one `.cwasm` named for it.
    let plain = v.add_q(&["-n", wasm_path.to_str().unwrap()]);
    let r = run(wasm_path.to_str().unwrap());
    assert_eq!(r["outcome"]["kind"], "exited", "{r}");
    let name = format!("{}.cwasm", hex::encode(sha2::Sha256::digest(plain.as_bytes())));
    let files = files_if_any(&cache);
    assert!(
        files.iter().any(|(p, _)| p.file_name().unwrap() == name.as_str()),
        "no {name} in {:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    // …and no cache file is named for the sealed module's CID.
    let sealed_name = format!("{}.cwasm", hex::encode(sha2::Sha256::digest(sealed.as_bytes())));
    assert!(!files.iter().any(|(p, _)| p.file_name().unwrap() == sealed_name.as_str()));
}

/// The data keys this home's broker keeps (the secret of each keystore entry).
fn broker_keys(home: &std::path::Path) -> Vec<Vec<u8>> {
    files_if_any(&home.join("broker").join("keys"))
        .iter()
        .map(|(_, b)| hex::decode(serde_json::from_slice::<Value>(b).unwrap()["key"].as_str().unwrap()).unwrap())
        .collect()
}

#[test]
fn sealing_the_same_file_twice_uses_a_fresh_key_and_gives_another_object() {
    let v = Vouch::new();
    let file = v.write("records.csv", &random_bytes(9, 200_000));
    let a = seal_json(&v, &[file.to_str().unwrap()]);
    let b = seal_json(&v, &[file.to_str().unwrap()]);
    assert_ne!(a["key_id"], b["key_id"], "{a} {b}");
    assert_ne!(a["object"], b["object"], "{a} {b}");
    assert_ne!(a["cid"], b["cid"], "{a} {b}");
    let keys = broker_keys(&v.home());
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1], "one data key for two objects");
    // Same length, but no 4 KiB stretch of one ciphertext equals the other's at that offset.
    let (ca, cb) = (v.ok_bytes(&["cat", a["cid"].as_str().unwrap()]), v.ok_bytes(&["cat", b["cid"].as_str().unwrap()]));
    assert_eq!(ca.len(), cb.len());
    assert!(ca.chunks(4096).zip(cb.chunks(4096)).all(|(x, y)| x != y), "identical ciphertext blocks");
}

/// A `vouch node` process whose stdout and stderr go to files (`node.out`, `node.err` in its
/// work directory), stopped with SIGTERM when dropped.
struct LoggedNode {
    v: Vouch,
    child: std::process::Child,
    /// Its first swarm multiaddr, with `/p2p/PEER`.
    addr: String,
}

impl LoggedNode {
    fn start(v: Vouch) -> LoggedNode {
        let config = serde_json::json!({ "swarm": ["/ip4/127.0.0.1/tcp/0"], "api": "127.0.0.1:0", "bootstrap": [] });
        let cfg = v.write("node.json", config.to_string().as_bytes());
        let (out, err) = (fs::File::create(v.path("node.out")).unwrap(), fs::File::create(v.path("node.err")).unwrap());
        let child = v.cmd(&["node", "--config", cfg.to_str().unwrap()]).stdout(out).stderr(err).spawn().unwrap();
        let mut node = LoggedNode { v, child, addr: String::new() };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let text = fs::read_to_string(node.v.path("node.out")).unwrap();
            if text.lines().any(|l| l == "node ready") {
                node.addr = text.lines().find_map(|l| l.strip_prefix("swarm    ")).unwrap().to_string();
                return node;
            }
            let exited = node.child.try_wait().unwrap();
            assert!(exited.is_none(), "vouch node exited: {}", fs::read_to_string(node.v.path("node.err")).unwrap());
            assert!(std::time::Instant::now() < deadline, "vouch node did not report ready within 60 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Stop it (SIGTERM, then SIGKILL after 10 s) and wait for it.
    fn stop(&mut self) {
        // SAFETY: a signal to our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LoggedNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The forms a 32-byte key could be written in: raw, hex (both cases), base64 (standard and
/// URL-safe, padded or not).
fn key_forms(key: &[u8]) -> Vec<(String, Vec<u8>)> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut forms = vec![("raw".to_string(), key.to_vec())];
    forms.push(("hex".into(), hex::encode(key).into_bytes()));
    forms.push(("HEX".into(), hex::encode_upper(key).into_bytes()));
    for (name, e) in [("base64", STANDARD), ("base64url", URL_SAFE)] {
        forms.push((name.into(), e.encode(key).into_bytes()));
    }
    for (name, e) in [("base64-nopad", STANDARD_NO_PAD), ("base64url-nopad", URL_SAFE_NO_PAD)] {
        forms.push((name.into(), e.encode(key).into_bytes()));
    }
    forms
}

#[test]
fn released_data_keys_appear_nowhere_on_the_compute_node_or_in_any_output() {
    let csv = repo_root().join("examples/clinical/patients.csv");
    let wasm = repo_root().join("guests/wasm/clinical_summary.wasm");
    // The lab seals its module and admits it for results to itself; the hospital seals its
    // records for that module. Each exports its ciphertext for the compute node.
    let (hospital, lab, compute) = (Vouch::new(), Vouch::new(), Vouch::new());
    let lab_pub = lab.keygen("lab.key");
    let module = seal_json(&lab, &[wasm.to_str().unwrap()])["cid"].as_str().unwrap().to_string();
    let policy = format!(
        "[modules]\nallow = [\"{module}\"]\n[evidence]\nrequire = [\"none\"]\nallow_insecure = true\n\
         [results]\nrecipients = [\"{lab_pub}\"]\nmax_output_bytes = 8388608\n"
    );
    let lab_policy = lab.write("lab.toml", policy.as_bytes());
    lab.ok(&["broker", "policy", &module, "--policy", lab_policy.to_str().unwrap()]);
    let hospital_policy = hospital.write("hospital.toml", policy.as_bytes());
    let records = seal_json(&hospital, &[csv.to_str().unwrap(), "--policy", hospital_policy.to_str().unwrap()])["cid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut outputs = Vec::new(); // (what, bytes) of every process's stdout and stderr
    for (owner, cid) in [(&hospital, &records), (&lab, &module)] {
        let out = owner.run(&["car", "export", cid, "-o", "sealed.car"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        outputs.push(("car export".to_string(), [out.stdout, out.stderr].concat()));
        let out = compute.run(&["car", "import", owner.path("sealed.car").to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        outputs.push(("car import".to_string(), [out.stdout, out.stderr].concat()));
    }
    let keys: Vec<Vec<u8>> = [broker_keys(&hospital.home()), broker_keys(&lab.home())].concat();
    assert_eq!(keys.len(), 2);

    // Both owners' brokers run; the compute node asks both and runs the job.
    let mut brokers = [LoggedNode::start(hospital), LoggedNode::start(lab)];
    let input = format!("{records}:patients.csv");
    let (h, l) = (brokers[0].addr.clone(), brokers[1].addr.clone());
    let args = ["run", &module, "--input", &input, "--recipient", &lab_pub, "--max-output", "1MiB", "--json"];
    let out = compute.run(&[&args[..], &["--broker", &h, "--broker", &l]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["outcome"]["kind"], "exited", "{run}");
    outputs.push(("run".to_string(), [out.stdout, out.stderr].concat()));
    let receipt = run["receipt"].as_str().unwrap();
    // Both keys were released into the runtime.
    let shown = compute.ok(&["receipt", "show", receipt]);
    for cid in [&module, &records] {
        assert!(shown.contains(&format!("released  {cid} (sealed object ")), "{cid} not released: {shown}");
    }
    outputs.push(("receipt show".to_string(), shown.into_bytes()));
    for args in [
        vec!["receipt", "export", receipt, "-o", "receipt.car"],
        vec!["verify", "receipt.car", "--allow-insecure", "--explain"],
        vec!["broker", "log"],
        vec!["broker", "keys", "--json"],
    ] {
        let out = compute.run(&args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        outputs.push((args.join(" "), [out.stdout, out.stderr].concat()));
    }
    for b in &brokers {
        let out = b.v.run(&["broker", "log", "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).matches("\"granted\"").count(), 1);
        outputs.push(("owner broker log".to_string(), [out.stdout, out.stderr].concat()));
    }
    for b in &mut brokers {
        b.stop();
        outputs.push(("owner node stdout".into(), fs::read(b.v.path("node.out")).unwrap()));
        outputs.push(("owner node stderr".into(), fs::read(b.v.path("node.err")).unwrap()));
    }

    // Where a key could have gone: everything under the compute node's home (store packs,
    // index, receipts, logs) and its work directory (the receipt CAR), the owners' homes but
    // for their keystores (audit logs, stores), and every output above.
    let mut places = all_files(&compute.home());
    places.extend(all_files(&compute.work()));
    assert!(places.iter().any(|(p, _)| p.ends_with("receipt.car")));
    let mut keystores = Vec::new();
    for b in &brokers {
        let keystore = b.v.home().join("broker").join("keys");
        let (kept, rest): (Vec<_>, Vec<_>) =
            all_files(&b.v.home()).into_iter().partition(|(p, _)| p.starts_with(&keystore));
        keystores.extend(kept);
        places.extend(rest);
        places.extend(all_files(&b.v.work()));
    }
    // The search finds a key where one is: in its owner's keystore, as hex.
    for key in &keys {
        assert!(keystores.iter().any(|(_, bytes)| contains(bytes, hex::encode(key).as_bytes())));
    }
    places.extend(outputs.into_iter().map(|(what, bytes)| (std::path::PathBuf::from(what), bytes)));
    assert!(places.len() > 10, "{}", places.len());
    for key in &keys {
        for (form, needle) in key_forms(key) {
            for (p, bytes) in &places {
                assert!(!contains(bytes, &needle), "a data key ({form}) in {}", p.display());
            }
        }
    }
}

#[test]
fn sealing_a_large_file_streams_in_bounded_memory() {
    const SIZE: u64 = 512 << 20;
    const MAX_RSS: u64 = 128 << 20;
    let v = Vouch::new();
    let big = v.path("big.bin");
    // Sparse: zeros the file system does not store, read fast.
    fs::File::create(&big).unwrap().set_len(SIZE).unwrap();
    let (out, err) = (fs::File::create(v.path("seal.out")).unwrap(), fs::File::create(v.path("seal.err")).unwrap());
    // Reaped with wait4 below, for this child's own resource usage (its peak RSS), polled so
    // the wait is bounded.
    #[allow(clippy::zombie_processes)]
    let child = v.cmd(&["seal", big.to_str().unwrap(), "--json"]).stdout(out).stderr(err).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    loop {
        // SAFETY: our own child's pid; `status` and `usage` are writable.
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(rc >= 0, "wait4: {}", std::io::Error::last_os_error());
        if rc == pid {
            break;
        }
        if std::time::Instant::now() > deadline {
            // SAFETY: a signal to our own child's pid, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("vouch seal of {SIZE} bytes did not finish within 600 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let err = fs::read_to_string(v.path("seal.err")).unwrap();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "status {status}: {err}");
    let s: Value = serde_json::from_slice(&fs::read(v.path("seal.out")).unwrap()).unwrap();
    assert_eq!(s["plaintext_bytes"], SIZE);
    // ru_maxrss is in KiB on Linux.
    let peak = usage.ru_maxrss as u64 * 1024;
    eprintln!("vouch seal of {} MiB: peak RSS {} MiB", SIZE >> 20, peak >> 20);
    assert!(peak < MAX_RSS, "peak RSS {} MiB sealing {} MiB", peak >> 20, SIZE >> 20);
}
