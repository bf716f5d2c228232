//! The receipt: what ran on what, with what result, signed by the node. Normative text:
//! `docs/receipt.md`.

use std::fmt;

use cid::Cid;
use ed25519_dalek::{Signer, SigningKey};
use ipld_core::ipld::Ipld;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, RECEIPT};
use crate::{Error, JobSpec};

/// The receipt version this build writes and reads.
pub const RECEIPT_VERSION: u64 = 1;
/// Largest receipt encoding accepted (4 MiB: the inline spec plus inline evidence with its
/// certificate chains).
pub const MAX_RECEIPT_BYTES: usize = 4 << 20;
/// Prefix of the bytes a receipt signature covers: `SIGNATURE_DOMAIN ‖ DAG-CBOR(body)`.
pub const SIGNATURE_DOMAIN: &[u8] = b"vouch-receipt-v1\0";
/// Prefix of the hashed report data that binds the node key in evidence:
/// `SHA-256(REPORT_DATA_DOMAIN ‖ node key ‖ nonce)`.
pub const REPORT_DATA_DOMAIN: &[u8] = b"vouch-report-data-v1\0";

/// The map key of the signature in an encoded receipt.
const SIGNATURE_KEY: &str = "signature";

/// A signed receipt: the [`ReceiptBody`] and an ed25519 signature by `body.node_key` over
/// [`ReceiptBody::signed_bytes`]. Encoded as one flat DAG-CBOR map: the body's fields plus
/// `signature`. Its CID ([`Receipt::cid`]) is CIDv1, dag-cbor, sha2-256 of [`Receipt::encode`].
///
/// Decoding checks structure only; [`crate::verify`] checks what the receipt claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub body: ReceiptBody,
    pub signature: [u8; 64],
}

/// Everything a receipt says, i.e. everything the signature covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    /// Format version: [`RECEIPT_VERSION`].
    pub version: u64,
    /// The job id: [`JobSpec::cid`] of `spec`.
    pub job: Cid,
    /// The job spec, inline, so the receipt alone is enough to re-run the job.
    pub spec: JobSpec,
    /// Root of `/outputs` imported as UnixFS. Absent: the outputs were not recorded (the outcome
    /// says why, e.g. [`Outcome::OutputLimit`]). An empty `/outputs` is the empty directory's CID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Cid>,
    /// The captured stdout as a UnixFS file. Absent: the guest wrote nothing to stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<Cid>,
    /// The captured stderr as a UnixFS file. Absent: the guest wrote nothing to stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<Cid>,
    /// How the run ended.
    pub outcome: Outcome,
    /// What the run consumed.
    pub usage: Usage,
    /// What ran it.
    pub runtime: Runtime,
    /// The node's ed25519 public key, which signs the receipt.
    #[serde(with = "serde_bytes")]
    pub node_key: [u8; 32],
    /// What vouches for the node key: hardware evidence, or the `none` technology.
    pub evidence: Evidence,
    /// When the node signed the receipt, in seconds since the Unix epoch.
    pub issued_at: u64,
    /// The keys of the job's sealed parts (module, inputs) and the access policies their owners'
    /// brokers released them under. Absent: nothing sealed was read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<KeyRelease>,
}

/// One sealed part a job read, and the policy its key was released under (`docs/seal.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRelease {
    /// The sealed object's id (its header's `object_id`).
    #[serde(with = "serde_bytes")]
    pub object: [u8; 16],
    /// The ciphertext's CID: the job's module or one of its inputs.
    pub sealed: Cid,
    /// SHA-256 digest of the access policy the broker applied (`AccessPolicy::digest`).
    #[serde(with = "serde_bytes")]
    pub policy: [u8; 32],
    /// The release rested on `none` evidence: NO HARDWARE CLAIM.
    pub insecure: bool,
}

