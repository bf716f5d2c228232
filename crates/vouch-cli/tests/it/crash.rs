//! Crash safety: `vouch add` and `vouch car import` killed with SIGKILL at several points leave a
//! store where every indexed block hashes right, earlier content is intact, every pin names a
//! complete DAG, and `gc` reclaims what the dead writers left.

use std::process::Child;
use std::time::{Duration, Instant};

use crate::{Vouch, random_bytes, write_random_file};

/// The file `add` is killed adding.
const BIG: u64 = 300 * 1024 * 1024;
/// The file in the CAR `car import` is killed importing (smaller: the test also writes the CAR).
const BIG_CAR: u64 = 200 * 1024 * 1024;

/// When to kill the writer.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This long after the start: opening the store, first pack bytes.
    Ms(u64),
    /// Once its new pack file holds this many bytes. At (nearly) the full size the writer is
    /// flushing, fsyncing or committing the index.
    PackBytes(u64),
}

/// Early, mid-write, and at the end of the write of `size` bytes of data, in that order (a
/// writer that finished makes the later ones moot). The pack holds the data plus CIDs and
/// internal nodes, so at `size` bytes at most the last buffer is unwritten: the writer is
/// flushing, fsyncing or committing.
fn kill_points(size: u64) -> [KillAt; 5] {
    [
        KillAt::Ms(50),
        KillAt::PackBytes(size / 3),
        KillAt::PackBytes(size * 5 / 6),
        KillAt::PackBytes(size - (2 << 20)),
        KillAt::PackBytes(size),
    ]
}

/// Start `args`, SIGKILL it at `at`; returns whether it was still running when killed.
fn kill_at(v: &Vouch, args: &[&str], at: KillAt) -> bool {
    let packs_before = v.pack_files();
    let mut child: Child = v.spawn(args);
    let t = Instant::now();
    match at {
        KillAt::Ms(ms) => std::thread::sleep(Duration::from_millis(ms)),
        KillAt::PackBytes(n) => loop {
            let size: u64 = std::fs::read_dir(v.packs_dir())
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| !packs_before.contains(&e.file_name().to_string_lossy().into_owned()))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum();
            if size >= n || child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "the writer never reached {n} pack bytes");
            std::thread::sleep(Duration::from_millis(1));
        },
    }
    let running = child.try_wait().unwrap().is_none();
    // std's Child::kill sends SIGKILL on Unix.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    eprintln!(
        "vouch {} at {at:?}, after {:?}: {}",
        args[0],
        t.elapsed(),
        if running { "killed" } else { "had finished" }
    );
    if running {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status}");
    }
    running
}

/// A small file added and pinned before the crashes.
fn previous(v: &Vouch) -> String {
    v.write("previous", &random_bytes(40, 700_000));
    v.add_q(&["previous"])
}

/// What must hold after any crash.
#[track_caller]
fn assert_sound(v: &Vouch, previous_cid: &str) {
    assert_eq!(v.ok(&["repo", "verify"]).trim_end().lines().last(), Some("all blocks verified"));
    v.assert_cat_eq_file(previous_cid, &v.path("previous"));
    let pins = v.assert_pins_complete();
    assert!(pins.iter().any(|p| p == previous_cid), "{pins:?}");
}

/// GC after the crashes: it succeeds, removes every pack file the index does not name, and
/// the pack directory shrinks if the dead writers left anything.
#[track_caller]
fn assert_gc_reclaims(v: &Vouch) {
    let (files_before, size_before) = (v.pack_files(), v.packs_size());
    v.ok(&["gc"]);
    let stat: serde_json::Value = serde_json::from_str(&v.ok(&["repo", "stat", "--json"])).unwrap();
    let files_after = v.pack_files();
    assert_eq!(files_after.len() as u64, stat["packs"].as_u64().unwrap(), "orphan packs left: {files_after:?}");
    if files_before.len() > files_after.len() {
        assert!(v.packs_size() < size_before, "pack files removed but the directory did not shrink");
    }
    eprintln!(
        "gc: {} -> {} pack files, {size_before} -> {} bytes",
        files_before.len(),
        files_after.len(),
        v.packs_size()
    );
}

#[test]
fn kill_9_during_add() {
    let v = Vouch::new();
    let prev = previous(&v);
    let big = v.path("big.bin");
    write_random_file(&big, 41, BIG);
    let mut killed = 0;
    for at in kill_points(BIG) {
        if kill_at(&v, &["add", "big.bin"], at) {
            killed += 1;
        }
        assert_sound(&v, &prev);
    }
    assert!(killed >= 3, "only {killed} of the adds were still running when killed: the file is too small");
    let orphans = v.pack_files().len() as u64;
    let stat: serde_json::Value = serde_json::from_str(&v.ok(&["repo", "stat", "--json"])).unwrap();
    assert!(orphans > stat["packs"].as_u64().unwrap(), "the killed adds left no partial pack to collect");
    assert_gc_reclaims(&v);
    assert_sound(&v, &prev);

    let cid = v.add_q(&["big.bin"]);
    v.assert_cat_eq_file(&cid, &big);
    assert_sound(&v, &prev);
    assert!(v.ok(&["pin", "ls"]).contains(&cid));
}

#[test]
fn kill_9_during_car_import() {
    // The CAR comes from another home.
    let src = Vouch::new();
    let file = src.path("big.bin");
    write_random_file(&file, 42, BIG_CAR);
    let root = src.add_q(&["big.bin"]);
    let car = src.path("big.car");
    src.ok(&["car", "export", &root, "-o", car.to_str().unwrap()]);
    // Only the CAR and the file are needed from here on.
    std::fs::remove_dir_all(src.home()).unwrap();

    let v = Vouch::new();
    let prev = previous(&v);
    let car = car.to_str().unwrap();
    let mut killed = 0;
    for at in kill_points(BIG_CAR) {
        if kill_at(&v, &["car", "import", car], at) {
            killed += 1;
        }
        assert_sound(&v, &prev);
    }
    assert!(killed >= 3, "only {killed} of the imports were still running when killed: the CAR is too small");
    assert_gc_reclaims(&v);
    assert_sound(&v, &prev);

    let out = v.ok(&["car", "import", car]);
    assert!(out.contains(&format!("root {root} pinned")), "{out}");
    v.assert_cat_eq_file(&root, &file);
    assert_sound(&v, &prev);
}
