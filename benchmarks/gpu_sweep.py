"""The default vision fine-tuning sweep in fp32 and in bf16 on one device: time, throughput, accuracy side by side.

    python benchmarks/gpu_sweep.py --target data/prepared/target --backbone models/pretrained/src-full \
        [--params params.yaml] [--device cuda] [--precisions fp32 bf16] [--report DIR]

Not a test. Runs the main backbone's sweep (every strategy x pool size x seed of the params' `finetune`) through
`transferlab.experiments.transfer.finetune.run_sweep` -- the finetune stage's own code -- once per precision, each in a process of its
own, all at once (on a GPU two small sweeps share the device; say so when quoting the seconds). Prints per
precision the wall seconds and training images/s, then per strategy x pool size the mean test accuracy in each
precision and the paired bf16 - fp32 difference with its 95 % CI over the seeds (same data draws, same seeds),
and the same over every run. The inputs come from a finished `dvc repro` (or `dvc pull`), so it needs no DVC, GX
or Prefect: it runs on a bare GPU machine with PyTorch. benchmarks/gpu_check.py runs the whole pipeline instead.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from transferlab.analysis.stats import mean_ci, paired_difference  # noqa: E402


def one_sweep(args: argparse.Namespace) -> None:
    """Child process: one precision's sweep; writes runs.csv and a line with its wall seconds."""
    from transferlab.experiments.transfer.finetune import run_sweep
    from transferlab.params import load_params
    from transferlab.system.runtime import configure

    params = load_params(args.params)
    runtime = params.runtime.model_copy(update={"device": args.device, "precision": args.precision})
    context = configure(runtime)
    cfg = params.finetune if args.seeds is None else params.finetune.model_copy(update={"seeds": args.seeds})
    out = Path(args.work) / args.precision
    start = time.perf_counter()
    run_sweep(cfg, {cfg.main_backbone: Path(args.backbone)}, Path(args.target), params.prepare.target.pool_sizes,
              out, out / "models", context)
    (out / "wall_s.txt").write_text(f"{time.perf_counter() - start:.1f}\n")


def compare(runs: dict[str, pd.DataFrame], walls: dict[str, float], batch: int, device: str) -> str:
    lines = [f"### The default vision fine-tuning sweep on {device}, by precision", "",
             "| precision | runs | wall s | training images/s |", "|---|---:|---:|---:|"]
    for p, r in runs.items():
        images = float((r["steps"] * batch).sum())
        lines.append(f"| {p} | {len(r)} | {walls[p]:.0f} | {images / r['train_seconds'].sum():,.0f} |")
    if not {"fp32", "bf16"} <= set(runs):
        return "\n".join(lines)
    both = runs["fp32"].merge(runs["bf16"], on="run_id", suffixes=("_fp32", "_bf16"))
    lines += ["", "| strategy | per class | fp32 accuracy % | bf16 accuracy % | bf16 − fp32, pp (95 % CI) | within? |",
              "|---|---:|---:|---:|---:|---|"]
    for (strategy, n), g in both.groupby(["strategy_fp32", "per_class_fp32"], sort=False):
        d = paired_difference(g["test_accuracy_bf16"], g["test_accuracy_fp32"])
        a, b = mean_ci(g["test_accuracy_fp32"]), mean_ci(g["test_accuracy_bf16"])
        lines.append(f"| {strategy} | {n} | {a.fmt()} | {b.fmt()} | {d.mean * 100:+.2f} [{d.low * 100:+.2f}, "
                     f"{d.high * 100:+.2f}] | {'yes' if d.low <= 0 <= d.high or d.n < 2 else 'NO'} |")
    d = paired_difference(both["test_accuracy_bf16"], both["test_accuracy_fp32"])
    lines += ["", f"Every run (n={d.n}): bf16 − fp32 = {d.mean * 100:+.2f} pp, 95 % CI [{d.low * 100:+.2f}, "
                  f"{d.high * 100:+.2f}]; identical accuracy in {int((both['test_accuracy_bf16'] == both['test_accuracy_fp32']).sum())} runs."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True, help="prepared B (data/prepared/target)")
    ap.add_argument("--backbone", required=True, help="the main backbone's folder (models/pretrained/src-full)")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--seeds", type=int, default=None, help="fewer seeds than the params' (a shorter check)")
    ap.add_argument("--report", type=Path, default=None, help="folder for the markdown and each runs table")
    ap.add_argument("--work", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--precision", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.precision:  # a child
        return one_sweep(args)
    from transferlab.params import load_params

    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_sweep-"))
    base = [sys.executable, __file__, "--target", args.target, "--backbone", args.backbone, "--params", args.params,
            "--device", args.device, "--work", str(work)] + (["--seeds", str(args.seeds)] if args.seeds else [])
    children = {p: subprocess.Popen(base + ["--precision", p]) for p in args.precisions}
    failed = [p for p, c in children.items() if c.wait() != 0]
    if failed:
        sys.exit(f"the {', '.join(failed)} sweep failed (its error is above)")
    runs = {p: pd.read_csv(work / p / "runs.csv") for p in args.precisions}
    walls = {p: float((work / p / "wall_s.txt").read_text()) for p in args.precisions}
    text = compare(runs, walls, load_params(args.params).finetune.batch_size, args.device)
    print(text)
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "gpu_sweep.md").write_text(text + "\n")
        for p, r in runs.items():
            r.to_csv(args.report / f"runs-{p}.csv", index=False)


if __name__ == "__main__":
    main()
