"""Streaming wake-word detection: a clip classifier slid over audio of any length. One window per hop, the
wake-word probability smoothed over the last few windows, a detection where the smoothed score crosses the
threshold (its time: the best window within the refractory period after the crossing), then nothing until the
refractory period has passed and the score has fallen below the threshold again. The one code path of
`transferlab detect` and of the evaluation on continuous streams."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from transferlab.core.engine import predict_logits
from transferlab.data.audio.clips import mono_at, read_audio
from transferlab.system.context import CPU, Runtime
from transferlab.system.errors import DataError


@dataclass(frozen=True)
class StreamSettings:
    """How a clip model runs on a stream; recorded in the card (`detector`) beside the threshold."""

    hop_s: float = 0.1  # one window per 100 ms, as openWakeWord's 80 ms frames
    smooth_frames: int = 3  # a causal moving average over this many windows: one noisy window does not fire
    refractory_s: float = 1.0  # at most one detection per wake word: a 1 s window sees a word for ~1.5 s

    def __post_init__(self) -> None:
        if not (self.hop_s > 0 and self.smooth_frames >= 1 and self.refractory_s >= 0):
            raise ValueError(f"stream settings out of range: {self}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Detection:
    time_s: float  # the centre of the best window: where the word is
    score: float  # its smoothed score


def read_stream(path: Path, sample_rate: int) -> np.ndarray:
    """A whole recording, any length, rate and channel count → mono int16 at `sample_rate`. An unreadable, empty,
    truncated or NaN-holding file raises DataError naming the file (a stream is scored as it is: no silent fix)."""
    wave, rate = read_audio(path)
    bad = int((~np.isfinite(wave)).sum())
    if bad:
        raise DataError(f"{path}: {bad:,} of {wave.size:,} samples are NaN or infinite: not audio")
    return (np.clip(mono_at(wave, rate, sample_rate), -1, 1) * 32767).round().astype(np.int16)


def window_starts(samples: int, clip_samples: int, hop_samples: int) -> np.ndarray:
    """The first sample of every window: from 0 in hops, the last one ending inside the stream (one window,
    zero-padded, for a stream shorter than a clip)."""
    last = max(samples - clip_samples, 0)
    return np.arange(0, last + 1, hop_samples, dtype=np.int64)


def window_scores(model: nn.Module, stream: np.ndarray, clip_samples: int, hop_samples: int, positive: int,
                  runtime: Runtime = CPU, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(window starts, the probability of class `positive` per window) of an int16 stream. Windows are views of
    the stream, copied a batch at a time: an hour of audio never exists as a stack of clips."""
    if len(stream) < clip_samples:
        stream = np.pad(stream, (0, clip_samples - len(stream)))
    starts = window_starts(len(stream), clip_samples, hop_samples)
    windows = np.lib.stride_tricks.sliding_window_view(stream, clip_samples)[::hop_samples]
    scores = np.empty(len(starts), np.float32)
    with torch.inference_mode():
        for i in range(0, len(starts), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(windows[i:i + batch_size]))
            probs = torch.softmax(predict_logits(model, batch, runtime, batch_size=batch_size), 1)
            scores[i:i + len(batch)] = probs[:, positive].numpy()
    return starts, scores


def smooth(scores: np.ndarray, frames: int) -> np.ndarray:
    """Causal moving average (what a live detector can know): the mean of this window and the frames-1 before."""
    if frames <= 1 or len(scores) == 0:
        return scores.astype(np.float32)
    c = np.concatenate([[0.0], np.cumsum(scores, dtype=np.float64)])
    i = np.arange(1, len(scores) + 1)
    lo = np.maximum(i - frames, 0)
    return ((c[i] - c[lo]) / (i - lo)).astype(np.float32)


def pick_detections(times: np.ndarray, smoothed: np.ndarray, threshold: float, refractory_s: float) -> list[Detection]:
    """Detections from a smoothed score track: a crossing fires once; its time is the best window within the
    refractory period; the detector re-arms after that period once the score is below the threshold."""
    out: list[Detection] = []
    i, n, armed = 0, len(smoothed), True
    while i < n:
        if not armed:
            armed = smoothed[i] < threshold
            i += 1
            continue
        if smoothed[i] >= threshold:
            end = int(np.searchsorted(times, times[i] + refractory_s, side="right"))
            end = max(end, i + 1)
            best = i + int(np.argmax(smoothed[i:end]))
            out.append(Detection(float(times[best]), float(smoothed[best])))
            i, armed = end, False
            continue
        i += 1
    return out


def detect_stream(model: nn.Module, stream: np.ndarray, sample_rate: int, clip_samples: int, positive: int,
                  threshold: float, settings: StreamSettings = StreamSettings(), runtime: Runtime = CPU
                  ) -> tuple[list[Detection], np.ndarray, np.ndarray]:
    """Detections in an int16 stream at the model's rate, with the window times (centres, s) and smoothed scores
    (for curves: the false-accept rate at every threshold comes from the same track)."""
    hop = max(int(round(settings.hop_s * sample_rate)), 1)
    starts, raw = window_scores(model, stream, clip_samples, hop, positive, runtime)
    times = (starts + clip_samples / 2) / sample_rate
    smoothed = smooth(raw, settings.smooth_frames)
    return pick_detections(times, smoothed, threshold, settings.refractory_s), times, smoothed
