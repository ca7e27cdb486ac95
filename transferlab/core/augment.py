"""Per-sample random affine + elastic augmentation of a whole batch in one call."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, generator: torch.Generator, rotation_deg: float = 12.0, scale: float = 0.12,
                  translate_px: float = 2.5, shear: float = 0.2, elastic_px: float = 1.5,
                  fill: float = 0.0) -> torch.Tensor:
    """Rotate, scale, shear, shift and elastically warp each image of the batch independently.

    torchvision's RandomAffine draws one transform per call; a per-sample loop over it costs more
    than the training step on CPU, hence one batched affine_grid/grid_sample. The elastic part is a
    smooth random displacement (a 4x4 field, upsampled) of up to `elastic_px` pixels, the classic
    handwriting augmentation.
    """
    n, _, h, w = x.shape
    draw = lambda *shape: (torch.rand(*shape, generator=generator) * 2 - 1)  # noqa: E731
    angle = draw(n) * math.radians(rotation_deg)
    zoom = 1 + draw(n) * scale
    sh = draw(n) * shear
    shift = draw(n, 2) * (2 * translate_px / torch.tensor([w, h]))
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin + sh, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    if elastic_px > 0:
        coarse = draw(n, 2, 4, 4) * (2 * elastic_px / torch.tensor([w, h]).view(1, 2, 1, 1))
        grid = grid + F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    grid = grid.to(x.device, x.dtype)
    # grid_sample pads with zeros; shift so the padding equals the background value.
    return F.grid_sample(x - fill, grid, align_corners=False) + fill


def random_shift_gain(x: torch.Tensor, generator: torch.Generator, max_shift: float = 0.1,
                      gain_db: float = 6.0) -> torch.Tensor:
    """Shift each clip (N,1,T) by up to ±max_shift of its length (zeros fill in) and scale it by ±gain_db."""
    n, _, t = x.shape
    pad = int(max_shift * t)
    shift = ((torch.rand(n, generator=generator) * 2 - 1) * pad).round().long().tolist()
    gain = 10 ** ((torch.rand(n, generator=generator) * 2 - 1) * gain_db / 20)
    padded = F.pad(x, (pad, pad))
    # A slice per clip: much cheaper than a gather over the whole batch.
    out = torch.stack([padded[i, :, pad - s:pad - s + t] for i, s in enumerate(shift)])
    return out * gain.to(x.device, x.dtype).view(n, 1, 1)


def augment_batch(x: torch.Tensor, generator: torch.Generator, fill: float = 0.0) -> torch.Tensor:
    """The augmentation that fits the input: geometric for images (N,C,H,W), time/gain for clips (N,1,T)."""
    return random_affine(x, generator, fill=fill) if x.ndim == 4 else random_shift_gain(x, generator)
