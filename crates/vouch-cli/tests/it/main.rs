//! Integration tests of the `vouch` binary: every test runs the real executable against its own
//! temporary `VOUCH_HOME`, through the [`Vouch`] helper.
//!
//! Tests that need tools from outside Cargo (real Kubo in `target/venv`, a CAR written by the npm
//! `@ipld/car` library in `testdata/car`) skip with a printed reason when the tool is missing,
//! and fail instead when `CI=true`.

mod attest;
mod blocks;
mod car;
mod concurrent;
mod corruption;
mod crash;
mod errors;
mod jobs;
mod kubo;
mod network;
mod python;
mod roundtrip;
mod seal;

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// A `vouch` environment: a temporary directory holding the home (`home/`) and a working
/// directory (`work/`) that commands run in, so tests can name their files relatively.
pub struct Vouch {
    dir: TempDir,
}

impl Default for Vouch {
    fn default() -> Self {
        Vouch::new()
    }
}

impl Vouch {
    pub fn new() -> Vouch {
        let dir = tempfile::Builder::new().prefix("vouch-it-").tempdir().expect("creating a temporary directory");
        fs::create_dir(dir.path().join("work")).expect("creating work/");
        Vouch { dir }
    }

    /// `$VOUCH_HOME`.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The pack directory of the store.
    pub fn packs_dir(&self) -> PathBuf {
        self.home().join("store").join("packs")
    }

    /// The working directory commands run in.
    pub fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// `name` under the working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.work().join(name)
    }

    /// Write `data` to `name` (creating parent directories) and return its path.
    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, data).unwrap();
        p
    }

    /// A `vouch` command with this environment's home and working directory.
    pub fn cmd<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vouch"));
        c.args(args).current_dir(self.work()).env("VOUCH_HOME", self.home()).stdin(Stdio::null());
        c
    }

    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.cmd(args).output().expect("running vouch")
    }

    /// Run in the background with stdout and stderr discarded.
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> Child {
        self.cmd(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawning vouch")
    }

    /// Run, assert exit 0, return stdout.
    #[track_caller]
    pub fn ok_bytes<S: AsRef<OsStr>>(&self, args: &[S]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "vouch {} failed ({}): {}",
            show(args),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Run, assert exit 0, return stdout as text.
    #[track_caller]
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        String::from_utf8(self.ok_bytes(args)).expect("stdout is UTF-8")
    }

    /// Run, assert failure, return (exit code, stderr).
    #[track_caller]
    pub fn fails<S: AsRef<OsStr>>(&self, args: &[S]) -> (i32, String) {
        let out = self.run(args);
        assert!(!out.status.success(), "vouch {} succeeded but should have failed", show(args));
        (out.status.code().expect("exited, not killed"), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Run, assert exit 2 with a one-line `Error: …` on stderr, return that line.
    #[track_caller]
    pub fn err<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let (code, stderr) = self.fails(args);
        assert_eq!(code, 2, "vouch {}: exit code; stderr: {stderr}", show(args));
        one_line_error(&stderr)
    }

    /// `vouch keygen -o FILE`: the recipient public key it printed (hex).
    #[track_caller]
    pub fn keygen(&self, file: &str) -> String {
        let out = self.ok(&["keygen", "-o", file]);
        out.lines().find_map(|l| l.strip_prefix("public   ")).expect("keygen prints the public key").trim().to_string()
    }

    /// `vouch add -Q ARGS…`: the root CID.
    #[track_caller]
    pub fn add_q(&self, args: &[&str]) -> String {
        let mut a = vec!["add", "-Q"];
        a.extend_from_slice(args);
        let out = self.ok(&a);
        let cid = out.trim();
        assert!(!cid.is_empty() && !cid.contains(char::is_whitespace), "add -Q printed {out:?}");
        cid.to_string()
    }

    /// What a command may not change: index totals and the pack files on disk.
    #[track_caller]
    pub fn snapshot(&self) -> Snapshot {
        let stat: serde_json::Value = serde_json::from_str(&self.ok(&["repo", "stat", "--json"])).unwrap();
        let field = |k: &str| stat[k].as_u64().unwrap_or_else(|| panic!("repo stat --json has no {k}: {stat}"));
        Snapshot {
            blocks: field("blocks"),
            block_bytes: field("block_bytes"),
            pins: field("pins"),
            packs: self.pack_files(),
            pin_list: self.ok(&["pin", "ls"]),
        }
    }

    /// Names of the files in the pack directory, sorted.
    pub fn pack_files(&self) -> Vec<String> {
        let mut v: Vec<String> = match fs::read_dir(self.packs_dir()) {
            Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    /// Total bytes of the pack directory.
    pub fn packs_size(&self) -> u64 {
        fs::read_dir(self.packs_dir()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
    }

    /// Assert `vouch cat CID` streams exactly the bytes of `file` (compared by SHA-256).
    #[track_caller]
    pub fn assert_cat_eq_file(&self, cid: &str, file: &Path) {
        let mut child = self.cmd(&["cat", cid]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (got, n) = sha256_reader(child.stdout.take().unwrap());
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "vouch cat {cid}: {}", String::from_utf8_lossy(&out.stderr));
        let (want, len) = sha256_reader(File::open(file).unwrap());
        assert_eq!((n, hex::encode(got)), (len, hex::encode(want)), "vouch cat {cid} differs from {}", file.display());
    }

    /// Assert every pin in `pin ls` names a complete DAG, by exporting it as a CAR.
    #[track_caller]
    pub fn assert_pins_complete(&self) -> Vec<String> {
        let pins: Vec<String> =
            self.ok(&["pin", "ls"]).lines().map(|l| l.split_whitespace().next().unwrap().to_string()).collect();
        let tmp = self.path("pin-check.car");
        for p in &pins {
            self.ok(&["car", "export", p, "-o", tmp.to_str().unwrap()]);
            fs::remove_file(&tmp).unwrap();
        }
        pins
    }
}

/// Store state that a failed command must leave as it was.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub blocks: u64,
    pub block_bytes: u64,
    pub pins: u64,
    pub packs: Vec<String>,
    pub pin_list: String,
}

fn show<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
}

/// The message of a one-line `Error: …` stderr.
#[track_caller]
pub fn one_line_error(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got {stderr:?}");
    assert!(lines[0].starts_with("Error: "), "stderr does not start with 'Error: ': {stderr:?}");
    lines[0].to_string()
}

/// SHA-256 and length of everything `r` yields.
pub fn sha256_reader(mut r: impl Read) -> ([u8; 32], u64) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    (h.finalize().into(), n)
}

/// `len` deterministic pseudo-random bytes from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// Write `len` pseudo-random bytes from `seed` to `path` without holding them in memory.
pub fn write_random_file(path: &Path, seed: u64, len: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut f = std::io::BufWriter::new(File::create(path).unwrap());
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..k]);
        f.write_all(&buf[..k]).unwrap();
        left -= k as u64;
    }
    f.flush().unwrap();
}

