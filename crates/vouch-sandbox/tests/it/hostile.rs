//! The hostile corpus: each guest gets its documented outcome, and the sandbox stays healthy.

use std::time::Duration;

use vouch_sandbox::{Outcome, Resource, RunSpec, Sandbox, SandboxConfig, SandboxError};

use crate::{Dirs, assert_healthy, run_guest, sandbox, stdout};

#[test]
fn infinite_loop_times_out() {
    let (result, _dirs) = run_guest("hostile_loop", &[], |s| s.limits.wall_time = Duration::from_millis(300));
    assert_eq!(result.outcome, Outcome::Timeout);
    assert!(result.usage.wall_time >= Duration::from_millis(300));
    assert_healthy(sandbox());
}

#[test]
fn a_timed_out_metered_run_reports_the_fuel_it_used() {
    // Metered runs are stopped at a fuel yield, where the fuel counter is up to date.
    let (result, _dirs) = run_guest("hostile_loop", &[], |s| s.limits.wall_time = Duration::from_millis(200));
    assert_eq!(result.outcome, Outcome::Timeout);
    assert!(result.usage.fuel_consumed >= 1 << 20, "{}", result.usage.fuel_consumed);
}

#[test]
fn without_fuel_metering_epoch_interruption_enforces_time_and_outputs() {
    let sandbox = Sandbox::new(SandboxConfig { fuel_metering: false, ..SandboxConfig::default() }).unwrap();
    let run = |name: &str, args: &[&str], tweak: &dyn Fn(&mut RunSpec)| {
        let dirs = Dirs::fresh();
        let mut spec = dirs.spec(args);
        tweak(&mut spec);
        sandbox.run(&sandbox.prepare(name, crate::guest(name)).unwrap(), &spec).unwrap()
    };
    let result = run("hostile_loop", &[], &|s| s.limits.wall_time = Duration::from_millis(300));
    assert_eq!(result.outcome, Outcome::Timeout);
    assert!(result.usage.wall_time >= Duration::from_millis(300));
    assert_eq!(result.usage.fuel_consumed, 0);
    let result = run("hostile_outputs", &[], &|s| s.limits.max_output_bytes = 8 << 20);
    assert!(matches!(result.outcome, Outcome::OutputLimit { .. }), "{:?}", result.outcome);
    let result = run("hostile_clock", &["3600000"], &|s| {
        s.determinism = vouch_sandbox::Determinism::NonDeterministic;
        s.limits.wall_time = Duration::from_millis(300);
    });
    assert_eq!(result.outcome, Outcome::Timeout);
    assert_healthy(&sandbox);
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let (result, _dirs) = run_guest("hostile_loop", &[], |s| s.limits.fuel = Some(5_000_000));
    assert_eq!(result.outcome, Outcome::OutOfFuel);
    assert_eq!(result.usage.fuel_consumed, 5_000_000);
    assert_healthy(sandbox());
}

#[test]
fn memory_bomb_that_aborts_hits_the_memory_limit() {
    let (result, _dirs) = run_guest("hostile_memory", &[], |s| s.limits.memory_bytes = 32 << 20);
    let Outcome::ResourceLimit { resource: Resource::Memory, message } = &result.outcome else {
        panic!("{:?}", result.outcome);
    };
    assert!(message.contains("refused (limit 33554432)"), "{message}");
    assert!(stdout(&result).starts_with("malloc failed after "), "{}", stdout(&result));
    assert!(result.usage.peak_memory_bytes <= 32 << 20 && result.usage.peak_memory_bytes > 16 << 20);
    assert_eq!(result.usage.growth_denied, Some(Resource::Memory));
    assert_healthy(sandbox());
}

#[test]
fn memory_bomb_that_copes_exits_normally() {
    let (result, _dirs) = run_guest("hostile_memory", &["graceful"], |s| s.limits.memory_bytes = 32 << 20);
    assert_eq!(result.outcome, Outcome::Exited(0));
    assert_eq!(result.usage.growth_denied, Some(Resource::Memory));
    assert_healthy(sandbox());
}

#[test]
fn deep_recursion_overflows_the_stack() {
    let (result, _dirs) = run_guest("hostile_recursion", &[], |_| {});
    assert_eq!(result.outcome, Outcome::StackOverflow);
    // A bounded recursion in the same module works.
    let (result, _dirs) = run_guest("hostile_recursion", &["1000"], |_| {});
    assert_eq!(result.outcome, Outcome::Exited(0));
    assert_healthy(sandbox());
}

