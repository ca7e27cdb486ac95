"""Streaming wake-word detection: a clip classifier slid over audio of any length. One window per hop, the
wake-word probability smoothed over the last few windows, a detection where the smoothed score crosses the
threshold (its time: the best window within the refractory period after the crossing), then nothing until the
refractory period has passed and the score has fallen below the threshold again. The one code path of
`transferlab detect` and of the evaluation on continuous streams."""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from transferlab.core.engine import conv_layout, in_layout, predict_logits, to_input
from transferlab.data.audio.clips import read_recording
from transferlab.models.audio import AudioConvNet, LogMel
from transferlab.params import AudioDetectParams
from transferlab.system.context import CPU, Runtime


@dataclass(frozen=True)
class StreamSettings:
    """How a clip model runs on a stream; recorded in the card (`detector`) beside the threshold."""

    hop_s: float = AudioDetectParams().hop_s  # the defaults are the params' (audio.detect), where they are explained
    smooth_frames: int = AudioDetectParams().smooth_frames
    refractory_s: float = AudioDetectParams().refractory_s

    def __post_init__(self) -> None:
        if not (self.hop_s > 0 and self.smooth_frames >= 1 and self.refractory_s >= 0):
            raise ValueError(f"stream settings out of range: {self}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_params(cls, p: AudioDetectParams) -> StreamSettings:
        return cls(p.hop_s, p.smooth_frames, p.refractory_s)


@dataclass(frozen=True)
class Detection:
    time_s: float  # the centre of the best window: where the word is
    score: float  # its smoothed score


def read_stream(path: Path, sample_rate: int) -> np.ndarray:
    """A whole recording → mono int16 at `sample_rate` (clips.read_recording: a bad file raises DataError)."""
    return read_recording(path, sample_rate)


def window_starts(samples: int, clip_samples: int, hop_samples: int) -> np.ndarray:
    """The first sample of every window: from 0 in hops, the last one ending inside the stream (one window,
    zero-padded, for a stream shorter than a clip)."""
    last = max(samples - clip_samples, 0)
    return np.arange(0, last + 1, hop_samples, dtype=np.int64)


def window_outputs(model: nn.Module, stream: np.ndarray, clip_samples: int, hop_samples: int,
                   runtime: Runtime = CPU, batch_size: int = 256, part: str = "logits",
                   shared_stft: bool = True) -> torch.Tensor:
    """The model's outputs for every window of an int16 stream: its logits, its `pre_logits` (the pooled features
    its head sees) or its `features` (forward_features: what forward_head takes). Windows are views of the
    stream, copied a batch at a time: an hour of audio never exists as a stack of clips. A log-mel network
    whose windows share STFT frames gets its spectrograms from one STFT of the stream (LogMel.stream_windows:
    the same numbers up to rounding, the front end at a fraction of the cost; shared_stft=False: window by window,
    the baseline benchmarks/detector_rtf.py compares)."""
    if part not in ("logits", "pre_logits", "features"):
        raise ValueError(f"part: logits, pre_logits or features, not {part!r}")
    if len(stream) < clip_samples:
        stream = np.pad(stream, (0, clip_samples - len(stream)))
    starts = window_starts(len(stream), clip_samples, hop_samples)
    frontend = getattr(model, "frontend", None)
    if shared_stft and isinstance(model, AudioConvNet) and isinstance(frontend, LogMel) and \
            frontend.shares_frames(clip_samples, hop_samples):
        return _shared_spectrogram_outputs(model, stream, clip_samples, starts, runtime, batch_size, part)
    windows = np.lib.stride_tricks.sliding_window_view(stream, clip_samples)[::hop_samples]
    out = []
    device = runtime.torch_device
    with torch.inference_mode():
        for i in range(0, len(windows), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(windows[i:i + batch_size]))
            if part != "features":
                out.append(predict_logits(model, batch, runtime, batch_size=batch_size,
                                          pre_logits=part == "pre_logits"))
                continue
            model.to(device).eval()
            with runtime.autocast(), conv_layout(model, device) as layout:
                out.append(model.forward_features(in_layout(to_input(batch, device), layout)).float().cpu())
    return torch.cat(out)


def _shared_spectrogram_outputs(model: AudioConvNet, stream: np.ndarray, clip_samples: int, starts: np.ndarray,
                                runtime: Runtime, batch_size: int, part: str) -> torch.Tensor:
    device = runtime.torch_device
    wave = to_input(torch.from_numpy(np.asarray(stream))[None])[0, 0]  # the float waveform the model reads
    model.to(device).eval()
    out = []
    with torch.inference_mode(), runtime.autocast(), conv_layout(model, device):
        for i in range(0, len(starts), batch_size):
            spec = model.frontend.stream_windows(wave, clip_samples, starts[i:i + batch_size].tolist())
            features = model.forward_spectrogram(spec.to(device))
            if part != "features":
                features = model.forward_head(features, pre_logits=part == "pre_logits")
            out.append(features.float().cpu())
    return torch.cat(out)


def window_scores(model: nn.Module, stream: np.ndarray, clip_samples: int, hop_samples: int, positive: int,
                  runtime: Runtime = CPU, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(window starts, the probability of class `positive` per window) of an int16 stream."""
    starts = window_starts(max(len(stream), clip_samples), clip_samples, hop_samples)
    logits = window_outputs(model, stream, clip_samples, hop_samples, runtime, batch_size)
    return starts, torch.softmax(logits.float(), 1)[:, positive].numpy()


def smooth(scores: np.ndarray, frames: int) -> np.ndarray:
    """Causal moving average (what a live detector can know): the mean of this window and the frames-1 before."""
    if frames <= 1 or len(scores) == 0:
        return scores.astype(np.float32)
    c = np.concatenate([[0.0], np.cumsum(scores, dtype=np.float64)])
    i = np.arange(1, len(scores) + 1)
    lo = np.maximum(i - frames, 0)
    return ((c[i] - c[lo]) / (i - lo)).astype(np.float32)


def refractory_ends(times: np.ndarray, refractory_s: float) -> np.ndarray:
    """Per window: the first window after its refractory period (at least the next one)."""
    return np.maximum(np.searchsorted(times, times + refractory_s, side="right"), np.arange(1, len(times) + 1))


def fire_indices(times: np.ndarray, smoothed: np.ndarray, threshold: float, refractory_s: float,
                 limit: int | None = None, ends: np.ndarray | None = None) -> list[tuple[int, int]]:
    """(first, end) window indices of every detection: it fires on the first window at or above the threshold
    while armed, and stays disarmed for the windows [first, end) of the refractory period; it re-arms on the
    first window below the threshold after that. Jumps from one run of above-threshold windows to the next, so
    an hour of audio costs as many steps as there are detections (at most `limit` of them). `ends`:
    refractory_ends(times, refractory_s), when the caller scans many thresholds."""
    above = smoothed >= threshold
    if not above.any():
        return []
    ends = refractory_ends(times, refractory_s) if ends is None else ends
    # A run starts at an above-threshold window whose predecessor is below (or at the first window: armed).
    starts = np.flatnonzero(above & ~np.concatenate([[False], above[:-1]])).tolist()
    out: list[tuple[int, int]] = []
    k = 0
    while k < len(starts) and (limit is None or len(out) < limit):
        first = starts[k]
        end = int(ends[first])
        out.append((first, end))
        # Armed again only by a below-threshold window at or after `end`: the next run start after it.
        k = bisect_left(starts, end + 1, lo=k + 1)
    return out


def pick_detections(times: np.ndarray, smoothed: np.ndarray, threshold: float, refractory_s: float,
                    ends: np.ndarray | None = None) -> list[Detection]:
    """Detections from a smoothed score track (fire_indices); each one's time is its best window within the
    refractory period after the crossing."""
    out = []
    for first, end in fire_indices(times, smoothed, threshold, refractory_s, ends=ends):
        best = first + int(np.argmax(smoothed[first:end]))
        out.append(Detection(float(times[best]), float(smoothed[best])))
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
