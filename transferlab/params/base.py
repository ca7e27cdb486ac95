"""Sections every track shares: the Section base class, value types, training and transfer settings."""
from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Strategy = Literal["scratch", "head", "last_k", "full", "discriminative", "lp_ft", "l2_sp", "surgical", "wise_ft"]
# The one spelling of the strategy names; transfer.py and the defaults below read it from here.
STRATEGIES: tuple[str, ...] = get_args(Strategy)
# What the default vision run sweeps: every strategy. The audio track sweeps the first five (its runs cost 3×).
DEFAULT_STRATEGIES: tuple[str, ...] = STRATEGIES
BASIC_STRATEGIES: tuple[str, ...] = STRATEGIES[:5]
REFINEMENTS: tuple[str, ...] = STRATEGIES[5:]  # the refinements of full fine-tuning (lp_ft, l2_sp, surgical, wise_ft)
# How much of the pre-trained body each strategy retrains: the claims compare these groups, so a new strategy
# joins one of them here and nowhere else.
SHALLOW_STRATEGIES: tuple[str, ...] = ("head", "last_k", "surgical")  # body (mostly) frozen
WHOLE_SOURCE = "src-full"  # the vision backbone pre-trained on the whole source (stage pretrain@src-full)
DEEP_STRATEGIES: tuple[str, ...] = ("full", "discriminative", "lp_ft", "l2_sp", "wise_ft")  # every layer retrained
TRANSFER_STRATEGIES: tuple[str, ...] = SHALLOW_STRATEGIES + DEEP_STRATEGIES  # all but scratch
# wise_ft reports one row per mixing coefficient ("wise_ft@0.5"), surgical one per block ("surgical@first").
WISE_SEPARATOR = "@"
SurgicalBlock = Literal["first", "middle", "last"]


def strategy_label(strategy: str, variant: float | str | None = None) -> str:
    """The runs table's name for a run: the strategy, or the strategy and its variant (wise_ft's mixing
    coefficient, surgical's block): each variant is its own arm, so every table grouped by label keeps them apart."""
    if variant is None:
        return strategy
    return f"{strategy}{WISE_SEPARATOR}{variant:g}" if isinstance(variant, float) else f"{strategy}{WISE_SEPARATOR}{variant}"


def label_variant(label: str) -> str | None:
    """The variant part of a runs-table label ("surgical@middle" → "middle"), None for a plain strategy."""
    return label.split(WISE_SEPARATOR, 1)[1] if WISE_SEPARATOR in label else None


def base_strategy(label: str) -> str:
    """The schema's strategy name behind a runs-table label ("wise_ft@0.5" → "wise_ft")."""
    return label.split(WISE_SEPARATOR, 1)[0]


def labels_in(group: tuple[str, ...], labels) -> list[str]:
    """The runs-table labels whose strategy is in `group`, in the group's order (every α of wise_ft)."""
    return sorted({x for x in labels if base_strategy(x) in group}, key=lambda x: (group.index(base_strategy(x)), x))
PositiveInt = Annotated[int, Field(gt=0)]
MIN_PHASE_STEPS = 3  # the engine's one-cycle LR schedule divides by zero with 2 steps; lp_ft has two phases
Fraction = Annotated[float, Field(ge=0, le=1)]


class Section(BaseModel):
    """One mapping of params.yaml: unknown keys and wrong types fail; values never change after loading."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ConvergenceParams(Section):
    """When a training arm has converged (transferlab.core.convergence): a validation split carved from the arm's own
    training rows stops improving. Every training section has one; the cap is that section's step budget."""

    patience: PositiveInt = 4          # checks (epochs) without improvement before stopping
    min_check_steps: PositiveInt = 10  # checks every epoch, but at least this many steps apart (tiny pools)
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2  # of each class's training rows, held out to decide
    # Pools with a class of fewer rows cannot spare one: they stop when the training loss plateaus instead.
    min_per_class: PositiveInt = 5
    # A loss that improves by less than this share of the best one so far has plateaued (relative: a pool's loss
    # may sit near 1 or near 0.01, and the training loss of a 10-image pool creeps down for hundreds of steps).
    min_delta: Annotated[float, Field(ge=0, lt=1)] = 0.01
    lr_drop: Annotated[float, Field(gt=0, le=1)] = 0.2  # after half the patience without improvement


class ModelParams(Section):
    name: str = "convnet"
    widths: Annotated[list[PositiveInt], Field(min_length=1)] = [16, 32, 128]  # full profile: [32, 64, 256]
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1


