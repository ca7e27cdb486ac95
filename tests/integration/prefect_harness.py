"""A real Prefect server for the serve tests: start and stop it on a free port, wait for the runs its scheduler
creates, and the small flows and clients the tests run against it (subprocesses with the server's env)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

from ..conftest import ROOT, venv_env

# Errors the scheduler service logged instead of scheduling (SQLAlchemy 2.1 with Prefect 3.8.8).
SCHEDULER_ERRORS = ("bulk DML", "InvalidRequestError")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cmd: list[str], env: dict, log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    """A process in its own session (so that _stop can reach what it started: uvicorn, flow-run processes)."""
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen | None, wait: float = 30) -> None:
    """SIGTERM (serve pauses its deployments, the server stops its uvicorn), bounded; then SIGKILL whatever is
    left of the process group."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else f"({path.name} missing)"


@contextlib.contextmanager
def prefect_server(tmp_path: Path, **extra_env: str):
    """A real `prefect server start` on 127.0.0.1:<free port> in a temporary PREFECT_HOME; yields (env for
    clients of it, server log path); stopped (terminate, then kill) on exit."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = venv_env(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=url, TRANSFERLAB_OPENLINEAGE="off",
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false", **extra_env)
    log = tmp_path / "server.log"
    server = _start([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                    env, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, _tail(log)
                time.sleep(1)
        yield env, log
    finally:
        _stop(server)




# A client of the server (run in a subprocess with the server's env): polls until each deployment named in
# argv[1] (JSON list) exists and has a flow run made by the scheduler in a final state, or argv[2] seconds
# pass. Deployments in argv[3] are paused as soon as they exist; those in argv[4] as soon as one of their runs
# has left SCHEDULED (pausing deletes their remaining auto-scheduled runs: one run, not one per interval).
# Prints one JSON line: the deployments' schedules and every flow run of them (auto_scheduled, state).
WAIT_FOR_SCHEDULED_RUNS = textwrap.dedent("""
    import asyncio, json, sys, time
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    names, timeout, pause, pause_after_start = json.loads(sys.argv[1]), float(sys.argv[2]), *map(json.loads, sys.argv[3:])
    FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")

    def schedule(s):
        s = s.schedule
        return {"interval": s.interval.total_seconds()} if hasattr(s, "interval") else {"cron": s.cron}

    async def main():
        deadline = time.monotonic() + timeout
        deployments, runs, paused = {}, [], set()
        async with get_client() as client:
            while time.monotonic() < deadline:
                for name in [*names, *pause]:
                    if name not in deployments:
                        try:
                            deployments[name] = await client.read_deployment_by_name(name)
                        except Exception:
                            continue
                        if name in pause:
                            await client.pause_deployment(deployments[name].id)
                            paused.add(name)
                if deployments:
                    by_id = {d.id: n for n, d in deployments.items()}
                    found = await client.read_flow_runs(
                        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=list(by_id))))
                    runs = [{"deployment": by_id[r.deployment_id], "name": r.name, "auto_scheduled": r.auto_scheduled,
                             "state": r.state_type.value if r.state_type else None} for r in found]
                    for r in runs:
                        if (r["deployment"] in pause_after_start and r["deployment"] not in paused
                                and r["auto_scheduled"] and r["state"] != "SCHEDULED"):
                            await client.pause_deployment(deployments[r["deployment"]].id)
                            paused.add(r["deployment"])
                    done = {r["deployment"] for r in runs if r["auto_scheduled"] and r["state"] in FINAL}
                    if done >= set(names):
                        break
                await asyncio.sleep(2)
        print(json.dumps({"deployments": {n: [schedule(s) for s in d.schedules] for n, d in deployments.items()},
                          "runs": runs, "paused": sorted(paused)}))

    asyncio.run(main())
""")


def wait_for_scheduled_runs(env: dict, names: list[str], timeout: float, pause: tuple[str, ...] = (),
                            pause_after_start: tuple[str, ...] = ()) -> dict:
    proc = subprocess.run([sys.executable, "-c", WAIT_FOR_SCHEDULED_RUNS, json.dumps(names), str(timeout),
                           json.dumps(list(pause)), json.dumps(list(pause_after_start))],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout + 60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _scheduler_errors(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if any(e in line for e in SCHEDULER_ERRORS)]


TRIVIAL_FLOW = textwrap.dedent("""
    from prefect import flow

    @flow(name="tick")
    def tick() -> int:
        return 1

    if __name__ == "__main__":
        tick.serve(name="every-5s", interval=5)
""")
