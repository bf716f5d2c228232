//! The crate's one error type.

/// What went wrong while decoding, validating or signing a job spec or a receipt. Each variant
/// names the object (`"job spec"` or `"receipt"`) and, where there is one, the field.
///
/// Verification never returns this type: [`crate::verify`] turns every failure into a failed
/// [`crate::Claim`] whose `found` is this error's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The encoding is larger than the format allows (see [`crate::MAX_SPEC_BYTES`] and
    /// [`crate::MAX_RECEIPT_BYTES`]).
    #[error("{what} is {len} bytes, more than the {max}-byte limit")]
    TooLarge { what: &'static str, len: usize, max: usize },

    /// The bytes are not one strict DAG-CBOR value (truncated, trailing bytes, indefinite
    /// lengths, non-minimal integers, unsorted or duplicate map keys, unknown tags, …).
    #[error("{what} is not valid DAG-CBOR: {reason}")]
    DagCbor { what: &'static str, reason: String },

    /// The top-level `version` field is missing or names a version this build does not read.
    #[error("{what} version is not supported: found {found}, this build reads version {supported}")]
    UnsupportedVersion { what: &'static str, found: String, supported: u64 },

    /// Valid DAG-CBOR, but not the shape of this version: a missing, unknown or mistyped field.
    /// `path` is the dotted field path (`spec.limits.fuel`), `.` for the top level.
    #[error("{what} does not match the version 1 schema at `{path}`: {reason}")]
    Schema { what: &'static str, path: String, reason: String },

    /// The value decodes, but its canonical encoding differs from the bytes given (for example an
    /// absent optional field written as `null`). Content addressing and signatures need exactly
    /// one encoding per value, so such bytes are rejected.
    #[error(
        "{what} is not canonically encoded: re-encoding differs from byte {offset} on ({len} bytes given, {canonical_len} canonical)"
    )]
    NonCanonical { what: &'static str, offset: usize, len: usize, canonical_len: usize },

    /// A job spec field has a value the format forbids (a path-unsafe input name, a zero wall
    /// time, …). `field` is the dotted path (`inputs["a/b"]`, `limits.wall_time_ms`).
    #[error("job spec field `{field}` is invalid: {reason}")]
    InvalidSpec { field: String, reason: String },

    /// [`crate::Receipt::sign`] was given a key whose public half is not the body's `node_key`.
    #[error("signing key {key} is not the receipt's node key {node_key}")]
    KeyMismatch { key: String, node_key: String },
}
