"""Child processes that run the pipeline's stages: started with this interpreter's environment, stopped as a
whole process group."""
from __future__ import annotations

import os
import signal
import subprocess
import sys


def stage_env(**extra: str) -> dict:
    """This environment with this interpreter's folder first on PATH. dvc.yaml's commands say `python -m
    stages.X`: whatever PATH the user's shell or a scheduled run has, the stages must run in the environment
    that runs this process (a venv that was never activated included)."""
    here = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != here:
        path = here + os.pathsep + path if path else here
    return {**os.environ, "PATH": path, **extra}


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

