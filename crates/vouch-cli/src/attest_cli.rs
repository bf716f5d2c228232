//! `vouch attest`: fresh evidence for this node's key, offline verification of evidence from
//! other tools, and TPM attestation-key enrolment.
//!
//! [`generate_with_collateral`] is the reusable part (the job executor calls it): evidence of the configured
//! technology binding a 32-byte value. The rest is the command line:
//!
//! - `vouch attest [--tee …]` prints fresh evidence for the node key and what it binds;
//! - `vouch attest verify FILE --format …` appraises raw SEV-SNP reports, DCAP quotes, TPM
//!   evidence or Vouch evidence bodies with `vouch_attest::appraise`, one line per claim;
//! - `vouch attest enroll …` is the offline-capable, privacy-CA style enrolment of the TPM
//!   attestation key (formats in docs/attestation.md, "Enrolment commands").

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use serde_json::json;
use sha2::Sha256;
use vouch_attest::evidence::{DcapEvidence, SnpEvidence};
use vouch_attest::tpm::{self, Enrollment, TpmEvidence, certs, wire};
use vouch_attest::{Check, Checks, Policy, Status};

use crate::VerificationFailed;
use crate::home::Home;

/// The TCTI used when none is given: the kernel's TPM resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";
/// The installed enrolment statement, under `$VOUCH_HOME`.
pub const ENROLLMENT_FILE: &str = "tpm-enrollment.cbor";
/// The error for TPM operations in a build without the `tpm` feature.
#[cfg_attr(feature = "tpm", allow(dead_code))]
pub const NO_TPM_SUPPORT: &str =
    "this vouch was built without TPM support; rebuild with `--features tpm` (needs libtss2-dev)";
/// Largest input file read by these commands (evidence, reports, quotes, enrolment files).
const MAX_INPUT_BYTES: u64 = 16 << 20;
/// Domain separator of the stateless enrolment challenge secret.
const CHALLENGE_DOMAIN: &[u8] = b"vouch-tpm-enrollment-challenge-v1\0";
/// Version of the enrolment file formats.
const ENROLL_VERSION: u32 = 1;

// ---------------------------------------------------------------------------------------------
// Generation API
// ---------------------------------------------------------------------------------------------

/// A trusted execution environment to produce evidence with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Tee {
    /// No hardware claim (evidence body empty).
    None,
    /// A TPM 2.0 quote by an enrolled attestation key.
    Tpm,
    /// An AMD SEV-SNP report through configfs-tsm.
    SevSnp,
    /// An Intel TDX quote through configfs-tsm.
    Tdx,
}

impl Tee {
    /// The technology's wire name: `none`, `tpm`, `sev-snp`, `tdx`.
    pub fn wire_name(self) -> &'static str {
        match self {
            Tee::None => "none",
            Tee::Tpm => "tpm",
            Tee::SevSnp => "sev-snp",
            Tee::Tdx => "tdx",
        }
    }

    /// The TEE whose wire name is `name`.
    pub fn from_wire_name(name: &str) -> Option<Tee> {
        [Tee::None, Tee::Tpm, Tee::SevSnp, Tee::Tdx].into_iter().find(|t| t.wire_name() == name)
    }
}

/// Where and how to produce evidence.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "tpm"), allow(dead_code))]
pub struct TeeConfig {
    pub tee: Tee,
    /// TPM TCTI (default [`DEFAULT_TCTI`]). tss-esapi 7.7 reaches swtpm only over TCP:
    /// `swtpm:host=127.0.0.1,port=N`.
    pub tcti: Option<String>,
    /// configfs-tsm report directory, or a shared report entry (default
    /// `/sys/kernel/config/tsm/report`).
    pub tsm_root: Option<PathBuf>,
    /// The installed TPM enrolment (default `$VOUCH_HOME/tpm-enrollment.cbor`).
    pub enrollment: Option<PathBuf>,
}

impl TeeConfig {
    fn tcti(&self) -> &str {
        self.tcti.as_deref().unwrap_or(DEFAULT_TCTI)
    }

    /// How this node produces evidence, for `vouch attest`, `vouch run` and `vouch node` alike:
    /// each flag given (`tee`, `tcti`, `tsm_root`) wins, else the same key in
    /// `$VOUCH_HOME/config.json`, else `none`, [`DEFAULT_TCTI`], the kernel's configfs-tsm.
    /// Also returns config.json's `tdx_collateral`. A `tee` that names no TEE, or a key that is
    /// not a string, is an error naming where it came from.
    pub fn resolve(
        home: &Home,
        tee: Option<&str>,
        tcti: Option<&str>,
        tsm_root: Option<&Path>,
    ) -> Result<(TeeConfig, Option<PathBuf>)> {
        let config = home.config()?;
        let path = home.dir.join("config.json");
        let text = |key: &str| -> Result<Option<String>> {
            match config.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => bail!("{key} in {}: expected a string, found {other}", path.display()),
            }
        };
        const TEES: &str = "expected none, tpm, sev-snp or tdx";
        let tee = match tee {
            Some(name) => Tee::from_wire_name(name).ok_or_else(|| anyhow!("--tee {name:?}: {TEES}"))?,
            None => match text("tee")? {
                None => Tee::None,
                Some(name) => Tee::from_wire_name(&name)
                    .ok_or_else(|| anyhow!("tee {name:?} in {}: {TEES} (or give --tee)", path.display()))?,
            },
        };
        let tcti = match tcti {
            Some(t) => Some(t.to_owned()),
            None => text("tcti")?,
        };
        let tsm_root = match tsm_root {
            Some(p) => Some(p.to_path_buf()),
            None => text("tsm_root")?.map(PathBuf::from),
        };
        let cfg = TeeConfig { tee, tcti, tsm_root, enrollment: Some(home.dir.join(ENROLLMENT_FILE)) };
        Ok((cfg, text("tdx_collateral")?.map(PathBuf::from)))
    }
}

