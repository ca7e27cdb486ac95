"""timm models behind our interface: `timm:<model name>` builds any timm architecture, named with its pretrained
tag (resnet18.a1_in1k, mobilenetv3_small_100.lamb_in1k, convnext_nano.in12k_ft_in1k, ...).

As for torchvision networks (tvnet), the weights' own preprocessing (resize, centre crop, mean/std, 3 channels)
runs inside the network as its first module (`adapter`, tvnet's InputAdapter), taken from timm's pretrained_cfg,
so stored samples and the engine's input scaling stay as for every other model. The network is always built
with pretrained=False (nothing is downloaded here; transferlab.models.pretrained.timm loads the weights)."""
from __future__ import annotations

import math

import torch
from torch import nn

from transferlab.models.tvnet import InputAdapter


def build_timm(model_name: str, num_classes: int = 1000) -> nn.Module:
    """A timm network, randomly initialised; `model_name` may carry a pretrained tag (its cfg is then that tag's)."""
    import timm

    if ":" in model_name:  # hf-hub:/local-dir: names make timm read a config from the hub or disk first
        raise ValueError(f"timm model {model_name!r}: give a timm model name with its pretrained tag, no source prefix")
    try:
        return timm.create_model(model_name, pretrained=False, num_classes=num_classes)
    except RuntimeError as err:  # timm: "Unknown model (x)", "Invalid pretrained tag (y) for x."
        arch = model_name.partition(".")[0]
        known = timm.list_pretrained(f"{arch}.*") if timm.is_model(arch) else []
        hint = f" (its tags: {', '.join(known[:8])}{', ...' if len(known) > 8 else ''})" if known else ""
        raise ValueError(f"timm: {err}{hint}") from None


def timm_preprocessing(net: nn.Module) -> dict:
    """What the weights expect, as timm's eval transforms do it (resolve_data_config + transforms_imagenet_eval):
    shorter side resized to floor(crop / crop_pct), centre crop, interpolation, mean, std (RGB)."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=net)
    chans, height, width = cfg["input_size"]
    if chans != 3 or height != width:
        raise ValueError(f"{net.pretrained_cfg.get('architecture')}: input_size {cfg['input_size']} is not a "
                         "square RGB image, which the input adapter makes")
    crop_pct = cfg.get("crop_pct") or 0.875  # timm's DEFAULT_CROP_PCT
    # crop_mode squash/border differ from centre only for non-square images; stored samples are square.
    return {"resize_size": math.floor(height / crop_pct), "crop_size": int(height),
            "interpolation": cfg["interpolation"], "mean": [float(v) for v in cfg["mean"]],
            "std": [float(v) for v in cfg["std"]]}


class TimmNet(nn.Module):
    """`adapter` → timm network `net` (with its own head). Its state dict is timm's with a "net." prefix."""

    def __init__(self, model_name: str, num_classes: int, in_chans: int = 3, resize_size: int | None = None,
                 crop_size: int | None = None, mean=None, std=None, interpolation: str | None = None):
        super().__init__()
        from transferlab.models.preprocessing import PIXEL_MEAN, PIXEL_STD

        self.model_name = model_name
        net = build_timm(model_name, num_classes)
        # Missing preprocessing (create_model without a card's kwargs): the one of the tag's weights.
        given = {"resize_size": resize_size, "crop_size": crop_size, "mean": mean, "std": std,
                 "interpolation": interpolation}
        if any(v is None for v in given.values()):
            given = {**timm_preprocessing(net), **{k: v for k, v in given.items() if v is not None}}
        self.adapter = InputAdapter(in_chans, given["resize_size"], given["crop_size"], given["mean"], given["std"],
                                    given["interpolation"], PIXEL_MEAN, PIXEL_STD)
        self.net = net
        # Our interface: num_features is what forward_head(pre_logits=True) returns (timm: head_hidden_size,
        # wider than num_features where a pre-logits layer sits before the classifier, as in mobilenetv3).
        self.num_features = int(getattr(net, "head_hidden_size", None) or net.num_features)
        # timm's own layer groups, fixed now as ordinals per parameter: freezing later turns BatchNorm
        # parameters into buffers, which would otherwise renumber the groups. The dict matchers' regexes are
        # anchored at timm's names, so they are matched on the inner network and the names prefixed after.
        from timm.models import group_parameters

        self._ordinals = {coarse: {f"net.{name}": lid for name, lid in
                                   group_parameters(net, net.group_matcher(coarse=coarse), reverse=True).items()}
                          for coarse in (True, False)}

    @property
    def num_classes(self) -> int:
        return int(self.net.num_classes)

    # What transferlab.core.frozen reads as the dropout between pooled features and classifier (timm's own).
    @property
    def drop_rate(self) -> float:
        return float(getattr(self.net, "drop_rate", 0.0) or 0.0)

    @property
    def head_drop(self) -> nn.Module | None:
        drop = getattr(self.net, "head_drop", None)
        return drop if isinstance(drop, nn.Module) else None

    def timm_key(self, key: str) -> str:
        """Our state-dict key → the key in timm's own state dict of this model."""
        return key[len("net."):]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(self.adapter(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.net.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.net.get_classifier()

    def reset_classifier(self, num_classes: int) -> None:
        """Delete the output layer and its weights; put a new randomly initialised one in place (timm's own)."""
        self.net.reset_classifier(num_classes)

    def group_matcher(self, coarse: bool = False):
        # A callable matcher (timm's group_parameters takes one): timm's groups of the inner network.
        ordinals = self._ordinals[bool(coarse)]
        return lambda name: ordinals.get(name, math.inf)


def timm_net(model_name: str, num_classes: int, in_chans: int = 3, **kwargs) -> TimmNet:
    return TimmNet(model_name, num_classes, in_chans, **kwargs)
