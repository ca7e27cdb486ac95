"""Training to convergence: a validation split carved from an arm's own training rows, early stopping on it with
patience, the learning rate cut on a plateau, and the best weights kept. A run records why it stopped."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from transferlab.params.base import ConvergenceParams as Rule

CONVERGED, CAP = "converged", "cap"
# What runs tables say about how each run trained (finetune, branches, multi-task, distillation, audio, ceiling).
OUTCOME_COLUMNS = ("steps", "epochs", "cap_steps", "stopped", "stop_rule")


@dataclass
class Outcome:
    """How one training ended: steps taken, epochs of its training rows, `cap` or `converged`, and the rule."""

    steps: int
    epochs: float
    cap_steps: int
    stopped: str
    stop_rule: str
    best_step: int = 0
    body_passes: int = 0  # cached-feature training (transferlab.core.frozen): images the frozen body ran on

    def row(self) -> dict:
        return {"steps": self.steps, "epochs": round(self.epochs, 2), "cap_steps": self.cap_steps,
                "stopped": self.stopped, "stop_rule": self.stop_rule}


def holdout(labels: torch.Tensor | np.ndarray, rows: np.ndarray, rule: Rule, seed: int,
            strata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows) of `rows`: `rule.val_fraction` of each class (or stratum), at least one,
    held out, seeded. When some class has fewer than `rule.min_per_class` rows, nothing is held out: the arm stops
    on its training loss instead (`validation rows` empty)."""
    rows = np.asarray(rows)
    keys = np.asarray(strata if strata is not None else (labels[rows] if not isinstance(labels, torch.Tensor)
                                                             else labels[torch.as_tensor(rows)].numpy()))
    if keys.ndim > 1:  # multi-label targets: stratify by the label pattern
        keys = np.array([hash(k.tobytes()) for k in keys])
    groups = [np.flatnonzero(keys == k) for k in np.unique(keys)]
    if rule.val_fraction <= 0 or min(len(g) for g in groups) < rule.min_per_class:
        return rows, rows[:0]
    rng = np.random.default_rng(seed)
    val = np.concatenate([rng.permutation(g)[:max(1, round(rule.val_fraction * len(g)))] for g in groups])
    mask = np.zeros(len(rows), bool)
    mask[val] = True
    return rows[~mask], rows[mask]


Score = Callable[[nn.Module], float]


def loss_score(samples: torch.Tensor, targets, inputs: Callable, objective_loss: Callable | None = None,
               device: torch.device | str = "cpu", batch_size: int = 500) -> Score:
    """Minus the mean validation loss (cross-entropy unless `objective_loss(outputs, targets)`) of a model over
    `samples` fed through `inputs` (the engine's to_input, or cached features): higher is better."""
    loss_of = objective_loss or (lambda out, y: F.cross_entropy(out, y, reduction="sum"))

    @torch.no_grad()
    def score(model: nn.Module) -> float:
        was = model.training
        model.eval()
        total = 0.0
        for i in range(0, len(samples), batch_size):
            y = tuple(t[i:i + batch_size].to(device) for t in targets) if isinstance(targets, tuple) \
                else targets[i:i + batch_size].to(device)
            total += float(loss_of(model(inputs(samples[i:i + batch_size], device)).float(), y))
        model.train(was)
        return -total / max(1, len(samples))
    return score