class TrainingParams(Section):
    """Pre-training on the source task; shared by both tracks (each subclasses it for its own defaults)."""

    seed: int = 0
    model: ModelParams = ModelParams()
    epochs: PositiveInt = 3
    batch_size: PositiveInt = 128
    lr: Annotated[float, Field(gt=0, le=1)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 5e-4
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.0
    augment: bool = False
    convergence: ConvergenceParams = ConvergenceParams()  # `epochs` is the cap


class TransferParams(Section):
    """Fine-tuning on the target task; shared by both tracks (each subclasses it for its own defaults)."""

    strategies: Annotated[list[Strategy], Field(min_length=1)] = list(DEFAULT_STRATEGIES)
    seeds: PositiveInt = 3
    last_k: PositiveInt = 1
    # The cap of each run, steps + steps_per_example·n up to max_steps: runs stop earlier when they converge.
    steps: PositiveInt = 500
    steps_per_example: Annotated[float, Field(ge=0)] = 1.0  # extra steps per labelled example
    max_steps: PositiveInt = 1000
    batch_size: PositiveInt = 16
    lr: Annotated[float, Field(gt=0, le=1)] = 3e-3
    head_lr: Annotated[float, Field(gt=0, le=1)] = 1e-2
    body_lr_scale: Annotated[float, Field(gt=0, le=1)] = 0.3  # discriminative: body LR relative to head LR
    layer_decay: Annotated[float, Field(gt=0, le=1)] = 0.5  # discriminative: each earlier block gets this factor
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 1e-4
    augment: bool = True
    # Phases with a frozen body (head, lp_ft's probe) compute the body once per image and train the head on the
    # cached features (transferlab.core.frozen); with augment, each image gets this many augmented views. Head test
    # accuracy vs fresh augmentation every step (default vision data, 1-10 per class, 27 paired runs): 0 views
    # −1.7 ± 0.5 points, 4 −1.0 ± 0.4, 8 −1.1 ± 0.3, 16 −0.8 ± 0.3; at 50 and 300 per class all within ±0.5.
    # 4: as good as more views within the noise, for half the body passes of 8 (benchmarks/frozen_features.py).
    cached_features: bool = True
    feature_views: Annotated[int, Field(ge=0)] = 4
    # lp_ft (Kumar et al. 2022): this share of the run's steps trains the head on the frozen body, the rest
    # fine-tunes everything from that head at `lr`, so the body is not distorted by a random head's gradients.
    lp_ft_probe_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5
    # l2_sp (Li et al. 2018): α·||w_body − w_pretrained||²/2 + β·||w_head||²/2 in place of weight decay.
    l2_sp_alpha: Annotated[float, Field(ge=0)] = 0.1  # the paper's defaults
    l2_sp_beta: Annotated[float, Field(ge=0)] = 0.01
    # surgical (Lee et al. 2023): one body block fine-tuned with the head, one runs-table row per block; the
    # paper finds the best block depends on the shift ("first" for an input-level shift such as printed → hand).
    surgical_blocks: Annotated[list[SurgicalBlock], Field(min_length=1)] = ["first", "middle", "last"]
    # wise_ft (Wortsman et al. 2022): body = (1−α)·pre-trained + α·fine-tuned, one runs-table row per α.
    wise_ft_alphas: Annotated[list[Fraction], Field(min_length=1)] = [0.5]
    # The backbone every strategy runs on (the track's own pre-trained one unless a user names an imported one);
    # every other backbone of the track runs `ablation_strategy` only, paired on the same pools and seeds.
    main_backbone: Annotated[str, Field(min_length=1)] = WHOLE_SOURCE
    ablation_strategy: Strategy = "full"
    convergence: ConvergenceParams = ConvergenceParams()  # steps + steps_per_example·n, up to max_steps, is the cap

    @model_validator(mode="after")
    def _lp_ft_fits(self) -> TransferParams:
        # Checked here so a sweep fails before its first run, not at its first lp_ft run.
        runs_lp_ft = "lp_ft" in self.strategies or getattr(self, "ablation_strategy", None) == "lp_ft"
        if runs_lp_ft and min(self.steps, self.max_steps) < 2 * MIN_PHASE_STEPS:
            raise ValueError(f"lp_ft needs at least {2 * MIN_PHASE_STEPS} steps for its probe and fine-tuning "
                             f"phases; steps is {self.steps} and max_steps {self.max_steps}")
        return self


class RuntimeParams(Section):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: Annotated[int, Field(ge=0)] = 0  # 0: one per core, capped at 8
    workers: Annotated[int, Field(ge=0)] = 0  # fine-tuning processes (1 thread each) on CPU; 0: one per core
    # fp32, or bf16 autocast over fp32 weights; auto: bf16 on CUDA or a CPU with native bf16 (AVX-512 BF16/AMX),
    # else fp32. The default: on an AVX-512 BF16 CPU the default run took 1,062 s against 1,216 s in fp32, with
    # every headline accuracy and FRR inside the other's 95 % CI (measured, docs/results.md).
    precision: Literal["fp32", "bf16", "auto"] = "auto"
    # A Dask scheduler to run sweeps on (tcp://host:8786); none: TRANSFERLAB_DASK_SCHEDULER, else a LocalCluster.
    cluster: Annotated[str, Field(pattern=r"^[a-z]+://\S+$")] | None = None


class EvaluateParams(Section):
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    focus_per_class: PositiveInt = 10  # which pool size the confusion-matrix plot shows


class ReportParams(Section):
    title: str = "transferlab: does pre-training on printed letters help read handwritten digits?"
    min_effect: Annotated[float, Field(ge=0, le=1)] = 0.01  # differences below this count as "no difference"
