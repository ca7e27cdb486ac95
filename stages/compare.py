"""DVC stage: pipeline vs end-to-end per track — accuracy vs training-set size with 95% CIs, paired
differences, the crossover (if any) and the claim verdicts."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages._common import publish, stage_main
from transferlab.experiments.branches.compare import branch_claims, curves, differences, summary, sweep_table
from transferlab.analysis.claims import CLAIMS_FILE, write_claims
from transferlab.system.io import atomic_dir, read_json, write_json
from transferlab.params import Params


def run(params: Params, args) -> dict:
    dirs = [Path(b) for b in args.branch]
    runs = pd.concat([pd.read_csv(d / "runs.csv") for d in dirs], ignore_index=True)
    stage1 = {d.name: read_json(d / "stage1.json") for d in dirs}
    conf = params.branches.compare.confidence
    curve, diff = curves(runs, conf), differences(runs, conf)
    claims = branch_claims(diff, params.report.min_effect, runs)
    with atomic_dir(args.out) as out, atomic_dir(args.plots) as plots:
        runs.to_csv(out / "runs.csv", index=False)
        curve.to_csv(out / "curves.csv", index=False)
        diff.to_csv(out / "differences.csv", index=False)
        write_claims(out / CLAIMS_FILE, claims)
        write_json(out / "stage1.json", stage1)
        sweep_table(curve).to_csv(plots / "sweep.csv", index=False)
    metrics = summary(curve, diff)
    return publish(args.metrics, metrics, claims)


def main(argv=None) -> None:
    stage_main(__doc__, {"branch": "a branch results dir (repeat)", "out": "comparison dir", "plots": "DVC plots dir",
                         "metrics": "metrics JSON"}, run, argv, repeated=("branch",))


if __name__ == "__main__":
    main()
