"""Transfer recipes (head, last_k, full, discriminative, scratch, surgical, …): which blocks are frozen and which
learning rate each trainable group gets, built on the model surgery in transferlab.models.surgery."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from transferlab.models import body_groups, freeze_modules, head_module_name, owning_modules
from transferlab.params import STRATEGIES, FinetuneParams
from transferlab.params.base import base_strategy, label_variant

__all__ = ["STRATEGIES", "RECIPES", "Plan", "Recipe", "apply_recipe"]


@dataclass(frozen=True)
class Recipe:
    strategy: str
    frozen_modules: tuple[str, ...]
    param_groups: list[dict]  # torch optimizer groups: {"params": [...], "lr": float, "name": str}


@dataclass(frozen=True)
class Plan:
    """What a strategy decides: which body groups stay frozen, and the learning rates of the trainable ones."""

    frozen: list[list[str]]
    trainable: list[list[str]]
    body_lrs: list[float]  # one per trainable group, in network order
    head_lr: float
    per_group: bool = False  # one optimizer group per block (their rates differ) instead of one "body" group


# A transfer recipe is a small named function: (body groups from the model's own grouping, params) → Plan.
def scratch(groups: list[list[str]], cfg: FinetuneParams) -> Plan:
    return Plan([], groups, [cfg.lr] * len(groups), cfg.lr)


def full(groups: list[list[str]], cfg: FinetuneParams) -> Plan:
    return Plan([], groups, [cfg.lr] * len(groups), cfg.lr)


def head(groups: list[list[str]], cfg: FinetuneParams) -> Plan:
    return Plan(groups, [], [], cfg.head_lr)


def last_k(groups: list[list[str]], cfg: FinetuneParams) -> Plan:
    k = min(cfg.last_k, len(groups))
    return Plan(groups[:len(groups) - k], groups[len(groups) - k:], [cfg.lr] * k, cfg.head_lr)


def discriminative(groups: list[list[str]], cfg: FinetuneParams) -> Plan:
    # ULMFiT-style: the head learns fastest, each earlier block a constant factor slower.
    lrs = [cfg.head_lr * cfg.body_lr_scale * cfg.layer_decay ** depth for depth in range(len(groups))][::-1]
    return Plan([], groups, lrs, cfg.head_lr, per_group=True)


def surgical(groups: list[list[str]], cfg: FinetuneParams, block: str = "first") -> Plan:
    # Lee et al. 2023: one block, chosen by where the shift is (input-level: first), is tuned with the new head.
    k = {"first": 0, "middle": len(groups) // 2, "last": len(groups) - 1}[block]
    return Plan(groups[:k] + groups[k + 1:], [groups[k]], [cfg.lr], cfg.head_lr)


# The strategies that train in more than one way (transferlab.experiments.transfer.rules) start from a plain recipe: lp_ft from
# the linear probe (its second phase is `full`), l2_sp and wise_ft from full fine-tuning.
RECIPES: dict[str, Callable[[list[list[str]], FinetuneParams], Plan]] = {
    "scratch": scratch, "head": head, "last_k": last_k, "full": full, "discriminative": discriminative,
    "lp_ft": head, "l2_sp": full, "surgical": surgical, "wise_ft": full}
assert tuple(RECIPES) == STRATEGIES, "every strategy the schema names has a recipe, in the same order"


def apply_recipe(model: nn.Module, strategy: str, cfg: FinetuneParams) -> Recipe:
    """Freeze according to the strategy and return optimizer groups. The head must already be new. `strategy`
    may carry surgical's block as a runs-table label does ("surgical@middle"; plain "surgical": the first)."""
    name, variant = base_strategy(strategy), label_variant(strategy)
    if name not in RECIPES or (variant is not None and name != "surgical"):
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    groups = body_groups(model)
    plan = RECIPES[name](groups, cfg, variant) if variant is not None else RECIPES[name](groups, cfg)
    frozen = tuple(owning_modules([n for g in plan.frozen for n in g]))
    freeze_modules(model, frozen)
    named = dict(model.named_parameters())  # freezing swaps BatchNorm modules; re-read the parameters
    head_prefix = head_module_name(model) + "."
    head_params = [p for n, p in named.items() if n.startswith(head_prefix)]

    param_groups: list[dict] = []
    if plan.per_group:  # the last block first, as the rates were assigned
        for depth, (names, lr) in enumerate(zip(reversed(plan.trainable), reversed(plan.body_lrs))):
            param_groups.append({"name": f"body[-{depth + 1}]", "params": [named[n] for n in names], "lr": lr})
    elif plan.trainable:
        param_groups.append({"name": "body", "params": [named[n] for g in plan.trainable for n in g],
                             "lr": plan.body_lrs[0]})
    param_groups.append({"name": "head", "params": head_params, "lr": plan.head_lr})
    return Recipe(strategy, frozen, param_groups)
