//! `block put/get/stat` and `dag get`.

use crate::Vouch;

const HELLO_WORLD_RAW: &str = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";

#[test]
fn block_put_get_stat_raw() {
    let v = Vouch::new();
    v.write("hw", b"hello world");
    let cid = v.ok(&["block", "put", "hw"]);
    assert_eq!(cid.trim(), HELLO_WORLD_RAW);
    assert_eq!(v.ok_bytes(&["block", "get", HELLO_WORLD_RAW]), b"hello world");
    assert_eq!(v.ok(&["block", "stat", HELLO_WORLD_RAW]), format!("Key: {HELLO_WORLD_RAW}\nSize: 11\n"));
    let j: serde_json::Value = serde_json::from_str(&v.ok(&["block", "stat", "--json", HELLO_WORLD_RAW])).unwrap();
    assert_eq!(j, serde_json::json!({"Key": HELLO_WORLD_RAW, "Size": 11}));
    // Pinned by default, and the same block `add --cid-version 1` makes.
    assert!(v.ok(&["pin", "ls"]).contains(HELLO_WORLD_RAW));
    assert_eq!(v.add_q(&["--cid-version", "1", "hw"]), HELLO_WORLD_RAW);

    // From stdin.
    let mut c = v.cmd(&["block", "put"]);
    c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"hello world").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), HELLO_WORLD_RAW);
}

#[test]
fn block_put_dag_pb_checks_the_bytes() {
    let v = Vouch::new();
    v.write("d/a", b"a");
    let dir = v.add_q(&["-r", "d"]);
    let node = v.ok_bytes(&["block", "get", &dir]);

    // A fresh store: garbage is refused as dag-pb and nothing is stored.
    let w = Vouch::new();
    w.write("keep", b"keep");
    w.add_q(&["keep"]);
    w.write("garbage", b"this is not protobuf \xff\xff\xff");
    w.write("node", &node);
    let before = w.snapshot();
    let e = w.err(&["block", "put", "--cid-codec", "dag-pb", "garbage"]);
    assert!(e.contains("dag-pb"), "{e}");
    assert_eq!(w.snapshot(), before);
    let e = w.err(&["block", "put", "--cid-codec", "dag-json", "node"]);
    assert!(e.contains("dag-json"), "{e}");
    assert_eq!(w.snapshot(), before);

    // The real node is accepted; its CID is the CIDv1 of the same multihash.
    let put = w.ok(&["block", "put", "--cid-codec", "dag-pb", "node"]);
    let put: cid::Cid = put.trim().parse().unwrap();
    let orig: cid::Cid = dir.parse().unwrap();
    assert_eq!(put.codec(), 0x70);
    assert_eq!(put.hash(), orig.hash());
    assert_eq!(put, cid::Cid::new_v1(0x70, *orig.hash()));
    // Its child is missing here, so it is stored but not pinned.
    assert!(!w.ok(&["pin", "ls"]).contains(&put.to_string()));
    assert_eq!(w.ok_bytes(&["block", "get", &put.to_string()]), node);
}

#[test]
fn dag_get_prints_dag_json() {
    let v = Vouch::new();
    v.write("d/hello.txt", b"hello\n");
    v.write("d/sub/x", b"x");
    let root = v.add_q(&["-r", "d"]);
    let j: serde_json::Value = serde_json::from_str(&v.ok(&["dag", "get", &root])).unwrap();
    // A UnixFS directory: Data is type 1 (0x08 0x01), base64 "CAE".
    assert_eq!(j["Data"], serde_json::json!({"/": {"bytes": "CAE"}}));
    let links = j["Links"].as_array().unwrap();
    let names: Vec<&str> = links.iter().map(|l| l["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hello.txt", "sub"]);
    assert_eq!(links[0]["Hash"], serde_json::json!({"/": "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"}));
    assert_eq!(links[0]["Tsize"], 14);

    // Through a path: the file node has Data and no links.
    let f: serde_json::Value = serde_json::from_str(&v.ok(&["dag", "get", &format!("{root}/hello.txt")])).unwrap();
    assert_eq!(f["Links"], serde_json::json!([]));
    assert!(f["Data"]["/"]["bytes"].is_string(), "{f}");

    // A raw block: its bytes, base64 without padding.
    v.write("hw", b"hello world");
    v.ok(&["block", "put", "hw"]);
    let r: serde_json::Value = serde_json::from_str(&v.ok(&["dag", "get", HELLO_WORLD_RAW])).unwrap();
    assert_eq!(r, serde_json::json!({"/": {"bytes": "aGVsbG8gd29ybGQ"}}));
}
