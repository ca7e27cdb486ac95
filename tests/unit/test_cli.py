"""The command line's common surface: --version, the card view, --json, quiet `params check`, readable help."""
import json
import re
from importlib.metadata import version

import torch
import typer
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.models import create_model
from transferlab.models.artifacts import make_card, parent, save_model
from transferlab.models.preprocessing import image_preprocessing
from transferlab.system.io import dir_md5

from ..conftest import ROOT

KWARGS = {"widths": [4, 8, 8]}


def test_version_prints_the_installed_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"transferlab {version('transferlab')}"


def test_card_shows_preprocessing_relative_parents_and_rounded_metrics(tmp_path, monkeypatch):
    (tmp_path / "data" / "pool").mkdir(parents=True)
    (tmp_path / "data" / "pool" / "a.txt").write_text("a")
    monkeypatch.chdir(tmp_path)
    backbone = parent(tmp_path / "data" / "pool", "target")  # absolute in, relative to the project out
    assert backbone == {"role": "target", "path": "data/pool", "md5": dir_md5("data/pool")}
    torch.manual_seed(0)
    save_model(tmp_path / "model", create_model("convnet_small", num_classes=3, **KWARGS),
               make_card(architecture={"name": "convnet_small", "kwargs": KWARGS}, classes=["a", "b", "c"],
                         preprocessing=image_preprocessing(28, 1), parents=[backbone],
                         metrics={"test_accuracy": 0.9300000071525574}))
    result = CliRunner().invoke(app, ["card", "model"], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "0.93" in out and "0.9300000071525574" not in out
    assert "image_size: 28" in out and "mean: 0.5" in out and "convnet_small(widths=[4, 8, 8])" in out
    assert re.search(r"parent \(target\)\s*│\s*data/pool", out) and str(tmp_path) not in out
    as_json = json.loads(CliRunner().invoke(app, ["card", "model", "--json"]).output)
    assert as_json["parents"] == [backbone] and as_json["metrics"]["test_accuracy"] == 0.9300000071525574


def test_params_check_is_quiet_unless_asked_to_show():
    quiet = CliRunner().invoke(app, ["params", "check", str(ROOT / "params.yaml"), "--repo", str(ROOT)],
                               terminal_width=300)
    assert quiet.exit_code == 0 and quiet.output.strip().endswith("valid") and len(quiet.output.splitlines()) == 1
    shown = CliRunner().invoke(app, ["params", "check", str(ROOT / "params.yaml"), "--repo", str(ROOT), "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["finetune"]["seeds"] >= 1


def test_help_names_values_not_python_types():
    commands = [[c.name] for c in typer.main.get_command(app).commands.values() if c.name != "params"]
    for command in [*commands, ["params", "check"], ["params", "use"]]:
        result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
        # No typer type label (<bool>, <list[str]>, <path>) on an argument or option: names and value lists only.
        assert result.exit_code == 0 and not re.search(r"<(bool|str|int|float|path|list\[)", result.output), (
            command, result.output)
    assert re.search(r"^  STAGE \.\.\.  Stages to reproduce", CliRunner().invoke(app, ["repro", "--help"]).output, re.M)
    names = json.loads(CliRunner().invoke(app, ["architectures", "--json"]).output)
    assert "tv:<name>" in names or any(n.startswith("tv") for n in names)
    lineage = CliRunner().invoke(app, ["lineage", "--help"], terminal_width=200).output
    assert "--repo DIR" in lineage and "--json" in lineage


def test_init_reads_a_backbone_spec_and_pins_torchvision_weights():
    import pytest

    from transferlab.ops.init import InitError, backbone_entry, pool_sizes

    assert backbone_entry("tv:resnet18") == {"name": "tv-resnet18", "kind": "torchvision", "arch": "resnet18",
                                             "weights": "IMAGENET1K_V1"}  # the arch's DEFAULT today, written down
    assert backbone_entry("tv:resnet50:IMAGENET1K_V2")["weights"] == "IMAGENET1K_V2"
    assert backbone_entry("timm:convnext_tiny.fb_in22k_ft_in1k") == {
        "name": "convnext_tiny", "kind": "timm", "arch": "convnext_tiny.fb_in22k_ft_in1k"}
    assert backbone_entry("file:resnet18:weights/my net.pth") == {
        "name": "my-net", "kind": "file", "arch": "resnet18", "path": "weights/my net.pth"}
    with pytest.raises(InitError, match="expected tv:ARCH"):
        backbone_entry("file:weights.pth")
    assert pool_sizes(8) == [1, 5] and pool_sizes(300) == [1, 5, 10, 20, 50, 100, 300]
    with pytest.raises(InitError, match="a class has 0 usable images"):
        pool_sizes(0)
