//! Deterministic mode: same seed, same bytes; different seed, different randomness; the
//! non-deterministic mode really sees the host.

use vouch_sandbox::{DETERMINISTIC_EPOCH_SECS, Determinism, Outcome, RunResult};

use crate::{run_guest, stdout};

fn clock_run(determinism: Determinism) -> RunResult {
    let (result, _dirs) = run_guest("hostile_clock", &[], |s| s.determinism = determinism);
    assert_eq!(result.outcome, Outcome::Exited(0), "{}", String::from_utf8_lossy(&result.stderr));
    result
}

fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("{name} in {out}"))
}

#[test]
fn same_seed_same_bytes() {
    let seed = Determinism::Deterministic { seed: [7; 32] };
    let a = clock_run(seed);
    let b = clock_run(seed);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.usage.fuel_consumed, b.usage.fuel_consumed);
    let out = stdout(&a);
    assert!(field(&out, "realtime").starts_with(&format!("{DETERMINISTIC_EPOCH_SECS}.")), "{out}");
    assert_eq!(field(&out, "time"), DETERMINISTIC_EPOCH_SECS.to_string());
    assert_eq!(field(&out, "monotonic_res_ns"), "1000");
    assert_ne!(field(&out, "random"), field(&out, "random2"), "two reads give different bytes");
    // The 10 ms sleep took exactly 10 ms of virtual time plus the clock readings around it.
    assert!(field(&out, "slept_ns").starts_with("1000"), "{out}");
}

#[test]
fn different_seed_different_randomness_same_clocks() {
    let a = stdout(&clock_run(Determinism::Deterministic { seed: [1; 32] }));
    let b = stdout(&clock_run(Determinism::Deterministic { seed: [2; 32] }));
    assert_ne!(field(&a, "random"), field(&b, "random"));
    assert_ne!(field(&a, "random2"), field(&b, "random2"));
    assert_eq!(field(&a, "realtime"), field(&b, "realtime"));
    assert_eq!(field(&a, "monotonic"), field(&b, "monotonic"));
}

#[test]
fn nondeterministic_mode_sees_the_host() {
    let a = stdout(&clock_run(Determinism::NonDeterministic));
    let b = stdout(&clock_run(Determinism::NonDeterministic));
    assert_ne!(field(&a, "realtime"), field(&b, "realtime"));
    assert_ne!(field(&a, "random"), field(&b, "random"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let guest_now: u64 = field(&a, "time").parse().unwrap();
    assert!(guest_now.abs_diff(now) < 600, "guest {guest_now}, host {now}");
    // The sleep really waited (at least 10 ms of host time).
    let slept: u64 = field(&a, "slept_ns").split(' ').next().unwrap().parse().unwrap();
    assert!(slept >= 10_000_000, "{a}");
}

/// Lines "entry NAME mtime=S" in the order the guest's readdir returned them.
fn entries(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("entry ")).collect()
}

#[test]
fn directory_order_and_timestamps_do_not_leak_from_the_host() {
    let dirs = crate::Dirs::fresh();
    // Created in an order that is not the sorted one, with distinct modification times, and
    // enough entries that wasi-libc's 4 KiB readdir buffer needs several calls.
    let mut names: Vec<String> = (0..300).map(|i| format!("f{:03}-{}", (i * 7919) % 300, "x".repeat(i % 40))).collect();
    for (i, name) in names.iter().enumerate() {
        let path = dirs.inputs().join(name);
        std::fs::write(&path, b"x").unwrap();
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + i as u64);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
    }
    let spec = |determinism| {
        let mut spec = dirs.spec(&[]);
        spec.determinism = determinism;
        spec
    };
    let sandbox = crate::sandbox();
    let clock = crate::prepare(sandbox, "hostile_clock");

    let det = stdout(&sandbox.run(&clock, &spec(Determinism::Deterministic { seed: [0; 32] })).unwrap());
    names.sort();
    // ("..", listed second, cannot be stat'ed: it is outside the preopen.)
    let mut expected = vec![format!("entry . mtime={DETERMINISTIC_EPOCH_SECS}")];
    expected.extend(names.iter().map(|n| format!("entry {n} mtime={DETERMINISTIC_EPOCH_SECS}")));
    assert_eq!(entries(&det), expected);
    assert_eq!(field(&det, "created mtime"), DETERMINISTIC_EPOCH_SECS.to_string());

    // The host's view, for contrast: real modification times.
    let host = stdout(&sandbox.run(&clock, &spec(Determinism::NonDeterministic)).unwrap());
    let host_entries = entries(&host);
    assert_eq!(host_entries.len(), 301);
    let host_names: Vec<&str> = host_entries.iter().skip(1).map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_ne!(host_names, names, "precondition: this filesystem does not list names sorted");
    assert!(host_entries.iter().any(|l| l.ends_with("mtime=1000000")), "{host}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let created: u64 = field(&host, "created mtime").parse().unwrap();
    assert!(created.abs_diff(now) < 600);
}

/// Runs WAT text as a module in the shared sandbox; its outcome and stdout.
fn run_wat(name: &str, wat: &str, determinism: Determinism) -> (Outcome, Vec<u8>) {
    let sandbox = crate::sandbox();
    let prepared = sandbox.prepare(name, wat.as_bytes()).unwrap_or_else(|e| panic!("prepare {name}: {e}"));
    let dirs = crate::Dirs::fresh();
    let mut spec = dirs.spec(&[]);
    spec.determinism = determinism;
    let result = sandbox.run(&prepared, &spec).unwrap();
    (result.outcome, result.stdout)
}

/// Floating-point operations on NaNs with non-canonical payloads (a signalling NaN with payload
/// 1, a negative quiet NaN with payload 1), loaded from memory so nothing is constant-folded;
/// the results' bits are written to stdout (80 bytes from offset 64, little-endian).
/// Without canonicalisation x86-64 and AArch64 propagate (and quieten) the input payload and
/// sign, e.g. `0x7fe00001` instead of `0x7fc00000`.
const NAN_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\01\00\a0\7f" "\01\00\c0\ff")                            ;; f32 sNaN:1, -qNaN:1
  (data (i32.const 8) "\01\00\00\00\00\00\f4\7f" "\01\00\00\00\00\00\f8\ff")    ;; f64 sNaN:1, -qNaN:1
  (func (export "_start")
    (f32.store (i32.const 64) (f32.add (f32.load (i32.const 0)) (f32.const 1)))
    (f32.store (i32.const 68) (f32.div (f32.load (i32.const 4)) (f32.const 3)))
    (f32.store (i32.const 72) (f32.sqrt (f32.load (i32.const 0))))
    (f32.store (i32.const 76) (f32.demote_f64 (f64.load (i32.const 8))))
    (f64.store (i32.const 80) (f64.add (f64.load (i32.const 8)) (f64.const 1)))
    (f64.store (i32.const 88) (f64.mul (f64.load (i32.const 16)) (f64.const 2)))
    (f64.store (i32.const 96) (f64.promote_f32 (f32.load (i32.const 0))))
    (v128.store (i32.const 112) (f32x4.add (f32x4.splat (f32.load (i32.const 0))) (f32x4.splat (f32.const 1))))
    (v128.store (i32.const 128) (f64x2.mul (f64x2.splat (f64.load (i32.const 16))) (f64x2.splat (f64.const 2))))
    (i32.store (i32.const 32) (i32.const 64))    ;; iovec: 80 bytes at 64
    (i32.store (i32.const 36) (i32.const 80))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 48)))))"#;

