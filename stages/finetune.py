"""DVC stage: fine-tune on a target task B for every strategy × pool size × seed (and the vision ablation).

--track vision: handwritten digits, pools of n per class; audio: wake-word detection, pools of n positives.
The backbones are the track's own (--backbone NAME=DIR) and the imported ones of the same track (--imported,
stage import_backbones); the params' main_backbone runs every strategy, the others its ablation_strategy."""
from __future__ import annotations

from pathlib import Path

from stages._common import StageError, parse_backbones, stage_main, track_backbones
from transferlab.finetune import run_sweep
from transferlab.io import atomic_dir
from transferlab.parallel import workers
from transferlab.params import Params
from transferlab.runtime import configure


def run(params: Params, args):
    tracks = {"vision": (params.finetune, params.prepare.target.pool_sizes),
              "audio": (params.audio.finetune, params.audio.prepare.target.pool_sizes)}
    if args.track not in tracks:
        raise StageError(f"--track must be one of {sorted(tracks)}, got {args.track!r}")
    cfg, pool_sizes = tracks[args.track]
    device = configure(params.runtime.device, params.runtime.threads)
    backbones = track_backbones(parse_backbones(args.backbone), args.imported, args.track, cfg.main_backbone)
    with atomic_dir(args.out) as out, atomic_dir(args.models) as models:
        return run_sweep(cfg, backbones, Path(args.target), pool_sizes, out, models, device,
                         workers=workers(params.runtime.workers))


def main(argv=None) -> None:
    stage_main(__doc__, {"track": "vision | audio", "backbone": "NAME=DIR of a pre-trained model of our own (repeat)",
                         "imported": "import_backbones' folder (its manifest.json names each backbone's track)",
                         "target": "prepared B", "out": "predictions + runs table dir",
                         "models": "fine-tuned models dir (seed 0 of each run group)"}, run, argv,
               repeated=("backbone",))


if __name__ == "__main__":
    main()
