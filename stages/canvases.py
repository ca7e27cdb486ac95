"""DVC stage: cluttered canvases with one digit each (train canvases from training digits, test from test),
gated by Great Expectations before anything is written."""
from __future__ import annotations

from stages._common import StageError, require_validated, stage_main
from transferlab.data.canvas import make_canvases
from transferlab.data.prepared import load_prepared, metadata_table, write_prepared
from transferlab.system.io import atomic_dir
from transferlab.params import Params
from transferlab.data.validation import build_derived_checks, gate


def run(params: Params, args) -> dict:
    require_validated(args.validation, "build canvases")
    cfg = params.branches.vision
    data, split = make_canvases(load_prepared(args.digits), cfg)
    table = metadata_table(data, split)
    if gate(build_derived_checks("canvases", table, data.classes, cfg.canvas_size), args.result, args.docs):
        raise StageError(f"the canvases failed validation (see {args.result}); nothing written to {args.out}")
    with atomic_dir(args.out) as out:
        write_prepared(out, data.images, data.labels, data.classes, table, description={"role": "canvases"})
    summary = {"canvases": len(data.labels), "test": int((split == "test").sum())}
    print(summary)
    return summary


def main(argv=None) -> None:
    stage_main(__doc__, {"digits": "prepared target B (digits)", "validation": "its validation result JSON",
                         "out": "canvases dir", "result": "GX result JSON", "docs": "Data Docs dir"}, run, argv)


if __name__ == "__main__":
    main()