/// How a run ended. Every limit reached is an outcome, never a crash.
///
/// Encoded as a map with a `kind` string, plus `code` for `exited` and `message` for `trapped`
/// and `rejected`, and no other field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "OutcomeRepr", into = "OutcomeRepr")]
pub enum Outcome {
    /// `exited`: the guest returned from `_start` (code 0) or called `proc_exit(code)`.
    Exited { code: i32 },
    /// `trapped`: a Wasm trap (unreachable, out-of-bounds access, stack overflow, …), with the
    /// runtime's message.
    Trapped { message: String },
    /// `rejected`: the module could not be compiled, linked or instantiated (not Wasm, an
    /// import the host does not provide, …); nothing ran.
    Rejected { message: String },
    /// `out_of_fuel`: `limits.fuel` was consumed.
    OutOfFuel,
    /// `timeout`: `limits.wall_time_ms` elapsed.
    Timeout,
    /// `memory_limit`: a linear memory needed to grow past `limits.memory_bytes`.
    MemoryLimit,
    /// `output_limit`: the files under `/outputs` exceeded `limits.output_bytes`.
    OutputLimit,
    /// `stdout_limit`: stdout exceeded `limits.stdout_bytes`.
    StdoutLimit,
    /// `stderr_limit`: stderr exceeded `limits.stderr_bytes`.
    StderrLimit,
    /// `stack_overflow`: the Wasm call stack overflowed the runtime's stack limit.
    StackOverflow,
    /// `resource_limit`: the module needed more tables, table elements, memories or instances
    /// than the node allows; `message` names which.
    ResourceLimit { message: String },
}

/// The wire form of [`Outcome`].
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeRepr {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// The outcome kinds without fields, in documentation order.
const UNIT_OUTCOMES: [(&str, Outcome); 7] = [
    ("out_of_fuel", Outcome::OutOfFuel),
    ("timeout", Outcome::Timeout),
    ("memory_limit", Outcome::MemoryLimit),
    ("output_limit", Outcome::OutputLimit),
    ("stdout_limit", Outcome::StdoutLimit),
    ("stderr_limit", Outcome::StderrLimit),
    ("stack_overflow", Outcome::StackOverflow),
];

impl Outcome {
    /// The `kind` string of this outcome.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Exited { .. } => "exited",
            Outcome::Trapped { .. } => "trapped",
            Outcome::Rejected { .. } => "rejected",
            Outcome::ResourceLimit { .. } => "resource_limit",
            unit => {
                UNIT_OUTCOMES.iter().find(|(_, o)| o == unit).map(|(k, _)| *k).expect("every unit outcome is listed")
            }
        }
    }
}

impl From<Outcome> for OutcomeRepr {
    fn from(o: Outcome) -> Self {
        let kind = o.kind().to_string();
        let (code, message) = match o {
            Outcome::Exited { code } => (Some(code), None),
            Outcome::Trapped { message } | Outcome::Rejected { message } | Outcome::ResourceLimit { message } => {
                (None, Some(message))
            }
            _ => (None, None),
        };
        OutcomeRepr { kind, code, message }
    }
}

impl TryFrom<OutcomeRepr> for Outcome {
    type Error = String;

    fn try_from(r: OutcomeRepr) -> Result<Self, String> {
        let fields = |needs: &str| format!("outcome `{}` needs {needs}", r.kind);
        match (r.kind.as_str(), r.code, r.message) {
            ("exited", Some(code), None) => Ok(Outcome::Exited { code }),
            ("exited", ..) => Err(fields("`code` and no `message`")),
            ("trapped", None, Some(message)) => Ok(Outcome::Trapped { message }),
            ("rejected", None, Some(message)) => Ok(Outcome::Rejected { message }),
            ("resource_limit", None, Some(message)) => Ok(Outcome::ResourceLimit { message }),
            ("trapped" | "rejected" | "resource_limit", ..) => Err(fields("`message` and no `code`")),
            (kind, code, message) => match UNIT_OUTCOMES.iter().find(|(k, _)| *k == kind) {
                Some((_, o)) if code.is_none() && message.is_none() => Ok(o.clone()),
                Some(_) => Err(fields("neither `code` nor `message`")),
                None => {
                    let known: Vec<&str> = ["exited", "trapped", "rejected", "resource_limit"]
                        .into_iter()
                        .chain(UNIT_OUTCOMES.iter().map(|(k, _)| *k))
                        .collect();
                    Err(format!("unknown outcome kind `{kind}`, expected one of {}", known.join(", ")))
                }
            },
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited { code } => write!(f, "exited with code {code}"),
            Outcome::Trapped { message } => write!(f, "trapped: {message}"),
            Outcome::Rejected { message } => write!(f, "rejected: {message}"),
            Outcome::OutOfFuel => f.write_str("out of fuel"),
            Outcome::Timeout => f.write_str("timed out"),
            Outcome::MemoryLimit => f.write_str("memory limit reached"),
            Outcome::OutputLimit => f.write_str("output limit reached"),
            Outcome::StdoutLimit => f.write_str("stdout limit reached"),
            Outcome::StderrLimit => f.write_str("stderr limit reached"),
            Outcome::StackOverflow => f.write_str("call stack overflowed"),
            Outcome::ResourceLimit { message } => write!(f, "resource limit reached: {message}"),
        }
    }
}

