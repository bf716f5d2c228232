//! The job spec: what to run, on which inputs, under which limits. Normative text:
//! `docs/job-spec.md`.

use std::collections::BTreeMap;

use cid::Cid;
use serde::{Deserialize, Serialize};

use crate::{Error, codec};

/// The job spec version this build writes and reads.
pub const SPEC_VERSION: u64 = 1;
/// Largest job spec encoding accepted (1 MiB).
pub const MAX_SPEC_BYTES: usize = 1 << 20;

/// Largest `limits.memory_bytes`: 4 GiB, all a wasm32 linear memory can address.
pub const MAX_MEMORY_BYTES: u64 = 1 << 32;
/// Smallest `limits.memory_bytes`: one 64 KiB Wasm page.
pub const MIN_MEMORY_BYTES: u64 = 1 << 16;
/// Largest `limits.wall_time_ms`: 24 hours.
pub const MAX_WALL_TIME_MS: u64 = 24 * 60 * 60 * 1000;
/// Largest `limits.output_bytes`: 1 TiB.
pub const MAX_OUTPUT_BYTES: u64 = 1 << 40;
/// Largest `limits.stdout_bytes` and `limits.stderr_bytes`: 1 GiB (captures are held in memory).
pub const MAX_STREAM_BYTES: u64 = 1 << 30;
/// Longest input name in bytes (a file name on common file systems).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest `recipient` key in bytes.
pub const MAX_RECIPIENT_BYTES: usize = 4096;

/// A job: a Wasm module, the inputs it may read, its arguments and environment, and its limits.
/// Encoded as a DAG-CBOR map; the CID of that encoding ([`JobSpec::cid`]) is the job id.
///
/// Build one with [`JobSpec::new`] and struct update syntax; check it with
/// [`JobSpec::validate`] before running it ([`JobSpec::decode`] validates for you).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Format version: [`SPEC_VERSION`].
    pub version: u64,
    /// The module: a UnixFS file (or raw block) holding a Wasm binary.
    pub module: Cid,
    /// Inputs by name; each is mounted read-only at `/inputs/NAME` (a file, or a whole UnixFS
    /// directory tree). Names are unique (map keys) and path-safe (see [`JobSpec::validate`]).
    pub inputs: BTreeMap<String, Cid>,
    /// The argument vector exactly as the guest sees it, `argv[0]` included.
    pub args: Vec<String>,
    /// The guest's environment, and nothing else: the host's environment never leaks in.
    pub env: BTreeMap<String, String>,
    /// Resource limits; reaching one is a recorded outcome, not a crash.
    pub limits: Limits,
    /// Deterministic mode: fixed clock and random seed derived from the job, NaN
    /// canonicalisation, no threads. Same job, same output CID, on any node.
    pub deterministic: bool,
    /// Public key the result is to be encrypted to (its scheme is defined by the sealing layer;
    /// this format only carries the bytes). Absent: results are stored in the clear.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub recipient: Option<Vec<u8>>,
    /// Access or appraisal policy this job runs under. Absent: the node's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Cid>,
    /// Read-only runtime directories outside `/inputs`: absolute guest directory path → CID of
    /// a UnixFS directory mounted there (e.g. a language runtime's standard library at the path
    /// it was built for). Empty: omitted from the encoding. Paths are checked by
    /// [`JobSpec::validate`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mounts: BTreeMap<String, Cid>,
}

/// Resource limits of a job. Every limit is enforced by the sandbox and, when reached, ends the
/// run with the matching [`crate::Outcome`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Fuel budget (Wasm instructions, roughly). Absent: no limit (fuel is still metered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Largest size any linear memory may grow to, in bytes.
    pub memory_bytes: u64,
    /// Wall-clock time limit, in milliseconds.
    pub wall_time_ms: u64,
    /// Largest total size of the files written under `/outputs`, in bytes.
    pub output_bytes: u64,
    /// Largest stdout capture, in bytes.
    pub stdout_bytes: u64,
    /// Largest stderr capture, in bytes.
    pub stderr_bytes: u64,
}

impl Default for Limits {
    /// No fuel metering, 512 MiB of memory, 60 s, 1 GiB of outputs, 1 MiB each of stdout and
    /// stderr.
    fn default() -> Self {
        Limits {
            fuel: None,
            memory_bytes: 512 << 20,
            wall_time_ms: 60_000,
            output_bytes: 1 << 30,
            stdout_bytes: 1 << 20,
            stderr_bytes: 1 << 20,
        }
    }
}

impl JobSpec {
    /// A deterministic job running `module` with no inputs, no arguments, an empty environment
    /// and [`Limits::default`].
    pub fn new(module: Cid) -> Self {
        JobSpec {
            version: SPEC_VERSION,
            module,
            inputs: BTreeMap::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
            limits: Limits::default(),
            deterministic: true,
            recipient: None,
            policy: None,
            mounts: BTreeMap::new(),
        }
    }

