"""DVC stage: wake-word detector metrics per run (AUROC, FRR at fixed FAR, false accepts per hour), curves
with 95% CIs over seeds, DET curves, FRR as a multiple of the ceiling's (stage audio_ceiling), the wake-word
claims judged from them (claims.json); DVC metrics and plots."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages._common import StageError, publish, stage_main
from transferlab.experiments.wakeword.claims import wake_word_claims
from transferlab.experiments.wakeword.evaluate import (StreamJudging, claim_key, evaluate_detectors, frr_plot_table,
                                                       mean_clip_seconds, summary)
from transferlab.analysis.claims import CLAIMS_FILE, write_claims
from transferlab.data.prepared import load_prepared
from transferlab.experiments.wakeword.metrics import far_key
from transferlab.experiments.wakeword.stream_eval import SCORES_FILE, StreamScorer
from transferlab.system.io import atomic_dir, read_json, write_json
from transferlab.params import Params


def run(params: Params, args) -> dict:
    cfg = params.audio.evaluate
    target = load_prepared(args.target)
    test = target.metadata[target.metadata["split"] == "test"]
    ceiling = read_json(args.ceiling)
    key = far_key(cfg.far_targets[0])
    if key not in ceiling:
        raise StageError(f"{args.ceiling} has no {key}: it was scored at other FAR targets; re-run audio_ceiling")
    streams = stream_judging(params, Path(args.finetune), args.streams) if args.streams else None
    tables = evaluate_detectors(Path(args.finetune), cfg, mean_clip_seconds(target.metadata),
                                params.evaluate.confidence, test["kind"].to_numpy() if "kind" in test else None,
                                ceiling, streams)
    with atomic_dir(args.out) as out, atomic_dir(args.plots) as plots:
        for name, table in tables.items():
            table.to_csv(out / f"{name}.csv", index=False)
        # Judged on the tables as written (read back), so anyone re-judging them gets the same verdicts.
        claims = wake_word_claims(pd.read_csv(out / "runs.csv"), pd.read_csv(out / "curves.csv"), cfg,
                                  params.evaluate.confidence, params.report.min_effect,
                                  pd.read_csv(out / "ceiling.csv"), claim_key(cfg, streams))
        write_claims(out / CLAIMS_FILE, claims)
        frr_plot_table(tables["curves"], cfg).to_csv(plots / "frr_curve.csv", index=False)
        tables["det"].to_csv(plots / "det.csv", index=False)
        if streams is not None:
            write_json(out / "streams.json", {**streams.scorer.settings.as_dict(), "rates": streams.rates,
                                              "target_fa_per_hour": streams.target,
                                              "hours": streams.scorer.stream_hours()})
    metrics = summary(tables["curves"], cfg, tables["ceiling"], streams)
    return publish(args.metrics, metrics, claims)


def stream_judging(params: Params, finetune: Path, streams: str) -> StreamJudging:
    """The runs' saved stream scores, judged on the streams with the params' detector settings and rates."""
    d = params.audio.detect
    return StreamJudging(StreamScorer.from_params(params.audio, streams), finetune / SCORES_FILE, list(d.fa_rates),
                         d.target_fa_per_hour)


def main(argv=None) -> None:
    stage_main(__doc__, {"finetune": "audio fine-tune results dir", "target": "prepared audio B",
                         "ceiling": "the ceiling detector's JSON (stage audio_ceiling)",
                         "out": "evaluation dir", "plots": "DVC plots dir", "metrics": "metrics JSON",
                         "streams": "stage audio_streams' folder (the sweep scored every run on it)"}, run, argv,
               optional=("streams",))


if __name__ == "__main__":
    main()
