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


def test_a_folder_of_stage_outputs_is_upstream_and_code_is_one_hash_per_stage(tmp_path):
    from transferlab.ops.lineage import code_hash, render_text, trace

    def stage(cmd, deps, outs):
        return {"cmd": cmd, "deps": [{"path": p, "md5": m} for p, m in deps.items()],
                "outs": [{"path": p, "md5": m} for p, m in outs.items()]}

    code = {"stages/finetune.py": "c1", "transferlab/core": "c2.dir", "transferlab/models": "c3.dir"}
    lock = {"schema": "2.0", "stages": {
        "pretrain_curve@100": stage("python -m stages.pretrain_curve", {"data/source": "s.dir", **code},
                                    {"models/pretrained/curve/src-100": "a.dir"}),
        "finetune": stage("python -m stages.finetune", {"models/pretrained/curve": "f.dir", **code},
                          {"results/finetune": "r.dir"})}}
    lin = trace(tmp_path, "results/finetune", lock_text=yaml.safe_dump(lock))
    # The folder holding the curve backbones is made by their stages, not a raw input.
    assert [s.stage for s in lin.steps] == ["finetune", "pretrain_curve@100"]
    assert lin.steps[0].upstream == ["pretrain_curve@100"]
    assert "models/pretrained/curve" not in lin.raw_inputs and "data/source" in lin.raw_inputs
    text = render_text(lin)
    digest, n = code_hash(lin.steps[0].deps)
    assert n == 3 and f"code {digest}  3 files in stages/, transferlab/" in text
    assert "transferlab/core" not in text and "and 3 code files" in text
    full = render_text(lin, code=True)
    assert "c2.dir  transferlab/core" in full and "--code lists them" not in full
    changed = dict(lin.steps[0].deps, **{"transferlab/core": "other.dir"})
    assert code_hash(changed)[0] != digest  # one edited file changes the stage's code hash


def test_each_stage_run_by_a_flow_is_remembered_so_an_older_output_still_names_its_run(tmp_path):
    from transferlab.ops.lineage import read_flow_runs, record_flow_run, trace

    def lock(md5):
        return {"schema": "2.0", "stages": {"finetune": {"cmd": "python -m stages.finetune", "deps": [],
                                                          "outs": [{"path": "models/finetuned", "md5": md5}]}}}

    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock("a.dir")))
    record_flow_run(tmp_path, "finetune", "id-1", "first-run")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock("b.dir")))
    record_flow_run(tmp_path, "finetune", "id-2", "second-run")
    assert [r["flow_run_id"] for r in read_flow_runs(tmp_path)["finetune"]] == ["id-1", "id-2"]
    older = trace(tmp_path, "models/finetuned", lock_text=yaml.safe_dump(lock("a.dir")))
    assert older.steps[0].flow_run["flow_run_name"] == "first-run"
    unknown = trace(tmp_path, "models/finetuned", lock_text=yaml.safe_dump(lock("c.dir")))
    assert unknown.steps[0].flow_run is None  # outs no recorded run made
