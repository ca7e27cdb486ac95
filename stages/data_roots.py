"""DVC stage (always run, first): the gate and the hash of the user's data.

Every problem params can be checked for without training (every param dvc.yaml declares present, folders
that can fill the pools) stops the pipeline here, before any output is written; then the md5 of every data
folder the params name goes into a manifest, so prepare re-runs when one changes, and the md5 of every
imported backbone's weights file into another, so import_backbones re-runs when one changes."""
from __future__ import annotations

from pathlib import Path

from stages._common import StageError, stage_main, unwritable_outputs
from transferlab.data.roots import manifest
from transferlab.data.sizes import size_problems
from transferlab.system.dvc_params import missing_declared_params
from transferlab.system.io import write_json
from transferlab.params import Params, read_params_file


def run(params: Params, args) -> dict:
    problems = [f"{key} is missing from {args.params}"
                for key in missing_declared_params(Path("."), read_params_file(args.params))]
    problems += size_problems(params)
    # Every stage's output folders too: DVC deletes a stage's old outputs before it runs, so a folder found
    # read-only only when its stage comes up would cost those outputs and the stages before it.
    problems += [f"cannot write {where}" for where in unwritable_outputs(every_stage=True)]
    if problems:
        raise StageError("; ".join(problems))
    from transferlab.models.pretrained import weights_manifest  # torch: only after the cheap checks passed

    result = manifest(params)
    weights = weights_manifest(params.backbones)
    write_json(args.manifest, result)
    write_json(args.weights, weights)
    return {**result, "weights": weights}


def main(argv=None) -> None:
    stage_main(__doc__, {"manifest": "the JSON manifest of folder md5s",
                         "weights": "the JSON manifest of imported backbones' weights files and md5s"}, run, argv)


if __name__ == "__main__":
    main()