/// What a run consumed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Fuel consumed, recorded whenever the engine meters fuel (with or without `limits.fuel`).
    /// Absent: the engine did not meter fuel, or the module never ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel_consumed: Option<u64>,
    /// Wall-clock time of the run, in nanoseconds.
    pub wall_time_ns: u64,
    /// Largest size any linear memory reached, in bytes.
    pub peak_memory_bytes: u64,
}

/// The software that ran the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    /// Vouch version (`CARGO_PKG_VERSION` of the node).
    pub vouch: String,
    /// wasmtime version.
    pub wasmtime: String,
    /// SHA-256 of the sandbox's engine configuration (defined by the sandbox): equal hashes and
    /// versions mean the same compilation and execution semantics.
    #[serde(with = "serde_bytes")]
    pub engine_config_hash: [u8; 32],
}

/// What vouches for the node key. It names its technology and binds the node key through
/// `report_data = SHA-256(REPORT_DATA_DOMAIN ‖ node_key ‖ nonce)`, which hardware evidence
/// carries as its report data (SEV-SNP, TDX, SGX) or qualifying data (TPM).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub technology: Technology,
    /// The freshness nonce the evidence was produced for (chosen by the node or a verifier).
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// [`report_data`] of the receipt's node key and `nonce`.
    #[serde(with = "serde_bytes")]
    pub report_data: [u8; 32],
    /// The technology's evidence (report or quote, certificates, collateral), inline or by CID.
    /// Absent for `none`, required by every other technology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<EvidenceBody>,
    /// When the node produced the evidence (Unix seconds). Absent for `none`. Checked against
    /// the appraisal policy's `max_evidence_age`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub produced_at: Option<u64>,
}

/// The technology behind [`Evidence`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Technology {
    /// `none`: no hardware claim. The node only signs; nothing vouches for its key or its
    /// software. Verifiers reject it unless insecure receipts are explicitly allowed.
    None,
    /// `tpm`: TPM 2.0 quote (platform integrity, no memory confidentiality).
    Tpm,
    /// `sev-snp`: AMD SEV-SNP attestation report.
    SevSnp,
    /// `tdx`: Intel TDX quote.
    Tdx,
    /// `sgx`: Intel SGX quote.
    Sgx,
}

impl Technology {
    /// The wire name: `none`, `tpm`, `sev-snp`, `tdx`, `sgx`.
    pub fn as_str(self) -> &'static str {
        match self {
            Technology::None => "none",
            Technology::Tpm => "tpm",
            Technology::SevSnp => "sev-snp",
            Technology::Tdx => "tdx",
            Technology::Sgx => "sgx",
        }
    }
}

impl fmt::Display for Technology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a technology's evidence is: a single-key map, `{"inline": bytes}` or `{"link": CID}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceBody {
    /// The evidence bytes themselves.
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The CID of a block holding the evidence (bundled with the receipt when exported).
    Link(Cid),
}

/// `SHA-256(REPORT_DATA_DOMAIN ‖ node_key ‖ nonce)`: what evidence carries to bind the node key.
pub fn report_data(node_key: &[u8; 32], nonce: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(REPORT_DATA_DOMAIN);
    h.update(node_key);
    h.update(nonce);
    h.finalize().into()
}

impl Evidence {
    /// Evidence of the `none` technology for `node_key`: no hardware claim, but the same binding
    /// (nonce and report data) as hardware evidence, so everything else runs the same way.
    pub fn none(node_key: &[u8; 32], nonce: Vec<u8>) -> Self {
        let report_data = report_data(node_key, &nonce);
        Evidence { technology: Technology::None, nonce, report_data, body: None, produced_at: None }
    }
}

impl ReceiptBody {
    /// The bytes the signature covers: [`SIGNATURE_DOMAIN`] followed by the canonical DAG-CBOR
    /// encoding of this body (the receipt's map without its `signature` entry).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 1024);
        out.extend_from_slice(SIGNATURE_DOMAIN);
        codec::encode_into(self, &mut out);
        out
    }
}

/// The node key as a receipt signer: Ed25519 (RFC 8032), whose signatures are deterministic, so
/// every correct implementation signs a body to the same bytes. ed25519-dalek's [`SigningKey`]
/// is one; a node may use a faster implementation of the same key.
pub trait ReceiptSigner {
    /// The Ed25519 public key.
    fn public_key(&self) -> [u8; 32];
    /// The Ed25519 signature of `message`.
    fn sign_ed25519(&self, message: &[u8]) -> [u8; 64];
}

