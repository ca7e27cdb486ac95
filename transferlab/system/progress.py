"""Progress: a rich bar on a terminal; plain lines when output is not a terminal (DVC, CI, Prefect logs),
so a run of several minutes says how far it got while it runs instead of staying silent."""
from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


class LineProgress:
    """The part of rich's Progress the stages use, as one flushed line per tenth of a task (and at its end)."""

    def __init__(self, stream=None, steps: int = 10):
        self.stream, self.steps, self.tasks = stream or sys.stderr, steps, []

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **_) -> int:
        self.tasks.append({"description": description, "total": total or 0, "completed": 0, "shown": 0,
                           "start": time.perf_counter()})
        return len(self.tasks) - 1

    def update(self, task: int, *, completed: float | None = None, advance: float | None = None,
               description: str | None = None, **_) -> None:
        t = self.tasks[task]
        if description is not None:
            t["description"] = description
        if completed is not None:
            t["completed"] = completed
        if advance is not None:
            t["completed"] += advance
        if not t["total"]:
            return
        tenth = int(self.steps * t["completed"] / t["total"])
        if tenth > t["shown"]:
            t["shown"] = tenth
            elapsed = time.perf_counter() - t["start"]
            print(f"{t['description']}: {t['completed']:g}/{t['total']:g} ({100 * t['completed'] / t['total']:.0f} %) "
                  f"after {elapsed:.0f} s{eta(elapsed, t['completed'], t['total'])}", file=self.stream, flush=True)

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)


def eta(elapsed: float, done: float, total: float) -> str:
    """", ≤ N s left" at the rate so far. A run that stops on convergence counts towards its cap, so it may end sooner:
    the figure is at most that."""
    if done <= 0 or done >= total:
        return ""
    left = elapsed * (total - done) / done
    return f", ≤ {left:.0f} s left" if left < 120 else f", ≤ {left / 60:.0f} min left"


def progress_bar() -> Progress | LineProgress:
    console = Console(stderr=True)
    if not console.is_terminal:
        return LineProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("≤"), TimeRemainingColumn(), console=console, transient=False)
