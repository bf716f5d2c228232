//! Defaults and small API promises.

use std::time::Duration;

use vouch_sandbox::{Limits, Outcome, RunSpec, SandboxError};

use crate::{Dirs, prepare, sandbox};

#[test]
fn documented_defaults() {
    let l = Limits::default();
    assert_eq!(l.fuel, None);
    assert_eq!(l.memory_bytes, 512 << 20);
    assert_eq!(l.wall_time, Duration::from_secs(60));
    assert_eq!((l.max_output_bytes, l.max_output_entries), (1 << 30, 100_000));
    assert_eq!((l.max_stdout, l.max_stderr), (1 << 20, 1 << 20));
    let s = RunSpec::new("/tmp/out");
    assert_eq!(s.program_name, "main.wasm");
    assert!(s.args.is_empty() && s.env.is_empty() && s.inputs.is_none() && s.runtime_dirs.is_empty());
    assert_eq!(s.determinism, vouch_sandbox::Determinism::Deterministic { seed: [0; 32] });
}

#[test]
fn fuel_is_counted_without_a_limit_and_usage_is_filled() {
    let dirs = Dirs::fresh();
    let result = sandbox().run(&prepare(sandbox(), "sha256"), &dirs.spec(&["1"])).unwrap();
    assert_eq!(result.outcome, Outcome::Exited(0));
    assert_eq!(
        String::from_utf8_lossy(&result.stdout),
        "d72ae30991d7bb655757956fe9546e79c7d73a8ac44aedc99762e02161aed172\n"
    );
    assert!(result.usage.fuel_consumed > 1_000_000);
    assert!(result.usage.peak_memory_bytes >= 1 << 20);
    assert_eq!(result.usage.growth_denied, None);
    assert_eq!(vouch_sandbox::WASMTIME_VERSION, "48.0.8");
}

#[test]
fn runs_in_parallel_share_the_sandbox() {
    let prepared = prepare(sandbox(), "matmul");
    let outputs: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let prepared = prepared.clone();
                s.spawn(move || {
                    let dirs = Dirs::fresh();
                    let r = sandbox().run(&prepared, &dirs.spec(&["64"])).unwrap();
                    assert_eq!(r.outcome, Outcome::Exited(0));
                    String::from_utf8(r.stdout).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(outputs.windows(2).all(|w| w[0] == w[1]), "{outputs:?}");
}

#[test]
fn a_full_instance_pool_is_busy_not_a_guest_outcome() {
    let sandbox = vouch_sandbox::Sandbox::new(vouch_sandbox::SandboxConfig {
        max_concurrent_runs: 1,
        ..vouch_sandbox::SandboxConfig::default()
    })
    .unwrap();
    let spin = sandbox.prepare("loop", crate::guest("hostile_loop")).unwrap();
    let echo = sandbox.prepare("echo", crate::guest("echo_args")).unwrap();
    let (started, wait) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let dirs = Dirs::fresh();
            let mut spec = dirs.spec(&[]);
            spec.limits.wall_time = Duration::from_millis(1500);
            started.send(()).unwrap();
            assert_eq!(sandbox.run(&spin, &spec).unwrap().outcome, Outcome::Timeout);
        });
        wait.recv().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let dirs = Dirs::fresh();
        let err = sandbox.run(&echo, &dirs.spec(&[])).unwrap_err();
        assert!(matches!(err, vouch_sandbox::SandboxError::Busy { slots: 1 }), "{err:?}");
    });
    // The slot is free again once the first run ends.
    let dirs = Dirs::fresh();
    assert_eq!(sandbox.run(&echo, &dirs.spec(&[])).unwrap().outcome, Outcome::Exited(0));
}

/// A directory the host must open for the guest that is missing, or is a file, is an error
/// that names the directory and the reason; the guest never starts.
#[test]
fn a_bad_host_directory_is_named() {
    let dirs = Dirs::fresh();
    let echo = prepare(sandbox(), "echo_args");
    let file = dirs.root.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let missing = dirs.root.path().join("missing");
    for (outputs, inputs, what, reason) in [
        (&file, dirs.inputs(), "outputs directory", std::io::ErrorKind::NotADirectory),
        (&missing, dirs.inputs(), "outputs directory", std::io::ErrorKind::NotFound),
        (&dirs.outputs(), file.clone(), "inputs directory", std::io::ErrorKind::NotADirectory),
    ] {
        let mut spec = dirs.spec(&[]);
        spec.outputs = outputs.clone();
        spec.inputs = Some(inputs.clone());
        match sandbox().run(&echo, &spec) {
            Err(SandboxError::HostDir { what: w, path, source }) => {
                assert_eq!((w, source.kind()), (what, reason), "{}", path.display());
                assert!(path == *outputs || path == inputs);
            }
            other => panic!("{what} {reason:?}: expected HostDir, got {:?}", other.map(|r| r.outcome)),
        }
    }
}
