"""DVC stage: knowledge distillation — a small student from the best fine-tuned teacher vs the same student
on hard labels, at several transfer-set sizes and without one class; sizes and CPU latency. The report stage
judges the claims from runs.csv."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from stages._common import StageError, publish, stage_main
from transferlab.models.artifacts import load_model
from transferlab.data.prepared import load_prepared
from transferlab.experiments.distillation.students import pick_teacher, run_distillation
from transferlab.experiments.distillation.summary import distill_table
from transferlab.system.io import atomic_dir, write_json
from transferlab.params import Params
from transferlab.system.context import Runtime


def run(params: Params, args, runtime: Runtime) -> dict:
    cfg = params.distill.model_copy(update={  # unset sizes and seeds follow the fine-tuning sweep
        "per_class": params.distill.per_class or list(params.prepare.target.pool_sizes),
        "seeds": params.distill.seeds or params.finetune.seeds})
    target = load_prepared(args.target)
    if cfg.omit_class is not None and cfg.omit_class not in target.classes:
        raise StageError(f"distill.omit_class {cfg.omit_class!r} is not a target class {target.classes}")
    teacher_dir = pick_teacher(pd.read_csv(Path(args.finetune) / "runs.csv"), Path(args.models), cfg.teacher)
    teacher, card = load_model(teacher_dir)
    runs, summary = run_distillation(teacher, target, cfg, runtime)
    summary["teacher"] = teacher_dir.name
    table = distill_table(runs, params.evaluate.confidence)
    with atomic_dir(args.out) as out:
        runs.to_csv(out / "runs.csv", index=False)
        table.to_csv(out / "students.csv", index=False)
        write_json(out / "summary.json", summary)
    metrics = {**{k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()},
               **{f"{r.kind}/n{r.per_class}{'/no-' + r.omitted if r.omitted else ''}": round(r.accuracy, 4)
                  for r in table.itertuples()}}
    return publish(args.metrics, metrics)


def main(argv=None) -> None:
    stage_main(__doc__, {"finetune": "fine-tuning results dir", "models": "fine-tuned models dir",
                         "target": "prepared target B", "out": "results dir", "metrics": "metrics JSON"}, run, argv,
               device="cpu")  # small students: processes of one thread each


if __name__ == "__main__":
    main()
