//! Golden CIDs and blocks: every fixture imported with vouch-dag must give the CID real Kubo
//! v0.22 gives (`kubo-v0.22.json`), the CID the JS importer gives for every option set we can
//! express (`js-importer.json`), and, for the small cases, byte-identical blocks
//! (`js-blocks-small.json`), and CARs byte-identical to those @ipld/car wrote
//! (`testdata/car/`). Each table test prints every vector and fails listing the mismatches; it
//! never skips a vector silently.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use vouch_dag::{Cid, Discard, HamtEstimate, MemoryBlocks, Params, car, dir, json, parse_chunker};

use crate::fixtures::{self, Fixture};

enum Outcome {
    Pass,
    Fail(String),
    /// Not run: options `Params` cannot express, or an opt-in fixture (named in the reason).
    Skip(String),
    /// A JS vector that disagrees with Kubo in a known way, checked to be exactly that way.
    JsDiffers(String),
}

/// JS vectors known to disagree with Kubo v0.22, which vouch-dag follows (`caveat` in
/// js-importer.json; testdata/unixfs/README.md §3). Such a vector still has to be reproduced:
/// the JS CID must equal our import with sharding turned off. (The other caveat, `>` against
/// Kubo's `>=`, needs no entry: `js_params` maps the importer's `>` exactly.)
const JS_LEAVES_FLAT: &[(&str, &str)] = &[(
    "hamt_subdirs",
    "JS never shards a directory of directories (its links-bytes estimate counts 0 for a \
     subdirectory not yet written); equals our flat import; Kubo shards it and we match Kubo",
)];

/// Opt-in fixtures (tag "huge"): run only with VOUCH_GOLDEN_HUGE=1.
fn huge_skipped(fx: &Fixture) -> Option<Outcome> {
    let huge = fx.tags.iter().any(|t| t == "huge");
    (huge && std::env::var_os("VOUCH_GOLDEN_HUGE").is_none())
        .then(|| Outcome::Skip("huge fixture: set VOUCH_GOLDEN_HUGE=1 to run it".into()))
}

struct Table {
    title: String,
    rows: Vec<(String, String, Outcome)>,
}

impl Table {
    fn new(title: &str) -> Self {
        Table { title: title.into(), rows: Vec::new() }
    }

    fn push(&mut self, fixture: &str, options: &str, o: Outcome) {
        self.rows.push((fixture.into(), options.into(), o));
    }

    /// Print the table (visible with `--nocapture`, and in the failure message) and fail if any
    /// vector failed.
    fn finish(self) {
        let mut s = format!("\n== {} ==\n", self.title);
        let (mut pass, mut fail, mut skip, mut differs) = (0, 0, 0, 0);
        for (fx, opts, o) in &self.rows {
            let (tag, detail) = match o {
                Outcome::Pass => {
                    pass += 1;
                    ("PASS", String::new())
                }
                Outcome::Fail(d) => {
                    fail += 1;
                    ("FAIL", d.clone())
                }
                Outcome::Skip(d) => {
                    skip += 1;
                    ("skip", d.clone())
                }
                Outcome::JsDiffers(d) => {
                    differs += 1;
                    ("JS≠KUBO", d.clone())
                }
            };
            let _ = writeln!(s, "{tag}  {fx:<26} {opts:<40} {detail}");
        }
        let _ = writeln!(s, "{pass} passed, {fail} failed, {skip} skipped, {differs} known JS divergences");
        println!("{s}");
        assert_eq!(fail, 0, "{s}");
    }
}

/// Import a fixture (wrapped in a directory named after it when `wrap`), CID only.
fn import_cid(fx: &Fixture, params: &Params, wrap: bool) -> Cid {
    let node = fx.spec.import(params, &mut Discard).expect("import into Discard cannot fail");
    if wrap { dir::directory(params, vec![(fx.name.clone(), node)], &mut Discard).unwrap().cid } else { node.cid }
}

