//! Vouch job specs and receipts: the DAG-CBOR formats nodes exchange, ed25519 signing, and
//! offline verification that reports every claim it checks.
//!
//! - A [`JobSpec`] says what to run: module CID, inputs mounted at `/inputs/NAME`, arguments,
//!   environment, limits, determinism. Its CID ([`JobSpec::cid`]) is the job id.
//! - A [`Receipt`] says what happened: the job (CID and spec inline), output/stdout/stderr CIDs,
//!   [`Outcome`], [`Usage`], [`Runtime`], the node key, [`Evidence`] for that key, the time, and
//!   an ed25519 signature over `SIGNATURE_DOMAIN ‖ DAG-CBOR(everything else)`.
//! - [`verify`] checks an encoded receipt offline and returns a [`Report`]: each of [`CLAIMS`]
//!   passed, failed (expected vs found) or skipped (why).
//!
//! Encodings are canonical DAG-CBOR and decoding is strict: a value has exactly one accepted
//! encoding, so CIDs and signatures cannot be malleated. Normative specs: `docs/job-spec.md`,
//! `docs/receipt.md`. No I/O happens here besides reading the system clock when
//! [`VerifyOptions::at`] is not given.
//!
//! ```
//! use vouch_receipt::*;
//!
//! // The job: run a module (here any CID) over one input.
//! let module: Cid = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy".parse().unwrap();
//! let mut spec = JobSpec::new(module);
//! spec.inputs.insert("data.csv".into(), module);
//! spec.args = vec!["main.wasm".into(), "/inputs/data.csv".into()];
//! let spec = JobSpec::decode(&spec.encode()).unwrap(); // what a node receiving it does
//!
//! // The node ran it; it signs what happened.
//! let key = SigningKey::from_bytes(&[1; 32]);
//! let node_key = key.verifying_key().to_bytes();
//! let body = ReceiptBody {
//!     version: RECEIPT_VERSION,
//!     job: spec.cid(),
//!     spec,
//!     output: None,
//!     stdout: None,
//!     stderr: None,
//!     outcome: Outcome::Exited { code: 0 },
//!     usage: Usage { fuel_consumed: None, wall_time_ns: 1_000, peak_memory_bytes: 65_536 },
//!     runtime: Runtime { vouch: "0.1.0".into(), wasmtime: "48.0.8".into(), engine_config_hash: [0; 32] },
//!     node_key,
//!     evidence: Evidence::none(&node_key, b"nonce".to_vec()),
//!     issued_at: 1_750_000_000,
//!     releases: vec![],
//! };
//! let bytes = Receipt::sign(body, &key).unwrap().encode();
//!
//! // Anyone verifies it offline. `none` evidence is no hardware claim: rejected by default...
//! let strict = VerifyOptions { at: Some(1_750_000_000), ..Default::default() };
//! let report = verify(&bytes, &strict);
//! assert_eq!(report.first_failure().unwrap().name, "evidence");
//!
//! // ...and accepted only when insecure receipts are explicitly allowed.
//! let insecure = VerifyOptions { allow_insecure: true, expected_node_key: Some(node_key), ..strict };
//! let report = verify(&bytes, &insecure);
//! assert!(report.verified(), "{report}");
//!
//! // Any flipped byte is caught.
//! let mut tampered = bytes.clone();
//! tampered[100] ^= 1;
//! assert!(!verify(&tampered, &insecure).verified());
//! ```

mod cbor;
mod codec;
mod error;
mod receipt;
mod spec;
mod verify;

pub use cid::Cid;
pub use ed25519_dalek::SigningKey;
pub use error::Error;
pub use receipt::{
    Evidence, EvidenceBody, KeyRelease, MAX_RECEIPT_BYTES, Outcome, RECEIPT_VERSION, REPORT_DATA_DOMAIN, Receipt,
    ReceiptBody, ReceiptSigner, Runtime, SIGNATURE_DOMAIN, Technology, Usage, report_data,
};
pub use spec::{
    JobSpec, Limits, MAX_MEMORY_BYTES, MAX_MOUNT_PATH_BYTES, MAX_NAME_BYTES, MAX_OUTPUT_BYTES, MAX_RECIPIENT_BYTES,
    MAX_SPEC_BYTES, MAX_STREAM_BYTES, MAX_WALL_TIME_MS, MIN_MEMORY_BYTES, SPEC_VERSION,
};
pub use verify::{CLAIMS, Claim, Report, Status, VerifyOptions, verify, verify_with};
pub use vouch_attest::{Check, Checks, Policy, Status as CheckStatus};
