"""Child processes that run the pipeline's stages: started with this interpreter's environment, as one
process group that goes away with the process that started it.

`python -m transferlab.ops.processes PARENT_PID -- CMD...` is the guard that leads such a group: it runs CMD in
its group and, when it is told to stop (SIGTERM, SIGINT) or the process that started it dies (even by SIGKILL:
the kernel's parent-death signal), stops the whole group (DVC, the stage, its Dask workers) and exits."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def stage_env(**extra: str) -> dict:
    """This environment with this interpreter's folder first on PATH. dvc.yaml's commands say `python -m
    stages.X`: whatever PATH the user's shell or a scheduled run has, the stages must run in the environment
    that runs this process (a venv that was never activated included)."""
    here = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != here:
        path = here + os.pathsep + path if path else here
    return {**os.environ, "PATH": path, **extra}


def guarded(cmd: list[str]) -> list[str]:
    """`cmd` wrapped in the guard; start it with start_new_session=True so that the guard leads the group."""
    return [sys.executable, "-m", "transferlab.ops.processes", str(os.getpid()), "--", *cmd]


def stop_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to the process group `proc` leads, SIGKILL after `grace_s` if it is still there."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _guard(parent: int, cmd: list[str], grace_s: float = 10.0) -> int:
    def stop(*_) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the guard is in the group it signals
        os.killpg(0, signal.SIGTERM)
        try:
            child.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(0, signal.SIGKILL)
        os._exit(143)

    try:  # Linux: the kernel sends SIGTERM when the starting process dies, whatever killed it
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (AttributeError, OSError):
        pass
    child = subprocess.Popen(cmd)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if os.getppid() != parent:  # it died before the parent-death signal was armed
        stop()
    return child.wait()


if __name__ == "__main__":
    sys.exit(_guard(int(sys.argv[1]), sys.argv[3:]))
