"""Networks as plain nn.Modules with timm's interface, and the one registry that builds them."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str):
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        return fn
    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, in_chans: int = 1, **kwargs) -> nn.Module:
    """Build a registered architecture with a fresh, randomly initialised head."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _REGISTRY[name](num_classes=num_classes, in_chans=in_chans, **kwargs)


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvNet(nn.Module):
    """A small VGG-style CNN: per stage two 3x3 conv+BN+ReLU then 2x2 pooling; global pooling at the end.

    Blocks are ordered from input to output so transfer recipes can address "the last k blocks".
    """

    def __init__(self, num_classes: int, in_chans: int = 1, widths: tuple[int, ...] | list[int] = (32, 64, 128),
                 dropout: float = 0.1):
        super().__init__()
        widths = list(widths)
        blocks: list[nn.Module] = []
        cin = in_chans
        for i, w in enumerate(widths):
            last = i == len(widths) - 1
            layers = [_conv_bn(cin, w)] if last else [_conv_bn(cin, w), _conv_bn(w, w), nn.MaxPool2d(2)]
            blocks.append(nn.Sequential(*layers))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = cin
        self.drop_rate = dropout
        self.head_drop = nn.Dropout(dropout)
        self.num_classes = num_classes
        self.head = nn.Linear(cin, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.pool(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Delete the output layer and its weights; put a new randomly initialised one in place."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict:
        # Same contract as timm's models, so timm's layer grouping (for last_k / layer decay) applies.
        return {"stem": r"^blocks\.0\.", "blocks": r"^blocks\.(\d+)"}


@register("convnet")
def convnet(num_classes: int, in_chans: int = 1, widths=(32, 64, 128), dropout: float = 0.1) -> nn.Module:
    return ConvNet(num_classes, in_chans, widths, dropout)


@register("convnet_small")
def convnet_small(num_classes: int, in_chans: int = 1, widths=(16, 32, 64), dropout: float = 0.1) -> nn.Module:
    return ConvNet(num_classes, in_chans, widths, dropout)


@register("resnet18")
def resnet18(num_classes: int, in_chans: int = 3, widths=None, dropout: float = 0.0) -> nn.Module:
    """timm's ResNet-18 (random init, nothing downloaded) for users' larger RGB images."""
    import timm

    return timm.create_model("resnet18", pretrained=False, num_classes=num_classes, in_chans=in_chans,
                             drop_rate=dropout)


def head_module_name(model: nn.Module) -> str:
    """Dotted name of the classifier module (timm models name it differently: head, fc, classifier)."""
    classifier = model.get_classifier()
    for name, module in model.named_modules():
        if module is classifier:
            return name
    raise ValueError(f"{type(model).__name__}.get_classifier() is not a submodule")


def body_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names of the body grouped input→output (timm's coarse groups), without the head."""
    from timm.models import group_parameters

    head = head_module_name(model) + "."
    grouped = group_parameters(model, model.group_matcher(coarse=True))
    groups = [[n for n in names if not n.startswith(head)] for _, names in sorted(grouped.items())]
    return [g for g in groups if g]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
