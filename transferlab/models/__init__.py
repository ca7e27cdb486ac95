"""Networks as plain nn.Modules with timm's interface, and the one registry that builds them.

One module per family (convnet: images, audio: waveforms), `base` for what they share, `surgery` for
freezing, heads and layer groups."""
from __future__ import annotations

from typing import Callable

from torch import nn

from transferlab.models.audio import (
    M5,
    AudioConvNet,
    AudioCRNN,
    LogMel,
    TemporalGRUPool,
    audio_convnet,
    audio_crnn,
    m5,
)
from transferlab.models.base import BlockNet
from transferlab.models.convnet import ConvNet, convnet, convnet_small, resnet18
from transferlab.models.tvnet import TorchvisionNet, torchvision_net
from transferlab.models.speech import SileroVAD, TorchaudioNet, silero_net, torchaudio_net
from transferlab.models.timmnet import TimmNet, timm_net
from transferlab.models.surgery import (
    FrozenBatchNorm,
    body_groups,
    count_parameters,
    freeze_modules,
    head_module_name,
    owning_modules,
    reset_classifier,
    unfreeze_modules,
)

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_MODALITY: dict[str, str] = {}  # what a model eats: "image" (N,C,H,W) or "audio" (N,1,T) waveforms
# Families too large to list, named "<prefix>:<member>" (tv:resnet18): prefix → (builder(member, ...), modality).
# The member is checked when the network is built, so a family does not import its library until then.
_FAMILIES: dict[str, tuple[Callable[..., nn.Module], str]] = {}


def register(name: str, modality: str = "image"):
    """Decorator: make an architecture buildable by name (model cards name their architecture)."""
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        _MODALITY[name] = modality
        return fn
    return deco


def register_family(prefix: str, modality: str = "image"):
    """Decorator: make every "<prefix>:<member>" buildable through fn(member, num_classes=..., in_chans=...)."""
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _FAMILIES[prefix] = (fn, modality)
        return fn
    return deco


def list_models() -> list[str]:
    """The architectures named one by one (families: list_families)."""
    return sorted(_REGISTRY)


def list_families() -> list[str]:
    return [f"{prefix}:<name>" for prefix in sorted(_FAMILIES)]


def _family(name: str) -> tuple[Callable[..., nn.Module], str] | None:
    prefix, sep, member = name.partition(":")
    return _FAMILIES.get(prefix) if sep and member else None


def is_registered(name: str) -> bool:
    return name in _REGISTRY or _family(name) is not None


def modality(name: str) -> str:
    family = _family(name)
    return family[1] if family else _MODALITY[name]


def create_model(name: str, num_classes: int, in_chans: int = 1, **kwargs) -> nn.Module:
    """Build a registered architecture with a fresh, randomly initialised head."""
    family = _family(name)
    if family:
        return family[0](name.partition(":")[2], num_classes=num_classes, in_chans=in_chans, **kwargs)
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models() + list_families())}")
    return _REGISTRY[name](num_classes=num_classes, in_chans=in_chans, **kwargs)


for _name, _builder, _modality in (("convnet", convnet, "image"), ("convnet_small", convnet_small, "image"),
                                   ("resnet18", resnet18, "image"), ("audio_convnet", audio_convnet, "audio"),
                                   ("audio_crnn", audio_crnn, "audio"), ("m5", m5, "audio")):
    register(_name, _modality)(_builder)
del _name, _builder, _modality
register_family("tv")(torchvision_net)  # any torchvision classifier, e.g. tv:resnet18 (transferlab.models.pretrained)
# Speech networks for imported weights (transferlab.models.pretrained.audio): silero:vad, and ta:<bundle> for any
# torchaudio wav2vec2/HuBERT/WavLM bundle (ta:WAV2VEC2_BASE).
register_family("silero", "audio")(silero_net)
register_family("ta", "audio")(torchaudio_net)
register_family("timm")(timm_net)  # any timm model with its pretrained tag, e.g. timm:resnet18.a1_in1k

__all__ = [
    "register", "register_family", "list_models", "list_families", "is_registered", "modality", "create_model",
    "BlockNet", "TorchvisionNet", "SileroVAD", "TorchaudioNet", "TimmNet", "ConvNet", "AudioConvNet", "AudioCRNN",
    "M5", "LogMel", "TemporalGRUPool",
    "FrozenBatchNorm", "freeze_modules", "unfreeze_modules", "reset_classifier", "head_module_name", "body_groups",
    "owning_modules", "count_parameters",
]
