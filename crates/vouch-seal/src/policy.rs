//! The access policy an owner attaches to a sealed object: which modules may read it, which
//! evidence the runtime must present, which capabilities the job may have, who may receive its
//! results and how much may leave. TOML, validated on load (format in `docs/seal.md`):
//!
//! ```toml
//! [modules]
//! allow = ["bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy"]
//!
//! [evidence]
//! require = ["tpm"]
//! challenge_ttl = "5m"
//! [evidence.appraisal]          # a vouch-attest appraisal policy, inline
//! accept = ["tpm"]
//!
//! [capabilities]
//! args = "any"                  # "any", "none", or the exact argv
//! env = "none"                  # "any", "none", or the exact environment table
//! nondeterministic = false
//! max_memory_bytes = 536870912
//!
//! [results]
//! recipients = ["<64 hex digits: X25519 public key>"]
//! max_output_bytes = 1048576
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use cid::Cid;
use serde::Deserialize;

use crate::wrap::HpkePublicKey;
use crate::{Error, Result};

/// Default lifetime of a broker challenge when `evidence.challenge_ttl` is absent.
pub const DEFAULT_CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Longest `evidence.challenge_ttl` accepted: evidence older than an hour is not fresh.
pub const MAX_CHALLENGE_TTL: Duration = Duration::from_secs(3600);

/// A validated access policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Module CIDs that may read the object.
    pub modules: Vec<Cid>,
    /// Algorithm owners (ed25519 public keys) whose module endorsements admit a module.
    pub module_signers: Vec<[u8; 32]>,
    /// The evidence technologies accepted (`none` only with `allow_insecure`).
    pub require: Vec<String>,
    /// `evidence.allow_insecure = true`: `none` evidence (NO HARDWARE CLAIM) is accepted.
    pub allow_insecure: bool,
    /// How long a challenge stays valid: the freshness bound of the evidence.
    pub challenge_ttl: Duration,
    /// The appraisal policy hardware evidence must satisfy (absent only when `require` is
    /// `["none"]`).
    pub appraisal: Option<vouch_attest::Policy>,
    pub capabilities: Capabilities,
    /// X25519 public keys results may be sealed to; never empty (results never leave in the clear).
    pub recipients: Vec<HpkePublicKey>,
    /// Largest total of `output_bytes + stdout_bytes + stderr_bytes` a job may ask for.
    pub max_output_bytes: u64,
    /// What the policy is, for the record (grants and receipts name it): SHA-256 of its TOML
    /// text, or, with an `appraisal_file`, of the text ‖ 0x00 ‖ that file's text.
    pub digest: [u8; 32],
}

/// What a job may ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub args: Allowed<Vec<String>>,
    pub env: Allowed<BTreeMap<String, String>>,
    /// Whether a non-deterministic job (real clocks, real randomness) may read the object.
    pub nondeterministic: bool,
    pub max_memory_bytes: Option<u64>,
    /// When set, the job must meter fuel and ask for at most this much.
    pub max_fuel: Option<u64>,
    pub max_wall_time_ms: Option<u64>,
}

