//! vouch-store integration tests: visibility, crash leftovers, corruption, pins, GC.

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use vouch_dag::block::{RAW, cid_of};
use vouch_dag::file::import_bytes;
use vouch_dag::{BlockSink, Cid, Params};
use vouch_store::{Store, StoreError};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    (dir, s)
}

fn pack_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir.join("packs")).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// A file of `len` bytes derived from `seed`, imported with small chunks so it has many blocks.
fn add_file(s: &Store, seed: u8, len: usize, pin: bool) -> Cid {
    let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    let params = Params { chunk_size: 1024, max_links: 4, ..Params::default() };
    let mut b = s.batch().unwrap();
    let root = import_bytes(&params, &data, &mut b).unwrap();
    if pin {
        b.pin(root.cid);
    }
    b.commit().unwrap();
    root.cid
}

#[test]
fn nothing_is_visible_before_commit_and_drop_discards() {
    let (dir, s) = store();
    let data = b"some block";
    let cid = cid_of(RAW, data, false);
    let mut b = s.batch().unwrap();
    b.put(&cid, data).unwrap();
    assert!(!s.has(&cid).unwrap(), "visible before commit");
    drop(b);
    assert!(!s.has(&cid).unwrap());
    assert!(pack_files(dir.path()).is_empty(), "an abandoned batch leaves its pack behind");
    let mut b = s.batch().unwrap();
    b.put(&cid, data).unwrap();
    let stats = b.commit().unwrap();
    assert_eq!((stats.blocks, stats.bytes), (1, data.len() as u64));
    assert_eq!(s.get(&cid).unwrap(), data);
    // Reopening sees the same content.
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.get(&cid).unwrap(), data);
}

#[test]
fn duplicate_blocks_are_stored_once() {
    let (_d, s) = store();
    let a = add_file(&s, 1, 10_000, true);
    let before = s.stats().unwrap();
    let again = add_file(&s, 1, 10_000, true);
    assert_eq!(a, again);
    let after = s.stats().unwrap();
    assert_eq!(before.blocks, after.blocks);
    assert_eq!(before.pack_bytes, after.pack_bytes, "a fully duplicate batch wrote a pack");
}

/// A batch skips a block it knows is stored without asking the index again; a GC anywhere
/// (here through a second handle, as another process would) must make it forget.
#[test]
fn a_block_removed_by_gc_elsewhere_is_written_again() {
    let (dir, s) = store();
    let data = b"remembered as stored";
    let cid = cid_of(RAW, data, true);
    for _ in 0..2 {
        let mut b = s.batch().unwrap();
        b.put(&cid, data).unwrap();
        assert!(b.has(&cid).unwrap());
        b.commit().unwrap();
    }
    // Unpinned: another handle's GC removes it.
    let other = Store::open(dir.path()).unwrap();
    assert_eq!(other.gc().unwrap().removed, vec![cid]);
    assert!(!s.has(&cid).unwrap());
    let mut b = s.batch().unwrap();
    assert!(!b.has(&cid).unwrap(), "a batch after the GC still believed the block stored");
    b.put(&cid, data).unwrap();
    b.pin(cid);
    b.commit().unwrap();
    assert_eq!(s.get(&cid).unwrap(), data);
}

/// `put_new` skips the index lookup: a block that was stored after all keeps its first copy,
/// and GC reclaims the second.
#[test]
fn put_new_of_a_stored_block_keeps_one_copy_and_gc_reclaims_the_other() {
    let (dir, s) = store();
    let data = vec![7u8; 5000];
    let cid = cid_of(RAW, &data, true);
    let mut b = s.batch().unwrap();
    b.put_new(&cid, &data).unwrap();
    b.pin(cid);
    assert_eq!(b.commit().unwrap().blocks, 1);
    let once = s.stats().unwrap();
    let mut b = s.batch().unwrap();
    b.put_new(&cid, &data).unwrap();
    assert_eq!(b.commit().unwrap().blocks, 0, "the duplicate was indexed twice");
    let twice = s.stats().unwrap();
    assert_eq!((twice.blocks, twice.block_bytes), (once.blocks, once.block_bytes));
    assert!(twice.pack_bytes > once.pack_bytes + 5000);
    assert_eq!(pack_files(dir.path()).len(), 2);
    assert!(s.gc().unwrap().bytes_freed > 5000);
    assert_eq!(s.stats().unwrap().pack_bytes, once.pack_bytes);
    assert_eq!(s.get(&cid).unwrap(), data);
}

