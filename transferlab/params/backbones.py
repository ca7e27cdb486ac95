"""Backbones pre-trained elsewhere and imported as a source (params `backbones:`), beside our own pre-training."""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from transferlab.params.base import WHOLE_SOURCE, Section

# Which track each kind feeds: images (torchvision, timm, a local torchvision state dict) or audio.
KIND_TRACK = {"torchvision": "vision", "timm": "vision", "file": "vision", "torchaudio": "audio",
              "silero_vad": "audio"}
BackboneKind = Literal["torchvision", "timm", "file", "torchaudio", "silero_vad"]


class ImportedBackboneParams(Section):
    """A backbone imported instead of pre-trained here (stage import_backbones → models/imported/<name>).

    torchvision: `arch` (resnet18, efficientnet_b0, vit_b_16, ...) with the weights enum name `weights`
    (IMAGENET1K_V1), from $TORCH_HOME/hub/checkpoints/ (downloaded there when missing and the network allows).
    timm: `arch` a timm model name with its pretrained tag (resnet18.a1_in1k), weights from the Hugging Face cache
    (HF_HUB_OFFLINE=1 works once cached) or, with `path`, from a local file.
    file: a local state dict at `path` (.safetensors, or .pth/.pt read with weights_only) for torchvision's
    `arch`; `weights`, if given, names the enum whose preprocessing the file expects (default: the arch's DEFAULT).
    torchaudio: `arch` a torchaudio.pipelines bundle (WAV2VEC2_BASE, HUBERT_BASE), from $TORCH_HOME/hub/checkpoints/.
    silero_vad: the voice-activity network inside the silero-vad wheel (real speech, installed with transferlab)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    kind: BackboneKind
    arch: str | None = None
    weights: str | None = None
    path: str | None = None

    @property
    def track(self) -> str:
        return KIND_TRACK[self.kind]

    @model_validator(mode="after")
    def _check(self) -> ImportedBackboneParams:
        needs_arch = self.kind != "silero_vad"
        if needs_arch and not self.arch:
            raise ValueError(f"arch is required when kind is {self.kind!r}")
        if not needs_arch and (self.arch or self.weights or self.path):
            raise ValueError("kind 'silero_vad' takes no arch, weights or path: the weights ship in its wheel")
        if self.kind == "torchvision" and not self.weights:
            raise ValueError("weights (a torchvision weights name such as IMAGENET1K_V1) is required when kind is "
                             "'torchvision'")
        if self.kind in ("torchvision", "torchaudio") and self.path:
            raise ValueError(f"path is only for kinds 'file' and 'timm' ({self.kind} weights live in "
                             "$TORCH_HOME/hub/checkpoints)")
        if self.kind in ("timm", "torchaudio") and self.weights:
            raise ValueError(f"weights is not used by kind {self.kind!r}: name the weights in arch "
                             "(timm: model.tag such as resnet18.a1_in1k; torchaudio: the bundle, e.g. WAV2VEC2_BASE)")
        if self.kind == "file" and not self.path:
            raise ValueError("path is required when kind is 'file'")
        return self


def unique_backbone_names(backbones: list[ImportedBackboneParams]) -> list[ImportedBackboneParams]:
    # Our own backbones' names are taken: an import may not shadow them.
    names = [b.name for b in backbones]
    twice = sorted({n for n in names if names.count(n) > 1 or n in OWN_BACKBONES
                    or re.fullmatch(rf"{CURVE_PREFIX}\d+", n) or renamed_backbone(n)})
    if twice:
        raise ValueError(f"backbone names must be unique and not one of ours ({', '.join(OWN_BACKBONES)}, {CURVE_PREFIX}<n>): "
                         f"{', '.join(twice)}")
    return backbones


# The backbones each track pre-trains itself (stages pretrain@src-full, pretrain@permuted, audio_pretrain); the
# source-size curve's are named src-<n> (CURVE_PREFIX + size, stage pretrain_curve@<n>). Named for their source, so
# that no backbone reads like a strategy ("full" is a strategy).
CONTROL_BACKBONE, CURVE_PREFIX = "permuted", "src-"
OWN_BACKBONES = {WHOLE_SOURCE: "vision", CONTROL_BACKBONE: "vision", "audio": "audio"}
# Earlier names, so that an old params file gets a "did you mean" instead of a bare "unknown backbone".
RENAMED_BACKBONES = {"full": WHOLE_SOURCE}


def renamed_backbone(name: str) -> str | None:
    """The current name of a backbone an older params file names (full, src300), else None."""
    if name in RENAMED_BACKBONES:
        return RENAMED_BACKBONES[name]
    old = re.fullmatch(r"src(\d+)", name)
    return f"{CURVE_PREFIX}{old.group(1)}" if old else None


def curve_backbones(source_sizes: list[int]) -> list[str]:
    """The vision backbones of the source-size curve, smallest source first, then the permuted-pixel control."""
    return [f"{CURVE_PREFIX}{n}" for n in source_sizes] + [CONTROL_BACKBONE]
