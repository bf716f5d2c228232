//! Hostile and malformed input: every case is an `Err` naming what was wrong, never a panic,
//! never a wrong answer.

use vouch_dag::block::{DAG_CBOR, DAG_PB, RAW, cid_of, parse_cid};
use vouch_dag::car::{CarReader, CarWriter, encode_header};
use vouch_dag::dagpb::{PbLink, PbNode, encode};
use vouch_dag::export::{self, Kind};
use vouch_dag::file::import_bytes;
use vouch_dag::unixfs::{DataType, UnixFs};
use vouch_dag::{BlockSink, Cid, DagError, MemoryBlocks, Params, dir, parse_chunker};

type Blocks = Vec<(Cid, Vec<u8>)>;

fn read_all(bytes: &[u8]) -> Result<(Vec<Cid>, Blocks), DagError> {
    let mut r = CarReader::new(bytes)?;
    let roots = r.roots().to_vec();
    let blocks = r.by_ref().collect::<Result<_, _>>()?;
    Ok((roots, blocks))
}

fn varint(n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut v = n;
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn car_err(bytes: &[u8]) -> String {
    match read_all(bytes) {
        Err(DagError::Car(m)) => m,
        other => panic!("expected a CAR error, got {other:?}"),
    }
}

/// A small CAR and the byte offsets at which a CARv1 may end cleanly (after the header and
/// after each section), with the number of blocks read up to each.
fn small_car() -> (Vec<u8>, Vec<(usize, usize)>, Blocks) {
    let p = Params { chunk_size: 20, max_links: 2, ..Params::default() };
    let mut m = MemoryBlocks::default();
    let root = import_bytes(&p, &[1u8; 70], &mut m).unwrap(); // 4 leaves (3 equal), 3 inner nodes
    let blocks = crate::dag_blocks(&m, &root.cid).unwrap();
    let head = encode_header(&[root.cid]);
    let mut ends = vec![(varint(head.len() as u64).len() + head.len(), 0)];
    let mut w = CarWriter::new(Vec::new(), &[root.cid]).unwrap();
    for (i, (c, d)) in blocks.iter().enumerate() {
        w.write(c, d).unwrap();
        let body = c.to_bytes().len() + d.len();
        let last = ends.last().unwrap().0;
        ends.push((last + varint(body as u64).len() + body, i + 1));
    }
    let car = w.finish().unwrap();
    assert_eq!(ends.last().unwrap().0, car.len());
    (car, ends, blocks)
}

#[test]
fn truncated_car_at_every_offset() {
    let (car, ends, blocks) = small_car();
    assert!(blocks.len() >= 4);
    for n in 0..=car.len() {
        let got = read_all(&car[..n]);
        match ends.iter().find(|(e, _)| *e == n) {
            // A CARv1 has no length: ending between sections is a shorter, valid CAR.
            Some((_, k)) => assert_eq!(got.unwrap().1, blocks[..*k], "clean end at {n}"),
            None => assert!(got.is_err(), "truncated at {n} of {} must be an error", car.len()),
        }
    }
}

#[test]
fn car_block_not_matching_its_cid() {
    let (_, _, blocks) = small_car();
    let victim = blocks[2].0;
    let mut w = CarWriter::new(Vec::new(), &[blocks[0].0]).unwrap();
    for (c, d) in &blocks {
        let mut d = d.clone();
        if *c == victim {
            let mid = d.len() / 2;
            d[mid] ^= 1;
        }
        w.write(c, &d).unwrap();
    }
    let car = w.finish().unwrap();
    let mut r = CarReader::new(&car[..]).unwrap();
    assert!(r.next_block().unwrap().is_some());
    assert!(r.next_block().unwrap().is_some());
    match r.next_block() {
        Err(DagError::HashMismatch { cid, .. }) => assert_eq!(cid, victim),
        other => panic!("expected HashMismatch, got {other:?}"),
    }
    // The message a user sees names the block.
    let msg = read_all(&car).unwrap_err().to_string();
    assert!(msg.contains(&victim.to_string()), "{msg}");
}

#[test]
fn car_structural_errors() {
    let root = cid_of(RAW, b"x", false);
    let head = encode_header(&[root]);
    let mut good_head = varint(head.len() as u64);
    good_head.extend_from_slice(&head);

    // A zero-length section.
    let mut b = good_head.clone();
    b.push(0);
    assert!(car_err(&b).contains("length zero"));
    // A section claiming more than the limit: rejected before reading (or allocating) it.
    let mut b = good_head.clone();
    b.extend(varint(1 << 40));
    assert!(car_err(&b).contains("larger than"));
    // A section whose CID is garbage.
    let mut b = good_head.clone();
    b.extend([3, 0xff, 0xff, 0xff]);
    assert!(car_err(&b).contains("bad CID"));
    // A varint that never ends.
    let mut b = good_head.clone();
    b.extend([0xff; 11]);
    assert!(read_all(&b).is_err());

    // Empty input, zero-length header, header longer than the limit, truncated header.
    assert!(car_err(&[]).contains("empty"));
    assert!(car_err(&[0]).contains("out of range"));
    assert!(car_err(&varint(1 << 30)).contains("out of range"));
    assert!(car_err(&good_head[..good_head.len() - 1]).contains("truncated"));
}

/// DAG-CBOR header maps other than `{roots: [CID…], version: 1}`.
#[test]
fn car_bad_headers() {
    let cbor = |v: &ipld_core::ipld::Ipld| {
        let h = serde_ipld_dagcbor::to_vec(v).unwrap();
        let mut out = varint(h.len() as u64);
        out.extend(h);
        out
    };
    use ipld_core::ipld::Ipld;
    let map = |pairs: Vec<(&str, Ipld)>| Ipld::Map(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
    let root = Ipld::Link(cid_of(RAW, b"x", false));
    for (header, want) in [
        (
            map(vec![("roots", Ipld::List(vec![root.clone()])), ("version", Ipld::Integer(2))]),
            "unsupported CAR version 2",
        ),
        (
            map(vec![("roots", Ipld::List(vec![root.clone()])), ("version", Ipld::Integer(3))]),
            "unsupported CAR version 3",
        ),
        (map(vec![("roots", Ipld::List(vec![]))]), "no integer version"),
        (map(vec![("roots", Ipld::List(vec![])), ("version", Ipld::String("1".into()))]), "no integer version"),
        (map(vec![("version", Ipld::Integer(1))]), "no roots"),
        (map(vec![("roots", root.clone()), ("version", Ipld::Integer(1))]), "no roots list"),
        (map(vec![("roots", Ipld::List(vec![Ipld::Integer(1)])), ("version", Ipld::Integer(1))]), "not a CID"),
        (Ipld::List(vec![Ipld::Integer(1)]), "not a map"),
    ] {
        let m = car_err(&cbor(&header));
        assert!(m.contains(want), "{header:?}: {m}");
    }
    // Not DAG-CBOR at all.
    assert!(car_err(&[3, 0xff, 0x00, 0x13]).contains("not DAG-CBOR"));
    // Zero roots is a valid (if odd) header: `ipfs dag export` never writes it, go-car reads it.
    assert_eq!(
        read_all(&cbor(&map(vec![("roots", Ipld::List(vec![])), ("version", Ipld::Integer(1))]))).unwrap().0,
        vec![]
    );
}

/// The CARv2 pragma (`{version: 2}`) not followed by a usable CARv2 body.
#[test]
fn carv2_pragma_without_a_valid_body() {
    const PRAGMA: [u8; 11] = [0x0a, 0xa1, 0x67, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x02];
    let v2 = |offset: u64, size: u64, tail: &[u8]| {
        let mut b = PRAGMA.to_vec();
        b.extend([0u8; 16]);
        b.extend(offset.to_le_bytes());
        b.extend(size.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend_from_slice(tail);
        b
    };
    assert!(car_err(&PRAGMA).contains("truncated CARv2 header"));
    assert!(car_err(&v2(0, 0, &[])).contains("inside the header"));
    assert!(car_err(&v2(51, 100, &[])).contains("payload is empty"));
    // The payload's own header is garbage, or a CARv2 inside a CARv2.
    assert!(car_err(&v2(51, 100, &[4, 1, 2, 3, 4])).contains("not DAG-CBOR"));
    assert!(read_all(&v2(51, 100, &PRAGMA)).is_err());
    // A valid inner header, then the payload ends before data_size says.
    let head = encode_header(&[cid_of(RAW, b"x", false)]);
    let mut inner = varint(head.len() as u64);
    inner.extend_from_slice(&head);
    assert!(car_err(&v2(51, inner.len() as u64 + 10, &inner)).contains("truncated CARv2 payload"));
    // data_size smaller than the inner header.
    assert!(car_err(&v2(51, 3, &inner)).contains("smaller than its header"));
    // A section that runs past data_size.
    let x = b"x";
    let c = cid_of(RAW, x, false);
    let mut section = varint((c.to_bytes().len() + 1) as u64);
    section.extend(c.to_bytes());
    section.extend(x);
    let mut payload = inner.clone();
    payload.extend(&section);
    assert!(car_err(&v2(51, payload.len() as u64 - 1, &payload)).contains("runs past"));
    // And exactly right, it reads.
    let (roots, blocks) = read_all(&v2(51, payload.len() as u64, &payload)).unwrap();
    assert_eq!((roots, blocks), (vec![c], vec![(c, x.to_vec())]));
}

#[test]
fn parse_cid_rejects_garbage() {
    let good = cid_of(DAG_PB, b"x", false);
    for bad in [
        "",
        "Q",
        "Qm",
        "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3N0", // '0' is not base58
        "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3N",  // one character short
        "bafy",
        "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf35!",
        "zzzzzz",
        "hello world",
        "/ipfs/",
        "\u{0}",
        "b\u{e9}",
    ] {
        match parse_cid(bad) {
            Err(DagError::InvalidCid { input, .. }) => assert_eq!(input, bad),
            other => panic!("{bad:?} parsed as {other:?}"),
        }
    }
    assert_eq!(parse_cid(&good.to_string()).unwrap(), good);
    let v1 = Cid::new_v1(DAG_PB, *good.hash());
    assert_eq!(parse_cid(&v1.to_string()).unwrap(), v1);
    // base58btc multibase and upper-case base32 spell the same CID.
    let z = format!("z{}", bs58_of(&v1.to_bytes()));
    assert_eq!(parse_cid(&z).unwrap(), v1);
    assert_eq!(parse_cid(&v1.to_string().to_uppercase()).unwrap(), v1);
}

/// Bytes after a valid CID are not part of it: go-cid (Kubo) rejects them, and accepting them
/// would let two spellings name one CID.
#[test]
fn parse_cid_rejects_trailing_bytes() {
    let v1 = Cid::new_v1(DAG_PB, *cid_of(DAG_PB, b"x", false).hash());
    let mut bytes = v1.to_bytes();
    bytes.push(0);
    let s = format!("z{}", bs58_of(&bytes));
    assert!(matches!(parse_cid(&s), Err(DagError::InvalidCid { .. })), "{s}");
    // Nor is text around "/ipfs/" part of it.
    assert!(parse_cid(&format!("junk/ipfs/{v1}")).is_err());
}

fn bs58_of(bytes: &[u8]) -> String {
    // Plain base58btc (Bitcoin alphabet), written out here so the test does not trust the
    // parser's own encoder.
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut digits: Vec<u8> = Vec::new();
    for &b in bytes {
        let mut carry = u32::from(b);
        for d in &mut digits {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    std::iter::repeat_n('1', zeros).chain(digits.iter().rev().map(|d| ALPHABET[*d as usize] as char)).collect()
}

#[test]
fn dagpb_rejects_non_canonical_blocks() {
    let c = cid_of(DAG_PB, b"x", false);
    let link = encode(&[PbLink::new(c, "a", 1)], None);
    let cid_bytes = c.to_bytes();
    let link_with = |fields: &[u8]| {
        let mut b = vec![0x12];
        b.extend(varint(fields.len() as u64));
        b.extend_from_slice(fields);
        b
    };
    let hash_field = {
        let mut f = vec![0x0a, cid_bytes.len() as u8];
        f.extend(&cid_bytes);
        f
    };
    let mut name_then_hash = vec![0x12, 0x01, b'a'];
    name_then_hash.extend(&hash_field);
    let mut hash_twice = hash_field.clone();
    hash_twice.extend(&hash_field);
    let mut hash_trailing = vec![0x0a, cid_bytes.len() as u8 + 1];
    hash_trailing.extend(&cid_bytes);
    hash_trailing.push(0);
    let mut hash_then_bad_name = hash_field.clone();
    hash_then_bad_name.extend([0x12, 0x01, 0xff]);
    let mut hash_then_len_tsize = hash_field.clone();
    hash_then_len_tsize.extend([0x1a, 0x01, 0x01]);
    let mut hash_then_unknown = hash_field.clone();
    hash_then_unknown.extend([0x20, 0x01]);
    let mut data_then_link = vec![0x0a, 0x02, 0x08, 0x01];
    data_then_link.extend(&link);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("data before links", data_then_link),
        ("data twice", vec![0x0a, 0x00, 0x0a, 0x00]),
        ("data as a varint", vec![0x08, 0x01]),
        ("unknown top-level field", vec![0x1a, 0x00]),
        ("non-minimal length varint", vec![0x0a, 0x80, 0x00]),
        ("non-minimal key varint", vec![0x8a, 0x00, 0x00]),
        ("length past the end", vec![0x0a, 0x05, 0x00]),
        ("link without Hash", link_with(&[0x12, 0x01, b'a'])),
        ("link Name before Hash", link_with(&name_then_hash)),
        ("link Hash twice", link_with(&hash_twice)),
        ("link Hash with trailing bytes", link_with(&hash_trailing)),
        ("link Hash not a CID", link_with(&[0x0a, 0x02, 0xff, 0xff])),
        ("link Name not UTF-8", link_with(&hash_then_bad_name)),
        ("link Tsize as bytes", link_with(&hash_then_len_tsize)),
        ("link unknown field", link_with(&hash_then_unknown)),
    ];
    for (what, bytes) in cases {
        let block = cid_of(DAG_PB, &bytes, false);
        match PbNode::decode(&block, &bytes) {
            Err(DagError::InvalidDagPb { cid, .. }) => assert_eq!(cid, block, "{what}"),
            other => panic!("{what}: {} decoded as {other:?}", hex::encode(&bytes)),
        }
    }
    // The canonical form of the same content decodes.
    let mut ok = link.clone();
    ok.extend([0x0a, 0x02, 0x08, 0x01]);
    assert_eq!(PbNode::decode(&c, &ok).unwrap().links.len(), 1);
}

#[test]
fn unixfs_rejects_malformed_data() {
    let c = cid_of(DAG_PB, b"x", false);
    for (what, bytes) in [
        ("no type", &[0x18, 0x00][..]),
        ("unknown type", &[0x08, 0x06]),
        ("type as bytes", &[0x0a, 0x00]),
        ("filesize as bytes", &[0x08, 0x02, 0x1a, 0x00]),
        ("truncated data", &[0x08, 0x02, 0x12, 0x05, 0x00]),
        ("mode over 32 bits", &[0x08, 0x02, 0x38, 0x80, 0x80, 0x80, 0x80, 0x10]),
        ("bad packed blocksizes", &[0x08, 0x02, 0x22, 0x01, 0x80]),
        ("unknown wire type", &[0x08, 0x02, 0x4b]),
    ] {
        match UnixFs::decode(&c, bytes) {
            Err(DagError::InvalidUnixFs { cid, .. }) => assert_eq!(cid, c, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    // Unknown fields are skipped (UnixFS is extensible).
    assert_eq!(UnixFs::decode(&c, &[0x08, 0x02, 0x50, 0x07]).unwrap().kind, DataType::File);
}

/// Store a dag-pb node with UnixFS data `u` and `links`; returns its CID.
fn put_node(m: &mut MemoryBlocks, links: &[PbLink], u: &UnixFs) -> Cid {
    let b = encode(links, Some(&u.encode()));
    let c = cid_of(DAG_PB, &b, true);
    m.put(&c, &b).unwrap();
    c
}

fn raw(m: &mut MemoryBlocks, data: &[u8]) -> Cid {
    let c = cid_of(RAW, data, false);
    m.put(&c, data).unwrap();
    c
}

fn file_node(filesize: Option<u64>, blocksizes: &[u64], data: Option<&'static [u8]>) -> UnixFs<'static> {
    let mut u = UnixFs::new(DataType::File);
    u.filesize = filesize;
    u.blocksizes = blocksizes.to_vec();
    u.data = data;
    u
}

fn read(m: &MemoryBlocks, c: &Cid) -> Result<Vec<u8>, DagError> {
    let mut out = Vec::new();
    export::read_file(m, c, &mut out).map(|_| out)
}

#[test]
fn read_file_rejects_lying_sizes() {
    let mut m = MemoryBlocks::default();
    // A leaf that claims 10 bytes and holds 5, and one that claims 2.
    for claim in [10, 2] {
        let c = put_node(&mut m, &[], &file_node(Some(claim), &[], Some(b"hello")));
        assert!(matches!(read(&m, &c), Err(DagError::InvalidUnixFs { cid, .. }) if cid == c), "claim {claim}");
    }
    // A root whose filesize disagrees with the leaves under it.
    let a = raw(&mut m, b"abc");
    let b = raw(&mut m, b"de");
    let links = [PbLink::new(a, "", 3), PbLink::new(b, "", 2)];
    // Fewer bytes than claimed: found at the end. More: refused before anything past the
    // claim is written.
    let root = put_node(&mut m, &links, &file_node(Some(6), &[3, 2], None));
    let e = read(&m, &root).unwrap_err();
    assert!(e.to_string().contains("claims 6 bytes, DAG holds 5"), "{e}");
    let root = put_node(&mut m, &links, &file_node(Some(4), &[3, 2], None));
    let mut out = Vec::new();
    let e = export::read_file(&m, &root, &mut out).unwrap_err();
    assert!(e.to_string().contains("claims 4 bytes, DAG holds more"), "{e}");
    assert_eq!(out, b"abc", "bytes past the claim were written");
    // Blocksizes and links differ in number.
    let root = put_node(&mut m, &links, &file_node(Some(5), &[5], None));
    assert!(read(&m, &root).unwrap_err().to_string().contains("blocksizes and links differ"));
    // The honest version reads.
    let root = put_node(&mut m, &links, &file_node(Some(5), &[3, 2], None));
    assert_eq!(read(&m, &root).unwrap(), b"abcde");
}

#[test]
fn read_file_rejects_what_is_not_a_file() {
    let p = Params::default();
    let mut m = MemoryBlocks::default();
    let f = import_bytes(&p, b"hi", &mut m).unwrap();
    let d = dir::directory(&p, vec![("f".into(), f)], &mut m).unwrap();
    let expect_wrong = |r: Result<Vec<u8>, DagError>, want: Cid| match r {
        Err(DagError::WrongKind { cid, expected: "file" }) => assert_eq!(cid, want),
        other => panic!("expected WrongKind, got {other:?}"),
    };
    expect_wrong(read(&m, &d.cid), d.cid);
    let s = vouch_dag::file::symlink(&p, "f", &mut m).unwrap();
    expect_wrong(read(&m, &s.cid), s.cid);
    let sharded = dir::directory(&Params { hamt_threshold: 1, ..p.clone() }, vec![("f".into(), f)], &mut m).unwrap();
    expect_wrong(read(&m, &sharded.cid), sharded.cid);
    // A directory hidden inside a file DAG.
    let bad = put_node(&mut m, &[PbLink::new(d.cid, "", 1)], &file_node(Some(0), &[0], None));
    expect_wrong(read(&m, &bad), d.cid);
    // Listing or looking up in a file.
    assert!(matches!(export::list(&m, &f.cid), Err(DagError::WrongKind { expected: "directory", .. })));
    assert!(matches!(export::lookup(&m, &f.cid, "x"), Err(DagError::WrongKind { expected: "directory", .. })));
    // Resolving through a file fails naming the path walked.
    match export::resolve(&m, &d.cid, "f/x") {
        Err(DagError::WrongKind { cid, .. }) => assert_eq!(cid, f.cid),
        other => panic!("{other:?}"),
    }
    match export::resolve(&m, &d.cid, "nope/x") {
        Err(DagError::NoSuchPath { path }) => assert_eq!(path, format!("{}/nope", d.cid)),
        other => panic!("{other:?}"),
    }
    // Codecs that are not UnixFS, missing blocks, corrupted blocks.
    let cbor = cid_of(DAG_CBOR, &[0xa0], false);
    m.put(&cbor, &[0xa0]).unwrap();
    assert!(matches!(read(&m, &cbor), Err(DagError::UnsupportedCodec { codec: 0x71, .. })));
    assert_eq!(export::stat(&m, &cbor).unwrap(), Kind::Other { codec: 0x71 });
    let missing = cid_of(RAW, b"never stored", false);
    assert!(matches!(read(&m, &missing), Err(DagError::NotFound { cid }) if cid == missing));
    let leaf = raw(&mut m, b"abc");
    m.blocks.insert(leaf, b"abd".to_vec());
    assert!(matches!(read(&m, &leaf), Err(DagError::HashMismatch { cid, .. }) if cid == leaf));
    // A dag-pb node without data is not UnixFS.
    let bare = encode(&[], None);
    let bare_cid = cid_of(DAG_PB, &bare, false);
    m.put(&bare_cid, &bare).unwrap();
    assert!(matches!(read(&m, &bare_cid), Err(DagError::InvalidUnixFs { .. })));
}

/// A file DAG 20 000 levels deep reads without exhausting the stack (the walk is iterative).
#[test]
fn deep_file_dag_reads_iteratively() {
    let mut m = MemoryBlocks::default();
    let mut c = raw(&mut m, b"z");
    for _ in 0..20_000 {
        c = put_node(&mut m, &[PbLink::new(c, "", 1)], &file_node(Some(1), &[1], None));
    }
    assert_eq!(read(&m, &c).unwrap(), b"z");
    let mut n = 0;
    vouch_dag::car::walk_dag(&m, &c, |_, _| {
        n += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(n, 20_001);
}

fn shard(fanout: Option<u64>, hash: Option<u64>) -> UnixFs<'static> {
    let mut u = UnixFs::new(DataType::HamtShard);
    u.fanout = fanout;
    u.hash_type = hash;
    u.data = Some(&[0xff]);
    u
}

#[test]
fn hostile_hamt_shards() {
    let mut m = MemoryBlocks::default();
    let f = raw(&mut m, b"x");
    // Link names whose first two bytes are not a slot prefix: a multi-byte character across
    // the prefix boundary must be an error, not a panic on slicing.
    for name in ["aé", "éa", "日本", "a", "zzfile", ""] {
        let links = [PbLink::new(f, name, 1)];
        let root = put_node(&mut m, &links, &shard(Some(256), Some(0x22)));
        assert!(export::list(&m, &root).is_err(), "list {name:?}");
        let _ = export::lookup(&m, &root, name);
    }
    // Bad parameters.
    for (fanout, hash) in [
        (None, Some(0x22)),
        (Some(0), Some(0x22)),
        (Some(3), Some(0x22)),
        (Some(1 << 20), Some(0x22)),
        (Some(256), None),
        (Some(256), Some(0x11)),
    ] {
        let links = [PbLink::new(f, "00a", 1)];
        let root = put_node(&mut m, &links, &shard(fanout, hash));
        assert!(matches!(export::list(&m, &root), Err(DagError::InvalidUnixFs { .. })), "{fanout:?} {hash:?}");
        assert!(export::lookup(&m, &root, "a").is_err(), "{fanout:?} {hash:?}");
    }
    // A child "shard" that is a plain directory, or a file.
    let empty_dir = put_node(&mut m, &[], &UnixFs::new(DataType::Directory));
    for child in [empty_dir, f] {
        let links = [PbLink::new(child, "00", 1)];
        let root = put_node(&mut m, &links, &shard(Some(256), Some(0x22)));
        assert!(export::list(&m, &root).is_err());
    }
}

#[test]
fn invalid_names_and_chunkers() {
    let p = Params::default();
    let mut m = MemoryBlocks::default();
    let f = import_bytes(&p, b"x", &mut m).unwrap();
    for bad in ["", ".", "..", "a/b", "/"] {
        assert!(matches!(dir::directory(&p, vec![(bad.into(), f)], &mut m), Err(DagError::InvalidName(_))), "{bad:?}");
    }
    let dup = dir::directory(&p, vec![("a".into(), f), ("b".into(), f), ("a".into(), f)], &mut m);
    assert!(matches!(dup, Err(DagError::InvalidName(n)) if n.contains("twice")));
    for bad in [
        "",
        "size",
        "size-",
        "size-0",
        "size-01x",
        "size-1048577",
        "size-99999999999999999999999",
        "size- 1",
        "SIZE-10",
        "rabin",
        "size-1.5",
    ] {
        match parse_chunker(bad) {
            Err(DagError::InvalidChunker(s)) => assert_eq!(s, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert_eq!(parse_chunker("size-1048576").unwrap(), 1 << 20);
    assert!(export::split_path("not-a-cid/x").is_err());
    assert!(export::split_path("/ipfs/").is_err());
}

/// A hostile HAMT root that links one child shard from two slots is refused (a real HAMT never
/// repeats a shard), so a few bytes cannot make `list` walk a subtree many times over.
#[test]
fn a_shard_linked_twice_is_refused() {
    let mut m = MemoryBlocks::default();
    let p = Params { hamt_threshold: 1, ..Params::default() };
    let leaf = vouch_dag::file::import_bytes(&p, b"x", &mut m).unwrap();
    // Enough entries that the root has at least one child shard.
    let entries = (0..600).map(|i| (format!("f{i}"), leaf)).collect();
    let root = vouch_dag::dir::directory(&p, entries, &mut m).unwrap();
    let bytes = m.blocks[&root.cid].clone();
    let node = vouch_dag::dagpb::PbNode::decode(&root.cid, &bytes).unwrap();
    let child = node.links.iter().find(|l| l.name().len() == 2).expect("a child shard").clone();
    assert!(export::list(&m, &root.cid).is_ok());
    let mut u = UnixFs::new(DataType::HamtShard);
    u.data = Some(&[0x03]); // slots 0 and 1
    u.hash_type = Some(0x22);
    u.fanout = Some(256);
    let links = [PbLink::new(child.cid, "00", 1), PbLink::new(child.cid, "01", 1)];
    let evil = put_node(&mut m, &links, &u);
    let e = export::list(&m, &evil).unwrap_err();
    assert!(e.to_string().contains("linked more than once"), "{e}");
}
