//! Capabilities: a guest reaches /inputs (read-only) and /outputs, nothing else.

use vouch_sandbox::{Mount, Outcome};

use crate::{Dirs, assert_healthy, prepare, sandbox, snapshot, stdout};

/// Every escape attempt of `hostile_escape` and the errno it gets from wasmtime-wasi 48 (cap-std
/// underneath): EPERM when a path would leave its preopen or write a read-only one,
/// ENOTCAPABLE for an absolute path outside every preopen.
const EXPECTED: &[(&str, &str)] = &[
    ("read_dotdot_from_inputs", "EPERM"),
    ("read_dotdot_from_outputs", "EPERM"),
    ("read_absolute_outside", "ENOTCAPABLE"),
    ("create_dotdot_from_outputs", "EPERM"),
    ("opendir_root", "ENOTCAPABLE"),
    // An absolute symlink cannot even be created...
    ("symlink_absolute_create", "EPERM"),
    ("symlink_absolute_follow", "ENOENT"),
    // ...a relative one can (it is only text inside /outputs), but not followed out.
    ("symlink_relative_create", "OK"),
    ("symlink_relative_follow", "EPERM"),
    ("symlink_dir_create", "OK"),
    ("symlink_dir_write_through", "EPERM"),
    ("inputs_create", "EPERM"),
    ("inputs_write_existing", "EPERM"),
    ("inputs_truncate_existing", "EPERM"),
    ("inputs_unlink", "EPERM"),
    ("inputs_mkdir", "EPERM"),
    ("inputs_rename_to_outputs", "EPERM"),
    ("inputs_hardlink_to_outputs", "EPERM"),
    ("inputs_read", "OK"),
    ("outputs_create", "OK"),
];

#[test]
fn escape_attempts_fail_and_nothing_outside_outputs_changes() {
    let dirs = Dirs::fresh();
    std::fs::write(dirs.inputs().join("data.txt"), b"patient data").unwrap();
    std::fs::create_dir(dirs.inputs().join("sub")).unwrap();
    std::fs::write(dirs.inputs().join("sub/more.txt"), b"more").unwrap();
    let inputs_before = snapshot(&dirs.inputs());

    let result = sandbox().run(&prepare(sandbox(), "hostile_escape"), &dirs.spec(&["/inputs/data.txt"])).unwrap();
    assert_eq!(result.outcome, Outcome::Exited(0));
    let out = stdout(&result);
    let got: Vec<(String, String)> = out
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let expected: Vec<(String, String)> = EXPECTED.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(got, expected, "full output:\n{out}");

    // /inputs unchanged, nothing next to /inputs and /outputs, /outputs holds only what the
    // guest legitimately created there.
    assert_eq!(snapshot(&dirs.inputs()), inputs_before);
    let mut top: Vec<String> =
        std::fs::read_dir(dirs.root.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    top.sort();
    assert_eq!(top, ["inputs", "outputs"]);
    let names: Vec<String> = snapshot(&dirs.outputs()).into_iter().map(|(p, _)| p.display().to_string()).collect();
    assert_eq!(names, ["link_rel", "ok.txt", "up"]);
    assert_healthy(sandbox());
}

#[test]
fn the_guest_sees_only_what_the_spec_gives() {
    let dirs = Dirs::fresh();
    std::fs::write(dirs.inputs().join("a.csv"), b"x,y\n1,2\n").unwrap();
    std::fs::create_dir_all(dirs.inputs().join("d/e")).unwrap();
    std::fs::write(dirs.inputs().join("d/e/b.bin"), [0u8, 1, 2]).unwrap();
    let mut spec = dirs.spec(&["one", "two words"]);
    spec.program_name = "/bin/prog.wasm".into();
    spec.env = vec![("LANG".into(), "C".into()), ("EMPTY".into(), String::new())];
    let result = sandbox().run(&prepare(sandbox(), "echo_args"), &spec).unwrap();
    assert_eq!(result.outcome, Outcome::Exited(0));
    // No host environment (PATH, HOME, ...) leaks in; argv[0] is the program name.
    assert_eq!(
        stdout(&result),
        "argc=3\nargv[0]=/bin/prog.wasm\nargv[1]=one\nargv[2]=two words\nenv=LANG=C\nenv=EMPTY=\n\
         file /inputs/a.csv 8 894cdc679ed13de3\nfile /inputs/d/e/b.bin 3 d949aa186c0c4928\n"
    );
    let manifest = std::fs::read_to_string(dirs.outputs().join("manifest.txt")).unwrap();
    assert_eq!(manifest, "/inputs/a.csv 8 894cdc679ed13de3\n/inputs/d/e/b.bin 3 d949aa186c0c4928\n");
}

#[test]
fn runtime_dirs_are_read_only() {
    let dirs = Dirs::fresh();
    let lib = tempfile::tempdir().unwrap();
    std::fs::write(lib.path().join("stdlib.zip"), b"zip").unwrap();
    let mut spec = vouch_sandbox::RunSpec::new(dirs.outputs());
    spec.runtime_dirs.push(Mount { host: lib.path().to_path_buf(), guest: "/usr/local/lib".into() });
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "path_open"
        (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "stdlib.zip")
      (func (export "_start")
        ;; Preopens are numbered from 3 in order: /inputs (absent here), /outputs (3), then
        ;; the runtime dirs: /usr/local/lib is 4. Opening stdlib.zip there with the fd_write
        ;; right (1 << 6) must fail with EPERM (63); the exit code is the errno.
        (call $exit (call $path_open (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 10)
                      (i32.const 0) (i64.const 64) (i64.const 64) (i32.const 0) (i32.const 200)))))"#;
    let prepared = sandbox().prepare("wat-runtime-dir", wat.as_bytes()).unwrap();
    let result = sandbox().run(&prepared, &spec).unwrap();
    assert_eq!(result.outcome, Outcome::Exited(63), "EPERM writing into a runtime dir");
    assert_eq!(std::fs::read(lib.path().join("stdlib.zip")).unwrap(), b"zip");
}
