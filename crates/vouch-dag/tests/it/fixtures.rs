//! The deterministic UnixFS fixtures of `testdata/unixfs/fixtures.json`, materialised in memory
//! and imported with the vouch-dag API.
//!
//! This is a second implementation of the generator in `scripts/kubo/fixtures.py` (the one the
//! golden CIDs were made from); `testdata/unixfs/README.md` is the spec both follow.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use vouch_dag::file::{FileImporter, Node};
use vouch_dag::{BlockSink, Params, dir, file};

/// `testdata/` at the repository root.
pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// Read and parse a JSON file under `testdata/`.
pub fn load_json(rel: &str) -> Value {
    let path = testdata().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The content of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSpec {
    /// SHA-256 counter stream: block `i` is `SHA-256("vouch-fixture" ‖ seed_le64 ‖ i_le64)`.
    Sha {
        seed: u64,
        len: u64,
    },
    Zeros {
        len: u64,
    },
    Text(String),
}

/// A node of a fixture tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    File(FileSpec),
    Symlink(String),
    /// Entries by name (a `BTreeMap`: iteration order is irrelevant, `dir::directory` sorts).
    Dir(BTreeMap<String, Entry>),
}

#[derive(Clone, Debug)]
pub struct Fixture {
    pub name: String,
    pub spec: Entry,
    pub tags: Vec<String>,
}

const SHA_PREFIX: &[u8] = b"vouch-fixture";
/// Generated files from this size up to `CACHED_MAX` are kept in memory once made (see
/// `cached_bytes`); larger ones (the opt-in 1 GiB fixture) are streamed.
const LARGE: u64 = 4 << 20;
const CACHED_MAX: u64 = 64 << 20;

impl FileSpec {
    fn parse(v: &Value) -> FileSpec {
        let int = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("file spec {v}: no integer {k:?}"));
        match v["gen"].as_str() {
            Some("sha") => FileSpec::Sha { seed: int("seed"), len: int("len") },
            Some("zeros") => FileSpec::Zeros { len: int("len") },
            Some("text") => FileSpec::Text(v["text"].as_str().expect("text").to_string()),
            g => panic!("unknown gen {g:?} in {v}"),
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            FileSpec::Sha { len, .. } | FileSpec::Zeros { len } => *len,
            FileSpec::Text(t) => t.len() as u64,
        }
    }

    /// Hand the content to `f` in pieces of at most 1 MiB, in order.
    pub fn stream(&self, mut f: impl FnMut(&[u8])) {
        const PIECE: u64 = 1 << 20; // a multiple of 32
        match self {
            FileSpec::Text(t) => f(t.as_bytes()),
            FileSpec::Zeros { len } => {
                let zeros = vec![0u8; PIECE as usize];
                let mut left = *len;
                while left > 0 {
                    let n = left.min(PIECE);
                    f(&zeros[..n as usize]);
                    left -= n;
                }
            }
            FileSpec::Sha { seed, len } => {
                let mut input = Vec::with_capacity(SHA_PREFIX.len() + 16);
                input.extend_from_slice(SHA_PREFIX);
                input.extend_from_slice(&seed.to_le_bytes());
                let head = input.len();
                let mut piece = Vec::with_capacity(PIECE as usize);
                let mut counter = 0u64;
                let mut left = *len;
                while left > 0 {
                    let n = left.min(PIECE);
                    piece.clear();
                    while (piece.len() as u64) < n {
                        input.truncate(head);
                        input.extend_from_slice(&counter.to_le_bytes());
                        counter += 1;
                        piece.extend_from_slice(vouch_dag::block::sha256_multihash(&input).digest());
                    }
                    piece.truncate(n as usize);
                    f(&piece);
                    left -= n;
                }
            }
        }
    }

    /// The content of a generated file, made once per test binary: the golden tables import
    /// each large fixture under several option sets, and a debug build generates ~25 MB/s.
    pub fn cached_bytes(&self) -> Arc<Vec<u8>> {
        type Cache = Mutex<HashMap<String, Arc<OnceLock<Arc<Vec<u8>>>>>>;
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let cell = CACHE.get_or_init(Default::default).lock().unwrap().entry(format!("{self:?}")).or_default().clone();
        cell.get_or_init(|| Arc::new(self.bytes())).clone()
    }

    /// The whole content (for small files).
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() as usize);
        self.stream(|b| out.extend_from_slice(b));
        out
    }
}

impl Entry {
    pub fn parse(v: &Value) -> Entry {
        if v.get("gen").is_some() {
            return Entry::File(FileSpec::parse(v));
        }
        if let Some(t) = v.get("symlink") {
            return Entry::Symlink(t.as_str().expect("symlink target").to_string());
        }
        assert!(v.get("dir").is_some() || v.get("dir_gen").is_some(), "unknown spec {v}");
        let mut entries = BTreeMap::new();
        let mut add = |name: String, e: Entry| {
            assert!(!matches!(name.as_str(), "" | "." | "..") && !name.contains(['/', '\0']), "bad name {name:?}");
            assert!(entries.insert(name.clone(), e).is_none(), "duplicate name {name:?}");
        };
        let gens = match v.get("dir_gen") {
            None => vec![],
            Some(Value::Array(a)) => a.iter().collect(),
            Some(g) => vec![g],
        };
        for g in gens {
            let count = g["count"].as_u64().expect("count");
            let prefix = g["prefix"].as_str().expect("prefix");
            let width = g["width"].as_u64().expect("width") as usize;
            // `file` or `entry`: a sha spec with `seed_base` gets seed `seed_base + i`; any
            // other spec (zeros, text, a symlink, a whole directory) is used as-is for every entry.
            let f = g.get("file").or_else(|| g.get("entry")).expect("dir_gen has a file or an entry");
            for i in 0..count {
                let entry = match (f["gen"].as_str(), f["seed_base"].as_u64()) {
                    (Some("sha"), Some(base)) => {
                        Entry::File(FileSpec::Sha { seed: base + i, len: f["len"].as_u64().expect("len") })
                    }
                    _ => Entry::parse(f),
                };
                add(format!("{prefix}{i:0width$}"), entry);
            }
        }
        if let Some(d) = v.get("dir") {
            for (name, child) in d.as_object().expect("dir is an object") {
                add(name.clone(), Entry::parse(child));
            }
        }
        Entry::Dir(entries)
    }