fn fixtures() -> &'static BTreeMap<String, Fixture> {
    static F: OnceLock<BTreeMap<String, Fixture>> = OnceLock::new();
    F.get_or_init(fixtures::all)
}

/// `"1851B"`, `"256KiB"`, `"1MiB"`, or a bare number, as Kubo's config accepts byte sizes.
fn parse_bytes(v: &Value) -> Result<usize, String> {
    if let Some(n) = v.as_u64() {
        return Ok(n as usize);
    }
    let s = v.as_str().ok_or_else(|| format!("byte size {v} is not a string"))?;
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: usize = s[..digits].parse().map_err(|_| format!("byte size {s:?}"))?;
    let mult = match s[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "kB" | "KB" => 1000,
        "MB" => 1_000_000,
        u => return Err(format!("byte size unit {u:?}")),
    };
    Ok(n * mult)
}

/// Kubo v0.22 `AddFile` options (config keys) as `Params`.
fn kubo_params(opts: &Map<String, Value>) -> Result<Params, String> {
    let mut p = Params::default();
    for (k, v) in opts {
        match k.as_str() {
            "Internal.UnixFSShardingSizeThreshold" => p.hamt_threshold = parse_bytes(v)?,
            _ => return Err(format!("unknown Kubo option {k}")),
        }
    }
    Ok(p)
}

/// ipfs-unixfs-importer options as recorded by `scripts/npm/lib.mjs`, as `(Params, wrap)`.
fn js_params(opts: &Map<String, Value>) -> Result<(Params, bool), String> {
    let wrap = opts.get("wrapWithDirectory").and_then(Value::as_bool).unwrap_or(false);
    if let Some(profile) = opts.get("profile") {
        let name = profile.as_str().ok_or("profile is not a string")?;
        if let Some(k) = opts.keys().find(|k| !matches!(k.as_str(), "profile" | "wrapWithDirectory")) {
            return Err(format!("option {k} alongside a profile"));
        }
        return Params::profile(name).map(|p| (p, wrap)).ok_or_else(|| format!("unknown profile {name}"));
    }
    // The importer compares the estimate with `>`, as IPIP-499 does (Kubo 0.22 used `>=`).
    let mut p = Params { shard_at_threshold: false, ..Params::default() };
    let int = |v: &Value| v.as_u64().map(|n| n as usize).ok_or_else(|| format!("{v} is not an integer"));
    for (k, v) in opts {
        match k.as_str() {
            "cidVersion" => p.cid_v1 = int(v)? == 1,
            "rawLeaves" => p.raw_leaves = v.as_bool().ok_or("rawLeaves")?,
            "chunker" => p.chunk_size = parse_chunker(v.as_str().ok_or("chunker")?).map_err(|e| e.to_string())?,
            "layout" if v == "balanced" => {}
            "maxChildrenPerNode" => p.max_links = int(v)?,
            "shardSplitThresholdBytes" => p.hamt_threshold = int(v)?,
            "shardSplitStrategy" => {
                p.hamt_estimate = match v.as_str() {
                    Some("links-bytes") => HamtEstimate::Links,
                    Some("block-bytes") => HamtEstimate::Block,
                    _ => return Err(format!("shardSplitStrategy {v}")),
                }
            }
            "shardFanoutBits" => p.hamt_fanout = 1 << int(v)?,
            "wrapWithDirectory" => {}
            _ => return Err(format!("option {k}={v}")),
        }
    }
    Ok((p, wrap))
}

fn options_label(opts: &Map<String, Value>) -> String {
    if opts.is_empty() { "{}".into() } else { Value::Object(opts.clone()).to_string() }
}

fn check_cid(fx: &Fixture, params: &Params, wrap: bool, want: &str) -> Outcome {
    let got = import_cid(fx, params, wrap).to_string();
    if got == want { Outcome::Pass } else { Outcome::Fail(format!("want {want} got {got}")) }
}