    /// The canonical DAG-CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The job id: CIDv1, dag-cbor, sha2-256 of [`JobSpec::encode`].
    pub fn cid(&self) -> Cid {
        codec::cid_of(&self.encode())
    }

    /// Decode a job spec strictly: at most [`MAX_SPEC_BYTES`], strict DAG-CBOR, version
    /// [`SPEC_VERSION`], no unknown or missing fields, the canonical encoding (re-encoding gives
    /// the same bytes), and [`JobSpec::validate`].
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let spec = codec::decode(&codec::SPEC, bytes, |v| codec::from_ipld(&codec::SPEC, v), JobSpec::encode)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Check what the encoding cannot: the version; input names non-empty, at most
    /// [`MAX_NAME_BYTES`], not `.` or `..`, without `/`, `\` or NUL; no NUL in arguments or
    /// environment; environment names non-empty without `=`; limits within their documented
    /// ranges; a non-empty recipient key of at most [`MAX_RECIPIENT_BYTES`]; an encoding of at
    /// most [`MAX_SPEC_BYTES`]. Returns the first violation, naming the field.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: String, reason: &str| Err(Error::InvalidSpec { field, reason: reason.to_string() });
        if self.version != SPEC_VERSION {
            return bad("version".into(), &format!("is {}, expected {SPEC_VERSION}", self.version));
        }
        for name in self.inputs.keys() {
            if let Some(reason) = unsafe_name(name) {
                return bad(format!("inputs[{name:?}]"), reason);
            }
        }
        for (i, a) in self.args.iter().enumerate() {
            if a.contains('\0') {
                return bad(format!("args[{i}]"), "contains NUL");
            }
        }
        for (k, v) in &self.env {
            let field = format!("env[{k:?}]");
            if k.is_empty() {
                return bad(field, "empty variable name");
            }
            if k.contains('=') {
                return bad(field, "variable name contains '='");
            }
            if k.contains('\0') || v.contains('\0') {
                return bad(field, "contains NUL");
            }
        }
        let l = &self.limits;
        let range = |field: &str, v: u64, min: u64, max: u64| {
            if (min..=max).contains(&v) {
                Ok(())
            } else {
                bad(format!("limits.{field}"), &format!("is {v}, must be in {min}..={max}"))
            }
        };
        if let Some(fuel) = l.fuel {
            range("fuel", fuel, 1, u64::MAX)?;
        }
        range("memory_bytes", l.memory_bytes, MIN_MEMORY_BYTES, MAX_MEMORY_BYTES)?;
        range("wall_time_ms", l.wall_time_ms, 1, MAX_WALL_TIME_MS)?;
        range("output_bytes", l.output_bytes, 0, MAX_OUTPUT_BYTES)?;
        range("stdout_bytes", l.stdout_bytes, 0, MAX_STREAM_BYTES)?;
        range("stderr_bytes", l.stderr_bytes, 0, MAX_STREAM_BYTES)?;
        if let Some(r) = &self.recipient
            && (r.is_empty() || r.len() > MAX_RECIPIENT_BYTES)
        {
            return bad("recipient".into(), &format!("is {} bytes, must be 1..={MAX_RECIPIENT_BYTES}", r.len()));
        }
        let guests: Vec<&str> = self.mounts.keys().map(String::as_str).collect();
        for path in &guests {
            if let Some(reason) = unsafe_mount(path, &guests) {
                return bad(format!("mounts[{path:?}]"), reason);
            }
        }
        let len = self.encode().len();
        if len > MAX_SPEC_BYTES {
            return bad("(encoding)".into(), &format!("is {len} bytes, more than {MAX_SPEC_BYTES}"));
        }
        Ok(())
    }
}

/// Why `name` cannot be a file name directly under `/inputs`, if it cannot.
fn unsafe_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty name")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not names")
    } else if name.contains('/') || name.contains('\\') {
        Some("contains a path separator ('/' or '\\')")
    } else if name.contains('\0') {
        Some("contains NUL")
    } else if name.len() > MAX_NAME_BYTES {
        Some("longer than 255 bytes")
    } else {
        None
    }
}

/// Longest mount path in bytes.
pub const MAX_MOUNT_PATH_BYTES: usize = 4096;

