"""The course's door-camera example on digits: a digit at a random place and scale on a cluttered canvas,
and the hand-designed first stage of the pipeline branch that finds and crops it."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from transferlab.data.prepared import Prepared
from transferlab.data.sources import ImageSet
from transferlab.params import VisionBranchParams


def resize_square(img: np.ndarray, size: int) -> np.ndarray:
    x = torch.from_numpy(img.astype(np.float32))[None, None]
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0, 0].numpy()


def draw_strokes(canvas: np.ndarray, count: int, rng: np.random.Generator) -> None:
    """Clutter: `count` thin straight strokes of random length, angle and brightness, drawn in place."""
    c = canvas.shape[0]
    for _ in range(count):
        n = int(rng.integers(6, 16))
        y0, x0 = rng.uniform(0, c - 1, 2)
        angle = rng.uniform(0, np.pi)
        ys = np.clip(np.round(y0 + np.sin(angle) * np.arange(n)), 0, c - 1).astype(int)
        xs = np.clip(np.round(x0 + np.cos(angle) * np.arange(n)), 0, c - 1).astype(int)
        canvas[ys, xs] = np.maximum(canvas[ys, xs], rng.uniform(120, 255))


def _draw_canvas(digit: np.ndarray, others: list[np.ndarray], cfg: VisionBranchParams,
                 rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int]]:
    c = cfg.canvas_size
    canvas = np.zeros((c, c), np.float32)
    for other in others[:cfg.clutter_fragments]:  # pieces of other digits: the distractors
        k = int(rng.integers(7, 13))
        y, x = rng.integers(4, 28 - k - 3, 2)
        piece = np.rot90(other[y:y + k, x:x + k], int(rng.integers(0, 4)))
        py, px = rng.integers(0, c - k + 1, 2)
        canvas[py:py + k, px:px + k] = np.maximum(canvas[py:py + k, px:px + k], piece)
    draw_strokes(canvas, cfg.clutter_strokes, rng)
    size = int(rng.integers(cfg.digit_size[0], cfg.digit_size[1] + 1))
    y, x = (int(v) for v in rng.integers(0, c - size + 1, 2))
    canvas[y:y + size, x:x + size] = np.maximum(canvas[y:y + size, x:x + size], resize_square(digit, size))
    canvas += rng.normal(0, cfg.noise_std * 255, canvas.shape)
    return np.clip(canvas, 0, 255).round().astype(np.uint8), (y, x, size)


def make_canvases(digits: Prepared, cfg: VisionBranchParams) -> tuple[ImageSet, np.ndarray]:
    """One canvas per training digit and cfg.test_canvases from the test digits; boxes kept as metadata."""
    images = digits.samples[:, 0].numpy()
    labels = digits.labels.numpy()
    rows = {"train": digits.rows("train"), "test": np.resize(digits.rows("test"), cfg.test_canvases)}
    canvases, boxes, out_labels, split, ids = [], [], [], [], []
    for name, picked in rows.items():
        rng = np.random.default_rng([cfg.seed, 61 if name == "train" else 62])
        for i, row in enumerate(picked):
            # Distractors come from the same split, so no test digit leaks into training canvases.
            others = [images[j] for j in rng.choice(rows[name], cfg.clutter_fragments)]
            canvas, box = _draw_canvas(images[row], others, cfg, rng)
            canvases.append(canvas)
            boxes.append(box)
            out_labels.append(labels[row])
            split.append(name)
            ids.append(f"{name}:{i}:digit{row}")
    boxes = np.array(boxes)
    data = ImageSet(np.stack(canvases)[:, None], np.array(out_labels, np.int64), digits.classes, ids,
                    {"box_y": boxes[:, 0].tolist(), "box_x": boxes[:, 1].tolist(), "box_size": boxes[:, 2].tolist()})
    return data, np.array(split, dtype=object)


def localise(canvas: np.ndarray, threshold: float = 100.0) -> tuple[int, int, int, int]:
    """Hand-designed stage 1: blur, threshold, 8-connected components; the component with the most ink is
    the digit. Returns its bounding box (y0, x0, y1, x1), inclusive-exclusive."""
    smooth = ndimage.gaussian_filter(canvas.astype(np.float32), 0.8)
    mask = smooth > threshold
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return 0, 0, canvas.shape[0], canvas.shape[1]
    ink = ndimage.sum(smooth, labels, index=np.arange(1, count + 1))
    best = int(np.argmax(ink)) + 1
    sl = ndimage.find_objects(labels)[best - 1]
    return sl[0].start, sl[1].start, sl[0].stop, sl[1].stop


def crop_digits(canvases: np.ndarray, crop_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Localise and crop every canvas (N,1,H,W) → uint8 crops (N,1,crop,crop) and the boxes found."""
    crops, boxes = [], []
    for canvas in canvases[:, 0]:
        y0, x0, y1, x1 = localise(canvas)
        side = max(y1 - y0, x1 - x0) + 4  # square, with a margin, like an MNIST digit in its box
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
        top, left = int(round(cy - side / 2)), int(round(cx - side / 2))
        padded = np.pad(canvas, side)
        patch = padded[top + side:top + 2 * side, left + side:left + 2 * side]
        crops.append(np.clip(resize_square(patch, crop_size), 0, 255).round().astype(np.uint8))
        boxes.append((y0, x0, y1, x1))
    return np.stack(crops)[:, None], np.array(boxes)


def box_hit(found: np.ndarray, y: np.ndarray, x: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Whether the found box's centre lies inside the true digit box (stage 1 got the right object)."""
    cy, cx = (found[:, 0] + found[:, 2]) / 2, (found[:, 1] + found[:, 3]) / 2
    return (cy >= y) & (cy <= y + size) & (cx >= x) & (cx <= x + size)
