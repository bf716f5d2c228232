//! The golden receipt's fields (documented in `testdata/README.md`) and helpers.

use std::collections::BTreeMap;

use vouch_receipt::*;

/// The golden node key's seed: 32 bytes of 0x01.
pub const SEED: [u8; 32] = [0x01; 32];
/// The golden receipt's `issued_at`, also the verification time of most tests.
pub const AT: u64 = 1_750_000_000;

pub fn key() -> SigningKey {
    SigningKey::from_bytes(&SEED)
}

pub fn cid(s: &str) -> Cid {
    s.parse().unwrap()
}

pub fn golden_spec() -> JobSpec {
    JobSpec {
        version: SPEC_VERSION,
        // Raw block of the 8-byte empty Wasm module `\0asm\x01\0\0\0`.
        module: cid("bafkreieturf3xfwhkeqy4taa2r46jqkdlajcuoe2zsqwebnr4tinyx4uoy"),
        inputs: BTreeMap::from([
            ("data.csv".into(), cid("bafkreibozco6nkwn43qlsedg4dyil5o5c7jj6uar6ufscxod5zk756fhj4")),
            ("model".into(), cid("bafkreigpubadf7qpd5fqkwqkvdfkmdf2flci2xpknuu6ibymgpmsy7aftm")),
        ]),
        args: vec!["main.wasm".into(), "/inputs/data.csv".into()],
        env: BTreeMap::from([("LANG".into(), "C".into()), ("TZ".into(), "UTC".into())]),
        limits: Limits {
            fuel: Some(1_000_000_000),
            memory_bytes: 64 << 20,
            wall_time_ms: 10_000,
            output_bytes: 16 << 20,
            stdout_bytes: 1 << 20,
            stderr_bytes: 64 << 10,
        },
        deterministic: true,
        recipient: Some(vec![0x02; 32]),
        policy: Some(cid("bafkreicif4g4nfrrvcmgrglq52gjvjzcfgaophs4ltmg5zw7jsug2jorsa")),
        // Absent (empty): the golden encoding predates `mounts` and must not change.
        mounts: BTreeMap::new(),
    }
}

pub fn golden_body() -> ReceiptBody {
    let spec = golden_spec();
    let node_key = key().verifying_key().to_bytes();
    ReceiptBody {
        version: RECEIPT_VERSION,
        job: spec.cid(),
        spec,
        // The empty UnixFS directory (an empty /outputs), as `ipfs add` gives it.
        output: Some(cid("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")),
        // "hello\n" as `ipfs add` gives it.
        stdout: Some(cid("QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN")),
        // Nothing written to stderr.
        stderr: None,
        outcome: Outcome::Exited { code: 0 },
        usage: Usage { fuel_consumed: Some(123_456), wall_time_ns: 1_234_567, peak_memory_bytes: 131_072 },
        runtime: Runtime { vouch: "0.1.0".into(), wasmtime: "48.0.8".into(), engine_config_hash: [0x03; 32] },
        node_key,
        evidence: Evidence::none(&node_key, vec![0x04; 32]),
        issued_at: AT,
        releases: Vec::new(),
    }
}

pub fn golden() -> Receipt {
    Receipt::sign(golden_body(), &key()).unwrap()
}

/// Options under which the golden receipt verifies: `none` allowed, golden key pinned, time fixed.
pub fn insecure() -> VerifyOptions {
    VerifyOptions {
        allow_insecure: true,
        expected_node_key: Some(key().verifying_key().to_bytes()),
        at: Some(AT),
        ..VerifyOptions::default()
    }
}

/// `body` changed by `f`, signed by the golden key, encoded.
pub fn signed_with(f: impl FnOnce(&mut ReceiptBody)) -> Vec<u8> {
    let mut body = golden_body();
    f(&mut body);
    Receipt::sign(body, &key()).unwrap().encode()
}

/// The status of claim `name`.
pub fn status<'a>(report: &'a Report, name: &str) -> &'a Status {
    &report.claim(name).unwrap_or_else(|| panic!("no claim {name}")).status
}

/// Assert `report` failed, first at `name`, and return that claim's (expected, found).
pub fn first_failure(report: &Report, name: &str) -> (String, String) {
    let c = report.first_failure().unwrap_or_else(|| panic!("verified, expected {name} to fail:\n{report}"));
    assert_eq!(c.name, name, "\n{report}");
    match &c.status {
        Status::Failed { expected, found } => (expected.clone(), found.clone()),
        s => unreachable!("first_failure returned {s:?}"),
    }
}

/// The top-level DAG-CBOR map of encoded bytes, for tests that edit fields by hand.
pub fn map_of(bytes: &[u8]) -> BTreeMap<String, ipld_core::ipld::Ipld> {
    match serde_ipld_dagcbor::from_slice(bytes).unwrap() {
        ipld_core::ipld::Ipld::Map(m) => m,
        other => panic!("not a map: {other:?}"),
    }
}

/// Encode an edited map back to DAG-CBOR.
pub fn encode_map(m: BTreeMap<String, ipld_core::ipld::Ipld>) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(&ipld_core::ipld::Ipld::Map(m)).unwrap()
}
