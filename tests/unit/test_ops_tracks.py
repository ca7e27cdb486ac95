"""Which dvc.yaml stage makes a track's models: read from dvc.yaml, never named by the library."""
import pytest
import yaml

from transferlab.ops.tracks import RetrainSetupError, model_stage

from ..conftest import ROOT


def _dvc_yaml(path, stages: dict) -> None:
    (path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {k: {"cmd": v} for k, v in stages.items()}}))


def test_the_stage_that_makes_a_tracks_models_is_found_by_its_command(tmp_path):
    assert (model_stage(ROOT, "vision"), model_stage(ROOT, "audio")) == ("finetune", "audio_finetune")
    _dvc_yaml(tmp_path, {"tune_digits": "python -m stages.finetune --track vision --out r --models m",
                         "check": "python -m stages.validate --track vision --source s",
                         "distill": "python -m stages.distill --models m --out d"})
    assert model_stage(tmp_path, "vision") == "tune_digits"  # renamed in dvc.yaml: still found
    with pytest.raises(RetrainSetupError, match="no stage runs a command with `--track audio`"):
        model_stage(tmp_path, "audio")
    _dvc_yaml(tmp_path, {"a": "x --track vision --models m", "b": "y --track vision --models n"})
    with pytest.raises(RetrainSetupError, match="stages a, b run"):
        model_stage(tmp_path, "vision")
