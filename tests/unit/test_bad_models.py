"""Tampered and foreign model directories: `transferlab predict` and `transferlab card` print one line naming
the file and the problem and exit 2; `load_model` raises ModelFileError; nothing is ever unpickled."""
import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from transferlab.models.artifacts import CARD_FILE, WEIGHTS_FILE, ModelFileError, load_model, make_card, save_model
from transferlab.models.preprocessing import audio_preprocessing, image_preprocessing
from transferlab.cli import app
from transferlab.models import create_model

KWARGS = {"widths": [4, 8, 8]}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A small real image model (3 classes, 28x28 grey) and one image to predict."""
    root = tmp_path_factory.mktemp("good")
    torch.manual_seed(0)
    save_model(root / "model", create_model("convnet_small", num_classes=3, **KWARGS),
               make_card(architecture={"name": "convnet_small", "kwargs": KWARGS}, classes=["a", "b", "c"],
                         preprocessing=image_preprocessing(28, 1)))
    Image.fromarray(np.full((28, 28), 40, np.uint8)).save(root / "digit.png")
    return root


class Marker:
    """Unpickling this creates the marker file: proof that the loader ran pickle code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _card(**changes):
    def tamper(d):
        card = json.loads((d / CARD_FILE).read_text())
        for key, value in changes.items():
            if value is KeyError:
                del card[key]
            else:
                card[key] = value
        (d / CARD_FILE).write_text(json.dumps(card))
    return tamper


def _arch(**kwargs):
    return _card(architecture={"name": "convnet_small", "kwargs": {**KWARGS, **kwargs}})


def _prep(**changes):
    return _card(preprocessing={**image_preprocessing(28, 1), **changes})


def _state(d):
    # Copies: safetensors maps the file, and overwriting a mapped file under its tensors is a bus error.
    return {k: v.clone() for k, v in load_file(str(d / WEIGHTS_FILE)).items()}


def _weights(edit):
    def tamper(d):
        state = _state(d)
        edit(state)
        save_file(state, str(d / WEIGHTS_FILE))
    return tamper


def _set(name, value):
    def edit(state):
        state[name] = value(state[name])
    return edit


def _pickle(d):
    (d / WEIGHTS_FILE).write_bytes(pickle.dumps(Marker(d.parent / "MARKER")))


def _torch_save(d):
    torch.save(_state(d), d / WEIGHTS_FILE)


def _truncate(name, keep):
    def tamper(d):
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[:int(len(data) * keep)])
    return tamper