    /// Import the tree as Kubo's `AddFile` (hidden files included, symlinks not followed) would.
    pub fn import<S: BlockSink>(&self, params: &Params, sink: &mut S) -> Result<Node, S::Error> {
        match self {
            Entry::File(spec @ FileSpec::Sha { len, .. }) if (LARGE..=CACHED_MAX).contains(len) => {
                file::import_bytes(params, &spec.cached_bytes(), sink)
            }
            Entry::File(spec) => {
                let mut imp = FileImporter::new(params);
                let mut res = Ok(());
                spec.stream(|piece| {
                    if res.is_ok() {
                        res = imp.write(piece, sink);
                    }
                });
                res?;
                imp.finish(sink)
            }
            Entry::Symlink(target) => file::symlink(params, target, sink),
            Entry::Dir(children) => {
                let mut entries = Vec::with_capacity(children.len());
                for (name, child) in children {
                    entries.push((name.clone(), child.import(params, sink)?));
                }
                dir::directory(params, entries, sink)
            }
        }
    }

    /// Total file bytes in the tree.
    pub fn total_bytes(&self) -> u64 {
        match self {
            Entry::File(s) => s.len(),
            Entry::Symlink(_) => 0,
            Entry::Dir(c) => c.values().map(Entry::total_bytes).sum(),
        }
    }
}

/// Every fixture of `testdata/unixfs/fixtures.json`, by name.
pub fn all() -> BTreeMap<String, Fixture> {
    let v = load_json("unixfs/fixtures.json");
    let mut out = BTreeMap::new();
    for fx in v.as_array().expect("fixtures.json is an array") {
        let name = fx["name"].as_str().expect("name").to_string();
        let tags = fx
            .get("tags")
            .and_then(Value::as_array)
            .map(|t| t.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let fixture = Fixture { name: name.clone(), spec: Entry::parse(&fx["spec"]), tags };
        assert!(out.insert(name.clone(), fixture).is_none(), "duplicate fixture {name}");
    }
    out
}

/// The generator itself, pinned by values computed independently (Python's hashlib over the
/// byte strings the README defines), so a wrong generator is caught here rather than as a wall
/// of CID mismatches.
#[test]
fn sha_generator_matches_spec() {
    // python3 -c 'import hashlib,struct; print(hashlib.sha256(b"vouch-fixture"+struct.pack("<QQ",1,0)).hexdigest())'
    let first = FileSpec::Sha { seed: 1, len: 32 }.bytes();
    assert_eq!(hex::encode(first), SHA_SEED1_BLOCK0);
    // Truncation and the counter across a piece boundary: 1 MiB + 5 bytes, last 37 bytes.
    let long = FileSpec::Sha { seed: 1, len: (1 << 20) + 5 }.bytes();
    assert_eq!(long.len(), (1 << 20) + 5);
    assert_eq!(hex::encode(&long[..32]), SHA_SEED1_BLOCK0);
    assert_eq!(hex::encode(&long[(1 << 20)..]), &SHA_SEED1_BLOCK32768[..10]);
    assert_eq!(FileSpec::Zeros { len: 3 }.bytes(), vec![0; 3]);
    assert_eq!(FileSpec::Text("hé".into()).len(), 3);
}

/// `sha256(b"vouch-fixture" + pack("<QQ", 1, 0))`.
const SHA_SEED1_BLOCK0: &str = "e138b36af31ca9ab18bdb17b6d8dd3dd0c497acc9725ccc3bc0b36c7cd0717c1";
/// `sha256(b"vouch-fixture" + pack("<QQ", 1, 32768))` (the first block after 1 MiB).
const SHA_SEED1_BLOCK32768: &str = "4237706c3283ca7f33a85ede958e5cde9e3ace835fccb9dc7fb3163318f9d47d";

#[test]
fn fixtures_parse_and_have_expected_shapes() {
    let all = all();
    let Entry::Dir(d) = &all["hamt_7000"].spec else { panic!("hamt_7000 is a directory") };
    assert_eq!(d.len(), 7000);
    assert_eq!(d["file-00042"], Entry::File(FileSpec::Sha { seed: 100042, len: 16 }));
    let Entry::Dir(d) = &all["hamt_threshold_plus_one"].spec else { panic!("directory") };
    assert_eq!(d.len(), 4096);
    let Entry::Dir(d) = &all["symlink_dir"].spec else { panic!("directory") };
    assert_eq!(d["link_to_dir"], Entry::Symlink("sub".into()));
    assert_eq!(all["random_50mb"].spec.total_bytes(), 50_000_000);
}
