"""What retraining means per track: which inbox, which pool it merges into, how a batch is checked, which
DVC stages re-make the model, and which test-set metric decides promotion. No torch here: the Prefect flows
and `flows.serve` call it to decide whether a retrain can run at all."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .params import Params


class RetrainSetupError(ValueError):
    pass


@dataclass(frozen=True)
class RetrainTrack:
    track: str
    inbox: Path
    pool: Path  # the DVC-tracked folder new batches are merged into
    test: Path | None  # the fixed test set (never merged into)
    model_name: str
    margin: float
    metric: str  # higher is better, scored on the fixed test set
    prepare_stage: str  # dvc.yaml stages: the one that reads the pool, the one that makes the models
    finetune_stage: str
    checker: tuple  # (kind, settings) for the intake's batch checks; built lazily (they need torch)
    pool_needs: int  # examples each class of the pool must hold for the prepare stage

    def intake_kind(self):
        from .intake import AudioIntake, ImageIntake

        kind, settings = self.checker
        return (ImageIntake if kind == "image" else AudioIntake)(*settings)


def retrain_track(params: Params, track: str) -> RetrainTrack:
    if track == "vision":
        t, r = params.prepare.target, params.retrain
        if t.kind != "imagefolder" or not t.root:
            raise RetrainSetupError("retraining the vision track needs prepare.target.kind: imagefolder with a root "
                                    f"to merge into (it is {t.kind!r})")
        needs = max(t.pool_sizes) + (0 if t.test_root else t.test_per_class)
        return RetrainTrack("vision", Path(r.inbox), Path(t.root), Path(t.test_root) if t.test_root else None,
                            r.model_name, r.margin, "accuracy", "prepare", "finetune",
                            ("image", (params.prepare.image_size, params.prepare.channels)), needs)
    if track == "audio":
        p, r, v = params.audio.prepare, params.retrain.audio, params.audio.validation
        if p.target.kind != "folder" or not p.target.root:
            raise RetrainSetupError("retraining the audio track needs audio.prepare.target.kind: folder with a root "
                                    f"to merge into (it is {p.target.kind!r})")
        return RetrainTrack("audio", Path(r.inbox), Path(p.target.root),
                            Path(p.target.test_root) if p.target.test_root else None,
                            r.model_name, r.margin, "auroc", "audio_prepare", "audio_finetune",
                            ("audio", (p.sample_rate, p.clip_seconds, v.min_rms, v.max_clipped_fraction)), 0)
    raise RetrainSetupError(f"unknown track {track!r}: vision or audio")


def check_pool(root: Path, setup: RetrainTrack) -> None:
    """The pool and test folders exist and (vision) every class can fill the largest pool: checked by counting
    files, before the inbox is touched, so a retrain never merges a batch into a pipeline that cannot run."""
    for key, folder in (("root", setup.pool), ("test_root", setup.test)):
        if folder is not None and not (root / folder).is_dir():
            section = "prepare.target" if setup.track == "vision" else "audio.prepare.target"
            raise RetrainSetupError(f"{section}.{key}: folder {folder} does not exist")
    if not setup.pool_needs:
        return
    classes = sorted(p for p in (root / setup.pool).iterdir() if p.is_dir())
    if not classes:
        raise RetrainSetupError(f"prepare.target.root: {setup.pool} has no class folders")
    short = {c.name: n for c in classes if (n := sum(1 for f in c.rglob("*") if f.is_file())) < setup.pool_needs}
    if short:
        listed = ", ".join(f"{name} ({n})" for name, n in sorted(short.items()))
        raise RetrainSetupError(f"prepare.target.pool_sizes: the largest pool needs {setup.pool_needs} images per "
                                f"class in {setup.pool}, but these classes have fewer: {listed}")


def preflight(root: Path | str, track: str) -> RetrainTrack:
    """Everything a retrain needs, checked before the inbox is touched: params.yaml fits the schema, holds every
    param dvc.yaml declares, sets the track up for retraining, and the pool can fill the largest pool size.
    Raises RetrainSetupError (one message, every problem named) or ParamsError."""
    from .dvc_params import missing_declared_params
    from .params import ParamsError, load_params, read_params_file

    root = Path(root)
    path = root / "params.yaml"
    missing = missing_declared_params(root, read_params_file(path))
    problems = [f"{path}: params that dvc.yaml declares are missing, so DVC would stop at that stage: "
                f"{'; '.join(missing)}"] if missing else []
    try:
        params = load_params(path)
    except ParamsError as err:
        problems.insert(0, str(err))
    if problems:  # every problem at once, so a user fixes params.yaml once
        raise RetrainSetupError(" ".join(" ".join(problems).split()))
    setup = retrain_track(params, track)
    check_pool(root, setup)
    return setup
