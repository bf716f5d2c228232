//! Property tests of every round trip: file import → export, directory trees (flat and forced
//! HAMT shards of several fanouts) → list/lookup/resolve, CAR write → read, dag-pb and UnixFS
//! encode → decode. Expected values come from the generated input, never from the code under
//! test.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vouch_dag::block::{DAG_CBOR, DAG_PB, RAW, cid_of};
use vouch_dag::car::{CarReader, CarWriter};
use vouch_dag::dagpb::{PbLink, PbNode, encode};
use vouch_dag::export::{self, Kind};
use vouch_dag::file::{FileImporter, Node, import_bytes, symlink};
use vouch_dag::unixfs::{DataType, UnixFs};
use vouch_dag::{BlockSource, Cid, MemoryBlocks, Params, dir};

fn file_params() -> impl Strategy<Value = Params> {
    (1usize..=4096, 2usize..=8, any::<bool>(), any::<bool>()).prop_map(|(chunk_size, max_links, raw_leaves, cid_v1)| {
        Params { chunk_size, max_links, raw_leaves, cid_v1, ..Params::default() }
    })
}

/// Depth (edges from root to leaves) of the balanced layout for `leaves` leaves.
fn balanced_depth(leaves: u64, max_links: u64) -> u32 {
    let mut depth = 0;
    let mut cap = 1u64;
    while cap < leaves {
        cap = cap.saturating_mul(max_links);
        depth += 1;
    }
    depth
}

/// Walk a file DAG checking the balanced layout's shape; returns (leaf depths, tsize computed
/// from block lengths with multiplicity).
fn check_file_shape(blocks: &MemoryBlocks, node: &Cid, p: &Params, depth: u32, leaf_depths: &mut Vec<u32>) -> u64 {
    let bytes = blocks.get(node).unwrap();
    if node.codec() == RAW {
        assert!(p.raw_leaves, "raw block only with raw leaves");
        leaf_depths.push(depth);
        return bytes.len() as u64;
    }
    assert_eq!(node.version() == cid::Version::V1, p.cid_v1, "dag-pb node CID version");
    let pb = PbNode::decode(node, &bytes).unwrap();
    let u = UnixFs::decode(node, pb.data.unwrap()).unwrap();
    assert_eq!(u.kind, DataType::File);
    if pb.links.is_empty() {
        leaf_depths.push(depth);
        assert_eq!(u.filesize, Some(u.data.map_or(0, |d| d.len() as u64)));
        return bytes.len() as u64;
    }
    assert!(pb.links.len() <= p.max_links, "{} links > max {}", pb.links.len(), p.max_links);
    assert_eq!(u.blocksizes.len(), pb.links.len());
    assert_eq!(u.filesize, Some(u.blocksizes.iter().sum()));
    let mut total = bytes.len() as u64;
    for (l, bs) in pb.links.iter().zip(&u.blocksizes) {
        assert_eq!(l.name.as_deref(), Some(""), "Kubo writes an empty name on file links");
        let sub = check_file_shape(blocks, &l.cid, p, depth + 1, leaf_depths);
        assert_eq!(l.tsize, Some(sub), "link Tsize is the subtree's block bytes");
        let mut child = Vec::new();
        assert_eq!(export::read_file(blocks, &l.cid, &mut child).unwrap(), *bs, "blocksize = child's bytes");
        total += sub;
    }
    total
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn file_round_trip(data in proptest::collection::vec(any::<u8>(), 0..24_000), p in file_params()) {
        let mut blocks = MemoryBlocks::default();
        let root = import_bytes(&p, &data, &mut blocks).unwrap();
        let mut out = Vec::new();
        prop_assert_eq!(export::read_file(&blocks, &root.cid, &mut out).unwrap(), data.len() as u64);
        prop_assert_eq!(&out, &data);
        prop_assert_eq!(root.filesize, data.len() as u64);
        prop_assert_eq!(export::stat(&blocks, &root.cid).unwrap(), Kind::File { size: data.len() as u64 });

        let mut depths = Vec::new();
        let tsize = check_file_shape(&blocks, &root.cid, &p, 0, &mut depths);
        prop_assert_eq!(root.tsize, tsize);
        let leaves = (data.len() as u64).div_ceil(p.chunk_size as u64).max(1);
        prop_assert_eq!(depths.len() as u64, leaves);
        let want = balanced_depth(leaves, p.max_links as u64);
        prop_assert!(depths.iter().all(|d| *d == want), "leaf depths {:?}, want all {}", depths, want);
    }

    /// Streaming in pieces of any size gives the same DAG as one call.
    #[test]
    fn streaming_import_matches_whole(
        data in proptest::collection::vec(any::<u8>(), 0..6_000),
        cuts in proptest::collection::vec(0usize..6_000, 0..8),
        p in file_params(),
    ) {
        let whole = import_bytes(&p, &data, &mut vouch_dag::Discard).unwrap();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.sort();
        let mut imp = FileImporter::new(&p);
        let mut sink = MemoryBlocks::default();
        let mut at = 0;
        for c in cuts.into_iter().chain([data.len()]) {
            imp.write(&data[at..c], &mut sink).unwrap();
            at = c;
        }
        prop_assert_eq!(imp.finish(&mut sink).unwrap(), whole);
    }
}

