//! The crate's one error type.
//!
//! No variant carries key material: data keys, chunk keys and HPKE secret keys never appear in a
//! message (a test greps every message for them). Objects are named by their public 16-byte
//! object id and chunks by their index.

use std::path::PathBuf;

/// What went wrong while sealing, opening, wrapping, loading a policy or keeping the audit log.
///
/// A refused key request is not an error: it is a [`crate::Refusal`] naming the rule.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the plaintext or ciphertext, or writing the other side, failed.
    #[error("{what}: {source}")]
    Io { what: &'static str, source: std::io::Error },

    /// The sealed object does not start with the `VSEAL` magic.
    #[error("not a sealed object: expected the magic \"VSEAL\", found {found:02x?}")]
    BadMagic { found: Vec<u8> },

    /// The sealed object ended inside its fixed-size header.
    #[error("sealed object header truncated: {found} of {expected} bytes")]
    TruncatedHeader { expected: usize, found: usize },

    /// A header field has a value this build does not read (`version`, `aead`, `reserved`,
    /// `chunk_size`).
    #[error("sealed object header field `{field}`: {problem}")]
    BadHeader { field: &'static str, problem: String },

    /// The header's key id is not the id of the key given: the object was sealed under another
    /// key. Checked before any chunk is opened.
    #[error("object {object}: sealed under key id {expected}, the key given has id {found}")]
    WrongKey { object: String, expected: String, found: String },

    /// The header's authentication tag does not verify: a header byte (object id, chunk size,
    /// key id) was changed.
    #[error("object {object}: header failed authentication (a header byte was modified)")]
    HeaderAuthentication { object: String },

    /// Chunk `index` does not authenticate at its position under any nearby index: its bytes
    /// were modified, or it comes from another object.
    #[error("object {object}: chunk {index} failed authentication (modified or from another object)")]
    ChunkAuthentication { object: String, index: u32 },

    /// The last chunk read (`len` bytes, shorter than a full chunk) does not authenticate: the
    /// object was truncated inside it, or its bytes were modified.
    #[error(
        "object {object}: the last chunk {index} ({len} bytes) failed authentication: truncated inside the chunk, or modified"
    )]
    LastChunkAuthentication { object: String, index: u32, len: usize },

    /// The chunk at `position` authenticates, but as chunk `found_index`: chunks were dropped
    /// (found > position), duplicated or reordered.
    #[error(
        "object {object}: chunk at position {position} is chunk {found_index} of the object ({})",
        if found_index > position { "chunks were dropped or reordered" } else { "a chunk was duplicated or reordered" }
    )]
    ChunkOutOfPlace { object: String, position: u32, found_index: u32 },

    /// The stream ended after chunk `last` without the final chunk: the object was truncated
    /// at a chunk boundary.
    #[error("object {object}: truncated after chunk {last}: the final chunk is missing")]
    Truncated { object: String, last: u32 },

    /// The stream ended inside chunk `index` (fewer bytes than its 16-byte tag).
    #[error("object {object}: truncated inside chunk {index}: {found} bytes, a chunk has at least 16")]
    TruncatedChunk { object: String, index: u32, found: usize },

    /// Chunk `index` is the final chunk, but bytes follow it: the object was extended.
    #[error("object {object}: data after the final chunk {index}: the object was extended")]
    TrailingData { object: String, index: u32 },

    /// The object would need more than 2^32 chunks.
    #[error("object too large: more than 2^32 chunks of {chunk_size} bytes")]
    TooManyChunks { chunk_size: u32 },

    /// An HPKE public key is not 32 bytes of X25519 public key (`what` says whose).
    #[error("{what}: not an X25519 public key: {problem}")]
    BadPublicKey { what: &'static str, problem: String },

    /// A wrapped key did not open: wrong recipient key, wrong job CID or object id in the AAD,
    /// wrong purpose, or modified bytes.
    #[error("wrapped key ({purpose}) for object {object} did not open: wrong key, job, object or modified bytes")]
    Unwrap { purpose: &'static str, object: String },

    /// A result envelope is malformed.
    #[error("result envelope: {problem}")]
    BadEnvelope { problem: String },

    /// An access policy could not be read.
    #[error("cannot read access policy {path}: {source}")]
    PolicyIo { path: PathBuf, source: std::io::Error },

    /// An access policy is not valid TOML for the format (unknown field, wrong type).
    #[error("access policy is not valid TOML for the policy format: {0}")]
    PolicyToml(String),

    /// An access policy field has a value the format forbids; `field` is its dotted path.
    #[error("access policy field `{field}`: {problem}")]
    Policy { field: String, problem: String },

    /// A key request or grant is not valid DAG-CBOR for its schema.
    #[error("{what} is not valid: {reason}")]
    Wire { what: &'static str, reason: String },

    /// The broker already holds this many outstanding challenges.
    #[error("too many outstanding challenges ({max}); try again after some expire")]
    TooManyChallenges { max: usize },

    /// An object id is already registered with the broker.
    #[error("object {object} is already registered with the broker")]
    AlreadyRegistered { object: String },

    /// The audit log could not be opened, read or appended to.
    #[error("audit log {path}: {source}")]
    AuditIo { path: PathBuf, source: std::io::Error },

    /// The audit log's hash chain or an entry is broken at `line` (1-based).
    #[error("audit log line {line}: {problem}")]
    AuditChain { line: u64, problem: String },

    /// The audit log holds fewer entries than its head file (`LOG.head`, written after every
    /// append) records: entries were cut off its end.
    #[error(
        "audit log {path}: shorter than its recorded head: {found} entries, but {recorded} were recorded (truncated?)"
    )]
    AuditTruncated { path: PathBuf, recorded: u64, found: u64 },

    /// The audit log's head file is unreadable or malformed.
    #[error("audit log head {path}: {problem}")]
    AuditHead { path: PathBuf, problem: String },
}

impl Error {
    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { what, source }
    }

    pub(crate) fn policy(field: impl Into<String>, problem: impl Into<String>) -> Error {
        Error::Policy { field: field.into(), problem: problem.into() }
    }
}
