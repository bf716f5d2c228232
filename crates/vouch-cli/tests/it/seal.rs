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
    // A private scratch directory that is a disk directory is refused, naming it.
    let out = v.cmd(&args).env("VOUCH_PRIVATE_TMPDIR", v.work()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("VOUCH_PRIVATE_TMPDIR") && err.contains("tmpfs"), "{err}");
    if std::fs::metadata("/dev/shm").is_ok() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let out = v.cmd(&args).env("VOUCH_PRIVATE_TMPDIR", shm.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // It ran with its scratch space there, and left nothing behind.
        assert_eq!(std::fs::read_dir(shm.path()).unwrap().count(), 0);
    }
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
