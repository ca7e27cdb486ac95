"""The shape every network here shares: blocks (input → output) → pooling → dropout → a linear head,
behind timm's interface, so recipes and timm's layer grouping treat all of them alike."""
from __future__ import annotations

import math

import torch
from torch import nn


class TimmInterface(nn.Module):
    """timm's interface on top of a subclass's `forward_features`, `forward_head` and `num_features`: one place
    for the parts every network here shares."""

    num_features: int
    num_classes: int
    head: nn.Module

    def _new_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Delete the output layer and its weights; put a new randomly initialised one in place."""
        self.num_classes = num_classes
        self.head = self._new_head(num_classes)


class WrappedNet(TimmInterface):
    """A network wrapped from another library (`net`), its parameters grouped by `self._ordinals` (parameter name →
    stage ordinal, input first); names not in it (the head) come last."""

    _ordinals: dict[str, int]

    def group_matcher(self, coarse: bool = False):
        # A callable matcher (timm's group_parameters takes one).
        ordinals = self._ordinals
        return lambda name: ordinals.get(name, math.inf)


class BlockNet(TimmInterface):
    """Base for networks made of `self.blocks` (an nn.Sequential ordered from input to output) and
    `self.pool` (feature maps → (N, features)). A subclass builds those two, then calls `_init_head`
    (in that order: it fixes the order the random initialisation draws in, hence the weights of a seed)."""

    blocks: nn.Sequential
    pool: nn.Module

    def _init_head(self, num_features: int, num_classes: int, dropout: float) -> None:
        self.num_features = num_features
        self.drop_rate = dropout
        self.head_drop = nn.Dropout(dropout)
        self.num_classes = num_classes
        self.head = self._new_head(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.pool(x))
        return x if pre_logits else self.head(x)

    def group_matcher(self, coarse: bool = False) -> dict:
        # Same contract as timm's models, so timm's layer grouping (for last_k / layer decay) applies.
        return {"stem": r"^blocks\.0\.", "blocks": r"^blocks\.(\d+)"}
