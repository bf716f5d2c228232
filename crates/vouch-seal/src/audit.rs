//! The append-only audit log of broker decisions: JSON lines, each carrying the SHA-256 of the
//! previous line (`prev`, 64 zeros for the first), written and fsynced one entry at a time,
//! under an exclusive file lock, with the head (entry count and last hash) recorded beside it
//! in `LOG.head` so that a truncated log is detected.
//! Entries name the decision, the rule, the job, the object, the node key and the time; never
//! key material (a [`Decision`]'s wrapped key is not logged either).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::broker::{Decision, KeyRequest};
use crate::{Error, Result};

/// Longest line accepted when reading a log (bounded memory).
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// One audit log line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Hex SHA-256 of the previous line's bytes (without its newline); 64 zeros for the first.
    pub prev: String,
    /// 1-based line number.
    pub seq: u64,
    /// Unix seconds of the decision.
    pub time: u64,
    /// `granted` or `refused`.
    pub decision: String,
    /// The refusing rule; absent for grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    pub job: String,
    pub object: String,
    pub node_key: String,
    pub technology: String,
}

impl AuditEntry {
    /// The entry for `decision` on `req` at `time` (`prev` and `seq` are set on append).
    pub fn new(req: &KeyRequest, decision: &Decision, time: u64) -> AuditEntry {
        let (d, rule, expected, found) = match decision {
            Decision::Granted(_) => ("granted", None, None, None),
            Decision::Refused(r) => ("refused", Some(r.rule.clone()), Some(r.expected.clone()), Some(r.found.clone())),
        };
        AuditEntry {
            prev: String::new(),
            seq: 0,
            time,
            decision: d.to_owned(),
            rule,
            expected,
            found,
            job: req.job.cid.to_string(),
            object: req.object.to_string(),
            node_key: hex::encode(req.node_key),
            technology: req.technology.clone(),
        }
    }
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest wait for another process's (or handle's) append to finish before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Where a chain ends: its number of entries and the hash of its last line (the genesis hash
/// for an empty log). The head file (`LOG.head`) records it after every append.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    seq: u64,
    hash: String,
}

impl Head {
    fn genesis() -> Head {
        Head { seq: 0, hash: GENESIS.to_owned() }
    }
}

/// An audit log open for appending.
///
/// Every process appending to the same log (a `vouch node` daemon and a local `vouch run`)
/// takes an exclusive `flock` on it around each append, and first reads what the others
/// appended since (checking their chain), so entries from many writers form one chain. The
/// whole log is verified once, at open; after that only new lines are read. The head file
/// `LOG.head` (fsynced after each append) records the entry count and last hash, so a log
/// cut short at its end is detected when it is opened or read.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    head: Head,
    /// Bytes of the log verified so far: the end of the line `head` names.
    len: u64,
}

impl AuditLog {
    /// Open (or create) the log at `path`: every existing line verified, and the log checked
    /// against its head file.
    pub fn open(path: impl AsRef<Path>) -> Result<AuditLog> {
        let path = path.as_ref().to_owned();
        let file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(audit_io(&path))?;
        let (head, len) = {
            let _lock = Locked::exclusive(&file, &path)?;
            let recorded = read_head(&path)?;
            let (head, len) = verify_against(BufReader::new(&file), &path, recorded.as_ref())?;
            if head.seq > 0 && recorded.as_ref() != Some(&head) {
                // A head file older than the log (a crash between the two writes), or none
                // yet (a log from before head files): catch it up.
                write_head(&path, &head)?;
            }
            (head, len)
        };
        Ok(AuditLog { path, file, head, len })
    }