#[test]
fn stdout_and_stderr_bombs_are_truncated() {
    let (result, _dirs) = run_guest("hostile_stdout", &["64"], |s| s.limits.max_stdout = 100_000);
    assert_eq!(result.outcome, Outcome::Exited(0));
    assert_eq!(result.stdout.len(), 100_000);
    assert!(result.stdout_truncated && !result.stderr_truncated);

    let (result, _dirs) = run_guest("hostile_stdout", &["64", "stderr"], |s| s.limits.max_stderr = 4096);
    assert_eq!(result.outcome, Outcome::Exited(0));
    assert_eq!((result.stderr.len(), result.stdout.len()), (4096, 0));
    assert!(result.stderr_truncated && !result.stdout_truncated);

    // Exactly at the cap is not truncation.
    let (result, _dirs) = run_guest("hostile_stdout", &["1"], |s| s.limits.max_stdout = 1 << 20);
    assert_eq!((result.stdout.len(), result.stdout_truncated), (1 << 20, false));
    assert_healthy(sandbox());
}

#[test]
fn output_file_bomb_is_stopped_within_a_tick() {
    const LIMIT: u64 = 8 << 20;
    let (result, dirs) = run_guest("hostile_outputs", &[], |s| s.limits.max_output_bytes = LIMIT);
    let Outcome::OutputLimit { size } = result.outcome else { panic!("{:?}", result.outcome) };
    assert!(size.bytes > LIMIT);
    // Stopped at the first tick after the limit: far from unbounded (generous for slow disks).
    let on_disk = std::fs::metadata(dirs.outputs().join("bomb.bin")).unwrap().len();
    assert!(on_disk < LIMIT + (512 << 20), "{on_disk}");
    assert_eq!(result.usage.outputs.bytes, on_disk);
    assert_healthy(sandbox());
}

#[test]
fn output_entry_bomb_is_stopped() {
    let (result, _dirs) = run_guest("hostile_outputs", &["many"], |s| s.limits.max_output_entries = 500);
    let Outcome::OutputLimit { size } = result.outcome else { panic!("{:?}", result.outcome) };
    assert!(size.entries > 500);
    assert_healthy(sandbox());
}

#[test]
fn traps_are_recorded_with_their_message() {
    for (how, needle) in [
        ("abort", "unreachable"),
        ("unreachable", "unreachable"),
        ("divzero", "integer divide by zero"),
        ("oob", "out of bounds memory access"),
    ] {
        let (result, _dirs) = run_guest("hostile_trap", &[how], |_| {});
        let Outcome::Trapped { message } = &result.outcome else { panic!("{how}: {:?}", result.outcome) };
        assert!(message.contains(needle), "{how}: {message}");
        assert_eq!(stdout(&result), format!("dying by {how}\n"), "output before the trap is kept");
    }
    let (result, _dirs) = run_guest("hostile_trap", &["exit42"], |_| {});
    assert_eq!(result.outcome, Outcome::Exited(42));
    assert_healthy(sandbox());
}

#[test]
fn sockets_do_not_exist() {
    let (result, _dirs) = run_guest("hostile_socket", &[], |_| {});
    assert_eq!(result.outcome, Outcome::Exited(0));
    let out = stdout(&result);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 11, "{out}");
    // fds 0-2 are stdio, 3 is /inputs, 4 is /outputs: they exist but are not sockets.
    for (fd, line) in lines.iter().enumerate() {
        let err = if fd <= 4 { "ENOTSOCK" } else { "EBADF" };
        assert_eq!(*line, format!("fd={fd} accept={err} recv={err} send={err} shutdown={err}"));
    }
    assert_healthy(sandbox());
}

#[test]
fn sleeping_cannot_outlast_the_wall_clock_limit() {
    // Real clocks: an hour-long sleep is cut at the deadline.
    let (result, _dirs) = run_guest("hostile_clock", &["3600000"], |s| {
        s.determinism = vouch_sandbox::Determinism::NonDeterministic;
        s.limits.wall_time = Duration::from_millis(300);
    });
    assert_eq!(result.outcome, Outcome::Timeout);
    assert!(result.usage.wall_time < Duration::from_secs(30));
    // Virtual clocks: the hour passes at once.
    let (result, _dirs) = run_guest("hostile_clock", &["3600000"], |_| {});
    assert_eq!(result.outcome, Outcome::Exited(0));
    let out = stdout(&result);
    let slept: u64 =
        out.lines().find_map(|l| l.strip_prefix("slept_ns=")).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!((3_600_000_000_000..3_600_001_000_000).contains(&slept), "{out}");
    assert_healthy(sandbox());
}