/// The workspace root.
/// Wait at most `within` for `child` to exit: its status, or `None` while it still runs (the
/// caller kills it and fails, so no test hangs on a child).
pub fn wait_within(child: &mut Child, within: std::time::Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A test whose external tool is missing: fail under CI (`CI=true`), else print why it skips.
/// Returns normally only when skipping is allowed.
pub fn skip_or_fail(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true, so this test may not skip: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}

/// Assert the tree at `got` equals the tree at `want` (names, kinds, bytes, symlink targets),
/// leaving out entries of `want` whose names start with '.' unless `hidden`.
#[track_caller]
pub fn assert_same_tree(want: &Path, got: &Path, hidden: bool) {
    let wm = fs::symlink_metadata(want).unwrap();
    let gm = fs::symlink_metadata(got).unwrap_or_else(|e| panic!("{}: {e}", got.display()));
    let (wt, gt) = (wm.file_type(), gm.file_type());
    if wt.is_symlink() {
        assert!(gt.is_symlink(), "{} should be a symlink", got.display());
        assert_eq!(fs::read_link(got).unwrap(), fs::read_link(want).unwrap(), "target of {}", got.display());
    } else if wt.is_file() {
        assert!(gt.is_file(), "{} should be a regular file", got.display());
        assert!(fs::read(got).unwrap() == fs::read(want).unwrap(), "{} differs from {}", got.display(), want.display());
    } else {
        assert!(wt.is_dir() && gt.is_dir(), "{} should be a directory", got.display());
        let names = |p: &Path, filter: bool| {
            let mut v: Vec<String> = fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| !filter || hidden || !n.starts_with('.'))
                .collect();
            v.sort();
            v
        };
        let wn = names(want, true);
        assert_eq!(names(got, false), wn, "entries of {}", got.display());
        for n in wn {
            assert_same_tree(&want.join(&n), &got.join(&n), hidden);
        }
    }
}

/// Sections of a CARv1: (start offset, section length including its varint, CID, data offset).
pub fn car_sections(car: &[u8]) -> (usize, Vec<CarSection>) {
    let (hlen, n) = varint(car);
    let mut pos = n + hlen as usize;
    let header_end = pos;
    let mut out = Vec::new();
    while pos < car.len() {
        let (len, n) = varint(&car[pos..]);
        let body = pos + n;
        let mut cur = std::io::Cursor::new(&car[body..body + len as usize]);
        let cid = cid::Cid::read_bytes(&mut cur).unwrap();
        let data = body + cur.position() as usize;
        out.push(CarSection { start: pos, end: body + len as usize, cid: cid.to_string(), data });
        pos = body + len as usize;
    }
    (header_end, out)
}

#[derive(Clone, Debug)]
pub struct CarSection {
    pub start: usize,
    pub end: usize,
    pub cid: String,
    /// Offset of the block's bytes.
    pub data: usize,
}

fn varint(b: &[u8]) -> (u64, usize) {
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate().take(10) {
        v |= u64::from(x & 0x7f) << (7 * i);
        if x & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    panic!("bad varint");
}