class Stopper:
    """Early stopping in the engine: every epoch (`per_epoch` steps, at least rule.min_check_steps), `score` (higher is better; None: minus the training loss
    of the steps since the last check) is compared with the best so far. The best weights are kept; after half the
    patience without improvement the learning rate drops; after `patience` checks training stops and the best
    weights are restored. Stateful, so a resumed run stops where the uninterrupted one would have."""

    def __init__(self, rule: Rule, per_epoch: int, score: Score | None, rows: int):
        self.rule, self.score, self.rows, self.per_epoch = rule, score, rows, per_epoch
        self.every = max(per_epoch, rule.min_check_steps)
        self.best, self.wait, self.scale, self.best_step = -math.inf, 0, 1.0, 0
        self.best_state: dict[str, torch.Tensor] = {}
        self.loss_sum, self.loss_n = 0.0, 0

    @property
    def rule_name(self) -> str:
        what = "validation loss" if self.score is not None else "training loss (too few rows to hold out)"
        return f"{what}, patience {self.rule.patience} checks of {self.every} steps"

    def add_loss(self, loss: float) -> None:
        self.loss_sum += loss
        self.loss_n += 1

    def check(self, model: nn.Module, done: int) -> bool:
        """After step `done`: True when training should stop (the best weights are back in `model`)."""
        if done % self.every:
            return False
        value = self.score(model) if self.score is not None else -self.loss_sum / max(1, self.loss_n)
        self.loss_sum, self.loss_n = 0.0, 0
        if self._improves(value):
            self.best, self.wait, self.best_step = value, 0, done
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.wait += 1
        if self.wait == max(1, self.rule.patience // 2):
            self.scale *= self.rule.lr_drop
        if self.wait >= self.rule.patience:
            self.restore(model)
            return True
        return False

    def finish(self, model: nn.Module, done: int) -> None:
        """At the cap: the last weights when they beat the best checked ones, else the best ones back."""
        if done % self.every or not self.best_state:  # steps since the last check: score them too
            value = self.score(model) if self.score is not None else -self.loss_sum / max(1, self.loss_n)
            if self._improves(value):
                self.best_step = done
                return
        self.restore(model)

    def _improves(self, value: float) -> bool:
        # Scores are minus a loss: better by more than min_delta of the best loss's size.
        return value > self.best + self.rule.min_delta * abs(self.best) if math.isfinite(self.best) else True

    def restore(self, model: nn.Module) -> None:
        if self.best_state:
            model.load_state_dict(self.best_state)

    def outcome(self, steps: int, cap: int, converged: bool, batch_size: int) -> Outcome:
        return Outcome(steps, steps / self.per_epoch, cap, CONVERGED if converged else CAP,
                       self.rule_name, self.best_step)

    def state_dict(self) -> dict:
        return {"best": self.best if math.isfinite(self.best) else None, "wait": self.wait, "scale": self.scale,
                "best_step": self.best_step, "best_state": dict(self.best_state),
                "loss": [self.loss_sum, self.loss_n]}

    def load_state_dict(self, state: dict) -> None:
        self.best = -math.inf if state["best"] is None else float(state["best"])
        self.wait, self.scale, self.best_step = int(state["wait"]), float(state["scale"]), int(state["best_step"])
        self.best_state = dict(state["best_state"])
        self.loss_sum, self.loss_n = float(state["loss"][0]), int(state["loss"][1])


def steps_per_epoch(n: int, batch_size: int, pad: bool) -> int:
    """Mini-batches in one pass of the engine's epoch sampler (the last partial batch is dropped)."""
    return max(1, n // (batch_size if pad else min(batch_size, n)))


def stopper_for(rule: Rule, rows: int, batch_size: int, pad: bool, score: Score | None) -> Stopper:
    """A stopper checking once an epoch of `rows` training rows (the engine's sampler, padded when augmenting)."""
    return Stopper(rule, steps_per_epoch(rows, batch_size, pad), score, rows)


def combined(*parts: Outcome) -> Outcome:
    """Trainings that make one arm (lp_ft's two phases, one network per task): it reached its cap when any part
    reached its own."""
    return Outcome(sum(p.steps for p in parts), sum(p.epochs for p in parts), sum(p.cap_steps for p in parts),
                   CAP if any(p.stopped == CAP for p in parts) else CONVERGED, parts[0].stop_rule,
                   sum(p.steps for p in parts[:-1]) + parts[-1].best_step)


def fixed_outcome(steps: int, rows: int, batch_size: int) -> Outcome:
    """A run trained for a fixed number of steps: it stopped at its cap by construction."""
    return Outcome(steps, steps * batch_size / max(1, rows), steps, CAP, "fixed steps")
