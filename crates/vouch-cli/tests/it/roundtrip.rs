//! `add` → `cat`/`get`/`ls` round trips, output formats, and the flags that change CIDs.

use std::fs;
use std::os::unix::fs::symlink;

use crate::{Vouch, assert_same_tree, random_bytes, write_random_file};

const HELLO_CID: &str = "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN";
const EMPTY_CID: &str = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH";
const HELLO_WORLD_V1: &str = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e";

#[test]
fn known_cids() {
    let v = Vouch::new();
    v.write("hello.txt", b"hello\n");
    v.write("empty", b"");
    v.write("hw", b"hello world");
    assert_eq!(v.add_q(&["hello.txt"]), HELLO_CID);
    assert_eq!(v.add_q(&["empty"]), EMPTY_CID);
    assert_eq!(v.add_q(&["--cid-version", "1", "hw"]), HELLO_WORLD_V1);
    // --only-hash gives the same CIDs.
    assert_eq!(v.add_q(&["-n", "hello.txt"]), HELLO_CID);
    assert_eq!(v.add_q(&["--only-hash", "--cid-version=1", "hw"]), HELLO_WORLD_V1);
}

#[test]
fn add_cat_round_trips_at_chunk_boundaries() {
    let v = Vouch::new();
    let sizes = [0usize, 1, 262_143, 262_144, 262_145, 3 * 1024 * 1024 + 17];
    let mut cids = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let data = random_bytes(i as u64, n);
        let name = format!("f{n}");
        v.write(&name, &data);
        let cid = v.add_q(&[&name]);
        assert!(v.ok_bytes(&["cat", &cid]) == data, "cat of the {n}-byte file differs");
        cids.push(cid);
    }
    let distinct: std::collections::HashSet<_> = cids.iter().collect();
    assert_eq!(distinct.len(), sizes.len(), "distinct contents, distinct CIDs: {cids:?}");
    assert_eq!(cids[0], EMPTY_CID);
    // All pinned, and the multi-chunk file's root links to its chunks.
    let pins = v.ok(&["pin", "ls"]);
    for c in &cids {
        assert!(pins.contains(&format!("{c} recursive")), "{c} not in pin ls: {pins}");
    }
    let root: serde_json::Value = serde_json::from_str(&v.ok(&["dag", "get", &cids[5]])).unwrap();
    assert_eq!(root["Links"].as_array().unwrap().len(), 13, "3 MiB + 17 bytes is 13 chunks of 256 KiB");
}

/// A tree with nested directories, a hidden file and directory, symlinks and an empty directory.
fn make_tree(v: &Vouch) -> std::path::PathBuf {
    let root = v.path("tree");
    v.write("tree/a.txt", b"alpha\n");
    v.write("tree/sub/b.bin", &random_bytes(7, 300_000));
    v.write("tree/sub/deeper/c.txt", b"gamma");
    v.write("tree/sub/deeper/empty", b"");
    v.write("tree/.hidden", b"secret");
    v.write("tree/.hdir/x", b"in a hidden dir");
    fs::create_dir(root.join("emptydir")).unwrap();
    symlink("sub/b.bin", root.join("link")).unwrap();
    symlink("../nowhere", root.join("sub/dangling")).unwrap();
    root
}

#[test]
fn add_r_and_get_recreate_the_tree() {
    let v = Vouch::new();
    let tree = make_tree(&v);
    let out = v.ok(&["add", "-r", "tree"]);
    let lines: Vec<&str> = out.lines().collect();
    let root = lines.last().unwrap().strip_prefix("added ").unwrap().strip_suffix(" tree").unwrap().to_string();
    assert!(!out.contains(".hidden") && !out.contains(".hdir"), "hidden entries added without -H:\n{out}");

    v.ok(&["get", &root, "-o", "out"]);
    assert_same_tree(&tree, &v.path("out"), false);
    assert!(!v.path("out/.hidden").exists());
    assert_eq!(fs::read_link(v.path("out/link")).unwrap().to_str(), Some("sub/b.bin"));
    assert_eq!(fs::read_link(v.path("out/sub/dangling")).unwrap().to_str(), Some("../nowhere"));

    // With -H the hidden entries are in, and the root changes.
    let root_h = v.add_q(&["-r", "-H", "tree"]);
    assert_ne!(root_h, root);
    v.ok(&["get", &root_h, "-o", "out-h"]);
    assert_same_tree(&tree, &v.path("out-h"), true);
    assert_eq!(fs::read(v.path("out-h/.hdir/x")).unwrap(), b"in a hidden dir");

    // get of a path inside the DAG, and cat through a path.
    v.ok(&["get", &format!("{root}/sub/deeper"), "-o", "deeper"]);
    assert_same_tree(&tree.join("sub/deeper"), &v.path("deeper"), false);
    assert_eq!(v.ok(&["cat", &format!("/ipfs/{root}/sub/deeper/c.txt")]), "gamma");
}

