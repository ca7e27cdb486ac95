"""The shape every network here shares: blocks (input → output) → pooling → dropout → a linear head,
behind timm's interface, so recipes and timm's layer grouping treat all of them alike."""
from __future__ import annotations

import torch
from torch import nn


class BlockNet(nn.Module):
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
        self.head = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()

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
