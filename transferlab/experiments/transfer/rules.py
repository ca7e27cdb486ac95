"""How a strategy trains a model on the target. Most are one recipe and one run of the engine; lp_ft is two runs
(probe, then everything), l2_sp adds a pull towards the pre-trained weights to the loss, and wise_ft mixes the
pre-trained and the fine-tuned weights after training (no extra training)."""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from transferlab.core.convergence import Outcome, combined, loss_score, stopper_for
from transferlab.core.engine import TrainConfig, Targets, to_input, train
from transferlab.core.frozen import feature_head, train_head
from transferlab.models import head_module_name, unfreeze_modules
from transferlab.params import TransferParams
from transferlab.params.base import MIN_PHASE_STEPS
from transferlab.core.recipes import Recipe, apply_recipe
from transferlab.system.context import CPU, Runtime

__all__ = ["MIN_PHASE_STEPS", "L2SP", "body_state", "fit", "split_steps", "wise_mix"]


def split_steps(steps: int, probe_fraction: float) -> tuple[int, int]:
    """lp_ft's steps: (linear probe, fine-tuning), each at least MIN_PHASE_STEPS, together `steps`."""
    if steps < 2 * MIN_PHASE_STEPS:
        raise ValueError(f"lp_ft needs at least {2 * MIN_PHASE_STEPS} steps for its two phases, got {steps}")
    probe = min(max(round(probe_fraction * steps), MIN_PHASE_STEPS), steps - MIN_PHASE_STEPS)
    return probe, steps - probe


class L2SP:
    """L2-SP (Li et al. 2018): α/2·||w_body − w0||² + β/2·||w_head||², w0 the body's trainable weights when this
    is made (build it on the pre-trained model, on the device it will train on). It replaces weight decay:
    decay pulls towards zero, which forgets what pre-training learned; this pulls towards the pre-trained point."""

    def __init__(self, model: nn.Module, alpha: float, beta: float):
        head = head_module_name(model) + "."
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.anchored = [(p, p.detach().clone()) for n, p in named if not n.startswith(head)]
        self.head = [p for n, p in named if n.startswith(head)]
        self.alpha, self.beta = alpha, beta

    def __call__(self) -> torch.Tensor:
        pull = sum(((p - p0) ** 2).sum() for p, p0 in self.anchored)
        decay = sum((p ** 2).sum() for p in self.head)
        return torch.as_tensor(self.alpha / 2 * pull + self.beta / 2 * decay)


def body_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the body's weights and BatchNorm statistics (take it before training: the pre-trained ones)."""
    head = head_module_name(model) + "."
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith(head)}


def wise_mix(pretrained_body: dict[str, torch.Tensor], tuned: nn.Module, alpha: float) -> nn.Module:
    """WiSE-FT (Wortsman et al. 2022): a copy of `tuned` whose body is (1−α)·pre-trained + α·fine-tuned.

    The paper mixes the whole network between the zero-shot and the fine-tuned model. Our initial head is
    random (a new task's classes), not zero-shot, so mixing it would only blur the head: the body alone is
    mixed and the fine-tuned head kept. BatchNorm statistics are mixed like weights; α=0 and α=1 are exact."""
    mixed = copy.deepcopy(tuned)
    state = mixed.state_dict()
    for key, w0 in pretrained_body.items():
        w1 = state[key]
        if not w1.is_floating_point():
            continue  # num_batches_tracked: a count, the fine-tuned one stands
        w0 = w0.to(w1)
        state[key] = w0 if alpha == 0 else w1 if alpha == 1 else torch.lerp(w0, w1, alpha)
    mixed.load_state_dict(state)
    return mixed


def fit(model: nn.Module, strategy: str, cfg: TransferParams, samples: torch.Tensor, labels: Targets, steps: int,
        generator: torch.Generator, runtime: Runtime = CPU,
        on_phase: Callable[[str, nn.Module], None] | None = None,
        val: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[Recipe, Outcome]:
    """Train `model` (its new head already in place) by `strategy`, up to `steps` mini-batches in all, each phase
    until it converges on `val` (samples, labels held out of the pool; none or empty: on the training loss);
    return the recipe of the last phase (what stays frozen in the model saved) and how training ended. wise_ft
    trains like full: its mixing is wise_mix, on the result. `on_phase(name, model)` is called as each phase is
    about to train. A phase whose body is frozen (`head`, lp_ft's probe) trains the head on cached features
    unless cfg.cached_features is off."""
    def config(n: int) -> TrainConfig:
        return TrainConfig(steps=n, batch_size=cfg.batch_size, weight_decay=cfg.weight_decay, augment=cfg.augment)

    held_out = val if val is not None and len(val[0]) else None

    def run(name: str, recipe: Recipe, n: int, penalty=None) -> Outcome:
        if on_phase is not None:
            on_phase(name, model)
        # Checked on the model, not read from the strategy: any phase where nothing before the head can change.
        head = feature_head(model) if cfg.cached_features and penalty is None else None
        if head is not None:
            return train_head(model, head, samples, labels, recipe.param_groups, config(n), generator, runtime,
                              cfg.feature_views, rule=cfg.convergence, val=held_out)
        score = None if held_out is None else loss_score(held_out[0], held_out[1], to_input,
                                                         device=runtime.torch_device)
        stopper = stopper_for(cfg.convergence, len(samples), cfg.batch_size, cfg.augment, score)
        return train(model, samples, labels, recipe.param_groups, config(n), generator, runtime, penalty=penalty,
                     stopper=stopper)

    recipe = apply_recipe(model, strategy, cfg)
    if strategy == "lp_ft":
        # Kumar et al. 2022: a head trained on the frozen body first, so fine-tuning starts from a good head and
        # its gradients do not distort the pre-trained features. Phase 2 thaws the body (BatchNorm learns its
        # statistics again) and trains everything from that head, at the body's rate.
        probe, tune = split_steps(steps, cfg.lp_ft_probe_fraction)
        first = run("probe", recipe, probe)
        unfreeze_modules(model, recipe.frozen_modules)
        recipe = apply_recipe(model, "full", cfg)
        second = run("fine-tune", recipe, tune)
        return Recipe(strategy, recipe.frozen_modules, recipe.param_groups), combined(first, second)
    if strategy == "l2_sp":
        model.to(runtime.torch_device)  # the anchor is copied where training will compare against it
        groups = [{**g, "weight_decay": 0.0} for g in recipe.param_groups]  # the penalty replaces weight decay
        recipe = Recipe(strategy, recipe.frozen_modules, groups)
        return recipe, run("train", recipe, steps, L2SP(model, cfg.l2_sp_alpha, cfg.l2_sp_beta))
    return recipe, run("train", recipe, steps)
