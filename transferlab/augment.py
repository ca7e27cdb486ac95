"""Per-sample random affine augmentation of a whole batch in one call."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, generator: torch.Generator, rotation_deg: float = 12.0, scale: float = 0.12,
                  translate_px: float = 2.5, shear: float = 0.2, fill: float = 0.0) -> torch.Tensor:
    """Rotate, scale, shear and shift each image of the batch independently.

    torchvision's RandomAffine draws one transform per call; a per-sample loop over it costs more
    than the training step on CPU, hence one batched affine_grid/grid_sample.
    """
    n, _, h, w = x.shape
    draw = lambda *shape: (torch.rand(*shape, generator=generator) * 2 - 1)  # noqa: E731
    angle = draw(n) * math.radians(rotation_deg)
    zoom = 1 + draw(n) * scale
    sh = draw(n) * shear
    shift = draw(n, 2) * (2 * translate_px / torch.tensor([w, h]))
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin + sh, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # grid_sample pads with zeros; shift so the padding equals the background value.
    return F.grid_sample(x - fill, grid, align_corners=False) + fill
