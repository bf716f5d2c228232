//! The appraisal policy: which technologies a verifier accepts and, per technology, the reference
//! values and thresholds the evidence must meet. Written in TOML (format in `docs/attestation.md`),
//! checked on load: a bad hex length, an unknown technology or TCB status, an empty `accept` list
//! are errors that name the field.
//!
//! ```toml
//! accept = ["tpm", "sev-snp", "tdx"]
//! max_evidence_age = "24h"
//!
//! [sev-snp]
//! measurements = ["<96 hex digits>"]
//! min_tcb = { bootloader = 3, tee = 0, snp = 8, microcode = 115 }
//! allow_debug = false
//! max_vmpl = 0
//!
//! [tdx]
//! tcb_statuses = ["UpToDate"]
//! advisories = []
//! mrtd = ["<96 hex digits>"]
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::tpm::TpmPolicy;

/// A hardware attestation technology an appraisal policy can accept. `none` is not one: evidence
/// without a hardware claim is never accepted by appraisal (the receipt layer's `--allow-insecure`
/// decides about it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Technology {
    Tpm,
    SevSnp,
    Tdx,
    Sgx,
}

impl Technology {
    /// Every hardware technology, in the order of [`Technology::name`].
    pub const ALL: [Technology; 4] = [Technology::Tpm, Technology::SevSnp, Technology::Tdx, Technology::Sgx];

    /// The name used in evidence and policies: `tpm`, `sev-snp`, `tdx`, `sgx`.
    pub fn name(self) -> &'static str {
        match self {
            Technology::Tpm => "tpm",
            Technology::SevSnp => "sev-snp",
            Technology::Tdx => "tdx",
            Technology::Sgx => "sgx",
        }
    }

    /// Parse a technology name; `None` for `none` and for unknown names.
    pub fn from_name(name: &str) -> Option<Technology> {
        Technology::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for Technology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The TCB status names Intel's collateral uses (as dcap-qvl reports them).
pub const TCB_STATUSES: [&str; 9] = [
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
    "TDRelaunchAdvised",
    "TDRelaunchAdvisedConfigurationNeeded",
];

/// A loading or validation error; `Invalid` names the field (`sev-snp.measurements[1]`).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("policy is not valid TOML for the policy format: {0}")]
    Toml(String),
    #[error("policy field `{field}`: {problem}")]
    Invalid { field: String, problem: String },
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> PolicyError {
    PolicyError::Invalid { field: field.into(), problem: problem.into() }
}

/// A validated appraisal policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Technologies whose evidence is appraised; evidence of any other technology fails the
    /// `technology` check.
    pub accept: Vec<Technology>,
    /// How old evidence may be at verification time, when the receipt layer knows its time.
    pub max_evidence_age: Option<Duration>,
    pub sev_snp: SnpPolicy,
    pub tdx: TdxPolicy,
    pub sgx: SgxPolicy,
    /// The `[tpm]` section, interpreted by [`crate::tpm`]; `None` when absent.
    pub tpm: Option<TpmPolicy>,
}

impl Default for Policy {
    /// Accept every hardware technology, TCB status `UpToDate` only, no debug, VMPL 0, no
    /// reference measurements.
    fn default() -> Self {
        Policy {
            accept: Technology::ALL.to_vec(),
            max_evidence_age: None,
            sev_snp: SnpPolicy::default(),
            tdx: TdxPolicy::default(),
            sgx: SgxPolicy::default(),
            tpm: None,
        }
    }
}

/// The `[sev-snp]` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnpPolicy {
    /// Accepted launch measurements (48 bytes each); `None`: not checked.
    pub measurements: Option<Vec<[u8; 48]>>,
    /// Minimum reported TCB, per component; `None`: not checked.
    pub min_tcb: Option<SnpTcb>,
    /// Accept a guest whose policy allows debugging (its memory is readable by the host).
    pub allow_debug: bool,
    /// Highest VMPL the report may come from (0 = most privileged).
    pub max_vmpl: u32,
}

/// SEV-SNP TCB security patch levels (SPLs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnpTcb {
    pub bootloader: u8,
    pub tee: u8,
    pub snp: u8,
    pub microcode: u8,
    /// Turin and later only.
    #[serde(default)]
    pub fmc: Option<u8>,
}

