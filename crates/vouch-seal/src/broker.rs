//! The key broker's decision logic, pure: it holds (object id → data key, ciphertext CID,
//! policy), issues single-use challenges, and answers a [`KeyRequest`] with a [`Grant`] (the
//! data key HPKE-wrapped to the runtime's ephemeral key, plus the limits the runtime must
//! enforce) or a [`Refusal`] naming the rule that failed. Time is an input; nothing here does
//! I/O (the caller appends each [`Decision`] to the [`crate::audit::AuditLog`]).
//!
//! Binding: the evidence's nonce is
//! `SHA-256("vouch-key-request-v1\0" ‖ challenge ‖ ephemeral HPKE public key ‖ job CID bytes)`
//! and its report data is the receipt layer's `SHA-256("vouch-report-data-v1\0" ‖ node key ‖
//! nonce)` ([`vouch_receipt::report_data`]), so evidence made for one ephemeral key, job or
//! challenge does not appraise for another.

use std::collections::HashMap;

use cid::Cid;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::key::{DataKey, ObjectId, random};
use crate::policy::{AccessPolicy, Allowed};
use crate::wrap::{HpkePublicKey, Purpose, WrappedKey, wrap};
use crate::{Error, Result};

/// Domain of [`request_nonce`].
pub const KEY_REQUEST_DOMAIN: &[u8] = b"vouch-key-request-v1\0";
/// Domain of a module endorsement signature: `ed25519(MODULE_DOMAIN ‖ module CID bytes)`.
pub const MODULE_DOMAIN: &[u8] = b"vouch-module-v1\0";
/// Most challenges outstanding at once (bounded memory; expired ones are purged first).
pub const MAX_CHALLENGES: usize = 4096;

/// The evidence nonce of a key request:
/// `SHA-256(KEY_REQUEST_DOMAIN ‖ challenge ‖ ephemeral key ‖ job CID bytes)`.
pub fn request_nonce(challenge: &[u8; 32], ephemeral: &HpkePublicKey, job: &Cid) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(KEY_REQUEST_DOMAIN);
    h.update(challenge);
    h.update(ephemeral.0);
    h.update(job.to_bytes());
    h.finalize().into()
}

/// The 32-byte binding the request's evidence must carry as report / qualifying data.
pub fn request_binding(node_key: &[u8; 32], challenge: &[u8; 32], ephemeral: &HpkePublicKey, job: &Cid) -> [u8; 32] {
    vouch_receipt::report_data(node_key, &request_nonce(challenge, ephemeral, job))
}

/// What the policy needs to know about a job. Build it from the spec with
/// [`JobView::from_spec`] so that `cid` is the spec's own CID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobView {
    pub cid: Cid,
    pub module: Cid,
    pub inputs: Vec<Cid>,
    pub args: Vec<String>,
    pub env: std::collections::BTreeMap<String, String>,
    pub memory_bytes: u64,
    pub fuel: Option<u64>,
    pub wall_time_ms: u64,
    /// `output_bytes + stdout_bytes + stderr_bytes`: everything that leaves the runtime.
    pub output_bytes: u64,
    pub deterministic: bool,
    pub recipient: Option<Vec<u8>>,
}

impl JobView {
    pub fn from_spec(spec: &vouch_receipt::JobSpec) -> JobView {
        let l = &spec.limits;
        JobView {
            cid: spec.cid(),
            module: spec.module,
            inputs: spec.inputs.values().chain(spec.mounts.values()).copied().collect(),
            args: spec.args.clone(),
            env: spec.env.clone(),
            memory_bytes: l.memory_bytes,
            fuel: l.fuel,
            wall_time_ms: l.wall_time_ms,
            output_bytes: l.output_bytes.saturating_add(l.stdout_bytes).saturating_add(l.stderr_bytes),
            deterministic: spec.deterministic,
            recipient: spec.recipient.clone(),
        }
    }
}

/// An algorithm owner's statement that `module` is theirs: ed25519 over
/// `MODULE_DOMAIN ‖ module CID bytes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleEndorsement {
    #[serde(with = "serde_bytes")]
    pub signer: [u8; 32],
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

