//! The compiled-module cache: disk hits across sandboxes, corruption detected, engines with
//! different settings kept apart.

use vouch_sandbox::{CacheStats, Outcome, PrepareSource, Sandbox, SandboxConfig};

use crate::{Dirs, guest};

fn sandbox_with_cache(dir: &std::path::Path) -> Sandbox {
    Sandbox::new(SandboxConfig { cache_dir: Some(dir.to_path_buf()), ..SandboxConfig::default() }).unwrap()
}

fn runs(sandbox: &Sandbox, prepared: &vouch_sandbox::Prepared) {
    let dirs = Dirs::fresh();
    let result = sandbox.run(prepared, &dirs.spec(&["cached"])).unwrap();
    assert_eq!(result.outcome, Outcome::Exited(0));
}

/// The cached artifacts under `dir` (`*.cwasm`).
fn artifacts(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for fp in std::fs::read_dir(dir).unwrap() {
        for f in std::fs::read_dir(fp.unwrap().path()).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "cwasm") {
                found.push(path);
            }
        }
    }
    found
}

#[test]
fn second_sandbox_deserializes_instead_of_compiling() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = guest("echo_args");

    let first = sandbox_with_cache(cache.path());
    let p = first.prepare("bafy-echo", wasm).unwrap();
    assert_eq!(p.source(), PrepareSource::Compiled);
    assert_eq!(first.prepare("bafy-echo", wasm).unwrap().source(), PrepareSource::MemoryCache);
    runs(&first, &p);
    assert_eq!(first.cache_stats(), CacheStats { compiled: 1, memory_hits: 1, ..CacheStats::default() });
    drop(first);

    let second = sandbox_with_cache(cache.path());
    let p = second.prepare("bafy-echo", wasm).unwrap();
    assert_eq!(p.source(), PrepareSource::DiskCache);
    runs(&second, &p);
    assert_eq!(second.cache_stats(), CacheStats { disk_hits: 1, ..CacheStats::default() });
}

#[test]
fn corrupted_artifact_is_detected_and_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = guest("echo_args");
    sandbox_with_cache(cache.path()).prepare("bafy-echo", wasm).unwrap();
    let [artifact]: [std::path::PathBuf; 1] = artifacts(cache.path()).try_into().expect("one artifact");

    // Flip one byte in the middle of the compiled code.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&artifact, &bytes).unwrap();

    let sandbox = sandbox_with_cache(cache.path());
    let p = sandbox.prepare("bafy-echo", wasm).unwrap();
    assert_eq!(p.source(), PrepareSource::Compiled);
    assert_eq!(sandbox.cache_stats().disk_rejected, 1);
    runs(&sandbox, &p);
    // The artifact was rewritten and is trusted again by the next sandbox.
    assert_eq!(sandbox_with_cache(cache.path()).prepare("bafy-echo", wasm).unwrap().source(), PrepareSource::DiskCache);

    // A truncated artifact, and one whose checksum file is missing, are rejected the same way.
    let [artifact]: [std::path::PathBuf; 1] = artifacts(cache.path()).try_into().expect("one artifact");
    let len = std::fs::metadata(&artifact).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&artifact).unwrap().set_len(len / 3).unwrap();
    assert_eq!(sandbox_with_cache(cache.path()).prepare("bafy-echo", wasm).unwrap().source(), PrepareSource::Compiled);
    std::fs::remove_file(artifact.with_extension("cwasm.sha256")).unwrap();
    assert_eq!(sandbox_with_cache(cache.path()).prepare("bafy-echo", wasm).unwrap().source(), PrepareSource::Compiled);
}

#[test]
fn engines_with_other_settings_do_not_share_artifacts() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = guest("echo_args");
    let fuel = sandbox_with_cache(cache.path());
    let no_fuel = Sandbox::new(SandboxConfig {
        cache_dir: Some(cache.path().into()),
        fuel_metering: false,
        ..SandboxConfig::default()
    })
    .unwrap();
    assert_ne!(fuel.engine_fingerprint(), no_fuel.engine_fingerprint());
    assert_eq!(fuel.engine_fingerprint(), sandbox_with_cache(cache.path()).engine_fingerprint(), "stable");
    assert_eq!(fuel.prepare("m", wasm).unwrap().source(), PrepareSource::Compiled);
    let p = no_fuel.prepare("m", wasm).unwrap();
    assert_eq!(p.source(), PrepareSource::Compiled);
    runs(&no_fuel, &p);
    assert_eq!(artifacts(cache.path()).len(), 2);
}

#[test]
fn a_prepared_module_only_runs_in_its_own_sandbox() {
    let a = Sandbox::new(SandboxConfig::default()).unwrap();
    let b = Sandbox::new(SandboxConfig::default()).unwrap();
    let p = a.prepare("m", guest("echo_args")).unwrap();
    let dirs = Dirs::fresh();
    assert!(b.run(&p, &dirs.spec(&[])).is_err());
}

/// `cached` finds a module by id alone, so a caller need not fetch big module bytes on a warm
/// start; it never compiles, and a corrupt artifact is a miss, not a module.
#[test]
fn cached_finds_a_module_without_its_bytes() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = guest("echo_args");
    let first = sandbox_with_cache(cache.path());
    assert!(first.cached("bafy-echo").is_none(), "nothing compiled yet");
    first.prepare("bafy-echo", wasm).unwrap();
    assert_eq!(first.cached("bafy-echo").unwrap().source(), PrepareSource::MemoryCache);

    let second = sandbox_with_cache(cache.path());
    let p = second.cached("bafy-echo").expect("a disk hit");
    assert_eq!(p.source(), PrepareSource::DiskCache);
    runs(&second, &p);
    assert_eq!(second.cache_stats().compiled, 0, "cached() never compiles");
    assert!(second.cached("bafy-other").is_none());

    let third = sandbox_with_cache(cache.path());
    for a in artifacts(cache.path()) {
        let mut bytes = std::fs::read(&a).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&a, bytes).unwrap();
    }
    assert!(third.cached("bafy-echo").is_none(), "a corrupt artifact is a miss");
    assert_eq!(third.cache_stats().disk_rejected, 1);
}
