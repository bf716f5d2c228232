//! `vouch demo --confidential`: the hospital and the pharma lab on one machine, three nodes in
//! one process on loopback. The hospital seals its (synthetic) records; the lab seals its
//! analysis module; each runs a key broker with its own access policy. A compute node fetches
//! both ciphertexts over bitswap, asks both brokers for the keys with evidence bound to a fresh
//! ephemeral key, runs the job with the plaintext only inside its runtime, and seals the result
//! to the lab. The lab verifies the receipt and opens the result; the compute node's store is
//! checked to hold no plaintext of either secret.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use vouch_dag::{BlockSink, Cid, MemoryBlocks};
use vouch_node::{Daemon, NodeConfig};

use crate::home::Home;
use crate::seal_cli::{NodeBroker, seal_into_store};

const DATASET: &[u8] = include_bytes!("../../../examples/clinical/patients.csv");
const ANALYSIS: &[u8] = include_bytes!("../../../guests/wasm/clinical_summary.wasm");

fn policy(module: &Cid, lab: &str) -> String {
    // Development evidence (`none`) is accepted here, loudly: on a machine with a TEE the
    // owners would require `tpm`, `sev-snp` or `tdx` (docs/seal.md §4).
    format!(
        "[modules]\nallow = [\"{module}\"]\n\
         [evidence]\nrequire = [\"none\"]\nallow_insecure = true\n\
         [capabilities]\nargs = \"any\"\nenv = \"none\"\n\
         [results]\nrecipients = [\"{lab}\"]\nmax_output_bytes = 4194304\n"
    )
}