impl ModuleEndorsement {
    pub fn sign(key: &ed25519_dalek::SigningKey, module: &Cid) -> ModuleEndorsement {
        use ed25519_dalek::Signer;
        let msg = [MODULE_DOMAIN, &module.to_bytes()].concat();
        ModuleEndorsement { signer: key.verifying_key().to_bytes(), signature: key.sign(&msg).to_bytes() }
    }

    fn verifies(&self, module: &Cid) -> bool {
        let msg = [MODULE_DOMAIN, &module.to_bytes()].concat();
        VerifyingKey::from_bytes(&self.signer)
            .is_ok_and(|k| k.verify(&msg, &Signature::from_bytes(&self.signature)).is_ok())
    }
}

/// A key request as the broker evaluates it (the wire form carries the job spec; see
/// `docs/seal.md`).
#[derive(Clone, Debug)]
pub struct KeyRequest {
    pub object: ObjectId,
    pub job: JobView,
    /// The node's ed25519 public key (bound by the evidence; signs the receipt).
    pub node_key: [u8; 32],
    /// `none`, `tpm`, `sev-snp`, `tdx`, `sgx`.
    pub technology: String,
    /// The technology's evidence body (empty for `none`).
    pub evidence: Vec<u8>,
    /// The runtime's ephemeral HPKE key the data key is wrapped to.
    pub ephemeral_key: HpkePublicKey,
    /// The challenge this broker issued.
    pub challenge: [u8; 32],
    pub endorsements: Vec<ModuleEndorsement>,
}

/// Largest encoded key request accepted: a 1 MiB job spec plus 1 MiB of evidence and change.
pub const MAX_REQUEST_BYTES: usize = 3 << 20;

/// The wire form of a [`KeyRequest`] (DAG-CBOR map): the job travels as its encoded spec, so
/// the broker computes the job CID itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequestWire {
    pub version: u64,
    #[serde(with = "serde_bytes")]
    pub object: [u8; 16],
    /// The DAG-CBOR job spec (`docs/job-spec.md`).
    #[serde(with = "serde_bytes")]
    pub spec: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub node_key: [u8; 32],
    pub technology: String,
    #[serde(with = "serde_bytes")]
    pub evidence: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub ephemeral_key: [u8; 32],
    #[serde(with = "serde_bytes")]
    pub challenge: [u8; 32],
    pub endorsements: Vec<ModuleEndorsement>,
}

impl KeyRequest {
    /// Encode for the wire.
    pub fn encode(&self, spec: &vouch_receipt::JobSpec) -> Vec<u8> {
        let wire = KeyRequestWire {
            version: 1,
            object: self.object.0,
            spec: spec.encode(),
            node_key: self.node_key,
            technology: self.technology.clone(),
            evidence: self.evidence.clone(),
            ephemeral_key: self.ephemeral_key.0,
            challenge: self.challenge,
            endorsements: self.endorsements.clone(),
        };
        // A struct of byte strings, strings and integers always encodes.
        serde_ipld_dagcbor::to_vec(&wire).expect("key requests encode")
    }

    /// Decode a wire request strictly: size, DAG-CBOR schema, version 1, a valid job spec.
    pub fn decode(bytes: &[u8]) -> Result<KeyRequest> {
        let bad = |reason: String| Error::Wire { what: "key request", reason };
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(bad(format!("{} bytes, more than {MAX_REQUEST_BYTES}", bytes.len())));
        }
        let w: KeyRequestWire = serde_ipld_dagcbor::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if w.version != 1 {
            return Err(bad(format!("version {} (this build reads 1)", w.version)));
        }
        let spec = vouch_receipt::JobSpec::decode(&w.spec).map_err(|e| bad(format!("spec: {e}")))?;
        Ok(KeyRequest {
            object: ObjectId(w.object),
            job: JobView::from_spec(&spec),
            node_key: w.node_key,
            technology: w.technology,
            evidence: w.evidence,
            ephemeral_key: HpkePublicKey(w.ephemeral_key),
            challenge: w.challenge,
            endorsements: w.endorsements,
        })
    }
}

