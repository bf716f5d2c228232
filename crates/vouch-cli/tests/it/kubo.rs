//! Live interop with real Kubo (v0.22, from the PyPI package kubo-python), driven by
//! scripts/kubo/kubo.py in the venv at target/venv.
//!
//! Kubo's `AddFile` is `ipfs add [-r] --hidden` with every other option at its default: hidden
//! files are included and symlinks inside directories are stored as UnixFS symlinks (a
//! top-level symlink would be followed, so none is used here). The vouch equivalent is
//! `vouch add -n -Q -r -H`.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};

use crate::network::Daemon;
use crate::{Vouch, assert_same_tree, random_bytes, repo_root, skip_or_fail, write_random_file};

/// `scripts/kubo/kubo.py serve|fetch` as child processes (shared with vouch-net's tests).
#[path = "../../../vouch-net/tests/it/kubo_proc.rs"]
mod kubo_proc;

/// The venv's python and the script, if both are there.
fn kubo() -> Option<(PathBuf, PathBuf)> {
    let root = repo_root();
    let (python, script) = (root.join("target/venv/bin/python"), root.join("scripts/kubo/kubo.py"));
    if python.exists() && script.exists() {
        return Some((python, script));
    }
    skip_or_fail(&format!(
        "{} or {} is missing (set up with: python3 -m venv target/venv && target/venv/bin/pip install kubo-python==0.1.5)",
        python.display(),
        script.display()
    ));
    None
}

