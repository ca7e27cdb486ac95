"""The bad inputs of tests/integration/test_bad_inputs.py: each function puts one into a fresh project copy and
returns the command line that must refuse it (the table, CASES, pairs each with its exit status and message)."""
from pathlib import Path

import numpy as np
import yaml
from PIL import Image


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
    from transferlab.models.artifacts import make_card, save_model
    from transferlab.models.preprocessing import image_preprocessing
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
    from transferlab.models.artifacts import make_card, save_model
    from transferlab.models.preprocessing import audio_preprocessing
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


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height pixels (no image data): what Pillow's bomb check reads first."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IEND", b""))


def decompression_bomb(repo):
    (repo / "in").mkdir()
    _png_header_only(repo / "in" / "bomb.png", 30000, 30000)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(repo / "in" / "fine.png")
    return ["predict", _model(repo), "in"]


def tiny_image(repo):
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(repo / "dot.png")
    return ["predict", _model(repo), "dot.png"]


def markup_in_a_name(repo):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(repo / "[bold]y.png")
    return ["predict", _model(repo), "[bold]y.png"]


def nan_clip(repo):
    import soundfile as sf

    wave = np.zeros(16000, np.float32)
    wave[100:200] = np.nan
    sf.write(repo / "nan.wav", wave, 16000, subtype="FLOAT")
    return ["predict", _audio_model(repo), "nan.wav"]


def long_clip(repo):
    import soundfile as sf

    noise = (np.random.default_rng(0).standard_normal(8 * 16000) * 0.1).astype(np.float32)
    sf.write(repo / "long.wav", noise, 16000, subtype="PCM_16")
    return ["predict", _audio_model(repo), "long.wav"]


def _lowpass_noise(n: int, seconds: float, rate: int, seed: int) -> np.ndarray:
    """Clips of noise below 2 kHz, speech-like in where their energy lies."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal((n, int(seconds * rate))), axis=1)
    spectrum[:, int(2000 * seconds):] = 0
    wave = np.fft.irfft(spectrum, axis=1)
    return (0.1 * wave / wave.std(axis=1, keepdims=True)).astype(np.float32)


def header_rate_lies(repo):
    import soundfile as sf

    from transferlab.models.artifacts import make_card, save_model
    from transferlab.models.preprocessing import audio_preprocessing
    from transferlab.data.drift import training_statistics
    from transferlab.models import create_model

    clips = (np.clip(_lowpass_noise(64, 1.0, 16000, 0), -1, 1) * 32767).round().astype(np.int16)
    save_model(repo / "wake", create_model("m5", num_classes=2, widths=[4, 8]),
               make_card(architecture={"name": "m5", "kwargs": {"widths": [4, 8]}}, classes=["marvin", "other"],
                         preprocessing=audio_preprocessing(16000, 16000),
                         training_stats=training_statistics(clips, "audio", "64 low-pass noise clips")))
    # Recorded at 16 kHz, labelled 32 kHz: every frequency doubles when it is read.
    sf.write(repo / "liar.wav", _lowpass_noise(1, 1.0, 16000, 1)[0], 32000, subtype="PCM_16")
    return ["predict", "wake", "liar.wav"]


def _intake_project(repo: Path) -> None:
    _imagefolder_target(repo, {"a": 6, "b": 6}, {"a": 5, "b": 5})
    # A good batch after the bad one (an image the pool does not have): the inbox must not stop at the bad one.
    (repo / "inbox" / "week2" / "a").mkdir(parents=True)
    Image.fromarray(np.full((28, 28), 201, np.uint8)).save(repo / "inbox" / "week2" / "a" / "new.png")


def bomb_in_a_batch(repo):
    _intake_project(repo)
    _images(repo / "inbox" / "week1", {"a": 1})
    _png_header_only(repo / "inbox" / "week1" / "a" / "bomb.png", 30000, 30000)
    return ["intake"]


def three_bad_files_in_a_batch(repo):
    _intake_project(repo)
    _images(repo / "inbox" / "week1", {"a": 2})
    for name in ("x.png", "y.png", "z.png"):
        (repo / "inbox" / "week1" / "a" / name).write_bytes(b"not a png")
    return ["intake"]


def not_utf8_name_in_a_batch(repo):
    import os

    _intake_project(repo)
    _images(repo / "inbox" / "week1", {"a": 1})
    Image.fromarray(np.full((28, 28), 9, np.uint8)).save(os.fsencode(repo / "inbox" / "week1" / "a") + b"/caf\xe9.png")
    return ["intake"]


def batch_is_a_link(repo):
    _intake_project(repo)
    _images(repo / "elsewhere", {"a": 2})
    (repo / "inbox" / "week1").symlink_to(repo / "elsewhere", target_is_directory=True)
    return ["intake"]


def class_linked_to_a_sibling(repo):
    _intake_project(repo)
    _images(repo / "inbox" / "week1", {"a": 2})
    (repo / "inbox" / "week1" / "b").symlink_to(repo / "inbox" / "week1" / "a", target_is_directory=True)
    return ["intake"]


def inbox_outside_the_project(repo):
    _params(repo, retrain__inbox="../x")
    return ["params", "check"]