fn vectors(rel: &str) -> Vec<Value> {
    fixtures::load_json(rel).as_array().unwrap_or_else(|| panic!("{rel} is not an array")).clone()
}

fn fixture_of<'a>(v: &Value) -> &'a Fixture {
    let name = v["fixture"].as_str().expect("vector names its fixture");
    fixtures().get(name).unwrap_or_else(|| panic!("vector names unknown fixture {name}"))
}

fn is_large(fx: &Fixture) -> bool {
    fx.tags.iter().any(|t| t == "large" || t == "huge")
}

fn kubo_table(large: bool) {
    let mut t = Table::new(if large { "Kubo v0.22 CIDs (large fixtures)" } else { "Kubo v0.22 CIDs" });
    for v in vectors("unixfs/kubo-v0.22.json") {
        let fx = fixture_of(&v);
        if is_large(fx) != large {
            continue;
        }
        let opts = v["options"].as_object().cloned().unwrap_or_default();
        let want = v["cid"].as_str().expect("cid");
        let o = match (kubo_params(&opts), huge_skipped(fx)) {
            // Every Kubo vector must be reproducible: an option we cannot express is a failure.
            (Err(e), _) => Outcome::Fail(format!("cannot express: {e}")),
            (Ok(_), Some(skip)) => skip,
            (Ok(p), None) => check_cid(fx, &p, false, want),
        };
        t.push(&fx.name, &options_label(&opts), o);
    }
    t.finish();
}

#[test]
fn kubo_v0_22_cids() {
    kubo_table(false);
}

#[test]
fn kubo_v0_22_cids_large() {
    kubo_table(true);
}

fn js_table(large: bool) {
    let path = fixtures::testdata().join("unixfs/js-importer.json");
    if !path.exists() {
        panic!("{} is missing (scripts/npm/vectors.mjs writes it)", path.display());
    }
    let mut t =
        Table::new(if large { "ipfs-unixfs-importer CIDs (large fixtures)" } else { "ipfs-unixfs-importer CIDs" });
    for v in vectors("unixfs/js-importer.json") {
        let fx = fixture_of(&v);
        if is_large(fx) != large {
            continue;
        }
        let opts = v["options"].as_object().cloned().unwrap_or_default();
        let label = v["set"].as_str().map_or_else(|| options_label(&opts), str::to_string);
        let want = v["cid"].as_str().expect("cid");
        let o = match (js_params(&opts), huge_skipped(fx)) {
            (Err(e), _) => Outcome::Skip(format!("not expressible: {e}")),
            (Ok(_), Some(skip)) => skip,
            (Ok((p, wrap)), None) => {
                // Only a vector the generator marked with a caveat (known not to be Kubo's) may
                // be classified as a known divergence.
                let known = JS_LEAVES_FLAT.iter().find(|(n, _)| *n == fx.name && v.get("caveat").is_some());
                match (check_cid(fx, &p, wrap, want), known) {
                    (Outcome::Fail(d), Some((_, why))) => {
                        let flat = Params { hamt_threshold: usize::MAX, ..p };
                        if import_cid(fx, &flat, wrap).to_string() == want {
                            Outcome::JsDiffers(why.to_string())
                        } else {
                            Outcome::Fail(format!("{d}; not even our flat import matches"))
                        }
                    }
                    (o, _) => o,
                }
            }
        };
        t.push(&fx.name, &label, o);
    }
    t.finish();
}

#[test]
fn js_importer_cids() {
    js_table(false);
}

#[test]
fn js_importer_cids_large() {
    js_table(true);
}

fn describe(cid: &Cid, bytes: &[u8]) -> String {
    let j = json::to_json(cid, bytes).map_or_else(|e| format!("<{e}>"), |j| j.to_string());
    let j =
        if j.len() > 600 { format!("{}…", &j[..j.char_indices().nth(600).map_or(j.len(), |(i, _)| i)]) } else { j };
    format!("{cid}\n    hex  {}\n    json {j}", hex::encode(bytes))
}

