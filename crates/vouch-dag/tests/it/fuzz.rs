//! The fuzz targets' logic (`fuzz/src/lib.rs`) over a seed corpus, so CI runs it without
//! libFuzzer: seeds made from real imports (which must succeed), every truncation and a sweep
//! of byte flips of them (which must not panic), the committed corpus in `fuzz/seeds/`, any
//! crash inputs kept in `fuzz/regressions/`, and random bytes through proptest.

#[path = "../../../../fuzz/src/lib.rs"]
mod logic;

use std::path::PathBuf;

use proptest::prelude::*;
use vouch_dag::car::CarWriter;
use vouch_dag::file::{import_bytes, symlink};
use vouch_dag::{Cid, MemoryBlocks, Params, dir};

struct Sample {
    name: &'static str,
    blocks: Vec<(Cid, Vec<u8>)>,
    /// Bytes of the file, or names of the directory, at the root.
    file: Option<Vec<u8>>,
    entries: Option<Vec<String>>,
}

/// Small real DAGs of every node kind: multi-level file, raw leaves, CIDv1, flat directory,
/// HAMT shard (fanout 16 and 256), symlink.
fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    let content: Vec<u8> = (0..700u32).map(|i| (i * 7 % 251) as u8).collect();
    for (name, p) in [
        ("file_v0", Params { chunk_size: 100, max_links: 3, ..Params::default() }),
        ("file_v1_raw", Params { chunk_size: 100, max_links: 3, cid_v1: true, raw_leaves: true, ..Params::default() }),
    ] {
        let mut m = MemoryBlocks::default();
        let root = import_bytes(&p, &content, &mut m).unwrap();
        out.push(Sample {
            name,
            blocks: crate::dag_blocks(&m, &root.cid).unwrap(),
            file: Some(content.clone()),
            entries: None,
        });
    }
    for (name, p) in [
        ("dir_flat", Params::default()),
        ("dir_hamt16", Params { hamt_threshold: 1, hamt_fanout: 16, ..Params::default() }),
        ("dir_hamt256_v1", Params { hamt_threshold: 1, cid_v1: true, ..Params::default() }),
    ] {
        let mut m = MemoryBlocks::default();
        let mut entries = Vec::new();
        for i in 0..12 {
            let node = import_bytes(&p, format!("{i}\n").as_bytes(), &mut m).unwrap();
            entries.push((format!("f{i}"), node));
        }
        entries.push(("link".into(), symlink(&p, "f1", &mut m).unwrap()));
        let root = dir::directory(&p, entries.clone(), &mut m).unwrap();
        let mut names: Vec<String> = entries.into_iter().map(|(n, _)| n).collect();
        names.sort();
        out.push(Sample { name, blocks: crate::dag_blocks(&m, &root.cid).unwrap(), file: None, entries: Some(names) });
    }
    out
}

fn car_of(s: &Sample) -> Vec<u8> {
    let mut w = CarWriter::new(Vec::new(), &[s.blocks[0].0]).unwrap();
    for (c, b) in &s.blocks {
        w.write(c, b).unwrap();
    }
    w.finish().unwrap()
}

/// Every input derived from `seed` by truncation, and by flipping each byte (all bits, then the
/// low bit) at up to 64 evenly spread positions.
fn mutations(seed: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let truncations = (0..seed.len()).map(|n| seed[..n].to_vec());
    let step = seed.len().div_ceil(64).max(1);
    let flips = (0..seed.len()).step_by(step).flat_map(move |i| {
        [0xff, 0x01].map(|x| {
            let mut m = seed.to_vec();
            m[i] ^= x;
            m
        })
    });
    truncations.chain(flips)
}

#[test]
fn car_reader_seeds() {
    for s in samples() {
        let car = car_of(&s);
        assert_eq!(logic::car_reader(&car).unwrap(), s.blocks.len(), "{}", s.name);
        for m in mutations(&car) {
            let _ = logic::car_reader(&m);
        }
    }
}

#[test]
fn dagpb_unixfs_seeds() {
    for s in samples() {
        for (cid, bytes) in s.blocks.iter().filter(|(c, _)| c.codec() == vouch_dag::block::DAG_PB) {
            logic::dagpb_unixfs(bytes).unwrap_or_else(|e| panic!("{} {cid}: {e}", s.name));
            for m in mutations(bytes) {
                let _ = logic::dagpb_unixfs(&m);
            }
        }
    }
}

