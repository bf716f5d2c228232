//! Bad input to the decoders: each rejected with the error that names what is wrong.

use ipld_core::ipld::Ipld;
use vouch_receipt::*;

use crate::fixtures::{encode_map, golden, golden_spec, map_of};

#[test]
fn oversized_inputs_are_rejected_before_parsing() {
    let big = vec![0u8; MAX_RECEIPT_BYTES + 1];
    assert_eq!(
        Receipt::decode(&big).unwrap_err(),
        Error::TooLarge { what: "receipt", len: MAX_RECEIPT_BYTES + 1, max: MAX_RECEIPT_BYTES }
    );
    assert!(matches!(JobSpec::decode(&big[..MAX_SPEC_BYTES + 1]), Err(Error::TooLarge { what: "job spec", .. })));
}

#[test]
fn non_dag_cbor_is_rejected() {
    let spec = golden_spec().encode();
    // Map header with indefinite length; keys out of canonical order; a duplicate key; a float
    // where DAG-CBOR forbids it is fine for the decoder but not our schema (tested below).
    let mut indefinite = spec.clone();
    indefinite[0] = 0xbf;
    let unsorted = [&[0xa2u8][..], &[0x62, b'z', b'z', 0x01], &[0x61, b'a', 0x02]].concat();
    let duplicate = [&[0xa2u8][..], &[0x61, b'a', 0x01], &[0x61, b'a', 0x02]].concat();
    let trailing = [&spec[..], &[0x00]].concat();
    for (name, bytes) in
        [("indefinite", indefinite), ("unsorted", unsorted), ("duplicate", duplicate), ("trailing", trailing)]
    {
        let err = JobSpec::decode(&bytes).unwrap_err();
        assert!(matches!(err, Error::DagCbor { what: "job spec", .. }), "{name}: {err}");
    }
}

#[test]
fn versions_other_than_1_are_named() {
    let mut m = map_of(&golden_spec().encode());
    m.insert("version".into(), Ipld::Integer(7));
    assert_eq!(
        JobSpec::decode(&encode_map(m.clone())).unwrap_err().to_string(),
        "job spec version is not supported: found 7, this build reads version 1"
    );
    m.remove("version");
    assert!(
        matches!(JobSpec::decode(&encode_map(m)), Err(Error::UnsupportedVersion { found, .. }) if found == "no `version` field")
    );
    let list = serde_ipld_dagcbor::to_vec(&Ipld::List(vec![])).unwrap();
    assert!(Receipt::decode(&list).unwrap_err().to_string().contains("the top level is a list, not a map"));
}

#[test]
fn unknown_missing_and_mistyped_fields_are_named() {
    let spec = golden_spec().encode();
    let schema = |m| match JobSpec::decode(&encode_map(m)) {
        Err(Error::Schema { path, reason, .. }) => (path, reason),
        other => panic!("{other:?}"),
    };
    let mut m = map_of(&spec);
    m.insert("priority".into(), Ipld::Integer(1));
    let (path, reason) = schema(m);
    assert_eq!(path, "priority");
    assert!(reason.starts_with("unknown field `priority`"), "{reason}");

    let mut m = map_of(&spec);
    m.remove("limits");
    assert_eq!(schema(m).1, "missing field `limits`");

    let mut m = map_of(&spec);
    m.insert("inputs".into(), Ipld::Map([("data.csv".to_string(), Ipld::String("Qm…".into()))].into()));
    assert_eq!(schema(m).0, "inputs.data.csv");

    let mut m = map_of(&spec);
    m.insert("recipient".into(), Ipld::List(vec![Ipld::Integer(1)]));
    assert_eq!(schema(m).0, "recipient");

    // Receipt-level: the signature's own checks, and nested paths.
    let r = golden().encode();
    let schema = |m| match Receipt::decode(&encode_map(m)) {
        Err(Error::Schema { path, reason, .. }) => (path, reason),
        other => panic!("{other:?}"),
    };
    let mut m = map_of(&r);
    m.insert("signature".into(), Ipld::Bytes(vec![0; 63]));
    assert_eq!(schema(m), ("signature".into(), "expected 64 bytes, found 63".into()));
    let mut m = map_of(&r);
    m.remove("signature");
    assert_eq!(schema(m), (".".into(), "missing field `signature`".into()));
    let mut m = map_of(&r);
    m.insert("node_key".into(), Ipld::Bytes(vec![0; 31]));
    assert_eq!(schema(m).0, "node_key");
    let mut m = map_of(&r);
    m.insert("outcome".into(), Ipld::Map([("kind".to_string(), Ipld::String("exploded".into()))].into()));
    let (path, reason) = schema(m);
    assert_eq!(path, "outcome");
    assert!(reason.starts_with("unknown outcome kind `exploded`"), "{reason}");
    let mut m = map_of(&r);
    let Some(Ipld::Map(ev)) = m.get_mut("evidence") else { panic!() };
    ev.insert("technology".into(), Ipld::String("quantum".into()));
    let (path, reason) = schema(m);
    assert_eq!(path, "evidence.technology");
    assert!(reason.contains("unknown variant `quantum`"), "{reason}");
}

#[test]
fn explicit_nulls_are_not_canonical() {
    let mut m = map_of(&golden_spec().encode());
    m.insert("policy".into(), Ipld::Null);
    assert!(matches!(JobSpec::decode(&encode_map(m)), Err(Error::NonCanonical { what: "job spec", .. })));
}
