"""Transfer recipes (head, last_k, full, discriminative, scratch): which blocks are frozen and which learning
rate each trainable group gets, built on the model surgery in transferlab.models.surgery."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .models import body_groups, freeze_modules, head_module_name, owning_modules
from .params import STRATEGIES, FinetuneParams  # the one spelling of the strategy names is the schema's

__all__ = ["STRATEGIES", "Recipe", "apply_recipe"]


@dataclass(frozen=True)
class Recipe:
    strategy: str
    frozen_modules: tuple[str, ...]
    param_groups: list[dict]  # torch optimizer groups: {"params": [...], "lr": float, "name": str}


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

    frozen = tuple(owning_modules([n for g in frozen_groups for n in g]))
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
