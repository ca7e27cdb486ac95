"""Frozen features: when only the head learns, everything before it is a fixed function of the input, so it runs
once per image instead of at every step, and the one engine trains the head alone on the cached features.

transferlab.experiments.transfer.rules uses this for the `head` strategy and lp_ft's probe (params: cached_features, feature_views).

Augmentation. The uncached engine augments every step afresh, which a cache cannot reproduce: each step would
need the body again. With augmentation on, each image instead has `views` augmented versions; every step each row
of the batch takes one of its views at random (seeded generator), and only the (image, view) pairs some step
draws are computed, so the cache never costs more body passes than uncached training would. views=0 trains
on the clean images' features (augmentation off). Fixed views cost some accuracy at the smallest pools, where
the default (params/base.py feature_views) was measured. Without augmentation the cached run draws the very
batches the uncached one draws and its head is the same up to floating-point rounding (the body sees other
batch sizes).
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from transferlab.core.convergence import Outcome, Rule, loss_score, stopper_for
from transferlab.core.engine import (
    EpochSampler,
    Targets,
    TrainConfig,
    augment_input,
    conv_layout,
    in_layout,
    to_input,
    train,
)
from transferlab.system.context import CPU, Runtime

__all__ = ["FeatureHead", "extract_features", "feature_head", "plan_batches", "random_or_learning", "train_head"]


class FeatureHead(nn.Module):
    """What trains on cached features: the model's own pre-logits dropout and classifier (the same modules, not
    copies, so training this trains the model's head and its dropout still acts)."""

    def __init__(self, dropout: nn.Module, classifier: nn.Module):
        super().__init__()
        self.dropout, self.classifier = dropout, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(x))


def random_or_learning(module: nn.Module) -> bool:
    """Whether a parameter-free look at `module` says its training-mode output is random or changes its state."""
    if isinstance(module, _BatchNorm):  # a thawed BatchNorm uses batch statistics and updates its running ones
        return True
    if isinstance(module, _DropoutNd) or type(module).__name__ == "StochasticDepth":  # torchvision's drop-path
        return module.p > 0
    if isinstance(module, (nn.RNNBase, nn.MultiheadAttention)):
        return module.dropout > 0
    return (getattr(module, "drop_prob", 0) or 0) > 0  # timm's DropPath, DropBlock


def _pre_logits_dropout(model: nn.Module) -> nn.Module:
    """The dropout forward_head applies between the pooled features and the classifier in training mode."""
    drop = getattr(model, "head_drop", None)  # ours (BlockNet) and many timm models
    if isinstance(drop, nn.Module):
        return drop
    rate = float(getattr(model, "drop_rate", 0.0) or 0.0)  # timm's ResNet: F.dropout(p=drop_rate)
    return nn.Dropout(rate) if rate > 0 else nn.Identity()  # TorchvisionNet: none (dropout inside is body)


def feature_head(model: nn.Module) -> FeatureHead | None:
    """The part of `model` to train on cached features, or None when what comes before it is not a fixed function
    of the input (checked, not assumed from the strategy): a trainable parameter outside the classifier, a
    BatchNorm that learns, or a random layer (dropout, drop-path) in the body."""
    classifier = model.get_classifier()
    dropout = _pre_logits_dropout(model)
    own = {id(m) for part in (classifier, dropout) for m in part.modules()}
    for module in model.modules():
        if id(module) in own:
            continue
        if any(p.requires_grad for p in module.parameters(recurse=False)) or random_or_learning(module):
            return None
    return FeatureHead(dropout, classifier)


@torch.no_grad()
def extract_features(model: nn.Module, samples: torch.Tensor, runtime: Runtime = CPU,
                     batch_size: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pooled pre-logits features (N, F) on the CPU: the engine's input scaling, the model in eval mode, the
    runtime's device and precision; with a `generator`, of one random augmentation of each sample (the engine's,
    drawn batch by batch)."""
    device = runtime.torch_device
    model.to(device).eval()
    out = []
    with conv_layout(model, device) as layout:  # the engine's layout: the same features, bit for bit, as training sees
        for i in range(0, len(samples), batch_size):
            x = to_input(samples[i:i + batch_size], device)
            if generator is not None:
                x = augment_input(x, generator)
            x = in_layout(x, layout)
            with runtime.autocast():
                out.append(model.forward_head(model.forward_features(x), pre_logits=True).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


def plan_batches(n: int, labels: Targets, cfg: TrainConfig, generator: torch.Generator,
                 views: int) -> list[torch.Tensor]:
    """Every step's batch as keys view·n + row: the engine's own epoch sampler (padding full batches when it would
    augment), then, when augmenting with `views`, a view per row. Drawn up front: only pairs drawn need the body."""
    views = views if cfg.augment else 0
    sampler = EpochSampler(n, cfg.batch_size, labels, pad=cfg.augment)
    batches = []
    for step in range(cfg.steps):
        rows, _ = sampler(step, generator)
        batches.append(rows + n * torch.randint(views, rows.shape, generator=generator) if views else rows)
    return batches


def _on_device(x: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    return x.to(device)


def train_head(model: nn.Module, head: FeatureHead, samples: torch.Tensor, labels: Targets, param_groups: list[dict],
               cfg: TrainConfig, generator: torch.Generator, runtime: Runtime = CPU, views: int = 0,
               batch_size: int = 256, rule: Rule | None = None,
               val: tuple[torch.Tensor, torch.Tensor] | None = None) -> Outcome:
    """Train `head` (feature_head(model)) as engine.train would train `model`, on cached features; with `rule`,
    until it converges on the clean features of `val` (samples, labels; none: on the training loss). `views`
    augmented views per sample when cfg.augment (module docstring). Returns how training ended."""
    n = len(samples)
    batches = plan_batches(n, labels, cfg, generator, views)
    keys, where = torch.unique(torch.cat(batches), return_inverse=True)  # the (view, row) pairs drawn, sorted
    rows = keys % n
    augmented = cfg.augment and views > 0
    features = extract_features(model, samples[rows], runtime, batch_size, generator if augmented else None)
    positions = where.split([len(b) for b in batches])
    targets = tuple(t[rows] for t in labels) if isinstance(labels, tuple) else labels[rows]

    def replay(step: int, _: torch.Generator) -> tuple[torch.Tensor, Targets]:
        pos = positions[step]
        return pos, tuple(t[pos] for t in targets) if isinstance(targets, tuple) else targets[pos]

    stopper = None
    if rule is not None:
        score = None
        if val is not None and len(val[0]):
            score = loss_score(extract_features(model, val[0], runtime, batch_size), val[1], _on_device,
                               device=runtime.torch_device)
        stopper = stopper_for(rule, n, cfg.batch_size, cfg.augment, score)
    # The features are already augmented (or not): the engine must not augment them again.
    outcome = train(head, features, targets, param_groups, replace(cfg, augment=False), generator, runtime,
                    sampler=replay, inputs=_on_device, stopper=stopper)
    model.train()  # as the engine leaves a model it trained
    outcome.body_passes = len(keys)
    return outcome
