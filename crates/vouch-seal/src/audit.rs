//! The append-only audit log of broker decisions: JSON lines, each carrying the SHA-256 of the
//! previous line (`prev`, 64 zeros for the first), written and fsynced one entry at a time.
//! Entries name the decision, the rule, the job, the object, the node key and the time; never
//! key material (a [`Decision`]'s wrapped key is not logged either).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

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

/// An audit log open for appending. Opening verifies the existing chain.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    prev: String,
    seq: u64,
}

impl AuditLog {
    /// Open (or create) the log at `path`, verifying every existing line first.
    pub fn open(path: impl AsRef<Path>) -> Result<AuditLog> {
        let path = path.as_ref().to_owned();
        let io = |source| Error::AuditIo { path: path.clone(), source };
        let file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io)?;
        let (seq, prev) = verify(BufReader::new(&file), |_| {}).map_err(|e| match e {
            Error::Io { source, .. } => Error::AuditIo { path: path.clone(), source },
            e => e,
        })?;
        Ok(AuditLog { path, file, prev, seq })
    }

    /// Append `entry` (its `prev` and `seq` are filled in) and fsync before returning.
    pub fn append(&mut self, mut entry: AuditEntry) -> Result<()> {
        entry.prev = self.prev.clone();
        entry.seq = self.seq + 1;
        // Serializing a struct of strings and integers cannot fail.
        let line = serde_json::to_string(&entry).expect("audit entries serialize");
        let io = |source| Error::AuditIo { path: self.path.clone(), source };
        self.file.write_all(format!("{line}\n").as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.prev = hex::encode(Sha256::digest(line.as_bytes()));
        self.seq += 1;
        Ok(())
    }
}

/// Verify a log's chain, calling `each` for every entry in order; the number of entries and the
/// hash of the last line. The first broken line is reported as [`Error::AuditChain`].
pub fn verify(r: impl BufRead, mut each: impl FnMut(AuditEntry)) -> Result<(u64, String)> {
    let mut prev = GENESIS.to_owned();
    let mut seq = 0u64;
    let mut r = r.take(u64::MAX);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        r.set_limit(MAX_LINE_BYTES as u64 + 1);
        let n = r.read_until(b'\n', &mut buf).map_err(Error::io("reading the audit log"))?;
        if n == 0 {
            return Ok((seq, prev));
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
        each(entry);
    }
}
