"""DVC stage: the transferability scores checked against the sweep. Joins each backbone's scores with the accuracy
its fine-tuning under finetune.ablation_strategy reached on the same pool draws, computes Kendall's τ between mean
score and mean accuracy across backbones with a bootstrap CI over seeds, per pool size and score, and judges the
claim "the score ranks backbones as fine-tuning does" from it (claims.json); DVC metrics."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages._common import StageError, stage_main
from transferlab.analysis.claims import CLAIMS_FILE, write_claims
from transferlab.system.io import atomic_dir, write_json
from transferlab.params import CONTROL_BACKBONE, Params
from transferlab.experiments.transferability.rankcheck import control_claims, join_scores, measured, rank_claims, summary_metrics, tau_table

JOINED_FILE, TAU_FILE = "joined.csv", "tau.csv"


def run(params: Params, args) -> dict:
    scores = pd.read_csv(Path(args.scores) / "scores.csv")
    timing = pd.read_csv(Path(args.scores) / "timing.csv")
    runs = pd.read_csv(Path(args.finetune) / "runs.csv")
    names = [s for s in params.transferability.scores if s in scores.columns]
    if not names:
        raise StageError(f"{Path(args.scores) / 'scores.csv'} has none of the scores {params.transferability.scores}")
    strategy, conf = params.finetune.ablation_strategy, params.evaluate.confidence
    accuracy = measured(runs, params.finetune.main_backbone, strategy)
    joined = join_scores(scores, accuracy, names)
    taus = tau_table(joined, names, params.transferability.bootstrap, conf)
    claims = rank_claims(taus, strategy, conf) + control_claims(scores, names, CONTROL_BACKBONE)
    with atomic_dir(args.out) as out:
        joined.to_csv(out / JOINED_FILE, index=False)
        taus.to_csv(out / TAU_FILE, index=False)
        write_claims(out / CLAIMS_FILE, claims)
    metrics = summary_metrics(taus, timing)
    write_json(args.metrics, metrics)
    for c in claims:
        print(f"  [{c.verdict}] {c.statement} — {c.evidence}")
    return metrics


def main(argv=None) -> None:
    stage_main(__doc__, {"scores": "transferability scores dir", "finetune": "fine-tune results dir",
                         "out": "check dir", "metrics": "metrics JSON"}, run, argv)


if __name__ == "__main__":
    main()
