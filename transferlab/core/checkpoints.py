"""Training checkpoints: safetensors for the tensors, JSON for the rest (reading one never runs pickle code),
and the resume logic that loads one into a run only when it fits, else moves it aside."""
from __future__ import annotations

import copy
import datetime as dt
import json
import os
import random
import sys
from pathlib import Path
from typing import Protocol

import numpy as np
import torch


class Stateful(Protocol):
    """Anything a checkpoint keeps; load_state_dict raises on a state that does not fit."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


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


def resume(path: Path, parts: dict[str, Stateful], extras: dict[str, Stateful], config: dict, steps: int) -> int:
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


class ModelState(_Checked):
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


class OptimizerState(_Checked):
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


class SchedulerState(_Checked):
    """The LR schedule's position (OneCycleLR, or the early-stopping run's warm-up); the schedule itself must be
    this run's (a stopper's cuts of the rate are the stopper's state)."""

    def load_state_dict(self, state: dict) -> None:
        own = self.obj.state_dict()
        fixed = [k for k in ("total_steps", "base_lrs", "_schedule_phases") if k in own]
        if set(state) != set(own) or any(state[k] != own[k] for k in fixed):
            raise ValueError("the LR schedule differs")
        self.obj.load_state_dict(state)


class RNGState:
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
