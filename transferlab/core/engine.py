"""The one training engine: pre-training and fine-tuning are the same loop with different recipes."""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Union

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.core.augment import augment_batch
from transferlab.core.checkpoints import (
    ModelState,
    OptimizerState,
    RNGState,
    SchedulerState,
    Stateful,
    resume,
    save_checkpoint,
)
from transferlab.core.checkpoints import CHECKPOINT_FORMAT, load_checkpoint
from transferlab.core.convergence import Outcome, Stopper, fixed_outcome, steps_per_epoch
from transferlab.system.context import CPU, Runtime
from transferlab.models.preprocessing import PCM_SCALE, PIXEL_MEAN, PIXEL_STD

DEVICE_DATA_BYTES = 4 * 2**30  # stored samples up to this size are moved to a GPU once per training


def to_input(samples: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Stored samples → network input. uint8 images (N,H,W)/(N,C,H,W) → normalised float (N,C,H,W),
    channels-last (the layout of most CPU runs; conv_layout / in_layout say which); int16 clips (N,T) → float waveforms (N,1,T). To a GPU, batches go
    through pinned memory, so the copy does not wait on pageable memory."""
    if torch.device(device).type == "cuda" and samples.device.type == "cpu":
        x = samples.pin_memory().to(device, non_blocking=True)
    else:
        x = samples.to(device)
    if x.dtype == torch.int16:
        return (x.float() * PCM_SCALE).unsqueeze(1)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    x = (x.float() / 255.0 - PIXEL_MEAN) / PIXEL_STD
    return x.contiguous(memory_format=torch.channels_last)


def augment_input(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The engine's augmentation of network input; images are filled with the scaled 0 pixel (background)."""
    return augment_batch(x, generator, fill=-PIXEL_MEAN / PIXEL_STD)


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    augment: bool = False
    steps_per_checkpoint: int = 0  # 0: never checkpoint
    warmup_fraction: float = 0.1


@dataclass
class StepLog:
    step: int
    loss: float
    accuracy: float  # NaN when the objective has no notion of accuracy


Targets = Union[torch.Tensor, tuple[torch.Tensor, ...]]
# (outputs, targets) → (loss, fraction correct or None). Cross-entropy is the default; multi-task,
# distillation and prototypical objectives plug in here, so every kind of training uses this one loop.
Objective = Callable[[torch.Tensor, Targets], tuple[torch.Tensor, Union[float, None]]]
# (step, generator) → row indices of one mini-batch, and the targets the objective sees for it.
Sampler = Callable[[int, torch.Generator], tuple[torch.Tensor, Targets]]
# () → a scalar added to the loss; a function of the current weights only (it holds what it compares them to).
Penalty = Callable[[], torch.Tensor]
# (stored rows of one mini-batch, device) → what the model takes: to_input for images and clips; cached
# features (transferlab.core.frozen) are already network values and only move to the device.
Inputs = Callable[[torch.Tensor, Union[torch.device, str]], torch.Tensor]


# oneDNN's channels-last convolutions win from about 8 channels up and lose below (ms per training step, 1 thread,
# batch 64, benchmarks/precision.py's method): widths 4-8-16 11.1 vs 7.3 contiguous, 2-4-8 12.1 vs 6.6, 8-16-32
# 8.1 vs 10.9; the default ConvNet 16-32-128 at batch 16: 16.0 vs 21.9.
CHANNELS_LAST_MIN_WIDTH = 8


@contextlib.contextmanager
def conv_layout(model: nn.Module, device: torch.device | str) -> Iterator[torch.memory_format]:
    """The memory layout a CPU run of `model` uses, yielded for its 4-D inputs (`in_layout`): channels-last weights
    while training or predicting when every convolution has at least CHANNELS_LAST_MIN_WIDTH output channels (~1.3x
    faster on the default ConvNet), contiguous otherwise and on a GPU (not measured there). Weights are contiguous
    again afterwards: saved weights and cards never see the layout."""
    convs = [p for p in model.parameters() if p.ndim == 4]
    # Nested (a validation pass inside training) changes nothing: the outer one restores the layout at its end.
    # Keyed by the weights, so a wrapper (PixelPermuted) and the network it wraps count as one.
    if convs and id(convs[0]) in _IN_LAYOUT:
        yield torch.channels_last
        return
    wide = bool(convs) and min(p.shape[0] for p in convs) >= CHANNELS_LAST_MIN_WIDTH
    if torch.device(device).type != "cpu" or not wide:
        yield torch.contiguous_format
        return
    model.to(memory_format=torch.channels_last)
    _IN_LAYOUT.update(id(p) for p in convs)  # alive while here, so the ids are theirs
    try:
        yield torch.channels_last
    finally:
        _IN_LAYOUT.difference_update(id(p) for p in convs)
        model.to(memory_format=torch.contiguous_format)


_IN_LAYOUT: set[int] = set()  # conv weights now channels-last


def in_layout(x: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
    """A 4-D input in the layout conv_layout chose (a no-op when it already is; other inputs as they are)."""
    return x.contiguous(memory_format=layout) if x.ndim == 4 else x


def cross_entropy(label_smoothing: float = 0.0) -> Objective:
    def objective(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
        loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        return loss, (logits.argmax(1) == labels).float().mean().item()
    return objective


def _take(targets: Targets, idx: torch.Tensor) -> Targets:
    return tuple(t[idx] for t in targets) if isinstance(targets, tuple) else targets[idx]


class EpochSampler:
    """Mini-batches by epochs, reshuffled each pass; with `pad`, every batch is full even when n < batch.

    The current pass's order is state: checkpoints keep it, so a run resumed inside an epoch draws the
    batches the uninterrupted run would have drawn."""

    def __init__(self, n: int, batch_size: int, targets: Targets, pad: bool):
        self.n, self.targets = n, targets
        self.batch = batch_size if pad else min(batch_size, n)
        self.per_epoch = steps_per_epoch(n, batch_size, pad)
        self.order = torch.empty(0, dtype=torch.long)

    def __call__(self, step: int, generator: torch.Generator) -> tuple[torch.Tensor, Targets]:
        pos = (step % self.per_epoch) * self.batch
        if pos == 0 or len(self.order) < pos + self.batch:
            # Enough permutations to fill a batch even when the data set is smaller than a batch.
            reps = math.ceil(self.batch / self.n) if self.n < self.batch else 1
            self.order = torch.cat([torch.randperm(self.n, generator=generator) for _ in range(reps)])
            pos = 0
        idx = self.order[pos:pos + self.batch]
        return idx, _take(self.targets, idx)

    def state_dict(self) -> dict:
        return {"order": self.order.clone()}

    def load_state_dict(self, state: dict) -> None:
        order = state["order"]
        if not (isinstance(order, torch.Tensor) and order.dtype == torch.long and order.ndim == 1
                and len(order) % self.n == 0 and (not len(order) or (order.min() >= 0 and order.max() < self.n))):
            raise ValueError(f"the sampler's order is no permutation of {self.n} rows")
        self.order = order.clone()


def _optimizer(param_groups: list[dict], cfg: TrainConfig, stopper: Stopper | None = None,
               ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "name"} for g in param_groups],
                            weight_decay=cfg.weight_decay)
    if stopper is not None:
        # Early stopping cannot anneal towards an end it does not know: a linear warm-up over the first check
        # interval (or 10 % of the cap), then the full rate, cut by the stopper on a plateau.
        warm = max(1, min(stopper.every, cfg.steps // 10))
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm) * stopper.scale)
    if cfg.steps < 3:
        # OneCycleLR needs two warm-up steps and one to anneal (with 2 it divides by zero): a constant rate.
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    # OneCycleLR divides by (warm-up steps - 1): very short runs need at least two warm-up steps.
    warmup = min(max(cfg.warmup_fraction, 2.5 / cfg.steps), 0.5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in param_groups], total_steps=cfg.steps,
                                                pct_start=warmup)
    return opt, sched


