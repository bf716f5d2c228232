#!/usr/bin/env python3
"""Generate the synthetic clinical dataset used by `vouch demo` (no real patient data).

Deterministic: `python3 make_dataset.py > patients.csv` always writes the same bytes.
"""
import random

rng = random.Random(20261125)
print("patient_id,age,sex,bmi,systolic_bp,cholesterol,smoker,treatment,outcome_score")
for i in range(1, 2001):
    age = rng.randint(25, 85)
    sex = rng.choice("FM")
    bmi = round(rng.gauss(27.0, 4.5), 1)
    smoker = 1 if rng.random() < 0.22 else 0
    treatment = rng.choice(["placebo", "drug_a", "drug_b"])
    sbp = int(rng.gauss(118 + 0.45 * age + 6 * smoker, 12))
    chol = int(rng.gauss(170 + 0.6 * age + 2 * (bmi - 27), 28))
    effect = {"placebo": 0.0, "drug_a": 4.5, "drug_b": 2.0}[treatment]
    score = round(50 + effect - 0.12 * (age - 55) - 0.4 * (bmi - 27) - 3 * smoker + rng.gauss(0, 6), 2)
    print(f"P{i:05d},{age},{sex},{bmi},{sbp},{chol},{smoker},{treatment},{score}")