/// The `[tdx]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdxPolicy {
    /// Accepted TCB statuses (default: `UpToDate` only).
    pub tcb_statuses: Vec<String>,
    /// Advisory ids (`INTEL-SA-00615`) the verifier accepts; any other fails.
    pub advisories: Vec<String>,
    pub allow_debug: bool,
    pub mrtd: Option<Vec<[u8; 48]>>,
    pub rtmr0: Option<Vec<[u8; 48]>>,
    pub rtmr1: Option<Vec<[u8; 48]>>,
    pub rtmr2: Option<Vec<[u8; 48]>>,
    pub rtmr3: Option<Vec<[u8; 48]>>,
}

impl Default for TdxPolicy {
    fn default() -> Self {
        TdxPolicy {
            tcb_statuses: vec!["UpToDate".to_owned()],
            advisories: Vec::new(),
            allow_debug: false,
            mrtd: None,
            rtmr0: None,
            rtmr1: None,
            rtmr2: None,
            rtmr3: None,
        }
    }
}

/// The `[sgx]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgxPolicy {
    /// Accepted TCB statuses (default: `UpToDate` only).
    pub tcb_statuses: Vec<String>,
    /// Advisory ids the verifier accepts; any other fails.
    pub advisories: Vec<String>,
    pub allow_debug: bool,
    pub mrenclave: Option<Vec<[u8; 32]>>,
    pub mrsigner: Option<Vec<[u8; 32]>>,
}

impl Default for SgxPolicy {
    fn default() -> Self {
        SgxPolicy {
            tcb_statuses: vec!["UpToDate".to_owned()],
            advisories: Vec::new(),
            allow_debug: false,
            mrenclave: None,
            mrsigner: None,
        }
    }
}

// ---- the TOML shape, validated into the types above ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    accept: Option<Vec<String>>,
    max_evidence_age: Option<String>,
    #[serde(rename = "sev-snp")]
    sev_snp: Option<RawSnp>,
    tdx: Option<RawTdx>,
    sgx: Option<RawSgx>,
    tpm: Option<TpmPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSnp {
    measurements: Option<Vec<String>>,
    min_tcb: Option<SnpTcb>,
    #[serde(default)]
    allow_debug: bool,
    #[serde(default)]
    max_vmpl: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTdx {
    tcb_statuses: Option<Vec<String>>,
    #[serde(default)]
    advisories: Vec<String>,
    #[serde(default)]
    allow_debug: bool,
    mrtd: Option<Vec<String>>,
    rtmr0: Option<Vec<String>>,
    rtmr1: Option<Vec<String>>,
    rtmr2: Option<Vec<String>>,
    rtmr3: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSgx {
    tcb_statuses: Option<Vec<String>>,
    #[serde(default)]
    advisories: Vec<String>,
    #[serde(default)]
    allow_debug: bool,
    mrenclave: Option<Vec<String>>,
    mrsigner: Option<Vec<String>>,
}

impl Policy {
    /// Parse and validate a TOML policy.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Toml(e.to_string().trim().to_owned()))?;
        raw.validate()
    }

    /// Read, parse and validate a TOML policy file.
    pub fn load(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io { path: path.to_owned(), source })?;
        Policy::from_toml_str(&text)
    }

    /// Whether evidence of `technology` (its evidence name) is appraised under this policy.
    pub fn accepts(&self, technology: &str) -> bool {
        Technology::from_name(technology).is_some_and(|t| self.accept.contains(&t))
    }
}

