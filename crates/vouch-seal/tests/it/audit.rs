//! The audit log as several writers and a reader see it: one chain from many appenders (each
//! with its own handle, as a daemon and a local run have), and a log cut short detected.

use std::path::Path;

use vouch_seal::Error;
use vouch_seal::audit::{self, AuditEntry, AuditLog};

fn entry(job: &str) -> AuditEntry {
    AuditEntry {
        prev: String::new(),
        seq: 0,
        time: 1_900_000_000,
        decision: "refused".into(),
        rule: Some("modules.allow".into()),
        expected: Some("a module the policy allows".into()),
        found: Some("another".into()),
        job: job.into(),
        object: "00".repeat(16),
        node_key: "11".repeat(32),
        technology: "none".into(),
    }
}

/// The jobs of the log's entries, in order, its chain and head checked.
fn jobs(path: &Path) -> Vec<String> {
    let mut jobs = Vec::new();
    let (n, _) = audit::verify_file(path, |e| jobs.push(e.job)).unwrap();
    assert_eq!(n as usize, jobs.len());
    jobs
}

#[test]
fn appenders_with_their_own_handles_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    const WRITERS: usize = 4;
    const EACH: usize = 25;
    let threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                // Each writer opens the log itself, as another process would, and keeps it.
                let mut log = AuditLog::open(&path).unwrap();
                for i in 0..EACH {
                    log.append(entry(&format!("writer-{w}-{i}"))).unwrap();
                    // Some writers reopen between appends, verifying everything so far.
                    if w % 2 == 1 && i % 5 == 4 {
                        log = AuditLog::open(&path).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let got = jobs(&path);
    assert_eq!(got.len(), WRITERS * EACH, "{got:?}");
    for w in 0..WRITERS {
        let mine: Vec<_> = got.iter().filter(|j| j.starts_with(&format!("writer-{w}-"))).cloned().collect();
        let want: Vec<_> = (0..EACH).map(|i| format!("writer-{w}-{i}")).collect();
        assert_eq!(mine, want, "writer {w}'s entries, in its order");
    }
    // A handle opened before others appended continues the chain after theirs.
    let mut early = AuditLog::open(&path).unwrap();
    let mut other = AuditLog::open(&path).unwrap();
    other.append(entry("other")).unwrap();
    early.append(entry("early")).unwrap();
    assert_eq!(early.len(), (WRITERS * EACH + 2) as u64);
    assert_eq!(jobs(&path)[WRITERS * EACH..], ["other".to_string(), "early".to_string()]);
}

fn log_of(path: &Path, n: usize) {
    let mut log = AuditLog::open(path).unwrap();
    for i in 0..n {
        log.append(entry(&format!("job-{i}"))).unwrap();
    }
}

fn keep_lines(path: &Path, n: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let kept: String = text.split_inclusive('\n').take(n).collect();
    std::fs::write(path, kept).unwrap();
}

#[test]
fn a_log_cut_short_at_its_end_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    log_of(&path, 5);
    assert_eq!(jobs(&path).len(), 5);
    // The chain of the first three lines alone is intact: only the head file tells.
    keep_lines(&path, 3);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(audit::verify(text.as_bytes(), |_| {}).unwrap().0, 3);
    for e in [AuditLog::open(&path).unwrap_err(), audit::verify_file(&path, |_| {}).unwrap_err()] {
        assert!(matches!(e, Error::AuditTruncated { recorded: 5, found: 3, .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("shorter than its recorded head") && msg.contains("audit.log"), "{msg}");
    }
    // Emptied: the same.
    std::fs::write(&path, b"").unwrap();
    let e = AuditLog::open(&path).unwrap_err();
    assert!(matches!(e, Error::AuditTruncated { recorded: 5, found: 0, .. }), "{e}");
}

#[test]
fn a_log_cut_short_under_an_open_handle_is_detected_at_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut log = AuditLog::open(&path).unwrap();
    for i in 0..4 {
        log.append(entry(&format!("job-{i}"))).unwrap();
    }
    keep_lines(&path, 2);
    let e = log.append(entry("after")).unwrap_err();
    assert!(matches!(e, Error::AuditTruncated { recorded: 4, found: 2, .. }), "{e}");
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2, "nothing appended to a cut log");
}

#[test]
fn a_head_behind_its_log_is_caught_up_and_a_rewritten_last_line_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let head = dir.path().join("audit.log.head");
    log_of(&path, 4);
    let head_at_4 = std::fs::read(&head).unwrap();
    log_of(&path, 1);
    // A crash between the fsynced append and the head update: the log is one entry ahead.
    std::fs::write(&head, &head_at_4).unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(log.len(), 5);
    assert_ne!(std::fs::read(&head).unwrap(), head_at_4, "the head was caught up at open");
    log.append(entry("job-5")).unwrap();
    drop(log);
    assert_eq!(jobs(&path).len(), 6);

    // The last line replaced by another that chains correctly: the chain alone cannot tell.
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut forged: AuditEntry = serde_json::from_str(lines[5]).unwrap();
    forged.decision = "granted".into();
    forged.rule = None;
    forged.expected = None;
    forged.found = None;
    let forged = format!("{}\n{}\n", lines[..5].join("\n"), serde_json::to_string(&forged).unwrap());
    assert_eq!(audit::verify(forged.as_bytes(), |_| {}).unwrap().0, 6);
    std::fs::write(&path, forged).unwrap();
    let e = AuditLog::open(&path).unwrap_err();
    assert!(matches!(e, Error::AuditChain { line: 6, .. }) && e.to_string().contains("rewritten"), "{e}");

    // A head file that is not one is named.
    std::fs::write(&head, b"garbage").unwrap();
    let e = AuditLog::open(&path).unwrap_err();
    assert!(matches!(e, Error::AuditHead { .. }) && e.to_string().contains("audit.log.head"), "{e}");
}

#[test]
fn a_log_removed_or_replaced_under_an_open_handle_is_not_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let mut log = AuditLog::open(&path).unwrap();
    log.append(entry("job-0")).unwrap();
    std::fs::rename(&path, dir.path().join("rotated.log")).unwrap();
    let e = log.append(entry("job-1")).unwrap_err();
    assert!(e.to_string().contains("removed or replaced"), "{e}");
    // A new empty log where the old one was: reopened, it is cut short against its head.
    std::fs::write(&path, b"").unwrap();
    let e = log.append(entry("job-1")).unwrap_err();
    assert!(e.to_string().contains("removed or replaced"), "{e}");
    let e = AuditLog::open(&path).unwrap_err();
    assert!(matches!(e, Error::AuditTruncated { recorded: 1, found: 0, .. }), "{e}");
    assert_eq!(std::fs::read_to_string(dir.path().join("rotated.log")).unwrap().lines().count(), 1);
}
