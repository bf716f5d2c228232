//! configfs-tsm generation against fake configfs report entries in a tempdir, laid out like the
//! kernel's (provider, inblob, outblob, auxblob, generation). Static entries: the test pre-writes
//! `outblob` from the real Milan sample report with its report data set to what the generator
//! will write to `inblob` (so that report's signature no longer verifies: this tests the
//! plumbing, not the firmware). `tsm_support::FakeEntry` goes further: an entry with the kernel's
//! side effects (writes bump `generation`, reading `outblob` answers for the current `inblob` by
//! replaying the real sample), which `Tsm::generate` uses as a shared entry, and through which
//! another writer can be made to race the generator.

use std::fs;
use std::path::Path;

use vouch_attest::tsm::{Generated, Tsm, TsmError, parse_cert_table, request};
use vouch_attest::{Context, Policy, appraise};

mod common;
mod tsm_support;
use common::{failed, failures, passed};
use tsm_support::{ARK, ASK, FakeEntry, GUID_ARK, GUID_ASK, GUID_VCEK, REPORT, VCEK, cert_table, replayed_report};

const TDX_QUOTE: &[u8] = include_bytes!("../testdata/tdx/quote.bin");
/// Inside the Milan VCEK's validity (testdata/README.md).
const SNP_AT: u64 = 1_704_067_200;

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

/// `generate` with the root's own bounded wait: a generator blocked on a FIFO is a failure,
/// not a hang.
fn generate_bounded(root: &Path, binding: [u8; 32]) -> Result<Generated, TsmError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let root = root.to_owned();
    std::thread::spawn(move || tx.send(Tsm::new(root).generate(&binding)));
    rx.recv_timeout(tsm_support::DEADLINE).expect("the generator finished")
}

#[test]
fn generate_in_a_kernel_like_entry_replays_the_real_report() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeEntry::sev_snp(&tmp.path().join("entry"), vec![]);
    let binding = [0x42u8; 32];
    let generated = generate_bounded(fake.dir(), binding).unwrap();
    let dir = fake.dir().to_owned();
    let log = fake.finish();
    assert_eq!(log, ["write inblob", "read generation", "read outblob", "read auxblob", "read generation"]);
    // A shared entry is used as it is, not removed.
    assert!(dir.join("provider").is_file());
    let Generated::SevSnp(ev) = generated else { panic!("not SNP: {generated:?}") };
    // The real sample but for the report data: binding ‖ 32 zero bytes, as written to inblob.
    assert_eq!(&ev.report[0x50..0x70], &binding);
    assert_eq!(&ev.report[0x70..0x90], &[0u8; 32]);
    assert_eq!(&ev.report[..0x50], &REPORT[..0x50]);
    assert_eq!(&ev.report[0x90..], &REPORT[0x90..]);
    // The certificates come from auxblob.
    assert_eq!((ev.vcek.as_slice(), ev.ask.as_deref(), ev.ark.as_deref()), (VCEK, Some(ASK), Some(ARK)));
    // Verified: the chain is AMD's and the VCEK is this chip's, but the firmware never signed
    // our inblob, so the signature fails (and the report's contents are not trusted).
    let checks =
        appraise("sev-snp", &ev.to_cbor(), &Policy::default(), &Context { binding, trust_roots: &[], at: SNP_AT });
    for claim in ["snp-decode", "snp-cert-chain", "snp-cert-validity", "snp-chip-id"] {
        assert!(passed(&checks, claim), "{claim}: {checks:#?}");
    }
    assert_eq!(failures(&checks), ["snp-report-signature"], "{checks:#?}");
    let _ = failed(&checks, "snp-report-signature");
    // The sample itself, with its own report data back, verifies at its pinned time.
    let mut report = ev.report.clone();
    report[0x50..0x90].copy_from_slice(&REPORT[0x50..0x90]);
    assert_eq!(report, REPORT);
    let sample = vouch_attest::evidence::SnpEvidence { report, ..ev }.to_cbor();
    let sample_binding: [u8; 32] = REPORT[0x50..0x70].try_into().unwrap();
    let checks = appraise(
        "sev-snp",
        &sample,
        &Policy::default(),
        &Context { binding: sample_binding, trust_roots: &[], at: SNP_AT },
    );
    assert!(passed(&checks, "snp-report-signature"), "{checks:#?}");
}

#[test]
fn a_writer_between_our_write_and_read_is_retried_then_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let binding = [0x42u8; 32];
    // Once: the first attempt sees the generation move and tries again.
    let fake = FakeEntry::sev_snp(&tmp.path().join("once"), vec![1]);
    let Generated::SevSnp(ev) = generate_bounded(fake.dir(), binding).unwrap() else { panic!("not SNP") };
    assert_eq!(ev.report, replayed_report(&[binding, [0; 32]].concat()));
    let log = fake.finish();
    let writes: Vec<&String> = log.iter().filter(|l| l.contains("writes inblob") || *l == "write inblob").collect();
    assert_eq!(writes, ["write inblob", "intruder writes inblob", "write inblob"], "{log:?}");
    // Every time: the generator gives up, naming the entry and what changed.
    let fake = FakeEntry::sev_snp(&tmp.path().join("always"), (1..=vouch_attest::tsm::ATTEMPTS).collect());
    let err = generate_bounded(fake.dir(), binding).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TsmError::ConcurrentWriter { .. }), "{msg}");
    assert!(msg.contains(&fake.dir().display().to_string()) && msg.contains("generation changed"), "{msg}");
    assert_eq!(fake.finish().iter().filter(|l| *l == "write inblob").count(), vouch_attest::tsm::ATTEMPTS);
}
