"""Scheduled deployments on a real Prefect server: the server's scheduler (not a manual trigger) creates the
runs and `serve` executes them. Also which deployments `flows.serve` registers on which project."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ..conftest import ROOT, lighter_training, make_retrain_project, sh, venv_env
from .prefect_harness import (
    TRIVIAL_FLOW,
    _scheduler_errors,
    _start,
    _stop,
    _tail,
    prefect_server,
    wait_for_scheduled_runs,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module (it takes ~20 s to start on 2 cores): (client env, server log)."""
    with prefect_server(tmp_path_factory.mktemp("prefect-server")) as running:
        yield running


def test_the_server_scheduler_creates_runs_that_serve_completes(server, tmp_path):
    """The regression of the SQLAlchemy 2.1 pin: the scheduler service failed every cycle ("Can't evaluate
    bulk DML statement") and never created a run. Nothing here triggers a run by hand."""
    env, log = server
    script = tmp_path / "tick.py"
    script.write_text(TRIVIAL_FLOW)
    served = _start([sys.executable, str(script)], env, tmp_path / "serve.log", cwd=tmp_path)
    try:
        seen = wait_for_scheduled_runs(env, ["tick/every-5s"], timeout=90)
    finally:
        _stop(served)
    context = (seen, _tail(log, 3000), _tail(tmp_path / "serve.log", 2000))
    errors = _scheduler_errors(log)
    assert not errors, (f"the server's scheduler failed ({len(errors)} error lines), flow runs: {len(seen['runs'])}",
                        errors[-1])
    assert seen["deployments"] == {"tick/every-5s": [{"interval": 5.0}]}, context
    runs = seen["runs"]
    assert runs and all(r["auto_scheduled"] for r in runs), context  # only the scheduler made runs
    assert any(r["state"] == "COMPLETED" for r in runs), context


def _serve(repo: Path, env: dict, log: Path, *args: str) -> subprocess.Popen:
    return _start([sys.executable, "-m", "flows.serve", "--repo", str(repo), *args], env, log)


def test_serve_registers_only_what_can_run_on_a_default_project(server, tmp_path):
    """The default setup (a generated digits target, no imagefolder pool) cannot retrain: serve registers the
    weekly sweep on its cron and prints why the nightly retrain is not there."""
    env, log = server
    repo = tmp_path / "project"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        (repo / name).write_text((ROOT / name).read_text())
    env = {**env, "TRANSFERLAB_SCHEDULE_INTERVAL": ""}
    serve_log = tmp_path / "serve.log"
    served = _serve(repo, env, serve_log)
    try:
        out = _client(env, textwrap.dedent("""
            for _ in range(90):
                try:
                    d = await client.read_deployment_by_name("transferlab-pipeline/weekly-sweep")
                    break
                except Exception:
                    await asyncio.sleep(1)
            try:
                await client.read_deployment_by_name("transferlab-retrain/nightly-retrain")
                nightly = True
            except Exception:
                nightly = False
            print(json.dumps({"crons": [s.schedule.cron for s in d.schedules], "repo": d.parameters["repo_dir"],
                              "nightly": nightly}))
        """))
    finally:
        _stop(served)
        # Leave the server as this test found it: no weekly-sweep deployment (paused on serve's exit).
        _client(env, textwrap.dedent("""
            try:
                await client.delete_deployment((await client.read_deployment_by_name(
                    "transferlab-pipeline/weekly-sweep")).id)
            except Exception:
                pass
        """))
    printed = serve_log.read_text()
    assert json.loads(out.splitlines()[-1]) == {"crons": ["0 3 * * 0"], "repo": str(repo.resolve()),
                                          "nightly": False}, printed
    assert ("skipped nightly-retrain: retraining the vision track needs prepare.target.kind: imagefolder"
            in printed), printed
    assert "serving weekly-sweep (on their cron schedules)" in printed