    /// Append `entry` (its `prev` and `seq` are filled in) and fsync it and the head file
    /// before returning; under the log's exclusive lock, after reading and checking what other
    /// writers appended since this handle last looked.
    pub fn append(&mut self, mut entry: AuditEntry) -> Result<()> {
        let _lock = Locked::exclusive(&self.file, &self.path)?;
        let meta = self.file.metadata().map_err(audit_io(&self.path))?;
        // Appending to a file no longer at `path` (removed, renamed, replaced) would record
        // nothing a reader sees.
        let at_path = std::fs::metadata(&self.path).ok();
        if at_path.is_none_or(|m| (m.dev(), m.ino()) != (meta.dev(), meta.ino())) {
            return Err(Error::AuditIo {
                path: self.path.clone(),
                source: std::io::Error::other("the log file was removed or replaced since it was opened"),
            });
        }
        let size = meta.len();
        if size < self.len {
            // Cut short under us: count what is left (and check its chain) for the error.
            let whole = File::open(&self.path).map_err(audit_io(&self.path))?;
            let (found, _) =
                verify_lines(BufReader::new(whole), Head::genesis(), |_, _| {}).map_err(|e| in_log(e, &self.path))?;
            return Err(Error::AuditTruncated { path: self.path.clone(), recorded: self.head.seq, found: found.seq });
        }
        if size > self.len {
            let mut rest = File::open(&self.path).map_err(audit_io(&self.path))?;
            rest.seek(SeekFrom::Start(self.len)).map_err(audit_io(&self.path))?;
            let (head, read) = verify_lines(BufReader::new(rest.take(size - self.len)), self.head.clone(), |_, _| {})
                .map_err(|e| in_log(e, &self.path))?;
            self.head = head;
            self.len += read;
        }
        entry.prev = self.head.hash.clone();
        entry.seq = self.head.seq + 1;
        // Serializing a struct of strings and integers cannot fail.
        let line = serde_json::to_string(&entry).expect("audit entries serialize");
        (&self.file).write_all(format!("{line}\n").as_bytes()).map_err(audit_io(&self.path))?;
        self.file.sync_data().map_err(audit_io(&self.path))?;
        self.head = Head { seq: entry.seq, hash: hex::encode(Sha256::digest(line.as_bytes())) };
        self.len += line.len() as u64 + 1;
        write_head(&self.path, &self.head)
    }

    /// The number of entries in the log, as of this handle's last open or append.
    pub fn len(&self) -> u64 {
        self.head.seq
    }

    /// Whether the log held no entry at this handle's last open or append.
    pub fn is_empty(&self) -> bool {
        self.head.seq == 0
    }
}

/// Verify the log at `path` as a reader sees it now, calling `each` for every entry in order:
/// its chain, and its length against its head file. Lines appended while it is read are not
/// read (the log's length is taken under a shared lock, so no half-written line is seen).
/// Returns the number of entries and the hash of the last line.
pub fn verify_file(path: impl AsRef<Path>, mut each: impl FnMut(AuditEntry)) -> Result<(u64, String)> {
    let path = path.as_ref();
    let file = File::open(path).map_err(audit_io(path))?;
    let (size, recorded) = {
        let _lock = Locked::shared(&file, path)?;
        (file.metadata().map_err(audit_io(path))?.len(), read_head(path)?)
    };
    let mut at_recorded = None;
    let (head, _) = verify_lines(BufReader::new((&file).take(size)), Head::genesis(), |e, hash| {
        if recorded.as_ref().is_some_and(|r| r.seq == e.seq) {
            at_recorded = Some(hash.to_owned());
        }
        each(e);
    })
    .map_err(|e| in_log(e, path))?;
    check_head(path, recorded.as_ref(), &head, at_recorded.as_deref())?;
    Ok((head.seq, head.hash))
}

/// Verify a log's chain, calling `each` for every entry in order; the number of entries and the
/// hash of the last line. The first broken line is reported as [`Error::AuditChain`]. (A
/// reader of a log file should use [`verify_file`], which also checks the head file.)
pub fn verify(r: impl BufRead, mut each: impl FnMut(AuditEntry)) -> Result<(u64, String)> {
    let (head, _) = verify_lines(r, Head::genesis(), |e, _| each(e))?;
    Ok((head.seq, head.hash))
}

/// Verify the whole log in `r` and check it against the `recorded` head: the head it ends at
/// and its length in bytes.
fn verify_against(r: impl BufRead, path: &Path, recorded: Option<&Head>) -> Result<(Head, u64)> {
    let mut at_recorded = None;
    let (head, len) = verify_lines(r, Head::genesis(), |e, hash| {
        if recorded.is_some_and(|r| r.seq == e.seq) {
            at_recorded = Some(hash.to_owned());
        }
    })
    .map_err(|e| in_log(e, path))?;
    check_head(path, recorded, &head, at_recorded.as_deref())?;
    Ok((head, len))
}