/// Fresh evidence binding `binding` (32 bytes): returns the technology wire name (`none`, `tpm`,
/// `sev-snp`, `tdx`) and the evidence body bytes (the DAG-CBOR body vouch-attest's verifiers
/// take; empty for `none`).
///
/// `tdx`: configfs-tsm gives the quote only; its collateral comes from a PCCS, which Vouch does
/// not contact. `tdx_collateral` names a file holding the DCAP collateral fetched beforehand
/// (dcap-qvl's `QuoteCollateralV3` JSON as a PCCS serves it; `vouch attest --collateral`, config
/// key `tdx_collateral`) and is bundled into the evidence so that it verifies offline; without
/// it the body carries an empty `collateral` and the `tdx-collateral` claim fails. The file is
/// read at every generation: a job that refreshes it from a PCCS keeps new evidence current.
/// Ignored for the other technologies.
pub fn generate_with_collateral(
    cfg: &TeeConfig,
    tdx_collateral: Option<&Path>,
    binding: &[u8; 32],
) -> Result<(&'static str, Vec<u8>)> {
    match cfg.tee {
        Tee::None => Ok(("none", Vec::new())),
        Tee::Tpm => Ok(("tpm", tpm_node::quote(cfg, binding)?)),
        Tee::SevSnp | Tee::Tdx => {
            use vouch_attest::tsm::{DEFAULT_ROOT, Generated, Tsm};
            let root = cfg.tsm_root.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
            let generated = Tsm::new(&root).generate(binding)?;
            match (cfg.tee, generated) {
                (Tee::SevSnp, Generated::SevSnp(ev)) => Ok(("sev-snp", ev.to_cbor())),
                (Tee::Tdx, Generated::Tdx { quote }) => Ok(("tdx", tdx_evidence(quote, tdx_collateral)?.to_cbor())),
                (tee, g) => bail!(
                    "--tee {} asked for, but configfs-tsm at {} is a {} guest",
                    tee.wire_name(),
                    root.display(),
                    g.technology()
                ),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Enrolment file formats (DAG-CBOR, unknown fields rejected; docs/attestation.md)
// ---------------------------------------------------------------------------------------------

/// `enroll request` (node → authority): the TPM's EK certificate, intermediates, and AK.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub version: u32,
    /// DER EK certificate from the TPM's NV.
    #[serde(with = "serde_bytes")]
    pub ek_certificate: Vec<u8>,
    /// DER intermediates between the EK certificate and the authority's trust root.
    pub ek_chain: Vec<ByteBuf>,
    /// `TPM2B_PUBLIC` of the attestation key.
    #[serde(with = "serde_bytes")]
    pub ak_public: Vec<u8>,
}

/// `enroll challenge` (authority → node): a credential only that TPM can activate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollChallenge {
    pub version: u32,
    /// The request file's bytes, exactly.
    #[serde(with = "serde_bytes")]
    pub request: Vec<u8>,
    /// Unix seconds; covered by the secret.
    pub issued_at: u64,
    /// `TPM2B_ID_OBJECT` contents.
    #[serde(with = "serde_bytes")]
    pub credential_blob: Vec<u8>,
    /// `TPM2B_ENCRYPTED_SECRET` contents.
    #[serde(with = "serde_bytes")]
    pub encrypted_secret: Vec<u8>,
}

/// `enroll activate` (node → authority): the secret the TPM released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    pub version: u32,
    #[serde(with = "serde_bytes")]
    pub request: Vec<u8>,
    pub issued_at: u64,
    #[serde(with = "serde_bytes")]
    pub secret: Vec<u8>,
}

/// `enroll sign` (authority → node), installed as `$VOUCH_HOME/tpm-enrollment.cbor`: the signed
/// statement, and the EK chain the authority verified (attached to every quote).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledEnrollment {
    pub version: u32,
    pub enrollment: Enrollment,
    pub ek_chain: Vec<ByteBuf>,
}

/// TDX evidence: the quote with the collateral read from `collateral` (empty without one).
fn tdx_evidence(quote: Vec<u8>, collateral: Option<&Path>) -> Result<DcapEvidence> {
    let collateral = collateral.map(|p| read_collateral(p, "tdx collateral")).transpose()?.unwrap_or_default();
    Ok(DcapEvidence { quote, collateral })
}

/// DCAP collateral JSON from `path` (bounded, UTF-8, JSON); `what` names the option or key.
fn read_collateral(path: &Path, what: &str) -> Result<String> {
    let collateral =
        String::from_utf8(read_input(path)?).map_err(|_| anyhow!("{what} {}: not UTF-8 JSON", path.display()))?;
    serde_json::from_str::<serde_json::Value>(&collateral)
        .map_err(|e| anyhow!("{what} {}: not JSON: {e}", path.display()))?;
    Ok(collateral)
}

fn to_cbor<T: Serialize>(value: &T) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(value).expect("maps of byte strings and integers always encode")
}

fn from_cbor<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str, path: &Path) -> Result<T> {
    serde_ipld_dagcbor::from_slice(bytes).map_err(|e| anyhow!("{}: not a Vouch {what} (DAG-CBOR): {e}", path.display()))
}

fn check_version(version: u32, what: &str, path: &Path) -> Result<()> {
    if version != ENROLL_VERSION {
        bail!("{}: {what} version {version}; this vouch reads version {ENROLL_VERSION}", path.display());
    }
    Ok(())
}

/// The stateless challenge secret: HMAC-SHA256(authority key seed, domain ‖ issued_at ‖ request).
fn challenge_secret(authority: &SigningKey, issued_at: u64, request: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<Sha256>::new_from_slice(authority.as_bytes()).expect("HMAC takes any key length");
    mac.update(CHALLENGE_DOMAIN);
    mac.update(&issued_at.to_be_bytes());
    mac.update(request);
    mac.finalize().into_bytes().into()
}

/// Equal lengths and contents, in time independent of the contents.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        bail!("{}: is a directory", path.display());
    }
    if meta.len() > MAX_INPUT_BYTES {
        bail!("{}: {} bytes, more than the {MAX_INPUT_BYTES} accepted", path.display(), meta.len());
    }
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Write `bytes` to `path` atomically (a temporary file in the same directory, then rename).
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("writing {}", path.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path).map_err(|e| anyhow!("writing {}: {}", path.display(), e.error))?;
    Ok(())
}