def test_plan_and_command_line_without_a_server(tmp_path, monkeypatch):
    from flows.serve import INTERVAL_ENV, plan, schedule_interval

    repo = tmp_path / "project"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        (repo / name).write_text((ROOT / name).read_text())
    ready, skipped = plan(repo, ("vision", "audio"))
    assert [d.name for d in ready] == ["weekly-sweep"]
    assert [s.name for s in skipped] == ["nightly-retrain", "nightly-retrain-audio"]
    assert str(skipped[0]).startswith("skipped nightly-retrain: retraining the vision track needs "
                                      "prepare.target.kind: imagefolder")
    assert "audio.prepare.target.kind: folder" in skipped[1].reason
    assert [s.schedule.cron for s in ready[0].schedules] == ["0 3 * * 0"]
    assert ready[0].parameters == {"repo_dir": str(repo.resolve())}
    ready, _ = plan(repo, interval=7)
    assert [s.schedule.interval.total_seconds() for s in ready[0].schedules] == [7.0]

    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert schedule_interval() is None
    monkeypatch.setenv(INTERVAL_ENV, "30")
    assert schedule_interval() == 30 and schedule_interval(12) == 12  # the option wins over the env
    for bad in ("soon", "0", "-5"):
        with pytest.raises(ValueError):
            schedule_interval(bad)

    def serve(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "flows.serve", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, env=venv_env(TRANSFERLAB_SCHEDULE_INTERVAL=""))

    # Nothing left to serve: non-zero, with the reason.
    proc = serve("--repo", str(repo), "--only", "nightly-retrain")
    assert proc.returncode != 0 and "no deployment can run" in proc.stderr, proc
    assert "skipped nightly-retrain: retraining the vision track needs" in proc.stdout
    # params.yaml does not load: nothing can run.
    (repo / "params.yaml").write_text("prepare: {target: {kind: nonsense}}\n")
    proc = serve("--repo", str(repo))
    assert proc.returncode != 0 and "params do not load" in proc.stderr and "prepare.target" in proc.stderr, proc
    proc = serve("--repo", str(repo), "--interval", "-1")
    assert proc.returncode != 0 and "positive number of seconds" in proc.stderr, proc


def test_scheduler_runs_the_real_nightly_retrain_served_by_flows_serve(server, tmp_path):
    """flows.serve --only nightly-retrain on a retrain project with TRANSFERLAB_SCHEDULE_INTERVAL=30: the
    server's scheduler creates the nightly-retrain run, serve runs it (dvc repro of prepare and finetune), the
    inbox batch is merged and the first model registered as champion. The nightly retrain is paused once its
    first run has started, so exactly one retrain runs. The weekly sweep is not served here: on a 30 s interval
    the scheduler could hand serve a sweep run before any client could pause it (it happened on a loaded CI
    machine); its registration is tested on the default project and by plan()."""
    env, log = server
    repo = make_retrain_project(tmp_path / "project")  # inbox/week1 holds a good batch of 30 digits
    lighter_training(repo)
    pool_before = len(list((repo / "pool" / "target").rglob("*.png")))
    serve_log = tmp_path / "serve.log"
    served = _serve(repo, {**env, "TRANSFERLAB_SCHEDULE_INTERVAL": "30"}, serve_log, "--only", "nightly-retrain")
    nightly = "transferlab-retrain/nightly-retrain"
    try:
        seen = wait_for_scheduled_runs(env, [nightly], timeout=300, pause_after_start=(nightly,))
    finally:
        _stop(served, wait=60)
    context = (seen, _tail(serve_log), _tail(log, 2000))
    assert not _scheduler_errors(log), _scheduler_errors(log)[-3:]
    assert "serving nightly-retrain (every 30 s)" in serve_log.read_text(), context
    assert seen["deployments"] == {nightly: [{"interval": 30.0}]}, context
    runs = seen["runs"]
    assert all(r["auto_scheduled"] for r in runs), context  # nothing triggered by hand
    retrains = [r for r in runs if r["deployment"] == nightly and r["state"] != "SCHEDULED"]
    assert [r["state"] for r in retrains] == ["COMPLETED"], context

    # What the run did: merged week1 (kept under inbox/merged), retrained, registered the first champion.
    assert not (repo / "inbox" / "week1").exists() and list((repo / "inbox" / "merged").glob("week1*"))
    assert len(list((repo / "pool" / "target").rglob("*.png"))) == pool_before + 30
    versions = json.loads((repo / "registry.json").read_text())["models"]["digits"]
    assert len(versions) == 1 and versions[0]["stage"] == "champion"
    assert (repo / versions[0]["path"] / "model.safetensors").exists()
    assert "md5" in (repo / "pool" / "target.dvc").read_text()
    assert "retrain vision: merged week1" in sh(["git", "log", "--format=%s"], repo).stdout
    assert sh(["git", "tag", "--list", "digits*"], repo).stdout.split() == ["digits#champion#1", "digits@v1.0.0"]


