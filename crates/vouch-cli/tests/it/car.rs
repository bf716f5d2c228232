//! CAR export and import between homes, and a CAR written by another implementation.

use std::fs;

use crate::{Vouch, assert_same_tree, car_sections, random_bytes, repo_root, skip_or_fail};

#[test]
fn export_import_between_homes() {
    let a = Vouch::new();
    a.write("d/big", &random_bytes(11, 1_000_000));
    a.write("d/sub/small", b"small");
    let root = a.add_q(&["-r", "d"]);
    a.ok(&["car", "export", &root, "-o", "d.car"]);
    let car = fs::read(a.path("d.car")).unwrap();
    assert!(!a.path("d.car.partial").exists());
    // To stdout: the same bytes.
    assert!(a.ok_bytes(&["car", "export", &root]) == car, "car export to stdout differs from -o");
    // The root first, each block of the DAG once: 1 dir + 1 file root + 4 leaves + sub + small.
    let (_, sections) = car_sections(&car);
    assert_eq!(sections[0].cid, root);
    assert_eq!(sections.len(), 8);
    let stat: serde_json::Value = serde_json::from_str(&a.ok(&["repo", "stat", "--json"])).unwrap();
    assert_eq!(stat["blocks"], 8);

    let b = Vouch::new();
    fs::copy(a.path("d.car"), b.path("d.car")).unwrap();
    let out = b.ok(&["car", "import", "d.car"]);
    assert!(out.contains(&format!("root {root} pinned")), "{out}");
    assert!(out.contains("imported 8 blocks (8 new"), "{out}");
    assert_eq!(b.ok(&["pin", "ls"]), format!("{root} recursive\n"));
    b.ok(&["get", &root, "-o", "out"]);
    assert_same_tree(&a.path("d"), &b.path("out"), false);
    assert_eq!(b.ok_bytes(&["cat", &format!("{root}/big")]), fs::read(a.path("d/big")).unwrap());
    // Re-exported from the second home: byte-identical.
    assert!(b.ok_bytes(&["car", "export", &root]) == car);

    // Importing again adds nothing new; --json reports it.
    let j: serde_json::Value = serde_json::from_str(&b.ok(&["car", "import", "--json", "d.car"])).unwrap();
    assert_eq!(j, serde_json::json!({"roots": [root], "blocks": 8, "new_blocks": 0, "new_bytes": 0}));
}

#[test]
fn import_without_pinning_leaves_blocks_collectable() {
    let a = Vouch::new();
    a.write("f", &random_bytes(12, 300_000));
    let root = a.add_q(&["f"]);
    a.ok(&["car", "export", &root, "-o", "f.car"]);
    let b = Vouch::new();
    let car = a.path("f.car");
    let out = b.ok(&["car", "import", "--pin-roots=false", car.to_str().unwrap()]);
    assert!(out.contains("(not pinned)"), "{out}");
    assert_eq!(b.ok(&["pin", "ls"]), "");
    assert_eq!(b.ok_bytes(&["cat", &root]), fs::read(a.path("f")).unwrap());
    b.ok(&["gc"]);
    assert!(b.err(&["cat", &root]).contains("not found"));
}

/// A CAR written by the npm `@ipld/car` library (testdata/car/js-written.car), described by
/// js-written.json (its roots and block count).
#[test]
fn imports_a_car_written_by_js() {
    let dir = repo_root().join("testdata/car");
    let (car, json) = (dir.join("js-written.car"), dir.join("js-written.json"));
    if !car.exists() || !json.exists() {
        skip_or_fail(&format!(
            "{} or {} is missing (written by the npm @ipld/car helper)",
            car.display(),
            json.display()
        ));
        return;
    }
    let meta: serde_json::Value = serde_json::from_slice(&fs::read(&json).unwrap()).unwrap();
    let roots: Vec<String> = meta["roots"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no \"roots\" array: {meta}", json.display()))
        .iter()
        .map(|r| match r {
            serde_json::Value::String(s) => s.clone(),
            // DAG-JSON link form {"/": "bafy…"}.
            other => other["/"].as_str().unwrap_or_else(|| panic!("root {other} is not a CID")).to_string(),
        })
        .collect();
    let blocks = ["blocks", "block_count", "blockCount"]
        .iter()
        .find_map(|k| match &meta[*k] {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::Array(a) => Some(a.len() as u64),
            serde_json::Value::Object(o) => Some(o.len() as u64),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{}: no block count (blocks/block_count/blockCount): {meta}", json.display()));

    let v = Vouch::new();
    let j: serde_json::Value =
        serde_json::from_str(&v.ok(&["car", "import", "--json", car.to_str().unwrap()])).unwrap();
    assert_eq!(j["roots"], serde_json::json!(roots));
    assert_eq!(j["blocks"], blocks);
    let pins: Vec<String> = v.assert_pins_complete();
    for r in &roots {
        assert!(pins.contains(r), "root {r} not pinned: {pins:?}");
    }
    assert_eq!(v.ok(&["repo", "verify"]).trim(), "all blocks verified");
}
