//! Offline verification: every claim a receipt makes, checked and reported one by one.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use cid::Cid;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Serialize;

use vouch_attest::{Checks, Policy};

use crate::codec::{self, RECEIPT};
use crate::{Error, EvidenceBody, Outcome, Receipt, Technology, report_data};

/// The claims [`verify`] checks, in the order it checks and reports them. Each is described in
/// `docs/receipt.md`.
pub const CLAIMS: [&str; 13] = [
    "dag-cbor",
    "version",
    "schema",
    "canonical",
    "job-cid",
    "spec",
    "signature",
    "node-key",
    "usage",
    "evidence",
    "evidence-binding",
    "time",
    "releases",
];

/// What a verifier trusts and when it verifies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Accept the `none` evidence technology (no hardware claim). Default: `false`, so a `none`
    /// receipt fails the `evidence` claim. This is the only way a `none` receipt verifies.
    pub allow_insecure: bool,
    /// The node key the receipt must be signed by. Default: `None`, and the `node-key` claim is
    /// skipped: the signature then only proves the receipt is intact and signed by the key it
    /// names, not who that is.
    pub expected_node_key: Option<[u8; 32]>,
    /// Verification time, in Unix seconds. Default: `None`, the system clock.
    pub at: Option<u64>,
    /// How far in the future of the verification time `issued_at` may be. Default: 300 s.
    pub max_clock_skew_secs: u64,
    /// How hardware evidence is appraised: accepted technologies, reference measurements,
    /// minimum TCB, maximum evidence age. Default: [`Policy::default`].
    pub policy: Policy,
    /// Trust roots (DER X.509) beyond the vendor roots built in: a TPM EK CA, for example.
    pub trust_roots: Vec<Vec<u8>>,
    /// Access-policy digests (`AccessPolicy::digest`, `docs/seal.md`) the verifier accepts key
    /// releases under: a data owner's own policy, say. Default: empty, any policy; when given,
    /// the receipt must record at least one release and every release must name one of these.
    pub access_policies: Vec<[u8; 32]>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            allow_insecure: false,
            expected_node_key: None,
            at: None,
            max_clock_skew_secs: 300,
            policy: Policy::default(),
            trust_roots: Vec::new(),
            access_policies: Vec::new(),
        }
    }
}

/// One checked claim and its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Claim {
    /// One of [`CLAIMS`].
    pub name: &'static str,
    #[serde(flatten)]
    pub status: Status,
}

/// The result of checking one claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// The claim holds; `detail` says what was found (and, for `evidence`, plainly whether
    /// anything hardware-backed stands behind it).
    Passed { detail: String },
    /// The claim does not hold.
    Failed { expected: String, found: String },
    /// The claim was not checked: an earlier claim it depends on failed, or the verifier was not
    /// asked to check it.
    Skipped { reason: String },
}

/// The result of [`verify`]: every claim in [`CLAIMS`] order, each passed, failed or skipped.
#[derive(Clone, Debug)]
pub struct Report {
    /// CIDv1 (dag-cbor, sha2-256) of the bytes verified: the receipt CID when they verify.
    pub cid: Cid,
    /// The decoded receipt, when the bytes decoded (even if a later claim failed).
    pub receipt: Option<Receipt>,
    /// One entry per name in [`CLAIMS`], in that order.
    pub claims: Vec<Claim>,
    /// The appraisal of hardware evidence, claim by claim (`tpm-quote-signature`,
    /// `snp-measurement`, …): what the `evidence` claim summarises. Empty for `none`.
    pub evidence_checks: Checks,
}

impl Report {
    /// True when no claim failed. (Skipped claims do not fail a receipt: `node-key` is skipped
    /// when no key is pinned. Structural failures always fail a claim.)
    pub fn verified(&self) -> bool {
        self.first_failure().is_none()
    }

    /// The first claim that failed, if any.
    pub fn first_failure(&self) -> Option<&Claim> {
        self.claims.iter().find(|c| matches!(c.status, Status::Failed { .. }))
    }

