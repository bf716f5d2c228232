//! SEV-SNP and TDX evidence generation through Linux configfs-tsm
//! (`Documentation/ABI/testing/configfs-tsm`): create a report entry under
//! `/sys/kernel/config/tsm/report`, write the 64-byte `inblob` (binding ‖ 32 zero bytes), read
//! `provider`, `outblob`, `auxblob` and `generation`, remove the entry.
//!
//! `generation` counts writes to the entry; it is read after writing `inblob` and again after
//! reading `outblob`, and the report data inside `outblob` is compared with `inblob`: another
//! writer in between makes the attempt fail, and it is retried ([`ATTEMPTS`] times in all).
//!
//! The root may also be a report entry created beforehand and shared (see [`Tsm::generate`]).
//! That is also how the tests drive the generator: a plain directory cannot stand in for a new
//! configfs entry (the kernel creates its attributes atomically with `mkdir`, before a test
//! thread could, and `rmdir` removes them, where a plain directory refuses to go), but a
//! prepared entry whose attributes are FIFOs served by a thread has the kernel's synchronous
//! side effects (`crates/vouch-attest/tests/tsm_support`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::evidence::SnpEvidence;

/// The kernel's configfs-tsm report directory.
pub const DEFAULT_ROOT: &str = "/sys/kernel/config/tsm/report";
/// Attempts before giving up on a concurrent writer.
pub const ATTEMPTS: usize = 3;
/// Largest `outblob`/`auxblob` read (a TDX quote is ~5 KB, an SNP certificate table ~5 KB).
const MAX_BLOB: u64 = 1 << 20;

/// Evidence as generated on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Generated {
    /// SEV-SNP: the report and the certificates the host supplied in `auxblob`.
    SevSnp(SnpEvidence),
    /// TDX: the quote. Its collateral comes from a PCCS (not fetched here: this crate does no
    /// network); attach it to build a [`crate::evidence::DcapEvidence`].
    Tdx { quote: Vec<u8> },
}

impl Generated {
    /// The technology name for the evidence: `sev-snp` or `tdx`.
    pub fn technology(&self) -> &'static str {
        match self {
            Generated::SevSnp(_) => "sev-snp",
            Generated::Tdx { .. } => "tdx",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TsmError {
    #[error(
        "configfs-tsm not available: {path} does not exist (no SEV-SNP/TDX guest, or configfs not mounted: \
         `mount -t configfs none /sys/kernel/config`)"
    )]
    NoConfigfs { path: PathBuf },
    #[error("configfs-tsm: {op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: io::Error },
    #[error("configfs-tsm provider {provider:?} is not supported (expected sev_guest or tdx_guest)")]
    UnknownProvider { provider: String },
    #[error("configfs-tsm: concurrent writer on {path}: {detail} (after {ATTEMPTS} attempts)")]
    ConcurrentWriter { path: PathBuf, detail: String },
    #[error("configfs-tsm: malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> TsmError + 'a {
    move |source| TsmError::Io { op, path: path.to_owned(), source }
}

/// configfs-tsm at a root directory (the kernel's, or a test tree).
#[derive(Clone, Debug)]
pub struct Tsm {
    root: PathBuf,
}

impl Default for Tsm {
    fn default() -> Self {
        Tsm::new(DEFAULT_ROOT)
    }
}