fn kubo_cid(kubo: &(PathBuf, PathBuf), path: &Path) -> String {
    let log = tempfile::tempdir().unwrap();
    let out = Command::new(&kubo.0)
        .arg(&kubo.1)
        .args(["add", "--only-hash"])
        .arg(path)
        .env("KUBO_PY_LOG_DIR", log.path())
        .output()
        .expect("running kubo.py");
    assert!(out.status.success(), "kubo.py add {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let cid = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(cid.starts_with("Qm"), "kubo.py printed {cid:?}");
    cid
}

/// A random tree: nested directories, hidden files and directories, symlinks, empty entries.
fn random_tree(root: &Path, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut dirs = vec![root.to_path_buf()];
    std::fs::create_dir_all(root).unwrap();
    for i in 0..40 {
        let parent = dirs[rng.gen_range(0..dirs.len())].clone();
        let hidden = if rng.gen_bool(0.2) { "." } else { "" };
        let name = format!("{hidden}n{i}-{:x}", rng.r#gen::<u32>());
        let p = parent.join(&name);
        match rng.gen_range(0..10) {
            0..=1 => {
                std::fs::create_dir(&p).unwrap();
                dirs.push(p);
            }
            2 => symlink(format!("../target-{i}"), &p).unwrap(),
            3 => std::fs::write(&p, b"").unwrap(),
            4 => std::fs::write(&p, random_bytes(seed + i, rng.gen_range(262_144..700_000))).unwrap(),
            _ => std::fs::write(&p, random_bytes(seed + i, rng.gen_range(1..5000))).unwrap(),
        }
    }
    std::fs::create_dir(root.join("empty-dir")).unwrap();
    std::fs::create_dir_all(root.join(".hidden-dir/inner")).unwrap();
    std::fs::write(root.join(".hidden-dir/inner/file"), b"inside a hidden directory").unwrap();
}

#[test]
fn add_only_hash_matches_kubo() {
    let Some(kubo) = kubo() else { return };
    let v = Vouch::new();
    let mut inputs: Vec<(String, Vec<&str>)> = Vec::new();
    for (i, size) in [0u64, 1, 262_144, 262_145, 1_234_567, 174 * 262_144 + 1].into_iter().enumerate() {
        let name = format!("file-{size}");
        write_random_file(&v.path(&name), 60 + i as u64, size);
        inputs.push((name, vec![]));
    }
    random_tree(&v.path("tree"), 70);
    inputs.push(("tree".into(), vec!["-r", "-H"]));
    // Big enough that Kubo 0.22 shards it (links-bytes estimate >= 256 KiB).
    let hamt = v.path("hamt");
    std::fs::create_dir(&hamt).unwrap();
    for i in 0..3000 {
        std::fs::write(hamt.join(format!("entry-{i:05}-{}", "x".repeat(60))), i.to_string()).unwrap();
    }
    inputs.push(("hamt".into(), vec!["-r", "-H"]));

    let mut mismatches = Vec::new();
    for (name, flags) in &inputs {
        let mut args = vec!["-n"];
        args.extend(flags);
        args.push(name);
        let ours = v.add_q(&args);
        let theirs = kubo_cid(&kubo, &v.path(name));
        eprintln!("{name}: vouch {ours} kubo {theirs}");
        if ours != theirs {
            mismatches.push(format!("{name}: vouch {ours}, kubo {theirs}"));
        }
    }
    assert!(mismatches.is_empty(), "CIDs differ from Kubo 0.22:\n{}", mismatches.join("\n"));

    // The tree has hidden entries, so leaving them out must change the root.
    let without = v.add_q(&["-n", "-r", "tree"]);
    assert_ne!(without, v.add_q(&["-n", "-r", "-H", "tree"]));
    // The sharded directory reads back through vouch.
    let root = v.add_q(&["-r", "hamt"]);
    assert_eq!(v.ok(&["ls", &root]).lines().count(), 3000);
    let name = format!("entry-01234-{}", "x".repeat(60));
    assert_eq!(v.ok(&["cat", &format!("{root}/{name}")]), "1234");
}

/// `vouch node` and real Kubo as separate processes: the daemon dials Kubo (`vouch swarm
/// connect`), `vouch cat` fetches Kubo's multi-MB file and `vouch get -o` Kubo's directory tree
/// through the daemon over bitswap, and Kubo downloads a file and a tree `vouch add [-r]` stored;
/// all byte-identical (trees: names, kinds, bytes, symlink targets, hidden and empty entries;
/// see [`assert_same_as_kubo_download`] for the symlinks Kubo writes).
#[test]
fn vouch_node_and_kubo_exchange_files_and_trees_both_ways() {
    let Some(py) = kubo_proc::python() else { return };
    let v = Vouch::new();
    let from_kubo = v.path("from-kubo.bin");
    write_random_file(&from_kubo, 81, 6_000_000);
    let kubo = kubo_proc::KuboServe::start(&py, &from_kubo);
    let d = Daemon::start_in(v, &[]);

    let said = d.v.ok(&["swarm", "connect", &kubo.addr.to_string()]);
    assert!(said.contains(&kubo.peer_id), "{said}");
    let cid = kubo.cid.to_string();
    d.v.assert_cat_eq_file(&cid, &from_kubo);
    // Stored (every block verified) and whole: it reads back without the network too.
    d.v.ok(&["repo", "verify"]);

    let to_kubo = d.v.path("to-kubo.bin");
    write_random_file(&to_kubo, 82, 6_000_000);
    let ours = d.v.add_q(&[to_kubo.to_str().unwrap()]);
    let out = d.v.path("kubo-got.bin");
    let peer: vouch_net::Multiaddr = d.addr.parse().unwrap();
    let report = kubo_proc::kubo_fetch(&py, &ours.parse().unwrap(), &peer, &out);
    assert_eq!(report["cid"], ours.as_str(), "{report}");
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&to_kubo).unwrap(), "Kubo's download differs");

    // A tree Kubo added (its own `ipfs add -r --hidden`): the CID is the one Vouch computes, and
    // `vouch get` through the daemon writes an identical tree.
    let kubo_tree = d.v.path("kubo-tree");
    random_tree(&kubo_tree, 83);
    let kubo_t = kubo_proc::KuboServe::start(&py, &kubo_tree);
    assert_eq!(d.v.add_q(&["-n", "-r", "-H", "kubo-tree"]), kubo_t.cid.to_string());
    d.v.ok(&["swarm", "connect", &kubo_t.addr.to_string()]);
    d.v.ok(&["get", &kubo_t.cid.to_string(), "-o", "got-from-kubo", "--timeout", "60s"]);
    assert_same_tree(&kubo_tree, &d.v.path("got-from-kubo"), true);
    d.v.ok(&["repo", "verify"]);

    // A tree `vouch add -r -H` stored: Kubo downloads it from the daemon, identical (its
    // symlinks as Kubo's Download writes them).
    let vouch_tree = d.v.path("vouch-tree");
    random_tree(&vouch_tree, 84);
    let ours = d.v.add_q(&["-r", "-H", "vouch-tree"]);
    let out = d.v.path("kubo-got-tree");
    let report = kubo_proc::kubo_fetch(&py, &ours.parse().unwrap(), &peer, &out);
    assert_eq!(report["cid"], ours.as_str(), "{report}");
    assert_same_as_kubo_download(&vouch_tree, &out);
}

/// Assert Kubo's `Download` of the tree at `want` wrote `got`: the same names, directories and
/// file bytes, hidden entries included. kubo-python's `Download` writes a UnixFS symlink as a
/// regular file holding the link's target (Kubo to Kubo alike), so that is what a symlink in
/// `want` must have become.
#[track_caller]
fn assert_same_as_kubo_download(want: &Path, got: &Path) {
    let wt = std::fs::symlink_metadata(want).unwrap().file_type();
    let gm = std::fs::symlink_metadata(got).unwrap_or_else(|e| panic!("{}: {e}", got.display()));
    if wt.is_dir() {
        assert!(gm.is_dir(), "{} should be a directory", got.display());
        let names = |p: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name()).collect();
            v.sort();
            v
        };
        let wn = names(want);
        assert_eq!(names(got), wn, "entries of {}", got.display());
        for n in wn {
            assert_same_as_kubo_download(&want.join(&n), &got.join(&n));
        }
        return;
    }
    assert!(gm.is_file(), "{} should be a regular file", got.display());
    let expected = if wt.is_symlink() {
        std::fs::read_link(want).unwrap().into_os_string().into_encoded_bytes()
    } else {
        std::fs::read(want).unwrap()
    };
    assert!(std::fs::read(got).unwrap() == expected, "{} differs from {}", got.display(), want.display());
}
