//! A fake configfs-tsm report entry: a real directory that `Tsm::generate` uses as a shared
//! entry, with the kernel's side effects, replaying the real SNP sample.
//!
//! `provider` is a plain file (`sev_guest`). `inblob` is a FIFO the fake holds open for reading:
//! each 64 bytes written to it is a new inblob and bumps `generation`. `generation`, `outblob`
//! and `auxblob` are FIFOs: the generator's `open` blocks until the fake thread finds it waiting
//! (a non-blocking open for writing succeeds only when a reader is there), drains `inblob`
//! first, and writes the attribute's current value. So every read sees every write before it,
//! as with the kernel, with no timing involved. `outblob` is the real Milan report with its
//! report data replaced by the current inblob (the firmware's signature does not cover that
//! inblob, so the report's signature fails: this tests generation, not the firmware); `auxblob`
//! is the certificate table with the sample's VCEK, ASK and ARK.
//!
//! A plain directory cannot stand in for a *new* entry: the kernel creates the attributes with
//! `mkdir`, before any helper thread could, and removes them with `rmdir`, which a plain
//! directory with files refuses. Hence a prepared, shared entry.
//!
//! Bounded: the thread stops when the fake is dropped or after [`DEADLINE`]; it then renames the
//! FIFOs away (later opens fail with "not found") and opens them once more, so that a reader
//! still blocked in `open` gets end of file instead of waiting forever.

#![allow(dead_code)] // Each test binary uses part of it.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const REPORT: &[u8] = include_bytes!("../../testdata/snp/milan-report.bin");
pub const VCEK: &[u8] = include_bytes!("../../testdata/snp/milan-vcek.der");
pub const ASK: &[u8] = include_bytes!("../../testdata/snp/milan-ask.der");
pub const ARK: &[u8] = include_bytes!("../../testdata/snp/milan-ark.der");

pub const GUID_VCEK: &str = "63da758d-e664-4564-adc5-f4b93be8accd";
pub const GUID_ASK: &str = "4ab7b379-bbac-4fe4-a02f-05aef327c782";
pub const GUID_ARK: &str = "c0b406a4-a803-4952-9743-3fb6014cd0ae";

/// The longest the fake serves an entry.
pub const DEADLINE: Duration = Duration::from_secs(120);
const SERVED: [&str; 3] = ["generation", "outblob", "auxblob"];

/// An SNP certificate table: entries {guid, offset, length}, a zero entry, then the certificates.
pub fn cert_table(certs: &[(&str, &[u8])]) -> Vec<u8> {
    let header = 24 * (certs.len() + 1);
    let mut table = Vec::new();
    let mut data = Vec::new();
    for (guid, der) in certs {
        table.extend_from_slice(&vouch_attest::tsm::guid_bytes(guid));
        table.extend_from_slice(&((header + data.len()) as u32).to_le_bytes());
        table.extend_from_slice(&(der.len() as u32).to_le_bytes());
        data.extend_from_slice(der);
    }
    table.extend_from_slice(&[0u8; 24]);
    table.extend_from_slice(&data);
    table
}

/// The sample report as the fake's firmware answers `inblob`.
pub fn replayed_report(inblob: &[u8]) -> Vec<u8> {
    let mut report = REPORT.to_vec();
    report[0x50..0x90].copy_from_slice(inblob);
    report
}

