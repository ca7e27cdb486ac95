"""Running one DVC stage for a flow: its output arrives line by line while it runs; a failure is one line."""
import sys
import time

import yaml

from flows.dvc_stages import failure_line, repro_stage
from transferlab.progress import LineProgress

from .conftest import dvc, sh


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
