"""Fine-tuning sweep: strategy × labelled examples per class × seed, from one or more backbones."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import save_file

from .artifacts import build_from_card, load_model, make_card, parent, save_model
from .data.prepared import Prepared
from .engine import TrainConfig, predict_logits, train
from .params import FinetuneParams
from .progress import progress_bar
from .transfer import apply_recipe

PREDICTIONS_FILE, RUNS_FILE = "predictions.safetensors", "runs.csv"


@dataclass(frozen=True)
class RunSpec:
    backbone: str  # which pre-trained model ("full", "small") — scratch ignores its weights
    strategy: str
    per_class: int
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.backbone}/{self.strategy}/n{self.per_class}/s{self.seed}"


def plan_runs(cfg: FinetuneParams, pool_sizes: list[int], backbones: list[str]) -> list[RunSpec]:
    """All runs of the main backbone; the ablation backbones only run the ablation strategy."""
    main, *ablations = backbones
    runs = [RunSpec(main, s, n, seed) for n in pool_sizes for s in cfg.strategies for seed in range(cfg.seeds)]
    runs += [RunSpec(b, cfg.ablation_strategy, n, seed) for b in ablations for n in pool_sizes
             for seed in range(cfg.seeds) if cfg.ablation_strategy != "scratch"]
    return runs


def steps_for(cfg: FinetuneParams, examples: int) -> int:
    return int(min(cfg.max_steps, cfg.steps + cfg.steps_per_example * examples))


def run_one(spec: RunSpec, backbone_dir: Path, target: Prepared, cfg: FinetuneParams,
            device: torch.device) -> tuple[torch.nn.Module, torch.Tensor, dict]:
    # Same seed → same data draw and same new-head init across strategies, so comparisons are paired.
    torch.manual_seed(10_000 + spec.seed)
    if spec.strategy == "scratch":
        _, card = load_model(backbone_dir)
        model = build_from_card({**card, "frozen_modules": []})  # same architecture, random weights
    else:
        model, card = load_model(backbone_dir)
    model.reset_classifier(len(target.classes))  # the source head and its weights are gone
    recipe = apply_recipe(model, spec.strategy, cfg)
    rows = target.pool(spec.seed, spec.per_class)
    gen = torch.Generator().manual_seed(20_000 + spec.seed)
    steps = steps_for(cfg, len(rows))
    start = time.perf_counter()
    train(model, target.images[rows], target.labels[rows], recipe.param_groups,
          TrainConfig(steps=steps, batch_size=cfg.batch_size, weight_decay=cfg.weight_decay, augment=cfg.augment),
          gen, device)
    seconds = time.perf_counter() - start
    logits = predict_logits(model, target.images[target.rows("test")], device)
    info = {"run_id": spec.run_id, "backbone": spec.backbone, "strategy": spec.strategy,
            "per_class": spec.per_class, "seed": spec.seed, "train_images": len(rows), "steps": steps,
            "frozen_modules": len(recipe.frozen_modules),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "train_seconds": round(seconds, 3)}
    return model, logits, {**info, "_card": card, "_recipe": recipe}


def run_sweep(cfg: FinetuneParams, backbones: dict[str, Path], target: Prepared, target_dir: Path,
              pool_sizes: list[int], out_dir: Path, models_dir: Path, device: torch.device,
              params_snapshot: dict) -> pd.DataFrame:
    """Run every planned fine-tune; write logits of the test set per run, a runs table and seed-0 models."""
    specs = plan_runs(cfg, pool_sizes, list(backbones))
    test_rows = target.rows("test")
    logits: dict[str, torch.Tensor] = {"test_labels": target.labels[test_rows].clone()}
    records = []
    with progress_bar() as bar:
        task = bar.add_task("fine-tuning", total=len(specs))
        for spec in specs:
            bar.update(task, description=f"fine-tune {spec.run_id}")
            model, out, info = run_one(spec, backbones[spec.backbone], target, cfg, device)
            card, recipe = info.pop("_card"), info.pop("_recipe")
            acc = float((out.argmax(1) == logits["test_labels"]).float().mean())
            records.append({**info, "test_accuracy": round(acc, 5)})
            logits[spec.run_id] = out
            if spec.seed == 0:
                card = make_card(architecture=card["architecture"], classes=target.classes,
                                 image_size=card["preprocessing"]["image_size"],
                                 channels=card["preprocessing"]["channels"], frozen_modules=recipe.frozen_modules,
                                 params={"finetune": params_snapshot, "run": info},
                                 parents=[parent(backbones[spec.backbone], "backbone"), parent(target_dir, "target")],
                                 metrics={"test_accuracy": acc}, extra={"strategy": spec.strategy})
                save_model(models_dir / spec.run_id.rsplit("/", 1)[0].replace("/", "-"), model, card)
            bar.advance(task)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in logits.items()}, str(out_dir / PREDICTIONS_FILE))
    runs = pd.DataFrame(records)
    runs.to_csv(out_dir / RUNS_FILE, index=False)
    return runs