impl ReceiptSigner for SigningKey {
    fn public_key(&self) -> [u8; 32] {
        self.verifying_key().to_bytes()
    }

    fn sign_ed25519(&self, message: &[u8]) -> [u8; 64] {
        self.sign(message).to_bytes()
    }
}

impl Receipt {
    /// Sign `body` with the node key. Fails if `key` is not the key named in `body.node_key`.
    pub fn sign(body: ReceiptBody, key: &(impl ReceiptSigner + ?Sized)) -> Result<Receipt, Error> {
        Receipt::sign_encoded(body, key).map(|(receipt, _)| receipt)
    }

    /// [`Receipt::sign`], and the receipt's [`encode`](Receipt::encode)ing, from one encoding
    /// of the body.
    pub fn sign_encoded(body: ReceiptBody, key: &(impl ReceiptSigner + ?Sized)) -> Result<(Receipt, Vec<u8>), Error> {
        let public = key.public_key();
        if public != body.node_key {
            return Err(Error::KeyMismatch { key: hex::encode(public), node_key: hex::encode(body.node_key) });
        }
        let signed = body.signed_bytes();
        let signature = key.sign_ed25519(&signed);
        let receipt = Receipt { body, signature };
        let encoded = receipt.encode_from_body(&signed[SIGNATURE_DOMAIN.len()..]);
        Ok((receipt, encoded))
    }

