"""DVC stage: hand-designed features of the audio source (MFCC + deltas, pooled), the pipeline branch's stage 1."""
from __future__ import annotations

from stages._common import StageError, stage_main
from transferlab.data.audio.mfcc import write_features
from transferlab.data.prepared import load_prepared
from transferlab.system.io import atomic_dir
from transferlab.params import Params


def run(params: Params, args) -> dict:
    cfg = params.branches.audio
    try:
        with atomic_dir(args.out) as out:
            summary = write_features(out, load_prepared(args.source), cfg.n_mfcc, cfg.segments)
    except ValueError as err:
        raise StageError(f"{args.source}: {err}") from None
    print(summary)
    return summary


def main(argv=None) -> None:
    stage_main(__doc__, {"source": "prepared audio A", "out": "features dir"}, run, argv)


if __name__ == "__main__":
    main()