#[test]
fn a_corrupt_block_is_reported_with_its_cid_and_never_served() {
    let (dir, s) = store();
    let data = b"the bytes that will rot on disk".to_vec();
    let cid = cid_of(RAW, &data, false);
    let mut b = s.batch().unwrap();
    b.put(&cid, &data).unwrap();
    b.commit().unwrap();
    let pack = &pack_files(dir.path())[0];
    let mut bytes = fs::read(pack).unwrap();
    let at = bytes.windows(data.len()).position(|w| w == data).unwrap();
    bytes[at + 4] ^= 0x01;
    fs::write(pack, &bytes).unwrap();
    let s = Store::open(dir.path()).unwrap();
    match s.get(&cid) {
        Err(StoreError::Corrupt { cid: c, .. }) => assert_eq!(c, cid),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let msg = s.get(&cid).unwrap_err().to_string();
    assert!(msg.contains(&cid.to_string()) && msg.contains("corrupt"), "{msg}");
    let bad = s.verify_all().unwrap();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].0, cid);
}

#[test]
fn pin_add_refuses_an_incomplete_dag() {
    let (_d, s) = store();
    let root = add_file(&s, 2, 20_000, false);
    // Drop one leaf from the index by collecting garbage with no pins, then re-add only the root.
    let all = collect(&s, &root);
    s.gc().unwrap();
    let mut b = s.batch().unwrap();
    let (rc, rd) = &all[0];
    b.put(rc, rd).unwrap();
    b.commit().unwrap();
    match s.pin_add(&root) {
        Err(StoreError::Incomplete { root: r, missing }) => {
            assert_eq!(r, root);
            assert!(all.iter().any(|(c, _)| *c == missing));
        }
        other => panic!("expected Incomplete, got {other:?}"),
    }
    assert!(s.pins().unwrap().is_empty());
}