    /// The claim named `name`.
    pub fn claim(&self, name: &str) -> Option<&Claim> {
        self.claims.iter().find(|c| c.name == name)
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.status {
            Status::Passed { detail } => write!(f, "pass  {}: {detail}", self.name),
            Status::Failed { expected, found } => {
                write!(f, "FAIL  {}: expected {expected}; found {found}", self.name)
            }
            Status::Skipped { reason } => write!(f, "skip  {}: {reason}", self.name),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "receipt {}", self.cid)?;
        for c in &self.claims {
            writeln!(f, "  {c}")?;
        }
        match self.first_failure() {
            None => write!(f, "verified"),
            Some(c) => write!(f, "NOT verified: claim `{}` failed", c.name),
        }
    }
}

/// Claims in the order they are checked.
struct Claims(Vec<Claim>);

impl Claims {
    fn push(&mut self, name: &'static str, status: Status) {
        debug_assert_eq!(CLAIMS.get(self.0.len()), Some(&name), "claims are checked in CLAIMS order");
        self.0.push(Claim { name, status });
    }
    fn pass(&mut self, name: &'static str, detail: String) {
        self.push(name, Status::Passed { detail });
    }
    fn fail(&mut self, name: &'static str, expected: impl Into<String>, found: impl Into<String>) {
        self.push(name, Status::Failed { expected: expected.into(), found: found.into() });
    }
    fn check(&mut self, name: &'static str, result: Result<String, (String, String)>) {
        match result {
            Ok(detail) => self.pass(name, detail),
            Err((expected, found)) => self.fail(name, expected, found),
        }
    }
    /// Mark every claim not yet checked as skipped because of `reason`.
    fn skip_rest(mut self, reason: &str) -> Vec<Claim> {
        for name in &CLAIMS[self.0.len()..] {
            self.0.push(Claim { name, status: Status::Skipped { reason: reason.to_string() } });
        }
        self.0
    }
}

/// Verify an encoded receipt offline and report every claim (see [`CLAIMS`]). Never fails:
/// bytes that do not even decode give a report whose first claim failed and whose other claims
/// are skipped. To verify a [`Receipt`] held in memory, pass [`Receipt::encode`].
///
/// Evidence linked by CID cannot be appraised here: use [`verify_with`] and give it the blocks.
pub fn verify(bytes: &[u8], opts: &VerifyOptions) -> Report {
    verify_with(bytes, opts, &|_| None)
}

/// [`verify`], with `block` returning the bytes of a linked evidence body (from a store, or the
/// CAR `vouch receipt export` writes). Returned bytes are checked against the CID.
pub fn verify_with(bytes: &[u8], opts: &VerifyOptions, block: &dyn Fn(&Cid) -> Option<Vec<u8>>) -> Report {
    let cid = codec::cid_of(bytes);
    let mut c = Claims(Vec::with_capacity(CLAIMS.len()));
    let mut evidence_checks = Checks::new();
    let receipt = decode(&mut c, bytes);
    if let Some(r) = &receipt {
        check(&mut c, r, opts, block, &mut evidence_checks);
    }
    let claims = c.skip_rest("the receipt did not decode");
    Report { cid, receipt, claims, evidence_checks }
}

/// The structural claims: dag-cbor, version, schema, canonical.
fn decode(c: &mut Claims, bytes: &[u8]) -> Option<Receipt> {
    let value = match codec::parse(&RECEIPT, bytes) {
        Ok(v) => v,
        Err(e) => {
            c.fail(
                "dag-cbor",
                format!("one strict DAG-CBOR value of at most {} bytes", RECEIPT.max_bytes),
                e.to_string(),
            );
            return None;
        }
    };
    c.pass("dag-cbor", format!("{} bytes of strict DAG-CBOR", bytes.len()));
    match codec::check_version(&RECEIPT, &value) {
        Ok(()) => c.pass("version", format!("version {}", RECEIPT.version)),
        Err(Error::UnsupportedVersion { found, .. }) => {
            c.fail("version", format!("version {}", RECEIPT.version), found);
            return None;
        }
        Err(e) => unreachable!("check_version only returns UnsupportedVersion, got {e}"),
    }
    let receipt = match Receipt::from_ipld(value) {
        Ok(r) => r,
        Err(e) => {
            c.fail("schema", "the version 1 receipt schema", e.to_string());
            return None;
        }
    };
    c.pass("schema", "every field present, known and well-typed".into());
    c.check(
        "canonical",
        codec::check_canonical(&RECEIPT, &receipt.encode(), bytes)
            .map(|()| "the bytes are the canonical encoding".into())
            .map_err(|e| ("the canonical DAG-CBOR encoding".into(), e.to_string())),
    );
    Some(receipt)
}