pub struct FakeEntry {
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl FakeEntry {
    /// A SEV-SNP entry at `dir` (created). Before the n-th `outblob` read for each n in
    /// `intrude_on` (from 1), another writer's inblob (`0xee` bytes) lands first, as when a
    /// second process shares the entry.
    pub fn sev_snp(dir: &Path, intrude_on: Vec<usize>) -> FakeEntry {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("provider"), "sev_guest\n").unwrap();
        for name in ["inblob"].iter().chain(SERVED.iter()) {
            let path = CString::new(dir.join(name).as_os_str().as_bytes()).unwrap();
            // SAFETY: `path` is a NUL-terminated string that outlives the call.
            let rc = unsafe { libc::mkfifo(path.as_ptr(), 0o600) };
            assert_eq!(rc, 0, "mkfifo {name}: {}", std::io::Error::last_os_error());
        }
        // Held open for reading from here on, so that writers never block.
        let inblob = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(dir.join("inblob")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (d, s) = (dir.to_owned(), stop.clone());
        let thread = std::thread::spawn(move || serve(&d, inblob, &s, &intrude_on));
        FakeEntry { dir: dir.to_owned(), stop, thread: Some(thread) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stop serving; the operations the generator did, in order (`write inblob`, `read NAME`,
    /// `intruder writes inblob`).
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        // The thread ends within one poll interval or the cleanup after it; it never panics
        // except on a broken test machine (mkfifo, rename), which is then the test's failure.
        self.thread.take().map(|t| t.join().expect("fake configfs thread")).unwrap_or_default()
    }
}

impl Drop for FakeEntry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A FIFO opened for writing if a reader is waiting on it.
fn open_if_read(path: &Path) -> Option<File> {
    match OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(f) => {
            // Blocking writes from here: the reader is there, and a pipe may hold less than a blob.
            // SAFETY: F_SETFL on a descriptor this function owns.
            unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, 0) };
            Some(f)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => None,
        Err(e) => panic!("fake configfs: opening {}: {e}", path.display()),
    }
}

fn serve(dir: &Path, mut inblob_pipe: File, stop: &AtomicBool, intrude_on: &[usize]) -> Vec<String> {
    let started = Instant::now();
    let mut log = Vec::new();
    let mut inblob = vec![0u8; 64];
    let mut pending = Vec::new();
    let mut generation = 0u64;
    let mut outblob_reads = 0usize;
    // The attribute served last is not offered again until another is served or a new inblob
    // arrives: its reader may not have closed it yet.
    let mut last: Option<&str> = None;
    let mut drain = |pending: &mut Vec<u8>, inblob: &mut Vec<u8>, generation: &mut u64, log: &mut Vec<String>| {
        let mut buf = [0u8; 256];
        let mut fresh = false;
        loop {
            match inblob_pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("fake configfs: reading inblob: {e}"),
            }
        }
        while pending.len() >= 64 {
            *inblob = pending.drain(..64).collect();
            *generation += 1;
            log.push("write inblob".to_owned());
            fresh = true;
        }
        fresh
    };
    while !stop.load(Ordering::SeqCst) && started.elapsed() < DEADLINE {
        if drain(&mut pending, &mut inblob, &mut generation, &mut log) {
            last = None;
        }
        let mut served = false;
        for name in SERVED {
            if last == Some(name) {
                continue;
            }
            let Some(mut out) = open_if_read(&dir.join(name)) else { continue };
            // The reader's writes before its open are in the pipe by now.
            drain(&mut pending, &mut inblob, &mut generation, &mut log);
            let data = match name {
                "generation" => format!("{generation}\n").into_bytes(),
                "outblob" => {
                    outblob_reads += 1;
                    if intrude_on.contains(&outblob_reads) {
                        inblob = vec![0xee; 64];
                        generation += 1;
                        log.push("intruder writes inblob".to_owned());
                    }
                    replayed_report(&inblob)
                }
                _ => cert_table(&[(GUID_VCEK, VCEK), (GUID_ASK, ASK), (GUID_ARK, ARK)]),
            };
            log.push(format!("read {name}"));
            // A reader that went away early is the generator's business, not the fake's.
            let _ = out.write_all(&data);
            last = Some(name);
            served = true;
        }
        if !served {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Later opens fail; a reader already blocked in open gets end of file.
    for name in SERVED {
        let (path, gone) = (dir.join(name), dir.join(format!(".{name}.gone")));
        fs::rename(&path, &gone).expect("renaming a fake configfs FIFO");
        drop(open_if_read(&gone));
        let _ = fs::remove_file(&gone);
    }
    log
}
