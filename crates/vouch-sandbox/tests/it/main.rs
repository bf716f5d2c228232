//! vouch-sandbox integration tests: one binary, one module per concern. The guests are the
//! committed `guests/wasm/*.wasm` (built from `guests/src/*.c` by `guests/build.sh`), so no
//! toolchain is needed to run these.

mod cache;
mod clinical;
mod confinement;
mod determinism;
mod hostile;
mod reactor;
mod spec;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use vouch_sandbox::{Outcome, Prepared, RunResult, RunSpec, Sandbox, SandboxConfig};

/// The committed guest modules, by name.
pub fn guest(name: &str) -> &'static [u8] {
    macro_rules! guests {
        ($($n:literal),*) => {
            match name {
                $($n => include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../guests/wasm/", $n, ".wasm")),)*
                _ => panic!("no guest {name}"),
            }
        };
    }
    guests!(
        "clinical_summary",
        "csvparse",
        "echo_args",
        "hostile_clock",
        "hostile_escape",
        "hostile_loop",
        "hostile_memory",
        "hostile_outputs",
        "hostile_recursion",
        "hostile_socket",
        "hostile_stdout",
        "hostile_trap",
        "matmul",
        "sha256"
    )
}

/// One sandbox shared by the tests that do not care about its configuration, so each guest is
/// compiled once per test binary.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| Sandbox::new(SandboxConfig::default()).expect("sandbox"))
}

pub fn prepare(sandbox: &Sandbox, name: &str) -> Prepared {
    sandbox.prepare(name, guest(name)).unwrap_or_else(|e| panic!("prepare {name}: {e}"))
}

/// A job's directories: `root/inputs` and `root/outputs`, nothing else in `root`.
pub struct Dirs {
    pub root: tempfile::TempDir,
}

impl Dirs {
    pub fn fresh() -> Dirs {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("inputs")).unwrap();
        std::fs::create_dir(root.path().join("outputs")).unwrap();
        Dirs { root }
    }
    pub fn inputs(&self) -> PathBuf {
        self.root.path().join("inputs")
    }
    pub fn outputs(&self) -> PathBuf {
        self.root.path().join("outputs")
    }
    /// A spec with these directories and short limits suitable for tests.
    pub fn spec(&self, args: &[&str]) -> RunSpec {
        let mut spec = RunSpec::new(self.outputs());
        spec.inputs = Some(self.inputs());
        spec.args = args.iter().map(|a| a.to_string()).collect();
        spec.limits.wall_time = Duration::from_secs(20);
        spec
    }
}

/// Runs guest `name` in the shared sandbox with fresh directories.
pub fn run_guest(name: &str, args: &[&str], tweak: impl FnOnce(&mut RunSpec)) -> (RunResult, Dirs) {
    let dirs = Dirs::fresh();
    let mut spec = dirs.spec(args);
    tweak(&mut spec);
    let result = sandbox().run(&prepare(sandbox(), name), &spec).expect("run");
    (result, dirs)
}

pub fn stdout(result: &RunResult) -> String {
    String::from_utf8_lossy(&result.stdout).into_owned()
}

/// After a hostile guest: the same sandbox still runs a normal job correctly.
pub fn assert_healthy(sandbox: &Sandbox) {
    let dirs = Dirs::fresh();
    std::fs::write(dirs.inputs().join("x.txt"), b"hello").unwrap();
    let result = sandbox.run(&prepare(sandbox, "echo_args"), &dirs.spec(&["ok"])).expect("healthy run");
    assert_eq!(result.outcome, Outcome::Exited(0), "stderr: {}", String::from_utf8_lossy(&result.stderr));
    let out = stdout(&result);
    assert!(out.contains("argv[1]=ok"), "{out}");
    assert!(out.contains("file /inputs/x.txt 5 "), "{out}");
}

/// Every file under `dir` with its contents, sorted (symlinks as their target text).
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let ty = entry.file_type().unwrap();
            let rel = path.strip_prefix(dir).unwrap().to_path_buf();
            if ty.is_dir() {
                out.push((rel, b"<dir>".to_vec()));
                pending.push(path);
            } else if ty.is_symlink() {
                out.push((rel, std::fs::read_link(&path).unwrap().into_os_string().into_encoded_bytes()));
            } else {
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}