/// The claims about content, each checked independently.
fn check(
    c: &mut Claims,
    r: &Receipt,
    opts: &VerifyOptions,
    block: &dyn Fn(&Cid) -> Option<Vec<u8>>,
    appraisal: &mut Checks,
) {
    let b = &r.body;
    let key_hex = hex::encode(b.node_key);

    let job = b.spec.cid();
    c.check(
        "job-cid",
        if b.job == job {
            Ok(format!("job {job} is the CID of the inline spec"))
        } else {
            Err((format!("{job} (the CID of the inline spec)"), b.job.to_string()))
        },
    );

    c.check(
        "spec",
        b.spec.validate().map(|()| "a valid job spec".into()).map_err(|e| ("a valid job spec".into(), e.to_string())),
    );

    let signature = match VerifyingKey::from_bytes(&b.node_key) {
        Err(_) => Err(("node_key to be an ed25519 public key".into(), format!("{key_hex}, not a curve point"))),
        Ok(key) => match key.verify_strict(&b.signed_bytes(), &Signature::from_bytes(&r.signature)) {
            Ok(()) => Ok(format!("ed25519 signature by node key {key_hex}")),
            Err(_) => Err((
                format!("an ed25519 signature by node key {key_hex} over the receipt"),
                format!("signature {} does not verify", hex::encode(r.signature)),
            )),
        },
    };
    c.check("signature", signature);

    match opts.expected_node_key {
        None => c.push(
            "node-key",
            Status::Skipped { reason: "no expected node key given: who signed is not checked".into() },
        ),
        Some(expected) if expected == b.node_key => c.pass("node-key", format!("{key_hex} is the expected node key")),
        Some(expected) => c.fail("node-key", hex::encode(expected), key_hex.clone()),
    }

    c.check("usage", usage(r));

    let evidence = &b.evidence;
    let bound = report_data(&b.node_key, &evidence.nonce);
    let now = now(opts);
    c.check("evidence", appraise_evidence(r, &bound, opts, now.0, block, appraisal));

    c.check(
        "evidence-binding",
        if bound == evidence.report_data {
            Ok(format!(
                "report data {} = SHA-256(domain ‖ node key ‖ {}-byte nonce)",
                hex::encode(bound),
                evidence.nonce.len()
            ))
        } else {
            Err((
                format!("{} = SHA-256(domain ‖ node key ‖ nonce)", hex::encode(bound)),
                hex::encode(evidence.report_data),
            ))
        },
    );

    let (now, clock) = now;
    let latest = now.saturating_add(opts.max_clock_skew_secs);
    c.check(
        "time",
        if b.issued_at <= latest {
            Ok(format!(
                "issued at {} (unix s), not after {now} ({clock}) + {} s skew",
                b.issued_at, opts.max_clock_skew_secs
            ))
        } else {
            Err((
                format!("issued at or before {latest} ({clock} {now} + {} s skew)", opts.max_clock_skew_secs),
                b.issued_at.to_string(),
            ))
        },
    );

    c.check("releases", releases(r, opts));
}

/// The `evidence-age` check: evidence produced at most `max` seconds before `now`, and not
/// after `now` by more than the clock skew a verifier allows (`max_clock_skew_secs`, the same
/// allowance as `issued_at`): evidence dated in the future beyond it was not produced by an
/// honest clock, and its age would otherwise count as zero.
fn evidence_age(produced_at: Option<u64>, max: u64, now: u64, skew: u64) -> Result<String, (String, String)> {
    let latest = now.saturating_add(skew);
    match produced_at {
        None => Err((format!("evidence produced within {max} s"), "no production time".into())),
        Some(t) if t > latest => Err((
            format!("produced at or before {latest} ({now} + {skew} s clock skew)"),
            format!("produced at {t}, {} s after {now}", t - now),
        )),
        Some(t) if now.saturating_sub(t) > max => {
            Err((format!("at most {max} s old at {now}"), format!("produced at {t}")))
        }
        Some(t) if t > now => Ok(format!("produced at {t}, {} s after {now}, within the {skew} s clock skew", t - now)),
        Some(t) => Ok(format!("produced at {t}, at most {max} s before {now}")),
    }
}