fn load_authority_key(path: &Path) -> Result<SigningKey> {
    let pem = fs::read_to_string(path).with_context(|| format!("reading the authority key {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| anyhow!("{}: not an ed25519 PKCS#8 PEM key: {e}", path.display()))
}

fn read_certificates(paths: &[PathBuf], option: &str) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for p in paths {
        let bytes = read_input(p)?;
        out.extend(vouch_attest::parse_certificates(&bytes).map_err(|e| anyhow!("{option} {}: {e}", p.display()))?);
    }
    Ok(out)
}

fn read_one_certificate(path: &Path, option: &str) -> Result<Vec<u8>> {
    let mut certs = read_certificates(std::slice::from_ref(&path.to_path_buf()), option)?;
    if certs.len() != 1 {
        bail!("{option} {}: {} certificates; expected one", path.display(), certs.len());
    }
    Ok(certs.remove(0))
}

fn ak_name_of(ak_public: &[u8]) -> Result<Vec<u8>> {
    wire::parse_public(ak_public).and_then(|p| p.name()).map_err(|e| anyhow!("AK public area: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The node's TPM (feature `tpm`)
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "tpm")]
mod tpm_node {
    use super::*;
    use sha2::Digest as _;
    use vouch_attest::tpm::DEFAULT_PCR_SELECTION;

    /// `$VOUCH_HOME/tpm-enrollment.cbor`, or the configured path.
    fn enrollment_path(configured: Option<&Path>) -> Result<PathBuf> {
        match configured {
            Some(p) => Ok(p.to_owned()),
            None => Ok(Home::from_env()?.dir.join(ENROLLMENT_FILE)),
        }
    }

    use vouch_attest::tpm_attester::TpmAttester;

    pub fn require() -> Result<()> {
        Ok(())
    }

    pub fn open(tcti: &str) -> Result<TpmAttester> {
        TpmAttester::open(tcti).map_err(|e| anyhow!("opening the TPM: {e}"))
    }

    /// The installed enrolment, checked against this TPM's EK certificate and AK.
    fn installed(path: &Path, attester: &TpmAttester) -> Result<InstalledEnrollment> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no TPM enrolment at {}: enrol this TPM's attestation key first: `vouch attest enroll request` \
                 here, `vouch attest enroll challenge` and `sign` at the enrolment authority, then `vouch attest \
                 enroll activate` and `install` here (docs/attestation.md, \"Enrolment commands\")",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let installed: InstalledEnrollment = from_cbor(&bytes, "TPM enrolment", path)?;
        check_version(installed.version, "enrolment", path)?;
        matches_tpm(&installed.enrollment, attester).with_context(|| format!("{}", path.display()))?;
        Ok(installed)
    }

    /// Does `enrollment` name this TPM's EK certificate and AK?
    pub fn matches_tpm(enrollment: &Enrollment, attester: &TpmAttester) -> Result<()> {
        let ek = attester.ek_certificate().ok_or_else(|| anyhow!("the TPM has no EK certificate"))?;
        if enrollment.statement.ek_cert_sha256 != Sha256::digest(ek).as_slice() {
            bail!(
                "the enrolment is for EK certificate sha256 {}, this TPM's is {}: re-enrol",
                hex::encode(&enrollment.statement.ek_cert_sha256),
                hex::encode(Sha256::digest(ek))
            );
        }
        let ak_name = attester.ak_name().map_err(|e| anyhow!("{e}"))?;
        if enrollment.statement.ak_name != ak_name {
            bail!(
                "the enrolment is for AK {}, this TPM's AK is {}: re-enrol",
                hex::encode(&enrollment.statement.ak_name),
                hex::encode(&ak_name)
            );
        }
        Ok(())
    }

    /// PCR 23 (resettable, zero after boot) measures the Vouch binary: the first quote after a
    /// boot extends it with SHA-256 of this executable, later ones find it set and leave it. So
    /// PCR 23 = SHA-256(32 zero bytes ‖ SHA-256(vouch binary)) for a node that only ever ran one
    /// binary since boot, a value a policy can pin; anything else shows up as a different value.
    fn measure_self_once(attester: &mut TpmAttester) -> Result<()> {
        let pcr = vouch_attest::tpm::SELF_MEASUREMENT_PCR;
        let current = attester.read_pcrs(&[pcr]).map_err(|e| anyhow!("reading PCR {pcr}: {e}"))?;
        if current.first().is_some_and(|v| v.sha256.iter().any(|b| *b != 0)) {
            return Ok(());
        }
        let exe = std::env::current_exe().context("locating the vouch binary to measure")?;
        let mut file = std::fs::File::open(&exe).with_context(|| format!("measuring {}", exe.display()))?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher).with_context(|| format!("measuring {}", exe.display()))?;
        attester.extend_self_measurement(hasher.finalize().into()).map_err(|e| anyhow!("extending PCR {pcr}: {e}"))
    }

    pub fn quote(cfg: &TeeConfig, binding: &[u8; 32]) -> Result<Vec<u8>> {
        let path = enrollment_path(cfg.enrollment.as_deref())?;
        let mut attester = open(cfg.tcti())?;
        let installed = installed(&path, &attester)?;
        measure_self_once(&mut attester)?;
        let chain = installed.ek_chain.into_iter().map(ByteBuf::into_vec).collect();
        let ev = attester
            .quote(*binding, &DEFAULT_PCR_SELECTION, installed.enrollment, chain)
            .map_err(|e| anyhow!("TPM quote: {e}"))?;
        Ok(ev.to_bytes())
    }

    pub fn request(tcti: &str, ek_chain: Vec<Vec<u8>>) -> Result<EnrollRequest> {
        let attester = open(tcti)?;
        let ek_certificate =
            attester.ek_certificate().ok_or_else(|| anyhow!("the TPM has no EK certificate in NV"))?.to_vec();
        Ok(EnrollRequest {
            version: ENROLL_VERSION,
            ek_certificate,
            ek_chain: ek_chain.into_iter().map(ByteBuf::from).collect(),
            ak_public: attester.ak_public().to_vec(),
        })
    }

    pub fn activate(tcti: &str, req: &EnrollRequest, challenge: &EnrollChallenge) -> Result<Vec<u8>> {
        let mut attester = open(tcti)?;
        if attester.ek_certificate() != Some(req.ek_certificate.as_slice()) || attester.ak_public() != req.ak_public {
            bail!("the challenge was made for another TPM (its request names another EK certificate or AK)");
        }
        attester
            .activate_credential(&challenge.credential_blob, &challenge.encrypted_secret)
            .map_err(|e| anyhow!("the TPM refused the credential: {e}"))
    }

    pub fn check_install(tcti: &str, enrollment: &Enrollment) -> Result<()> {
        let attester = open(tcti)?;
        matches_tpm(enrollment, &attester)
    }
}

#[cfg(not(feature = "tpm"))]
mod tpm_node {
    use super::*;

    pub fn require() -> Result<()> {
        bail!(NO_TPM_SUPPORT)
    }

    pub fn quote(_: &TeeConfig, _: &[u8; 32]) -> Result<Vec<u8>> {
        bail!(NO_TPM_SUPPORT)
    }

    pub fn request(_: &str, _: Vec<Vec<u8>>) -> Result<EnrollRequest> {
        bail!(NO_TPM_SUPPORT)
    }

    pub fn activate(_: &str, _: &EnrollRequest, _: &EnrollChallenge) -> Result<Vec<u8>> {
        bail!(NO_TPM_SUPPORT)
    }

    pub fn check_install(_: &str, _: &Enrollment) -> Result<()> {
        bail!(NO_TPM_SUPPORT)
    }
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

/// `vouch attest`: without a subcommand, print fresh evidence for this node's key.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AttestArgs {
    #[command(subcommand)]
    cmd: Option<AttestCmd>,
    #[command(flatten)]
    generate: GenerateArgs,
}

