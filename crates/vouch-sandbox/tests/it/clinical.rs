//! The demo analysis: clinical_summary's numbers match an independent computation in Rust.

use std::collections::BTreeMap;

use vouch_sandbox::Outcome;

use crate::{Dirs, prepare, sandbox, stdout};

const PATIENTS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/clinical/patients.csv"));

/// (treatment, group) -> outcome scores, straight from the CSV.
fn groups(csv: &str) -> BTreeMap<(String, &'static str), Vec<f64>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (smoker, treatment, score) = (col("smoker"), col("treatment"), col("outcome_score"));
    let mut groups: BTreeMap<(String, &'static str), Vec<f64>> = BTreeMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let x: f64 = f[score].parse().unwrap();
        let group = if f[smoker] == "1" { "smoker" } else { "non_smoker" };
        groups.entry((f[treatment].to_owned(), "all")).or_default().push(x);
        groups.entry((f[treatment].to_owned(), group)).or_default().push(x);
    }
    groups
}

/// Two-pass mean and sample standard deviation (the guest uses Welford's method).
fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    (mean, (ss / (n - 1.0)).sqrt())
}

#[test]
fn summary_matches_an_independent_computation() {
    let dirs = Dirs::fresh();
    std::fs::write(dirs.inputs().join("patients.csv"), PATIENTS).unwrap();
    let result = sandbox().run(&prepare(sandbox(), "clinical_summary"), &dirs.spec(&[])).unwrap();
    assert_eq!(result.outcome, Outcome::Exited(0), "{}", String::from_utf8_lossy(&result.stderr));
    assert!(stdout(&result).starts_with("clinical_summary: 2000 patients, 3 treatments\n"), "{}", stdout(&result));

    let summary = std::fs::read_to_string(dirs.outputs().join("summary.csv")).unwrap();
    let mut lines = summary.lines();
    assert_eq!(lines.next(), Some("treatment,group,n,mean_outcome,sd_outcome"));
    let expected = groups(PATIENTS);
    let mut seen = 0;
    let mut order = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let xs = &expected[&(
            f[0].to_owned(),
            match f[1] {
                "all" => "all",
                "smoker" => "smoker",
                "non_smoker" => "non_smoker",
                other => panic!("group {other}"),
            },
        )];
        let (mean, sd) = mean_sd(xs);
        assert_eq!(f[2].parse::<usize>().unwrap(), xs.len(), "{line}");
        // Printed with 4 decimals: equal up to rounding of the last digit.
        assert!((f[3].parse::<f64>().unwrap() - mean).abs() <= 0.00005 + 1e-9, "{line}: mean {mean}");
        assert!((f[4].parse::<f64>().unwrap() - sd).abs() <= 0.00005 + 1e-9, "{line}: sd {sd}");
        order.push(format!("{},{}", f[0], f[1]));
        seen += 1;
    }
    assert_eq!(seen, expected.len());
    assert_eq!(
        order,
        [
            "drug_a,all",
            "drug_a,smoker",
            "drug_a,non_smoker",
            "drug_b,all",
            "drug_b,smoker",
            "drug_b,non_smoker",
            "placebo,all",
            "placebo,smoker",
            "placebo,non_smoker"
        ]
    );

    // Deterministic: a second run writes the same bytes.
    let again = Dirs::fresh();
    std::fs::write(again.inputs().join("patients.csv"), PATIENTS).unwrap();
    let result2 = sandbox().run(&prepare(sandbox(), "clinical_summary"), &again.spec(&[])).unwrap();
    assert_eq!(result2.stdout, result.stdout);
    assert_eq!(result2.usage.fuel_consumed, result.usage.fuel_consumed);
    assert_eq!(std::fs::read_to_string(again.outputs().join("summary.csv")).unwrap(), summary);
}

#[test]
fn malformed_input_is_reported_by_the_guest() {
    let dirs = Dirs::fresh();
    std::fs::write(dirs.inputs().join("patients.csv"), "patient_id,smoker,treatment,outcome_score\nP1,0,placebo,abc\n")
        .unwrap();
    let result = sandbox().run(&prepare(sandbox(), "clinical_summary"), &dirs.spec(&[])).unwrap();
    assert_eq!(result.outcome, Outcome::Exited(1));
    assert_eq!(String::from_utf8_lossy(&result.stderr), "line 2: outcome_score is not a number: 'abc'\n");
    let missing = Dirs::fresh();
    let result = sandbox().run(&prepare(sandbox(), "clinical_summary"), &missing.spec(&[])).unwrap();
    assert_eq!(result.outcome, Outcome::Exited(1));
}