# (id, tamper(model_dir), the file named, what the line must say); the README's troubleshooting table.
CASES = [
    ("pickle_as_safetensors", _pickle, WEIGHTS_FILE, "a Python pickle, not safetensors: refused, never unpickled"),
    ("torch_save_as_safetensors", _torch_save, WEIGHTS_FILE,
     "a zip archive (torch.save's pickle format), not safetensors"),
    ("weights_garbage", lambda d: (d / WEIGHTS_FILE).write_bytes(b"hello world " * 10), WEIGHTS_FILE,
     "not a safetensors file (Error while deserializing header"),
    ("weights_empty", lambda d: (d / WEIGHTS_FILE).write_bytes(b""), WEIGHTS_FILE, "not a safetensors file"),
    ("weights_truncated", _truncate(WEIGHTS_FILE, 0.5), WEIGHTS_FILE, "not a safetensors file"),
    ("weights_missing", lambda d: (d / WEIGHTS_FILE).unlink(), WEIGHTS_FILE, "not found"),
    ("card_missing", lambda d: (d / CARD_FILE).unlink(), CARD_FILE, "not found: not a transferlab model directory"),
    ("card_invalid_json", _truncate(CARD_FILE, 0.5), CARD_FILE, "invalid JSON ("),
    ("card_not_utf8", lambda d: (d / CARD_FILE).write_bytes(b"\xff\xfe{}"), CARD_FILE, "not UTF-8 text"),
    ("card_a_list", lambda d: (d / CARD_FILE).write_text("[1, 2]"), CARD_FILE, "not a JSON object but a JSON list"),
    ("format_unknown", _card(format="transferlab-model/99"), CARD_FILE,
     "unknown format 'transferlab-model/99' (expected 'transferlab-model/1')"),
    ("format_missing", _card(format=KeyError), CARD_FILE, "unknown format None"),
    ("classes_missing", _card(classes=KeyError), CARD_FILE, "missing key(s) classes"),
    ("architecture_unknown", _card(architecture={"name": "convnet_huge", "kwargs": KWARGS}), CARD_FILE,
     "unknown architecture 'convnet_huge' (known: "),
    ("architecture_a_string", _card(architecture="convnet_small"), CARD_FILE,
     "architecture must be an object with a name"),
    ("kwargs_not_an_object", _card(architecture={"name": "convnet_small", "kwargs": [4, 8]}), CARD_FILE,
     "architecture.kwargs must be an object"),
    ("widths_a_string", _arch(widths="4,8,8"), CARD_FILE, "widths must be a list of positive integers, got '4,8,8'"),
    ("widths_negative", _arch(widths=[4, -8, 8]), CARD_FILE, "widths must be a list of positive integers"),
    ("kwargs_unknown_argument", _arch(depth=3), CARD_FILE, "cannot build the card's convnet_small"),
    ("classes_a_string", _card(classes="abc"), CARD_FILE, "classes must be a list of names, got 'abc'"),
    ("classes_twice", _card(classes=["a", "b", "a"]), CARD_FILE, "classes: the same name twice"),
    ("classes_more_than_weights", _card(classes=["a", "b", "c", "d"]), WEIGHTS_FILE,
     "shape differs from the card's network: head.weight is [3, 8] not [4, 8]"),
    ("widths_other_than_weights", _arch(widths=[4, 8, 16]), WEIGHTS_FILE, "shape differs from the card's network"),
    ("channels_other_than_weights", _prep(channels=3), WEIGHTS_FILE,
     "blocks.0.0.0.weight is [4, 1, 3, 3] not [4, 3, 3, 3]"),
    ("channels_a_string", _prep(channels="1"), CARD_FILE, "preprocessing.channels must be a positive integer, got '1'"),
    ("image_size_missing", _card(preprocessing={"modality": "image", "channels": 1}), CARD_FILE,
     "preprocessing.image_size must be a positive integer, got None"),
    ("preprocessing_a_list", _card(preprocessing=[28, 1]), CARD_FILE, "preprocessing must be an object"),
    ("modality_unknown", _prep(modality="video"), CARD_FILE, "preprocessing.modality must be 'image' or 'audio'"),
    ("audio_card_on_image_model", _card(preprocessing=audio_preprocessing(16000, 16000)), CARD_FILE,
     "preprocessing.modality is 'audio' but architecture 'convnet_small' takes image input"),
    ("frozen_unknown_module", _card(frozen_modules=["blocks.9"]), CARD_FILE,
     "frozen_modules names no module of the network: blocks.9"),
    ("frozen_not_a_list", _card(frozen_modules="blocks.0"), CARD_FILE, "frozen_modules must be a list"),
    ("parents_not_a_list", _card(parents="nowhere"), CARD_FILE, "parents must be a list of objects"),
    ("tensor_extra", _weights(lambda s: s.update({"extra.weight": torch.zeros(2)})), WEIGHTS_FILE,
     "1 unexpected tensor(s): extra.weight"),
    ("tensor_missing", _weights(lambda s: s.pop("head.bias")), WEIGHTS_FILE, "1 tensor(s) missing: head.bias"),
    ("tensor_nan", _weights(_set("head.weight", lambda t: t.fill_(float("nan")))), WEIGHTS_FILE,
     "NaN/inf in head.weight (24 values)"),
    ("tensor_inf", _weights(_set("head.bias", lambda t: t.fill_(float("inf")))), WEIGHTS_FILE,
     "NaN/inf in head.bias (3 values)"),
    ("tensor_integer", _weights(_set("head.weight", lambda t: t.to(torch.int64))), WEIGHTS_FILE,
     "wrong dtype: head.weight is torch.int64"),
]


@pytest.mark.parametrize("tamper, named, problem", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_model_is_one_line_naming_the_file_and_exit_2(good, tmp_path, tamper, named, problem):
    model_dir = tmp_path / "model"
    shutil.copytree(good / "model", model_dir)
    tamper(model_dir)
    with pytest.raises(ModelFileError) as err:
        load_model(model_dir)
    assert str(err.value).startswith(f"{model_dir / named}: ") and problem in str(err.value), str(err.value)
    for args in (["predict", str(model_dir), str(good / "digit.png")], ["card", str(model_dir)]):
        result = CliRunner().invoke(app, args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and lines == [str(err.value)], (args[0], result.output)
    assert not (tmp_path / "MARKER").exists()  # the pickle's payload never ran


def test_the_pickle_would_have_run_code_if_unpickled(tmp_path):
    """The control for the pickle case: its payload does create the marker when unpickled."""
    pickle.loads(pickle.dumps(Marker(tmp_path / "MARKER")))
    assert (tmp_path / "MARKER").exists()


def test_an_untampered_model_loads_and_shows_its_card(good):
    model, card = load_model(good / "model")
    assert card["classes"] == ["a", "b", "c"] and not model.training
    result = CliRunner().invoke(app, ["card", str(good / "model")])
    assert result.exit_code == 0 and "convnet_small" in result.output
    assert CliRunner().invoke(app, ["predict", str(good / "model"), str(good / "digit.png")]).exit_code == 0


def test_a_card_without_modality_is_read_as_an_image_card(good, tmp_path):
    """Cards written before audio support have no preprocessing.modality: still images, still loaded."""
    shutil.copytree(good / "model", tmp_path / "model")
    _card(preprocessing={k: v for k, v in image_preprocessing(28, 1).items() if k != "modality"})(tmp_path / "model")
    assert load_model(tmp_path / "model")[1]["classes"] == ["a", "b", "c"]
