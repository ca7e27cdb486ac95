"""The one training engine: pre-training and fine-tuning are the same loop with different recipes."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import nn

from .augment import augment_batch

# Images are stored as uint8; the network sees (x/255 - MEAN) / STD. Saved in every model card.
PIXEL_MEAN, PIXEL_STD = 0.5, 0.5
PCM_SCALE = 1 / 32768  # audio clips are stored as int16; the network sees floats in [-1, 1)


def to_input(samples: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Stored samples → network input. uint8 images (N,H,W)/(N,C,H,W) → normalised float (N,C,H,W),
    channels-last (faster convs on CPU); int16 clips (N,T) → float waveforms (N,1,T)."""
    x = samples.to(device)
    if x.dtype == torch.int16:
        return (x.float() * PCM_SCALE).unsqueeze(1)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    x = (x.float() / 255.0 - PIXEL_MEAN) / PIXEL_STD
    return x.contiguous(memory_format=torch.channels_last)


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


def cross_entropy(label_smoothing: float = 0.0) -> Objective:
    def objective(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
        loss = F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        return loss, (logits.argmax(1) == labels).float().mean().item()
    return objective


def _take(targets: Targets, idx: torch.Tensor) -> Targets:
    return tuple(t[idx] for t in targets) if isinstance(targets, tuple) else targets[idx]


def epoch_sampler(n: int, batch_size: int, targets: Targets, pad: bool) -> Sampler:
    """Mini-batches by epochs, reshuffled each pass; with `pad`, every batch is full even when n < batch."""
    batch = batch_size if pad else min(batch_size, n)
    per_epoch = max(1, n // batch) if n >= batch else 1
    state = {"order": torch.empty(0, dtype=torch.long)}

    def sample(step: int, generator: torch.Generator) -> tuple[torch.Tensor, Targets]:
        pos = (step % per_epoch) * batch
        if pos == 0 or len(state["order"]) < pos + batch:
            # Enough permutations to fill a batch even when the data set is smaller than a batch.
            reps = math.ceil(batch / n) if n < batch else 1
            state["order"] = torch.cat([torch.randperm(n, generator=generator) for _ in range(reps)])
            pos = 0
        idx = state["order"][pos:pos + batch]
        return idx, _take(targets, idx)
    return sample


def _optimizer(param_groups: list[dict], cfg: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "name"} for g in param_groups],
                            weight_decay=cfg.weight_decay)
    # OneCycleLR divides by (warm-up steps - 1): very short runs need at least two warm-up steps.
    warmup = min(max(cfg.warmup_fraction, 2.5 / cfg.steps), 0.5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in param_groups], total_steps=cfg.steps,
                                                pct_start=warmup)
    return opt, sched


def _save_checkpoint(path: Path, model: nn.Module, opt, sched, step: int, gen: torch.Generator) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "step": step, "generator": gen.get_state(), "torch_rng": torch.get_rng_state()}, tmp)
    tmp.replace(path)  # atomic: a kill mid-write never leaves a torn checkpoint


def train(model: nn.Module, samples: torch.Tensor, labels: Targets, param_groups: list[dict], cfg: TrainConfig,
          generator: torch.Generator, device: torch.device | str = "cpu", checkpoint: Path | None = None,
          on_step: Callable[[StepLog], None] | None = None, every: int = 0, objective: Objective | None = None,
          sampler: Sampler | None = None) -> nn.Module:
    """Train for cfg.steps mini-batches from in-memory data; by default epochs of shuffled batches under
    cross-entropy, or any `objective` over batches drawn by any `sampler` (e.g. few-shot episodes).

    With `checkpoint`, state is saved every cfg.steps_per_checkpoint steps and a run that finds a
    checkpoint resumes from it, bit for bit, as if it had never stopped.
    """
    model.to(device)
    opt, sched = _optimizer(param_groups, cfg)
    objective = objective or cross_entropy(cfg.label_smoothing)
    sampler = sampler or epoch_sampler(len(samples), cfg.batch_size, labels, pad=cfg.augment)
    start = 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])  # dropout draws from the global generator
        start = state["step"]
    running_loss, running_correct, running_seen = 0.0, 0.0, 0
    for step in range(start, cfg.steps):
        idx, targets = sampler(step, generator)
        x = to_input(samples[idx], device)
        if cfg.augment:
            x = augment_batch(x, generator, fill=-PIXEL_MEAN / PIXEL_STD)
        model.train()
        loss, accuracy = objective(model(x), _to(targets, device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running_loss += loss.item() * len(idx)
        running_correct += (math.nan if accuracy is None else accuracy) * len(idx)
        running_seen += len(idx)
        done = step + 1
        if on_step is not None and every and (done % every == 0 or done == cfg.steps):
            on_step(StepLog(done, running_loss / running_seen, running_correct / running_seen))
            running_loss, running_correct, running_seen = 0.0, 0.0, 0
        if checkpoint is not None and cfg.steps_per_checkpoint and (done % cfg.steps_per_checkpoint == 0
                                                                    or done == cfg.steps):
            _save_checkpoint(checkpoint, model, opt, sched, done, generator)
    return model


def _to(targets: Targets, device) -> Targets:
    return tuple(t.to(device) for t in targets) if isinstance(targets, tuple) else targets.to(device)


@torch.no_grad()
def predict_logits(model: nn.Module, samples: torch.Tensor, device: torch.device | str = "cpu",
                   batch_size: int = 500, pre_logits: bool = False) -> torch.Tensor:
    """Outputs over batches in eval mode; with pre_logits, the pooled features the head would see."""
    model.to(device).eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        return model.forward_head(model.forward_features(x), pre_logits=True) if pre_logits else model(x)
    out = [run(to_input(samples[i:i + batch_size], device)).float().cpu() for i in range(0, len(samples), batch_size)]
    return torch.cat(out) if out else torch.empty(0)
