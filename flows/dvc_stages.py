"""Read the DAG from dvc.yaml (through DVC itself) and run single stages with `dvc repro`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def stage_order(repo_dir: Path | str = ".") -> list[str]:
    """Stage names in an order that respects every dependency, as DVC's own graph defines it."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(repo_dir)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        stages = [s for s in reversed(list(nx.topological_sort(graph))) if s.cmd]
        # Addresses relative to the repo root (DVC's own `addressing` is relative to the cwd).
        out = []
        for stage in stages:
            dvcfile = os.path.relpath(stage.dvcfile.path, repo.root_dir)
            out.append(stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}")
        return out


@dataclass
class StageRun:
    stage: str
    returncode: int
    ran: bool  # False when DVC found it unchanged and skipped it
    seconds: float
    output: str

    @property
    def transient(self) -> bool:
        """Worth a retry: the stage's command was killed by a signal, or another process held the DVC lock.

        A stage that exits 1 or 2 (bad data, bad params) fails the same way again; no retry."""
        if "Unable to acquire lock" in self.output:
            return True
        code = re.search(r"exited with (-?\d+)", self.output)
        return bool(code) and (int(code.group(1)) < 0 or int(code.group(1)) > 128)


def repro_stage(stage: str, repo_dir: Path | str = ".", force: bool = False, single: bool = True) -> StageRun:
    """`dvc repro --single-item STAGE` (or with its upstream when not single): DVC decides whether it must
    run, and updates dvc.lock."""
    cmd = [sys.executable, "-m", "dvc", "repro", *(["--single-item"] if single else []), stage]
    cmd += ["--force"] if force else []
    start = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(cmd, cwd=repo_dir, capture_output=True, text=True, env=env)
    output = proc.stdout + proc.stderr
    skipped = "didn't change, skipping" in output or "is cached - skipping" in output
    return StageRun(stage, proc.returncode, not skipped and proc.returncode == 0, time.perf_counter() - start, output)
