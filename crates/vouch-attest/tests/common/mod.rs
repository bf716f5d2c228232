//! Lookups over appraisal results shared by the technology tests.
#![allow(dead_code)]

use vouch_attest::{Checks, Status};

pub fn status<'a>(checks: &'a Checks, claim: &str) -> &'a Status {
    &checks.iter().find(|c| c.claim == claim).unwrap_or_else(|| panic!("{claim} not recorded: {checks:#?}")).status
}

pub fn passed(checks: &Checks, claim: &str) -> bool {
    matches!(status(checks, claim), Status::Passed { .. })
}

/// The expected and found values of a claim that must have failed.
pub fn failed(checks: &Checks, claim: &str) -> (String, String) {
    match status(checks, claim) {
        Status::Failed { expected, found } => (expected.clone(), found.clone()),
        s => panic!("{claim} should fail, got {s:?}: {checks:#?}"),
    }
}

pub fn failures(checks: &Checks) -> Vec<&str> {
    checks.iter().filter(|c| matches!(c.status, Status::Failed { .. })).map(|c| c.claim.as_str()).collect()
}