/// A random directory tree.
#[derive(Clone, Debug)]
enum Tree {
    File(Vec<u8>),
    Symlink(String),
    Dir(BTreeMap<String, Tree>),
}

fn name() -> impl Strategy<Value = String> {
    // Letters, digits, punctuation, multi-byte UTF-8; never "", ".", ".." or containing '/'.
    "[a-zA-Z0-9._~ é日-]{1,10}".prop_filter("reserved", |n| n != "." && n != "..")
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Tree::File),
        1 => "[a-z/.]{0,20}".prop_map(Tree::Symlink),
    ];
    leaf.prop_recursive(3, 80, 24, |inner| proptest::collection::btree_map(name(), inner, 0..24).prop_map(Tree::Dir))
}

fn dir_params() -> impl Strategy<Value = Params> {
    (
        prop_oneof![1usize..=200, Just(usize::MAX / 2)],
        prop::sample::select(vec![2usize, 4, 8, 16, 32, 256]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(hamt_threshold, hamt_fanout, cid_v1, block_estimate, shard_at_threshold)| Params {
            hamt_threshold,
            hamt_fanout,
            cid_v1,
            raw_leaves: cid_v1,
            chunk_size: 64,
            max_links: 3,
            hamt_estimate: if block_estimate { vouch_dag::HamtEstimate::Block } else { vouch_dag::HamtEstimate::Links },
            shard_at_threshold,
        })
}

fn import_tree(t: &Tree, p: &Params, blocks: &mut MemoryBlocks) -> Node {
    match t {
        Tree::File(d) => import_bytes(p, d, blocks).unwrap(),
        Tree::Symlink(s) => symlink(p, s, blocks).unwrap(),
        Tree::Dir(children) => {
            let entries = children.iter().map(|(n, c)| (n.clone(), import_tree(c, p, blocks))).collect();
            dir::directory(p, entries, blocks).unwrap()
        }
    }
}

/// Check a HAMT shard's structure against the UnixFS spec, independently of the reader: the
/// bitfield names exactly the occupied slots, link names are the slot in uppercase hex of the
/// fanout's width (plus the entry name for values), links are in slot order, and every value
/// sits in the slot its name's murmur3 hash selects at this depth. Returns the entry names.
fn check_shard(blocks: &MemoryBlocks, cid: &Cid, p: &Params, depth: usize, names: &mut Vec<String>) {
    let bytes = blocks.get(cid).unwrap();
    let pb = PbNode::decode(cid, &bytes).unwrap();
    let u = UnixFs::decode(cid, pb.data.unwrap()).unwrap();
    assert_eq!(u.kind, DataType::HamtShard);
    assert_eq!(u.fanout, Some(p.hamt_fanout as u64));
    assert_eq!(u.hash_type, Some(0x22));
    let width = format!("{:X}", p.hamt_fanout - 1).len();
    let bits = p.hamt_fanout.trailing_zeros() as usize;
    let field = u.data.unwrap_or_default();
    let occupied: Vec<usize> = (0..p.hamt_fanout)
        .filter(|i| i / 8 < field.len() && field[field.len() - 1 - i / 8] & (1 << (i % 8)) != 0)
        .collect();
    assert!(field.first().is_none_or(|b| *b != 0), "bitfield has no leading zero byte");
    let mut slots = Vec::new();
    for l in &pb.links {
        let n = l.name();
        let slot = usize::from_str_radix(&n[..width], 16).unwrap();
        assert_eq!(&n[..width], format!("{slot:0width$X}"), "uppercase, zero-padded slot");
        slots.push(slot);
        if n.len() == width {
            check_shard(blocks, &l.cid, p, depth + 1, names);
        } else {
            let entry = &n[width..];
            let h = u64::from_be_bytes(dir::hamt_hash(entry));
            assert_eq!(((h << (depth * bits)) >> (64 - bits)) as usize, slot, "{entry} in the wrong slot");
            names.push(entry.to_string());
        }
    }
    assert_eq!(slots, occupied, "bitfield and links name the same slots, in order");
}

/// Check `t` against what the reader finds at `cid`, with `path` for messages.
fn check_tree(blocks: &MemoryBlocks, cid: &Cid, t: &Tree, p: &Params, path: &str) {
    match t {
        Tree::File(d) => {
            let mut out = Vec::new();
            export::read_file(blocks, cid, &mut out).unwrap();
            assert_eq!(&out, d, "{path}");
        }
        Tree::Symlink(s) => {
            assert_eq!(export::stat(blocks, cid).unwrap(), Kind::Symlink { target: s.clone() }, "{path}");
            assert!(matches!(
                export::read_file(blocks, cid, &mut Vec::new()),
                Err(vouch_dag::DagError::WrongKind { .. })
            ));
        }
        Tree::Dir(children) => {
            let kind = export::stat(blocks, cid).unwrap();
            let listed = export::list(blocks, cid).unwrap();
            let mut names: Vec<String> = listed.iter().map(|e| e.name.clone()).collect();
            match kind {
                Kind::Directory => {
                    // Flat directories keep their links sorted by name, bytewise.
                    assert!(names.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()), "{path}: {names:?}");
                }
                Kind::ShardedDirectory => {
                    let mut in_shard = Vec::new();
                    check_shard(blocks, cid, p, 0, &mut in_shard);
                    assert_eq!(in_shard, names, "{path}: list walks the shard in order");
                    names.sort();
                }
                k => panic!("{path}: a directory stats as {k:?}"),
            }
            let want: Vec<&String> = children.keys().collect();
            assert_eq!(names.iter().collect::<Vec<_>>(), want, "{path}");
            for (n, child) in children {
                let e = export::lookup(blocks, cid, n).unwrap().unwrap_or_else(|| panic!("{path}/{n} not found"));
                assert_eq!(&e.name, n);
                assert_eq!(listed.iter().find(|l| &l.name == n).unwrap().cid, e.cid);
                check_tree(blocks, &e.cid, child, p, &format!("{path}/{n}"));
            }
            assert_eq!(export::lookup(blocks, cid, "no such entry \u{1F600}").unwrap(), None);
        }
    }
}