/// `"any"`, `"none"` (empty), or exactly this value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowed<T> {
    Any,
    None,
    Pinned(T),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    modules: RawModules,
    evidence: RawEvidence,
    #[serde(default)]
    capabilities: RawCaps,
    results: RawResults,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModules {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    signers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvidence {
    require: Vec<String>,
    #[serde(default)]
    allow_insecure: bool,
    challenge_ttl: Option<String>,
    appraisal: Option<toml::Table>,
    appraisal_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCaps {
    args: Option<toml::Value>,
    env: Option<toml::Value>,
    #[serde(default)]
    nondeterministic: bool,
    max_memory_bytes: Option<u64>,
    max_fuel: Option<u64>,
    max_wall_time_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResults {
    recipients: Vec<String>,
    max_output_bytes: u64,
}

impl AccessPolicy {
    /// Parse and validate; `appraisal_file` is refused (it needs a directory: use [`AccessPolicy::load`]).
    pub fn from_toml_str(text: &str) -> Result<AccessPolicy> {
        Self::parse(text, None)
    }

    /// Read, parse and validate a policy file; `evidence.appraisal_file` is relative to it.
    pub fn load(path: impl AsRef<Path>) -> Result<AccessPolicy> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::PolicyIo { path: path.to_owned(), source })?;
        Self::parse(&text, Some(path.parent().unwrap_or(Path::new("."))))
    }

    fn parse(text: &str, dir: Option<&Path>) -> Result<AccessPolicy> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            // One line: the message and where (toml's own Display draws the source).
            let at = e.span().map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" (line {line}, column {col})")
            });
            Error::PolicyToml(format!("{}{}", e.message().trim().replace('\n', "; "), at.unwrap_or_default()))
        })?;

        let mut modules = Vec::new();
        for (i, s) in raw.modules.allow.iter().enumerate() {
            let c = Cid::from_str(s)
                .map_err(|e| Error::policy(format!("modules.allow[{i}]"), format!("{s:?} is not a CID: {e}")))?;
            if modules.contains(&c) {
                return Err(Error::policy(format!("modules.allow[{i}]"), format!("{s} is listed twice")));
            }
            modules.push(c);
        }
        let mut module_signers = Vec::new();
        for (i, s) in raw.modules.signers.iter().enumerate() {
            let field = format!("modules.signers[{i}]");
            let key = hex32(s).map_err(|e| Error::policy(&field, e))?;
            ed25519_dalek::VerifyingKey::from_bytes(&key)
                .map_err(|_| Error::policy(&field, "not an ed25519 public key (not a curve point)"))?;
            module_signers.push(key);
        }
        if modules.is_empty() && module_signers.is_empty() {
            return Err(Error::policy(
                "modules",
                "both `allow` and `signers` are empty: no module could ever read the object",
            ));
        }

        let e = raw.evidence;
        if e.require.is_empty() {
            return Err(Error::policy(
                "evidence.require",
                "empty: name the technologies accepted (tpm, sev-snp, tdx, sgx)",
            ));
        }
        let mut require: Vec<String> = Vec::new();
        for (i, t) in e.require.iter().enumerate() {
            let field = format!("evidence.require[{i}]");
            if t == "none" {
                if !e.allow_insecure {
                    return Err(Error::policy(
                        field,
                        "`none` is NO HARDWARE CLAIM: the key would go to any process; set \
                         evidence.allow_insecure = true to accept it knowingly",
                    ));
                }
            } else if vouch_attest::Technology::from_name(t).is_none() {
                return Err(Error::policy(
                    field,
                    format!("unknown technology {t:?}; expected none, tpm, sev-snp, tdx or sgx"),
                ));
            }
            if require.contains(t) {
                return Err(Error::policy(field, format!("{t:?} is listed twice")));
            }
            require.push(t.clone());
        }
        if e.allow_insecure && !require.iter().any(|t| t == "none") {
            return Err(Error::policy(
                "evidence.allow_insecure",
                "true, but `none` is not in evidence.require: contradictory",
            ));
        }
        let challenge_ttl = match e.challenge_ttl {
            None => DEFAULT_CHALLENGE_TTL,
            Some(s) => {
                vouch_attest::policy::parse_duration(&s).map_err(|m| Error::policy("evidence.challenge_ttl", m))?
            }
        };
        if challenge_ttl.is_zero() || challenge_ttl > MAX_CHALLENGE_TTL {
            return Err(Error::policy("evidence.challenge_ttl", format!("{challenge_ttl:?} is outside 1s..=1h")));
        }
        let mut from_file = false;
        let appraisal_text = match (e.appraisal, e.appraisal_file) {
            (Some(_), Some(_)) => {
                return Err(Error::policy(
                    "evidence.appraisal_file",
                    "both `appraisal` and `appraisal_file` given: choose one",
                ));
            }
            (Some(table), None) => Some(
                toml::to_string(&table)
                    .map_err(|e| Error::policy("evidence.appraisal", format!("cannot re-encode: {e}")))?,
            ),
            (None, Some(file)) => {
                from_file = true;
                let Some(dir) = dir else {
                    return Err(Error::policy(
                        "evidence.appraisal_file",
                        "only a policy loaded from a file can name another file",
                    ));
                };
                let path = dir.join(&file);
                Some(std::fs::read_to_string(&path).map_err(|source| Error::PolicyIo { path, source })?)
            }
            (None, None) => None,
        };
        let digest = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(text.as_bytes());
            if let (true, Some(a)) = (from_file, &appraisal_text) {
                h.update([0u8]);
                h.update(a.as_bytes());
            }
            h.finalize().into()
        };
        let hardware: Vec<&String> = require.iter().filter(|t| *t != "none").collect();
        let appraisal = match appraisal_text {
            None if !hardware.is_empty() => {
                return Err(Error::policy(
                    "evidence.appraisal",
                    "missing: hardware evidence is required, so name the reference values it must meet",
                ));
            }
            None => None,
            Some(text) => {
                let policy = vouch_attest::Policy::from_toml_str(&text).map_err(|err| match err {
                    vouch_attest::PolicyError::Invalid { field, problem } => {
                        Error::policy(format!("evidence.appraisal.{field}"), problem)
                    }
                    other => Error::policy("evidence.appraisal", other.to_string()),
                })?;
                for t in &hardware {
                    if !policy.accepts(t) {
                        return Err(Error::policy(
                            "evidence.require",
                            format!("{t} is required but evidence.appraisal.accept does not accept it: contradictory"),
                        ));
                    }
                }
                Some(policy)
            }
        };

        let c = raw.capabilities;
        let capabilities = Capabilities {
            args: allowed(c.args, "capabilities.args", |v| match v {
                toml::Value::Array(a) => a
                    .into_iter()
                    .map(|x| x.as_str().map(str::to_owned).ok_or("every argument must be a string"))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(str::to_owned),
                _ => Err("expected \"any\", \"none\" or a list of strings".to_owned()),
            })?,
            env: allowed(c.env, "capabilities.env", |v| match v {
                toml::Value::Table(t) => t
                    .into_iter()
                    .map(|(k, x)| x.as_str().map(|s| (k, s.to_owned())).ok_or("every value must be a string"))
                    .collect::<std::result::Result<BTreeMap<_, _>, _>>()
                    .map_err(str::to_owned),
                _ => Err("expected \"any\", \"none\" or a table of strings".to_owned()),
            })?,
            nondeterministic: c.nondeterministic,
            max_memory_bytes: positive("capabilities.max_memory_bytes", c.max_memory_bytes)?,
            max_fuel: positive("capabilities.max_fuel", c.max_fuel)?,
            max_wall_time_ms: positive("capabilities.max_wall_time_ms", c.max_wall_time_ms)?,
        };

        if raw.results.recipients.is_empty() {
            return Err(Error::policy("results.recipients", "empty: results must be sealed to at least one recipient"));
        }
        let mut recipients = Vec::new();
        for (i, s) in raw.results.recipients.iter().enumerate() {
            let key = HpkePublicKey(hex32(s).map_err(|e| Error::policy(format!("results.recipients[{i}]"), e))?);
            if recipients.contains(&key) {
                return Err(Error::policy(format!("results.recipients[{i}]"), "listed twice"));
            }
            recipients.push(key);
        }
        Ok(AccessPolicy {
            modules,
            module_signers,
            require,
            allow_insecure: e.allow_insecure,
            challenge_ttl,
            appraisal,
            capabilities,
            recipients,
            max_output_bytes: raw.results.max_output_bytes,
            digest,
        })
    }
}

