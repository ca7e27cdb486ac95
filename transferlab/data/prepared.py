"""Prepared data sets on disk: tensors (safetensors, no pickle) + a metadata table + pools."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from transferlab.system.io import content_hash, save_tensors
from transferlab.data.sources import DataError, ImageSet

IMAGES_FILE, CLIPS_FILE = "images.safetensors", "clips.safetensors"  # uint8 images | int16 audio clips
METADATA_FILE, POOLS_FILE = "metadata.csv", "pools.csv"
METADATA_COLUMNS = ["id", "label", "label_name", "split", "content_hash", "channels", "height", "width",
                    "pixel_min", "pixel_max", "pixel_mean", "nan_count"]


@dataclass
class Prepared:
    """A prepared data set loaded back from disk: images or audio clips, labels, metadata, pools."""

    samples: torch.Tensor  # uint8 images (N,C,H,W) or int16 clips (N,T)
    labels: torch.Tensor  # int64 (N,)
    classes: list[str]
    metadata: pd.DataFrame
    pools: pd.DataFrame | None
    root: Path

    def rows(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.metadata["split"].to_numpy() == split)

    def pool(self, draw: int, per_class: int) -> np.ndarray:
        """Row indices of the training pool with `per_class` labelled images per class, for one draw."""
        if self.pools is None:
            raise DataError(f"{self.root}: no {POOLS_FILE}")
        sel = self.pools[(self.pools["draw"] == draw) & (self.pools["per_class"] == per_class)]
        if sel.empty:
            raise DataError(f"{self.root / POOLS_FILE}: no pool for draw {draw}, {per_class} per class")
        return sel["row"].to_numpy(dtype=np.int64, copy=True)


def metadata_table(data: ImageSet, split: np.ndarray) -> pd.DataFrame:
    flat = data.images.reshape(len(data.images), -1)
    table = pd.DataFrame({
        "id": data.ids,
        "label": data.labels,
        "label_name": [data.classes[i] for i in data.labels],
        "split": split,
        "content_hash": [content_hash(row.tobytes()) for row in flat],
        "channels": data.images.shape[1],
        "height": data.images.shape[2],
        "width": data.images.shape[3],
        "pixel_min": flat.min(1) if len(flat) else [],
        "pixel_max": flat.max(1) if len(flat) else [],
        "pixel_mean": flat.mean(1).round(3) if len(flat) else [],
        "nan_count": data.nan_counts,
    })
    for key, values in data.extra.items():
        table[key] = values
    return table


def write_prepared(out: Path, samples: np.ndarray, labels: np.ndarray, classes: list[str], table: pd.DataFrame,
                   pools: pd.DataFrame | None = None, description: dict | None = None) -> None:
    """Write samples (uint8 images or int16 clips), their metadata table and the training pools."""
    out.mkdir(parents=True, exist_ok=True)
    # One metadata key: safetensors writes its metadata map in hash order, so several keys would
    # make the bytes (and the DVC hash) differ from run to run.
    blob = {"classes": classes, "description": description or {}}
    meta = {"transferlab": json.dumps(blob, sort_keys=True)}
    key, name = ("images", IMAGES_FILE) if samples.dtype == np.uint8 else ("clips", CLIPS_FILE)
    save_tensors({key: torch.from_numpy(np.ascontiguousarray(samples)),
               "labels": torch.from_numpy(labels.astype(np.int64))}, str(out / name), metadata=meta)
    table.to_csv(out / METADATA_FILE, index=False)
    if pools is not None:
        pools.to_csv(out / POOLS_FILE, index=False)


def save_prepared(out: Path, data: ImageSet, split: np.ndarray, pools: pd.DataFrame | None = None,
                  description: dict | None = None) -> pd.DataFrame:
    table = metadata_table(data, split)
    write_prepared(out, data.images, data.labels, data.classes, table, pools, description)
    return table


def load_prepared(root: Path | str) -> Prepared:
    root = Path(root)
    path = next((root / n for n in (IMAGES_FILE, CLIPS_FILE) if (root / n).exists()), None)
    if path is None:
        raise DataError(f"{root / IMAGES_FILE} not found: run the prepare stage first")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        classes = json.loads(f.metadata()["transferlab"])["classes"]
    tensors = load_file(str(path))
    samples = tensors["images"] if "images" in tensors else tensors["clips"]
    metadata = pd.read_csv(root / METADATA_FILE, dtype={"id": str, "label_name": str, "content_hash": str,
                                                         "speaker": str, "word": str})
    pools = pd.read_csv(root / POOLS_FILE) if (root / POOLS_FILE).exists() else None
    if len(metadata) != len(tensors["labels"]):
        raise DataError(f"{root}: {METADATA_FILE} has {len(metadata)} rows but {path.name} "
                        f"{len(tensors['labels'])} samples")
    return Prepared(samples, tensors["labels"], classes, metadata, pools, root)


def stratified_test_split(labels: np.ndarray, classes: list[str], test_per_class: int, need_train: int,
                          seed: int) -> np.ndarray:
    """'test' for test_per_class images of each class, 'train' for the rest; a class too small is named."""
    rng = np.random.default_rng([seed, 7])
    split = np.full(len(labels), "train", dtype=object)
    for c, name in enumerate(classes):
        rows = np.flatnonzero(labels == c)
        if len(rows) < test_per_class + need_train:
            raise DataError(f"class {name!r} has {len(rows)} images; needs {test_per_class} for test plus "
                            f"{need_train} for the largest training pool")
        split[rng.permutation(rows)[:test_per_class]] = "test"
    return split


def draw_pools(labels: np.ndarray, split: np.ndarray, num_classes: int, sizes: list[int], draws: int,
               seed: int) -> pd.DataFrame:
    """Nested pools: for each draw, the first n of a per-class shuffle of the training rows."""
    records = []
    for d in range(draws):
        rng = np.random.default_rng([seed, 1000 + d])
        for c in range(num_classes):
            rows = rng.permutation(np.flatnonzero((labels == c) & (split == "train")))
            for n in sizes:
                records += [(d, n, int(r)) for r in rows[:n]]
    return pd.DataFrame(records, columns=["draw", "per_class", "row"])


def holdout_split(num: int, val_fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 11])
    split = np.full(num, "train", dtype=object)
    split[rng.permutation(num)[:int(round(num * val_fraction))]] = "val"
    return split
