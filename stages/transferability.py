"""DVC stage: transferability scores (LogME, LEEP, NCE, H-score) of every candidate vision backbone on the target
training pools, before fine-tuning: our own backbones (--backbone NAME=DIR, --curve), the imported ones of the vision track
(--imported), a random-init network of the main architecture and, for the main backbone, each body block's output.
Writes scores.csv (a row per candidate × cut × pool size × draw) and timing.csv (wall seconds per candidate)."""
from __future__ import annotations

from pathlib import Path

from stages._common import StageError, own_backbones, stage_main, track_backbones
from transferlab.data.prepared import load_prepared
from transferlab.system.io import atomic_dir
from transferlab.params import Params
from transferlab.experiments.transferability.candidates import RANDOM, score_candidates
from transferlab.system.context import Runtime

SCORES_FILE, TIMING_FILE = "scores.csv", "timing.csv"


def run(params: Params, args, runtime: Runtime):
    backbones = track_backbones(own_backbones(params, args.backbone, args.curve), args.imported, "vision",
                                params.finetune.main_backbone)
    if RANDOM in backbones:
        raise StageError(f"backbone name {RANDOM!r} is taken by the random-init candidate: rename that backbone")
    target = load_prepared(args.target)
    # The pools and draws fine-tuning trains on, so each score meets the accuracy of the same data.
    scores, timing = score_candidates(backbones, target, params.prepare.target.pool_sizes, params.finetune.seeds,
                                      params.transferability, runtime)
    with atomic_dir(args.out) as out:
        scores.to_csv(out / SCORES_FILE, index=False)
        timing.to_csv(out / TIMING_FILE, index=False)
    for t in timing.itertuples():
        print(f"  {t.backbone}: {t.images} images, {t.seconds:.2f} s (features {t.extract_seconds:.2f} s)")
    return scores


def main(argv=None) -> None:
    stage_main(__doc__, {"backbone": "NAME=DIR of a pre-trained model of our own (repeat; finetune's)",
                         "curve": "the source-size curve's backbones and the control (stage pretrain_curve)",
                         "imported": "import_backbones' folder (its manifest.json names each backbone's track)",
                         "target": "prepared B", "out": "scores dir"}, run, argv,
               repeated=("backbone",), optional=("curve",))


if __name__ == "__main__":
    main()