/// A released key and the limits the runtime must enforce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[serde(with = "serde_bytes")]
    pub object: [u8; 16],
    pub job: Cid,
    pub wrapped: WrappedKey,
    /// Most bytes (outputs + stdout + stderr) the runtime may let leave, sealed to `recipient`.
    pub max_output_bytes: u64,
    #[serde(with = "serde_bytes")]
    pub recipient: [u8; 32],
    /// `true` when the evidence was `none`: NO HARDWARE CLAIM backed this release.
    pub insecure: bool,
    /// The access policy the release was decided under ([`crate::AccessPolicy::digest`]).
    #[serde(with = "serde_bytes")]
    pub policy: [u8; 32],
}

/// A refused request: the rule (a policy field or `challenge`, `object`, `evidence`, …),
/// what it expects and what the request had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    pub rule: String,
    pub expected: String,
    pub found: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused by rule `{}`: expected {}, found {}", self.rule, self.expected, self.found)
    }
}

/// The broker's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Granted(Grant),
    Refused(Refusal),
}

struct Entry {
    key: DataKey,
    cid: Cid,
    policy: AccessPolicy,
}

struct Challenge {
    object: ObjectId,
    expires_at: u64,
}

/// The key broker's state: keys, policies and outstanding challenges. `Debug` never shows a key.
pub struct Broker {
    objects: HashMap<ObjectId, Entry>,
    challenges: HashMap<[u8; 32], Challenge>,
    trust_roots: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("objects", &self.objects.keys().collect::<Vec<_>>())
            .field("challenges", &self.challenges.len())
            .finish_non_exhaustive()
    }
}

fn refuse(rule: &str, expected: impl Into<String>, found: impl Into<String>) -> Refusal {
    Refusal { rule: rule.to_owned(), expected: expected.into(), found: found.into() }
}

impl Broker {
    /// A broker appraising hardware evidence with these extra trust roots (DER certificates:
    /// a TPM EK CA, an enrolment authority), beyond vouch-attest's built-in vendor roots.
    pub fn new(trust_roots: Vec<Vec<u8>>) -> Broker {
        Broker { objects: HashMap::new(), challenges: HashMap::new(), trust_roots }
    }

    /// Hold `key` for the object `object` whose ciphertext has CID `cid`, under `policy`.
    pub fn register(&mut self, object: ObjectId, cid: Cid, key: DataKey, policy: AccessPolicy) -> Result<()> {
        if self.objects.contains_key(&object) {
            return Err(Error::AlreadyRegistered { object: object.to_string() });
        }
        self.objects.insert(object, Entry { key, cid, policy });
        Ok(())
    }

    /// Hold `key` for `object` under `policy`, replacing what was held (the owner changed the
    /// policy). Challenges already issued stay valid; the next decision applies the new policy.
    pub fn update(&mut self, object: ObjectId, cid: Cid, key: DataKey, policy: AccessPolicy) {
        self.objects.insert(object, Entry { key, cid, policy });
    }

    /// A fresh single-use challenge for a request about `object`, valid for the policy's
    /// `challenge_ttl` from `now` (Unix seconds).
    pub fn challenge(&mut self, object: &ObjectId, now: u64) -> Result<[u8; 32], Refusal> {
        let Some(entry) = self.objects.get(object) else {
            return Err(refuse("object", "an object registered with this broker", object.to_string()));
        };
        let expires_at = now.saturating_add(entry.policy.challenge_ttl.as_secs());
        self.challenges.retain(|_, c| c.expires_at > now);
        if self.challenges.len() >= MAX_CHALLENGES {
            let e = Error::TooManyChallenges { max: MAX_CHALLENGES };
            return Err(refuse("challenge", "a free challenge slot", e.to_string()));
        }
        let mut c = [0u8; 32];
        random(&mut c);
        self.challenges.insert(c, Challenge { object: *object, expires_at });
        Ok(c)
    }

