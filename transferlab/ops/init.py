"""`transferlab init`: from a folder of labelled images to a project that runs. It writes the params the folder
needs into params.yaml (pool sizes from the class counts, a backbone when named, the retrain inbox), puts the
folders under DVC, and commits exactly what it wrote; `--run` then makes what advice needs."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from transferlab.data.sizes import AUDIO_SUFFIXES, IMAGE_SUFFIXES, class_counts
from transferlab.ops.git import commit_files, git

# Labelled examples per class the learning curve is measured at: every one the smallest class can supply.
POOL_LADDER = (1, 5, 10, 20, 50, 100, 300)
TEST_PER_CLASS = 20  # held out of the folder when no test folder is given
# What advice reads: the scores, their check against the sweep, and the sweep's evaluation.
RUN_STAGES = ("transferability_check", "evaluate")


class InitError(ValueError):
    """The folder or an option cannot make a project; the message names it."""


@dataclass
class Plan:
    delta: dict  # merged into params.yaml
    folders: list[str]  # put under DVC
    said: list[str] = field(default_factory=list)  # what init chose, for the user


def backbone_entry(spec: str) -> dict:
    """`tv:ARCH[:WEIGHTS]`, `timm:NAME` or `file:ARCH:PATH` → a `backbones:` entry (torchvision weights pinned to
    the arch's current DEFAULT when not named, so the project does not change when torchvision's default does)."""
    kind, _, rest = spec.partition(":")
    if kind in ("tv", "torchvision") and rest:
        arch, _, weights = rest.partition(":")
        if not weights:
            from transferlab.models.pretrained.torchvision import torchvision_weights

            weights = torchvision_weights(arch, None).name
        return {"name": f"tv-{arch}", "kind": "torchvision", "arch": arch, "weights": weights}
    if kind == "timm" and rest:
        return {"name": rest.split(".")[0].replace("/", "-"), "kind": "timm", "arch": rest}
    if kind == "file" and rest.count(":") >= 1:
        arch, _, path = rest.partition(":")
        return {"name": Path(path).stem.replace(" ", "-"), "kind": "file", "arch": arch, "path": path}
    raise InitError(f"--backbone {spec!r}: expected tv:ARCH[:WEIGHTS], timm:NAME or file:ARCH:PATH "
                    "(e.g. tv:resnet18, timm:convnext_tiny.fb_in22k_ft_in1k, file:resnet18:weights/mine.pth)")


def pool_sizes(smallest: int) -> list[int]:
    """Every size of POOL_LADDER that the smallest class can supply."""
    sizes = [n for n in POOL_LADDER if n <= smallest]
    if not sizes:
        raise InitError(f"a class has {smallest} usable images: at least 1 per class is needed")
    return sizes


def plan(root: Path, folder: str, test: str | None, backbone: str | None, inbox: str | None,
         name: str | None) -> Plan:
    """The params delta for an image folder (a folder per class), with the numbers it was chosen from."""
    counts = _classes(root, folder, "FOLDER")
    if len(counts) < 2:
        raise InitError(f"{folder}: {len(counts)} class folder(s); a classifier needs at least 2 "
                        f"({folder}/<class>/<images>)")
    held_out = 0 if test else TEST_PER_CLASS
    if test:
        missing = sorted(set(counts) - set(_classes(root, test, "--test")))
        if missing:
            raise InitError(f"--test {test}: no folder for the class(es) {', '.join(missing)}")
    smallest = min(counts.values()) - held_out
    if smallest < 1:
        raise InitError(f"{folder}: the smallest class has {min(counts.values())} images, and {held_out} are held "
                        "out for testing without --test: give a test folder or more images")
    sizes = pool_sizes(smallest)
    target = {"kind": "imagefolder", "root": folder, "test_root": test, "pool_sizes": sizes,
              "pool_draws": 3}
    if not test:
        target["test_per_class"] = TEST_PER_CLASS
    delta = {"prepare": {"target": target},
             "evaluate": {"focus_per_class": sizes[len(sizes) // 2]},
             "distill": {"per_class": sorted({sizes[0], sizes[-1]})}}
    said = [f"{folder}: {len(counts)} classes, {min(counts.values())}–{max(counts.values())} images each; "
            f"learning curve at {', '.join(map(str, sizes))} per class"
            + ("" if test else f" ({TEST_PER_CLASS} per class held out for testing)")]
    if backbone:
        entry = backbone_entry(backbone)
        delta["backbones"] = [entry]
        delta["finetune"] = {"main_backbone": entry["name"]}
        said.append(f"backbone {entry['name']}: every strategy is fine-tuned from it")
    if inbox:
        delta["retrain"] = {"inbox": inbox, "model_name": name or Path(folder).name, "margin": 0.005}
        said.append(f"new labelled batches go to {inbox}/<batch>/<class>/ (python -m flows.retrain)")
    return Plan(delta, [folder, *([test] if test else [])], said)


def _classes(root: Path, folder: str, what: str) -> dict[str, int]:
    path = root / folder
    if not path.is_dir():
        raise InitError(f"{what} {folder}: no such folder")
    if class_counts(path, AUDIO_SUFFIXES) and not class_counts(path, IMAGE_SUFFIXES):
        raise InitError(f"{what} {folder}: audio files; init sets up image folders (for audio see README: "
                        "audio.prepare.target with kind: folder)")
    counts = {c: n for c, n in class_counts(path, IMAGE_SUFFIXES).items() if n}
    if not counts:
        raise InitError(f"{what} {folder}: no class folders with images ({folder}/<class>/<images>: "
                        f"{', '.join(IMAGE_SUFFIXES)})")
    return counts


def merged(base: dict, delta: dict) -> dict:
    """`delta` over `base`, sections merged key by key (a list or value in delta replaces base's)."""
    out = dict(base)
    for key, value in delta.items():
        out[key] = merged(base.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def apply(root: Path, p: Plan) -> list[str]:
    """Write params.yaml (checked before anything is written), `dvc add` the folders, commit exactly the files
    written; returns them."""
    from transferlab.data.sizes import size_problems
    from transferlab.params import ParamsError, parse_params

    params_path = root / "params.yaml"
    values = merged(yaml.safe_load(params_path.read_text()) or {}, p.delta)
    try:
        params = parse_params(values, params_path)
    except ParamsError as err:
        raise InitError(str(err)) from None
    short = size_problems(params, root, tracks=("vision",))
    if short:
        raise InitError("the folders cannot supply these params:\n" + "\n".join(f"  {s}" for s in short))
    params_path.write_text(yaml.safe_dump(values, sort_keys=False))
    written = ["params.yaml"]
    for folder in p.folders:
        proc = subprocess.run([sys.executable, "-m", "dvc", "add", "--quiet", folder], cwd=root, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise InitError(f"dvc add {folder} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        written += [f"{folder}.dvc", (Path(folder).parent / ".gitignore").as_posix()]
    written = list(dict.fromkeys(w for w in written if (root / w).exists()))
    if git(root, "rev-parse", "--is-inside-work-tree") == "true":
        commit_files(root, written, f"transferlab init: {', '.join(p.folders)}")
    return written


def run(root: Path, quiet_stdout: bool = False) -> int:
    """`dvc repro` of what advice reads (and everything before it); its exit status. quiet_stdout: DVC's output
    goes to stderr (stdout is kept for a JSON answer)."""
    return subprocess.call([sys.executable, "-m", "dvc", "repro", *RUN_STAGES], cwd=root,
                           stdout=sys.stderr if quiet_stdout else None)
