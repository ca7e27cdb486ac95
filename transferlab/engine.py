"""The one training engine: pre-training and fine-tuning are the same loop with different recipes."""
from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol, Union

import numpy as np
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


def steps_per_epoch(n: int, batch_size: int, pad: bool) -> int:
    """Mini-batches in one pass of the epoch sampler (the last partial batch is dropped)."""
    return max(1, n // (batch_size if pad else min(batch_size, n)))


class Stateful(Protocol):
    """Anything a checkpoint keeps; load_state_dict raises on a state that does not fit."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


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


def _optimizer(param_groups: list[dict], cfg: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "name"} for g in param_groups],
                            weight_decay=cfg.weight_decay)
    # OneCycleLR divides by (warm-up steps - 1): very short runs need at least two warm-up steps.
    warmup = min(max(cfg.warmup_fraction, 2.5 / cfg.steps), 0.5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in param_groups], total_steps=cfg.steps,
                                                pct_start=warmup)
    return opt, sched


def train(model: nn.Module, samples: torch.Tensor, labels: Targets, param_groups: list[dict], cfg: TrainConfig,
          generator: torch.Generator, device: torch.device | str = "cpu", checkpoint: Path | None = None,
          on_step: Callable[[StepLog], None] | None = None, every: int = 0, objective: Objective | None = None,
          sampler: Sampler | None = None, resumable: dict[str, Stateful] | None = None) -> nn.Module:
    """Train for cfg.steps mini-batches from in-memory data; by default epochs of shuffled batches under
    cross-entropy, or any `objective` over batches drawn by any `sampler` (e.g. few-shot episodes).

    With `checkpoint`, state is saved every cfg.steps_per_checkpoint steps and a run that finds a
    checkpoint resumes from it, bit for bit, as if it had never stopped: weights, BatchNorm statistics,
    optimizer, LR schedule, `generator`, the global RNGs (dropout), the sampler's state (a sampler with
    hidden state must be Stateful) and the caller's `resumable` objects (e.g. its logger). A checkpoint that
    cannot be read or does not fit is moved aside, said so on stderr, and training starts from scratch.
    """
    model.to(device)
    opt, sched = _optimizer(param_groups, cfg)
    objective = objective or cross_entropy(cfg.label_smoothing)
    sampler = sampler or EpochSampler(len(samples), cfg.batch_size, labels, pad=cfg.augment)
    running = _Running()
    parts: dict[str, Stateful] = {"model": _ModelState(model), "optimizer": _OptimizerState(opt),
                                  "scheduler": _SchedulerState(sched), "running": running,
                                  "rng": _RNG(generator, torch.device(device).type == "cuda")}
    if hasattr(sampler, "state_dict"):
        parts["sampler"] = sampler  # type: ignore[assignment]
    # What the saved steps depend on (the checkpoint interval does not change them).
    config = {**{k: v for k, v in asdict(cfg).items() if k != "steps_per_checkpoint"}, "rows": len(samples),
              "lrs": [g["lr"] for g in param_groups]}
    start = 0 if checkpoint is None else _resume(Path(checkpoint), parts, resumable or {}, config, cfg.steps)
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
        running.add(loss.item(), math.nan if accuracy is None else accuracy, len(idx))
        done = step + 1
        if on_step is not None and every and (done % every == 0 or done == cfg.steps):
            on_step(running.take(done))
        if checkpoint is not None and cfg.steps_per_checkpoint and (done % cfg.steps_per_checkpoint == 0
                                                                    or done == cfg.steps):
            state = {name: part.state_dict() for name, part in parts.items()}
            state["extra"] = {name: part.state_dict() for name, part in (resumable or {}).items()}
            save_checkpoint(Path(checkpoint), {"config": config, "step": done, **state})
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


# --- Checkpoints: safetensors for the tensors, JSON for the rest (reading one never runs pickle code) ---

CHECKPOINT_FORMAT = "transferlab-checkpoint/1"


def save_checkpoint(path: Path, state: dict) -> None:
    """Write nested state (dicts, lists, tuples, numbers, strings, tensors) atomically."""
    tensors: dict[str, torch.Tensor] = {}
    meta = json.dumps({"format": CHECKPOINT_FORMAT, "state": _pack(state, tensors, "")})
    from safetensors.torch import save

    blob = save(tensors, metadata={"transferlab": meta})
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)  # atomic: a kill mid-write never leaves a torn checkpoint


def load_checkpoint(path: Path) -> dict:
    """The state save_checkpoint wrote; raises on any other file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = json.loads((f.metadata() or {})["transferlab"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    return _unpack(meta["state"], tensors)


def _pack(obj, tensors: dict, key: str):
    # Tagged JSON: tuples stay tuples and int keys stay ints (the optimizer's state is keyed by int).
    if isinstance(obj, torch.Tensor):
        if key in tensors:
            raise ValueError(f"two tensors named {key!r}")
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()  # own memory: safetensors refuses shared
        return {"__tensor__": key}
    sub = lambda k: f"{key}/{k}" if key else str(k)  # noqa: E731
    if isinstance(obj, dict):
        if not all(type(k) in (str, int) for k in obj):
            raise TypeError(f"{key!r}: only str and int keys can be checkpointed")
        return {"__dict__": [[k, _pack(v, tensors, sub(k))] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_pack(v, tensors, sub(i)) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    raise TypeError(f"{key!r}: a {type(obj).__name__} cannot be checkpointed")


def _unpack(obj, tensors: dict):
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    if isinstance(obj, dict):
        [(tag, value)] = obj.items()
        if tag == "__tensor__":
            return tensors[value]
        if tag == "__tuple__":
            return tuple(_unpack(v, tensors) for v in value)
        if tag == "__dict__":
            return {k: _unpack(v, tensors) for k, v in value}
        raise ValueError(f"unknown entry {tag!r}")
    return obj


def _resume(path: Path, parts: dict[str, Stateful], extras: dict[str, Stateful], config: dict, steps: int) -> int:
    """Load the checkpoint at `path` into `parts` and `extras`; the step to go on from (0 without one).

    A checkpoint that cannot be read or does not fit these parts is moved aside, with everything put
    back as it was: the run then starts from scratch, exactly as a fresh run."""
    if not path.exists():
        return 0
    before = {name: copy.deepcopy(part.state_dict()) for name, part in parts.items()}
    try:
        state = load_checkpoint(path)
        saved = state["config"]
        if saved != config:
            raise ValueError("made with other training settings: " + ", ".join(
                f"{k} {saved.get(k)!r} (here {config.get(k)!r})" for k in sorted({*saved, *config})
                if saved.get(k) != config.get(k)))
        step = state["step"]
        if type(step) is not int or not 0 <= step <= steps or state["scheduler"].get("last_epoch") != step:
            raise ValueError(f"step {step!r} is not one of {steps} steps or disagrees with the LR schedule")
        for name, part in parts.items():
            part.load_state_dict(state[name])
        for name, part in extras.items():  # loaded last: nothing to undo after them
            part.load_state_dict(state["extra"][name])
    except Exception as err:  # noqa: BLE001 -- whatever is wrong with the file, it must not stop training
        for name, part in parts.items():
            part.load_state_dict(before[name])
        aside = _move_aside(path)
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        print(f"warning: checkpoint {path} is unreadable or does not fit this run ({type(err).__name__}: {reason}); "
              f"moved it to {aside}; training from scratch", file=sys.stderr, flush=True)
        return 0
    print(f"resuming from checkpoint {path} at step {step} of {steps}", file=sys.stderr, flush=True)
    return step


def _move_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.unreadable-{dt.datetime.now():%Y%m%d-%H%M%S-%f}")
    path.replace(aside)
    return aside


class _Checked:
    """A torch object's state, checked against the object before it is loaded."""

    def __init__(self, obj):
        self.obj = obj

    def state_dict(self) -> dict:
        return self.obj.state_dict()


class _ModelState(_Checked):
    """Weights and buffers (BatchNorm statistics). load_state_dict itself would copy the tensors that fit
    before it complains about those that do not."""

    def load_state_dict(self, state: dict) -> None:
        own = self.obj.state_dict()
        fits = {k: isinstance(v := state.get(k), torch.Tensor) and (v.shape, v.dtype) == (t.shape, t.dtype)
                for k, t in own.items()}
        bad = sorted(set(state) - set(own)) + [k for k, ok in fits.items() if not ok]
        if bad:
            shown = ", ".join(f"{k} {tuple(getattr(state[k], 'shape', ())) if k in state else '(missing)'}"
                              + (f" for {tuple(own[k].shape)}" if k in own else " (unknown)") for k in bad[:3])
            raise ValueError(f"{len(bad)} model tensors do not fit the network: {shown}")
        self.obj.load_state_dict(state)


class _OptimizerState(_Checked):
    """AdamW's moments, checked against the parameters' shapes (load_state_dict does not)."""

    def load_state_dict(self, state: dict) -> None:
        params = [p for g in self.obj.param_groups for p in g["params"]]
        ids = [i for g in state["param_groups"] for i in g["params"]]
        if len(ids) != len(params) or len(state["param_groups"]) != len(self.obj.param_groups):
            raise ValueError("the optimizer's parameter groups differ")
        shapes = dict(zip(ids, (p.shape for p in params)))
        for i, moments in state["state"].items():
            for name, value in moments.items():
                if not isinstance(value, torch.Tensor) or (value.ndim and value.shape != shapes[i]):
                    raise ValueError(f"optimizer {name} of parameter {i} does not fit it")
        self.obj.load_state_dict(state)


class _SchedulerState(_Checked):
    """OneCycleLR's position; the schedule itself must be this run's."""

    def load_state_dict(self, state: dict) -> None:
        own = self.obj.state_dict()
        if set(state) != set(own) or any(state[k] != own[k] for k in ("total_steps", "base_lrs", "_schedule_phases")):
            raise ValueError("the LR schedule differs")
        self.obj.load_state_dict(state)


class _RNG:
    """`generator` (batches, augmentation) and the process-wide generators: torch's (dropout; CUDA's on a
    GPU), numpy's and Python's (for custom samplers and objectives)."""

    def __init__(self, generator: torch.Generator, cuda: bool):
        self.generator, self.cuda = generator, cuda

    def state_dict(self) -> dict:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        state = {"generator": self.generator.get_state(), "torch": torch.get_rng_state(), "python": random.getstate(),
                 "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]}
        return {**state, "cuda": torch.cuda.get_rng_state_all()} if self.cuda else state

    def load_state_dict(self, state: dict) -> None:
        if self.cuda != ("cuda" in state):
            raise ValueError("made on another kind of device")
        name, keys, pos, has_gauss, cached = state["numpy"]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch"])
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        random.setstate(state["python"])
        if self.cuda:
            torch.cuda.set_rng_state_all(state["cuda"])


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
