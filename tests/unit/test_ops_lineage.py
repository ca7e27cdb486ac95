"""Lineage helpers that need no pipeline run (trace itself is tested on the smoke repo in test_pipeline)."""
import pytest
import yaml

from transferlab.ops.lineage import stage_arguments


def test_stage_arguments_come_from_the_command_dvc_lock_ran(tmp_path):
    lock = {"schema": "2.0", "stages": {"audio_finetune": {
        "cmd": "python -m stages.finetune --track audio --backbone audio=models/audio/pretrained "
               "--target data/audio/target --out results/audio/finetune --models models/audio/finetuned"}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    args = stage_arguments(tmp_path, "audio_finetune")
    assert args["out"] == "results/audio/finetune" and args["target"] == "data/audio/target"
    assert args["models"] == "models/audio/finetuned" and args["track"] == "audio"
    with pytest.raises(ValueError, match="no stage 'finetune'"):
        stage_arguments(tmp_path, "finetune")