fn loopback() -> Result<NodeConfig> {
    Ok(NodeConfig {
        api: "127.0.0.1:0".parse()?,
        swarm: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        ..NodeConfig::default()
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

pub fn run() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("vouch-confidential-").tempdir()?;
    let home = |name: &str| -> Result<Home> {
        let h = Home { dir: dir.path().join(name) };
        h.identity()?;
        Ok(h)
    };
    let (hospital, lab, compute) = (home("hospital")?, home("lab")?, home("compute")?);
    println!("Vouch confidential demo: three nodes under {}", dir.path().display());

    // The lab: a recipient key for results, and its algorithm sealed.
    let lab_key = vouch_seal::HpkeSecretKey::generate();
    let lab_pub = lab_key.public().to_string();
    let (module, _, _) = seal_into_store(&lab, ANALYSIS, ANALYSIS.len() as u64, 1 << 16, None)?;
    let lab_policy = policy(&module, &lab_pub);
    crate::seal_cli::set_policy_text(&lab, &module, &lab_policy)?;
    println!("1. lab: sealed its analysis ({} bytes of Wasm) as {module}", ANALYSIS.len());
    println!("   its broker releases the module key only to a job running that module, results sealed to the lab");

    // The hospital: the records sealed under its policy, which approves the lab's module by CID.
    let (records, _, _) =
        seal_into_store(&hospital, DATASET, DATASET.len() as u64, 1 << 16, Some(policy(&module, &lab_pub)))?;
    println!("2. hospital: sealed patients.csv ({} bytes) as {records}", DATASET.len());
    println!("   its policy: only module {module}, no environment, results only to the lab, at most 4 MiB");

    // The two owners' nodes, each serving its ciphertext and its broker.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let start = |h: &Home| {
        let broker: Arc<dyn vouch_node::KeyService> = Arc::new(NodeBroker::new(h)?);
        rt.block_on(Daemon::start_with(&h.dir, loopback()?, None, Some(broker))).map_err(anyhow::Error::from)
    };
    let (hd, ld) = (start(&hospital)?, start(&lab)?);
    let addr = |d: &Daemon| d.info().swarm.first().cloned().context("a daemon listens nowhere");
    let (haddr, laddr) = (addr(&hd)?, addr(&ld)?);
    println!("3. hospital node {}  lab node {}", hd.info().peer_id, ld.info().peer_id);

    // The compute node fetches both ciphertexts over bitswap, every block verified.
    let store = Arc::new(compute.store()?);
    let (net, task) = {
        let _in = rt.enter();
        vouch_net::Node::spawn(vouch_net::Config::new(compute.identity()?.to_bytes()), store.clone())?
    };
    let mut batch = store.batch()?;
    rt.block_on(async {
        net.connect(haddr.clone()).await?;
        net.connect(laddr.clone()).await?;
        net.fetch_dag(records, &mut batch, Duration::from_secs(30)).await?;
        net.fetch_dag(module, &mut batch, Duration::from_secs(30)).await?;
        anyhow::Ok(())
    })?;
    batch.pin(records);
    batch.pin(module);
    batch.commit()?;
    println!("4. compute node {}: fetched both ciphertexts over bitswap", net.peer_id());

    let mut spec = vouch_receipt::JobSpec::new(module);
    spec.args = vec!["clinical_summary.wasm".into()];
    spec.inputs.insert("patients.csv".into(), records);
    spec.recipient = Some(lab_key.public().0.to_vec());
    spec.limits.output_bytes = 1 << 20;
    spec.limits.stdout_bytes = 1 << 16;
    spec.limits.stderr_bytes = 1 << 16;
    let attest = crate::job::Attest::none();
    let key = compute.identity()?;
    let keys = crate::seal_cli::release(&compute, &store, &spec, &attest, &key, &[haddr, laddr], &[])?;
    ensure!(keys.len() == 2, "expected the module key and the records key, got {}", keys.len());
    println!("5. both brokers released their keys to the compute node's runtime (evidence: none, dev mode)");
    let sandbox = crate::job::sandbox(&compute)?;
    let result = crate::job::execute(&compute, &store, &sandbox, &key, &attest, &spec, &keys)?;
    let b = &result.receipt.body;
    println!("6. ran job {}: {}", b.job, b.outcome);
    println!(
        "   receipt {}  output {} (sealed to the lab)",
        result.receipt_cid,
        b.output.map_or("-".into(), |c| c.to_string())
    );

    // The lab checks the receipt offline and opens its result.
    let bytes = store.get(&result.receipt_cid)?;
    // Both keys must have been released under the owners' policy (here one text for both).
    let owners = vec![vouch_seal::AccessPolicy::from_toml_str(&lab_policy)?.digest];
    let opts = vouch_receipt::VerifyOptions { allow_insecure: true, access_policies: owners, ..Default::default() };
    let report = vouch_receipt::verify_with(&bytes, &opts, &|c| store.get(c).ok());
    ensure!(report.verified(), "the receipt did not verify: {:?}", report.first_failure());
    let output = b.output.context("the job wrote no output")?;
    let mut sealed = Vec::new();
    vouch_dag::export::read_file(&*store, &output, &mut sealed)?;
    let mut car = Vec::new();
    let (job, _) = vouch_seal::open_result(&lab_key, &sealed[..], &mut car)?;
    ensure!(job == b.job, "the result is bound to job {job}, not {}", b.job);
    let mut reader = vouch_dag::car::CarReader::new(&car[..])?;
    let root = reader.roots()[0];
    let mut blocks = MemoryBlocks::default();
    while let Some((c, d)) = reader.next_block()? {
        blocks.put(&c, &d)?;
    }
    let summary = vouch_dag::export::resolve(&blocks, &root, "summary.csv")?;
    let mut text = Vec::new();
    vouch_dag::export::read_file(&blocks, &summary, &mut text)?;
    println!(
        "7. lab: receipt verified ({} claims; both keys released under the owners' policy), result opened with its key:",
        report.claims.len()
    );
    for line in String::from_utf8_lossy(&text).lines() {
        println!("   | {line}");
    }

    // What the compute node's operator holds: ciphertext only.
    let mut plaintext_found = false;
    let mut files = 0;
    for entry in walk(&compute.dir)? {
        let bytes = std::fs::read(&entry)?;
        files += 1;
        plaintext_found |=
            contains(&bytes, &DATASET[..256]) || contains(&bytes, &ANALYSIS[..256]) || contains(&bytes, &text);
    }
    ensure!(!plaintext_found, "plaintext found in the compute node's store");
    println!(
        "8. compute node's home ({files} files: store, keys, logs): no plaintext of the records, the module or the result"
    );
    for (who, h) in [("hospital", &hospital), ("lab", &lab)] {
        let log = std::fs::read_to_string(h.dir.join("broker").join("audit.log"))?;
        for line in log.lines() {
            let e: serde_json::Value = serde_json::from_str(line)?;
            println!(
                "   {who} broker audit log #{}: {} job {} to node key {}… ({} evidence)",
                e["seq"],
                e["decision"].as_str().unwrap_or("?"),
                e["job"].as_str().unwrap_or("?"),
                &e["node_key"].as_str().unwrap_or("?")[..16],
                e["technology"].as_str().unwrap_or("?")
            );
        }
    }

    rt.block_on(async {
        net.shutdown().await;
        let _ = task.await;
        hd.shutdown().await?;
        ld.shutdown().await
    })?;
    Ok(())
}

fn walk(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    Ok(out)
}