#[derive(Args)]
struct GenerateArgs {
    /// The technology to produce evidence with (default: `tee` in config.json, else none).
    #[arg(long, value_enum)]
    tee: Option<Tee>,
    /// TPM TCTI: `device:/dev/tpmrm0` (default) or, for swtpm (TCP only with this TSS),
    /// `swtpm:host=127.0.0.1,port=2321` (default: $VOUCH_TCTI, else `tcti` in config.json).
    #[arg(long, env = "VOUCH_TCTI")]
    tcti: Option<String>,
    /// configfs-tsm report directory, or a report entry made beforehand and shared (one with a
    /// `provider` file), SEV-SNP and TDX (default: `tsm_root` in config.json, else
    /// /sys/kernel/config/tsm/report).
    #[arg(long, value_name = "DIR")]
    tsm_root: Option<PathBuf>,
    /// The TPM enrolment to attach (default $VOUCH_HOME/tpm-enrollment.cbor).
    #[arg(long, value_name = "FILE")]
    enrollment: Option<PathBuf>,
    /// TDX: DCAP collateral to attach (dcap-qvl's QuoteCollateralV3 JSON, as a PCCS serves it),
    /// so the evidence verifies offline (default: `tdx_collateral` in config.json). Without it
    /// the evidence carries none.
    #[arg(long, value_name = "FILE")]
    collateral: Option<PathBuf>,
    /// The nonce, hex (default: 16 random bytes).
    #[arg(long, value_name = "HEX")]
    nonce: Option<String>,
    /// Print JSON, with the evidence body in base64.
    #[arg(long)]
    json: bool,
    /// Write the evidence body to FILE (for `vouch attest verify FILE --format vouch`).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Subcommand)]
enum AttestCmd {
    /// Verify evidence offline: exit 0 every claim holds, 1 a claim failed, 2 error.
    Verify(VerifyArgs),
    /// Enrol the TPM's attestation key with an enrolment authority (privacy-CA style, offline).
    #[command(subcommand)]
    Enroll(EnrollCmd),
}

pub fn run(home: &Home, args: AttestArgs) -> Result<()> {
    match args.cmd {
        None => attest(home, args.generate),
        Some(AttestCmd::Verify(v)) => verify(v),
        Some(AttestCmd::Enroll(e)) => enroll(home, e),
    }
}

fn attest(home: &Home, args: GenerateArgs) -> Result<()> {
    let nonce = match &args.nonce {
        Some(h) => {
            let n = hex::decode(h.trim()).map_err(|e| anyhow!("--nonce {h:?}: not hex: {e}"))?;
            if n.is_empty() || n.len() > 64 {
                bail!("--nonce: {} bytes; give 1 to 64 bytes of hex", n.len());
            }
            n
        }
        None => {
            let mut n = vec![0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut n);
            n
        }
    };
    let node_key = home.identity()?.verifying_key().to_bytes();
    let binding = vouch_receipt::report_data(&node_key, &nonce);
    let tee = args.tee.map(Tee::wire_name);
    let (mut cfg, collateral) = TeeConfig::resolve(home, tee, args.tcti.as_deref(), args.tsm_root.as_deref())?;
    if let Some(e) = &args.enrollment {
        cfg.enrollment = Some(e.clone());
    }
    let collateral = args.collateral.clone().or(collateral);
    let (technology, body) = generate_with_collateral(&cfg, collateral.as_deref(), &binding)?;
    if let Some(out) = &args.output {
        write_file(out, &body)?;
    }
    let summary = summarize(technology, &body);
    if args.json {
        let mut v = json!({
            "technology": technology,
            "nonce": hex::encode(&nonce),
            "binding": hex::encode(binding),
            "node_key": hex::encode(node_key),
            "evidence": base64::engine::general_purpose::STANDARD.encode(&body),
            "evidence_bytes": body.len(),
        });
        if let (Some(map), serde_json::Value::Object(s)) = (v.as_object_mut(), summary) {
            map.extend(s);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("technology  {technology}");
        println!("nonce       {}", hex::encode(&nonce));
        println!("binding     {}", hex::encode(binding));
        println!("node key    {}", hex::encode(node_key));
        println!(
            "evidence    {} bytes{}",
            body.len(),
            args.output.as_ref().map(|p| format!(" (written to {})", p.display())).unwrap_or_default()
        );
        if technology == "none" {
            println!("binds       nothing: `none` carries no hardware claim");
        }
        if let serde_json::Value::Object(s) = summary {
            for (k, v) in s {
                match v {
                    serde_json::Value::String(s) => println!("{:<11} {s}", k.replace('_', " ")),
                    // The TPM's PCR values, one a line (JSON keeps them numerically ordered as text).
                    serde_json::Value::Object(m) => {
                        let mut entries: Vec<(u32, String)> = m
                            .iter()
                            .map(|(i, v)| (i.parse().unwrap_or(u32::MAX), v.as_str().unwrap_or_default().to_owned()))
                            .collect();
                        entries.sort();
                        for (i, v) in entries {
                            println!("{:<11} {v}", format!("pcr {i}"));
                        }
                    }
                    other => println!("{:<11} {other}", k.replace('_', " ")),
                }
            }
        }
    }
    Ok(())
}

/// What evidence of `technology` binds, for display: read from the body without verifying it.
fn summarize(technology: &str, body: &[u8]) -> serde_json::Value {
    match technology {
        "tpm" => match TpmEvidence::from_bytes(body) {
            Ok(ev) => {
                let pcrs: serde_json::Map<String, serde_json::Value> =
                    ev.pcrs.iter().map(|p| (p.index.to_string(), json!(hex::encode(&p.sha256)))).collect();
                let (subject, issuer) = match certs::parse(&ev.ek_certificate) {
                    Ok(c) => (certs::subject(&c), certs::issuer(&c)),
                    Err(e) => (format!("(unparsable: {e})"), String::new()),
                };
                json!({
                    "ak_name": ak_name_of(&ev.ak_public).map(hex::encode).unwrap_or_else(|e| e.to_string()),
                    "ek_subject": subject,
                    "ek_issuer": issuer,
                    "enrolled_by": hex::encode(&ev.ak_binding.authority),
                    "pcrs": pcrs,
                })
            }
            Err(e) => json!({ "summary_error": e }),
        },
        "sev-snp" => match SnpEvidence::from_cbor(body) {
            Ok(ev) if ev.report.len() == vouch_attest::snp::REPORT_LEN => {
                let r = &ev.report;
                json!({
                    "report_version": u32::from_le_bytes(r[0..4].try_into().expect("4 bytes")),
                    "measurement": hex::encode(&r[0x90..0xc0]),
                    "chip_id": hex::encode(&r[0x1a0..0x1e0]),
                    "reported_tcb": format!("{:#018x}", u64::from_le_bytes(r[0x180..0x188].try_into().expect("8 bytes"))),
                    "report_data": hex::encode(&r[0x50..0x90]),
                })
            }
            Ok(ev) => json!({ "summary_error": format!("report of {} bytes", ev.report.len()) }),
            Err(e) => json!({ "summary_error": e.to_string() }),
        },
        "tdx" => match DcapEvidence::from_cbor(body) {
            // TDX quote v4/v5: 48-byte header, then the TD report (MRTD at 136..184 of it).
            Ok(ev) if ev.quote.len() >= 48 + 584 => json!({
                "mrtd": hex::encode(&ev.quote[48 + 136..48 + 184]),
                "report_data": hex::encode(&ev.quote[48 + 520..48 + 584]),
                "collateral": if ev.collateral.is_empty() { "none attached (fetch it from a PCCS)" } else { "attached" },
            }),
            Ok(ev) => json!({ "summary_error": format!("quote of {} bytes", ev.quote.len()) }),
            Err(e) => json!({ "summary_error": e.to_string() }),
        },
        _ => json!({}),
    }
}

// ---------------------------------------------------------------------------------------------
// vouch attest verify
// ---------------------------------------------------------------------------------------------

/// What FILE holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The raw 1184-byte SEV-SNP report (snpguest's attestation-report.bin); needs --vcek.
    SnpReport,
    /// A raw TDX quote; needs --collateral.
    TdxQuote,
    /// A raw SGX quote; needs --collateral.
    SgxQuote,
    /// A Vouch TpmEvidence body (DAG-CBOR), or a raw TPMS_ATTEST (tpm2_quote -m) with
    /// --signature, --ak and optionally --pcrs.
    TpmQuote,
    /// An evidence body written by `vouch attest -o` (technology detected from its fields).
    Vouch,
}

#[derive(Args)]
struct VerifyArgs {
    /// The evidence file.
    file: PathBuf,
    #[arg(long, value_enum)]
    format: Format,
    /// The VCEK that signed an SEV-SNP report (DER or PEM).
    #[arg(long, value_name = "FILE")]
    vcek: Option<PathBuf>,
    /// The AMD ASK (DER or PEM; default: the built-in one for the product line).
    #[arg(long, value_name = "FILE")]
    ask: Option<PathBuf>,
    /// The AMD ARK (DER or PEM; must be a built-in AMD ARK or a --trust-root).
    #[arg(long, value_name = "FILE")]
    ark: Option<PathBuf>,
    /// DCAP collateral: dcap-qvl's QuoteCollateralV3 JSON (as a PCCS serves it).
    #[arg(long, value_name = "JSON")]
    collateral: Option<PathBuf>,
    /// tpm-quote from tpm2-tools: the quote's signature (tpm2_quote -s; tss or plain form).
    #[arg(long, value_name = "FILE")]
    signature: Option<PathBuf>,
    /// tpm-quote from tpm2-tools: the AK public key, trusted as given (tpm2_createak -u:
    /// TPM2B_PUBLIC, or PEM/DER SubjectPublicKeyInfo from -f pem / tpm2_readpublic -f pem).
    #[arg(long, value_name = "PUB")]
    ak: Option<PathBuf>,
    /// tpm-quote from tpm2-tools: the PCR values (tpm2_quote -o; serialized, marshaled or values).
    #[arg(long, value_name = "FILE")]
    pcrs: Option<PathBuf>,
    /// Verification time, Unix seconds (default: now).
    #[arg(long, value_name = "UNIX_TIME")]
    at: Option<u64>,
    /// Appraisal policy, TOML (default: every technology, TCB UpToDate, no debug, VMPL 0).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Extra trust root (PEM or DER), e.g. a TPM EK CA; repeatable.
    #[arg(long = "trust-root", value_name = "PEM")]
    trust_roots: Vec<PathBuf>,
    /// The binding the evidence must carry: 32 bytes of hex (report data = binding ‖ 32 zero
    /// bytes), or the whole 64-byte report data, compared exactly (evidence from other tools).
    /// Without it the report-data claim fails: evidence that binds nothing you know proves
    /// nothing about who asked for it.
    #[arg(long, value_name = "HEX")]
    report_data: Option<String>,
    #[arg(long)]
    json: bool,
    /// Print every claim, not only the failures.
    #[arg(long)]
    explain: bool,
}

/// Is this the claim that checks the binding?
fn is_binding_claim(claim: &str) -> bool {
    claim.ends_with("-report-data") || claim == "tpm-qualifying-data"
}

/// The technology of a Vouch evidence body, by which evidence type it decodes as.
fn detect(body: &[u8]) -> Result<&'static str> {
    if TpmEvidence::from_bytes(body).is_ok() {
        return Ok("tpm");
    }
    if SnpEvidence::from_cbor(body).is_ok() {
        return Ok("sev-snp");
    }
    if let Ok(ev) = DcapEvidence::from_cbor(body) {
        // The quote header's TEE type (bytes 4..8, little endian): 0x81 TDX, 0 SGX.
        return Ok(match ev.quote.get(4..8) {
            Some([0x81, 0, 0, 0]) => "tdx",
            _ => "sgx",
        });
    }
    if body.is_empty() {
        bail!("empty evidence body: `none` evidence carries no hardware claim and there is nothing to verify");
    }
    bail!("not a Vouch evidence body: it decodes as none of the tpm, sev-snp and tdx/sgx evidence maps")
}

