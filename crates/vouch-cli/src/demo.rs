//! `vouch demo`: the end-to-end story on the embedded store: add a synthetic clinical dataset,
//! move it as a CAR and check it, run a real analysis module on it in the sandbox, and verify
//! the signed receipt (and replay it) offline.

use anyhow::{Context, Result, ensure};
use vouch_dag::Params;
use vouch_dag::export::read_file;
use vouch_dag::file::import_bytes;
use vouch_store::Store;

use crate::commands::import_car;

const ANALYSIS_LEN: usize = ANALYSIS.len();
use crate::home::Home;

/// Synthetic records (no real patient data): see examples/clinical/make_dataset.py.
const DATASET: &[u8] = include_bytes!("../../../examples/clinical/patients.csv");
/// The analysis: guests/src/clinical_summary.c, built by guests/build.sh.
const ANALYSIS: &[u8] = include_bytes!("../../../guests/wasm/clinical_summary.wasm");

pub fn run(home: &Home) -> Result<()> {
    let store = home.store()?;
    println!("Vouch demo: home {}", home.dir.display());

    let mut batch = store.batch()?;
    let root = import_bytes(&Params::default(), DATASET, &mut batch)?;
    batch.pin(root.cid);
    batch.commit()?;
    let rows = DATASET.iter().filter(|&&b| b == b'\n').count() - 1;
    println!("1. added patients.csv ({} bytes, {rows} synthetic patients)", DATASET.len());
    println!("   CID {}  (the CID `ipfs add` gives these bytes)", root.cid);

    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let car_path = scratch.path().join("patients.car");
    crate::commands::write_car_file(&store, &root.cid, &car_path)?;
    println!("2. exported the DAG as CARv1: {} ({} bytes)", car_path.display(), std::fs::metadata(&car_path)?.len());

    let other = Store::open(&scratch.path().join("other-store"))?;
    let report = import_car(&other, &car_path, true)?;
    println!("3. imported it into a second, empty store: {} blocks verified, roots {:?}", report.blocks, report.roots);

    let mut back = Vec::new();
    read_file(&other, &root.cid, &mut back)?;
    ensure!(back == DATASET, "the re-imported file differs from the original");
    println!("4. read it back from the second store: {} bytes, identical to the original", back.len());
    let head: Vec<&str> = std::str::from_utf8(&back)?.lines().take(3).collect();
    for line in head {
        println!("   | {line}");
    }

    // The job: code travels to the data.
    let mut batch = store.batch()?;
    let module = import_bytes(&Params::default(), ANALYSIS, &mut batch)?.cid;
    batch.commit()?;
    let mut spec = vouch_receipt::JobSpec::new(module);
    spec.inputs.insert("patients.csv".into(), root.cid);
    spec.args = vec!["clinical_summary.wasm".into()];
    spec.limits.fuel = Some(1_000_000_000);
    let sandbox = crate::job::sandbox(home)?;
    let result = crate::job::execute(
        home,
        &store,
        &sandbox,
        &home.identity()?,
        &crate::job::Attest::none(),
        &spec,
        &Default::default(),
    )?;
    let b = &result.receipt.body;
    println!("5. ran clinical_summary.wasm ({ANALYSIS_LEN} bytes, module {module}) on it in the sandbox");
    println!("   job {}  outcome: {}", b.job, b.outcome);
    println!("   output {}  (/outputs/summary.csv)", b.output.map_or_else(|| "-".into(), |c| c.to_string()));
    for line in String::from_utf8_lossy(&result.stdout).lines() {
        println!("   | {line}");
    }
    println!("6. the node signed a receipt: {}", result.receipt_cid);

    let bytes = store.get(&result.receipt_cid)?;
    let opts = vouch_receipt::VerifyOptions { allow_insecure: true, ..Default::default() };
    let report = vouch_receipt::verify(&bytes, &opts);
    ensure!(report.verified(), "the receipt does not verify: {report}");
    println!(
        "7. verified it offline: {} claims passed (signature, job CID, spec, limits, evidence binding, time)",
        report.claims.iter().filter(|c| matches!(c.status, vouch_receipt::Status::Passed { .. })).count()
    );
    println!("   evidence: none — this machine made NO HARDWARE CLAIM; accepted here only because the demo");
    println!(
        "   allows insecure receipts (`vouch run --tee tpm|sev-snp|tdx` attaches hardware evidence; `vouch verify` rejects `none` by default)"
    );
    println!(
        "Next: `vouch verify {} --allow-insecure --replay --explain` re-runs the job and checks every claim.",
        result.receipt_cid
    );
    Ok(())
}