#[test]
fn js_blocks_byte_identical() {
    let path = fixtures::testdata().join("unixfs/js-blocks-small.json");
    if !path.exists() {
        panic!("{} is missing (scripts/npm/vectors.mjs writes it)", path.display());
    }
    let doc = fixtures::load_json("unixfs/js-blocks-small.json");
    let mut t = Table::new("ipfs-unixfs-importer blocks (small cases)");
    for case in doc["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let fx = fixture_of(case);
        let opts = case["options"].as_object().cloned().unwrap_or_default();
        let (params, wrap) = match js_params(&opts) {
            Ok(x) => x,
            Err(e) => {
                t.push(name, "", Outcome::Skip(e));
                continue;
            }
        };
        // Theirs: every block is hash-checked on the way in (MemoryBlocks::get verifies).
        let mut theirs = MemoryBlocks::default();
        for (c, hex_bytes) in case["blocks"].as_object().expect("blocks") {
            let cid = vouch_dag::block::parse_cid(c).unwrap();
            theirs.blocks.insert(cid, hex::decode(hex_bytes.as_str().expect("hex")).expect("hex"));
        }
        let their_root = vouch_dag::block::parse_cid(case["root"].as_str().expect("root")).unwrap();
        let theirs =
            crate::dag_blocks(&theirs, &their_root).unwrap_or_else(|e| panic!("{name}: the JS dump is not a DAG: {e}"));

        let mut ours = MemoryBlocks::default();
        let mut node = fx.spec.import(&params, &mut ours).unwrap();
        if wrap {
            node = dir::directory(&params, vec![(fx.name.clone(), node)], &mut ours).unwrap();
        }
        let ours = crate::dag_blocks(&ours, &node.cid).unwrap();

        let mut problem = None;
        for i in 0..ours.len().max(theirs.len()) {
            match (ours.get(i), theirs.get(i)) {
                (Some((oc, ob)), Some((tc, tb))) if oc == tc && ob == tb => {}
                (o, t) => {
                    let show = |b: Option<&(Cid, Vec<u8>)>| b.map_or("(none)".into(), |(c, d)| describe(c, d));
                    problem = Some(format!(
                        "block {i} of {}/{} in DFS order differs\n  ours   {}\n  theirs {}",
                        ours.len(),
                        theirs.len(),
                        show(o),
                        show(t)
                    ));
                    break;
                }
            }
        }
        let o = match problem {
            None => Outcome::Pass,
            Some(p) => {
                eprintln!("{name}: {p}");
                Outcome::Fail(p)
            }
        };
        t.push(name, &format!("{} blocks", theirs.len()), o);
        // Cross-check: where the dump records Kubo's root, it agrees with ours too.
        if let Some(k) = case["kubo_v0_22_root"].as_str() {
            let o = if node.cid.to_string() == k {
                Outcome::Pass
            } else {
                Outcome::Fail(format!("kubo root {k}, ours {}", node.cid))
            };
            t.push(name, "(kubo_v0_22_root)", o);
        }
    }
    t.finish();
}

