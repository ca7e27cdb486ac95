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
