"""DVC stage: one branch of the pipeline-vs-end-to-end comparison, trained at every size × seed.

--branch audio-pipeline (MFCC features → logistic regression) | audio-e2e (M5 on raw 16 kHz audio) |
vision-pipeline (localise + crop → CNN) | vision-e2e (CNN on the whole canvas)."""
from __future__ import annotations

from pathlib import Path

from stages._common import StageError, stage_main
from transferlab.experiments.branches.sweep import BRANCHES, load_task, run_branch
from transferlab.system.io import atomic_dir, write_json
from transferlab.params import Params
from transferlab.system.context import Runtime


def run(params: Params, args, runtime: Runtime):
    if args.branch not in BRANCHES:
        raise StageError(f"--branch must be one of {sorted(BRANCHES)}, got {args.branch!r}")
    track = BRANCHES[args.branch][0]
    cfg = params.branches.audio if track == "audio" else params.branches.vision
    task, stage1 = load_task(args.branch, Path(args.data), cfg)
    runs = run_branch(args.branch, task, cfg, runtime)
    with atomic_dir(args.out) as out:
        runs.to_csv(out / "runs.csv", index=False)
        write_json(out / "stage1.json", stage1)
    print(runs.groupby("size")["accuracy"].mean().round(4).to_dict(), stage1)
    return runs


def main(argv=None) -> None:
    stage_main(__doc__, {"branch": "which branch", "data": "its input data dir", "out": "results dir"}, run, argv,
               device="cpu")  # small models: processes of one thread beat a GPU round trip


if __name__ == "__main__":
    main()
