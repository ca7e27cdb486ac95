"""GPU check (not a test; never needed by the tests): the pipeline on a CUDA device, timed.

    python benchmarks/gpu_check.py [--workdir DIR] [--skip-default] [--allow-cpu]

1. The smoke profile's whole `dvc repro` with `runtime.device: cuda`, `precision: auto` (bf16 where the GPU
   has it): seconds per stage, from the stages' own timings.
2. The default profile's fine-tuning sweep (`dvc repro finetune`, with what it needs), timed the same way,
   and its training throughput: images per second over every run (steps × batch / train seconds).
3. benchmarks/precision.py on the GPU: fp32 vs bf16 steps/s, matmul GFLOP/s, engine vs a bare loop.

It runs the committed HEAD in a fresh clone under --workdir. Paste what it prints into docs/results.md.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from transferlab.params.profiles import whole_data
from transferlab.system import timings as tm


def sh(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "TRANSFERLAB_TIMINGS": "on", "DVC_NO_ANALYTICS": "1"}
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def project(workdir: Path, name: str, profile: Path, device: str) -> Path:
    """A fresh clone of HEAD whose params.yaml is `profile` on `device` with precision auto."""
    dest = workdir / name
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    params = whole_data(profile)
    params["runtime"] = {**params.get("runtime", {}), "device": device, "precision": "auto"}
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def stage_table(repo: Path, title: str) -> None:
    records, _ = tm.read_timings(repo / tm.TIMINGS_FILE)
    rows = tm.last_runs(records)
    print(f"\n### {title}\n")
    print(tm.markdown_table(rows))


def throughput(repo: Path) -> str:
    runs = pd.read_csv(repo / "results" / "finetune" / "runs.csv")
    batch = yaml.safe_load((repo / "params.yaml").read_text())["finetune"].get("batch_size", 32)
    images = float((runs["steps"] * batch).sum())
    seconds = float(runs["train_seconds"].sum())
    return f"{len(runs)} runs, {images:,.0f} training images in {seconds:,.1f} s of training: {images / seconds:,.0f} images/s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=None, help="where the clones go (default: a temp folder)")
    ap.add_argument("--skip-default", action="store_true", help="only the smoke pipeline")
    ap.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no GPU (checks the script)")
    args = ap.parse_args()
    import torch

    if torch.cuda.is_available():
        device = "cuda"
        print(f"GPU: {torch.cuda.get_device_name(0)}, bf16: {torch.cuda.is_bf16_supported()}, torch {torch.__version__}")
    elif args.allow_cpu:
        device = "cpu"
        print("no GPU: running on the CPU (--allow-cpu), to check the script only")
    else:
        sys.exit("no CUDA device: this check needs a GPU (--allow-cpu runs it on the CPU to check the script)")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    workdir.mkdir(parents=True, exist_ok=True)

    smoke = project(workdir, "smoke", ROOT / "profiles" / "smoke.yaml", device)
    start = time.perf_counter()
    sh([sys.executable, "-m", "dvc", "repro"], smoke)
    print(f"smoke pipeline: {time.perf_counter() - start:.0f} s")
    stage_table(smoke, f"smoke profile on {device}")
    print("smoke fine-tuning:", throughput(smoke))

    if not args.skip_default:
        default = project(workdir, "default", ROOT / "params.yaml", device)
        start = time.perf_counter()
        sh([sys.executable, "-m", "dvc", "repro", "finetune"], default)
        print(f"default fine-tuning sweep and what it needs: {time.perf_counter() - start:.0f} s")
        stage_table(default, f"default profile up to finetune, on {device}")
        print("default fine-tuning:", throughput(default))

    sh([sys.executable, str(ROOT / "benchmarks" / "precision.py"), "--device", device], ROOT)


if __name__ == "__main__":
    main()
