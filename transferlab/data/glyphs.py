"""Source task A: printed letters rendered from the fonts matplotlib ships."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage

from transferlab.system.context import CPU, Runtime
from transferlab.system.parallel import run_jobs

# Symbol-only fonts (math extensions, big operators) have no usable letters.
_EXCLUDED_FONT_PREFIXES = ("STIXSiz", "STIXNonUni", "cmex", "cmsy", "LastResort", "DejaVuSansDisplay",
                           "DejaVuSerifDisplay")
LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
GREEK = "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩαβγδεζηθικλμνξοπρστυφχψω"
# Glyphs are scaled to a fixed box, so c/C, o/O, s/S ... become the same picture, and Greek capitals
# like Α/Β/Ε copy Latin ones. These sets keep one class per distinct shape: no label noise.
LATIN_DISTINCT = "ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghijkmnpqrty"
GREEK_DISTINCT = "ΓΔΘΛΞΠΣΦΨΩαβγδεζηθλμξπστφψω"
_RENDER_PX = 48
_CANVAS = 96
_GRID = np.meshgrid(np.arange(_CANVAS), np.arange(_CANVAS), indexing="ij")


@dataclass(frozen=True)
class GlyphStyle:
    """Ranges of the random distortions applied to each rendered glyph."""

    rotation_deg: float = 12.0
    shear: float = 0.3
    scale_jitter: float = 0.15
    max_stroke: int = 3
    elastic_alpha: float = 6.0
    blur_sigma: float = 0.6
    noise_std: float = 0.03
    image_size: int = 28
    box_size: int = 20


def font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def available_fonts() -> list[Path]:
    return sorted(p for p in font_dir().glob("*.ttf") if not p.name.startswith(_EXCLUDED_FONT_PREFIXES))


@lru_cache(maxsize=None)
def _cmap(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, lazy=True) as font:
        return frozenset(font.getBestCmap() or {})


def fonts_for_charset(charset: str) -> dict[str, list[str]]:
    """Map each character to the bundled fonts that really contain it."""
    fonts = [str(p) for p in available_fonts()]
    table = {ch: [f for f in fonts if ord(ch) in _cmap(f)] for ch in charset}
    missing = [ch for ch, fs in table.items() if not fs]
    if missing:
        raise ValueError(f"no bundled font renders the characters {''.join(missing)!r}")
    return table


@lru_cache(maxsize=None)
def _font(path: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, _RENDER_PX)


def _center_of_mass_paste(glyph: np.ndarray, size: int, shift: np.ndarray) -> np.ndarray:
    # MNIST centres each digit by its centre of mass in a 28x28 frame; doing the same keeps
    # source and target geometry alike, which is what lets low-level features transfer.
    out = np.zeros((size, size), np.float32)
    cy, cx = ndimage.center_of_mass(glyph) if glyph.sum() > 0 else (glyph.shape[0] / 2, glyph.shape[1] / 2)
    top = int(round(size / 2 - cy + shift[0]))
    left = int(round(size / 2 - cx + shift[1]))
    h, w = glyph.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, size), min(left + w, size)
    out[y0:y1, x0:x1] = glyph[y0 - top:y1 - top, x0 - left:x1 - left]
    return out


def render_glyph(char: str, font_path: str, rng: np.random.Generator, style: GlyphStyle) -> np.ndarray:
    """One distorted glyph as a uint8 image of style.image_size²."""
    img = Image.new("L", (_CANVAS, _CANVAS), 0)
    stroke = int(rng.integers(0, style.max_stroke + 1))
    ImageDraw.Draw(img).text((_CANVAS / 2, _CANVAS / 2), char, fill=255, font=_font(font_path), anchor="mm",
                             stroke_width=stroke, stroke_fill=255)
    if stroke == 0 and rng.random() < 0.3:
        img = img.filter(ImageFilter.MinFilter(3))  # thin strokes, like a fine pen
    angle = np.deg2rad(rng.uniform(-style.rotation_deg, style.rotation_deg))
    shear = rng.uniform(-style.shear, style.shear)
    sx, sy = 1 + rng.uniform(-style.scale_jitter, style.scale_jitter, size=2)
    c, s = np.cos(angle), np.sin(angle)
    forward = np.array([[c, -s], [s, c]]) @ np.array([[1, shear], [0, 1]]) @ np.diag([sx, sy])
    inv = np.linalg.inv(forward)
    centre = np.array([_CANVAS / 2, _CANVAS / 2])
    offset = centre - inv @ centre
    img = img.transform(img.size, Image.AFFINE, (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1]),
                        resample=Image.BILINEAR)
    arr = np.asarray(img, np.float32)
    if style.elastic_alpha > 0:
        # Smooth random displacement fields turn rigid print into something closer to a hand.
        # A coarse 4x4 field, upsampled, is as smooth as a Gaussian-filtered one at a fraction of the cost.
        coarse = rng.uniform(-style.elastic_alpha, style.elastic_alpha, size=(2, 4, 4))
        dy, dx = (np.asarray(Image.fromarray(c.astype(np.float32), "F").resize((_CANVAS, _CANVAS), Image.BILINEAR))
                  for c in coarse)
        arr = ndimage.map_coordinates(arr, [_GRID[0] + dy, _GRID[1] + dx], order=1, mode="constant")
    ys, xs = np.nonzero(arr > 8)
    if len(ys) == 0:
        return np.zeros((style.image_size, style.image_size), np.uint8)
    crop = arr[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    box = style.box_size * rng.uniform(0.8, 1.05)
    scale = box / max(crop.shape)
    new_hw = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    small = np.asarray(Image.fromarray(crop.astype(np.uint8)).resize(new_hw, Image.LANCZOS), np.float32)
    out = _center_of_mass_paste(small, style.image_size, rng.uniform(-1, 1, size=2))
    sigma = rng.uniform(0, style.blur_sigma)
    if sigma > 0.2:
        out = ndimage.gaussian_filter(out, sigma)
        out *= 255.0 / max(out.max(), 1.0)
    out += rng.normal(0, rng.uniform(0, style.noise_std) * 255, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _render_chunk(seed: int, start: int, stop: int, charset: str,
                  style: GlyphStyle) -> tuple[np.ndarray, np.ndarray, list[str]]:
    table = fonts_for_charset(charset)
    images = np.empty((stop - start, style.image_size, style.image_size), np.uint8)
    labels = np.empty(stop - start, np.int64)
    fonts: list[str] = []
    for row, index in enumerate(range(start, stop)):
        # One generator per sample: the bytes do not depend on how work is split over processes.
        rng = np.random.default_rng([seed, index])
        label = index % len(charset)
        font = table[charset[label]][int(rng.integers(len(table[charset[label]])))]
        images[row] = render_glyph(charset[label], font, rng, style)
        labels[row] = label
        fonts.append(Path(font).stem)
    return images, labels, fonts


def render_dataset(n: int, charset: str, seed: int, style: GlyphStyle = GlyphStyle(),
                   runtime: Runtime = CPU, chunk: int = 1000) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Render n glyphs, classes balanced (sample i has class i mod len(charset)), in chunks over the runtime's
    workers (the images do not depend on how many)."""
    fonts_for_charset(charset)  # fail early, in the parent, on a character no font has
    jobs = [(seed, s, min(s + chunk, n), charset, style) for s in range(0, n, chunk)]
    parts = run_jobs(_render_chunk, jobs, runtime)
    if not parts:
        return np.empty((0, style.image_size, style.image_size), np.uint8), np.empty(0, np.int64), []
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            [f for p in parts for f in p[2]])
