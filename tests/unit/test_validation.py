"""Real Great Expectations runs on prepared data, clean and with planted faults."""
import json

import pandas as pd
import pytest

from transferlab.data.build import prepare
from transferlab.data.prepared import METADATA_FILE, load_prepared
from transferlab.params import parse_params
from transferlab.data.validation import build_checks, run_checks


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    params = parse_params({"prepare": {"source": {"num_samples": 520, "charset": "latin"},
                                       "target": {"test_per_class": 10, "pool_sizes": [1, 5], "pool_draws": 1}},
                           "finetune": {"seeds": 1}, "evaluate": {"focus_per_class": 5},
                           "validate": {"min_per_class_source": 5},
                           "distill": {"per_class": None, "seeds": None}})
    prepare(params.prepare, root / "source", root / "target")
    return root, params


def _check(root, params, tmp_path):
    source, target = load_prepared(root / "source"), load_prepared(root / "target")
    return run_checks(build_checks(source, target, params.prepare, params.validation), tmp_path / "docs")


def test_clean_data_passes_and_builds_data_docs(prepared, tmp_path):
    root, params = prepared
    summary, failures = _check(root, params, tmp_path)
    assert failures == [] and summary["success"]
    assert summary["tables"]["target_metadata"]["evaluated"] > 10
    assert (tmp_path / "docs" / "index.html").exists()
    assert any((tmp_path / "docs" / "validations").rglob("*.html"))


def _corrupt(root, tmp_path, edit) -> object:
    """Copy the prepared target and apply `edit` to its metadata table."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    meta = pd.read_csv(copy / "target" / METADATA_FILE, dtype={"id": str, "label_name": str, "content_hash": str})
    edit(meta)
    meta.to_csv(copy / "target" / METADATA_FILE, index=False)
    return copy


def test_cross_split_duplicate_is_caught_with_its_row(prepared, tmp_path):
    root, params = prepared
    def plant(meta):
        test_row = meta.index[meta["split"] == "test"][0]
        train_row = meta.index[meta["split"] == "train"][0]
        meta.loc[train_row, "content_hash"] = meta.loc[test_row, "content_hash"]
        meta.loc[train_row, "id"] = "PLANTED-LEAK"
    summary, failures = _check(_corrupt(root, tmp_path, plant), params, tmp_path)
    assert not summary["success"]
    leak = [f for f in failures if f.expectation == "expect_column_values_to_be_unique"]
    assert leak and "PLANTED-LEAK" in leak[0].rows
    # The within-split check stays green: the duplicate crosses splits.
    assert not [f for f in failures if f.expectation == "expect_compound_columns_to_be_unique"
                and f.table == "target_metadata"]


def test_empty_class_is_caught_by_name(prepared, tmp_path):
    root, params = prepared
    def drop_class_seven(meta):
        meta.loc[meta["label"] == 7, "label"] = 8
        meta.loc[meta["label_name"] == "7", "label_name"] = "8"
    summary, failures = _check(_corrupt(root, tmp_path, drop_class_seven), params, tmp_path)
    counts = [f for f in failures if f.table == "target_class_counts"]
    assert counts and "7/test" in counts[0].rows and "7/train" in counts[0].rows


def test_pixel_and_shape_faults_are_caught(prepared, tmp_path):
    root, params = prepared
    def break_rows(meta):
        meta.loc[3, "pixel_max"] = 0  # a blank image
        meta.loc[4, "height"] = 27
        meta.loc[5, "nan_count"] = 2
    _, failures = _check(_corrupt(root, tmp_path, break_rows), params, tmp_path)
    failed_columns = {f.column for f in failures if f.table == "target_metadata"}
    assert {"pixel_max", "height", "nan_count"} <= failed_columns


def test_validate_stage_exits_nonzero_and_names_rows(prepared, tmp_path):
    import subprocess
    import sys

    import yaml

    from ..conftest import ROOT, venv_env

    root, params = prepared
    def plant(meta):
        meta.loc[meta.index[meta["split"] == "train"][0], "content_hash"] = meta.loc[
            meta.index[meta["split"] == "test"][0], "content_hash"]
        meta.loc[meta.index[meta["split"] == "train"][0], "id"] = "PLANTED-LEAK"
    copy = _corrupt(root, tmp_path, plant)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params.model_dump(by_alias=True)))
    proc = subprocess.run([sys.executable, "-m", "stages.validate", "--track", "vision",
                           "--source", str(copy / "source"), "--target", str(copy / "target"),
                           "--result", "out/result.json", "--source-result", "out/source.json", "--docs", "out/docs"],
                          cwd=tmp_path, capture_output=True, text=True, env=venv_env(PYTHONPATH=str(ROOT)))
    assert proc.returncode == 1
    assert "expect_column_values_to_be_unique" in proc.stderr and "PLANTED-LEAK" in proc.stderr
    assert (tmp_path / "out" / "result.json").exists()
    # The leak is in the target: the source's own result (what pre-training reads) still passes.
    source = json.loads((tmp_path / "out" / "source.json").read_text())
    assert source["success"] and set(source["tables"]) == {"source_metadata", "source_class_counts"}


def test_the_source_result_is_the_same_whatever_the_target_holds():
    from transferlab.data.validation import source_only

    def summary(target_rows, target_ok):
        return {"success": target_ok, "tables": {
            "source_metadata": {"success": True, "rows": 2600}, "target_metadata": {"success": target_ok,
                                                                                     "rows": target_rows},
            "audio_speaker_leakage": {"success": True, "rows": 3}, "source_class_counts": {"success": True, "rows": 52}}}

    assert source_only(summary(5000, True)) == source_only(summary(80, False))
    assert source_only(summary(1, True))["success"] and "target_metadata" not in source_only(summary(1, True))["tables"]
