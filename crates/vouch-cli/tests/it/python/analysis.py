"""Clinical summary: outcome_score by treatment (mean, std, count).

Usage: analysis.py [DATA.csv] [OUTDIR]   (defaults: /inputs/data.csv, /outputs — the paths a
`vouch run --python` job sees). Writes OUTDIR/result.csv and prints it.
"""
import sys

import pandas as pd

data = sys.argv[1] if len(sys.argv) > 1 else "/inputs/data.csv"
outdir = sys.argv[2] if len(sys.argv) > 2 else "/outputs"

df = pd.read_csv(data)
summary = df.groupby("treatment")["outcome_score"].agg(["mean", "std", "count"]).sort_index()
summary.to_csv(f"{outdir}/result.csv", float_format="%.17g")
print(summary.to_csv(float_format="%.17g"), end="")
