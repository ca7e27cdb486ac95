"""Read the DAG from dvc.yaml (through DVC itself) and run single stages with `dvc repro`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from transferlab.ops.processes import guarded, stage_env, stop_group


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
    def stages_run(self) -> list[str]:
        """The stages DVC ran (not those it found unchanged), in order."""
        return re.findall(r"Running stage '([^']+)'", self.output)

    @property
    def transient(self) -> bool:
        """Worth a retry: the stage's command was killed by a signal, or another process held the DVC lock.

        A stage that exits 1 or 2 (bad data, bad params) fails the same way again; no retry."""
        if "Unable to acquire lock" in self.output:
            return True
        code = re.search(r"exited with (-?\d+)", self.output)
        return bool(code) and (int(code.group(1)) < 0 or int(code.group(1)) > 128)


def repro_stage(stage: str, repo_dir: Path | str = ".", force: bool = False, single: bool = True,
                on_line: Callable[[str], None] | None = None) -> StageRun:
    """`dvc repro --single-item STAGE` (or with its upstream when not single): DVC decides whether it must
    run, and updates dvc.lock. Each line the stage prints goes to `on_line` as it is printed (a fine-tuning
    stage runs for minutes: its progress must reach the Prefect log while it runs, not after)."""
    cmd = [sys.executable, "-m", "dvc", "repro", *(["--single-item"] if single else []), stage]
    cmd += ["--force"] if force else []
    start = time.perf_counter()
    lines = []
    # A process group of its own, led by a guard: when this flow run is stopped, or dies, the whole tree (DVC,
    # the stage, its Dask workers) goes with it instead of running on as orphans.
    proc = subprocess.Popen(guarded(cmd), cwd=repo_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=stage_env(PYTHONUNBUFFERED="1"), bufsize=1, start_new_session=True)
    try:
        for raw in proc.stdout:
            # Progress bars redraw with \r: keep the last state of each line.
            line = raw.rstrip("\n").split("\r")[-1].rstrip()
            lines.append(line)
            if on_line and line:
                on_line(line)
        proc.wait()
    except BaseException:
        stop_group(proc)
        raise
    finally:
        proc.stdout.close()
    output = "\n".join(lines)
    skipped = "didn't change, skipping" in output or "is cached - skipping" in output
    return StageRun(stage, proc.returncode, not skipped and proc.returncode == 0, time.perf_counter() - start, output)


def failure_line(run: StageRun) -> str:
    """One line that says why a stage failed: the stage's own `error:` line when it printed one (our stages do,
    naming the file or key), else DVC's last ERROR line."""
    lines = [line.strip() for line in run.output.splitlines() if line.strip()]
    own = [line for line in lines if line.startswith("error:")]
    dvc = [line for line in lines if line.startswith("ERROR")]
    why = (own or dvc or lines or ["no output"])[-1]
    return f"stage {run.stage} failed (exit {run.returncode}): {why}"


def repro_with_retries(stage: str, repo_dir: Path | str = ".", force: bool = False, single: bool = True,
                       on_line: Callable[[str], None] | None = None, tries: int = 3,
                       delay_s: float = 5.0) -> StageRun:
    """repro_stage, tried again (up to `tries` in all) only when the failure is transient: a stage that failed
    on bad data or params fails the same way again."""
    for attempt in range(1, tries + 1):
        run = repro_stage(stage, repo_dir, force, single, on_line)
        if run.returncode == 0 or not run.transient or attempt == tries:
            return run
        if on_line:
            on_line(f"{stage}: transient failure ({failure_line(run)}); trying again in {delay_s:.0f} s")
        time.sleep(delay_s)
    return run
