"""Running one DVC stage for a flow: its output arrives line by line while it runs; a failure is one line."""
import os
import re
import sys
import time

import yaml

from flows.dvc_stages import failure_line, repro_stage
from transferlab.system.progress import LineProgress

from ..conftest import dvc, sh


def test_stage_output_reaches_the_caller_while_the_stage_runs(tmp_path):
    sh(["git", "init", "-q"], tmp_path)
    dvc("init", "-q", cwd=tmp_path)
    py = sys.executable
    stages = {"slow": {"cmd": f"{py} -c \"import time; print('first', flush=True); time.sleep(4); print('second')\""},
              "broken": {"cmd": f"{py} -c \"import sys; print('error: the file x.png is broken', file=sys.stderr); "
                                "sys.exit(2)\""}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    seen = []
    run = repro_stage("slow", tmp_path, on_line=lambda line: seen.append((line, time.monotonic())))
    ended = time.monotonic()
    assert run.returncode == 0 and run.ran
    first = next(t for line, t in seen if line == "first")
    second = next(t for line, t in seen if line == "second")
    assert second - first > 3 and ended - first > 3  # 'first' was handed over before the stage ended
    failed = repro_stage("broken", tmp_path)
    assert failed.returncode != 0
    assert failure_line(failed) == f"stage broken failed (exit {failed.returncode}): error: the file x.png is broken"


def test_progress_off_a_terminal_prints_one_line_per_tenth(capsys):
    bar = LineProgress(stream=sys.stdout)
    task = bar.add_task("fine-tuning", total=40)
    for _ in range(40):
        bar.advance(task)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10 and lines[0].startswith("fine-tuning: 4/40 (10 %)") and "40/40 (100 %)" in lines[-1]
    assert all(re.search(r", ≤ \d+ (s|min) left$", line) for line in lines[:-1]) and "left" not in lines[-1]


def test_the_time_left_is_the_rate_so_far_applied_to_what_remains():
    from transferlab.system.progress import eta

    assert eta(10.0, 25, 100) == ", ≤ 30 s left"
    assert eta(60.0, 10, 100) == ", ≤ 9 min left"
    assert eta(5.0, 0, 100) == "" and eta(5.0, 100, 100) == ""


def _user_path() -> str:
    """PATH as a user's shell has it: without this interpreter's folder (the venv was never activated)."""
    here = os.path.dirname(sys.executable)
    return os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and os.path.realpath(p) != os.path.realpath(here))


def _repo(tmp_path, stages: dict):
    sh(["git", "init", "-q"], tmp_path)
    dvc("init", "-q", cwd=tmp_path)
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    return tmp_path


def test_a_stage_that_says_python_runs_in_the_flows_interpreter_whatever_path_says(tmp_path, monkeypatch):
    repo = _repo(tmp_path, {"which": {"cmd": "python -c \"import sys, torch; print('ran by', sys.executable)\""}})
    monkeypatch.setenv("PATH", _user_path())
    run = repro_stage("which", repo)
    assert run.returncode == 0, run.output
    assert f"ran by {os.path.dirname(sys.executable)}" in run.output


def test_a_failed_stage_fails_its_prefect_task_and_the_flow(tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline

    repo = _repo(tmp_path, {
        "first": {"cmd": "python -c \"open('a.txt', 'w').write('a')\"", "outs": ["a.txt"]},
        "broken": {"cmd": "python -c \"import sys; print('error: the file x.png is broken', file=sys.stderr); "
                          "sys.exit(2)\"", "deps": ["a.txt"]}})
    monkeypatch.setenv("PATH", _user_path())
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    with prefect_test_harness(server_startup_timeout=120):
        state = pipeline(repo_dir=str(repo), return_state=True)
        assert state.is_failed()
        assert re.fullmatch(r"stage broken failed \(exit \d+\): error: the file x.png is broken", state.message)
        flow_run_id = state.state_details.flow_run_id
        with get_client(sync_client=True) as client:
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        states = {t.name: t.state.type.value for t in tasks}
    assert states == {"dvc-first": "COMPLETED", "dvc-broken": "FAILED"}, states
