//! A byte flipped on disk is reported, named, and never served.

use std::fs;

use crate::{Vouch, random_bytes};

/// Find `needle` in the store's pack files and flip one of its bytes; returns the pack path.
fn flip_in_packs(v: &Vouch, needle: &[u8]) -> std::path::PathBuf {
    let mut found = None;
    for e in fs::read_dir(v.packs_dir()).unwrap() {
        let p = e.unwrap().path();
        let mut data = fs::read(&p).unwrap();
        if let Some(i) = data.windows(needle.len()).position(|w| w == needle) {
            assert!(found.is_none(), "the needle is in two packs");
            data[i + needle.len() / 2] ^= 0x01;
            fs::write(&p, &data).unwrap();
            found = Some(p);
        }
    }
    found.expect("the content is in a pack")
}

#[test]
fn corrupt_block_is_named_and_never_served() {
    let v = Vouch::new();
    let data = random_bytes(30, 3 * 262_144);
    v.write("f", &data);
    v.write("other", b"an unrelated, intact file");
    let cid = v.add_q(&["f"]);
    let other = v.add_q(&["other"]);
    let root: serde_json::Value = serde_json::from_str(&v.ok(&["dag", "get", &cid])).unwrap();
    let leaf = root["Links"][1]["Hash"]["/"].as_str().unwrap().to_string();

    // Corrupt the middle of the second chunk.
    let needle = &data[262_144 + 100_000..262_144 + 100_064];
    flip_in_packs(&v, needle);
    let mut corrupted = needle.to_vec();
    corrupted[32] ^= 0x01;

    let out = v.run(&["cat", &cid]);
    assert_eq!(out.status.code(), Some(2));
    let e = crate::one_line_error(&String::from_utf8_lossy(&out.stderr));
    assert!(e.contains(&leaf) && e.contains("corrupt"), "{e}");
    // At most the intact first chunk came out, and nothing of the corrupt one.
    assert!(out.stdout.len() <= 262_144, "{} bytes printed", out.stdout.len());
    assert!(data.starts_with(&out.stdout));
    assert!(!out.stdout.windows(corrupted.len()).any(|w| w == corrupted));

    let e = v.err(&["block", "get", &leaf]);
    assert!(e.contains(&leaf) && e.contains("corrupt"), "{e}");
    v.err(&["get", &cid, "-o", "out"]);
    // The intact file is still served.
    assert_eq!(v.ok(&["cat", &other]), "an unrelated, intact file");

    let out = v.run(&["repo", "verify"]);
    assert_eq!(out.status.code(), Some(1), "repo verify must exit 1 on corruption");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let corrupt: Vec<&str> = stdout.lines().filter(|l| l.starts_with("corrupt ")).collect();
    assert_eq!(corrupt.len(), 1, "{stdout}");
    assert!(corrupt[0].starts_with(&format!("corrupt {leaf}:")), "{stdout}");
    let e = crate::one_line_error(&String::from_utf8_lossy(&out.stderr));
    assert!(e.contains("1 corrupt"), "{e}");

    // GC refuses to trust a pinned DAG it cannot read, and removes nothing.
    let before = v.snapshot();
    let e = v.err(&["gc"]);
    assert!(e.contains(&leaf), "{e}");
    assert_eq!(v.snapshot(), before);
}

#[test]
fn corrupt_single_block_file_prints_nothing() {
    let v = Vouch::new();
    let data = b"sensitive but corrupted: the reader must never see this line".repeat(4);
    v.write("f", &data);
    let cid = v.add_q(&["--cid-version", "1", "f"]);
    assert!(cid.starts_with("bafkrei"));
    flip_in_packs(&v, &data[40..120]);
    let out = v.run(&["cat", &cid]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "printed {:?}", String::from_utf8_lossy(&out.stdout));
    let e = crate::one_line_error(&String::from_utf8_lossy(&out.stderr));
    assert!(e.contains(&cid), "{e}");
    let out = v.run(&["repo", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stdout).unwrap().contains(&format!("corrupt {cid}")));
}