/// `--report-data`: 32 bytes (the Vouch binding, report data = binding ‖ 32 zero bytes) or 64
/// bytes (the whole report data, compared exactly: evidence made by snpguest or DCAP tools with
/// arbitrary report data). Returned as the full 64 bytes.
fn parse_report_data(hex_text: &str) -> Result<[u8; 64]> {
    let bytes = hex::decode(hex_text.trim()).map_err(|e| anyhow!("--report-data: not hex: {e}"))?;
    let mut full = [0u8; 64];
    match bytes.len() {
        32 | 64 => full[..bytes.len()].copy_from_slice(&bytes),
        n => bail!("--report-data: {n} bytes; expected 32 (the Vouch binding) or 64 (the whole report data)"),
    }
    Ok(full)
}

/// With 64 bytes of `--report-data` whose last 32 are not zero, the `*-report-data` claim
/// (recorded for the Vouch layout) is replaced by an exact comparison with the report data the
/// evidence carries. Skipped claims (the signature failed) stay skipped.
fn compare_exactly(checks: &mut Checks, technology: &str, body: &[u8], expected: &[u8; 64]) -> Result<()> {
    if technology == "tpm" {
        bail!("--report-data: TPM qualifying data is the 32-byte binding; 64 bytes apply to sev-snp, tdx and sgx");
    }
    let found = vouch_attest::report_data_of(technology, body);
    for c in checks.0.iter_mut().filter(|c| c.claim.ends_with("-report-data")) {
        if matches!(c.status, Status::Skipped { .. }) {
            continue;
        }
        let want = hex::encode(expected);
        c.status = match found {
            Some(f) if f == *expected => Status::Passed { detail: format!("report data = --report-data {want}") },
            Some(f) => {
                Status::Failed { expected: format!("report data {want} (--report-data)"), found: hex::encode(f) }
            }
            None => Status::Failed { expected: format!("report data {want}"), found: "no report data decoded".into() },
        };
    }
    Ok(())
}

fn verify(args: VerifyArgs) -> Result<()> {
    if args.format == Format::TpmQuote {
        let data = read_input(&args.file)?;
        if tpm::tools::is_tpms_attest(&data) {
            return verify_tpm_tools(&args, &data);
        }
    }
    let tools_opts = [("--signature", &args.signature), ("--ak", &args.ak), ("--pcrs", &args.pcrs)];
    if let Some((opt, _)) = tools_opts.iter().find(|(_, v)| v.is_some()) {
        bail!(
            "{opt} goes with --format tpm-quote and a raw TPMS_ATTEST (tpm2_quote -m); {} is not one (it does not \
             start with the TPM_GENERATED magic ff544347)",
            args.file.display()
        );
    }
    let expected = args.report_data.as_deref().map(parse_report_data).transpose()?;
    let policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::default(),
    };
    let trust_roots = read_certificates(&args.trust_roots, "--trust-root")?;
    let needs = |opt: &Option<PathBuf>, name: &str| -> Result<PathBuf> {
        opt.clone().ok_or_else(|| anyhow!("--format {} needs {name}", format_name(args.format)))
    };
    let data = read_input(&args.file)?;
    let (technology, body) = match args.format {
        Format::SnpReport => {
            let vcek = read_one_certificate(&needs(&args.vcek, "--vcek")?, "--vcek")?;
            let ask = args.ask.as_deref().map(|p| read_one_certificate(p, "--ask")).transpose()?;
            let ark = args.ark.as_deref().map(|p| read_one_certificate(p, "--ark")).transpose()?;
            ("sev-snp", SnpEvidence { report: data, vcek, ask, ark }.to_cbor())
        }
        Format::TdxQuote | Format::SgxQuote => {
            let collateral = read_collateral(&needs(&args.collateral, "--collateral")?, "--collateral")?;
            let tech = if args.format == Format::TdxQuote { "tdx" } else { "sgx" };
            (tech, DcapEvidence { quote: data, collateral }.to_cbor())
        }
        Format::TpmQuote => ("tpm", data),
        Format::Vouch => (detect(&data).with_context(|| format!("{}", args.file.display()))?, data),
    };
    let at = args.at.unwrap_or_else(now);
    // Cannot fail: the first 32 of 64 bytes.
    let binding = expected.map(|e| <[u8; 32]>::try_from(&e[..32]).expect("32 of 64 bytes")).unwrap_or([0; 32]);
    let ctx = vouch_attest::Context { binding, trust_roots: &trust_roots, at };
    let mut checks = vouch_attest::appraise(technology, &body, &policy, &ctx);
    // The whole report data, when it is not the Vouch layout binding ‖ 32 zero bytes.
    let exact = expected.filter(|e| e[32..].iter().any(|b| *b != 0));
    if let Some(exact) = &exact {
        compare_exactly(&mut checks, technology, &body, exact)?;
    }
    if expected.is_none() {
        for c in checks.0.iter_mut().filter(|c| is_binding_claim(&c.claim)) {
            if !matches!(c.status, Status::Skipped { .. }) {
                c.status = Status::Failed {
                    expected: "the binding given with --report-data (32 bytes of hex)".into(),
                    found: "--report-data was not given, so the evidence's binding was checked against nothing".into(),
                };
            }
        }
    }
    // Raw reports, quotes and evidence bodies carry no wall-clock production time (a TPM quote's
    // clock counts from the TPM's last clear), so the policy's maximum age cannot be applied
    // here: say so rather than pass silently.
    if let Some(max) = policy.max_evidence_age {
        checks.skip(
            "evidence-age",
            format!(
                "not applied: the policy's max_evidence_age ({} s) needs a production time, and {} evidence carries \
                 none (a receipt's produced_at is checked by `vouch verify`)",
                max.as_secs(),
                technology
            ),
        );
    }
    let shown = match (exact, expected) {
        (Some(e), _) => Some(hex::encode(e)),
        (None, e) => e.map(|e| hex::encode(&e[..32])),
    };
    report(&args, technology, at, shown, &checks)
}

