//! configfs-tsm generation against a fake configfs tree in a tempdir, laid out like the kernel's
//! report entry (provider, inblob, outblob, auxblob, generation). The test plays the kernel: it
//! pre-writes `outblob` from the real Milan sample report with its report data set to what the
//! generator will write to `inblob` (so that report's signature no longer verifies: this tests
//! the plumbing, not the firmware). `KernelEntry` goes further: an entry with the kernel's side
//! effects (writes bump `generation`, reading `outblob` answers for the current `inblob` by
//! replaying the real sample), through which another writer can be made to race the generator.

use std::fs;
use std::path::Path;

use vouch_attest::tsm::{Generated, ReportEntry, Tsm, TsmError, guid_bytes, parse_cert_table, request, request_entry};

const REPORT: &[u8] = include_bytes!("../testdata/snp/milan-report.bin");
const VCEK: &[u8] = include_bytes!("../testdata/snp/milan-vcek.der");
const ASK: &[u8] = include_bytes!("../testdata/snp/milan-ask.der");
const ARK: &[u8] = include_bytes!("../testdata/snp/milan-ark.der");
const TDX_QUOTE: &[u8] = include_bytes!("../testdata/tdx/quote.bin");

const GUID_VCEK: &str = "63da758d-e664-4564-adc5-f4b93be8accd";
const GUID_ASK: &str = "4ab7b379-bbac-4fe4-a02f-05aef327c782";
const GUID_ARK: &str = "c0b406a4-a803-4952-9743-3fb6014cd0ae";

/// An SNP certificate table: entries {guid, offset, length}, a zero entry, then the certificates.
fn cert_table(certs: &[(&str, &[u8])]) -> Vec<u8> {
    let header = 24 * (certs.len() + 1);
    let mut table = Vec::new();
    let mut data = Vec::new();
    for (guid, der) in certs {
        table.extend_from_slice(&guid_bytes(guid));
        table.extend_from_slice(&((header + data.len()) as u32).to_le_bytes());
        table.extend_from_slice(&(der.len() as u32).to_le_bytes());
        data.extend_from_slice(der);
    }
    table.extend_from_slice(&[0u8; 24]);
    table.extend_from_slice(&data);
    table
}

fn entry(dir: &Path, provider: &str, outblob: &[u8], auxblob: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("provider"), format!("{provider}\n")).unwrap();
    fs::write(dir.join("generation"), "1\n").unwrap();
    fs::write(dir.join("outblob"), outblob).unwrap();
    fs::write(dir.join("auxblob"), auxblob).unwrap();
}

fn snp_outblob(binding: &[u8; 32]) -> Vec<u8> {
    let mut report = REPORT.to_vec();
    report[0x50..0x70].copy_from_slice(binding);
    report[0x70..0x90].fill(0);
    report
}

#[test]
fn snp_entry_yields_report_and_host_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let binding = [7u8; 32];
    let aux = cert_table(&[(GUID_VCEK, VCEK), (GUID_ASK, ASK), (GUID_ARK, ARK)]);
    entry(tmp.path(), "sev_guest", &snp_outblob(&binding), &aux);
    let generated = request(tmp.path(), &binding).unwrap();
    assert_eq!(generated.technology(), "sev-snp");
    let Generated::SevSnp(ev) = generated else { unreachable!() };
    assert_eq!(ev.report, snp_outblob(&binding));
    assert_eq!(ev.vcek, VCEK);
    assert_eq!(ev.ask.as_deref(), Some(ASK));
    assert_eq!(ev.ark.as_deref(), Some(ARK));
    // inblob = binding ‖ 32 zero bytes.
    let inblob = fs::read(tmp.path().join("inblob")).unwrap();
    assert_eq!(&inblob[..32], &binding);
    assert_eq!(&inblob[32..], &[0u8; 32]);
}

#[test]
fn outblob_for_another_inblob_is_a_concurrent_writer() {
    let tmp = tempfile::tempdir().unwrap();
    // The unmodified sample: its report data is someone else's.
    entry(tmp.path(), "sev_guest", REPORT, &cert_table(&[(GUID_VCEK, VCEK)]));
    match request(tmp.path(), &[1u8; 32]) {
        Err(TsmError::ConcurrentWriter { detail, .. }) => assert!(detail.contains("not our inblob"), "{detail}"),
        other => panic!("expected a concurrent-writer error, got {other:?}"),
    }
}

#[test]
fn snp_without_vcek_in_auxblob_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let binding = [2u8; 32];
    entry(tmp.path(), "sev_guest", &snp_outblob(&binding), b"");
    let err = request(tmp.path(), &binding).unwrap_err().to_string();
    assert!(err.contains("no VCEK"), "{err}");
}

#[test]
fn tdx_entry_yields_the_quote() {
    let tmp = tempfile::tempdir().unwrap();
    // The real TDX quote's report data, read from the quote, as the binding: its last 32 bytes
    // are not zero, so the generator refuses it as someone else's report.
    let q = dcap_qvl::quote::Quote::parse(TDX_QUOTE).unwrap();
    let rd = q.report.as_td10().unwrap().report_data;
    entry(tmp.path(), "tdx_guest", TDX_QUOTE, b"");
    let binding: [u8; 32] = rd[..32].try_into().unwrap();
    assert!(matches!(request(tmp.path(), &binding), Err(TsmError::ConcurrentWriter { .. })));
    // With the report data patched to binding ‖ zeros (signature broken, plumbing intact).
    let at = TDX_QUOTE.windows(64).position(|w| w == rd).unwrap();
    let mut quote = TDX_QUOTE.to_vec();
    quote[at + 32..at + 64].fill(0);
    entry(tmp.path(), "tdx_guest", &quote, b"");
    match request(tmp.path(), &binding).unwrap() {
        Generated::Tdx { quote: got } => assert_eq!(got, quote),
        other => panic!("expected TDX, got {other:?}"),
    }
}

