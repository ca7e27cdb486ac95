"""torchvision classifiers behind our timm-style interface: `tv:<arch>` builds any torchvision classification
architecture (resnet18, mobilenet_v3_small, efficientnet_b0, convnext_tiny, vit_b_16, ...).

The weights' own preprocessing (resize, centre crop, their mean/std, 3 channels) runs inside the network, as
its first module (`adapter`): the stored samples (uint8, prepare.image_size, 1 or 3 channels) and the engine's
input scaling stay exactly as for every other model, so fine-tuning, evaluation and predict need no change.
torchvision is imported only when such a network is built."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.models.base import WrappedNet

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# The stages known to torchvision's families, input → output, as (path under the network, how to take them):
# "children" takes the container's children; "siblings" the network's own children named like layer1, stage2.
_STAGE_CONTAINERS = ("trunk_output", "features", "encoder.layers", "blocks", "layers")
_SIBLING_PREFIXES = ("layer", "stage")


class InputAdapter(nn.Module):
    """Engine input ((x/255 - source_mean)/source_std, any size, 1 or 3 channels) → what the torchvision weights
    were trained on: [0, 1] RGB (grey repeated), shorter side resized to `resize_size` (antialiased, as
    torchvision's Resize on tensors), centre crop `crop_size`, then (x - mean) / std. No parameters, no state."""

    def __init__(self, in_chans: int, resize_size: int, crop_size: int, mean, std, interpolation: str,
                 source_mean: float, source_std: float):
        super().__init__()
        if in_chans not in (1, 3):
            raise ValueError(f"torchvision networks take 1 (grey, repeated) or 3 channels, not {in_chans}")
        if interpolation not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(f"interpolation must be bilinear, bicubic or nearest, not {interpolation!r}")
        self.in_chans, self.resize_size, self.crop_size = in_chans, int(resize_size), int(crop_size)
        self.interpolation, self.source_mean, self.source_std = interpolation, source_mean, source_std
        # Not persistent: they come from the card's kwargs, so the state dict holds only the weights' tensors.
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"expected (N, {self.in_chans}, H, W) input, got {tuple(x.shape)}")
        x = x * self.source_std + self.source_mean
        if self.in_chans == 1:
            x = x.expand(-1, 3, -1, -1)
        h, w = x.shape[-2:]
        # torchvision's Resize(int): the shorter side becomes resize_size, the longer keeps the aspect ratio.
        size = (self.resize_size, int(self.resize_size * w / h)) if h <= w else (int(self.resize_size * h / w),
                                                                                  self.resize_size)
        if size != (h, w):
            smooth = self.interpolation != "nearest"
            x = F.interpolate(x, size=size, mode=self.interpolation, antialias=smooth,
                              **({"align_corners": False} if smooth else {}))
        top, left = (int(round((s - self.crop_size) / 2.0)) for s in size)
        if top < 0 or left < 0:
            raise ValueError(f"crop {self.crop_size} is larger than the resized input {size}")
        x = x[..., top:top + self.crop_size, left:left + self.crop_size]
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)


def build_torchvision(arch: str, num_classes: int = 1000) -> nn.Module:
    """A torchvision classification network, randomly initialised (nothing is downloaded here)."""
    import torchvision.models as tvm

    known = tvm.list_models(module=tvm)
    if arch not in known:
        raise ValueError(f"{arch!r} is no torchvision classification model (known: {', '.join(known)})")
    return tvm.get_model(arch, weights=None, num_classes=num_classes)


def classifier_name(net: nn.Module) -> str:
    """The output layer: the last Linear a torchvision classifier registers is the one its forward ends with."""
    linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(net).__name__} has no Linear output layer (e.g. squeezenet's conv head): "
                         "not supported")
    return linears[-1]


def stage_names(net: nn.Module) -> list[str]:
    """The network's own stages, input → output, as module paths: resnet layer1..layer4, shufflenet
    stage2..4, regnet trunk_output.*, and the children of `features` (mobilenet, efficientnet, convnext, vgg,
    densenet, swin), `encoder.layers` (vit) or `blocks` (maxvit)."""
    children = dict(net.named_children())
    for prefix in _SIBLING_PREFIXES:
        named = [n for n in children if n.startswith(prefix) and n[len(prefix):].isdigit()]
        if len(named) >= 2:
            return sorted(named, key=lambda n: int(n[len(prefix):]))
    for path in _STAGE_CONTAINERS:
        try:
            container = net.get_submodule(path)
        except AttributeError:
            continue
        names = [f"{path}.{n}" for n, _ in container.named_children()]
        if len(names) >= 2:
            return names
    raise ValueError(f"no stages found in {type(net).__name__} (looked for layer1.., stage2.., "
                     f"{', '.join(_STAGE_CONTAINERS)}): its layers cannot be grouped for last_k")


class TorchvisionNet(WrappedNet):
    """`adapter` → torchvision network `net` (its output layer replaced by Identity, so it ends in pooled
    pre-logits features) → `head`. Loading torchvision's own state dict: see `tv_key`."""

    def __init__(self, arch: str, num_classes: int, in_chans: int = 3, resize_size: int = 256,
                 crop_size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation: str = "bilinear"):
        super().__init__()
        from transferlab.models.preprocessing import PIXEL_MEAN, PIXEL_STD

        self.arch = arch
        self.adapter = InputAdapter(in_chans, resize_size, crop_size, mean, std, interpolation, PIXEL_MEAN,
                                    PIXEL_STD)
        net = build_torchvision(arch, max(num_classes, 1))
        self.tv_head = classifier_name(net)
        old = net.get_submodule(self.tv_head)
        self.num_features, self.num_classes = old.in_features, num_classes
        parent, _, child = self.tv_head.rpartition(".")
        net.get_submodule(parent).add_module(child, nn.Identity())
        self.net = net
        self.head = old if old.out_features == num_classes else self._new_head(num_classes)
        stages = stage_names(net)
        # Ordinal per parameter, fixed now (freezing turns BatchNorm parameters into buffers, names stay):
        # 0 for what comes before the first stage (stem, class token), i+1 for stage i, after the last one
        # (a final norm, mobilenet's pre-logits Linear) one more; the head is left out by body_groups.
        self._ordinals: dict[str, int] = {}
        seen = 0
        for name, _ in self.net.named_parameters():
            inside = [i for i, s in enumerate(stages) if name.startswith(s + ".")]
            seen = inside[0] + 1 if inside else (len(stages) + 1 if seen else 0)
            self._ordinals["net." + name] = seen

    def tv_key(self, key: str) -> str:
        """Our state-dict key → the key in torchvision's own state dict of this architecture."""
        if key.startswith("head."):
            return f"{self.tv_head}.{key[len('head.'):]}"
        return key[len("net."):]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        # Pooled features (torchvision networks pool inside their forward); forward_head only applies the head.
        return self.net(self.adapter(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(x)


def torchvision_net(arch: str, num_classes: int, in_chans: int = 3, **kwargs) -> TorchvisionNet:
    return TorchvisionNet(arch, num_classes, in_chans, **kwargs)
