"""Stage audio_streams: the continuous audio for the detector, rendered, written and gated by Great Expectations."""
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from stages import audio_streams
from transferlab.params import load_params
from transferlab.system.context import CPU

from ..conftest import ROOT


@pytest.fixture(scope="module")
def smoke():
    return load_params(ROOT / "profiles" / "smoke.yaml")


def _args(root):
    return SimpleNamespace(out=root / "streams", result=root / "v" / "result.json", docs=root / "v" / "datadocs")


def test_streams_are_written_with_their_segments_and_pass_their_gate(smoke, tmp_path):
    audio_streams.run(smoke, _args(tmp_path), CPU)
    s, rate = smoke.audio.streams, smoke.audio.prepare.sample_rate
    minutes = {"validation-negative": s.validation_minutes, "test-negative": s.test_minutes,
               "validation-positive": s.positive_minutes, "test-positive": s.positive_minutes}
    for name, m in minutes.items():
        audio = np.load(tmp_path / "streams" / f"{name}.npy", allow_pickle=False)
        segments = pd.read_csv(tmp_path / "streams" / f"{name}.csv")
        assert audio.dtype == np.int16 and len(audio) == int(m * 60 * rate)
        wake = segments["kind"] == "wake_word"
        assert wake.any() == name.endswith("positive") and (segments["end_s"] <= m * 60).all()
    result = json.loads((tmp_path / "v" / "result.json").read_text())
    assert result["success"] and (tmp_path / "v" / "datadocs" / "index.html").exists()
    # No voice the detector trained on (B-train) or pre-trained on (A-train) speaks in a stream.
    from transferlab.data.audio.build import speaker_roles

    roles = speaker_roles(smoke.audio.prepare.voices, smoke.audio.prepare.seed)
    voices = set(pd.concat(pd.read_csv(f) for f in (tmp_path / "streams").glob("*.csv"))["voice"])
    speakers = {v.split("+")[1] if "+" in v else "default" for v in voices}
    assert {roles[s] for s in speakers} <= {"A-val", "B-test"}


def test_a_stream_that_fails_its_gate_is_not_written(smoke, tmp_path):
    quiet = smoke.model_copy(update={"audio": smoke.audio.model_copy(update={
        "streams": smoke.audio.streams.model_copy(update={"min_rms_dbfs": -1.0, "test_minutes": 1.0})})})
    with pytest.raises(SystemExit):
        audio_streams.run(quiet, _args(tmp_path), CPU)
    assert not (tmp_path / "streams").exists()
    failed = json.loads((tmp_path / "v" / "result.json").read_text())
    assert not failed["success"]


def _folder_target(smoke, root, test_root=None):
    target = smoke.audio.prepare.target.model_copy(update={"kind": "folder", "root": str(root),
                                                           "test_root": str(test_root) if test_root else None})
    prepare = smoke.audio.prepare.model_copy(update={"target": target})
    return smoke.model_copy(update={"audio": smoke.audio.model_copy(update={"prepare": prepare})})


def _record(path, seconds, rate=22050, level=0.1, seed=0):
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).normal(0, level, (int(seconds * rate), 2)) if level else np.zeros((int(seconds * rate), 2))
    sf.write(path, x.astype(np.float32), rate)


def test_a_folder_target_s_background_recordings_join_the_negative_streams(smoke, tmp_path):
    pool = tmp_path / "pool"
    _record(pool / "background" / "kitchen.flac", 90.0, seed=1)  # stereo, 22.05 kHz, any length
    _record(pool / "background" / "office.wav", 30.0, seed=2)
    params = _folder_target(smoke, pool)
    audio_streams.run(params, _args(tmp_path), CPU)
    s, rate = params.audio.streams, params.audio.prepare.sample_rate
    for split, minutes in (("validation", s.validation_minutes), ("test", s.test_minutes)):
        audio = np.load(tmp_path / "streams" / f"{split}-negative.npy", allow_pickle=False)
        segments = pd.read_csv(tmp_path / "streams" / f"{split}-negative.csv")
        ours = segments[segments["kind"] == "background"]
        # Without a fixed test set each recording is cut at its middle: the first half to validation, the rest to test.
        half = "first half" if split == "validation" else "second half"
        assert list(ours["text"]) == [f"kitchen.flac ({half})", f"office.wav ({half})"]
        assert len(audio) == int(minutes * 60 * rate) + 60 * rate  # 45 s + 15 s of recordings, after the rendering
        assert ours["start_s"].iloc[0] == pytest.approx(minutes * 60) and ours["end_s"].iloc[-1] == pytest.approx(
            minutes * 60 + 60, abs=1e-3)
    positive = pd.read_csv(tmp_path / "streams" / "test-positive.csv")
    assert not (positive["kind"] == "background").any()  # never in a stream whose wake words are counted
    result = json.loads((tmp_path / "v" / "result.json").read_text())
    assert result["success"]


def test_background_with_a_fixed_test_set_and_a_silent_recording_fails_its_gate(smoke, tmp_path):
    from transferlab.data.audio.streams import background_files

    pool, test = tmp_path / "pool", tmp_path / "test"
    _record(pool / "background" / "a.wav", 5.0)
    _record(test / "background" / "b.wav", 5.0, level=0)  # digital silence: nothing to falsely accept
    assert background_files(str(pool), str(test)) == {"validation": [(pool / "background" / "a.wav", "whole")],
                                                      "test": [(test / "background" / "b.wav", "whole")]}
    with pytest.raises(SystemExit):
        audio_streams.run(_folder_target(smoke, pool, test), _args(tmp_path), CPU)
    assert not (tmp_path / "streams").exists()
    failed = json.loads((tmp_path / "v" / "result.json").read_text())
    assert not failed["success"] and "b.wav" in json.dumps(failed)


def test_the_background_folder_is_no_class_of_the_target(tmp_path):
    from transferlab.data.audio.clips import load_audio_folder

    for word in ("marvin", "table"):
        _record(tmp_path / word / f"{word}.wav", 1.0, rate=16000)
    _record(tmp_path / "background" / "long.wav", 20.0, rate=16000)
    data = load_audio_folder(tmp_path, 16000, 1.0, skip=("background",))
    assert data.classes == ["marvin", "table"] and len(data.labels) == 2