    /// Decide `req` at `now`. The challenge is consumed whatever the answer.
    pub fn decide(&mut self, req: &KeyRequest, now: u64) -> Decision {
        match self.evaluate(req, now) {
            Ok(grant) => Decision::Granted(grant),
            Err(r) => Decision::Refused(r),
        }
    }

    fn evaluate(&mut self, req: &KeyRequest, now: u64) -> Result<Grant, Refusal> {
        let challenge = self.challenges.remove(&req.challenge);
        let Some(entry) = self.objects.get(&req.object) else {
            return Err(refuse("object", "an object registered with this broker", req.object.to_string()));
        };
        match challenge {
            None => {
                return Err(refuse(
                    "challenge",
                    "a challenge this broker issued and nobody used",
                    format!("unknown or already used challenge {}", hex::encode(req.challenge)),
                ));
            }
            Some(c) if c.object != req.object => {
                return Err(refuse(
                    "challenge",
                    format!("a challenge for object {}", req.object),
                    c.object.to_string(),
                ));
            }
            Some(c) if now >= c.expires_at => {
                return Err(refuse("challenge", format!("used before {}", c.expires_at), format!("used at {now}")));
            }
            Some(_) => {}
        }
        let (p, job) = (&entry.policy, &req.job);

        // The job must read this object, as its module or an input.
        if job.module != entry.cid && !job.inputs.contains(&entry.cid) {
            return Err(refuse(
                "object",
                format!("a job reading {} (module or input)", entry.cid),
                "a job that does not read it",
            ));
        }

        // Evidence: technology, then appraisal of the binding to this request.
        if !p.require.contains(&req.technology) {
            let found =
                if req.technology == "none" { "none (no hardware claim)".to_owned() } else { req.technology.clone() };
            return Err(refuse("evidence.require", format!("one of [{}]", p.require.join(", ")), found));
        }
        let insecure = req.technology == "none";
        if !insecure {
            // Validation guarantees an appraisal policy whenever hardware is required.
            let Some(appraisal) = &p.appraisal else {
                return Err(refuse("evidence.appraisal", "an appraisal policy", "none in the access policy"));
            };
            let ctx = vouch_attest::Context {
                binding: request_binding(&req.node_key, &req.challenge, &req.ephemeral_key, &job.cid),
                trust_roots: &self.trust_roots,
                at: now,
            };
            let checks = vouch_attest::appraise(&req.technology, &req.evidence, appraisal, &ctx);
            if let Some(c) = checks.first_failure()
                && let vouch_attest::Status::Failed { expected, found } = &c.status
            {
                return Err(refuse(&format!("evidence.appraisal: {}", c.claim), expected.clone(), found.clone()));
            }
        } else if !req.evidence.is_empty() {
            return Err(refuse(
                "evidence",
                "no evidence body for technology none",
                format!("{} bytes", req.evidence.len()),
            ));
        }

        // Module.
        let endorsed = req.endorsements.iter().any(|e| p.module_signers.contains(&e.signer) && e.verifies(&job.module));
        if !p.modules.contains(&job.module) && !endorsed {
            return Err(refuse(
                "modules.allow",
                format!(
                    "one of {} allowed modules, or a module endorsed by one of {} signers",
                    p.modules.len(),
                    p.module_signers.len()
                ),
                job.module.to_string(),
            ));
        }

        // Capabilities.
        let caps = &p.capabilities;
        match &caps.args {
            Allowed::Any => {}
            Allowed::None if job.args.len() <= 1 => {}
            Allowed::None => {
                return Err(refuse("capabilities.args", "no arguments beyond argv[0]", format!("{:?}", job.args)));
            }
            Allowed::Pinned(a) if *a == job.args => {}
            Allowed::Pinned(a) => return Err(refuse("capabilities.args", format!("{a:?}"), format!("{:?}", job.args))),
        }
        match &caps.env {
            Allowed::Any => {}
            Allowed::None if job.env.is_empty() => {}
            Allowed::None => {
                return Err(refuse("capabilities.env", "an empty environment", format!("{:?}", job.env.keys())));
            }
            Allowed::Pinned(e) if *e == job.env => {}
            Allowed::Pinned(e) => return Err(refuse("capabilities.env", format!("{e:?}"), format!("{:?}", job.env))),
        }
        if !job.deterministic && !caps.nondeterministic {
            return Err(refuse("capabilities.nondeterministic", "a deterministic job", "deterministic = false"));
        }
        if let Some(max) = caps.max_memory_bytes
            && job.memory_bytes > max
        {
            return Err(refuse(
                "capabilities.max_memory_bytes",
                format!("at most {max}"),
                job.memory_bytes.to_string(),
            ));
        }
        if let Some(max) = caps.max_fuel {
            match job.fuel {
                Some(f) if f <= max => {}
                Some(f) => return Err(refuse("capabilities.max_fuel", format!("at most {max}"), f.to_string())),
                None => {
                    return Err(refuse(
                        "capabilities.max_fuel",
                        format!("fuel metered, at most {max}"),
                        "no fuel limit",
                    ));
                }
            }
        }
        if let Some(max) = caps.max_wall_time_ms
            && job.wall_time_ms > max
        {
            return Err(refuse(
                "capabilities.max_wall_time_ms",
                format!("at most {max}"),
                job.wall_time_ms.to_string(),
            ));
        }

        // Results.
        let allowed: Vec<String> = p.recipients.iter().map(ToString::to_string).collect();
        let recipient = match job.recipient.as_deref().map(|r| HpkePublicKey::from_slice("recipient", r)) {
            Some(Ok(r)) if p.recipients.contains(&r) => r,
            Some(Ok(r)) => {
                return Err(refuse("results.recipients", format!("one of [{}]", allowed.join(", ")), r.to_string()));
            }
            Some(Err(e)) => return Err(refuse("results.recipients", "a 32-byte X25519 key", e.to_string())),
            None => {
                return Err(refuse(
                    "results.recipients",
                    format!("one of [{}]", allowed.join(", ")),
                    "no recipient (results in the clear)",
                ));
            }
        };
        if job.output_bytes > p.max_output_bytes {
            return Err(refuse(
                "results.max_output_bytes",
                format!("output + stdout + stderr limits of at most {}", p.max_output_bytes),
                job.output_bytes.to_string(),
            ));
        }

        let wrapped = wrap(Purpose::KeyRelease, &entry.key, &req.ephemeral_key, &job.cid, &req.object)
            .map_err(|e| refuse("ephemeral_key", "an X25519 public key", e.to_string()))?;
        Ok(Grant {
            object: req.object.0,
            job: job.cid,
            wrapped,
            max_output_bytes: p.max_output_bytes,
            recipient: recipient.0,
            insecure,
            policy: p.digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_binds_each_part() {
        let job: Cid = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy".parse().unwrap();
        let (c, k) = ([1; 32], HpkePublicKey([2; 32]));
        let n = request_nonce(&c, &k, &job);
        let mut h = Sha256::new();
        h.update(b"vouch-key-request-v1\0");
        h.update([1u8; 32]);
        h.update([2u8; 32]);
        h.update(job.to_bytes());
        assert_eq!(n, <[u8; 32]>::from(h.finalize()));
        assert_ne!(n, request_nonce(&[3; 32], &k, &job));
        assert_ne!(n, request_nonce(&c, &HpkePublicKey([3; 32]), &job));
        assert_eq!(request_binding(&[4; 32], &c, &k, &job), vouch_receipt::report_data(&[4; 32], &n));
    }

    #[test]
    fn endorsements_verify_only_for_their_module() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let a: Cid = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy".parse().unwrap();
        let b = Cid::new_v1(0x55, cid::multihash::Multihash::<64>::wrap(0x12, &[2; 32]).unwrap());
        let e = ModuleEndorsement::sign(&key, &a);
        assert!(e.verifies(&a));
        assert!(!e.verifies(&b));
    }
}