/// Every path of `t` (files, symlinks, dirs) with its subtree.
fn paths<'a>(t: &'a Tree, prefix: String, out: &mut Vec<(String, &'a Tree)>) {
    if let Tree::Dir(c) = t {
        for (n, child) in c {
            let p = if prefix.is_empty() { n.clone() } else { format!("{prefix}/{n}") };
            out.push((p.clone(), child));
            paths(child, p, out);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn directory_round_trip(
        children in proptest::collection::btree_map(name(), tree(), 0..40),
        p in dir_params(),
    ) {
        let t = Tree::Dir(children);
        let mut blocks = MemoryBlocks::default();
        let root = import_tree(&t, &p, &mut blocks);
        check_tree(&blocks, &root.cid, &t, &p, "");
        // resolve() agrees with importing each subtree on its own (CIDs are content-derived),
        // also through `split_path` of "/ipfs/<root>/<path>".
        let mut all = Vec::new();
        paths(&t, String::new(), &mut all);
        for (path, sub) in all {
            let want = import_tree(sub, &p, &mut MemoryBlocks::default()).cid;
            prop_assert_eq!(export::resolve(&blocks, &root.cid, &path).unwrap(), want);
            let (r, rest) = export::split_path(&format!("/ipfs/{}/{path}", root.cid)).unwrap();
            prop_assert_eq!(export::resolve(&blocks, &r, &rest).unwrap(), want);
        }
        let Tree::Dir(c) = &t else { unreachable!() };
        if p.hamt_threshold == 1 && !c.is_empty() {
            prop_assert_eq!(export::stat(&blocks, &root.cid).unwrap(), Kind::ShardedDirectory);
        }
        if p.hamt_threshold > 1 << 40 {
            prop_assert_eq!(export::stat(&blocks, &root.cid).unwrap(), Kind::Directory);
        }
        // Insertion order does not matter.
        let entries: Vec<(String, Node)> = c.iter().rev().map(|(n, s)| (n.clone(), import_tree(s, &p, &mut MemoryBlocks::default()))).collect();
        prop_assert_eq!(dir::directory(&p, entries, &mut MemoryBlocks::default()).unwrap(), root);
    }
}

fn any_cid() -> impl Strategy<Value = Cid> {
    (proptest::collection::vec(any::<u8>(), 0..40), prop::sample::select(vec![DAG_PB, RAW, DAG_CBOR]), any::<bool>())
        .prop_map(|(d, codec, v0)| cid_of(codec, &d, v0))
}

fn pb_link() -> impl Strategy<Value = PbLink> {
    (any_cid(), proptest::option::of("\\PC{0,12}"), proptest::option::of(any::<u64>()))
        .prop_map(|(cid, name, tsize)| PbLink { cid, name, tsize })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn dagpb_round_trip(
        links in proptest::collection::vec(pb_link(), 0..8),
        data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
    ) {
        let bytes = encode(&links, data.as_deref());
        let c = cid_of(DAG_PB, &bytes, false);
        let node = PbNode::decode(&c, &bytes).unwrap();
        prop_assert_eq!(&node.links, &links);
        prop_assert_eq!(node.data, data.as_deref());
        prop_assert_eq!(encode(&node.links, node.data), bytes.clone());
        // The DAG-JSON view names the same links.
        let j = vouch_dag::json::to_json(&c, &bytes).unwrap();
        prop_assert_eq!(j["Links"].as_array().unwrap().len(), links.len());
        prop_assert_eq!(j.get("Data").is_some(), data.is_some());
        prop_assert_eq!(vouch_dag::block::links(&c, &bytes).unwrap(), links.iter().map(|l| l.cid).collect::<Vec<_>>());
    }

    #[test]
    fn unixfs_round_trip(
        kind in prop::sample::select(vec![DataType::Raw, DataType::Directory, DataType::File, DataType::Metadata, DataType::Symlink, DataType::HamtShard]),
        data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        filesize in proptest::option::of(any::<u64>()),
        blocksizes in proptest::collection::vec(any::<u64>(), 0..6),
        hash_type in proptest::option::of(any::<u64>()),
        fanout in proptest::option::of(any::<u64>()),
        mode in proptest::option::of(any::<u32>()),
        mtime in proptest::option::of((any::<i64>(), any::<u32>())),
    ) {
        let mut u = UnixFs::new(kind);
        u.data = data.as_deref();
        u.filesize = filesize;
        u.blocksizes = blocksizes;
        u.hash_type = hash_type;
        u.fanout = fanout;
        u.mode = mode;
        u.mtime = mtime;
        let bytes = u.encode();
        let c = cid_of(DAG_PB, &bytes, true);
        prop_assert_eq!(UnixFs::decode(&c, &bytes).unwrap(), u);
    }
}

/// A CARv2 file around a CARv1 payload, with `pad` bytes between header and payload and an
/// (ignored) index after it.
fn carv2(v1: &[u8], pad: usize) -> Vec<u8> {
    let mut out = vec![0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02];
    let data_offset = (11 + 40 + pad) as u64;
    out.extend_from_slice(&[0; 16]); // characteristics
    out.extend_from_slice(&data_offset.to_le_bytes());
    out.extend_from_slice(&(v1.len() as u64).to_le_bytes());
    out.extend_from_slice(&(data_offset + v1.len() as u64).to_le_bytes()); // index offset
    out.extend(std::iter::repeat_n(0u8, pad));
    out.extend_from_slice(v1);
    out.extend_from_slice(b"\x81\x08not-a-real-index"); // after data_size: never read
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn car_round_trip(
        data in proptest::collection::vec(any::<u8>(), 0..5_000),
        p in file_params(),
        extra_roots in proptest::collection::vec(any_cid(), 0..3),
        pad in 0usize..16,
    ) {
        let mut blocks = MemoryBlocks::default();
        let root = import_bytes(&p, &data, &mut blocks).unwrap();
        let dag = crate::dag_blocks(&blocks, &root.cid).unwrap();
        let mut roots = vec![root.cid];
        roots.extend(extra_roots);
        let mut w = CarWriter::new(Vec::new(), &roots).unwrap();
        for (c, b) in &dag {
            w.write(c, b).unwrap();
        }
        let car = w.finish().unwrap();
        for bytes in [car.clone(), carv2(&car, pad)] {
            let mut r = CarReader::new(&bytes[..]).unwrap();
            prop_assert_eq!(r.roots(), &roots[..]);
            let back: Vec<(Cid, Vec<u8>)> = r.by_ref().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(&back, &dag);
        }
        // Importing straight into a CAR (the writer as a BlockSink) holds the same DAG.
        let mut w = CarWriter::new(Vec::new(), &[root.cid]).unwrap();
        prop_assert_eq!(import_bytes(&p, &data, &mut w).unwrap(), root);
        let car = w.finish().unwrap();
        let mut from_car = MemoryBlocks::default();
        for b in CarReader::new(&car[..]).unwrap() {
            let (c, d) = b.unwrap();
            from_car.blocks.insert(c, d);
        }
        let mut out = Vec::new();
        export::read_file(&from_car, &root.cid, &mut out).unwrap();
        prop_assert_eq!(out, data);
    }
}

#[test]
fn walk_dag_is_dfs_preorder_each_block_once() {
    // A directory holding the same file twice and a subdirectory: the file's blocks appear once.
    let p = Params { chunk_size: 10, max_links: 2, ..Params::default() };
    let mut m = MemoryBlocks::default();
    let f = import_bytes(&p, &[7u8; 45], &mut m).unwrap(); // 5 leaves, 4 of them identical
    let sub = dir::directory(&p, vec![("f".into(), f)], &mut m).unwrap();
    let root = dir::directory(&p, vec![("a".into(), f), ("b".into(), f), ("s".into(), sub)], &mut m).unwrap();
    let order: Vec<Cid> = crate::dag_blocks(&m, &root.cid).unwrap().into_iter().map(|(c, _)| c).collect();
    assert_eq!(order[0], root.cid);
    assert_eq!(order[1], f.cid, "first link first");
    assert_eq!(*order.last().unwrap(), sub.cid, "the subdirectory after the whole file DAG");
    let unique: std::collections::HashSet<_> = order.iter().collect();
    assert_eq!(unique.len(), order.len());
    assert_eq!(unique.len(), m.blocks.len(), "every stored block is reachable");
}

#[test]
fn known_cids_and_views() {
    let p = Params::default();
    let mut m = MemoryBlocks::default();
    assert_eq!(
        import_bytes(&p, b"", &mut m).unwrap().cid.to_string(),
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    );
    let hello = import_bytes(&p, b"hello\n", &mut m).unwrap();
    assert_eq!(hello.cid.to_string(), "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN");
    let empty = dir::directory(&p, vec![], &mut m).unwrap();
    assert_eq!(empty.cid.to_string(), "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn");
    assert_eq!(empty.cid, dir::empty_directory_cid(&p));
    // `ipfs dag get QmUNLL…` prints exactly this.
    let j = vouch_dag::json::to_json(&empty.cid, &m.get(&empty.cid).unwrap()).unwrap();
    assert_eq!(j.to_string(), r#"{"Data":{"/":{"bytes":"CAE"}},"Links":[]}"#);
    // An empty file with raw leaves is the empty raw block (`ipfs add --raw-leaves` of nothing).
    let raw = Params { raw_leaves: true, cid_v1: true, ..p.clone() };
    assert_eq!(
        import_bytes(&raw, b"", &mut m).unwrap().cid.to_string(),
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    );
    // The v1 empty directory.
    assert_eq!(
        dir::empty_directory_cid(&raw).to_string(),
        "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
    );
    // IPIP-499's fixture CIDs for "hello world" under its two profiles.
    for (profile, want) in [
        ("unixfs-v0-2015", "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"),
        ("unixfs-v1-2025", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
    ] {
        let p = Params::profile(profile).unwrap();
        assert_eq!(import_bytes(&p, b"hello world", &mut m).unwrap().cid.to_string(), want, "{profile}");
    }
    // Identity CIDs: MemoryBlocks serves their inline bytes.
    let id = Cid::new_v1(RAW, multihash::Multihash::<64>::wrap(0, b"inline").unwrap());
    assert_eq!(m.get(&id).unwrap(), b"inline");
}
