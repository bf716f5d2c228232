//! Bad input: exit code 2, one line `Error: …` naming the problem, and the store unchanged.

use std::fs;

use crate::{Vouch, car_sections, random_bytes};

/// A home with something in it, so "unchanged" means something.
fn seeded() -> Vouch {
    let v = Vouch::new();
    v.write("seed", &random_bytes(20, 400_000));
    v.add_q(&["seed"]);
    v
}

/// Run `args`, expect a one-line error containing every one of `needles`, and the store as it was.
#[track_caller]
fn rejects(v: &Vouch, args: &[&str], needles: &[&str]) -> String {
    let before = v.snapshot();
    let e = v.err(args);
    for n in needles {
        assert!(e.contains(n), "vouch {args:?}: error {e:?} does not mention {n:?}");
    }
    assert_eq!(v.snapshot(), before, "vouch {args:?} changed the store");
    e
}

/// A valid CID of content that is in no store.
const UNKNOWN: &str = "QmVepwP2zCb78YCScCPax1M1gupS6K4VdNpdzwGjxBsqr1";
/// The raw CIDv1 of "not stored anywhere".
const UNKNOWN_V1: &str = "bafkreiclezh54wls5etuyvprbjtss7uwdcuhumwula56i7xxp4psy2laqi";

#[test]
fn add_of_missing_or_unsuitable_paths() {
    let v = seeded();
    rejects(&v, &["add", "no-such-file"], &["no-such-file", "No such file"]);
    v.write("dir/f", b"f");
    rejects(&v, &["add", "dir"], &["dir", "is a directory", "-r"]);
    // A good file before the bad argument: nothing of the batch stays behind.
    v.write("good", &random_bytes(21, 300_000));
    rejects(&v, &["add", "good", "dir"], &["dir", "-r"]);
    rejects(&v, &["add", "good", "missing"], &["missing"]);
    assert!(v.err(&["cat", &v.add_q(&["-n", "good"])]).contains("not found"));
}

#[test]
fn bad_import_options() {
    let v = seeded();
    v.write("f", b"content");
    for c in ["size-0", "rabin-x", "size-2000000", "size-", "buzhash"] {
        rejects(&v, &["add", "--chunker", c, "f"], &["invalid chunker", c]);
    }
    rejects(&v, &["add", "--cid-version", "7", "f"], &["--cid-version", "7"]);
    rejects(&v, &["add", "--cid-version", "one", "f"], &["--cid-version", "one"]);
    rejects(&v, &["add", "--profile", "unixfs-v9", "f"], &["unixfs-v9", "unixfs-v1-2025"]);
    rejects(&v, &["add", "--pin=maybe", "f"], &["--pin", "maybe"]);
    rejects(&v, &["add"], &["required"]);
    rejects(&v, &["frobnicate"], &["frobnicate"]);
}

#[test]
fn invalid_cid_strings() {
    let v = seeded();
    for args in [
        &["cat", "notacid"][..],
        &["get", "notacid"],
        &["ls", "notacid"],
        &["block", "get", "notacid"],
        &["block", "stat", "notacid"],
        &["dag", "get", "notacid"],
        &["car", "export", "notacid"],
        &["pin", "add", "notacid"],
        &["pin", "rm", "notacid"],
    ] {
        rejects(&v, args, &["invalid CID", "notacid"]);
    }
    // A valid prefix with a broken tail.
    rejects(&v, &["cat", "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXE0"], &["invalid CID"]);
}

#[test]
fn unknown_cids() {
    let v = seeded();
    for cid in [UNKNOWN, UNKNOWN_V1] {
        for args in [
            &["cat", cid][..],
            &["get", cid, "-o", "out"],
            &["ls", cid],
            &["block", "get", cid],
            &["block", "stat", cid],
            &["dag", "get", cid],
            &["car", "export", cid, "-o", "x.car"],
            &["pin", "add", cid],
        ] {
            let e = rejects(&v, args, &[cid]);
            assert!(e.contains("not found") || e.contains("not in the store"), "vouch {args:?}: {e}");
        }
        rejects(&v, &["pin", "rm", cid], &[cid, "not pinned"]);
        let e = rejects(&v, &["car", "export", cid], &["is incomplete", cid]);
        assert!(!e.contains("pin"), "{e}");
    }
    assert!(!v.path("out").exists() && !v.path("x.car").exists() && !v.path("x.car.partial").exists());
    // A path that does not exist inside a stored directory.
    v.write("d/a", b"a");
    let root = v.add_q(&["-r", "d"]);
    rejects(&v, &["cat", &format!("{root}/nope")], &["nope", "no such link"]);
    // The wrong kind of object.
    rejects(&v, &["cat", &root], &[&root, "not a UnixFS file"]);
    let file = v.add_q(&["d/a"]);
    rejects(&v, &["ls", &file], &[&file, "not a UnixFS directory"]);
    rejects(&v, &["cat", &format!("{file}/x")], &[&file, "directory"]);
}