fn hex32(s: &str) -> std::result::Result<[u8; 32], String> {
    let b = hex::decode(s).map_err(|e| format!("{s:?} is not hex: {e}"))?;
    b.try_into().map_err(|_| format!("expected 64 hex digits (32 bytes), found {} digits", s.len()))
}

fn positive(field: &str, v: Option<u64>) -> Result<Option<u64>> {
    match v {
        Some(0) => Err(Error::policy(field, "0 allows no job at all; omit the field for no bound")),
        v => Ok(v),
    }
}

fn allowed<T>(
    v: Option<toml::Value>,
    field: &str,
    pinned: impl FnOnce(toml::Value) -> std::result::Result<T, String>,
) -> Result<Allowed<T>> {
    match v {
        None => Ok(Allowed::None),
        Some(toml::Value::String(s)) if s == "any" => Ok(Allowed::Any),
        Some(toml::Value::String(s)) if s == "none" => Ok(Allowed::None),
        Some(toml::Value::String(s)) => Err(Error::policy(field, format!("{s:?}: expected \"any\" or \"none\""))),
        Some(v) => Ok(Allowed::Pinned(pinned(v).map_err(|m| Error::policy(field, m))?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy";
    const KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";

    fn base(evidence: &str, caps: &str) -> String {
        format!(
            "[modules]\nallow = [\"{CID}\"]\n\n[evidence]\n{evidence}\n\n[capabilities]\n{caps}\n\n\
             [results]\nrecipients = [\"{KEY}\"]\nmax_output_bytes = 1024\n"
        )
    }

    fn err(text: &str) -> String {
        match AccessPolicy::from_toml_str(text) {
            Err(Error::Policy { field, .. }) => field,
            Err(e) => e.to_string(),
            Ok(p) => panic!("accepted: {p:?}"),
        }
    }

    #[test]
    fn a_good_policy_loads() {
        let p = AccessPolicy::from_toml_str(&base(
            "require = [\"tpm\"]\nchallenge_ttl = \"2m\"\n[evidence.appraisal]\naccept = [\"tpm\"]",
            "args = [\"main.wasm\"]\nenv = { LANG = \"C\" }\nmax_fuel = 1000",
        ))
        .unwrap();
        assert_eq!(p.require, ["tpm"]);
        assert_eq!(p.challenge_ttl, Duration::from_secs(120));
        assert_eq!(p.capabilities.args, Allowed::Pinned(vec!["main.wasm".to_owned()]));
        assert_eq!(p.capabilities.max_fuel, Some(1000));
        assert!(p.appraisal.unwrap().accepts("tpm"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let hw = "require = [\"tpm\"]\n[evidence.appraisal]\naccept = [\"tpm\"]";
        let cases = [
            (base("require = [\"none\"]", ""), "evidence.require[0]"),
            (
                base("require = [\"tpm\"]\nallow_insecure = true\n[evidence.appraisal]\naccept = [\"tpm\"]", ""),
                "evidence.allow_insecure",
            ),
            (base("require = []", ""), "evidence.require"),
            (base("require = [\"tmp\"]", ""), "evidence.require[0]"),
            (base("require = [\"tpm\"]", ""), "evidence.appraisal"),
            (base("require = [\"tdx\"]\n[evidence.appraisal]\naccept = [\"tpm\"]", ""), "evidence.require"),
            (
                base("require = [\"tpm\"]\n[evidence.appraisal]\naccept = [\"none\"]", ""),
                "evidence.appraisal.accept[0]",
            ),
            (
                base("require = [\"tpm\"]\nchallenge_ttl = \"2h\"\n[evidence.appraisal]\naccept = [\"tpm\"]", ""),
                "evidence.challenge_ttl",
            ),
            (base(hw, "args = \"some\""), "capabilities.args"),
            (base(hw, "env = [1]"), "capabilities.env"),
            (base(hw, "max_memory_bytes = 0"), "capabilities.max_memory_bytes"),
            (base(hw, "").replace(CID, "not-a-cid"), "modules.allow[0]"),
            (base(hw, "").replace(&format!("allow = [\"{CID}\"]"), "allow = []"), "modules"),
            (base(hw, "").replace(KEY, "abcd"), "results.recipients[0]"),
            (base(hw, "").replace(&format!("[\"{KEY}\"]"), "[]"), "results.recipients"),
        ];
        for (text, field) in cases {
            assert_eq!(err(&text), field, "{text}");
        }
        // Unknown fields are refused by the TOML layer, naming the field.
        let e = err(&base(hw, "allow_network = true"));
        assert!(e.contains("allow_network"), "{e}");
    }

    #[test]
    fn none_is_accepted_only_loudly() {
        let p = AccessPolicy::from_toml_str(&base("require = [\"none\"]\nallow_insecure = true", "")).unwrap();
        assert!(p.allow_insecure && p.appraisal.is_none());
    }
}
