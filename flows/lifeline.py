"""A flow run started by `flows.serve` stops when `serve` is gone.

Prefect's runner runs each scheduled flow run in a child process. If the runner is killed outright (kill -9,
OOM killer), nothing tells that child: it would go on running stages as an orphan, or wait for the workspace
lock and then start a `dvc repro` nobody watches, while the server shows it Running forever. A daemon thread
watches the parent; when it changes, it sends this process SIGTERM, which Prefect's engine turns into a Crashed
state and flows.dvc_stages into stopping the stage's whole process group."""
from __future__ import annotations

import os
import signal
import threading
import time

_started = False


def watch_parent(poll_s: float = 1.0) -> bool:
    """Start the watch once per process, only in a run of a deployment (a runner started this process; a flow
    run from the command line belongs to no deployment). Returns whether a watch is running."""
    global _started
    from prefect.runtime import deployment

    parent = os.getppid()
    if _started or deployment.id is None or parent <= 1:
        return _started

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="transferlab-lifeline", daemon=True).start()
    _started = True
    return True