def train(model: nn.Module, samples: torch.Tensor, labels: Targets, param_groups: list[dict], cfg: TrainConfig,
          generator: torch.Generator, runtime: Runtime = CPU, checkpoint: Path | None = None,
          on_step: Callable[[StepLog], None] | None = None, every: int = 0, objective: Objective | None = None,
          sampler: Sampler | None = None, resumable: dict[str, Stateful] | None = None,
          penalty: Penalty | None = None, inputs: Inputs | None = None,
          stopper: Stopper | None = None) -> Outcome:
    """Train for cfg.steps mini-batches from in-memory data; by default epochs of shuffled batches under
    cross-entropy, or any `objective` over batches drawn by any `sampler` (e.g. few-shot episodes); a
    `penalty` (e.g. L2-SP's pull towards the pre-trained weights) is added to every step's loss. `inputs` turns
    a batch of `samples` rows into model input (default `to_input`; cached features: transferlab.core.frozen).

    With `checkpoint`, state is saved every cfg.steps_per_checkpoint steps and a run that finds a
    checkpoint resumes from it, bit for bit, as if it had never stopped: weights, BatchNorm statistics,
    optimizer, LR schedule, `generator`, the global RNGs (dropout), the sampler's state (a sampler with
    hidden state must be Stateful) and the caller's `resumable` objects (e.g. its logger). A checkpoint that
    cannot be read or does not fit is moved aside, said so on stderr, and training starts from scratch.

    With a `stopper` (transferlab.core.convergence), cfg.steps is only the cap: training stops when the stopper's score
    has not improved for its patience, with the best weights kept. Returns how it ended (steps, epochs, why).
    `runtime` is the device and precision to train in (transferlab.system.context).
    """
    device = runtime.torch_device
    model.to(device)
    with conv_layout(model, device) as layout:
        if inputs is None and torch.device(device).type == "cuda" and samples.nbytes <= DEVICE_DATA_BYTES:
            # Small data sets live on the GPU for the whole run: each step gathers its batch there instead of pinning
            # and copying it. On an H200 a default convnet step takes ~5 ms, so per-step host work shows (the engine
            # ran at 0.91x a bare loop there before this).
            samples = samples.to(device)
        inputs = inputs or to_input
        opt, sched = _optimizer(param_groups, cfg, stopper)
        objective = objective or cross_entropy(cfg.label_smoothing)
        sampler = sampler or EpochSampler(len(samples), cfg.batch_size, labels, pad=cfg.augment)
        running = _Running()
        parts: dict[str, Stateful] = {"model": ModelState(model), "optimizer": OptimizerState(opt),
                                      "scheduler": SchedulerState(sched), "running": running,
                                      "rng": RNGState(generator, torch.device(device).type == "cuda")}
        if hasattr(sampler, "state_dict"):
            parts["sampler"] = sampler  # type: ignore[assignment]
        if stopper is not None:
            parts["stopper"] = stopper
        # What the saved steps depend on (the checkpoint interval does not change them).
        config = {**{k: v for k, v in asdict(cfg).items() if k != "steps_per_checkpoint"}, "rows": len(samples),
                  "lrs": [g["lr"] for g in param_groups],
                  "stopping": None if stopper is None else [stopper.every, *stopper.rule.model_dump().values()]}
        start = 0 if checkpoint is None else resume(Path(checkpoint), parts, resumable or {}, config, cfg.steps)
        if start:
            _match_layout(opt)
        # A checkpoint written as the run converged resumes to its end: the best weights are already back.
        converged, done = stopper is not None and start > 0 and stopper.wait >= stopper.rule.patience, start
        for step in range(start, start if converged else cfg.steps):
            idx, targets = sampler(step, generator)
            x = inputs(samples[idx.to(samples.device) if isinstance(idx, torch.Tensor) else idx], device)
            if cfg.augment:
                x = augment_input(x, generator)
            x = in_layout(x, layout)
            model.train()
            with runtime.autocast():  # bf16 matmuls and convolutions when the runtime says so; weights stay fp32
                loss, accuracy = objective(model(x), _to(targets, device))
                if penalty is not None:
                    loss = loss + penalty()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running.add(loss.item(), math.nan if accuracy is None else accuracy, len(idx))
            done = step + 1
            if stopper is not None:
                stopper.add_loss(loss.item())
                converged = stopper.check(model, done)
            last = converged or done == cfg.steps
            if on_step is not None and every and (done % every == 0 or last):
                on_step(running.take(done))
            if checkpoint is not None and cfg.steps_per_checkpoint and (done % cfg.steps_per_checkpoint == 0
                                                                        or last):
                state = {name: part.state_dict() for name, part in parts.items()}
                state["extra"] = {name: part.state_dict() for name, part in (resumable or {}).items()}
                save_checkpoint(Path(checkpoint), {"config": config, "step": done, **state})
            if converged:
                break
        if stopper is None:
            return fixed_outcome(cfg.steps, len(samples), cfg.batch_size)
        if not converged:
            stopper.finish(model, done)
        return stopper.outcome(done, cfg.steps, converged, cfg.batch_size)