fn collect(s: &Store, root: &Cid) -> Vec<(Cid, Vec<u8>)> {
    let mut out = Vec::new();
    vouch_dag::car::walk_dag(s, root, |c, d| {
        out.push((*c, d.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn gc_keeps_pinned_dags_and_reclaims_the_rest() {
    let (dir, s) = store();
    let keep = add_file(&s, 3, 50_000, true);
    let drop_me = add_file(&s, 4, 50_000, false);
    let keep_blocks = collect(&s, &keep);
    let drop_blocks = collect(&s, &drop_me);
    let before = s.stats().unwrap();
    let gc = s.gc().unwrap();
    let removed: std::collections::HashSet<Cid> = gc.removed.iter().copied().collect();
    let expected: std::collections::HashSet<Cid> = drop_blocks.iter().map(|(c, _)| *c).collect();
    assert_eq!(removed, expected);
    let after = s.stats().unwrap();
    assert_eq!(before.pack_bytes - after.pack_bytes, gc.bytes_freed);
    assert!(gc.bytes_freed >= drop_blocks.iter().map(|(_, d)| d.len() as u64).sum::<u64>());
    for (c, d) in &keep_blocks {
        assert_eq!(&s.get(c).unwrap(), d);
    }
    assert!(matches!(s.get(&drop_me), Err(StoreError::NotFound { .. })));
    // Unpin and collect again: everything goes, and so do the packs.
    s.pin_rm(&keep).unwrap();
    s.gc().unwrap();
    assert_eq!(s.stats().unwrap().blocks, 0);
    assert!(pack_files(dir.path()).is_empty());
}

#[test]
fn gc_compacts_a_pack_holding_live_and_dead_blocks() {
    let (dir, s) = store();
    let params = Params { chunk_size: 1000, ..Params::default() };
    let mut b = s.batch().unwrap();
    let live = import_bytes(&params, &[7u8; 5000], &mut b).unwrap();
    let varied: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let dead = import_bytes(&params, &varied, &mut b).unwrap();
    b.pin(live.cid);
    b.commit().unwrap();
    let size_before: u64 = pack_files(dir.path()).iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    let gc = s.gc().unwrap();
    assert!(!gc.removed.is_empty());
    let packs = pack_files(dir.path());
    assert_eq!(packs.len(), 1);
    let size_after = fs::metadata(&packs[0]).unwrap().len();
    assert!(size_after < size_before / 4, "{size_after} vs {size_before}");
    let mut out = Vec::new();
    vouch_dag::export::read_file(&s, &live.cid, &mut out).unwrap();
    assert_eq!(out, vec![7u8; 5000]);
    assert!(!s.has(&dead.cid).unwrap());
}

#[test]
fn gc_removes_orphan_packs_from_crashed_writers_but_not_live_ones() {
    let (dir, s) = store();
    let keep = add_file(&s, 5, 3000, true);
    // What a writer killed before its commit leaves: a pack no index row names.
    fs::write(dir.path().join("packs").join("crashed.pack"), vec![0u8; 4096]).unwrap();
    // A writer in progress (in another "process": its own Store handle) holds its pack locked.
    let other = Store::open(dir.path()).unwrap();
    let data = b"in flight";
    let cid = cid_of(RAW, data, false);
    let mut inflight = other.batch().unwrap();
    inflight.put(&cid, data).unwrap();
    // GC refuses to run beside a writer...
    assert!(matches!(s.gc(), Err(StoreError::Locked(_))));
    inflight.commit().unwrap();
    let gc = s.gc().unwrap();
    assert!(gc.bytes_freed >= 4096);
    assert!(!dir.path().join("packs/crashed.pack").exists());
    assert!(s.has(&keep).unwrap());
}

#[test]
fn readers_keep_working_while_a_batch_is_open() {
    let (dir, s) = store();
    let cid = add_file(&s, 6, 30_000, true);
    let writer = Store::open(dir.path()).unwrap();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut b = writer.batch().unwrap();
            import_bytes(&Params::default(), &vec![1u8; 3 << 20], &mut b).unwrap();
            b.commit().unwrap();
        });
        for _ in 0..50 {
            let mut out = Vec::new();
            vouch_dag::export::read_file(&s, &cid, &mut out).unwrap();
            assert_eq!(out.len(), 30_000);
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// GC keeps exactly the blocks reachable from pins, whatever was added and pinned.
    #[test]
    fn gc_keeps_exactly_the_reachable_set(files in prop::collection::vec((any::<u8>(), 0usize..6000, any::<bool>()), 1..6)) {
        let (_d, s) = store();
        let mut expect_live = std::collections::HashSet::new();
        let mut roots = Vec::new();
        for (seed, len, pin) in &files {
            let root = add_file(&s, *seed, *len, *pin);
            roots.push(root);
        }
        for (root, (_, _, pin)) in roots.iter().zip(&files) {
            if *pin {
                expect_live.extend(collect(&s, root).into_iter().map(|(c, _)| c));
            }
        }
        s.gc().unwrap();
        let stats = s.stats().unwrap();
        prop_assert_eq!(stats.blocks as usize, expect_live.len());
        for c in &expect_live {
            prop_assert!(s.get(c).is_ok());
        }
    }
}

#[test]
fn blocks_are_keyed_by_multihash_like_kubo() {
    let (_d, s) = store();
    let block = vouch_dag::dagpb::encode(&[], Some(b"\x08\x01"));
    let v0 = vouch_dag::block::cid_of(vouch_dag::block::DAG_PB, &block, true);
    let v1 = vouch_dag::block::cid_of(vouch_dag::block::DAG_PB, &block, false);
    let raw = cid_of(RAW, &block, false);
    let mut b = s.batch().unwrap();
    b.put(&v1, &block).unwrap();
    b.put(&v0, &block).unwrap();
    let stats = b.commit().unwrap();
    assert_eq!(stats.blocks, 1, "the same bytes under two CIDs were stored twice");
    for c in [v0, v1, raw] {
        assert_eq!(s.get(&c).unwrap(), block, "{c}");
    }
    // A pin through the CIDv0 keeps the block stored under the CIDv1.
    s.pin_add(&v0).unwrap();
    assert!(s.gc().unwrap().removed.is_empty());
    assert!(s.has(&v1).unwrap());
}

#[test]
fn a_store_of_another_format_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join("index.sqlite")).unwrap();
        // A pre-release layout: tables present, no format number.
        c.execute_batch("CREATE TABLE blocks (cid BLOB PRIMARY KEY);").unwrap();
    }
    let err = Store::open(dir.path()).err().expect("opened a store of an unknown format");
    assert!(matches!(err, StoreError::Format { found: 0, expected: 1, .. }), "{err}");
    assert!(err.to_string().contains("store format 0"), "{err}");
    let other = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(other.path().join("index.sqlite")).unwrap();
        c.execute_batch("PRAGMA user_version = 7;").unwrap();
    }
    assert!(matches!(Store::open(other.path()), Err(StoreError::Format { found: 7, .. })));
}
