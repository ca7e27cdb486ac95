"""DVC stage: multi-task learning on the scenes — shared vs one network per task at several widths,
missing labels (masked loss vs missing-as-negative), and one task with few labels. It measures; the report stage
judges the claims from runs.csv, so a reporting threshold re-runs no training."""
from __future__ import annotations

from stages._common import publish, stage_main
from transferlab.data.prepared import load_prepared
from transferlab.system.io import atomic_dir
from transferlab.experiments.multitask.experiment import run_experiments
from transferlab.data.scenes import task_labels
from transferlab.experiments.multitask.summary import arm_table
from transferlab.params import Params
from transferlab.system.context import Runtime


def run(params: Params, args, runtime: Runtime) -> dict:
    cfg = params.multitask
    scenes = load_prepared(args.scenes)
    runs = run_experiments(scenes.samples, task_labels(scenes.metadata, cfg.scenes.tasks),
                           scenes.metadata["split"].to_numpy(), cfg, runtime)
    table = arm_table(runs, params.evaluate.confidence, cfg.few_labels_task)
    with atomic_dir(args.out) as out:
        runs.to_csv(out / "runs.csv", index=False)
        table.to_csv(out / "arms.csv", index=False)
    metrics = {f"{r.experiment}/{r.arm}/w{r.width}/m{r.missing:g}": {"auroc": round(r.auroc, 4), "ap": round(r.ap, 4)}
               for r in table.itertuples()}
    return publish(args.metrics, metrics)


def main(argv=None) -> None:
    stage_main(__doc__, {"scenes": "scenes dir", "out": "results dir", "metrics": "metrics JSON"}, run, argv,
               device="cpu")  # small networks: processes of one thread each


if __name__ == "__main__":
    main()
