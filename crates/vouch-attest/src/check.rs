//! One appraisal result per claim: passed (with what was found), failed (expected vs found) or
//! skipped (with why). Verifiers of other TEE projects fail with one opaque error; a Vouch
//! verifier names the claim and both values.

use serde::Serialize;

/// One checked claim and its result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable, kebab-case claim name, prefixed by its technology (`snp-report-signature`,
    /// `tpm-pcr-digest`, `tdx-tcb-status`, …). Documented in `docs/attestation.md`.
    pub claim: String,
    #[serde(flatten)]
    pub status: Status,
}

/// The result of checking one claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// The claim holds; `detail` says what was found.
    Passed { detail: String },
    /// The claim does not hold.
    Failed { expected: String, found: String },
    /// Not checked: a claim it depends on failed, or the policy does not ask for it.
    Skipped { reason: String },
}

/// An ordered list of checks, built claim by claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Checks(pub Vec<Check>);

impl Checks {
    pub fn new() -> Self {
        Checks(Vec::new())
    }

    /// Record a passed claim.
    pub fn pass(&mut self, claim: &str, detail: impl Into<String>) {
        self.0.push(Check { claim: claim.to_owned(), status: Status::Passed { detail: detail.into() } });
    }

    /// Record a failed claim.
    pub fn fail(&mut self, claim: &str, expected: impl Into<String>, found: impl Into<String>) {
        self.0.push(Check {
            claim: claim.to_owned(),
            status: Status::Failed { expected: expected.into(), found: found.into() },
        });
    }

    /// Record a skipped claim.
    pub fn skip(&mut self, claim: &str, reason: impl Into<String>) {
        self.0.push(Check { claim: claim.to_owned(), status: Status::Skipped { reason: reason.into() } });
    }

    /// Record `Ok(detail)` as passed and `Err((expected, found))` as failed; returns whether it passed.
    pub fn record(&mut self, claim: &str, result: Result<String, (String, String)>) -> bool {
        match result {
            Ok(detail) => {
                self.pass(claim, detail);
                true
            }
            Err((expected, found)) => {
                self.fail(claim, expected, found);
                false
            }
        }
    }

    /// True when no claim failed.
    pub fn ok(&self) -> bool {
        !self.0.iter().any(|c| matches!(c.status, Status::Failed { .. }))
    }

    /// The first failed claim, if any.
    pub fn first_failure(&self) -> Option<&Check> {
        self.0.iter().find(|c| matches!(c.status, Status::Failed { .. }))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Check> {
        self.0.iter()
    }
}