/// The `releases` claim: each release is of a part the job reads, rests on hardware evidence
/// unless insecure receipts are allowed, and, when the verifier names access policies, was made
/// under one of them.
fn releases(r: &Receipt, opts: &VerifyOptions) -> Result<String, (String, String)> {
    let b = &r.body;
    let short = |d: &[u8; 32]| format!("sha256:{}", hex::encode(d));
    if b.releases.is_empty() {
        return match opts.access_policies.first() {
            None => Ok("nothing sealed was read".into()),
            Some(p) => Err((format!("key releases under access policy {}", short(p)), "no release recorded".into())),
        };
    }
    let spec = &b.spec;
    for rel in &b.releases {
        let read = rel.sealed == spec.module
            || spec.inputs.values().any(|c| *c == rel.sealed)
            || spec.mounts.values().any(|c| *c == rel.sealed);
        if !read {
            return Err((
                "each release is of the job's module, an input or a mount".into(),
                format!("a release of {}, which the job does not read", rel.sealed),
            ));
        }
        if rel.insecure && !opts.allow_insecure {
            return Err((
                "key releases on hardware evidence (or insecure receipts allowed)".into(),
                format!("the key of {} released on `none` evidence (NO HARDWARE CLAIM)", rel.sealed),
            ));
        }
        if !opts.access_policies.is_empty() && !opts.access_policies.contains(&rel.policy) {
            let want: Vec<String> = opts.access_policies.iter().map(short).collect();
            return Err((
                format!("releases under access policy {}", want.join(" or ")),
                format!("the key of {} released under {}", rel.sealed, short(&rel.policy)),
            ));
        }
    }
    let mut policies: Vec<String> = b.releases.iter().map(|r| short(&r.policy)).collect();
    policies.sort();
    policies.dedup();
    let insecure = b.releases.iter().filter(|r| r.insecure).count();
    Ok(format!(
        "{} sealed part{} released under {}{}{}",
        b.releases.len(),
        if b.releases.len() == 1 { "" } else { "s" },
        policies.join(", "),
        if opts.access_policies.is_empty() { "" } else { ", each an accepted access policy" },
        if insecure > 0 {
            format!(", {insecure} on `none` evidence (NO HARDWARE CLAIM, insecure receipts allowed)")
        } else {
            String::new()
        }
    ))
}

/// The verification time and where it came from.
fn now(opts: &VerifyOptions) -> (u64, &'static str) {
    match opts.at {
        Some(t) => (t, "given verification time"),
        // A clock before 1970 is treated as 0: every receipt is then "in the future" and fails
        // loudly rather than passing.
        None => (SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()), "system clock"),
    }
}

