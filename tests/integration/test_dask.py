"""The Dask back end for real: a `dask scheduler` and two `dask worker` processes on 127.0.0.1 run the smoke
profile's fine-tuning sweep (on a tiny target, to keep it quick) with the results of a local run, also when a
worker is killed in the middle of a job."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from transferlab.system.context import Runtime
from transferlab.models.artifacts import make_card, save_model
from transferlab.models.preprocessing import image_preprocessing
from transferlab.data.prepared import write_prepared
from transferlab.experiments.transfer.finetune import run_sweep
from transferlab.analysis.sweep import PREDICTIONS_FILE
from transferlab.system.io import file_md5
from transferlab.models import create_model
from transferlab.system.parallel import SCHEDULER_ENV

from ..conftest import tiny_digits

DASK = str(Path(sys.executable).parent / "dask")


@contextmanager
def dask_cluster(tmp: Path, n_workers: int = 2):
    """A real scheduler and `n_workers` single-threaded workers (no nanny: a killed worker stays dead)."""
    tmp.mkdir(parents=True, exist_ok=True)
    info = tmp / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": ""}
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(info)], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp / "scheduler.log", "w"))]
    try:
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text().strip():
            assert time.monotonic() < deadline, (tmp / "scheduler.log").read_text()
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        for i in range(n_workers):
            procs.append(subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--no-nanny",
                                           "--no-dashboard", "--host", "127.0.0.1"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=open(tmp / f"worker{i}.log", "w")))
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(n_workers, timeout=120)
        yield address
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def sweep_inputs(tmp_path_factory) -> Path:
    """A tiny prepared target (10 classes, pools of 1 and 5 per class) and a convnet_small backbone."""
    root = tmp_path_factory.mktemp("inputs")
    data = tiny_digits()
    write_prepared(root / "target", data.samples.numpy(), data.labels.numpy(), data.classes, data.metadata,
                   data.pools)
    torch.manual_seed(0)
    save_model(root / "backbone", create_model("convnet_small", num_classes=26),
               make_card(architecture={"name": "convnet_small", "kwargs": {}}, classes=[chr(65 + i) for i in range(26)],
                         preprocessing=image_preprocessing(28, 1)))
    return root


def _sweep(inputs: Path, smoke_params, out: Path, workers: int = 2) -> tuple[pd.DataFrame, dict, dict]:
    runs = run_sweep(smoke_params.finetune, {"full": inputs / "backbone"}, inputs / "target", [1, 5],
                     out / "runs", out / "models", Runtime(workers=workers))
    models = {p.parent.name: file_md5(p) for p in (out / "models").glob("*/model.safetensors")}
    return runs.drop(columns="train_seconds"), load_file(out / "runs" / PREDICTIONS_FILE), models


def _same(a: tuple[pd.DataFrame, dict, dict], b: tuple[pd.DataFrame, dict, dict]) -> None:
    pd.testing.assert_frame_equal(a[0], b[0])
    assert a[1].keys() == b[1].keys()
    for key in a[1]:
        assert torch.equal(a[1][key], b[1][key]), key
    assert a[2] and a[2] == b[2]  # every saved model, bit for bit


@pytest.fixture(scope="module")
def local_sweep(sweep_inputs, smoke_params, tmp_path_factory):
    """The smoke sweep on the default back end: a LocalCluster of two workers."""
    return _sweep(sweep_inputs, smoke_params, tmp_path_factory.mktemp("local"))


def test_one_worker_in_this_process_gives_the_models_of_two_whatever_its_threads(sweep_inputs, smoke_params,
                                                                                  local_sweep, tmp_path):
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # what `runtime.threads: 0` gives a stage process on a 2-core machine
    try:
        alone = _sweep(sweep_inputs, smoke_params, tmp_path, workers=1)
    finally:
        torch.set_num_threads(before)
    _same(alone, local_sweep)


def test_a_sweep_on_a_dask_scheduler_gives_the_local_results(sweep_inputs, smoke_params, local_sweep, tmp_path,
                                                             monkeypatch):
    with dask_cluster(tmp_path / "cluster") as address:
        monkeypatch.setenv(SCHEDULER_ENV, address)
        remote = _sweep(sweep_inputs, smoke_params, tmp_path)
    assert len(remote[0]) == len(smoke_params.finetune.strategies) * 2 * 2
    _same(remote, local_sweep)


def test_a_worker_killed_mid_job_has_its_job_rerun_and_the_results_do_not_change(sweep_inputs, smoke_params,
                                                                                   local_sweep, tmp_path,
                                                                                   monkeypatch):
    from distributed import Client

    with dask_cluster(tmp_path / "cluster") as address, Client(address) as watcher:
        monkeypatch.setenv(SCHEDULER_ENV, address)
        pids = watcher.run(os.getpid)
        killed: list[str] = []

        def kill_a_busy_worker() -> None:
            # The first worker seen running a job is killed while it runs it.
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                busy = [w for w, keys in watcher.processing().items() if keys]
                if busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(busy[0])
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        result = _sweep(sweep_inputs, smoke_params, tmp_path)
        killer.join()
        assert killed, "no worker was seen running a job"
        assert killed[0] not in watcher.scheduler_info()["workers"]  # it really died
    _same(result, local_sweep)


def test_losing_the_scheduler_mid_sweep_is_one_error_that_names_it(tmp_path, monkeypatch):
    import re

    from distributed import Client

    from transferlab.system.parallel import SchedulerLost, run_jobs

    with dask_cluster(tmp_path / "cluster") as address:
        with Client(address) as client:
            scheduler = client.run_on_scheduler(os.getpid)
        monkeypatch.setenv(SCHEDULER_ENV, address)
        threading.Timer(4, os.kill, (scheduler, signal.SIGKILL)).start()
        with pytest.raises(SchedulerLost, match=rf"lost the Dask scheduler at {re.escape(address)} after \d+ of 8 jobs"):
            run_jobs(time.sleep, [(2,)] * 8, Runtime(workers=2))