def _client(env: dict, body: str, *args: str, timeout: float = 150) -> str:
    code = ("import asyncio, json\nfrom prefect.client.orchestration import get_client\n\n"
            "async def main():\n    async with get_client() as client:\n" + textwrap.indent(body, " " * 8)
            + "\n\nasyncio.run(main())\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# A stage that outlasts the schedule's interval and records the pid of each start.
SLOW_STAGE = "python -c \"import os, time; open('starts.txt', 'a').write(f'{os.getpid()}\\n'); time.sleep(240)\""
# The flow runs of the project in argv[1] (the module's server is shared with other tests), oldest first.
RUN_STATES = textwrap.dedent("""
    import sys
    runs = await client.read_flow_runs()
    print(json.dumps([{"state": r.state_type.value, "message": r.state.message if r.state else None}
                      for r in sorted(runs, key=lambda r: r.created)
                      if r.state_type and r.parameters.get("repo_dir") == sys.argv[1]]))
""")


def _slow_project(repo: Path) -> Path:
    """The default params (they must load for serve to register anything) and a dvc.yaml of one slow stage."""
    import shutil

    repo.mkdir(parents=True)
    shutil.copy2(ROOT / "params.yaml", repo / "params.yaml")
    (repo / "dvc.yaml").write_text(f"stages:\n  slow:\n    cmd: {json.dumps(SLOW_STAGE)}\n")
    sh(["git", "init", "-q"], repo)
    sh([sys.executable, "-m", "dvc", "init", "-q"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "slow project"], repo)
    return repo


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is dead: it only waits for its parent to read its status
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


def _until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def test_a_slow_sweep_never_overlaps_and_stopping_serve_leaves_no_run_running_and_no_orphan(server, tmp_path):
    """Every 3 s a run falls due while the first runs a 4-minute stage: one run at a time, the others are
    cancelled. Then `serve` is stopped by a plain kill, started again, and killed with kill -9: each time
    nothing of it stays behind, neither the stage nor a run the server shows as Running."""
    env, log = server
    repo = _slow_project(tmp_path / "project")

    def runs() -> list[dict]:
        return json.loads(_client(env, RUN_STATES, str(repo.resolve())))

    starts = repo / "starts.txt"
    for stop in (signal.SIGTERM, signal.SIGKILL):
        serve_log = tmp_path / f"serve-{stop.name}.log"
        started = len(starts.read_text().split()) if starts.exists() else 0
        served = _serve(repo, {**env, "TRANSFERLAB_SCHEDULE_INTERVAL": "3"}, serve_log, "--only", "weekly-sweep")
        try:
            assert _until(lambda: starts.exists() and len(starts.read_text().split()) > started, 120), \
                _tail(serve_log)
            # Runs keep falling due while the first one's stage sleeps: the server cancels them once they are late
            # (its late-runs service marks them; CANCEL_NEW), and none starts meanwhile.
            skipped = _until(lambda: any(r["state"] == "CANCELLED" and "concurrency limit" in (r["message"] or "")
                                         for r in runs()), 90)
            seen = runs()
            assert skipped, (seen, _tail(serve_log))
            assert len([r for r in seen if r["state"] in ("RUNNING", "PENDING")]) == 1, (seen, _tail(serve_log))
            assert len(starts.read_text().split()) == started + 1  # the stage started once
            stage_pid = int(starts.read_text().split()[-1])
            os.kill(served.pid, stop)  # the serve process alone, as `kill` from a shell would
            served.wait(60)
            # Nothing keeps running: not the stage, and not the run in the server's eyes.
            assert _until(lambda: not _alive(stage_pid), 30), f"the stage (pid {stage_pid}) runs on as an orphan"
            assert _until(lambda: not any(r["state"] in ("RUNNING", "PENDING") for r in runs()), 60), \
                (stop.name, runs(), _tail(serve_log))
            assert len(starts.read_text().split()) == started + 1
        finally:
            _stop(served)