/// `--format tpm-quote` with tpm2-tools files: FILE is the raw `TPMS_ATTEST` (`tpm2_quote -m`),
/// with `--signature`, `--ak` and optionally `--pcrs`. `--report-data` is the qualifying data
/// (`tpm2_quote -q`), 1 to 64 bytes, compared exactly; without it `tpm-qualifying-data` fails.
/// The AK is trusted as given, and the output says so first. Malformed companion files are
/// errors (exit 2); a quote that does not decode fails `tpm-decode` (exit 1).
fn verify_tpm_tools(args: &VerifyArgs, quote: &[u8]) -> Result<()> {
    use vouch_attest::tpm::tools;
    let what = "--format tpm-quote with a raw TPMS_ATTEST (tpm2_quote -m)";
    let unused = [("--trust-root", !args.trust_roots.is_empty()), ("--vcek", args.vcek.is_some())];
    if let Some((opt, _)) = unused.iter().find(|(_, given)| *given) {
        bail!("{what}: {opt} does not apply: tpm2-tools' quote files carry no certificate to check against it");
    }
    let sig_path = args.signature.as_deref().ok_or_else(|| anyhow!("{what} needs --signature (tpm2_quote -s)"))?;
    let ak_path = args.ak.as_deref().ok_or_else(|| anyhow!("{what} needs --ak (tpm2_createak -u, or -f pem)"))?;
    let expected = match args.report_data.as_deref() {
        Some(h) => {
            let q = hex::decode(h.trim()).map_err(|e| anyhow!("--report-data: not hex: {e}"))?;
            if q.is_empty() || q.len() > 64 {
                bail!("--report-data: {} bytes; TPM qualifying data (tpm2_quote -q) is 1 to 64 bytes", q.len());
            }
            Some(q)
        }
        None => None,
    };
    let policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::default(),
    };
    let ak = tools::parse_ak(&read_input(ak_path)?).map_err(|e| anyhow!("--ak {}: {e}", ak_path.display()))?;
    let sig = tools::parse_signature(&read_input(sig_path)?, &ak)
        .map_err(|e| anyhow!("--signature {}: {e}", sig_path.display()))?;
    let pcrs = match args.pcrs.as_deref() {
        Some(p) => Some(
            tools::parse_pcrs(&read_input(p)?, &tools::quote_selection(quote))
                .map_err(|e| anyhow!("--pcrs {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let checks = tools::appraise(quote, &sig, &ak, pcrs.as_ref(), expected.as_deref(), &policy);
    if !args.json {
        println!("TRUST ASSUMPTION: {}", tools::AK_TRUST_ASSUMPTION);
    }
    report(args, "tpm", args.at.unwrap_or_else(now), expected.map(hex::encode), &checks)
}

fn format_name(f: Format) -> String {
    f.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
}

fn line(c: &Check) -> String {
    match &c.status {
        Status::Passed { detail } => format!("PASS {}: {detail}", c.claim),
        Status::Failed { expected, found } => format!("FAIL {}: expected {expected} / found {found}", c.claim),
        Status::Skipped { reason } => format!("SKIP {}: {reason}", c.claim),
    }
}

fn report(args: &VerifyArgs, technology: &str, at: u64, expected: Option<String>, checks: &Checks) -> Result<()> {
    let failed: Vec<&Check> = checks.iter().filter(|c| matches!(c.status, Status::Failed { .. })).collect();
    let passed = checks.iter().filter(|c| matches!(c.status, Status::Passed { .. })).count();
    let skipped = checks.iter().count() - passed - failed.len();
    if args.json {
        let v = json!({
            "verified": failed.is_empty(),
            "technology": technology,
            "format": format_name(args.format),
            "at": at,
            "report_data": expected,
            "checks": checks,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        // Failures, and the policy's evidence age that was not applied, are always shown.
        let shown = |c: &&Check| args.explain || matches!(c.status, Status::Failed { .. }) || c.claim == "evidence-age";
        for c in checks.iter().filter(shown) {
            println!("{}", line(c));
        }
        if failed.is_empty() {
            println!("verified: {technology} evidence, {passed} claims passed, {skipped} skipped, at {at}");
        } else {
            println!(
                "NOT VERIFIED: {technology} evidence, {} of {} claims failed",
                failed.len(),
                checks.iter().count()
            );
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        let names: Vec<&str> = failed.iter().map(|c| c.claim.as_str()).collect();
        Err(VerificationFailed(format!("evidence not verified: {} failed", names.join(", "))).into())
    }
}

// ---------------------------------------------------------------------------------------------
// vouch attest enroll
// ---------------------------------------------------------------------------------------------

#[derive(Subcommand)]
enum EnrollCmd {
    /// Node: write an enrolment request (EK certificate and chain, AK public area).
    Request {
        /// TPM TCTI (default: $VOUCH_TCTI, else `tcti` in config.json, else device:/dev/tpmrm0).
        #[arg(long, env = "VOUCH_TCTI")]
        tcti: Option<String>,
        /// Intermediate CA certificates between the EK certificate and the authority's trust
        /// root (PEM or DER); repeatable.
        #[arg(long = "ek-chain", value_name = "PEM")]
        ek_chain: Vec<PathBuf>,
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Authority: verify the request's EK certificate chain and write a credential challenge.
    Challenge {
        request: PathBuf,
        /// EK CA root certificate (PEM or DER); repeatable, at least one.
        #[arg(long = "trust-root", value_name = "PEM", required = true)]
        trust_roots: Vec<PathBuf>,
        /// The authority's ed25519 key (`vouch attest enroll keygen`).
        #[arg(long, value_name = "AUTHORITY.pem")]
        key: PathBuf,
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Node: have the TPM activate the credential; write the response.
    Activate {
        challenge: PathBuf,
        /// TPM TCTI (default: $VOUCH_TCTI, else `tcti` in config.json, else device:/dev/tpmrm0).
        #[arg(long, env = "VOUCH_TCTI")]
        tcti: Option<String>,
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Authority: check the response's secret and sign the enrolment statement.
    Sign {
        response: PathBuf,
        #[arg(long, value_name = "AUTHORITY.pem")]
        key: PathBuf,
        /// Oldest challenge accepted (d, h, m, s units).
        #[arg(long, default_value = "24h")]
        max_age: String,
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Node: check the enrolment names this TPM's EK and AK, install it in $VOUCH_HOME.
    Install {
        enrollment: PathBuf,
        /// TPM TCTI (default: $VOUCH_TCTI, else `tcti` in config.json, else device:/dev/tpmrm0).
        #[arg(long, env = "VOUCH_TCTI")]
        tcti: Option<String>,
    },
    /// Authority: create an ed25519 key (PKCS#8 PEM, mode 0600); prints its public key hex,
    /// which goes in the policy's `[tpm] enrollment_keys`.
    Keygen {
        #[arg(short, long, value_name = "AUTHORITY.pem")]
        output: PathBuf,
    },
}

/// The TCTI of `enroll request|activate|install`: resolved as for `vouch attest --tee tpm` (the
/// flag or $VOUCH_TCTI, else `tcti` in config.json, else [`DEFAULT_TCTI`]).
fn enroll_tcti(home: &Home, flag: Option<&str>) -> Result<String> {
    let (cfg, _) = TeeConfig::resolve(home, Some(Tee::Tpm.wire_name()), flag, None)?;
    Ok(cfg.tcti().to_owned())
}

fn enroll(home: &Home, cmd: EnrollCmd) -> Result<()> {
    if matches!(cmd, EnrollCmd::Request { .. } | EnrollCmd::Activate { .. } | EnrollCmd::Install { .. }) {
        tpm_node::require()?;
    }
    match cmd {
        EnrollCmd::Request { tcti, ek_chain, output } => {
            let chain = read_certificates(&ek_chain, "--ek-chain")?;
            let req = tpm_node::request(&enroll_tcti(home, tcti.as_deref())?, chain)?;
            write_file(&output, &to_cbor(&req))?;
            let subject = certs::parse(&req.ek_certificate).map(|c| certs::subject(&c)).unwrap_or_default();
            println!("EK certificate  {subject}");
            println!("AK name         {}", hex::encode(ak_name_of(&req.ak_public)?));
            println!("request         {}", output.display());
            Ok(())
        }
        EnrollCmd::Challenge { request, trust_roots, key, output } => {
            let authority = load_authority_key(&key)?;
            let roots = read_certificates(&trust_roots, "--trust-root")?;
            let bytes = read_input(&request)?;
            let req: EnrollRequest = from_cbor(&bytes, "enrolment request", &request)?;
            check_version(req.version, "enrolment request", &request)?;
            let at = now();
            let ak_name = check_request(&req, &roots, at)?;
            let ek =
                tpm::EkPublic::from_certificate(&req.ek_certificate).map_err(|e| anyhow!("EK certificate: {e}"))?;
            let secret = challenge_secret(&authority, at, &bytes);
            let cred = tpm::make_credential_with_secret(&ek, &ak_name, secret, &mut rand::rngs::OsRng)
                .map_err(|e| anyhow!("making the credential: {e}"))?;
            let challenge = EnrollChallenge {
                version: ENROLL_VERSION,
                request: bytes,
                issued_at: at,
                credential_blob: cred.credential_blob,
                encrypted_secret: cred.encrypted_secret,
            };
            write_file(&output, &to_cbor(&challenge))?;
            println!("AK name    {}", hex::encode(&ak_name));
            println!("challenge  {}", output.display());
            Ok(())
        }
        EnrollCmd::Activate { challenge, tcti, output } => {
            let bytes = read_input(&challenge)?;
            let chal: EnrollChallenge = from_cbor(&bytes, "enrolment challenge", &challenge)?;
            check_version(chal.version, "enrolment challenge", &challenge)?;
            let req: EnrollRequest = from_cbor(&chal.request, "enrolment request", &challenge)?;
            let secret = tpm_node::activate(&enroll_tcti(home, tcti.as_deref())?, &req, &chal)?;
            let resp =
                EnrollResponse { version: ENROLL_VERSION, request: chal.request, issued_at: chal.issued_at, secret };
            write_file(&output, &to_cbor(&resp))?;
            println!("response  {}", output.display());
            Ok(())
        }
        EnrollCmd::Sign { response, key, max_age, output } => {
            let authority = load_authority_key(&key)?;
            let max_age = vouch_attest::policy::parse_duration(&max_age).map_err(|e| anyhow!("--max-age: {e}"))?;
            let bytes = read_input(&response)?;
            let resp: EnrollResponse = from_cbor(&bytes, "enrolment response", &response)?;
            check_version(resp.version, "enrolment response", &response)?;
            let expected = challenge_secret(&authority, resp.issued_at, &resp.request);
            if !ct_eq(&expected, &resp.secret) {
                return Err(VerificationFailed(
                    "the response's secret is not the one this authority's challenge holds: the credential was \
                     not activated by the TPM of the request's EK, or the challenge came from another authority key"
                        .into(),
                )
                .into());
            }
            let at = now();
            let age = at.saturating_sub(resp.issued_at);
            if age > max_age.as_secs() || resp.issued_at > at + 300 {
                return Err(VerificationFailed(format!(
                    "the challenge was issued at {}, {age} s ago; --max-age is {} s",
                    resp.issued_at,
                    max_age.as_secs()
                ))
                .into());
            }
            // The secret is a MAC by this key over the request: it was issued only after the
            // request's EK chain verified, so the request need not be checked again.
            let req: EnrollRequest = from_cbor(&resp.request, "enrolment request", &response)?;
            let ak_name = ak_name_of(&req.ak_public)?;
            let enrollment = Enrollment::sign(&authority, &req.ek_certificate, &ak_name, at);
            let installed = InstalledEnrollment { version: ENROLL_VERSION, enrollment, ek_chain: req.ek_chain };
            write_file(&output, &to_cbor(&installed))?;
            println!("authority   {}", hex::encode(authority.verifying_key().to_bytes()));
            println!("AK name     {}", hex::encode(&ak_name));
            println!("enrolment   {}", output.display());
            Ok(())
        }
        EnrollCmd::Install { enrollment, tcti } => {
            let bytes = read_input(&enrollment)?;
            let installed: InstalledEnrollment = from_cbor(&bytes, "TPM enrolment", &enrollment)?;
            check_version(installed.version, "enrolment", &enrollment)?;
            installed
                .enrollment
                .verify_signature()
                .map_err(|e| anyhow!("{}: enrolment signature: {e}", enrollment.display()))?;
            tpm_node::check_install(&enroll_tcti(home, tcti.as_deref())?, &installed.enrollment)?;
            fs::create_dir_all(&home.dir).with_context(|| format!("creating {}", home.dir.display()))?;
            let dest = home.dir.join(ENROLLMENT_FILE);
            write_file(&dest, &bytes)?;
            println!("authority   {}", hex::encode(&installed.enrollment.authority));
            println!("AK name     {}", hex::encode(&installed.enrollment.statement.ak_name));
            println!("installed   {}", dest.display());
            Ok(())
        }
        EnrollCmd::Keygen { output } => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| anyhow!("encoding the key: {e}"))?;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&output)
                .with_context(|| format!("creating {}", output.display()))?;
            f.write_all(pem.as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("writing {}", output.display()))?;
            println!("{}", hex::encode(key.verifying_key().to_bytes()));
            Ok(())
        }
    }
}

/// The authority's checks of a request: EK certificate chain to a trust root, valid now, and an
/// AK with the attributes of an attestation key. Returns the AK name.
fn check_request(req: &EnrollRequest, roots: &[Vec<u8>], at: u64) -> Result<Vec<u8>> {
    let refused = |msg: String| -> anyhow::Error { VerificationFailed(format!("request refused: {msg}")).into() };
    let ek = certs::parse(&req.ek_certificate).map_err(|e| refused(format!("EK certificate: {e}")))?;
    let chain = req
        .ek_chain
        .iter()
        .enumerate()
        .map(|(i, der)| certs::parse(der).map_err(|e| refused(format!("ek_chain[{i}]: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let roots = roots
        .iter()
        .map(|der| certs::parse(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("--trust-root: {e}"))?;
    let path = certs::verify_chain(&ek, &chain, &roots).map_err(|e| refused(format!("EK certificate chain: {e}")))?;
    // Every certificate of the chain, the trust root included, valid now.
    for cert in path {
        certs::check_valid_at(cert, at).map_err(|e| refused(format!("EK certificate chain: {e}")))?;
    }
    let ak = wire::parse_public(&req.ak_public).map_err(|e| refused(format!("AK public area: {e}")))?;
    if ak.attributes & wire::AK_REQUIRED != wire::AK_REQUIRED || ak.attributes & wire::AK_FORBIDDEN != 0 {
        return Err(refused(format!(
            "the AK is not a restricted signing key bound to the TPM: {}",
            wire::describe_attributes(ak.attributes)
        )));
    }
    ak.name().map_err(|e| refused(format!("AK name: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_data_lengths() {
        let mut full = [0u8; 64];
        full[..32].fill(0xab);
        assert_eq!(parse_report_data(&"ab".repeat(32)).unwrap(), full);
        let mut h = "ab".repeat(32);
        h.push_str(&"00".repeat(32));
        assert_eq!(parse_report_data(&h).unwrap(), full);
        assert_eq!(parse_report_data(&"ab".repeat(64)).unwrap(), [0xab; 64]);
        assert!(parse_report_data("abcd").unwrap_err().to_string().contains("2 bytes"));
    }

    /// TDX evidence with collateral attached verifies offline: the real dcap-qvl 0.7.1 sample
    /// (crates/vouch-attest/testdata/tdx, pinned time from its README) passes every dcap-qvl
    /// stage; only the Vouch layout of its report data fails. Without collateral, the
    /// collateral claim fails.
    #[test]
    fn tdx_collateral_is_attached_to_tdx_evidence() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vouch-attest/testdata/tdx");
        let quote = fs::read(dir.join("quote.bin")).unwrap();
        let binding: [u8; 32] = quote[48 + 520..48 + 552].try_into().unwrap();
        let ctx = vouch_attest::Context { binding, trust_roots: &[], at: 1_751_328_000 };
        let appraise = |ev: DcapEvidence| vouch_attest::appraise("tdx", &ev.to_cbor(), &Policy::default(), &ctx);

        let checks = appraise(tdx_evidence(quote.clone(), Some(&dir.join("collateral.json"))).unwrap());
        let failed: Vec<&str> =
            checks.iter().filter(|c| matches!(c.status, Status::Failed { .. })).map(|c| c.claim.as_str()).collect();
        assert_eq!(failed, ["tdx-report-data"], "{checks:#?}");

        let checks = appraise(tdx_evidence(quote.clone(), None).unwrap());
        assert_eq!(checks.first_failure().map(|c| c.claim.as_str()), Some("tdx-decode"), "{checks:#?}");

        let err = tdx_evidence(quote, Some(&dir.join("quote.bin"))).unwrap_err().to_string();
        assert!(err.contains("tdx collateral") && err.contains("quote.bin"), "{err}");
    }

    /// The authority refuses to enrol a key that is not an attestation key: the committed swtpm
    /// vector's request (crates/vouch-attest/testdata/tpm, its README; EK chain to its local CA
    /// root, valid at 1900000000) is accepted as is, and refused with the AK's TPMA_OBJECT
    /// (bytes 6..10 of its TPM2B_PUBLIC) made unrestricted, decrypting or not signing.
    #[test]
    fn authority_refuses_an_ak_without_attestation_key_attributes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vouch-attest/testdata/tpm");
        let ev = TpmEvidence::from_bytes(&fs::read(dir.join("evidence.cbor")).unwrap()).unwrap();
        let roots = vec![fs::read(dir.join("ek-root.der")).unwrap()];
        let at = 1_900_000_000;
        let request = |ak_public: Vec<u8>| EnrollRequest {
            version: ENROLL_VERSION,
            ek_certificate: ev.ek_certificate.clone(),
            ek_chain: ev.ek_chain.clone(),
            ak_public,
        };
        let name = check_request(&request(ev.ak_public.clone()), &roots, at).unwrap();
        assert_eq!(name, wire::parse_public(&ev.ak_public).unwrap().name().unwrap());

        let attrs = u32::from_be_bytes(ev.ak_public[6..10].try_into().unwrap());
        for bad in [attrs & !0x0001_0000, attrs | 0x0002_0000, attrs & !0x0004_0000, attrs & !0x0000_0002] {
            let mut ak = ev.ak_public.clone();
            ak[6..10].copy_from_slice(&bad.to_be_bytes());
            let err = check_request(&request(ak), &roots, at).unwrap_err();
            let refused = err.downcast_ref::<VerificationFailed>().expect("a refusal (exit 1), not an error");
            assert!(
                refused.0.starts_with("request refused: the AK is not a restricted signing key bound to the TPM: ")
                    && refused.0.contains(&format!("0x{bad:08x}")),
                "0x{bad:08x}: {}",
                refused.0
            );
        }
        // Certificates are checked for validity at the authority's time: before them, refused.
        let err = check_request(&request(ev.ak_public.clone()), &roots, 1_700_000_000).unwrap_err();
        let refused = err.downcast_ref::<VerificationFailed>().unwrap();
        assert!(refused.0.contains("not yet valid at 1700000000"), "{}", refused.0);
    }

    #[test]
    fn challenge_secret_depends_on_key_time_and_request() {
        let k1 = SigningKey::from_bytes(&[1; 32]);
        let k2 = SigningKey::from_bytes(&[2; 32]);
        let s = challenge_secret(&k1, 5, b"req");
        assert_eq!(s, challenge_secret(&k1, 5, b"req"));
        assert_ne!(s, challenge_secret(&k2, 5, b"req"));
        assert_ne!(s, challenge_secret(&k1, 6, b"req"));
        assert_ne!(s, challenge_secret(&k1, 5, b"reQ"));
        assert!(ct_eq(&s, &s) && !ct_eq(&s, &s[..31]) && !ct_eq(&s, &[0; 32]));
    }

    #[test]
    fn enrolment_files_reject_unknown_fields() {
        #[derive(Serialize)]
        struct Extended {
            version: u32,
            #[serde(with = "serde_bytes")]
            request: Vec<u8>,
            issued_at: u64,
            #[serde(with = "serde_bytes")]
            secret: Vec<u8>,
            extra: u32,
        }
        let plain = EnrollResponse { version: 1, request: vec![1], issued_at: 2, secret: vec![3] };
        assert_eq!(from_cbor::<EnrollResponse>(&to_cbor(&plain), "x", Path::new("f")).unwrap(), plain);
        let ext = Extended { version: 1, request: vec![1], issued_at: 2, secret: vec![3], extra: 4 };
        assert!(from_cbor::<EnrollResponse>(&to_cbor(&ext), "x", Path::new("f")).is_err());
    }
}
