"""Can the user's folders fill what params ask for? Counted from file names alone (no image is decoded, no
torch), so `params check`, the retrain preflight and the prepare stage can refuse a pool size that a class
cannot supply before any output is written, naming the key."""
from __future__ import annotations

import os
from pathlib import Path

# torchvision's ImageFolder extensions (datasets.folder.IMG_EXTENSIONS): the files prepare will read.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac")


def class_counts(root: Path | str, suffixes: tuple[str, ...]) -> dict[str, int]:
    """Files per class folder (root/<class>/**), as ImageFolder would find them."""
    counts = {}
    for entry in sorted(Path(root).iterdir()):
        if entry.is_dir():
            counts[entry.name] = sum(1 for folder, _, files in os.walk(entry, followlinks=True)
                                     for f in files if f.lower().endswith(suffixes))
    return counts


def _too_few(counts: dict[str, int], need: int) -> str:
    return ", ".join(f"{name} ({n})" for name, n in counts.items() if n < need)


def size_problems(params, root: Path | str = ".", tracks: tuple[str, ...] = ("vision", "audio")) -> list[str]:
    """One line per problem, each naming the key; paths in params are relative to `root` (the project)."""
    root = Path(root)
    problems = []
    t = params.prepare.target
    if "vision" in tracks and t.kind == "imagefolder" and t.root:
        need = max(t.pool_sizes) + (0 if t.test_root else t.test_per_class)
        what = f"the largest pool ({max(t.pool_sizes)})" + ("" if t.test_root else
                                                             f" plus test_per_class ({t.test_per_class})")
        problems += _folder("prepare.target", "root", root / t.root, IMAGE_SUFFIXES, need,
                            f"prepare.target.pool_sizes: {what} needs {need} images per class")
        if t.test_root:
            problems += _folder("prepare.target", "test_root", root / t.test_root, IMAGE_SUFFIXES,
                                params.validation.min_per_class_test,
                                f"validate.min_per_class_test: the fixed test set needs "
                                f"{params.validation.min_per_class_test} images per class")
    s = params.prepare.source
    if "vision" in tracks and getattr(s, "kind", "glyphs") == "imagefolder":
        problems += _folder("prepare.source", "root", root / s.root, IMAGE_SUFFIXES,
                            params.validation.min_per_class_source,
                            f"validate.min_per_class_source: each source class needs "
                            f"{params.validation.min_per_class_source} images")
    a = params.audio.prepare.target
    if "audio" in tracks and a.kind == "folder" and a.root:
        folder = root / a.root
        if not folder.is_dir():
            problems.append(f"audio.prepare.target.root: folder {folder} does not exist")
        else:
            positives = class_counts(folder, AUDIO_SUFFIXES).get(a.wake_word, 0)
            if positives < max(a.pool_sizes):
                problems.append(f"audio.prepare.target.pool_sizes: the largest pool needs {max(a.pool_sizes)} "
                                f"clips of the wake word {a.wake_word!r} in {folder}, which has {positives}")
    return problems


def _folder(section: str, key: str, folder: Path, suffixes: tuple[str, ...], need: int, why: str) -> list[str]:
    if not folder.is_dir():
        return [f"{section}.{key}: folder {folder} does not exist"]
    counts = class_counts(folder, suffixes)
    if not counts:
        return [f"{section}.{key}: {folder} has no class folders (expected {folder}/<class>/<files>)"]
    short = _too_few(counts, need)
    return [f"{why} in {folder}, but these classes have fewer: {short}"] if short else []