#[test]
fn get_refuses_to_overwrite() {
    let v = seeded();
    v.write("d/a", b"new content");
    let root = v.add_q(&["-r", "d"]);
    v.write("existing", b"precious");
    fs::create_dir(v.path("existing-dir")).unwrap();
    rejects(&v, &["get", &root, "-o", "existing"], &["existing", "already exists"]);
    rejects(&v, &["get", &format!("{root}/a"), "-o", "existing"], &["existing", "already exists"]);
    rejects(&v, &["get", &root, "-o", "existing-dir"], &["existing-dir", "already exists"]);
    assert_eq!(fs::read(v.path("existing")).unwrap(), b"precious");
    assert_eq!(fs::read_dir(v.path("existing-dir")).unwrap().count(), 0);
    // A dangling symlink counts as existing too: get must not write through it.
    std::os::unix::fs::symlink("target-outside", v.path("trap")).unwrap();
    rejects(&v, &["get", &format!("{root}/a"), "-o", "trap"], &["trap", "already exists"]);
    assert!(!v.path("target-outside").exists());
}

/// A CAR of a directory holding a multi-chunk file, and its sections.
fn car_fixture() -> (Vouch, String, Vec<u8>) {
    let a = Vouch::new();
    a.write("d/f", &random_bytes(22, 600_000));
    a.write("d/g", b"g");
    let root = a.add_q(&["-r", "d"]);
    let car = a.ok_bytes(&["car", "export", &root]);
    (a, root, car)
}

#[test]
fn truncated_cars() {
    let (_a, _root, car) = car_fixture();
    let (header_end, sections) = car_sections(&car);
    let big = sections.iter().max_by_key(|s| s.end - s.data).unwrap();
    assert!(big.end - big.data > 262_144, "a full leaf section");
    let last = sections.last().unwrap();
    let cuts = [
        (1, "truncated"),                        // inside the header
        (header_end / 2, "truncated"),           // mid-header
        (header_end, "incomplete"),              // header only: a valid CAR missing every block
        (big.start + 1, "truncated"),            // inside a section's length varint
        (big.start + 5, "truncated"),            // inside the CID
        ((big.data + big.end) / 2, "truncated"), // mid-block
        (big.end, "incomplete"),                 // on a section boundary
        (last.end - 1, "truncated"),             // one byte short
    ];
    let v = seeded();
    for (i, (cut, what)) in cuts.into_iter().enumerate() {
        let name = format!("cut{i}.car");
        v.write(&name, &car[..cut]);
        rejects(&v, &["car", "import", &name], &[&name, what]);
    }
    v.write("empty.car", b"");
    rejects(&v, &["car", "import", "empty.car"], &["empty.car", "empty"]);
    rejects(&v, &["car", "import", "no-such.car"], &["no-such.car"]);
}

#[test]
fn car_with_a_flipped_byte_names_the_block() {
    let (_a, root, car) = car_fixture();
    let (_, sections) = car_sections(&car);
    let v = seeded();
    // Flip a byte in the first leaf, then in the root block.
    for (i, s) in [&sections[2], &sections[0]].into_iter().enumerate() {
        let mut bad = car.clone();
        bad[(s.data + s.end) / 2] ^= 0x20;
        let name = format!("flip{i}.car");
        v.write(&name, &bad);
        rejects(&v, &["car", "import", &name], &[&s.cid, "hash"]);
        // Not pinning does not make a corrupt CAR acceptable.
        rejects(&v, &["car", "import", "--pin-roots=false", &name], &[&s.cid]);
    }
    assert_eq!(sections[0].cid, root);
}

#[test]
fn car_with_an_incomplete_dag_imports_nothing() {
    let (_a, root, car) = car_fixture();
    let (header_end, sections) = car_sections(&car);
    // Drop one leaf of the file.
    let gone = &sections[3];
    let mut holed = car[..header_end].to_vec();
    for s in &sections {
        if s.cid != gone.cid {
            holed.extend_from_slice(&car[s.start..s.end]);
        }
    }
    let v = seeded();
    v.write("holed.car", &holed);
    rejects(&v, &["car", "import", "holed.car"], &[&root, &gone.cid, "incomplete"]);
    assert!(v.err(&["cat", &format!("{root}/g")]).contains("not found"));
}