#[test]
fn polling_a_descriptor_with_a_long_timeout_returns_at_once() {
    // poll_oneoff([fd_read on stdin, 1 h monotonic timeout]): the closed stdin is ready, so the
    // call returns its event at once. Exit code: errno * 100 + nevents * 10 + first userdata.
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "_start") (local $err i32)
        (i64.store (i32.const 0) (i64.const 1))
        (i32.store8 (i32.const 8) (i32.const 1))
        (i32.store (i32.const 16) (i32.const 0))
        (i64.store (i32.const 48) (i64.const 2))
        (i32.store8 (i32.const 56) (i32.const 0))
        (i32.store (i32.const 64) (i32.const 1))
        (i64.store (i32.const 72) (i64.const 3600000000000))
        (local.set $err (call $poll (i32.const 0) (i32.const 200) (i32.const 2) (i32.const 400)))
        (call $exit (i32.add (i32.mul (local.get $err) (i32.const 100))
          (i32.add (i32.mul (i32.load (i32.const 400)) (i32.const 10)) (i32.wrap_i64 (i64.load (i32.const 200))))))))"#;
    for determinism in
        [vouch_sandbox::Determinism::NonDeterministic, vouch_sandbox::Determinism::Deterministic { seed: [0; 32] }]
    {
        let outcome = run_wat(wat, |s| {
            s.determinism = determinism;
            s.limits.wall_time = Duration::from_secs(30);
        })
        .unwrap();
        assert_eq!(outcome, Outcome::Exited(11), "{determinism:?}");
    }
}

fn run_wat(wat: &str, tweak: impl FnOnce(&mut RunSpec)) -> Result<Outcome, SandboxError> {
    let id = format!("wat-{:x}", fnv(wat.as_bytes()));
    let prepared = sandbox().prepare(&id, wat.as_bytes())?;
    let dirs = Dirs::fresh();
    let mut spec = dirs.spec(&[]);
    tweak(&mut spec);
    Ok(sandbox().run(&prepared, &spec)?.outcome)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

#[test]
fn invalid_modules_are_refused_at_prepare() {
    for (bytes, needle) in [
        (&b"\0asm\x01\0\0\0\xff\xff"[..], "module wat-bad"),
        (b"this is not wasm", "is neither a Wasm binary nor valid WAT text: expected `(`"),
        (b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\xff", "not WebAssembly"),
        (b"\0asm\x0d\0\x01\0", "component"),
        (b"(module (func (export \"_start\") (i32.add)))", "type mismatch"),
        (b"(module (func (export \"main\")))", "no entry point"),
        (b"(module (func (export \"_start\") (param i32)))", "_start with a type"),
        (b"(module (func (export \"run\")))", "run with a type"),
    ] {
        let err = sandbox().prepare("wat-bad", bytes).unwrap_err();
        assert!(matches!(err, SandboxError::InvalidModule { .. }), "{err:?}");
        assert!(err.to_string().contains(needle), "{err}");
    }
    assert_healthy(sandbox());
}

#[test]
fn unknown_imports_are_refused_at_prepare() {
    let wat = r#"(module (import "env" "open_socket" (func (param i32) (result i32))) (func (export "_start")))"#;
    let err = run_wat(wat, |_| {}).unwrap_err();
    assert!(matches!(err, SandboxError::Link { .. }), "{err:?}");
    assert!(err.to_string().contains("env::open_socket"), "{err}");
    // A WASI import with the wrong type is refused too.
    let wat = r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32))) (func (export "_start")))"#;
    assert!(matches!(run_wat(wat, |_| {}), Err(SandboxError::Link { .. })));
    assert_healthy(sandbox());
}

#[test]
fn a_trapping_start_function_is_a_trap() {
    let wat = r#"(module (func $boom unreachable) (start $boom) (func (export "_start")))"#;
    let outcome = run_wat(wat, |_| {}).unwrap();
    assert!(matches!(&outcome, Outcome::Trapped { message } if message.contains("unreachable")), "{outcome:?}");
    assert_healthy(sandbox());
}

