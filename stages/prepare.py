"""DVC stage: build source (A) and target (B) data sets, with metadata tables and training pools."""
from __future__ import annotations

from pathlib import Path

from stages._common import StageError, stage_main
from transferlab.data.build import prepare
from transferlab.data.sizes import size_problems
from transferlab.system.io import atomic_dir, write_json
from transferlab.params import Params
from transferlab.system.context import Runtime


def run(params: Params, args, runtime: Runtime) -> dict:
    short = size_problems(params, tracks=("vision",))  # before anything is rendered or written
    if short:
        raise StageError("; ".join(short))
    with atomic_dir(args.source) as source_tmp, atomic_dir(args.target) as target_tmp:
        summary = prepare(params.prepare, source_tmp, target_tmp, runtime)
    write_json(args.metrics, summary)
    return summary


def main(argv=None) -> None:
    stage_main(__doc__, {"source": "output dir for A", "target": "output dir for B",
                         "metrics": "summary JSON"}, run, argv)


if __name__ == "__main__":
    main()
