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