#[test]
fn ls_lists_names_and_cids_as_added() {
    let v = Vouch::new();
    make_tree(&v);
    let added = v.ok(&["add", "-r", "tree"]);
    // `added <cid> tree/<name>` for the direct children.
    let mut want: Vec<(String, String)> = added
        .lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            assert_eq!(it.next(), Some("added"), "{l}");
            let cid = it.next().unwrap().to_string();
            let name = it.next().unwrap().strip_prefix("tree/")?;
            (!name.contains('/')).then(|| (name.to_string(), cid))
        })
        .collect();
    want.sort();
    let names: Vec<&str> = want.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a.txt", "emptydir", "link", "sub"]);
    let root = v.add_q(&["-r", "tree"]);

    let mut got: Vec<(String, String)> = v
        .ok(&["ls", &root])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "ls line {l:?} is not 'CID SIZE NAME'");
            f[1].parse::<u64>().unwrap();
            (f[2].to_string(), f[0].to_string())
        })
        .collect();
    got.sort();
    assert_eq!(got, want);

    let json: Vec<serde_json::Value> =
        v.ok(&["ls", "--json", &root]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut from_json: Vec<(String, String)> = json
        .iter()
        .map(|j| (j["Name"].as_str().unwrap().to_string(), j["Hash"].as_str().unwrap().to_string()))
        .collect();
    from_json.sort();
    assert_eq!(from_json, want);
    assert!(json.iter().all(|j| j["Size"].is_u64()), "{json:?}");
    // ls of a subdirectory by path.
    let sub = v.ok(&["ls", &format!("{root}/sub")]);
    let sub_names: Vec<&str> = sub.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(sub_names, ["b.bin", "dangling", "deeper"]);
}

#[test]
fn wrap_puts_the_base_name_in_a_directory() {
    let v = Vouch::new();
    v.write("dir/hello.txt", b"hello\n");
    let out = v.ok(&["add", "-w", "dir/hello.txt"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("added {HELLO_CID} hello.txt"));
    assert_eq!(lines.len(), 2, "{out}");
    let wrapper = lines[1].strip_prefix("added ").unwrap();
    assert!(!wrapper.contains(' '), "the wrapper has no name: {out}");
    assert_eq!(v.ok(&["ls", wrapper]).trim(), format!("{HELLO_CID} 14 hello.txt"));
    assert_eq!(v.ok(&["cat", &format!("{wrapper}/hello.txt")]), "hello\n");
    assert_eq!(v.add_q(&["-w", "dir/hello.txt"]), wrapper);
    assert_eq!(v.add_q(&["-w", "-n", "dir/hello.txt"]), wrapper);
}

#[test]
fn output_formats() {
    let v = Vouch::new();
    v.write("d/hello.txt", b"hello\n");
    v.write("d/x/empty", b"");
    let plain = v.ok(&["add", "-r", "d"]);
    let lines: Vec<(String, String)> = plain
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!((f.len(), f[0]), (3, "added"), "{l:?}");
            (f[1].to_string(), f[2].to_string())
        })
        .collect();
    let names: Vec<&str> = lines.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["d/hello.txt", "d/x/empty", "d/x", "d"]);
    assert_eq!(lines[0].0, HELLO_CID);
    assert_eq!(lines[1].0, EMPTY_CID);

    let quiet = v.ok(&["add", "-q", "-r", "d"]);
    let cids: Vec<&str> = lines.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(quiet.lines().collect::<Vec<_>>(), cids);

    assert_eq!(v.ok(&["add", "-Q", "-r", "d"]), format!("{}\n", lines[3].0));

    let json = v.ok(&["add", "--json", "-r", "d"]);
    let objs: Vec<serde_json::Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objs.len(), 4);
    for (o, (cid, name)) in objs.iter().zip(&lines) {
        let keys: Vec<&str> = o.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 3, "{o}");
        assert_eq!(o["Name"], name.as_str());
        assert_eq!(o["Hash"], cid.as_str());
        // Kubo prints Size as a decimal string.
        o["Size"].as_str().unwrap().parse::<u64>().unwrap();
    }
    assert_eq!(objs[0]["Size"], "14");
    assert_eq!(objs[1]["Size"], "6");
}

