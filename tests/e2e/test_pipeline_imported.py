"""An imported backbone through the real pipeline: params `backbones:` → data_roots hashes the weights file →
import_backbones → finetune runs it beside our own backbones → the fine-tuned card and `transferlab lineage`
name the exact weights file and md5; a changed file makes the chain stale and re-imports."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pandas as pd
import torchvision
import yaml
from safetensors.torch import save_file

from transferlab.system.io import file_md5

from ..conftest import dvc, venv_env


def _cli(args: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "transferlab.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=venv_env(COLUMNS="200"))


def test_imported_file_backbone_is_fine_tuned_and_named_by_lineage(smoke_project, tmp_path):
    # A copy of the finished smoke project: what the new backbone changes re-runs, the rest is cached.
    repo = tmp_path / "project"
    shutil.copytree(smoke_project, repo, symlinks=True,
                    ignore=lambda folder, names: ["tmp"] if folder.endswith("/.dvc") else [])
    weights = repo / "weights" / "mnv3.safetensors"
    weights.parent.mkdir()
    save_file(torchvision.models.mobilenet_v3_small().state_dict(), str(weights))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["backbones"] = [{"name": "mnv3", "kind": "file", "arch": "mobilenet_v3_small",
                            "path": "weights/mnv3.safetensors"}]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    out = dvc("repro", "finetune", cwd=repo).stdout
    assert {"data_roots", "import_backbones", "finetune"} <= set(re.findall(r"Running stage '([^']+)'", out))
    md5 = file_md5(weights)
    assert json.loads((repo / "data" / "weights.json").read_text())["mnv3"] == {
        "kind": "file", "file": "weights/mnv3.safetensors", "md5": md5}
    runs = pd.read_csv(repo / "results" / "finetune" / "runs.csv")
    mnv3 = runs[runs["backbone"] == "mnv3"]
    # The imported backbone runs the ablation strategy on the same pools and seeds as the main one.
    assert set(mnv3["strategy"]) == {params["finetune"]["ablation_strategy"]}
    assert sorted(zip(mnv3["per_class"], mnv3["seed"])) == sorted(
        set(zip(runs["per_class"], runs["seed"])))
    assert runs["backbone"].iloc[0] == "src-full"  # the main backbone stays first
    tuned = json.loads((repo / "models" / "finetuned" / "mnv3-full-n1" / "card.json").read_text())
    assert tuned["preprocessing"]["network_input"]["channel_repeat"] is True
    backbone = next(p for p in tuned["parents"] if p["role"] == "backbone")
    assert backbone["path"].endswith("models/imported/mnv3")
    imported = json.loads((repo / "models" / "imported" / "mnv3" / "card.json").read_text())
    assert imported["parents"] == [{"role": "pretrained-weights", "path": "weights/mnv3.safetensors", "md5": md5}]

    lineage = _cli(["lineage", "models/finetuned/mnv3-full-n1"], repo)
    assert lineage.returncode == 0, lineage.stderr
    assert f"{md5}  weights/mnv3.safetensors (pretrained weights of backbone mnv3)" in lineage.stdout
    assert "stage import_backbones" in lineage.stdout and "matches dvc.lock" in lineage.stdout

    # Another file under the same name: lineage says so, and the next repro re-imports and fine-tunes again.
    save_file(torchvision.models.mobilenet_v3_small(num_classes=10).state_dict(), str(weights))
    lineage = _cli(["lineage", "models/finetuned/mnv3-full-n1"], repo)
    assert "STALE" in lineage.stdout and "modified: weights/mnv3.safetensors" in lineage.stdout
    out = dvc("repro", "finetune", cwd=repo).stdout
    assert re.findall(r"Running stage '([^']+)'", out) == ["data_roots", "import_backbones", "finetune"]
    assert json.loads((repo / "models" / "imported" / "mnv3" / "card.json").read_text())["classes"] == [
        f"class_{i}" for i in range(10)]
