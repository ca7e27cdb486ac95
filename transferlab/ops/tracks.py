"""What retraining means per track: which inbox, which pool it merges into, how a batch is checked and
which test-set metric decides promotion. Which DVC stage re-makes the model is read from dvc.yaml
(model_stage): the library names no stage. No torch here: the Prefect flows and `flows.serve` call it to
decide whether a retrain can run at all."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from transferlab.params import Params
from transferlab.ops.lineage import command_arguments


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
    checker: tuple  # (kind, settings) for the intake's batch checks; built lazily (they need torch)

    def intake_kind(self):
        from transferlab.ops.intake import AudioIntake, ImageIntake

        kind, settings = self.checker
        return (ImageIntake if kind == "image" else AudioIntake)(*settings)


def retrain_track(params: Params, track: str) -> RetrainTrack:
    if track == "vision":
        t, r = params.prepare.target, params.retrain
        if t.kind != "imagefolder" or not t.root:
            raise RetrainSetupError("retraining the vision track needs prepare.target.kind: imagefolder with a root "
                                    f"to merge into (it is {t.kind!r})")
        return RetrainTrack("vision", Path(r.inbox), Path(t.root), Path(t.test_root) if t.test_root else None,
                            r.model_name, r.margin, "accuracy",
                            ("image", (params.prepare.image_size, params.prepare.channels)))
    if track == "audio":
        p, r, v = params.audio.prepare, params.retrain.audio, params.audio.validation
        if p.target.kind != "folder" or not p.target.root:
            raise RetrainSetupError("retraining the audio track needs audio.prepare.target.kind: folder with a root "
                                    f"to merge into (it is {p.target.kind!r})")
        return RetrainTrack("audio", Path(r.inbox), Path(p.target.root),
                            Path(p.target.test_root) if p.target.test_root else None,
                            r.model_name, r.margin, "auroc",
                            ("audio", (p.sample_rate, p.clip_seconds, v.min_rms, v.max_clipped_fraction)))
    raise RetrainSetupError(f"unknown track {track!r}: vision or audio")


def preflight(root: Path | str, track: str) -> RetrainTrack:
    """Everything a retrain needs, checked before the inbox is touched: params.yaml fits the schema, holds every
    param dvc.yaml declares, sets the track up for retraining, and the folders can fill the largest pool size.
    Raises RetrainSetupError (one message, every problem named) or ParamsError."""
    from transferlab.data.sizes import size_problems
    from transferlab.system.dvc_params import missing_declared_params
    from transferlab.params import ParamsError, load_params, read_params_file

    root = Path(root)
    path = root / "params.yaml"
    problems, setup = [], None
    try:
        params = load_params(path)
        setup = retrain_track(params, track)  # a project not set up for retraining: said first, alone
        problems += size_problems(params, root)
    except ParamsError as err:
        problems.append(str(err))
    missing = missing_declared_params(root, read_params_file(path))
    if missing:
        problems.append(f"{path}: params that dvc.yaml declares are missing, so DVC would stop at that stage: "
                        f"{'; '.join(missing)}")
    if problems:  # every problem at once, so a user fixes params.yaml once
        raise RetrainSetupError(" ".join(" ".join(problems).split()))
    return setup


def model_stage(root: Path | str, track: str) -> str:
    """The dvc.yaml stage that makes the track's models: the one whose command takes `--track TRACK` and writes
    `--models`. The retrain re-runs it (DVC re-runs what it depends on) and promotion reads its outputs."""
    path = Path(root) / "dvc.yaml"
    if not path.is_file():
        raise RetrainSetupError(f"{path} not found: there is no pipeline to re-make the {track} models")
    stages = (yaml.safe_load(path.read_text()) or {}).get("stages") or {}
    found = []
    for name, stage in stages.items():
        args = command_arguments(stage.get("cmd") or "") if isinstance(stage, dict) else {}
        if args.get("track") == track and "models" in args:
            found.append(name)
    if len(found) != 1:
        raise RetrainSetupError(f"{path}: {'no stage' if not found else 'stages ' + ', '.join(found)} "
                                f"{'runs' if len(found) < 2 else 'run'} a command with `--track {track}` and "
                                "`--models`: the retrain needs exactly one stage that makes the track's models")
    return found[0]