#[test]
fn only_hash_stores_nothing() {
    let v = Vouch::new();
    v.write("keep", b"something stored");
    v.add_q(&["keep"]);
    let before = v.snapshot();
    v.write("f", &random_bytes(1, 600_000));
    v.write("d/g", b"ggg");
    let cid = v.add_q(&["-n", "f"]);
    let dir = v.add_q(&["--only-hash", "-r", "d"]);
    assert_eq!(v.snapshot(), before);
    for c in [&cid, &dir] {
        let e = v.err(&["cat", c]);
        assert!(e.contains("not found") && e.contains(c.as_str()), "{e}");
    }
    // The same CIDs as a stored add.
    assert_eq!(v.add_q(&["f"]), cid);
    assert_eq!(v.add_q(&["-r", "d"]), dir);
}

#[test]
fn unpinned_content_is_collected_pinned_survives() {
    let v = Vouch::new();
    v.write("pinned", &random_bytes(2, 700_000));
    v.write("loose", &random_bytes(3, 700_000));
    let pinned = v.add_q(&["pinned"]);
    let loose = v.add_q(&["--pin=false", "loose"]);
    assert!(!v.ok(&["pin", "ls"]).contains(&loose));
    assert_eq!(v.ok_bytes(&["cat", &loose]), fs::read(v.path("loose")).unwrap());

    let gc: serde_json::Value = serde_json::from_str(&v.ok(&["gc", "--json"])).unwrap();
    let removed: Vec<&str> = gc["removed"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(removed.contains(&loose.as_str()), "{gc}");
    assert_eq!(removed.len(), 4, "the root and 3 leaves of the loose file: {gc}");
    assert!(gc["bytes_freed"].as_u64().unwrap() >= 700_000, "{gc}");

    let e = v.err(&["cat", &loose]);
    assert!(e.contains("not found") && e.contains(&loose), "{e}");
    assert_eq!(v.ok_bytes(&["cat", &pinned]), fs::read(v.path("pinned")).unwrap());
    assert_eq!(v.ok(&["repo", "verify"]).trim(), "all blocks verified");
    // A second gc finds nothing.
    assert_eq!(v.ok(&["gc"]).trim(), "removed 0 blocks, freed 0 bytes");
}

#[test]
fn cid_version_chunker_and_profile_change_cids() {
    let v = Vouch::new();
    v.write("small", b"small file");
    v.write("d/small", b"small file");
    let data = random_bytes(4, 2 * 1024 * 1024 + 5);
    v.write("two-mib", &data);

    let small_v1 = v.add_q(&["--cid-version", "1", "small"]);
    assert!(small_v1.starts_with("bafkrei"), "CIDv1 of a small file is a raw leaf: {small_v1}");
    let dir_v1 = v.add_q(&["--cid-version", "1", "-r", "d"]);
    assert!(dir_v1.starts_with("bafybei"), "CIDv1 of a directory is dag-pb: {dir_v1}");
    let big_v1 = v.add_q(&["--cid-version", "1", "two-mib"]);
    assert!(big_v1.starts_with("bafybei"), "{big_v1}");
    // --raw-leaves=false keeps dag-pb leaves under CIDv1.
    let small_v1_pb = v.add_q(&["--cid-version", "1", "--raw-leaves=false", "small"]);
    assert!(small_v1_pb.starts_with("bafybei"), "{small_v1_pb}");

    let default = v.add_q(&["two-mib"]);
    assert!(default.starts_with("Qm"));
    let c1000 = v.add_q(&["--chunker", "size-1000", "two-mib"]);
    assert_ne!(c1000, default);
    assert_eq!(v.add_q(&["-s", "size-262144", "two-mib"]), default, "the default chunker is size-262144");
    let root: serde_json::Value = serde_json::from_str(&v.ok(&["dag", "get", &c1000])).unwrap();
    assert!(!root["Links"].as_array().unwrap().is_empty());

    let v2025 = v.add_q(&["--profile", "unixfs-v1-2025", "two-mib"]);
    assert!(v2025.starts_with("bafybei"), "{v2025}");
    assert_ne!(v2025, default);
    assert_ne!(v2025, big_v1, "unixfs-v1-2025 chunks at 1 MiB, --cid-version 1 at 256 KiB");
    let root: serde_json::Value = serde_json::from_str(&v.ok(&["dag", "get", &v2025])).unwrap();
    assert_eq!(root["Links"].as_array().unwrap().len(), 3, "2 MiB + 5 bytes in 1 MiB chunks");
    // A small file is one raw leaf either way.
    assert_eq!(v.add_q(&["--profile", "unixfs-v1-2025", "small"]), small_v1);
    assert_eq!(v.add_q(&["--profile", "unixfs-v0-2015", "two-mib"]), default);

    // Every variant reads back the same bytes.
    for c in [&c1000, &v2025, &big_v1] {
        assert!(v.ok_bytes(&["cat", c]) == data, "cat {c}");
    }
}

#[test]
fn large_random_file_round_trips() {
    let v = Vouch::new();
    let p = v.path("big");
    write_random_file(&p, 99, 40 * 1024 * 1024 + 123);
    // More than 174 chunks: a two-level tree.
    let cid = v.add_q(&["big"]);
    v.assert_cat_eq_file(&cid, &p);
    assert_eq!(v.add_q(&["-n", "big"]), cid);
    v.ok(&["get", &cid, "-o", "big.out"]);
    assert_same_tree(&p, &v.path("big.out"), false);
}

#[test]
fn pin_add_rm_decide_what_gc_keeps() {
    let v = Vouch::new();
    v.write("a", &random_bytes(5, 300_000));
    v.write("b", &random_bytes(6, 300_000));
    let a = v.add_q(&["--pin=false", "a"]);
    let b = v.add_q(&["b"]);
    assert_eq!(v.ok(&["pin", "add", &a]), format!("pinned {a} recursively\n"));
    let mut pins: Vec<String> = v.ok(&["pin", "ls"]).lines().map(String::from).collect();
    pins.sort();
    let mut want = vec![format!("{a} recursive"), format!("{b} recursive")];
    want.sort();
    assert_eq!(pins, want);
    let j: serde_json::Value = serde_json::from_str(v.ok(&["pin", "ls", "--json"]).lines().next().unwrap()).unwrap();
    assert_eq!(j["Type"], "recursive");
    assert_eq!(v.ok(&["pin", "rm", &b]), format!("unpinned {b}\n"));
    v.ok(&["gc"]);
    assert_eq!(v.ok_bytes(&["cat", &a]), fs::read(v.path("a")).unwrap());
    assert!(v.err(&["cat", &b]).contains("not found"));
    assert_eq!(v.ok(&["pin", "ls"]), format!("{a} recursive\n"));
}

#[test]
fn get_without_output_writes_to_the_cid_or_last_segment() {
    let v = Vouch::new();
    v.write("d/sub/f", b"fff");
    let root = v.add_q(&["-r", "d"]);
    let out = v.ok(&["get", &root]);
    assert_eq!(out.trim(), format!("Saved {root} to {root}"));
    assert_eq!(fs::read(v.path(&format!("{root}/sub/f"))).unwrap(), b"fff");
    v.ok(&["get", &format!("{root}/sub/f")]);
    assert_eq!(fs::read(v.path("f")).unwrap(), b"fff");
}