def _match_layout(opt: torch.optim.Optimizer) -> None:
    """Optimizer state read from a checkpoint takes its parameter's memory layout, as state created in this run
    does: an element-wise update over mixed layouts takes another kernel, and resuming would not be bit for bit."""
    for group in opt.param_groups:
        for p in group["params"]:
            layout = torch.channels_last if p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last) \
                else torch.contiguous_format
            state = opt.state.get(p, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == p.shape:
                    state[key] = value.contiguous(memory_format=layout)


def _to(targets: Targets, device) -> Targets:
    return tuple(t.to(device) for t in targets) if isinstance(targets, tuple) else targets.to(device)


@torch.no_grad()
def predict_logits(model: nn.Module, samples: torch.Tensor, runtime: Runtime = CPU,
                   batch_size: int = 500, pre_logits: bool = False) -> torch.Tensor:
    """Outputs over batches in eval mode, on the runtime's device and precision; with pre_logits, the pooled
    features the head would see."""
    device = runtime.torch_device
    model.to(device).eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        return model.forward_head(model.forward_features(x), pre_logits=True) if pre_logits else model(x)
    with runtime.autocast(), conv_layout(model, device) as layout:
        out = [run(in_layout(to_input(samples[i:i + batch_size], device), layout)).float().cpu()
               for i in range(0, len(samples), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


class _Running:
    """Loss and accuracy summed since the last on_step report."""

    def __init__(self):
        self.loss, self.correct, self.seen = 0.0, 0.0, 0

    def add(self, loss: float, accuracy: float, n: int) -> None:
        self.loss += loss * n
        self.correct += accuracy * n
        self.seen += n

    def take(self, step: int) -> StepLog:
        log = StepLog(step, self.loss / self.seen, self.correct / self.seen)
        self.loss, self.correct, self.seen = 0.0, 0.0, 0
        return log

    def state_dict(self) -> dict:
        return {"sums": [self.loss, self.correct, self.seen]}

    def load_state_dict(self, state: dict) -> None:
        if [type(v) for v in state["sums"]] != [float, float, int]:
            raise ValueError("running sums are not numbers")
        self.loss, self.correct, self.seen = state["sums"]
