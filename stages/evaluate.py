"""DVC stage: test metrics per run, learning curves with 95% CIs, transfer gains, power-law fits and their held-out
check (extrapolation.csv, power_law.csv), the vision claims judged from them (claims.json); DVC metrics and plots."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages._common import own_backbones, publish, stage_main
from transferlab.analysis.claims import CLAIMS_FILE, arm, guard, vision_claims, write_claims
from transferlab.data.prepared import load_prepared
from transferlab.analysis.curves import confusion_rows, learning_curves, paired_gains, run_metrics, summary_metrics
from transferlab.analysis.extrapolate import holdout_claim, holdout_metrics, holdout_table, power_law_table
from transferlab.system.io import atomic_dir, read_json, write_json
from transferlab.params import Params, curve_backbones
from transferlab.analysis.sourcecurve import SOURCE_CURVE_FILE, curve_claims, curve_metrics, curve_table


def run(params: Params, args) -> dict:
    cards = {name: read_json(path / "card.json")
             for name, path in own_backbones(params, args.backbone, args.curve).items()}
    target = load_prepared(args.target)
    runs, confusion = run_metrics(Path(args.finetune), len(target.classes))
    conf = params.evaluate.confidence
    main_backbone = runs["backbone"].iloc[0]
    curves = learning_curves(runs, conf)
    gains = paired_gains(runs, (main_backbone, "scratch"), conf) if "scratch" in set(runs["strategy"]) else None
    with atomic_dir(args.out) as out, atomic_dir(args.plots) as plots:
        runs.to_csv(out / "runs.csv", index=False)
        curves.to_csv(out / "curves.csv", index=False)
        if gains is not None:
            gains.to_csv(out / "gains.csv", index=False)
        write_json(out / "confusion.json", confusion)
        # Judged on the table as written (read back), so anyone re-judging runs.csv gets the same verdicts.
        written = pd.read_csv(out / "runs.csv")
        # Learning-curve extrapolation, checked by predicting the largest pool from the smaller ones; a sweep with
        # too few pool sizes (the smoke profile) gets rows saying so and an inconclusive claim, not a failure.
        holdout, law = holdout_table(written, conf), power_law_table(written, conf)
        holdout.to_csv(out / "extrapolation.csv", index=False)
        law.to_csv(out / "power_law.csv", index=False)
        curve_names = set(curve_backbones(params.pretrain.source_sizes))
        claims = vision_claims(written, params.finetune.ablation_strategy, conf, params.report.min_effect,
                               curve=curve_names)
        # The source-size curve (and its control) against the main backbone's scratch runs, paired by seed.
        source_images = {name: int(card["metrics"].get("train_images", 0)) for name, card in cards.items()}
        curve = curve_table(written, source_images, str(main_backbone), params.finetune.ablation_strategy,
                            len(target.classes), conf)
        curve.to_csv(out / SOURCE_CURVE_FILE, index=False)
        claims += curve_claims(written, curve, str(main_backbone), params.report.min_effect, conf)
        # The power law models accuracy at convergence: a run at its cap anywhere on the main curves voids the check.
        main_runs = written[written["backbone"] == main_backbone]
        claims.append(guard(holdout_claim(pd.read_csv(out / "extrapolation.csv")), written,
                            [arm(str(main_backbone), s, int(n)) for s, n in
                             main_runs[["strategy", "per_class"]].drop_duplicates().itertuples(index=False)]))
        write_claims(out / CLAIMS_FILE, claims)
        main = curves[curves["backbone"] == main_backbone]
        wide = main.pivot(index="per_class", columns="strategy", values="accuracy").reset_index()
        wide.to_csv(plots / "learning_curve.csv", index=False)
        confusion_rows(runs, confusion, target.classes, params.evaluate.focus_per_class,
                       main_backbone).to_csv(plots / "confusion.csv", index=False)
    metrics = {**summary_metrics(curves, main_backbone), **holdout_metrics(holdout), **curve_metrics(curve)}
    return publish(args.metrics, metrics, claims)


def main(argv=None) -> None:
    stage_main(__doc__, {"finetune": "fine-tune results dir", "target": "prepared B",
                         "backbone": "NAME=DIR of a pre-trained model (repeat; the first is the main one)",
                         "curve": "the source-size curve's backbones and the control (stage pretrain_curve)",
                         "out": "evaluation dir", "plots": "DVC plots dir", "metrics": "metrics JSON"}, run, argv,
               repeated=("backbone",), optional=("curve",))


if __name__ == "__main__":
    main()
