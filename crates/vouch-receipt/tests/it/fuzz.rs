//! The `receipt` fuzz target's logic (fuzz/receipt/body.rs) over a seed corpus, so CI runs it
//! without libFuzzer: the golden receipt and spec, every truncation, every single-byte flip,
//! and whatever libFuzzer has found worth keeping (fuzz/regressions/receipt/).

#[path = "../../../../fuzz/receipt/body.rs"]
mod body;

use std::path::Path;

#[test]
fn receipt_fuzz_body_over_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for dir in ["seeds/receipt", "regressions/receipt"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
            for e in entries {
                seeds.push(std::fs::read(e.unwrap().path()).unwrap());
            }
        }
    }
    assert!(seeds.len() >= 2, "the committed seeds are missing");
    let mut runs = 0;
    for seed in &seeds {
        body::receipt(seed);
        for cut in 0..seed.len() {
            body::receipt(&seed[..cut]);
        }
        for i in 0..seed.len() {
            let mut b = seed.clone();
            b[i] ^= 0x80;
            body::receipt(&b);
        }
        runs += 1 + 2 * seed.len();
    }
    assert!(runs > 1000, "{runs}");
}
