//! Readers in other processes are served while an import runs.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::{Vouch, random_bytes, write_random_file};

/// Reader threads, each running `vouch cat` processes back to back.
const READERS: usize = 2;
const MIN_OVERLAPPING_READS: usize = 20;

#[test]
fn cat_while_a_large_add_runs() {
    let v = Vouch::new();
    let data = random_bytes(50, 1_000_000);
    v.write("previous", &data);
    let prev = v.add_q(&["previous"]);
    let big = v.path("big.bin");
    write_random_file(&big, 51, 300 * 1024 * 1024);

    let mut add = v.cmd(&["add", "-Q", "big.bin"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let add_running = AtomicBool::new(true);
    let (during, total) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..READERS {
            s.spawn(|| {
                while add_running.load(Ordering::SeqCst) || total.load(Ordering::SeqCst) < MIN_OVERLAPPING_READS {
                    let started_during = add_running.load(Ordering::SeqCst);
                    let out = v.run(&["cat", &prev]);
                    let n = total.fetch_add(1, Ordering::SeqCst);
                    assert!(out.status.success(), "read {n} failed: {}", String::from_utf8_lossy(&out.stderr));
                    assert!(out.stdout == data, "read {n} returned different bytes");
                    // Counted only if the add was running for the whole read.
                    if started_during && add_running.load(Ordering::SeqCst) {
                        during.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        // The main thread watches the add.
        while add.try_wait().unwrap().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        add_running.store(false, Ordering::SeqCst);
    });
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success(), "the add failed: {}", String::from_utf8_lossy(&out.stderr));
    let (during, total) = (during.into_inner(), total.into_inner());
    eprintln!("{during} of {total} reads ran while the add was running");
    assert!(during >= MIN_OVERLAPPING_READS, "only {during} reads overlapped the add");
    let cid = String::from_utf8(out.stdout).unwrap().trim().to_string();
    v.assert_cat_eq_file(&cid, &big);
    assert_eq!(v.ok(&["pin", "ls"]).lines().count(), 2);
}
