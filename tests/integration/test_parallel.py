"""The one door to parallelism: worker counts, and run_jobs's order, in-process path and named errors."""
from __future__ import annotations

import os

import pytest

from transferlab.system.context import Runtime
from transferlab.system.parallel import cores, run_jobs, workers

ONE, TWO = Runtime(workers=1), Runtime(workers=2)


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x


def test_workers_default_to_one_per_core_capped_by_jobs():
    assert workers() == cores() >= 1
    assert workers(3) == 3
    assert workers(0, jobs=1) == 1
    assert workers(8, jobs=2) == 2
    assert workers(0, jobs=0) == 1  # no jobs still means one (idle) worker, never zero
    assert workers(2, jobs=100) == 2


def test_one_worker_runs_in_this_process_in_order_and_reports_each_result():
    seen = []
    results = run_jobs(_square_and_pid, [(i,) for i in range(5)], ONE, on_result=lambda i, r: seen.append((i, r[0])))
    assert [r[0] for r in results] == [0, 1, 4, 9, 16]
    assert {r[1] for r in results} == {os.getpid()}
    assert seen == [(i, i * i) for i in range(5)]


def test_results_keep_job_order_over_worker_processes():
    seen = []
    results = run_jobs(_square_and_pid, [(i,) for i in range(6)], TWO, on_result=lambda i, r: seen.append(i))
    assert [r[0] for r in results] == [i * i for i in range(6)]
    assert os.getpid() not in {r[1] for r in results}  # spawned workers, not this process
    assert sorted(seen) == list(range(6))


@pytest.mark.parametrize("n_workers", [1, 2])
def test_a_failing_job_keeps_its_error_type_and_is_named(n_workers):
    with pytest.raises(ValueError, match="bad input 3") as info:
        run_jobs(_fails_on_three, [(i,) for i in range(5)], Runtime(workers=n_workers))
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "job 4 of 5" in notes and "_fails_on_three(3)" in notes


def _dtype_and_threads(runtime: Runtime) -> tuple[str, int]:
    import torch

    with runtime.autocast():
        out = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    return str(out.dtype), torch.get_num_threads()


def test_a_job_computes_in_the_precision_its_context_carries_on_one_thread():
    """No process state: the context travels inside the job, so a worker computes as its caller asked."""
    bf16 = Runtime(precision="bf16", workers=2)
    assert set(run_jobs(_dtype_and_threads, [(bf16,)] * 3, bf16)) == {("torch.bfloat16", 1)}
    assert set(run_jobs(_dtype_and_threads, [(TWO,)] * 3, TWO)) == {("torch.float32", 1)}


def test_relative_paths_leave_absolute_and_shared_objects_go_out_once(tmp_path, monkeypatch):
    from pathlib import Path

    from transferlab.system.parallel import _absolute

    monkeypatch.chdir(tmp_path)
    assert _absolute(Path("data/x")) == tmp_path / "data" / "x"
    assert _absolute({"full": Path("m")}) == {"full": tmp_path / "m"}
    assert _absolute("data/x") == "data/x" and _absolute(3) == 3
    shared = list(range(1000))
    assert run_jobs(_len_plus, [(shared, i) for i in range(4)], TWO) == [1000, 1001, 1002, 1003]


def _len_plus(items: list, i: int) -> int:
    return len(items) + i


def test_progress_lines_in_a_log_name_the_sweep(capsys):
    run_jobs(_square_and_pid, [(i,) for i in range(4)], ONE, label="squares")
    err = capsys.readouterr().err
    assert "squares: 4/4 (100 %)" in err and err.count("squares:") == 4


def test_a_stage_gets_one_runtime_context_built_from_its_params(tmp_path, monkeypatch):
    """stage_main builds the context once from runtime.* (the cluster, workers resolved, the device a stage
    may override) and hands it to a `run` that takes it; a `run` without it gets none."""
    from stages._common import stage_main
    from transferlab.system.context import SCHEDULER_ENV

    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    monkeypatch.setenv("TRANSFERLAB_TIMINGS", "off")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("runtime:\n  cluster: tcp://10.1.2.3:8786\n  workers: 0\n  threads: 1\n"
                                          "  precision: fp32\n")
    import torch

    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # configure's process setting, not this test's
    seen = []
    stage_main("trivial", {}, lambda params, args, runtime: seen.append(runtime), [])
    assert torch.get_num_threads() == threads
    assert seen == [Runtime(device=seen[0].device, precision="fp32", workers=cores(), threads=1,
                            cluster="tcp://10.1.2.3:8786")]
    assert seen[0].scheduler() == "tcp://10.1.2.3:8786"
    (tmp_path / "params.yaml").write_text("runtime: {threads: 1}\n")
    stage_main("trivial", {}, lambda params, args, runtime: seen.append(runtime), [], device="cpu")
    assert seen[-1].device == "cpu" and seen[-1].scheduler() is None  # no cluster named, no variable: local
    stage_main("trivial", {}, lambda params, args: seen.append("no context"), [])
    assert seen[-1] == "no context"


def _fails_on_runs(runs: list, cfg: dict) -> None:
    raise ValueError("no")


def test_a_failing_job_over_runs_is_named_by_their_run_ids():
    from transferlab.analysis.sweep import RunSpec

    runs = [[RunSpec("full", "head", 1, s)] for s in range(5)]
    with pytest.raises(ValueError) as info:
        run_jobs(_fails_on_runs, [(runs, {"lr": 0.1})], ONE)
    note = " ".join(info.value.__notes__)
    assert f"_fails_on_runs([{runs[0][0].run_id}, {runs[1][0].run_id}, {runs[2][0].run_id}, +2 more], " in note, note
