"""Scheduled retraining (params.yaml section `retrain`, read by flows/retrain.py)."""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from pydantic import AfterValidator, Field

from transferlab.params.base import Section


def _inside_project(value: str) -> str:
    # Intake moves batches out of the inbox into the pool and quarantine: it must be the project's own folder.
    path = PurePosixPath(value.replace("\\", "/"))
    if not value.strip() or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"must be a folder inside the project (a relative path without '..'), got {value!r}")
    return value


ProjectFolder = Annotated[str, AfterValidator(_inside_project)]


class AudioRetrainParams(Section):
    """The audio track's retraining: WAV/FLAC batches merged into audio.prepare.target.root."""

    inbox: ProjectFolder = "inbox-audio"  # each sub-folder is one batch: <class>/*.wav|flac (the wake word's folder = positives)
    model_name: str = "wake-word-detector"
    margin: Annotated[float, Field(ge=0, le=1)] = 0.005  # on FRR at the target false accepts/h (streams), else test AUROC


class RetrainParams(Section):
    """The scheduled retraining flow: where new labelled target data arrives and when a model wins."""

    inbox: ProjectFolder = "inbox"  # each sub-folder is one batch, ImageFolder layout; merged into prepare.target.root
    model_name: str = "target-classifier"  # the registry name of the deployed model
    margin: Annotated[float, Field(ge=0, le=1)] = 0.005  # a challenger must beat the champion's accuracy by this
    audio: AudioRetrainParams = AudioRetrainParams()