#[test]
fn export_file_seeds() {
    for s in samples() {
        let input = logic::input_from_blocks(&s.blocks);
        assert_eq!(logic::blocks_from_input(&input), s.blocks, "{}: the seed encoding round-trips", s.name);
        let o = logic::export_file(&input);
        assert_eq!(o.walked, s.blocks.len(), "{}", s.name);
        assert_eq!(o.file, s.file, "{}", s.name);
        // Sharded directories list in shard order.
        let sorted = o.entries.map(|mut e| {
            e.sort();
            e
        });
        assert_eq!(sorted, s.entries, "{}", s.name);
        for m in mutations(&input) {
            let _ = logic::export_file(&m);
        }
    }
}

/// A diamond DAG the harness must not walk path by path: 40 nodes each linking the next twice
/// stand for 2^40 leaf visits.
#[test]
fn export_file_bounds_shared_subtrees() {
    use vouch_dag::dagpb::{PbLink, encode};
    use vouch_dag::unixfs::{DataType, UnixFs};
    let mut blocks: Vec<(Cid, Vec<u8>)> = Vec::new();
    let leaf = b"x".to_vec();
    let mut child = (vouch_dag::block::cid_of(vouch_dag::block::RAW, &leaf, false), leaf);
    for _ in 0..40 {
        let mut u = UnixFs::new(DataType::File);
        u.filesize = Some(2);
        let b = encode(&[PbLink::new(child.0, "", 1), PbLink::new(child.0, "", 1)], Some(&u.encode()));
        blocks.insert(0, child);
        child = (vouch_dag::block::cid_of(vouch_dag::block::DAG_PB, &b, true), b);
    }
    blocks.insert(0, child);
    assert!(logic::tree_visits(&blocks) > logic::MAX_VISITS);
    let o = logic::export_file(&logic::input_from_blocks(&blocks));
    assert_eq!(o.walked, 41);
    assert_eq!(o.file, None, "skipped, not walked 2^40 times");
}

fn corpus_files(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz").join(dir);
    let mut out = Vec::new();
    for target in ["car_reader", "dagpb_unixfs", "export_file"] {
        let Ok(rd) = std::fs::read_dir(root.join(target)) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// Run the target named by the file's directory; `Err` only if the input was rejected.
fn run_target(path: &std::path::Path, data: &[u8]) -> Result<(), String> {
    match path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()) {
        Some("car_reader") => logic::car_reader(data).map(drop).map_err(|e| e.to_string()),
        Some("dagpb_unixfs") => logic::dagpb_unixfs(data).map_err(|e| e.to_string()),
        Some("export_file") => {
            logic::export_file(data);
            Ok(())
        }
        other => panic!("unknown target {other:?}"),
    }
}

/// The committed seeds (written by `write_fuzz_seeds`: all valid input) and every kept crash
/// input (which must no longer crash).
#[test]
fn committed_corpus_and_regressions() {
    let seeds = corpus_files("seeds");
    assert!(seeds.len() >= 3, "fuzz/seeds/ holds the committed seed corpus");
    for (path, data) in &seeds {
        run_target(path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    for (path, data) in &corpus_files("regressions") {
        let _ = run_target(path, data);
    }
}

/// Regenerate `fuzz/seeds/` from `samples()`: `cargo test -p vouch-dag --test it -- --ignored
/// write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    for t in ["car_reader", "dagpb_unixfs", "export_file"] {
        std::fs::create_dir_all(root.join(t)).unwrap();
    }
    // A CAR from another implementation, with two roots (small enough to fuzz from).
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/car/js-written-2roots.car");
    std::fs::copy(js, root.join("car_reader/js-written-2roots")).unwrap();
    for s in samples() {
        std::fs::write(root.join("car_reader").join(s.name), car_of(&s)).unwrap();
        std::fs::write(root.join("export_file").join(s.name), logic::input_from_blocks(&s.blocks)).unwrap();
        for (i, (_, b)) in s.blocks.iter().enumerate().filter(|(_, (c, _))| c.codec() == 0x70).take(3) {
            std::fs::write(root.join("dagpb_unixfs").join(format!("{}_{i}", s.name)), b).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn targets_never_panic_on_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = logic::car_reader(&data);
        let _ = logic::dagpb_unixfs(&data);
        let _ = logic::export_file(&data);
    }
}