#[test]
fn unknown_provider_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    entry(tmp.path(), "arm_cca_guest", b"", b"");
    match request(tmp.path(), &[0; 32]) {
        Err(e @ TsmError::UnknownProvider { .. }) => assert!(e.to_string().contains("arm_cca_guest")),
        other => panic!("expected unknown provider, got {other:?}"),
    }
}

#[test]
fn missing_configfs_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("sys/kernel/config/tsm/report");
    let err = Tsm::new(&root).generate(&[0; 32]).unwrap_err();
    assert!(matches!(err, TsmError::NoConfigfs { .. }));
    assert!(err.to_string().contains(&root.display().to_string()), "{err}");
}

#[test]
fn generate_creates_and_removes_its_entry() {
    // A plain directory is not configfs: the new entry has no attributes, and the error says
    // which file is missing; the entry is removed again.
    let tmp = tempfile::tempdir().unwrap();
    let err = Tsm::new(tmp.path()).generate(&[0; 32]).unwrap_err().to_string();
    assert!(err.contains("provider"), "{err}");
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn cert_table_errors() {
    assert_eq!(parse_cert_table(b"").unwrap(), Default::default());
    // Truncated: no terminating entry.
    assert!(parse_cert_table(&[1u8; 30]).is_err());
    // An entry pointing outside the blob.
    let mut t = cert_table(&[(GUID_VCEK, VCEK)]);
    t[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(parse_cert_table(&t).unwrap_err().to_string().contains("outside"));
    // Listed twice.
    assert!(parse_cert_table(&cert_table(&[(GUID_VCEK, VCEK), (GUID_VCEK, VCEK)])).is_err());
}

/// A report entry with the kernel's side effects: every write bumps `generation`; reading
/// `outblob` runs the "firmware" on the current `inblob`, which here replays the real Milan
/// report with the requested report data. `intruder` writes another inblob (as a second
/// process sharing the entry would) just before the n-th outblob reads.
struct KernelEntry {
    inblob: Vec<u8>,
    generation: u64,
    reads: usize,
    intrude_on: Vec<usize>,
    log: Vec<String>,
}

impl KernelEntry {
    fn new(intrude_on: Vec<usize>) -> KernelEntry {
        KernelEntry { inblob: vec![0; 64], generation: 0, reads: 0, intrude_on, log: Vec::new() }
    }
}

impl ReportEntry for KernelEntry {
    fn read(&mut self, name: &'static str) -> Result<Vec<u8>, TsmError> {
        self.log.push(format!("read {name}"));
        Ok(match name {
            "provider" => b"sev_guest\n".to_vec(),
            "generation" => format!("{}\n", self.generation).into_bytes(),
            "auxblob" => cert_table(&[(GUID_VCEK, VCEK), (GUID_ASK, ASK), (GUID_ARK, ARK)]),
            "outblob" => {
                self.reads += 1;
                if self.intrude_on.contains(&self.reads) {
                    // Another writer's inblob lands between our write and our read.
                    self.write("inblob", &[0xee; 64])?;
                }
                let mut report = REPORT.to_vec();
                report[0x50..0x90].copy_from_slice(&self.inblob);
                report
            }
            other => panic!("the generator read {other}"),
        })
    }
    fn write(&mut self, name: &'static str, data: &[u8]) -> Result<(), TsmError> {
        assert_eq!(name, "inblob", "the generator writes only inblob");
        assert_eq!(data.len(), 64);
        self.log.push(format!("write {name}"));
        self.inblob = data.to_vec();
        self.generation += 1;
        Ok(())
    }
    fn path(&self) -> std::path::PathBuf {
        "/fake/tsm/report/entry".into()
    }
}

#[test]
fn kernel_like_entry_replays_the_real_report_for_our_inblob() {
    let binding = [0x42u8; 32];
    let mut e = KernelEntry::new(vec![]);
    let Generated::SevSnp(ev) = request_entry(&mut e, &binding).unwrap() else { panic!("not SNP") };
    assert_eq!(&ev.report[0x50..0x70], &binding);
    assert_eq!(&ev.report[0x70..0x90], &[0u8; 32]);
    // Everything but the report data is the real sample's.
    assert_eq!(&ev.report[..0x50], &REPORT[..0x50]);
    assert_eq!(&ev.report[0x90..], &REPORT[0x90..]);
    assert_eq!(ev.vcek, VCEK);
    assert_eq!(
        e.log,
        ["read provider", "write inblob", "read generation", "read outblob", "read auxblob", "read generation"]
    );
}

#[test]
fn a_writer_between_our_write_and_read_is_retried_then_reported() {
    let binding = [0x42u8; 32];
    // Once: the first attempt sees the generation move and tries again.
    let mut e = KernelEntry::new(vec![1]);
    let Generated::SevSnp(ev) = request_entry(&mut e, &binding).unwrap() else { panic!("not SNP") };
    assert_eq!(&ev.report[0x50..0x70], &binding);
    assert_eq!(e.log.iter().filter(|l| *l == "write inblob").count(), 3, "ours, the intruder's, ours again");
    // Every time: the generator gives up, naming the entry and what changed.
    let mut e = KernelEntry::new((1..=vouch_attest::tsm::ATTEMPTS).collect());
    let err = request_entry(&mut e, &binding).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TsmError::ConcurrentWriter { .. }), "{msg}");
    assert!(msg.contains("/fake/tsm/report/entry") && msg.contains("generation changed"), "{msg}");
}
