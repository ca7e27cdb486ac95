"""The one training engine: pre-training and fine-tuning are the same loop with different recipes."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
    accuracy: float


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


def train(model: nn.Module, samples: torch.Tensor, labels: torch.Tensor, param_groups: list[dict], cfg: TrainConfig,
          generator: torch.Generator, device: torch.device | str = "cpu", checkpoint: Path | None = None,
          on_step: Callable[[StepLog], None] | None = None, every: int = 0) -> nn.Module:
    """Train for cfg.steps mini-batches sampled by epochs (reshuffled each pass) from in-memory data.

    With `checkpoint`, state is saved every cfg.steps_per_checkpoint steps and a run that finds a
    checkpoint resumes from it, bit for bit, as if it had never stopped.
    """
    model.to(device)
    opt, sched = _optimizer(param_groups, cfg)
    start = 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])  # dropout draws from the global generator
        start = state["step"]
    n = len(labels)
    batch = min(cfg.batch_size, n) if not cfg.augment else cfg.batch_size
    per_epoch = max(1, n // batch) if n >= batch else 1
    order = torch.empty(0, dtype=torch.long)
    labels = labels.to(device)
    running_loss, running_correct, running_seen = 0.0, 0, 0
    for step in range(start, cfg.steps):
        pos = (step % per_epoch) * batch
        if pos == 0 or len(order) < pos + batch:
            # Enough permutations to fill a batch even when the data set is smaller than a batch.
            reps = math.ceil(batch / n) if n < batch else 1
            order = torch.cat([torch.randperm(n, generator=generator) for _ in range(reps)])
            pos = 0
        idx = order[pos:pos + batch]
        x = to_input(samples[idx], device)
        if cfg.augment:
            x = augment_batch(x, generator, fill=-PIXEL_MEAN / PIXEL_STD)
        model.train()
        logits = model(x)
        loss = F.cross_entropy(logits, labels[idx.to(device)], label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running_loss += loss.item() * len(idx)
        running_correct += (logits.argmax(1) == labels[idx.to(device)]).sum().item()
        running_seen += len(idx)
        done = step + 1
        if on_step is not None and every and (done % every == 0 or done == cfg.steps):
            on_step(StepLog(done, running_loss / running_seen, running_correct / running_seen))
            running_loss, running_correct, running_seen = 0.0, 0, 0
        if checkpoint is not None and cfg.steps_per_checkpoint and (done % cfg.steps_per_checkpoint == 0
                                                                    or done == cfg.steps):
            _save_checkpoint(checkpoint, model, opt, sched, done, generator)
    return model


@torch.no_grad()
def predict_logits(model: nn.Module, samples: torch.Tensor, device: torch.device | str = "cpu",
                   batch_size: int = 500) -> torch.Tensor:
    model.to(device).eval()
    out = [model(to_input(samples[i:i + batch_size], device)).float().cpu() for i in range(0, len(samples), batch_size)]
    return torch.cat(out) if out else torch.empty(0)