#[test]
fn nans_are_canonical_in_both_modes() {
    const F32: u32 = 0x7fc0_0000;
    const F64: u64 = 0x7ff8_0000_0000_0000;
    let mut want = Vec::new();
    for _ in 0..4 {
        want.extend_from_slice(&F32.to_le_bytes()); // add, div, sqrt, demote
    }
    for _ in 0..3 {
        want.extend_from_slice(&F64.to_le_bytes()); // add, mul, promote
    }
    want.extend_from_slice(&[0; 8]); // 104..112: not written
    for _ in 0..4 {
        want.extend_from_slice(&F32.to_le_bytes()); // f32x4.add
    }
    for _ in 0..2 {
        want.extend_from_slice(&F64.to_le_bytes()); // f64x2.mul
    }
    let hex32 = |b: &[u8]| -> Vec<String> {
        b.chunks(4).map(|c| format!("{:08x}", u32::from_le_bytes(c.try_into().unwrap()))).collect()
    };
    // An engine setting: non-deterministic runs get it too.
    for determinism in [Determinism::Deterministic { seed: [0; 32] }, Determinism::NonDeterministic] {
        let (outcome, stdout) = run_wat("wat-nans", NAN_WAT, determinism);
        assert_eq!(outcome, Outcome::Exited(0));
        assert_eq!(hex32(&stdout), hex32(&want), "{determinism:?}");
    }
}

#[test]
fn threads_do_not_exist() {
    // The threads proposal is off: shared memories and atomics do not validate.
    for (name, wat) in [
        ("wat-shared-memory", r#"(module (memory 1 1 shared) (func (export "_start")))"#),
        (
            "wat-atomics",
            r#"(module (memory 1) (func (export "_start") (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))))"#,
        ),
        ("wat-fence", r#"(module (func (export "_start") (atomic.fence)))"#),
        (
            "wat-wait",
            r#"(module (memory 1) (func (export "_start")
                 (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))))"#,
        ),
    ] {
        let err = crate::sandbox().prepare(name, wat.as_bytes()).unwrap_err();
        assert!(matches!(err, vouch_sandbox::SandboxError::InvalidModule { .. }), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("module {name}: ")) && msg.contains("threads"), "{name}: {msg}");
    }
    // Nor can a guest ask the host for one (wasi-threads is not provided).
    let spawn = r#"(module (import "wasi" "thread-spawn" (func (param i32) (result i32)))
        (memory 1) (func (export "_start")))"#;
    let err = crate::sandbox().prepare("wat-thread-spawn", spawn.as_bytes()).unwrap_err();
    assert!(matches!(err, vouch_sandbox::SandboxError::Link { .. }), "{err:?}");
    assert!(err.to_string().contains("wasi::thread-spawn"), "{err}");
    crate::assert_healthy(crate::sandbox());
}
