"""What retraining means per track: which inbox, which pool it merges into, how a batch is checked, which
DVC stages re-make the model, and which test-set metric decides promotion."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .intake import AudioIntake, ImageIntake
from .params import Params


class RetrainSetupError(ValueError):
    pass


@dataclass(frozen=True)
class RetrainTrack:
    track: str
    inbox: Path
    pool: Path  # the DVC-tracked folder new batches are merged into
    test: Path | None  # the fixed test set (never merged into)
    kind: ImageIntake | AudioIntake
    model_name: str
    margin: float
    metric: str  # higher is better, scored on the fixed test set
    prepare_stage: str  # dvc.yaml stages: the one that reads the pool, the one that makes the models
    finetune_stage: str


def retrain_track(params: Params, track: str) -> RetrainTrack:
    if track == "vision":
        t, r = params.prepare.target, params.retrain
        if t.kind != "imagefolder" or not t.root:
            raise RetrainSetupError("retraining the vision track needs prepare.target.kind: imagefolder with a root "
                                    f"to merge into (it is {t.kind!r})")
        return RetrainTrack("vision", Path(r.inbox), Path(t.root), Path(t.test_root) if t.test_root else None,
                            ImageIntake(params.prepare.image_size, params.prepare.channels), r.model_name, r.margin,
                            "accuracy", "prepare", "finetune")
    if track == "audio":
        p, r, v = params.audio.prepare, params.retrain.audio, params.audio.validation
        if p.target.kind != "folder" or not p.target.root:
            raise RetrainSetupError("retraining the audio track needs audio.prepare.target.kind: folder with a root "
                                    f"to merge into (it is {p.target.kind!r})")
        return RetrainTrack("audio", Path(r.inbox), Path(p.target.root),
                            Path(p.target.test_root) if p.target.test_root else None,
                            AudioIntake(p.sample_rate, p.clip_seconds, v.min_rms, v.max_clipped_fraction),
                            r.model_name, r.margin, "auroc", "audio_prepare", "audio_finetune")
    raise RetrainSetupError(f"unknown track {track!r}: vision or audio")
