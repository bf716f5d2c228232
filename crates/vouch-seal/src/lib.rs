//! Sealing for Vouch: data and modules at rest as ciphertext, keys released only to attested
//! runtimes running jobs their owner's policy allows, results sealed to their recipient.
//!
//! - [`stream`]: the sealed-object format, streaming AES-256-GCM (aws-lc-rs) in STREAM chunks
//!   ([`seal`], [`open`], [`Sealer`] and [`Opener`] as `Read` adaptors); bounded memory; every
//!   tampering (flipped byte, dropped / duplicated / reordered / appended chunk, truncation) is
//!   a specific [`Error`].
//! - [`wrap`]: HPKE (RFC 9180) wrapping of a [`DataKey`] to an X25519 key, bound to the job and
//!   object; [`result`]: a job result sealed to its recipient.
//! - [`policy`]: the owner's [`AccessPolicy`] (TOML, validated on load).
//! - [`broker`]: the pure key-broker decision: challenge, appraisal of evidence bound to the
//!   runtime's ephemeral key, policy, then a [`Grant`] or a [`Refusal`] naming the rule.
//! - [`audit`]: the hash-chained, fsynced audit log of every decision.
//!
//! Normative formats: `docs/seal.md`. No tokio, no wasmtime; I/O only through the `Read` /
//! `Write` given and the audit log file.
//!
//! ```
//! use vouch_seal::*;
//! use vouch_seal::broker::{Broker, JobView, KeyRequest, Decision};
//!
//! // The owner seals a file under a fresh key.
//! let key = DataKey::generate();
//! let mut sealed = Vec::new();
//! let summary = seal(&key, &b"patient records"[..], &mut sealed, SealOptions::default()).unwrap();
//! let object = summary.header.object;
//!
//! // Its broker holds the key under a policy (dev mode: `none` evidence, accepted loudly).
//! let module: Cid = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy".parse().unwrap();
//! let lab = HpkeSecretKey::generate();
//! let policy = AccessPolicy::from_toml_str(&format!(r#"
//!     [modules]
//!     allow = ["{module}"]
//!     [evidence]
//!     require = ["none"]
//!     allow_insecure = true
//!     [results]
//!     recipients = ["{}"]
//!     max_output_bytes = 1048576
//! "#, lab.public())).unwrap();
//! let mut broker = Broker::new(vec![]);
//! let data_cid = module; // the ciphertext's CID after import (here: the module reads itself)
//! broker.register(object, data_cid, DataKey::from_bytes(*key.expose_secret()), policy).unwrap();
//!
//! // A runtime asks with a fresh ephemeral key and the broker's challenge.
//! let mut spec = vouch_receipt::JobSpec::new(module);
//! spec.recipient = Some(lab.public().0.to_vec());
//! spec.limits.output_bytes = 1 << 19;
//! spec.limits.stdout_bytes = 1 << 10;
//! spec.limits.stderr_bytes = 1 << 10;
//! let job = JobView::from_spec(&spec);
//! let ephemeral = HpkeSecretKey::generate();
//! let now = 1_750_000_000;
//! let challenge = broker.challenge(&object, now).unwrap();
//! let req = KeyRequest {
//!     object, job: job.clone(), node_key: [1; 32], technology: "none".into(), evidence: vec![],
//!     ephemeral_key: ephemeral.public(), challenge, endorsements: vec![],
//! };
//! let Decision::Granted(grant) = broker.decide(&req, now) else { panic!("refused") };
//! assert!(grant.insecure, "none evidence: NO HARDWARE CLAIM, and the grant says so");
//!
//! // Inside the runtime: unwrap and open.
//! let key = unwrap(Purpose::KeyRelease, &grant.wrapped, &ephemeral, &job.cid, &object).unwrap();
//! let mut plain = Vec::new();
//! open(&key, &sealed[..], &mut plain).unwrap();
//! assert_eq!(plain, b"patient records");
//!
//! // The same request again is a replay: refused, naming the rule.
//! let Decision::Refused(r) = broker.decide(&req, now) else { panic!("replay granted") };
//! assert_eq!(r.rule, "challenge");
//! ```

pub mod audit;
pub mod broker;
mod error;
pub mod key;
pub mod policy;
pub mod result;
pub mod stream;
pub mod wrap;

pub use broker::{
    Broker, Decision, Grant, JobView, KeyRequest, ModuleEndorsement, Refusal, request_binding, request_nonce,
};
pub use cid::Cid;
pub use error::Error;
pub use key::{DataKey, KeyId, ObjectId};
pub use policy::AccessPolicy;
pub use result::{open_result, seal_result};
pub use stream::{Header, OpenSummary, Opener, SealOptions, SealSummary, Sealer, open, seal, sealed_len};
pub use wrap::{HpkePublicKey, HpkeSecretKey, Purpose, WrappedKey, unwrap, wrap};

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
