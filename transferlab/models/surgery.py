"""Model surgery: name the head and the body's layer groups, freeze and unfreeze modules, replace the head.

Transfer recipes (transferlab.core.recipes) are built on these; loading a saved model re-applies `freeze_modules`
from its card, so both must agree on what freezing does to a network."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class FrozenBatchNorm(nn.Module):
    """BatchNorm of any dimension (1-D for M5) with fixed statistics and affine parameters, also in train
    mode. timm's FrozenBatchNorm2d does this for 2-D; its buffers (weight, bias, running_mean, running_var,
    no num_batches_tracked) are the same, so a frozen model's state dict has one convention."""

    def __init__(self, num_features: int, eps: float = 1e-5, thawed_type: type[_BatchNorm] = nn.BatchNorm1d):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.thawed_type = thawed_type  # what unfreezing turns it back into
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((num_features,), value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)  # channels are dimension 1 of (N,C), (N,C,L), (N,C,D,H,W)
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(shape) + shift.reshape(shape)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    model.get_submodule(parent).add_module(child, new)


def _frozen_copy(bn: _BatchNorm) -> FrozenBatchNorm:
    frozen = FrozenBatchNorm(bn.num_features, bn.eps, type(bn))
    for name in ("running_mean", "running_var") + (("weight", "bias") if bn.affine else ()):
        getattr(frozen, name).copy_(getattr(bn, name).detach())
    return frozen


def _thawed_copy(frozen: FrozenBatchNorm) -> _BatchNorm:
    bn = frozen.thawed_type(frozen.num_features, frozen.eps)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(getattr(frozen, name))
    return bn


def _swap_batchnorms(model: nn.Module, root: str, frozen: bool) -> None:
    """Every BatchNorm under `root` (2-D ones are timm's business) ↔ FrozenBatchNorm."""
    for name, module in list(model.get_submodule(root).named_modules(prefix=root)):
        if frozen and isinstance(module, _BatchNorm) and module.track_running_stats \
                and not isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
            _replace(model, name, _frozen_copy(module))
        elif not frozen and isinstance(module, FrozenBatchNorm):
            _replace(model, name, _thawed_copy(module))


def freeze_modules(model: nn.Module, module_names: list[str] | tuple[str, ...]) -> None:
    """Freeze the parameters of these modules and fix their BatchNorm statistics, so these stay put even
    under model.train(); the state dict keeps its keys (less num_batches_tracked), so a saved model reloads
    by name. 2-D BatchNorm becomes timm's FrozenBatchNorm2d, as in every model saved so far."""
    from timm.utils.model import freeze

    if not module_names:
        return  # timm reads an empty list as "the whole model"
    freeze(model, list(module_names), include_bn_running_stats=True)
    for name in module_names:
        _swap_batchnorms(model, name, frozen=True)


def unfreeze_modules(model: nn.Module, module_names: list[str] | tuple[str, ...]) -> None:
    """Undo freeze_modules: trainable parameters, BatchNorm that learns its statistics again."""
    from timm.utils.model import unfreeze

    if not module_names:
        return
    for name in module_names:
        _swap_batchnorms(model, name, frozen=False)
    unfreeze(model, list(module_names), include_bn_running_stats=True)


def reset_classifier(model: nn.Module, num_classes: int) -> str:
    """A new, randomly initialised head for `num_classes` (the old one and its weights are gone); its name."""
    model.reset_classifier(num_classes)
    return head_module_name(model)


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


def owning_modules(param_names: list[str]) -> list[str]:
    """The modules that hold these parameters (what freeze_modules and a model card name)."""
    return sorted({n.rsplit(".", 1)[0] for n in param_names})


def count_parameters(model: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)
