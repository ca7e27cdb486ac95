"""DVC stage: multi-task scenes (several objects, a K-vector label each) from the validated digits,
gated by Great Expectations before anything is written."""
from __future__ import annotations

from stages._common import StageError, require_validated, stage_main
from transferlab.data.prepared import load_prepared, metadata_table, write_prepared
from transferlab.system.io import atomic_dir
from transferlab.data.scenes import make_scenes, task_columns
from transferlab.params import Params
from transferlab.data.validation import build_derived_checks, gate


def run(params: Params, args) -> dict:
    require_validated(args.validation, "build scenes")
    cfg = params.multitask.scenes
    data, split = make_scenes(load_prepared(args.digits), cfg)
    table = metadata_table(data, split)
    checks = build_derived_checks("scenes", table, data.classes, cfg.canvas_size, task_columns(cfg.tasks))
    if gate(checks, args.result, args.docs):
        raise StageError(f"the scenes failed validation (see {args.result}); nothing written to {args.out}")
    with atomic_dir(args.out) as out:
        write_prepared(out, data.images, data.labels, data.classes, table,
                       description={"role": "multitask scenes", "tasks": cfg.tasks})
    summary = {"scenes": len(data.labels), "test": int((split == "test").sum()),
               **{c: round(float(table[c].mean()), 3) for c in task_columns(cfg.tasks)}}
    print(summary)
    return summary


def main(argv=None) -> None:
    stage_main(__doc__, {"digits": "prepared target B (digits)", "validation": "its validation result JSON",
                         "out": "scenes dir", "result": "GX result JSON", "docs": "Data Docs dir"}, run, argv)


if __name__ == "__main__":
    main()