    /// The canonical DAG-CBOR encoding: the body's map with `signature` added.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_from_body(&codec::encode(&self.body))
    }

    /// [`encode`](Receipt::encode), given the body's encoding. `signature` sorts after every
    /// body key in DAG-CBOR's order (shorter keys first, then bytewise: the only other 9-byte
    /// key, `issued_at`, is smaller), so it is the map's last entry: the receipt is the body
    /// with the map's count one higher and the entry appended.
    fn encode_from_body(&self, body: &[u8]) -> Vec<u8> {
        // Cannot fail: `body` is the encoding of a struct, a map with a well-formed head.
        let (entries, head_len) = crate::cbor::map_head(body).expect("a receipt body encodes as a map");
        let mut out = Vec::with_capacity(body.len() + 9 + 1 + SIGNATURE_KEY.len() + 2 + 64);
        crate::cbor::map_head_into(&mut out, entries + 1);
        out.extend_from_slice(&body[head_len..]);
        out.push(0x60 | SIGNATURE_KEY.len() as u8); // text string, length < 24
        out.extend_from_slice(SIGNATURE_KEY.as_bytes());
        out.extend_from_slice(&[0x58, 64]); // byte string, one-byte length
        out.extend_from_slice(&self.signature);
        out
    }

    /// The encoding through an IPLD map: slower, obviously canonical (the tests' reference).
    #[cfg(test)]
    fn encode_via_ipld(&self) -> Vec<u8> {
        // Cannot fail: the body is a struct of plain data, which always converts to an IPLD map.
        let Ok(Ipld::Map(mut map)) = ipld_core::serde::to_ipld(&self.body) else {
            unreachable!("a receipt body converts to an IPLD map")
        };
        map.insert(SIGNATURE_KEY.to_string(), Ipld::Bytes(self.signature.to_vec()));
        codec::encode(&Ipld::Map(map))
    }

    /// The receipt CID: CIDv1, dag-cbor, sha2-256 of [`Receipt::encode`].
    pub fn cid(&self) -> Cid {
        codec::cid_of(&self.encode())
    }

    /// Decode a receipt strictly: at most [`MAX_RECEIPT_BYTES`], strict DAG-CBOR, version
    /// [`RECEIPT_VERSION`], no unknown or missing fields, the canonical encoding. This checks
    /// structure only; use [`crate::verify`] to check the signature and every other claim.
    pub fn decode(bytes: &[u8]) -> Result<Receipt, Error> {
        codec::decode(&RECEIPT, bytes, Receipt::from_ipld, Receipt::encode)
    }

    /// The schema step of decoding: split off `signature`, then the body's fields.
    pub(crate) fn from_ipld(value: Ipld) -> Result<Receipt, Error> {
        let schema = |path: &str, reason: String| codec::schema_error(&RECEIPT, path.to_string(), reason);
        let Ipld::Map(mut map) = value else {
            return Err(schema(".", "expected a map".into()));
        };
        let signature = match map.remove(SIGNATURE_KEY) {
            Some(Ipld::Bytes(b)) => <[u8; 64]>::try_from(b.as_slice())
                .map_err(|_| schema(SIGNATURE_KEY, format!("expected 64 bytes, found {}", b.len())))?,
            Some(_) => return Err(schema(SIGNATURE_KEY, "expected a byte string".into())),
            None => return Err(schema(".", format!("missing field `{SIGNATURE_KEY}`"))),
        };
        let body = codec::from_ipld(&RECEIPT, Ipld::Map(map))?;
        Ok(Receipt { body, signature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(key: &SigningKey) -> ReceiptBody {
        let node_key = key.verifying_key().to_bytes();
        let spec = JobSpec::new(codec::cid_of(b"module"));
        ReceiptBody {
            version: RECEIPT_VERSION,
            job: spec.cid(),
            spec,
            output: None,
            stdout: None,
            stderr: None,
            outcome: Outcome::Exited { code: 0 },
            usage: Usage { fuel_consumed: None, wall_time_ns: 1, peak_memory_bytes: 65536 },
            runtime: Runtime { vouch: "0.1.0".into(), wasmtime: "48.0.8".into(), engine_config_hash: [0; 32] },
            node_key,
            evidence: Evidence::none(&node_key, vec![]),
            issued_at: 0,
            releases: Vec::new(),
        }
    }

    #[test]
    fn sign_refuses_a_key_that_is_not_the_node_key() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        assert!(matches!(Receipt::sign(body(&key), &other), Err(Error::KeyMismatch { .. })));
    }

    #[test]
    fn signed_bytes_are_the_domain_and_the_map_without_signature() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let r = Receipt::sign(body(&key), &key).unwrap();
        let Ipld::Map(mut m) = serde_ipld_dagcbor::from_slice::<Ipld>(&r.encode()).unwrap() else { panic!() };
        assert!(m.remove("signature").is_some());
        let mut expected = SIGNATURE_DOMAIN.to_vec();
        expected.extend(serde_ipld_dagcbor::to_vec(&Ipld::Map(m)).unwrap());
        assert_eq!(r.body.signed_bytes(), expected);
    }

    /// The spliced encoding is the canonical one, with every optional field absent and present.
    #[test]
    fn encode_matches_the_general_ipld_encoding() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let mut full = body(&key);
        let cid = codec::cid_of(b"x");
        (full.output, full.stdout, full.stderr) = (Some(cid), Some(cid), Some(cid));
        full.usage.fuel_consumed = Some(7);
        full.evidence.body = Some(EvidenceBody::Inline(vec![1, 2, 3]));
        full.evidence.produced_at = Some(9);
        full.releases = vec![KeyRelease { object: [3; 16], sealed: cid, policy: [4; 32], insecure: true }];
        full.issued_at = u64::MAX;
        for b in [body(&key), full] {
            let (r, encoded) = Receipt::sign_encoded(b, &key).unwrap();
            assert_eq!(encoded, r.encode_via_ipld());
            assert_eq!(r.encode(), encoded);
            assert_eq!(Receipt::decode(&encoded).unwrap(), r);
            assert!(key.verifying_key().verify_strict(&r.body.signed_bytes(), &r.signature.into()).is_ok());
        }
    }

    #[test]
    fn every_outcome_round_trips_and_bad_shapes_are_named() {
        let all = [
            Outcome::Exited { code: -1 },
            Outcome::Trapped { message: "unreachable".into() },
            Outcome::Rejected { message: "not wasm".into() },
        ]
        .into_iter()
        .chain(UNIT_OUTCOMES.iter().map(|(_, o)| o.clone()));
        for o in all {
            let bytes = codec::encode(&o);
            assert_eq!(serde_ipld_dagcbor::from_slice::<Outcome>(&bytes).unwrap(), o, "{o}");
        }
        let bad = |kind: &str, code: Option<i32>, message: Option<&str>| {
            let r = OutcomeRepr { kind: kind.into(), code, message: message.map(Into::into) };
            Outcome::try_from(r).unwrap_err()
        };
        assert_eq!(bad("exited", None, None), "outcome `exited` needs `code` and no `message`");
        assert_eq!(bad("trapped", Some(1), Some("x")), "outcome `trapped` needs `message` and no `code`");
        assert_eq!(bad("timeout", Some(1), None), "outcome `timeout` needs neither `code` nor `message`");
        assert!(bad("exploded", None, None).starts_with("unknown outcome kind `exploded`, expected one of exited,"));
    }

    #[test]
    fn report_data_is_the_documented_hash() {
        let key = [7u8; 32];
        let mut input = b"vouch-report-data-v1\0".to_vec();
        input.extend([7u8; 32]);
        input.extend(b"nonce");
        assert_eq!(report_data(&key, b"nonce"), <[u8; 32]>::from(Sha256::digest(&input)));
    }
}