/// The log ends at `found`; its head file recorded `recorded`, whose line hashes to
/// `at_recorded` in the log. A log longer than its head is fine (a crash between the two
/// writes); a shorter one was truncated; a different hash there means rewritten lines.
fn check_head(path: &Path, recorded: Option<&Head>, found: &Head, at_recorded: Option<&str>) -> Result<()> {
    let Some(r) = recorded else { return Ok(()) };
    if r.seq > found.seq {
        return Err(Error::AuditTruncated { path: path.to_owned(), recorded: r.seq, found: found.seq });
    }
    if r.seq > 0 && at_recorded != Some(r.hash.as_str()) {
        return Err(Error::AuditChain {
            line: r.seq,
            problem: format!(
                "hashes to {}, but the head file recorded {} for it (the log was rewritten)",
                at_recorded.unwrap_or("-"),
                r.hash
            ),
        });
    }
    Ok(())
}

/// Verify lines continuing the chain at `start`, calling `each` with every entry and the hash
/// of its line; the head the lines end at and the number of bytes read.
fn verify_lines(r: impl BufRead, start: Head, mut each: impl FnMut(AuditEntry, &str)) -> Result<(Head, u64)> {
    let Head { mut seq, hash: mut prev } = start;
    let mut read = 0u64;
    let mut r = r.take(u64::MAX);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        r.set_limit(MAX_LINE_BYTES as u64 + 1);
        let n = r.read_until(b'\n', &mut buf).map_err(Error::io("reading the audit log"))?;
        if n == 0 {
            return Ok((Head { seq, hash: prev }, read));
        }
        let line = seq + 1;
        let bad = |problem: String| Error::AuditChain { line, problem };
        let Some(body) = buf.strip_suffix(b"\n") else {
            return Err(bad(if n > MAX_LINE_BYTES {
                "longer than 64 KiB".into()
            } else {
                "no final newline (torn write?)".into()
            }));
        };
        let entry: AuditEntry = serde_json::from_slice(body).map_err(|e| bad(format!("not an audit entry: {e}")))?;
        if entry.prev != prev {
            return Err(bad(format!("prev is {}, but the previous line hashes to {prev}", entry.prev)));
        }
        if entry.seq != line {
            return Err(bad(format!("seq is {}, expected {line}", entry.seq)));
        }
        prev = hex::encode(Sha256::digest(body));
        seq = line;
        read += n as u64;
        each(entry, &prev);
    }
}

fn audit_io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::AuditIo { path: path.to_owned(), source }
}

/// A read error of `path` named as such.
fn in_log(e: Error, path: &Path) -> Error {
    match e {
        Error::Io { source, .. } => Error::AuditIo { path: path.to_owned(), source },
        e => e,
    }
}

fn head_path(log: &Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".head");
    PathBuf::from(p)
}

/// The head recorded for the log at `log`, if it has a head file.
fn read_head(log: &Path) -> Result<Option<Head>> {
    let path = head_path(log);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::AuditIo { path, source: e }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::AuditHead { path, problem: format!("not a head record: {e}") })
}

/// Record `head` for the log at `log`: written to a temporary file, fsynced, renamed over the
/// head file (under the log's exclusive lock, so no other writer shares the temporary file).
fn write_head(log: &Path, head: &Head) -> Result<()> {
    let path = head_path(log);
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // Serializing an integer and a string cannot fail.
    let text = serde_json::to_string(head).expect("audit heads serialize");
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(format!("{text}\n").as_bytes())?;
        f.sync_data()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|source| Error::AuditIo { path: path.clone(), source })
}

/// An advisory `flock` on a log file, released when dropped; waits at most [`LOCK_WAIT`].
struct Locked<'a>(&'a File);

impl<'a> Locked<'a> {
    fn exclusive(file: &'a File, path: &Path) -> Result<Locked<'a>> {
        Locked::take(file, path, File::try_lock)
    }

    fn shared(file: &'a File, path: &Path) -> Result<Locked<'a>> {
        Locked::take(file, path, File::try_lock_shared)
    }

    fn take(
        file: &'a File,
        path: &Path,
        try_lock: fn(&File) -> std::result::Result<(), TryLockError>,
    ) -> Result<Locked<'a>> {
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match try_lock(file) {
                Ok(()) => return Ok(Locked(file)),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::AuditIo {
                        path: path.to_owned(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("still locked by another writer after {} s", LOCK_WAIT.as_secs()),
                        ),
                    });
                }
                Err(TryLockError::Error(source)) => return Err(Error::AuditIo { path: path.to_owned(), source }),
            }
        }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Closing the file would release it too; an unlock error leaves nothing to do.
        let _ = self.0.unlock();
    }
}