impl Tsm {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Tsm { root: root.into() }
    }

    /// Create a report entry, request evidence bound to `binding`, remove the entry.
    ///
    /// A root that is itself a report entry (it has a `provider` attribute, which the kernel's
    /// report directory never has) is a shared entry created beforehand, e.g. by root for a node
    /// that may not `mkdir` in configfs: it is used as it is, and not removed. `generation` is
    /// what makes sharing an entry safe (see [`request`]).
    pub fn generate(&self, binding: &[u8; 32]) -> Result<Generated, TsmError> {
        if !self.root.is_dir() {
            return Err(TsmError::NoConfigfs { path: self.root.clone() });
        }
        if self.root.join("provider").exists() {
            return request(&self.root, binding);
        }
        let name = format!("vouch-{}-{}", std::process::id(), unique());
        let dir = self.root.join(name);
        fs::create_dir(&dir).map_err(io_err("create entry", &dir))?;
        let result = request(&dir, binding);
        // configfs removes the entry's attributes with the directory.
        let removed = fs::remove_dir(&dir).map_err(io_err("remove entry", &dir));
        let generated = result?;
        removed?;
        Ok(generated)
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    (u64::from(nanos) << 16) ^ NEXT.fetch_add(1, Ordering::Relaxed)
}

fn read_blob(path: &Path) -> Result<Vec<u8>, TsmError> {
    use std::io::Read;
    let file = fs::File::open(path).map_err(io_err("open", path))?;
    let mut out = Vec::new();
    file.take(MAX_BLOB + 1).read_to_end(&mut out).map_err(io_err("read", path))?;
    if out.len() as u64 > MAX_BLOB {
        return Err(TsmError::Malformed {
            what: "blob",
            detail: format!("{} is larger than {MAX_BLOB} bytes", path.display()),
        });
    }
    Ok(out)
}

/// Request evidence in an existing report entry directory (what the kernel creates on `mkdir`):
/// write `inblob`, read `generation`, `outblob` (and, for SNP, `auxblob`), `generation` again; a
/// changed generation or an `outblob` whose report data is not our `inblob` means another writer
/// got in between, and the attempt is retried. [`Tsm::generate`] calls it on the entry it creates,
/// or on a shared entry.
pub fn request(dir: &Path, binding: &[u8; 32]) -> Result<Generated, TsmError> {
    let read = |name: &str| read_blob(&dir.join(name));
    let generation = || -> Result<u64, TsmError> {
        let text = text_of(&read("generation")?);
        text.parse()
            .map_err(|_| TsmError::Malformed { what: "generation", detail: format!("{text:?} is not a number") })
    };
    let provider = text_of(&read("provider")?);
    let snp = match provider.as_str() {
        "sev_guest" => true,
        "tdx_guest" => false,
        _ => return Err(TsmError::UnknownProvider { provider }),
    };
    let mut inblob = [0u8; 64];
    inblob[..32].copy_from_slice(binding);
    let inblob_path = dir.join("inblob");
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        fs::write(&inblob_path, inblob).map_err(io_err("write", &inblob_path))?;
        let before = generation()?;
        let outblob = read("outblob")?;
        let aux = if snp { read("auxblob").ok() } else { None };
        let after = generation()?;
        if before != after {
            last = format!("generation changed from {before} to {after} while reading outblob");
            continue;
        }
        let data = if snp { snp_report_data(&outblob)? } else { tdx_report_data(&outblob)? };
        if data != inblob {
            last = format!("outblob report data {} is not our inblob", hex::encode(data));
            continue;
        }
        return if snp {
            let certs = parse_cert_table(aux.as_deref().unwrap_or_default())?;
            let vcek = certs.vcek.ok_or_else(|| TsmError::Malformed {
                what: "auxblob",
                detail: "no VCEK in the host's certificate table: the host must provide it (e.g. `snphost import`)"
                    .to_owned(),
            })?;
            Ok(Generated::SevSnp(SnpEvidence { report: outblob, vcek, ask: certs.ask, ark: certs.ark }))
        } else {
            Ok(Generated::Tdx { quote: outblob })
        };
    }
    Err(TsmError::ConcurrentWriter { path: dir.to_owned(), detail: last })
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_owned()
}

fn snp_report_data(report: &[u8]) -> Result<[u8; 64], TsmError> {
    if report.len() != crate::snp::REPORT_LEN {
        return Err(TsmError::Malformed {
            what: "outblob",
            detail: format!("SEV-SNP report of {} bytes, expected {}", report.len(), crate::snp::REPORT_LEN),
        });
    }
    let mut data = [0u8; 64];
    data.copy_from_slice(&report[0x50..0x90]);
    Ok(data)
}

