//! A real software TPM per test: `swtpm_setup` provisions a fresh TPM state whose EK
//! certificates are issued by a local CA created in the same temporary directory
//! (`swtpm_localca`), then `swtpm socket` serves it on two loopback TCP ports (command, control).

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;

/// Is swtpm installed? Without it the test is skipped, except under `CI=true`, where it fails.
pub fn swtpm_available() -> bool {
    let found = ["swtpm", "swtpm_setup", "swtpm_localca"].iter().all(|tool| which(tool).is_some());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("swtpm, swtpm_setup or swtpm_localca not found and CI=true: install swtpm swtpm-tools");
        }
        eprintln!("skipping: swtpm, swtpm_setup or swtpm_localca not found (apt-get install swtpm swtpm-tools)");
    }
    found
}

/// One running swtpm with its own local EK CA. Killed on drop.
pub struct Swtpm {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

fn next_port() -> u16 {
    // Spread concurrent test processes apart; two ports (command, control) per TPM.
    let _ = NEXT_PORT.compare_exchange(
        0,
        20000 + (std::process::id() % 2000) as u16 * 8,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let p = NEXT_PORT.fetch_add(2, Ordering::SeqCst);
    if p > 60000 {
        NEXT_PORT.store(20000, Ordering::SeqCst);
    }
    p
}

fn which(tool: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(tool)).find(|p| p.is_file())
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).expect("PEM base64")
}

impl Swtpm {
    /// Provision a new TPM (RSA 2048 and ECC P-384 EKs with certificates, platform certificate)
    /// and start serving it.
    pub fn start() -> Swtpm {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("ca")).unwrap();
        std::fs::create_dir_all(d.join("state")).unwrap();
        let ca = d.join("ca");
        std::fs::write(
            d.join("swtpm-localca.conf"),
            format!(
                "statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\ncertserial = {ca}/certserial\n",
                ca = ca.display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("swtpm-localca.options"),
            "--platform-manufacturer Vouch\n--platform-version 2.1\n--platform-model swtpm\n",
        )
        .unwrap();
        std::fs::write(
            d.join("swtpm_setup.conf"),
            format!(
                "create_certs_tool = {tool}\ncreate_certs_tool_config = {d}/swtpm-localca.conf\n\
                 create_certs_tool_options = {d}/swtpm-localca.options\nactive_pcr_banks = sha256\n",
                tool = which("swtpm_localca").expect("swtpm_localca").display(),
                d = d.display()
            ),
        )
        .unwrap();
        let out = Command::new("swtpm_setup")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(d.join("state"))
            .args(["--create-ek-cert", "--create-platform-cert", "--overwrite", "--config"])
            .arg(d.join("swtpm_setup.conf"))
            .output()
            .expect("running swtpm_setup");
        assert!(
            out.status.success(),
            "swtpm_setup failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        for _ in 0..20 {
            let port = next_port();
            if TcpListener::bind(("127.0.0.1", port)).is_err() || TcpListener::bind(("127.0.0.1", port + 1)).is_err() {
                continue;
            }
            let mut child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--tpmstate"])
                .arg(format!("dir={}", d.join("state").display()))
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .args(["--flags", "startup-clear,not-need-init"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting swtpm");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken after all: try the next pair
                }
                if TcpStream::connect(("127.0.0.1", port + 1)).is_ok() {
                    // swtpm opens the command socket before the control socket; the probe
                    // connection is closed at once and swtpm goes on accepting.
                    return Swtpm { child, dir, port };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("swtpm did not listen on port {port}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("no free port pair for swtpm");
    }

    /// The TCTI string for `TpmAttester::open`.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca")
    }

    /// The local CA's root certificate (DER): the trust root for this TPM's EK certificates.
    pub fn root_der(&self) -> Vec<u8> {
        read_pem(&self.ca().join("swtpm-localca-rootca-cert.pem"))
    }

    /// The local CA's issuing certificate (DER), signed by the root: the EK chain.
    pub fn issuer_der(&self) -> Vec<u8> {
        read_pem(&self.ca().join("issuercert.pem"))
    }
}

fn read_pem(path: &Path) -> Vec<u8> {
    pem_to_der(&std::fs::read_to_string(path).expect("CA certificate"))
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
