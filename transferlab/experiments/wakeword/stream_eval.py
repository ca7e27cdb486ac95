"""Every fine-tuned wake-word model judged on continuous audio (stage audio_streams) as it would run: its window
scores on each stream (streaming.window_outputs, the code path of `transferlab detect`), the threshold for the
target false-accept rate chosen on the validation negatives (never the test streams), and, from the saved
scores, its false-reject rate at each false-accept rate per hour on the test streams."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from transferlab.core.frozen import feature_head, random_or_learning
from transferlab.experiments.wakeword.metrics import rate_key
from transferlab.experiments.wakeword.stream_metrics import (Track, candidate_thresholds, det_table, fa_table,
                                                             frr_at_rate, threshold_for_rate)
from transferlab.experiments.wakeword.streaming import StreamSettings, smooth, window_outputs, window_starts
from transferlab.models.base import BlockNet
from transferlab.params import AudioParams
from transferlab.system.context import CPU, Runtime

VALIDATION = "validation-negative"  # chooses the threshold
TEST_NEGATIVE, TEST_POSITIVE = "test-negative", "test-positive"  # measure it
SCORED = (VALIDATION, TEST_NEGATIVE, TEST_POSITIVE)
SCORES_FILE = "stream_scores.safetensors"  # "<run_id>/<stream>": P(wake word) per window
# Per process: what a frozen body makes of each stream (pooled features, or the feature maps forward_head takes
# when only the pooling and head learn, as last_k: 1 of the audio CRNN). Every head-only and last_k run of a
# backbone has the same frozen body, so the hour of audio goes through it once per worker, not once per run.
_FEATURES: dict[tuple, torch.Tensor] = {}
_KEEP_BYTES = 2 << 30


def _fingerprint(model: nn.Module, learned: nn.Module) -> str:
    """The identity of everything in `model` outside `learned`: runs sharing it share their frozen features."""
    own = {id(p) for p in learned.parameters()}
    digest = hashlib.md5(type(model).__name__.encode())
    for name, value in model.state_dict(keep_vars=True).items():
        if id(value) not in own:
            digest.update(name.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _frozen_features(model: nn.Module) -> tuple[str, nn.Module] | None:
    """How much of `model` is a fixed function of its input: ("features", pooling + head) when a network of blocks
    learns only those (nothing random or learning in front of them), ("pre_logits", its head) when another
    network learns only its classifier (core.frozen.feature_head), else None."""
    if isinstance(model, BlockNet):
        # Feature maps first: head-only and last_k runs of one backbone then share a single pass.
        learned = nn.ModuleList([model.pool, model.head_drop, model.get_classifier()])
        own = {id(m) for m in learned.modules()}
        if not any(any(p.requires_grad for p in m.parameters(recurse=False)) or random_or_learning(m)
                   for m in model.modules() if id(m) not in own and m is not model):
            return "features", learned
    head = feature_head(model)
    return ("pre_logits", head) if head is not None else None


def _remember(key: tuple, features: torch.Tensor) -> None:
    size = features.numel() * features.element_size()
    while _FEATURES and sum(f.numel() * f.element_size() for f in _FEATURES.values()) + size > _KEEP_BYTES:
        _FEATURES.pop(next(iter(_FEATURES)))
    if size <= _KEEP_BYTES:
        _FEATURES[key] = features


@dataclass(frozen=True)
class StreamScorer:
    """Scores a model on the streams in `streams` (the audio_streams stage's folder) and picks its threshold."""

    streams: str
    settings: StreamSettings
    target_fa_per_hour: float
    sample_rate: int
    clip_samples: int

    @classmethod
    def from_params(cls, audio: AudioParams, streams: Path | str) -> StreamScorer:
        """The params' detector settings and target rate, at the prepared clips' rate and length."""
        if not Path(streams).is_dir():
            raise FileNotFoundError(f"{streams}: no such folder of streams (stage audio_streams makes it)")
        p, d = audio.prepare, audio.detect
        return cls(str(streams), StreamSettings.from_params(d), d.target_fa_per_hour, p.sample_rate,
                   int(round(p.sample_rate * p.clip_seconds)))

    @property
    def hop_samples(self) -> int:
        return max(int(round(self.settings.hop_s * self.sample_rate)), 1)

    def audio(self, name: str) -> np.ndarray:
        path = Path(self.streams) / f"{name}.npy"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such stream (stage audio_streams writes {', '.join(SCORED)})")
        return np.load(path, mmap_mode="r", allow_pickle=False)

    def words(self, name: str) -> np.ndarray:
        from transferlab.data.audio.streams import word_centres

        return word_centres(pd.read_csv(Path(self.streams) / f"{name}.csv"))

    def track(self, name: str, raw: np.ndarray) -> Track:
        """A stream's smoothed score track from its raw window scores."""
        starts = window_starts(max(len(self.audio(name)), self.clip_samples), self.clip_samples, self.hop_samples)
        if len(starts) != len(raw):
            raise ValueError(f"{name}: {len(raw)} window scores for {len(starts)} windows: scored with another hop "
                             "or clip length than the params'")
        times = (starts + self.clip_samples / 2) / self.sample_rate
        words = self.words(name) if name.endswith("positive") else np.empty(0)
        return Track(times, smooth(raw, self.settings.smooth_frames), words)

    def _outputs(self, model: nn.Module, name: str, runtime: Runtime) -> torch.Tensor:
        frozen = _frozen_features(model)
        audio = self.audio(name)
        if frozen is None:
            return window_outputs(model, audio, self.clip_samples, self.hop_samples, runtime)
        part, learned = frozen
        key = (part, _fingerprint(model, learned), self.streams, name, self.hop_samples, self.clip_samples,
               runtime.precision)
        features = _FEATURES.get(key)
        if features is None:
            features = window_outputs(model, audio, self.clip_samples, self.hop_samples, runtime, part=part)
            _remember(key, features)
        model.eval()
        device = runtime.torch_device
        with torch.inference_mode(), runtime.autocast():
            if part == "pre_logits":
                return torch.cat([learned.classifier(f.to(device)).float().cpu() for f in features.split(4096)])
            return torch.cat([model.forward_head(f.to(device)).float().cpu() for f in features.split(1024)])

    def score(self, model: nn.Module, positive: int, runtime: Runtime = CPU) -> tuple[dict[str, np.ndarray], float]:
        """({stream: P(wake word) per window}, seconds it took)."""
        start = time.perf_counter()
        scores = {name: torch.softmax(self._outputs(model, name, runtime), 1)[:, positive].numpy()
                  for name in SCORED}
        return scores, time.perf_counter() - start

    def __call__(self, model: nn.Module, run_id: str, classes: list[str], save: bool,
                 runtime: Runtime = CPU) -> tuple[dict, dict[str, torch.Tensor], dict]:
        """The fine-tuning sweep's per-run hook (run_sweep's `evaluate_run`): (runs-table columns, tensors to save
        under the run, and for a model that is saved, its card's `detector` section)."""
        if "other" not in classes or len(classes) != 2:
            raise ValueError(f"stream scoring needs a wake-word detector's classes [other, WORD], not {classes}")
        scores, seconds = self.score(model, 1 - classes.index("other"), runtime)
        windows = sum(len(v) for v in scores.values())
        info = {"stream_seconds": round(seconds, 3), "stream_windows": windows}
        tensors = {f"{run_id}/{name}": torch.from_numpy(np.ascontiguousarray(v, np.float32))
                   for name, v in scores.items()}
        return info, tensors, ({"detector": self.card_section(scores[VALIDATION])} if save else {})

    def threshold(self, validation_scores: np.ndarray) -> tuple[float, float]:
        """(threshold, its false accepts per hour on the validation negatives) for the target rate."""
        track = self.track(VALIDATION, validation_scores)
        table = fa_table([track], candidate_thresholds([track], []), self.settings.refractory_s)
        chosen = threshold_for_rate(table, self.target_fa_per_hour)
        rate = float(table.loc[table["threshold"] == chosen, "fa_per_hour"].iloc[0])
        return chosen, rate

    def card_section(self, validation_scores: np.ndarray) -> dict:
        """The card's `detector`: the stream settings, the threshold and what it was chosen for."""
        threshold, rate = self.threshold(validation_scores)
        minutes = len(self.audio(VALIDATION)) / self.sample_rate / 60
        return {**self.settings.as_dict(), "threshold": threshold, "target_fa_per_hour": self.target_fa_per_hour,
                "validation_fa_per_hour": round(rate, 4),
                "chosen_on": f"{minutes:.0f} min of negative stream by held-out voices (A-val), never the test streams"}

    def stream_hours(self) -> dict[str, float]:
        return {name: len(self.audio(name)) / self.sample_rate / 3600 for name in SCORED}

    def judge(self, scores: dict[str, np.ndarray], rates: list[float]) -> tuple[dict, pd.DataFrame]:
        """One run's figures on the test streams: FRR read off its DET curve at each rate, and where the
        threshold chosen on validation lands (its FRR and false accepts per hour on test); and the DET table."""
        negative = self.track(TEST_NEGATIVE, scores[TEST_NEGATIVE])
        positive = self.track(TEST_POSITIVE, scores[TEST_POSITIVE])
        table = det_table([negative], [positive], candidate_thresholds([negative], [positive]),
                          self.settings.refractory_s)
        out = {rate_key(r): frr_at_rate(table, r) for r in rates}
        chosen, _ = self.threshold(scores[VALIDATION])
        at = det_table([negative], [positive], np.array([chosen]), self.settings.refractory_s).iloc[0]
        out.update(deployed_threshold=chosen, deployed_frr=float(at["frr"]),
                   deployed_fa_per_hour=float(at["fa_per_hour"]))
        return out, table


def det_over_seeds(tables: dict[str, pd.DataFrame], runs: pd.DataFrame, rates: np.ndarray) -> pd.DataFrame:
    """The DET curve per (backbone, strategy, positives): FRR at each false-accept rate of `rates`, mean over the
    seeds (each seed's curve read at the rate as frr_at_rate reads it)."""
    rows = []
    for r in runs.itertuples(index=False):
        table = tables[r.run_id]
        rows += [{"backbone": r.backbone, "strategy": r.strategy, "per_class": r.per_class, "seed": r.seed,
                  "fa_per_hour": float(rate), "frr": frr_at_rate(table, float(rate))} for rate in rates]
    frame = pd.DataFrame(rows)
    return (frame.groupby(["backbone", "strategy", "per_class", "fa_per_hour"], sort=True)
            .agg(frr=("frr", "mean"), seeds=("seed", "nunique")).reset_index().round(5))


def judge_runs(scores_file: Path, scorer: StreamScorer, run_ids: list[str], rates: list[float]
               ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Every run's stream figures (StreamScorer.judge) from the sweep's saved scores, in `run_ids`' order, and
    each run's DET table."""
    from safetensors.numpy import load_file

    if not Path(scores_file).exists():
        raise FileNotFoundError(f"{scores_file}: no stream scores (run the audio sweep with --streams)")
    saved = load_file(str(scores_file))
    rows, tables = [], {}
    for run_id in run_ids:
        missing = [n for n in SCORED if f"{run_id}/{n}" not in saved]
        if missing:
            raise KeyError(f"{scores_file}: run {run_id} has no scores for {', '.join(missing)}")
        figures, tables[run_id] = scorer.judge({n: saved[f"{run_id}/{n}"] for n in SCORED}, rates)
        rows.append(figures)
    return pd.DataFrame(rows), tables
