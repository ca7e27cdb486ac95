"""Transfer recipes: which blocks are frozen and which learning rate each trainable group gets."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .models import body_groups, head_module_name
from .params import FinetuneParams

STRATEGIES = ("scratch", "head", "last_k", "full", "discriminative")


@dataclass(frozen=True)
class Recipe:
    strategy: str
    frozen_modules: tuple[str, ...]
    param_groups: list[dict]  # torch optimizer groups: {"params": [...], "lr": float, "name": str}


def freeze_modules(model: nn.Module, module_names: list[str] | tuple[str, ...]) -> None:
    """Freeze parameters and turn BatchNorm into FrozenBatchNorm2d, so its statistics stay put even
    under model.train(); the state dict keeps the same keys, so a saved model reloads by name."""
    from timm.utils.model import freeze

    if module_names:
        freeze(model, list(module_names), include_bn_running_stats=True)


def _owning_modules(param_names: list[str]) -> list[str]:
    return sorted({n.rsplit(".", 1)[0] for n in param_names})


def apply_recipe(model: nn.Module, strategy: str, cfg: FinetuneParams) -> Recipe:
    """Freeze according to the strategy and return optimizer groups. The head must already be new."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    groups = body_groups(model)
    named = dict(model.named_parameters())
    head_prefix = head_module_name(model) + "."
    head_params = [p for n, p in named.items() if n.startswith(head_prefix)]

    if strategy in ("scratch", "full"):
        frozen_groups, trainable = [], groups
    elif strategy == "head":
        frozen_groups, trainable = groups, []
    elif strategy == "last_k":
        k = min(cfg.last_k, len(groups))
        frozen_groups, trainable = groups[:len(groups) - k], groups[len(groups) - k:]
    else:  # discriminative
        frozen_groups, trainable = [], groups

    frozen = tuple(_owning_modules([n for g in frozen_groups for n in g]))
    freeze_modules(model, frozen)
    named = dict(model.named_parameters())  # freezing swaps BatchNorm modules; re-read the parameters

    param_groups: list[dict] = []
    if strategy == "discriminative":
        # ULMFiT-style: the head learns fastest, each earlier block a constant factor slower.
        for depth, names in enumerate(reversed(trainable)):
            lr = cfg.head_lr * cfg.body_lr_scale * cfg.layer_decay ** depth
            param_groups.append({"name": f"body[-{depth + 1}]", "params": [named[n] for n in names], "lr": lr})
        param_groups.append({"name": "head", "params": head_params, "lr": cfg.head_lr})
    else:
        body = [named[n] for g in trainable for n in g]
        if body:
            param_groups.append({"name": "body", "params": body, "lr": cfg.lr})
        head_lr = cfg.lr if strategy in ("scratch", "full") else cfg.head_lr
        param_groups.append({"name": "head", "params": head_params, "lr": head_lr})
    return Recipe(strategy, frozen, param_groups)
