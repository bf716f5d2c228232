//! TPM 2.0 quotes: offline, pure-Rust verification (and, behind `tpm-attester`, generation).

use serde::{Deserialize, Serialize};

use crate::{Checks, Context};

/// The `[tpm]` section of an appraisal policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmPolicy {}

/// Appraise TPM evidence bytes, recording one [`crate::Check`] per claim.
pub fn appraise(evidence: &[u8], policy: Option<&TpmPolicy>, ctx: &Context<'_>, checks: &mut Checks) {
    let _ = (evidence, policy, ctx);
    checks.fail("tpm-evidence", "a TPM verifier", "not implemented yet");
}
