"""Every bad input we handle, in one table: what the user gives, the command, the exit status and the message.

Each row runs the real command line in a fresh project copy. docs/troubleshooting.md explains
the same messages; `pytest tests/test_bad_inputs.py -v` lists them. Exit 2: the input is refused before any
work (nothing written); exit 1: some files could not be used, the others were (predict)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from .conftest import make_project, venv_env


def _params(repo: Path, **sections) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in sections.items():
        *path, last = dotted.split("__")
        node = params
        for part in path:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _images(folder: Path, per_class: dict[str, int]) -> None:
    for c, n in per_class.items():
        (folder / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(np.full((28, 28), 3 * i + len(c), np.uint8)).save(folder / c / f"{i}.png")


def _model(repo: Path) -> str:
    from transferlab.artifacts import image_preprocessing, make_card, save_model
    from transferlab.models import create_model

    model = create_model("convnet", num_classes=2, widths=[4, 8, 8])
    save_model(repo / "m", model, make_card(architecture={"name": "convnet", "kwargs": {"widths": [4, 8, 8]}},
                                            classes=["a", "b"], preprocessing=image_preprocessing(28, 1)))
    return "m"


def _imagefolder_target(repo: Path, pool: dict[str, int], test: dict[str, int] | None = None) -> None:
    _images(repo / "pool" / "target", pool)
    target = {"kind": "imagefolder", "root": "pool/target", "pool_sizes": [1, 5], "pool_draws": 2}
    if test is not None:
        _images(repo / "pool" / "test", test)
        target["test_root"] = "pool/test"
    _params(repo, prepare__target=target)


def unknown_key(repo):
    _params(repo, finetune__seedz=3)
    return ["params", "check"]


def wrong_type(repo):
    _params(repo, pretrain__epochs="five")
    return ["params", "check"]


def empty_list(repo):
    _params(repo, finetune__strategies=[])
    return ["params", "check"]


def contradicting_keys(repo):
    _params(repo, evaluate__focus_per_class=7)
    return ["params", "check"]


def declared_param_missing(repo):
    _imagefolder_target(repo, {"a": 6, "b": 6}, {"a": 5, "b": 5})
    _params(repo, prepare__target__pool_draws=None)
    return ["params", "check"]


def pool_larger_than_a_class(repo):
    _imagefolder_target(repo, {"a": 9, "b": 3})
    _params(repo, prepare__target__test_per_class=2)
    return ["params", "check"]


def folder_missing(repo):
    _params(repo, prepare__target={"kind": "imagefolder", "root": "nowhere", "pool_sizes": [1, 5], "pool_draws": 2})
    return ["params", "check"]


def params_not_yaml(repo):
    (repo / "params.yaml").write_text("finetune: [unclosed\n")
    return ["params", "check"]


def unknown_profile(repo):
    return ["params", "use", "nonesuch"]


def model_dir_missing(repo):
    return ["predict", "no-such-model", "x.png"]


def unreadable_image(repo):
    (repo / "in").mkdir()
    (repo / "in" / "broken.png").write_bytes(b"\x89PNG not really")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(repo / "in" / "fine.png")
    return ["predict", _model(repo), "in"]


def lineage_of_nothing(repo):
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    return ["lineage", "README.md"]


def _audio_model(repo: Path) -> str:
    from transferlab.artifacts import audio_preprocessing, make_card, save_model
    from transferlab.models import create_model

    model = create_model("m5", num_classes=2, widths=[4, 8])
    save_model(repo / "wake", model, make_card(architecture={"name": "m5", "kwargs": {"widths": [4, 8]}},
                                               classes=["marvin", "other"],
                                               preprocessing=audio_preprocessing(16000, 16000)))
    return "wake"


def pickle_as_weights(repo):
    import pickle

    model = _model(repo)
    (repo / model / "model.safetensors").write_bytes(pickle.dumps({"head.weight": [1.0]}))
    return ["card", model]


def _edited_card(repo: Path, **changes) -> str:
    import json

    model = _model(repo)
    card = json.loads((repo / model / "card.json").read_text())
    for key, value in changes.items():
        node = card
        *path, last = key.split("__")
        for part in path:
            node = node[part]
        node[last] = value
    (repo / model / "card.json").write_text(json.dumps(card))
    return model


def card_edited(repo):
    return ["predict", _edited_card(repo, architecture__name="convnet_huge"), "x.png"]


def weights_unlike_card(repo):
    return ["card", _edited_card(repo, classes=["a", "b", "c"])]


def truncated_audio(repo):
    import soundfile as sf

    model = _audio_model(repo)
    noise = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    sf.write(repo / "cut.wav", noise, 16000, subtype="PCM_16")
    (repo / "cut.wav").write_bytes((repo / "cut.wav").read_bytes()[:16022])
    sf.write(repo / "whole.wav", noise, 16000, subtype="PCM_16")
    return ["predict", model, "cut.wav", "whole.wav"]


def silent_clip(repo):
    import soundfile as sf

    model = _audio_model(repo)
    sf.write(repo / "quiet.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    return ["predict", model, "quiet.wav"]


def linked_batch(repo):
    _imagefolder_target(repo, {"a": 6, "b": 6}, {"a": 5, "b": 5})
    _images(repo / "inbox" / "week1", {"a": 1})
    _images(repo / "elsewhere", {"b": 2})
    (repo / "inbox" / "week1" / "b").symlink_to(repo / "elsewhere" / "b", target_is_directory=True)
    return ["intake"]


# name → (make the bad input, exit status, what the message must say)
CASES = {
    "unknown params key": (unknown_key, 2, r"finetune\.seedz: unknown key; did you mean finetune\.seeds\?"),
    "wrong type": (wrong_type, 2, r"pretrain\.epochs: Input should be a valid integer"),
    "empty list": (empty_list, 2, r"finetune\.strategies: List should have at least 1 item"),
    "two params that contradict": (contradicting_keys, 2, r"evaluate\.focus_per_class \(7\) is not one of "
                                                          r"prepare\.target\.pool_sizes"),
    "a param dvc.yaml declares is missing": (declared_param_missing, 2, r"prepare\.target\.pool_draws \(declared "
                                                                        r"by stage validate\)"),
    "pool larger than a class": (pool_larger_than_a_class, 2, r"prepare\.target\.pool_sizes: the largest pool \(5\) "
                                                              r"plus test_per_class \(2\) needs 7 .* b \(3\)"),
    "data folder missing": (folder_missing, 2, r"prepare\.target\.root: folder nowhere does not exist"),
    "params.yaml not YAML": (params_not_yaml, 2, r"params\.yaml: not valid YAML"),
    "unknown profile": (unknown_profile, 2, r"no profile profiles/nonesuch\.yaml \(available: default, full, smoke"),
    "model directory missing": (model_dir_missing, 2, r"no-such-model"),
    "unreadable image among good ones": (unreadable_image, 1, r"broken\.png"),
    "lineage of a path no stage makes": (lineage_of_nothing, 2, r"README\.md: no stage in dvc\.lock produces it"),
    "model weights are a pickle": (pickle_as_weights, 2, r"m/model\.safetensors: a Python pickle, not safetensors: "
                                                         r"refused, never unpickled"),
    "card.json edited by hand": (card_edited, 2, r"m/card\.json: unknown architecture 'convnet_huge'"),
    "weights do not match the card": (weights_unlike_card, 2, r"m/model\.safetensors: does not match the card"),
    "truncated audio file": (truncated_audio, 1, r"cut\.wav: truncated: header says 16,000 frames, file holds"),
    "silent clip": (silent_clip, 0, r"silent: RMS"),
    "inbox batch links outside itself": (linked_batch, 0, r'"status": "quarantined".*a symbolic link'),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("bad") / "template")


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_with_a_message_that_names_it(name, template, tmp_path):
    import shutil

    make, status, message = CASES[name]
    repo = tmp_path / "project"
    shutil.copytree(template, repo, symlinks=True)
    args = make(repo)
    proc = subprocess.run([sys.executable, "-m", "transferlab.cli", *args], cwd=repo, capture_output=True, text=True,
                          env=venv_env(COLUMNS="250"))
    output = proc.stdout + proc.stderr
    assert proc.returncode == status, output
    assert "Traceback" not in output, output
    import re

    assert re.search(message, " ".join(output.split())), output


def test_the_table_is_what_the_troubleshooting_page_explains():
    from .conftest import ROOT

    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    for name in CASES:
        assert f"| {name} |" in page, name
    assert "docs/troubleshooting.md" in (ROOT / "README.md").read_text()
