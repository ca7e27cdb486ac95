"""The retrain steps the flow and the CLI share, called in-process from another working directory: every
path is the project's, and what they report is relative to it."""
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from transferlab.params.profiles import whole_data
from transferlab.ops import retrain

from ..conftest import ROOT


def _png(path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(seed).random((28, 28)) * 255).astype(np.uint8)).save(path)


@pytest.fixture
def project(tmp_path, monkeypatch):
    repo = tmp_path / "project"
    params = whole_data(ROOT / "profiles" / "smoke.yaml")
    params["prepare"]["target"] = {"kind": "imagefolder", "root": "pool/target", "test_root": "pool/test",
                                   "pool_sizes": [1, 5], "pool_draws": 2}
    params["retrain"] = {"inbox": "inbox", "model_name": "digits", "margin": 0.0}
    repo.mkdir()
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy2(ROOT / "dvc.yaml", repo / "dvc.yaml")
    for c in "01":
        for i in range(3):
            _png(repo / "pool" / "target" / c / f"p{i}.png", 10 * int(c) + i)
        _png(repo / "pool" / "test" / c / "t.png", 100 + int(c))
        _png(repo / "inbox" / "week1" / c / "new.png", 200 + int(c))
    monkeypatch.chdir(tmp_path)  # not the project: the steps must not lean on the working directory
    return repo


def test_intake_merges_into_the_projects_pool_and_reports_relative_paths(project):
    result = retrain.intake(project, "vision")
    [batch] = result["batches"]
    assert batch["status"] == "merged" and batch["moved_to"].startswith("inbox/merged/week1-")
    assert (project / batch["moved_to"]).is_dir() and len(list((project / "pool" / "target").rglob("*.png"))) == 8
    assert result["pool"] == "pool/target" and result["champion_version"] is None


def test_a_step_that_cannot_run_raises_one_message(project):
    shutil.rmtree(project / "inbox")
    with pytest.raises(retrain.StepFailed, match="intake: inbox .* does not exist"):
        retrain.intake(project, "vision")
    with pytest.raises(retrain.StepFailed, match="promote: .*no stage 'finetune'"):
        retrain.promote(project, "vision")
    with pytest.raises(retrain.StepFailed, match="unknown track"):
        retrain.promote(project, "video")
