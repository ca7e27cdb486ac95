"""DVC stage: fine-tune on a target task B for every strategy × pool size × seed (and the vision ablation).

--track vision: handwritten digits, pools of n per class; audio: wake-word detection, pools of n positives.
The backbones are the track's own (--backbone NAME=DIR) and the imported ones of the same track (--imported,
stage import_backbones); the params' main_backbone runs every strategy, the others its ablation_strategy."""
from __future__ import annotations

from pathlib import Path

from stages._common import StageError, own_backbones, stage_main, track_backbones
from transferlab.params import curve_backbones
from transferlab.experiments.transfer.finetune import run_sweep
from transferlab.system.io import atomic_dir
from transferlab.params import Params
from transferlab.system.context import Runtime


def run(params: Params, args, runtime: Runtime):
    tracks = {"vision": (params.finetune, params.prepare.target.pool_sizes),
              "audio": (params.audio.finetune, params.audio.prepare.target.pool_sizes)}
    if args.track not in tracks:
        raise StageError(f"--track must be one of {sorted(tracks)}, got {args.track!r}")
    cfg, pool_sizes = tracks[args.track]
    if args.track == "audio" and args.curve:
        raise StageError("--curve is the vision track's source-size curve; the audio track has none")
    if args.streams and args.track != "audio":
        raise StageError("--streams is the audio track's: the wake-word models are scored on continuous audio")
    backbones = track_backbones(own_backbones(params, args.backbone, args.curve), args.imported, args.track,
                                cfg.main_backbone)
    # The curve's backbones are fine-tuned at two target sizes only: gain vs source size, not a whole sweep each.
    sizes_for = ({b: params.curve_pool_sizes() for b in curve_backbones(params.pretrain.source_sizes)}
                 if args.curve else None)
    scorer = None
    if args.streams:
        # The audio track's code, imported here: not a dependency of the vision sweep (dvc.yaml's deps say so).
        from transferlab.experiments.wakeword.stream_eval import SCORES_FILE, StreamScorer

        scorer = StreamScorer.from_params(params.audio, args.streams)
    with atomic_dir(args.out) as out, atomic_dir(args.models) as models:
        # With streams every run is scored on them and each saved model's card gets its threshold.
        return run_sweep(cfg, backbones, Path(args.target), pool_sizes, out, models, runtime, sizes_for=sizes_for,
                         evaluate_run=scorer, evaluate_file=SCORES_FILE if scorer else "")


def main(argv=None) -> None:
    stage_main(__doc__, {"track": "vision | audio", "backbone": "NAME=DIR of a pre-trained model of our own (repeat)",
                         "curve": "vision: the source-size curve's backbones and the control (stage pretrain_curve)",
                         "imported": "import_backbones' folder (its manifest.json names each backbone's track)",
                         "target": "prepared B", "out": "predictions + runs table dir",
                         "models": "fine-tuned models dir (seed 0 of each run group)",
                         "streams": "audio: stage audio_streams' folder; every run is scored on it and each saved "
                                    "model's card gets its threshold"}, run, argv,
               repeated=("backbone",), optional=("curve", "streams"))


if __name__ == "__main__":
    main()