fn tdx_report_data(quote: &[u8]) -> Result<[u8; 64], TsmError> {
    let parsed = dcap_qvl::quote::Quote::parse(quote)
        .map_err(|e| TsmError::Malformed { what: "outblob", detail: format!("not a DCAP quote: {e:#}") })?;
    let td = parsed
        .report
        .as_td10()
        .ok_or_else(|| TsmError::Malformed { what: "outblob", detail: "quote holds no TD report".to_owned() })?;
    Ok(td.report_data)
}

/// Certificates found in an SEV-SNP certificate table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertTable {
    pub ark: Option<Vec<u8>>,
    pub ask: Option<Vec<u8>>,
    pub vcek: Option<Vec<u8>>,
    pub vlek: Option<Vec<u8>>,
}

const GUID_ARK: &str = "c0b406a4-a803-4952-9743-3fb6014cd0ae";
const GUID_ASK: &str = "4ab7b379-bbac-4fe4-a02f-05aef327c782";
const GUID_VCEK: &str = "63da758d-e664-4564-adc5-f4b93be8accd";
const GUID_VLEK: &str = "a8074bc2-a25a-483e-aae6-39c045a0b8a1";

/// A GUID's bytes in table order: RFC 4122 order (what the `sev` crate and `snpguest` read).
pub fn guid_bytes(guid: &str) -> [u8; 16] {
    let hex: String = guid.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; 16];
    if let Ok(bytes) = hex::decode(hex)
        && bytes.len() == 16
    {
        out.copy_from_slice(&bytes);
    }
    out
}

/// The same GUID in the mixed-endian (EFI) byte order.
fn guid_bytes_mixed(guid: &str) -> [u8; 16] {
    let mut b = guid_bytes(guid);
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// Parse the SEV-SNP certificate table (GHCB extended guest request format): entries of
/// `{guid[16], offset u32 LE, length u32 LE}` ended by an all-zero entry; offsets from the start
/// of the table. An empty blob is an empty table.
pub fn parse_cert_table(blob: &[u8]) -> Result<CertTable, TsmError> {
    let bad = |detail: String| TsmError::Malformed { what: "auxblob certificate table", detail };
    let mut table = CertTable::default();
    if blob.is_empty() {
        return Ok(table);
    }
    let mut at = 0usize;
    loop {
        let entry = blob.get(at..at + 24).ok_or_else(|| bad(format!("entry at {at} runs past the end")))?;
        if entry.iter().all(|b| *b == 0) {
            break;
        }
        let guid: [u8; 16] = entry[..16].try_into().map_err(|_| bad("guid".to_owned()))?;
        let offset = u32::from_le_bytes(entry[16..20].try_into().map_err(|_| bad("offset".to_owned()))?) as usize;
        let length = u32::from_le_bytes(entry[20..24].try_into().map_err(|_| bad("length".to_owned()))?) as usize;
        let data = offset
            .checked_add(length)
            .and_then(|end| blob.get(offset..end))
            .ok_or_else(|| {
                bad(format!("entry at {at}: {length} bytes at offset {offset} outside the {}-byte blob", blob.len()))
            })?
            .to_vec();
        let slot = [
            (GUID_ARK, &mut table.ark),
            (GUID_ASK, &mut table.ask),
            (GUID_VCEK, &mut table.vcek),
            (GUID_VLEK, &mut table.vlek),
        ]
        .into_iter()
        .find(|(g, _)| guid == guid_bytes(g) || guid == guid_bytes_mixed(g));
        if let Some((name, slot)) = slot {
            if slot.is_some() {
                return Err(bad(format!("certificate {name} listed twice")));
            }
            *slot = Some(data);
        }
        at += 24;
    }
    Ok(table)
}
