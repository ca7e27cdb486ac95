import subprocess
import sys

import pytest
import yaml

from transferlab.params import Params, ParamsError, load_params, parse_params

from .conftest import ROOT, venv_env


def test_default_and_smoke_profiles_are_valid():
    assert isinstance(load_params(ROOT / "params.yaml"), Params)
    smoke = load_params(ROOT / "profiles" / "smoke.yaml")
    assert smoke.finetune.seeds <= 2 and max(smoke.prepare.target.pool_sizes) <= 10


@pytest.mark.parametrize("data, key", [
    ({"finetune": {"seedz": 3}}, "finetune.seedz"),
    ({"pretrain": {"epochs": "5"}}, "pretrain.epochs"),
    ({"pretrain": {"lr": -1.0}}, "pretrain.lr"),
    ({"finetune": {"strategies": ["head", "everything"]}}, "finetune.strategies.1"),
    ({"prepare": {"source": {"num_samples": 0}}}, "prepare.source.num_samples"),
    ({"runtime": {"device": "tpu"}}, "runtime.device"),
    ({"prepare": {"target": {"pool_sizes": [10, 5]}}}, "prepare.target"),
    ({"validate": {"min_per_class_test": 0}}, "validate.min_per_class_test"),
])
def test_bad_params_name_the_key(data, key):
    with pytest.raises(ParamsError) as err:
        parse_params(data)
    assert key in str(err.value)


def test_cross_section_check_names_both_keys():
    with pytest.raises(ParamsError, match=r"finetune.seeds .* prepare.target.pool_draws"):
        parse_params({"finetune": {"seeds": 5}, "prepare": {"target": {"pool_draws": 3}}})


def test_user_source_needs_root():
    with pytest.raises(ParamsError, match="prepare.source"):
        parse_params({"prepare": {"source": {"kind": "imagefolder"}}})
    p = parse_params({"prepare": {"source": {"kind": "imagefolder", "root": "/x"}}})
    assert p.prepare.source.kind == "imagefolder"


def test_stage_fails_before_any_work_on_bad_params(tmp_path):
    bad = yaml.safe_load((ROOT / "profiles" / "smoke.yaml").read_text())
    bad["prepare"]["source"]["num_samplez"] = 10
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    proc = subprocess.run([sys.executable, "-m", "stages.prepare", "--source", "out/s", "--target", "out/t",
                           "--metrics", "out/m.json"], cwd=tmp_path, capture_output=True, text=True,
                          env=venv_env(PYTHONPATH=str(ROOT)))
    assert proc.returncode == 2
    assert "prepare.source.num_samplez" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_params_are_read_as_yaml_1_2_so_spoken_yes_and_no_stay_words(tmp_path):
    # `dvc exp run -S` rewrites params.yaml without quotes; a YAML 1.1 reader would see booleans here.
    path = tmp_path / "params.yaml"
    path.write_text("audio:\n  prepare:\n    source:\n      words: [yes, no, on, off]\n")
    words = load_params(path).audio.prepare.source.words
    assert words == ["yes", "no", "on", "off"]
    path.write_text("finetune: {seeds: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(path)
