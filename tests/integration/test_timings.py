"""Where time goes: stage_main appends one timing line per run, readers survive bad lines, `transferlab timings`."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from transferlab.system import timings as tm
from transferlab.cli import app

from ..conftest import ROOT

FIELDS = {"stage", "started", "ended", "wall_s", "startup_s", "cpu_s", "peak_rss_mib", "status", "pid", "commit"}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty project directory as the working directory, timings on (the suite turns them off)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRANSFERLAB_TIMINGS", "on")
    monkeypatch.setenv("DVC_STAGE", "trivial@one")
    (tmp_path / "params.yaml").write_text("{}\n")
    (tmp_path / "in.csv").write_text("a\n1\n")
    return tmp_path


def _lines(project):
    return (project / ".transferlab" / "timings.jsonl").read_text().splitlines()


def test_a_stage_run_appends_one_well_formed_line(project):
    from stages._common import stage_main

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"

    def run(params, args):  # a worker process, like the sweeps': its CPU must count
        subprocess.run([sys.executable, "-c", burn], check=True)

    stage_main("trivial", {"data": "input"}, run, ["--data", "in.csv"])
    lines = _lines(project)
    assert len(lines) == 1 and lines[0].endswith("}")
    record = json.loads(lines[0])
    assert set(record) == FIELDS
    assert record["stage"] == "trivial@one" and record["status"] == "ok" and record["pid"] == os.getpid()
    started, ended = dt.datetime.fromisoformat(record["started"]), dt.datetime.fromisoformat(record["ended"])
    assert started.utcoffset() == dt.timedelta(0) and started <= ended
    assert record["wall_s"] >= 0.3 and record["startup_s"] == 0.0  # in-process call: from stage_main on
    assert record["cpu_s"] >= 0.25  # the child's CPU seconds are in
    assert 10 < record["peak_rss_mib"] < 64 * 1024  # MiB, not KiB
    assert record["commit"] is None  # tmp_path is no git checkout

    stage_main("trivial", {"data": "input"}, run, ["--data", "in.csv"])
    assert len(_lines(project)) == 2  # appended, never overwritten


def test_a_failing_stage_records_failed_and_still_exits_2(project):
    from stages._common import StageError, stage_main

    def run(params, args):
        raise StageError("the data is bad")

    with pytest.raises(SystemExit) as exit_info:
        stage_main("doomed", {"data": "input"}, run, ["--data", "in.csv"])
    assert exit_info.value.code == 2
    (line,) = _lines(project)
    assert json.loads(line)["status"] == "failed"

    def crash(params, args):
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError):
        stage_main("doomed", {"data": "input"}, crash, ["--data", "in.csv"])
    assert [json.loads(x)["status"] for x in _lines(project)] == ["failed", "failed"]


def test_an_unwritable_timings_dir_warns_and_the_stage_goes_on(project, capsys):
    from stages._common import stage_main

    (project / ".transferlab").write_text("a file where the directory should be")
    done = []
    stage_main("trivial", {"data": "input"}, lambda params, args: done.append(1), ["--data", "in.csv"])
    assert done == [1]
    assert "warning: stage timing not recorded" in capsys.readouterr().err


def test_timings_off_writes_nothing(project, monkeypatch):
    from stages._common import stage_main

    monkeypatch.setenv("TRANSFERLAB_TIMINGS", "off")
    stage_main("trivial", {"data": "input"}, lambda params, args: None, ["--data", "in.csv"])
    assert not (project / ".transferlab").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process start time from /proc")
def test_a_stage_process_counts_from_its_start(project):
    record = tm.StageTimer("x", whole_process=True).measure("ok")
    assert record["startup_s"] > 0 and record["wall_s"] >= record["startup_s"]
    assert dt.datetime.fromisoformat(record["started"]) < dt.datetime.now(dt.timezone.utc)


def test_two_processes_appending_at_once_lose_no_line(tmp_path):
    path = tmp_path / ".transferlab" / "timings.jsonl"
    code = ("import sys\nfrom transferlab.system.timings import append_record\n"
            "for i in range(300):\n"
            "    append_record({'stage': sys.argv[1], 'started': str(i), 'wall_s': i, 'pad': 'x' * 2000}, sys.argv[2])")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, name, str(path)], env=env) for name in ("a", "b")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    records, skipped = tm.read_timings(path)
    assert skipped == 0 and len(records) == 600
    for name in ("a", "b"):
        assert [r["wall_s"] for r in records if r["stage"] == name] == list(range(300))


def test_a_torn_or_garbage_line_is_skipped_and_counted(tmp_path):
    path = tmp_path / "timings.jsonl"
    good = {"stage": "a", "started": "2025-01-01T00:00:00+00:00", "wall_s": 1.0}
    path.write_text(json.dumps(good) + "\n" + '{"stage": "b", "star\n' + "not json\n\n" + '["a list"]\n'
                    + json.dumps({**good, "stage": "c"}) + "\n")
    records, skipped = tm.read_timings(path)
    assert [r["stage"] for r in records] == ["a", "c"] and skipped == 3


def _record(stage, started, wall, cpu, rss, status="ok"):
    return {"stage": stage, "started": f"2025-06-01T10:{started:02d}:00.000+00:00",
            "ended": f"2025-06-01T10:{started:02d}:30.000+00:00", "wall_s": wall, "startup_s": 1.0, "cpu_s": cpu,
            "peak_rss_mib": rss, "status": status, "pid": 1, "commit": None}


@pytest.fixture
def timings_repo(tmp_path):
    rows = [_record("prepare", 1, 10.0, 9.0, 500.0),
            _record("finetune", 2, 999.0, 999.0, 9999.0, "failed"),  # superseded by the later finetune run
            _record("pretrain@src-full", 3, 100.0, 180.0, 1500.0),
            _record("finetune", 4, 300.0, 550.0, 2100.0)]
    path = tmp_path / ".transferlab" / "timings.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "garbage {\n")
    return tmp_path


def test_cli_prints_the_last_run_of_each_stage_and_the_total(timings_repo):
    result = CliRunner().invoke(app, ["timings", "--repo", str(timings_repo)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    order = [next(i for i, line in enumerate(lines) if line.startswith(f"{s} ")) for s in ("prepare", "pretrain@src-full",
                                                                                             "finetune")]
    assert order == sorted(order)  # the order the stages last ran
    assert "999" not in result.stdout and "failed" not in result.stdout
    finetune = lines[order[2]]
    assert "300.0" in finetune and "550.0" in finetune and "2100" in finetune and "ok" in finetune
    (total,) = [line for line in lines if line.startswith("total ")]
    assert total.split() == ["total", "410.0", "3.0", "739.0", "2100", "ok", "3", "stages"]
    assert "skipped 1 unreadable line" in result.stderr


def test_cli_json_and_markdown(timings_repo):
    result = CliRunner().invoke(app, ["timings", "--repo", str(timings_repo), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["stage"] for r in out["stages"]] == ["prepare", "pretrain@src-full", "finetune"]
    assert out["stages"][2]["wall_s"] == 300.0 and out["skipped_lines"] == 1
    assert out["total"] == {"stages": 3, "wall_s": 410.0, "startup_s": 3.0, "cpu_s": 739.0, "peak_rss_mib": 2100.0,
                            "failed": 0}

    md = CliRunner().invoke(app, ["timings", "--repo", str(timings_repo), "--markdown"])
    assert md.exit_code == 0, md.output
    rows = md.stdout.strip().splitlines()
    assert all(r.startswith("|") and r.endswith("|") for r in rows) and len(rows) == 2 + 3 + 1
    assert rows[0].startswith("| stage | wall s |") and rows[4].startswith("| finetune | 300.0 |")
    assert "**total (3 stages)** | **410.0**" in rows[5] and "**2100 (max)**" in rows[5]


def test_cli_without_a_timings_file_exits_2_naming_it(tmp_path):
    result = CliRunner().invoke(app, ["timings", "--repo", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert str(tmp_path / ".transferlab" / "timings.jsonl") in result.output.replace("\n", "")