impl RawPolicy {
    fn validate(self) -> Result<Policy, PolicyError> {
        let defaults = Policy::default();
        let accept = match self.accept {
            None => defaults.accept,
            Some(names) => {
                if names.is_empty() {
                    return Err(invalid("accept", "empty: a policy must accept at least one technology"));
                }
                let mut accept = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    let field = format!("accept[{i}]");
                    let t = match Technology::from_name(name) {
                        Some(t) => t,
                        None if name == "none" => {
                            return Err(invalid(
                                field,
                                "`none` carries no hardware claim and cannot be accepted by a policy \
                                 (verifiers take --allow-insecure for it)",
                            ));
                        }
                        None => {
                            return Err(invalid(
                                field,
                                format!("unknown technology {name:?}; expected one of tpm, sev-snp, tdx, sgx"),
                            ));
                        }
                    };
                    if accept.contains(&t) {
                        return Err(invalid(field, format!("{name:?} is listed twice")));
                    }
                    accept.push(t);
                }
                accept
            }
        };
        let max_evidence_age = match self.max_evidence_age {
            None => None,
            Some(s) => Some(parse_duration(&s).map_err(|p| invalid("max_evidence_age", p))?),
        };
        let sev_snp = match self.sev_snp {
            None => SnpPolicy::default(),
            Some(raw) => SnpPolicy {
                measurements: hex_list::<48>("sev-snp.measurements", raw.measurements)?,
                min_tcb: raw.min_tcb,
                allow_debug: raw.allow_debug,
                max_vmpl: if raw.max_vmpl > 3 {
                    return Err(invalid("sev-snp.max_vmpl", format!("{} is not a VMPL (0 to 3)", raw.max_vmpl)));
                } else {
                    raw.max_vmpl
                },
            },
        };
        let tdx = match self.tdx {
            None => TdxPolicy::default(),
            Some(raw) => TdxPolicy {
                tcb_statuses: statuses("tdx.tcb_statuses", raw.tcb_statuses)?,
                advisories: advisories("tdx.advisories", raw.advisories)?,
                allow_debug: raw.allow_debug,
                mrtd: hex_list::<48>("tdx.mrtd", raw.mrtd)?,
                rtmr0: hex_list::<48>("tdx.rtmr0", raw.rtmr0)?,
                rtmr1: hex_list::<48>("tdx.rtmr1", raw.rtmr1)?,
                rtmr2: hex_list::<48>("tdx.rtmr2", raw.rtmr2)?,
                rtmr3: hex_list::<48>("tdx.rtmr3", raw.rtmr3)?,
            },
        };
        let sgx = match self.sgx {
            None => SgxPolicy::default(),
            Some(raw) => SgxPolicy {
                tcb_statuses: statuses("sgx.tcb_statuses", raw.tcb_statuses)?,
                advisories: advisories("sgx.advisories", raw.advisories)?,
                allow_debug: raw.allow_debug,
                mrenclave: hex_list::<32>("sgx.mrenclave", raw.mrenclave)?,
                mrsigner: hex_list::<32>("sgx.mrsigner", raw.mrsigner)?,
            },
        };
        Ok(Policy { accept, max_evidence_age, sev_snp, tdx, sgx, tpm: self.tpm })
    }
}

/// A list of `N`-byte hex values; an empty list is an error (it would accept nothing: omit the
/// field to skip the check).
fn hex_list<const N: usize>(field: &str, list: Option<Vec<String>>) -> Result<Option<Vec<[u8; N]>>, PolicyError> {
    let Some(list) = list else { return Ok(None) };
    if list.is_empty() {
        return Err(invalid(field, "empty list accepts nothing; omit the field to skip this check"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let field = format!("{field}[{i}]");
        let bytes = hex::decode(s).map_err(|e| invalid(&field, format!("not hex: {e}")))?;
        let value: [u8; N] = bytes.as_slice().try_into().map_err(|_| {
            invalid(&field, format!("expected {} hex digits ({N} bytes), found {} digits", 2 * N, s.len()))
        })?;
        out.push(value);
    }
    Ok(Some(out))
}

fn statuses(field: &str, list: Option<Vec<String>>) -> Result<Vec<String>, PolicyError> {
    let Some(list) = list else { return Ok(vec!["UpToDate".to_owned()]) };
    if list.is_empty() {
        return Err(invalid(field, "empty list accepts no TCB status; omit the field for the default [\"UpToDate\"]"));
    }
    for (i, s) in list.iter().enumerate() {
        if !TCB_STATUSES.contains(&s.as_str()) {
            return Err(invalid(
                format!("{field}[{i}]"),
                format!("unknown TCB status {s:?}; expected one of {}", TCB_STATUSES.join(", ")),
            ));
        }
    }
    Ok(list)
}

fn advisories(field: &str, list: Vec<String>) -> Result<Vec<String>, PolicyError> {
    for (i, s) in list.iter().enumerate() {
        if s.is_empty() || s.chars().any(char::is_whitespace) {
            return Err(invalid(
                format!("{field}[{i}]"),
                format!("{s:?} is not an advisory id like \"INTEL-SA-00615\""),
            ));
        }
    }
    Ok(list)
}

/// Parse a duration written as one or more `<integer><unit>` groups, units `d`, `h`, `m`, `s`:
/// `"24h"`, `"90m"`, `"3600s"`, `"1h30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration; write e.g. \"24h\", \"90m\" or \"3600s\"".to_owned());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("{text:?}: unknown unit {c:?}; use d, h, m or s")),
        };
        if digits.is_empty() {
            return Err(format!("{text:?}: unit {c:?} without a number before it"));
        }
        let n: u64 = digits.parse().map_err(|_| format!("{text:?}: number too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?}: duration too large"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("{text:?}: number {digits} has no unit; use d, h, m or s"));
    }
    Ok(Duration::from_secs(total))
}
