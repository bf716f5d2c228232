//! Property tests: encode→decode round trips for random specs and receipts (the encodings are
//! serde_ipld_dagcbor's, byte for byte), random valid
//! receipts verify, and random bytes or random damage never verify and never panic.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vouch_receipt::*;

use crate::fixtures::AT;

fn cid() -> impl Strategy<Value = Cid> {
    // CIDv0 (dag-pb) and CIDv1 raw / dag-pb / dag-cbor, sha2-256.
    (any::<[u8; 32]>(), prop::sample::select(vec![None, Some(0x55u64), Some(0x70), Some(0x71)])).prop_map(
        |(digest, codec)| {
            let mh = multihash::Multihash::<64>::wrap(0x12, &digest).unwrap();
            match codec {
                None => Cid::new_v0(mh).unwrap(),
                Some(c) => Cid::new_v1(c, mh),
            }
        },
    )
}

/// Strings without NUL, including non-ASCII.
fn text() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,12}"
}

fn name() -> impl Strategy<Value = String> {
    "[^/\\\\\u{0}]{1,16}".prop_filter("not . or ..", |n| n != "." && n != ".." && n.len() <= MAX_NAME_BYTES)
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        prop::option::of(1..=u64::MAX),
        MIN_MEMORY_BYTES..=MAX_MEMORY_BYTES,
        1..=MAX_WALL_TIME_MS,
        0..=MAX_OUTPUT_BYTES,
        0..=MAX_STREAM_BYTES,
        0..=MAX_STREAM_BYTES,
    )
        .prop_map(|(fuel, memory_bytes, wall_time_ms, output_bytes, stdout_bytes, stderr_bytes)| Limits {
            fuel,
            memory_bytes,
            wall_time_ms,
            output_bytes,
            stdout_bytes,
            stderr_bytes,
        })
}

prop_compose! {
    fn spec()(
        module in cid(),
        inputs in prop::collection::btree_map(name(), cid(), 0..5),
        args in prop::collection::vec(text(), 0..5),
        env in prop::collection::btree_map("[^=\u{0}]{1,8}", text(), 0..5),
        limits in limits(),
        deterministic in any::<bool>(),
        recipient in prop::option::of(prop::collection::vec(any::<u8>(), 1..80)),
        policy in prop::option::of(cid()),
        mounts in prop::collection::btree_map("/m[a-z]{0,5}(/[a-z]{1,6}){0,2}", cid(), 0..2),
    ) -> JobSpec {
        JobSpec { version: SPEC_VERSION, module, inputs, args, env, limits, deterministic, recipient, policy, mounts }
    }
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        any::<i32>().prop_map(|code| Outcome::Exited { code }),
        text().prop_map(|message| Outcome::Trapped { message }),
        text().prop_map(|message| Outcome::Rejected { message }),
        text().prop_map(|message| Outcome::ResourceLimit { message }),
        Just(Outcome::StackOverflow),
        Just(Outcome::Timeout),
        Just(Outcome::MemoryLimit),
        Just(Outcome::OutputLimit),
        Just(Outcome::StdoutLimit),
        Just(Outcome::StderrLimit),
    ]
}

prop_compose! {
    /// A receipt that should verify (with `none` allowed and time `AT`): usage within the limits.
    fn receipt()(
        spec in spec(),
        seed in any::<[u8; 32]>(),
        outputs in (prop::option::of(cid()), prop::option::of(cid()), prop::option::of(cid())),
        outcome in outcome(),
        used in (any::<u64>(), any::<u64>(), any::<u64>()),
        runtime in (text(), text(), any::<[u8; 32]>()),
        nonce in prop::collection::vec(any::<u8>(), 0..64),
        issued_at in 0..=AT,
    ) -> (Receipt, SigningKey) {
        let key = SigningKey::from_bytes(&seed);
        let node_key = key.verifying_key().to_bytes();
        let usage = Usage {
            fuel_consumed: spec.limits.fuel.map(|f| used.0 % f),
            wall_time_ns: used.1,
            peak_memory_bytes: used.2 % (spec.limits.memory_bytes + 1),
        };
        let body = ReceiptBody {
            version: RECEIPT_VERSION,
            job: spec.cid(),
            spec,
            output: outputs.0,
            stdout: outputs.1,
            stderr: outputs.2,
            outcome,
            usage,
            runtime: Runtime { vouch: runtime.0, wasmtime: runtime.1, engine_config_hash: runtime.2 },
            node_key,
            evidence: Evidence::none(&node_key, nonce),
            issued_at,
            releases: Vec::new(),
        };
        (Receipt::sign(body, &key).unwrap(), key)
    }
}

