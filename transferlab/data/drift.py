"""Is an input (predict) or a batch (intake) drawn from the data a model was trained on? Judged on a few
named per-sample statistics, summarised over the training data into a small block of the model card.

Why these statistics, and not a feature-space (Mahalanobis) distance:
- they name what is off, so a warning can say "pixel mean 76 outside the training range [5, 73]";
- they separate the failure that prompted this check: MNIST digits versus scikit-learn's 8x8 digits scaled
  to 28x28 (thicker, blurrier strokes). Measured on the 5,000 embedded MNIST digits and the 1,797 scaled
  digits: coverage (share of pixels above 10 % of full scale) is 0.05-0.37 for MNIST, 0.36-0.71 for the
  scaled digits; the pixel mean's 99.5th percentile is 66 for MNIST, the scaled digits' median 78;
- they cost one pass over uint8 arrays and a handful of numbers in the card, whereas a Mahalanobis
  distance needs a forward pass over the training data per saved model and a d x d covariance (65,536
  numbers for a 256-wide head) that a JSON card should not carry.
They cannot see a semantic shift (a letter with a digit's amount of ink): that would need the feature-space
distance, at the costs above.

Range of a statistic: [q0.5 - IQR/2, q99.5 + IQR/2] over the training samples. With few samples the 0.5 and
99.5 percentiles are the sample's minimum and maximum, and a new sample from the same distribution falls
outside them with probability about 2/(n+1); half an interquartile range of margin brings that down
(measured on held-out MNIST, any of the three image statistics out: 0.6 % when fitted on 60 images, 0 % on
4,000 random digits) while shifts like the scaled digits' stay caught (99.98-100 %). Against the ranges of
the default profile's 4,000-digit training split: 3 of its 1,000 MNIST test digits out, all 1,797 scaled
digits out. The margin has a floor so that a statistic constant in training does not flag every rounding
difference."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATS_FORMAT = "transferlab-input-stats/1"
QUANTILES = (0.5, 25.0, 50.0, 75.0, 99.5)
COVERAGE_LEVEL = 0.1 * 255  # a pixel "covered" by a stroke: above 10 % of full scale
CHUNK = 1024  # samples per pass: an audio source of 16,000 one-second clips is 1 GB as float32


@dataclass(frozen=True)
class Statistic:
    label: str  # as printed in a warning
    fmt: str
    floor: float  # the least margin beyond the quantiles
    domain: tuple[float, float]  # ranges are clipped to what the statistic can take
    hint: str = ""  # what an input outside the range most likely means


STATISTICS = {
    "pixel_mean": Statistic("pixel mean", ".1f", 1.0, (0.0, 255.0)),
    "pixel_std": Statistic("pixel std", ".1f", 1.0, (0.0, 255.0)),
    "coverage": Statistic("coverage (pixels above 10% of full scale)", ".3f", 0.01, (0.0, 1.0)),
    "rms_dbfs": Statistic("RMS level (dBFS)", ".1f", 1.0, (-100.0, 0.0)),
    "zero_crossing_rate": Statistic("zero-crossing rate", ".3f", 0.005, (0.0, 1.0)),
    # Every frequency of a file whose header states the wrong sample rate is scaled by the ratio of the two
    # rates: the centroid moves with it, by 2x for a 16 kHz recording labelled 32 kHz.
    "spectral_centroid": Statistic("spectral centroid (share of the Nyquist frequency)", ".3f", 0.01, (0.0, 1.0),
                                   "if the file's header states the wrong sample rate, every pitch is shifted"),
}


def _image_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    f = x.reshape(len(x), int(np.prod(x.shape[1:]))).astype(np.float32)
    return {"pixel_mean": f.mean(1), "pixel_std": f.std(1), "coverage": (f > COVERAGE_LEVEL).mean(1)}


def _audio_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    # Level and a crude spectral balance (noise and fricatives cross zero often, voiced speech rarely); the
    # networks standardise each log-mel, but a far quieter, louder or noisier recording is still unlike training.
    w = x.reshape(len(x), int(np.prod(x.shape[1:]))).astype(np.float32) / 32768.0
    rms = np.sqrt((w ** 2).mean(1))
    signs = np.signbit(w)
    zcr = (signs[:, 1:] != signs[:, :-1]).mean(1) if w.shape[1] > 1 else np.zeros(len(w), np.float32)
    power = np.abs(np.fft.rfft(w, axis=1)) ** 2
    share = np.linspace(0.0, 1.0, power.shape[1], dtype=np.float32)  # 0 .. the Nyquist frequency
    centroid = (power * share).sum(1) / np.maximum(power.sum(1), 1e-12)
    return {"rms_dbfs": 20 * np.log10(np.maximum(rms, 1e-5)), "zero_crossing_rate": zcr,
            "spectral_centroid": centroid.astype(np.float32)}


def sample_statistics(samples, modality: str) -> dict[str, np.ndarray]:
    """Per-sample statistics of stored samples: uint8 images (N,[C,]H,W) on the 0-255 scale the model is fed
    from, or int16 clips (N,T)."""
    x = samples.numpy() if hasattr(samples, "numpy") else np.asarray(samples)
    fn = _audio_stats if modality == "audio" else _image_stats
    parts = [fn(x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)] or [fn(x)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _round(v: float) -> float:
    return float(f"{v:.5g}")


def training_statistics(samples, modality: str, data: str) -> dict | None:
    """The card block: per statistic its range and a few quantiles, over the given training samples.
    `data` says in words which samples they were. None without samples."""
    if not len(samples):
        return None
    stats = sample_statistics(samples, modality)
    summary = {}
    for name, values in stats.items():
        spec = STATISTICS[name]
        q = np.percentile(values, QUANTILES)
        margin = max(0.5 * (q[3] - q[1]), spec.floor)
        lo, hi = max(q[0] - margin, spec.domain[0]), min(q[4] + margin, spec.domain[1])
        summary[name] = {"range": [_round(lo), _round(hi)],
                         "quantiles": {f"{p:g}": _round(v) for p, v in zip(QUANTILES, q)}}
    return {"format": STATS_FORMAT, "modality": modality, "data": data, "samples": int(len(samples)),
            "range_rule": "[q0.5 - IQR/2, q99.5 + IQR/2] of the per-sample statistic", "stats": summary}


def out_of_range(values: dict[str, float], training: dict | None) -> list[str]:
    """Warnings for one sample's statistics against a card's training statistics: which statistic is outside
    its training range and by how much. No training statistics (an older card): no warnings."""
    if not training or training.get("format") != STATS_FORMAT:
        return []
    warnings = []
    for name, spec in training.get("stats", {}).items():
        if name not in values or name not in STATISTICS:
            continue
        stat, v = STATISTICS[name], float(values[name])
        lo, hi = spec["range"]
        if lo <= v <= hi:
            continue
        side, by = ("below", lo - v) if v < lo else ("above", v - hi)
        warnings.append(f"out of distribution: {stat.label} {v:{stat.fmt}} outside the training range "
                        f"[{lo:{stat.fmt}}, {hi:{stat.fmt}}] ({by:{stat.fmt}} {side})"
                        + (f": {stat.hint}" if stat.hint else ""))
    return warnings