/// `testdata/car/*.car`, written by @ipld/car from JS imports of fixtures (`*.json` beside each
/// says which): our reader reads them, and importing the same fixtures and writing a CAR the
/// way `ipfs dag export` does (DFS pre-order per root, each block once) gives the same bytes.
#[test]
fn js_written_cars_byte_identical() {
    let dir = fixtures::testdata().join("car");
    let mut described: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    described.sort();
    assert!(!described.is_empty(), "no CAR vectors in {}", dir.display());
    for desc_path in described {
        let desc: Value = serde_json::from_str(&std::fs::read_to_string(&desc_path).unwrap()).unwrap();
        let car_path = fixtures::testdata().join("..").join(desc["file"].as_str().expect("file"));
        let theirs = std::fs::read(&car_path).unwrap_or_else(|e| panic!("{}: {e}", car_path.display()));
        let label = car_path.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(theirs.len() as u64, desc["bytes"].as_u64().unwrap(), "{label}");

        // Read it.
        let cids = |v: &Value| -> Vec<Cid> {
            v.as_array().unwrap().iter().map(|c| vouch_dag::block::parse_cid(c.as_str().unwrap()).unwrap()).collect()
        };
        let mut r = car::CarReader::new(&theirs[..]).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(r.roots(), &cids(&desc["roots"])[..], "{label}: roots");
        let read: Vec<(Cid, Vec<u8>)> = r.by_ref().collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(read.iter().map(|(c, _)| *c).collect::<Vec<_>>(), cids(&desc["block_cids"]), "{label}: blocks");

        // Write it ourselves from our own imports.
        let mut ours = MemoryBlocks::default();
        let mut roots = Vec::new();
        for d in desc["dags"].as_array().unwrap() {
            let fx = fixture_of(d);
            let (p, wrap) = js_params(d["options"].as_object().unwrap()).unwrap();
            let mut node = fx.spec.import(&p, &mut ours).unwrap();
            if wrap {
                node = dir::directory(&p, vec![(fx.name.clone(), node)], &mut ours).unwrap();
            }
            assert_eq!(node.cid.to_string(), d["root"].as_str().unwrap(), "{label}: {} root", fx.name);
            roots.push(node.cid);
        }
        let mut w = car::CarWriter::new(Vec::new(), &roots).unwrap();
        let mut seen = std::collections::HashSet::new();
        for root in &roots {
            car::walk_dag(&ours, root, |c, d| {
                if seen.insert(*c) {
                    w.write(c, d).map_err(vouch_dag::DagError::Io)?;
                }
                Ok(())
            })
            .unwrap();
        }
        let mine = w.finish().unwrap();
        if let Some(at) = mine
            .iter()
            .zip(&theirs)
            .position(|(a, b)| a != b)
            .or((mine.len() != theirs.len()).then(|| mine.len().min(theirs.len())))
        {
            let window = |b: &[u8]| hex::encode(&b[at.saturating_sub(16)..(at + 48).min(b.len())]);
            panic!(
                "{label}: our CAR differs from @ipld/car's at byte {at} (ours {} bytes, theirs {})\n  ours   …{}\n  theirs …{}",
                mine.len(),
                theirs.len(),
                window(&mine),
                window(&theirs)
            );
        }
    }
}

#[test]
fn option_parsers() {
    assert_eq!(parse_bytes(&Value::from("1851B")), Ok(1851));
    assert_eq!(parse_bytes(&Value::from("256KiB")), Ok(262144));
    assert_eq!(parse_bytes(&Value::from(7)), Ok(7));
    assert!(parse_bytes(&Value::from("1XB")).is_err());
    let opts = |v: Value| v.as_object().unwrap().clone();
    let (p, wrap) = js_params(&opts(serde_json::json!({
        "cidVersion": 1, "rawLeaves": true, "chunker": "size-1000", "layout": "balanced",
        "maxChildrenPerNode": 2, "shardSplitThresholdBytes": 1000, "shardSplitStrategy": "links-bytes",
        "wrapWithDirectory": true
    })))
    .unwrap();
    assert!(wrap && p.cid_v1 && p.raw_leaves && !p.shard_at_threshold);
    assert_eq!((p.chunk_size, p.max_links, p.hamt_threshold), (1000, 2, 1000));
    let (p, wrap) = js_params(&opts(serde_json::json!({"profile": "unixfs-v1-2025"}))).unwrap();
    assert_eq!(p, Params::profile("unixfs-v1-2025").unwrap());
    assert!(!wrap);
    assert!(js_params(&opts(serde_json::json!({"layout": "trickle"}))).is_err());
    assert!(kubo_params(&opts(serde_json::json!({"Import.UnixFSRawLeaves": true}))).is_err());
}