fn opts(key: &SigningKey) -> VerifyOptions {
    VerifyOptions {
        allow_insecure: true,
        expected_node_key: Some(key.verifying_key().to_bytes()),
        at: Some(AT),
        ..VerifyOptions::default()
    }
}

proptest! {
    #[test]
    fn spec_round_trips(spec in spec()) {
        spec.validate().unwrap();
        let bytes = spec.encode();
        // The crate's own DAG-CBOR writer against serde_ipld_dagcbor, the reference.
        prop_assert_eq!(&bytes, &serde_ipld_dagcbor::to_vec(&spec).unwrap());
        let back = JobSpec::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &spec);
        prop_assert_eq!(back.encode(), bytes);
        prop_assert_eq!(back.cid(), spec.cid());
    }

    #[test]
    fn receipt_round_trips_and_verifies((receipt, key) in receipt()) {
        let bytes = receipt.encode();
        let signed = receipt.body.signed_bytes();
        prop_assert_eq!(&signed[SIGNATURE_DOMAIN.len()..], &serde_ipld_dagcbor::to_vec(&receipt.body).unwrap()[..]);
        let ipld_core::ipld::Ipld::Map(mut map) = ipld_core::serde::to_ipld(&receipt.body).unwrap() else { unreachable!() };
        map.insert("signature".into(), ipld_core::ipld::Ipld::Bytes(receipt.signature.to_vec()));
        prop_assert_eq!(&bytes, &serde_ipld_dagcbor::to_vec(&ipld_core::ipld::Ipld::Map(map)).unwrap());
        let back = Receipt::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &receipt);
        prop_assert_eq!(back.cid(), receipt.cid());
        let report = verify(&bytes, &opts(&key));
        prop_assert!(report.verified(), "{}", report);
        prop_assert_eq!(report.cid, receipt.cid());
    }

    #[test]
    fn random_damage_never_verifies(
        (receipt, key) in receipt(),
        at in any::<prop::sample::Index>(),
        insert in prop::collection::vec(any::<u8>(), 0..4),
        delete in 0usize..4,
    ) {
        let mut bytes = receipt.encode();
        let i = at.index(bytes.len());
        let end = (i + delete).min(bytes.len());
        bytes.splice(i..end, insert.iter().copied());
        prop_assume!(bytes != receipt.encode());
        prop_assert!(!verify(&bytes, &opts(&key)).verified());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let report = verify(&bytes, &VerifyOptions::default());
        prop_assert!(!report.verified());
        prop_assert_eq!(report.claims.len(), CLAIMS.len());
        let _ = JobSpec::decode(&bytes);
    }
}

/// Different inputs give different job ids; the map order of inputs and env does not matter.
#[test]
fn job_id_depends_on_content_not_insertion_order() {
    let module: Cid = "bafkreieturf3xfwhkeqy4taa2r46jqkdlajcuoe2zsqwebnr4tinyx4uoy".parse().unwrap();
    let mut a = JobSpec::new(module);
    let mut b = JobSpec::new(module);
    a.env = BTreeMap::from([("A".into(), "1".into()), ("BB".into(), "2".into())]);
    b.env.insert("BB".into(), "2".into());
    b.env.insert("A".into(), "1".into());
    assert_eq!(a.cid(), b.cid());
    b.env.insert("A".into(), "3".into());
    assert_ne!(a.cid(), b.cid());
}