/// The `evidence` claim: `none` only with `allow_insecure`; hardware evidence appraised under
/// the policy (every sub-claim recorded in `appraisal`), for the binding of this node key and
/// nonce, not older than the policy's `max_evidence_age`.
fn appraise_evidence(
    r: &Receipt,
    bound: &[u8; 32],
    opts: &VerifyOptions,
    now: u64,
    block: &dyn Fn(&Cid) -> Option<Vec<u8>>,
    appraisal: &mut Checks,
) -> Result<String, (String, String)> {
    let evidence = &r.body.evidence;
    let tech = evidence.technology;
    let body = match (tech, &evidence.body) {
        (Technology::None, Some(_)) => return Err(("no evidence body for technology none".into(), "a body".into())),
        (Technology::None, None) if opts.allow_insecure => {
            return Ok("technology none: NO HARDWARE CLAIM. Nothing vouches \
                 for this node's key or software; accepted only because insecure receipts are allowed"
                .into());
        }
        (Technology::None, None) => {
            return Err((
                "hardware evidence (tpm, sev-snp, tdx or sgx), or insecure receipts allowed (--allow-insecure)".into(),
                "technology none: no hardware claim".into(),
            ));
        }
        (_, None) => return Err((format!("an evidence body for technology {tech}"), "none".into())),
        (_, Some(EvidenceBody::Inline(bytes))) => bytes.clone(),
        (_, Some(EvidenceBody::Link(cid))) => match block(cid) {
            None => {
                return Err((
                    format!("the {tech} evidence body {cid} (bundled with the receipt or in the store)"),
                    "not available to this verifier".into(),
                ));
            }
            Some(bytes) if codec::cid_of(&bytes).hash() != cid.hash() => {
                return Err((format!("evidence body with CID {cid}"), "bytes that hash to another CID".into()));
            }
            Some(bytes) => bytes,
        },
    };
    let ctx = vouch_attest::Context { binding: *bound, trust_roots: &opts.trust_roots, at: now };
    *appraisal = vouch_attest::appraise(tech.as_str(), &body, &opts.policy, &ctx);
    if let Some(max) = opts.policy.max_evidence_age {
        let age = evidence_age(evidence.produced_at, max.as_secs(), now, opts.max_clock_skew_secs);
        appraisal.record("evidence-age", age);
    }
    match appraisal.first_failure() {
        None => {
            let n = appraisal.iter().filter(|c| matches!(c.status, vouch_attest::Status::Passed { .. })).count();
            Ok(format!("{tech} evidence appraised: {n} claims passed under the policy"))
        }
        Some(failed) => {
            let vouch_attest::Status::Failed { expected, found } = &failed.status else {
                unreachable!("first_failure returns a failed check")
            };
            Err((format!("{}: {expected}", failed.claim), found.clone()))
        }
    }
}

/// The usage and outcome agree with the limits: fuel consumed within the fuel limit (and
/// `out_of_fuel` only with one), peak memory within the memory limit.
fn usage(r: &Receipt) -> Result<String, (String, String)> {
    let (limits, usage) = (&r.body.spec.limits, &r.body.usage);
    match (limits.fuel, usage.fuel_consumed) {
        (None, _) if r.body.outcome == Outcome::OutOfFuel => {
            return Err(("a fuel limit, for outcome out_of_fuel".into(), "limits.fuel absent".into()));
        }
        (Some(limit), Some(used)) if used > limit => {
            return Err((format!("fuel_consumed <= limits.fuel = {limit}"), used.to_string()));
        }
        _ => {}
    }
    if usage.peak_memory_bytes > limits.memory_bytes {
        return Err((
            format!("peak_memory_bytes <= limits.memory_bytes = {}", limits.memory_bytes),
            usage.peak_memory_bytes.to_string(),
        ));
    }
    Ok("fuel and peak memory within the job's limits".into())
}

#[cfg(test)]
mod tests {
    use super::evidence_age;

    #[test]
    fn evidence_age_allows_the_clock_skew_into_the_future_and_no_more() {
        const NOW: u64 = 1_800_000_000;
        let age = |t: u64| evidence_age(Some(t), 3600, NOW, 300);
        assert!(age(NOW).is_ok());
        assert!(age(NOW - 3600).is_ok());
        assert_eq!(age(NOW - 3601).unwrap_err().1, format!("produced at {}", NOW - 3601));
        // Ahead of the verifier's clock within the skew: accepted, and said so.
        assert!(age(NOW + 300).unwrap().contains("within the 300 s clock skew"));
        // Beyond it: refused with both values (before the fix its age counted as zero).
        let (expected, found) = age(NOW + 301).unwrap_err();
        assert_eq!(expected, format!("produced at or before {} ({NOW} + 300 s clock skew)", NOW + 300));
        assert_eq!(found, format!("produced at {}, 301 s after {NOW}", NOW + 301));
        let (_, found) = evidence_age(Some(u64::MAX), 3600, NOW, 300).unwrap_err();
        assert!(found.starts_with(&format!("produced at {}", u64::MAX)), "{found}");
        assert_eq!(evidence_age(None, 3600, NOW, 300).unwrap_err().1, "no production time");
    }
}
