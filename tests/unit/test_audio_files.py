"""Damaged audio files: a WAV or FLAC holding fewer frames than its header declares is an error naming the file,
in the folder loader and in `predict`; a silent clip gets a prediction with a warning."""
import json
import struct

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from transferlab.models.artifacts import make_card, save_model
from transferlab.models.preprocessing import audio_preprocessing
from transferlab.data.audio.clips import load_audio_folder, read_clip
from transferlab.cli import app
from transferlab.system.errors import DataError
from transferlab.models import create_model
from transferlab.ops.predict import predict_files

RATE = 16000


def _noise(n: int, level: float = 0.1, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * level).astype(np.float32)


def _cut(path, keep_bytes: int):
    path.write_bytes(path.read_bytes()[:keep_bytes])
    return path


def half_wav(folder):
    """A one-second 16-bit WAV cut to half its bytes: libsndfile reads 7,989 frames without complaint."""
    sf.write(folder / "half.wav", _noise(RATE), RATE, subtype="PCM_16")
    return _cut(folder / "half.wav", (44 + 2 * RATE) // 2)


def lying_wav(folder):
    """60 bytes: a 44-byte header declaring 5,334 bytes (2,667 frames) of data, and 8 frames."""
    sf.write(folder / "lying.wav", _noise(2667), RATE, subtype="PCM_16")
    return _cut(folder / "lying.wav", 60)


def cut_flac(folder):
    sf.write(folder / "cut.flac", _noise(RATE), RATE)
    return _cut(folder / "cut.flac", (folder / "cut.flac").stat().st_size // 2)


DAMAGED = [(half_wav, "truncated: header says 16,000 frames, file holds 7,989"),
           (lying_wav, "truncated: header says 2,667 frames, file holds 8"),
           (cut_flac, "truncated or corrupt: header says 16,000 frames, decoding fails after ")]


@pytest.mark.parametrize("make, problem", DAMAGED, ids=["wav_half", "wav_60_bytes", "flac_half"])
def test_a_truncated_file_is_an_error_naming_it_in_the_loader(tmp_path, make, problem):
    for cls in ("marvin", "other"):
        (tmp_path / cls).mkdir()
        sf.write(tmp_path / cls / f"{cls}_nohash_0.wav", _noise(RATE), RATE)
    bad = make(tmp_path / "other")
    with pytest.raises(DataError) as err:
        read_clip(bad, RATE, RATE)
    assert str(err.value).startswith(f"{bad}: {problem}"), str(err.value)
    with pytest.raises(DataError, match=str(bad)):
        load_audio_folder(tmp_path, RATE, 1.0)


def test_whole_files_with_unusual_headers_still_read(tmp_path):
    """No false alarms: a chunk after the audio, stereo float, and a streamed WAV whose writer could not go back
    to fill in the data size (0xFFFFFFFF)."""
    with sf.SoundFile(tmp_path / "tagged.wav", "w", RATE, 1, "PCM_16") as f:
        f.title = "a LIST chunk after the data"
        f.write(_noise(RATE))
    sf.write(tmp_path / "stereo.wav", np.stack([_noise(RATE)] * 2, 1), 44100, subtype="FLOAT")
    data = bytearray((tmp_path / "stereo.wav").read_bytes())
    streamed = data.find(b"data")
    data[streamed + 4:streamed + 8] = struct.pack("<I", 0xFFFFFFFF)
    (tmp_path / "streamed.wav").write_bytes(bytes(data))
    for name in ("tagged.wav", "stereo.wav", "streamed.wav"):
        clip, nans = read_clip(tmp_path / name, RATE, RATE)
        assert clip.shape == (RATE,) and nans == 0 and np.abs(clip).max() > 0, name


@pytest.fixture(scope="module")
def audio_model(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("audio") / "model"
    save_model(out, create_model("m5", num_classes=2, widths=[4, 8]),
               make_card(architecture={"name": "m5", "kwargs": {"widths": [4, 8]}}, classes=["marvin", "other"],
                         preprocessing=audio_preprocessing(RATE, RATE)))
    return out


def test_predict_reports_truncated_files_as_errors_and_warns_about_a_silent_clip(audio_model, tmp_path):
    sf.write(tmp_path / "good.wav", _noise(RATE), RATE)
    sf.write(tmp_path / "silent.wav", np.zeros(RATE, np.float32), RATE)
    sf.write(tmp_path / "whisper.flac", _noise(RATE, 0.0005), RATE)  # RMS 0.0005: below 0.002
    damaged = {make(tmp_path).name: problem for make, problem in DAMAGED}
    results = {r.path.split("/")[-1]: r for r in predict_files(audio_model, [tmp_path])}
    for name, problem in damaged.items():
        r = results[name]
        assert r.label is None and r.error.startswith(f"{tmp_path / name}: {problem}"), r
    assert results["good.wav"].error is None and results["good.wav"].warnings == []
    for name in ("silent.wav", "whisper.flac"):
        r = results[name]
        assert r.error is None and r.label in {"marvin", "other"}  # still labelled: a warning is not an error
        assert r.warnings and r.warnings[0].startswith("silent: RMS 0.0") and "below 0.002" in r.warnings[0], r

    result = CliRunner().invoke(app, ["predict", str(audio_model), str(tmp_path), "--json"])
    assert result.exit_code == 1, result.output
    rows = {json.loads(line)["path"].split("/")[-1]: json.loads(line) for line in result.stdout.splitlines()
            if line.startswith("{")}
    assert all("truncated" in rows[name]["error"] for name in damaged)
    assert rows["silent.wav"]["warnings"][0].startswith("silent:")
    quiet = CliRunner().invoke(app, ["predict", str(audio_model), str(tmp_path / "silent.wav")],
                               env={"COLUMNS": "250"})
    assert quiet.exit_code == 0 and "silent: RMS" in quiet.stdout, quiet.output  # warnings alone: exit 0


def test_the_cards_min_rms_sets_the_silence_level(audio_model, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(audio_model, model)
    card = json.loads((model / "card.json").read_text())
    card["preprocessing"]["min_rms"] = 0.0001
    (model / "card.json").write_text(json.dumps(card))
    sf.write(tmp_path / "whisper.wav", _noise(RATE, 0.0005), RATE)
    [r] = predict_files(model, [tmp_path / "whisper.wav"])
    assert r.warnings == []


def test_a_folder_clip_longer_than_the_model_hears_is_cut_and_the_cut_is_said(tmp_path, capsys):
    for c in ("marvin", "other"):
        (tmp_path / c).mkdir()
        sf.write(tmp_path / c / "short.wav", _noise(RATE), RATE, subtype="PCM_16")
    sf.write(tmp_path / "other" / "long.wav", _noise(8 * RATE, seed=1), RATE, subtype="PCM_16")
    data = load_audio_folder(tmp_path, RATE, 1.0)
    assert data.clips.shape == (3, RATE)
    err = capsys.readouterr().err
    assert "1 clip(s) longer than 1.5 x 1 s were cut to their middle 1 s: other/long.wav (8.0 s)" in err


def test_every_bad_file_of_an_audio_folder_is_named_in_one_error(tmp_path):
    for c in ("marvin", "other"):
        (tmp_path / c).mkdir()
        sf.write(tmp_path / c / "good.wav", _noise(RATE), RATE, subtype="PCM_16")
    for name in ("x.wav", "y.wav", "z.wav"):
        (tmp_path / "other" / name).write_bytes(b"RIFF nothing")
    with pytest.raises(DataError, match=r"3 file\(s\) cannot be used") as err:
        load_audio_folder(tmp_path, RATE, 1.0)
    assert all(f"other/{name}" in str(err.value) for name in ("x.wav", "y.wav", "z.wav"))
