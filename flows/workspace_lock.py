"""One flow run at a time per workspace: a second run waits (bounded) for the first, or fails clearly.

DVC's own lock covers one `dvc repro` command; a flow runs many, and two flows interleaving their
stages would mix two versions of params and data into one dvc.lock. The file lock (fcntl) spans the
whole flow run and is released by the kernel even if the holder dies."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Iterator

LOCK_FILE = Path(".transferlab") / "workspace.lock"


class WorkspaceBusy(RuntimeError):
    """Another flow run holds the workspace for longer than we were willing to wait."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "unknown holder"
    return f"pid {info.get('pid')} ({info.get('what')}, since {info.get('since')})"


@contextlib.contextmanager
def workspace_lock(repo_dir: Path | str, what: str, timeout_s: float = 600.0, poll_s: float = 1.0) -> Iterator[None]:
    """Hold the workspace lock of repo_dir while the body runs; wait up to timeout_s for it."""
    path = Path(repo_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceBusy(f"workspace {Path(repo_dir).resolve()} is busy: another flow run holds "
                                        f"{path} ({_holder(path)}); waited {timeout_s:.0f} s. Try again when it "
                                        "finishes, or raise TRANSFERLAB_LOCK_TIMEOUT.") from None
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "what": what,
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def lock_timeout() -> float:
    return float(os.environ.get("TRANSFERLAB_LOCK_TIMEOUT", "600"))