/// Why `path` cannot be a mount point (given all the spec's mount points), if it cannot.
fn unsafe_mount(path: &str, all: &[&str]) -> Option<&'static str> {
    let under = |p: &str, dir: &str| p == dir || p.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'));
    if !path.starts_with('/') || path == "/" {
        Some("not an absolute path below '/'")
    } else if path.len() > MAX_MOUNT_PATH_BYTES {
        Some("longer than 4096 bytes")
    } else if path.contains('\\') || path.contains('\0') {
        Some("contains '\\' or NUL")
    } else if path[1..].split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        Some("not a normalised path (empty, '.' or '..' component, or a trailing '/')")
    } else if ["/inputs", "/outputs"].iter().any(|d| under(path, d) || under(d, path)) {
        Some("overlaps /inputs or /outputs")
    } else if all.iter().any(|other| *other != path && under(path, other)) {
        Some("nested inside another mount")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> Cid {
        codec::cid_of(b"module")
    }

    fn invalid_field(s: &JobSpec) -> String {
        match s.validate() {
            Err(Error::InvalidSpec { field, .. }) => field,
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    #[test]
    fn new_spec_is_valid_and_round_trips() {
        let s = JobSpec::new(module());
        s.validate().unwrap();
        assert_eq!(JobSpec::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn unsafe_input_names_are_rejected() {
        for name in ["", ".", "..", "a/b", "/abs", "a\\b", "nul\0", &"x".repeat(256)] {
            let mut s = JobSpec::new(module());
            s.inputs.insert(name.to_string(), module());
            assert_eq!(invalid_field(&s), format!("inputs[{name:?}]"), "name {name:?}");
        }
        let mut s = JobSpec::new(module());
        for name in ["data.csv", "...", ".hidden", "ünï", &"x".repeat(255)] {
            s.inputs.insert(name.to_string(), module());
        }
        s.validate().unwrap();
    }

    #[test]
    fn env_args_and_limits_are_checked() {
        let with = |f: &dyn Fn(&mut JobSpec)| {
            let mut s = JobSpec::new(module());
            f(&mut s);
            invalid_field(&s)
        };
        assert_eq!(with(&|s| s.version = 2), "version");
        assert_eq!(with(&|s| s.args = vec!["ok".into(), "b\0d".into()]), "args[1]");
        assert_eq!(with(&|s| drop(s.env.insert("".into(), "v".into()))), "env[\"\"]");
        assert_eq!(with(&|s| drop(s.env.insert("A=B".into(), "v".into()))), "env[\"A=B\"]");
        assert_eq!(with(&|s| drop(s.env.insert("A".into(), "v\0".into()))), "env[\"A\"]");
        assert_eq!(with(&|s| s.limits.fuel = Some(0)), "limits.fuel");
        assert_eq!(with(&|s| s.limits.memory_bytes = 1000), "limits.memory_bytes");
        assert_eq!(with(&|s| s.limits.memory_bytes = MAX_MEMORY_BYTES + 1), "limits.memory_bytes");
        assert_eq!(with(&|s| s.limits.wall_time_ms = 0), "limits.wall_time_ms");
        assert_eq!(with(&|s| s.limits.output_bytes = MAX_OUTPUT_BYTES + 1), "limits.output_bytes");
        assert_eq!(with(&|s| s.limits.stdout_bytes = MAX_STREAM_BYTES + 1), "limits.stdout_bytes");
        assert_eq!(with(&|s| s.limits.stderr_bytes = u64::MAX), "limits.stderr_bytes");
        assert_eq!(with(&|s| s.recipient = Some(vec![])), "recipient");
        assert_eq!(with(&|s| s.args = vec!["x".repeat(MAX_SPEC_BYTES)]), "(encoding)");
    }

    #[test]
    fn mount_paths_are_checked() {
        for path in ["", "/", "rel", "/a/", "/a//b", "/a/./b", "/a/../b", "/inputs", "/inputs/x", "/outputs", "/a\\b"] {
            let mut s = JobSpec::new(module());
            s.mounts.insert(path.to_string(), module());
            assert_eq!(invalid_field(&s), format!("mounts[{path:?}]"), "path {path:?}");
        }
        let mut s = JobSpec::new(module());
        s.mounts.insert("/usr/local/lib".into(), module());
        s.mounts.insert("/usr/local/lib/x".into(), module());
        assert!(invalid_field(&s).starts_with("mounts["));
        let mut s = JobSpec::new(module());
        s.mounts.insert("/usr/local/lib".into(), module());
        s.mounts.insert("/opt/inputsx".into(), module());
        s.validate().unwrap();
        assert_eq!(JobSpec::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn decode_rejects_invalid_specs() {
        let mut s = JobSpec::new(module());
        s.inputs.insert("..".into(), module());
        assert!(matches!(JobSpec::decode(&s.encode()), Err(Error::InvalidSpec { .. })));
    }

    #[test]
    fn absent_options_are_omitted_not_null() {
        let s = JobSpec::new(module());
        let v: ipld_core::ipld::Ipld = serde_ipld_dagcbor::from_slice(&s.encode()).unwrap();
        let ipld_core::ipld::Ipld::Map(m) = v else { panic!("not a map") };
        let keys: Vec<_> = m.keys().map(String::as_str).collect();
        assert_eq!(keys, ["args", "deterministic", "env", "inputs", "limits", "module", "version"]);
    }
}
