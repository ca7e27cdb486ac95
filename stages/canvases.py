"""DVC stage: cluttered canvases with one digit each (train canvases from training digits, test from test)."""
from __future__ import annotations

from stages._common import StageError, stage_main
from transferlab.branches.canvas import make_canvases
from transferlab.data.prepared import load_prepared, save_prepared
from transferlab.io import atomic_dir, read_json
from transferlab.params import Params


def run(params: Params, args) -> dict:
    if not read_json(args.validation).get("success"):
        raise StageError(f"{args.validation}: the digits did not pass validation; refusing to build canvases")
    data, split = make_canvases(load_prepared(args.digits), params.branches.vision)
    with atomic_dir(args.out) as out:
        save_prepared(out, data, split, description={"role": "canvases"})
    summary = {"canvases": len(data.labels), "test": int((split == "test").sum())}
    print(summary)
    return summary


def main(argv=None) -> None:
    stage_main(__doc__, {"digits": "prepared target B (digits)", "validation": "its validation result JSON",
                         "out": "canvases dir"}, run, argv)


if __name__ == "__main__":
    main()
