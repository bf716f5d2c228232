//! The reactor entry style (python-snapshot.wasm): `_initialize`, then `run() -> exit code`,
//! with `host::call` answered by -1.

use vouch_sandbox::{ModuleKind, Outcome, RunSpec};

use crate::{Dirs, sandbox};

const REACTOR: &str = r#"(module
  (import "host" "call" (func $host_call (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (global $initialized (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $initialized (i32.const 1)))
  (func (export "run") (result i32)
    ;; exit code: 10 * initialized + (host::call(...) == -1 ? 7 : 0), or proc_exit(3) when the
    ;; host answers anything else
    (if (i32.ne (call $host_call (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4)) (i32.const -1))
      (then (call $exit (i32.const 3))))
    (i32.add (i32.mul (global.get $initialized) (i32.const 10)) (i32.const 7))))"#;

#[test]
fn reactor_runs_initialize_then_run() {
    let prepared = sandbox().prepare("wat-reactor", REACTOR.as_bytes()).unwrap();
    assert_eq!(prepared.kind(), ModuleKind::Reactor);
    let dirs = Dirs::fresh();
    let result = sandbox().run(&prepared, &RunSpec::new(dirs.outputs())).unwrap();
    assert_eq!(result.outcome, Outcome::Exited(17));
}

#[test]
fn reactor_without_initialize_and_with_proc_exit() {
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
      (memory (export "memory") 1)
      (func (export "run") (result i32) (call $exit (i32.const 5)) (i32.const 0)))"#;
    let prepared = sandbox().prepare("wat-reactor-exit", wat.as_bytes()).unwrap();
    let dirs = Dirs::fresh();
    let result = sandbox().run(&prepared, &RunSpec::new(dirs.outputs())).unwrap();
    assert_eq!(result.outcome, Outcome::Exited(5));
}