#[test]
fn table_and_memory_bombs_hit_resource_limits() {
    // Beyond the sandbox's ceilings (SandboxConfig): refused at prepare, naming the ceiling.
    let tables = format!("(module {} (func (export \"_start\")))", "(table 1 funcref) ".repeat(100));
    let err = sandbox().prepare("wat-100-tables", tables.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("defined tables count of 100 exceeds the per-instance limit of 4"), "{err}");
    let err =
        sandbox().prepare("wat-2-memories", br#"(module (memory 1) (memory 1) (func (export "_start")))"#).unwrap_err();
    assert!(matches!(err, SandboxError::InvalidModule { .. }), "{err}");
    let err = sandbox()
        .prepare("wat-huge-table", br#"(module (table 10000000 funcref) (func (export "_start")))"#)
        .unwrap_err();
    assert!(matches!(err, SandboxError::InvalidModule { .. }), "{err}");

    // Within the ceilings but beyond the run's limits: refused before the guest starts.
    let three = r#"(module (table 1 funcref) (table 1 funcref) (table 1 funcref) (func (export "_start")))"#;
    let outcome = run_wat(three, |s| s.limits.max_tables = 2).unwrap();
    assert!(matches!(outcome, Outcome::ResourceLimit { resource: Resource::Tables, .. }), "{outcome:?}");
    assert_eq!(run_wat(three, |_| {}).unwrap(), Outcome::Exited(0));
    let outcome = run_wat(r#"(module (table 200000 funcref) (func (export "_start")))"#, |_| {}).unwrap();
    assert!(matches!(outcome, Outcome::ResourceLimit { resource: Resource::TableElements, .. }), "{outcome:?}");
    let outcome = run_wat(r#"(module (memory 20000) (func (export "_start")))"#, |_| {}).unwrap();
    assert!(matches!(outcome, Outcome::ResourceLimit { resource: Resource::Memory, .. }), "{outcome:?}");
    let outcome = run_wat(r#"(module (func (export "_start")))"#, |s| s.limits.max_instances = 0).unwrap();
    assert!(matches!(outcome, Outcome::ResourceLimit { resource: Resource::Instances, .. }), "{outcome:?}");

    // Growing a table in a loop until refused, then trapping: a table-elements limit.
    let grow = r#"(module (table 1 funcref)
        (func (export "_start")
          (loop $again
            (if (i32.eq (table.grow (ref.null func) (i32.const 1000)) (i32.const -1)) (then unreachable))
            (br $again))))"#;
    let outcome = run_wat(grow, |_| {}).unwrap();
    assert!(matches!(outcome, Outcome::ResourceLimit { resource: Resource::TableElements, .. }), "{outcome:?}");
    assert_healthy(sandbox());
}

#[test]
fn host_side_problems_are_errors() {
    let prepared = crate::prepare(sandbox(), "echo_args");
    let dirs = Dirs::fresh();
    let mut spec = dirs.spec(&[]);
    spec.limits.memory_bytes = 8 << 30;
    assert!(matches!(
        sandbox().run(&prepared, &spec),
        Err(SandboxError::LimitAboveCeiling { limit: "memory_bytes", .. })
    ));
    let mut spec = dirs.spec(&[]);
    spec.outputs = dirs.root.path().join("missing");
    let err = sandbox().run(&prepared, &spec).unwrap_err();
    assert!(err.to_string().contains("outputs directory") && err.to_string().contains("missing"), "{err}");
    let mut spec = dirs.spec(&[]);
    spec.runtime_dirs.push(vouch_sandbox::Mount { host: dirs.inputs(), guest: "/outputs/lib".into() });
    assert!(matches!(sandbox().run(&prepared, &spec), Err(SandboxError::BadMount { .. })));
    assert_healthy(sandbox());
}

/// A wasmtime precompiled artifact is native code that `Module::deserialize` would map as
/// executable: offered as a module it is refused before compilation, never deserialized. Both
/// kinds: one from another engine (`Engine::precompile_module`), and the sandbox's own disk
/// cache artifact, which an engine with this fingerprint *would* load.
#[test]
fn precompiled_artifacts_are_refused_as_modules() {
    let wat = br#"(module (func (export "_start")))"#;
    let foreign = wasmtime::Engine::default().precompile_module(wat).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let cached =
        Sandbox::new(SandboxConfig { cache_dir: Some(cache.path().into()), ..SandboxConfig::default() }).unwrap();
    cached.prepare("wat-to-cache", wat).unwrap();
    let artifact = std::fs::read_dir(cache.path())
        .unwrap()
        .flat_map(|fp| std::fs::read_dir(fp.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("the disk cache holds the compiled module");
    let own = std::fs::read(artifact).unwrap();
    for (what, bytes) in [("foreign", foreign), ("own cache", own)] {
        for sb in [sandbox(), &cached] {
            let err = sb.prepare("wat-cwasm", &bytes).unwrap_err();
            assert!(matches!(err, SandboxError::InvalidModule { .. }), "{what}: {err:?}");
            assert_eq!(
                err.to_string(),
                "module wat-cwasm: is a precompiled wasmtime artifact; only Wasm binaries or WAT text are accepted",
                "{what}"
            );
        }
    }
    assert_eq!(cached.cache_stats().compiled, 1, "the artifacts were never compiled as modules");
    assert_healthy(&cached);
}
