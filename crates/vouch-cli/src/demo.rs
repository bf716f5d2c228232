//! `vouch demo`: the end-to-end story on the embedded store. For now, the content part: add a
//! synthetic clinical dataset, show its CID, export a CAR, re-import it into a second store and
//! check the bytes come back identical.

use anyhow::{Context, Result, ensure};
use vouch_dag::Params;
use vouch_dag::export::read_file;
use vouch_dag::file::import_bytes;
use vouch_store::Store;

use crate::commands::import_car;
use crate::home::Home;

/// Synthetic records (no real patient data): see examples/clinical/make_dataset.py.
const DATASET: &[u8] = include_bytes!("../../../examples/clinical/patients.csv");

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
    let mut w = std::io::BufWriter::new(std::fs::File::create(&car_path)?);
    let mut car = vouch_dag::car::CarWriter::new(&mut w, &[root.cid])?;
    vouch_dag::car::walk_dag(&store, &root.cid, |c, d| {
        car.write(c, d).map_err(|e| vouch_store::StoreError::Dag(e.into()))
    })?;
    drop(car);
    std::io::Write::flush(&mut w)?;
    drop(w);
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
    println!("Next: `vouch cat {}` prints the dataset from your store.", root.cid);
    Ok(())
}
