"""Fine-tuning sweep: strategy × labelled examples per class × seed, from one or more backbones."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from transferlab.models.artifacts import build_from_card, load_model, make_card, parent, save_model
from transferlab.core.convergence import holdout
from transferlab.data.prepared import Prepared, load_prepared
from transferlab.data.drift import training_statistics
from transferlab.core.engine import predict_logits
from transferlab.experiments.transfer.rules import body_state, fit, wise_mix
from transferlab.system.io import save_tensors
from transferlab.system.context import CPU, Runtime
from transferlab.system.parallel import capacity, distributed, run_jobs
from transferlab.params import TransferParams
from transferlab.system.progress import progress_bar
from transferlab.analysis.sweep import PREDICTIONS_FILE, RUNS_FILE, RunSpec


def _specs(backbone: str, strategy: str, n: int, seed: int, cfg: TransferParams) -> list[RunSpec]:
    if strategy == "surgical":
        return [RunSpec(backbone, strategy, n, seed, block=b) for b in surgical_blocks(cfg)]
    alphas = cfg.wise_ft_alphas if strategy == "wise_ft" else [None]
    return [RunSpec(backbone, strategy, n, seed, a) for a in alphas]


def surgical_blocks(cfg: TransferParams) -> list[str]:
    """surgical's blocks that are not another arm already: with last_k 1 in the sweep, surgical@last trains the very
    block last_k trains (the same run, measured identical), so it runs once, as last_k."""
    if cfg.last_k == 1 and "last_k" in cfg.strategies:
        return [b for b in cfg.surgical_blocks if b != "last"]
    return list(cfg.surgical_blocks)


def plan_runs(cfg: TransferParams, pool_sizes: list[int], backbones: list[str],
              sizes_for: dict[str, list[int]] | None = None) -> list[RunSpec]:
    """All runs of the main backbone; the other backbones only run the ablation strategy, at every pool size or
    at those `sizes_for` gives them (the source-size curve's)."""
    main, *ablations = backbones
    sizes_for = sizes_for or {}
    runs = [r for n in pool_sizes for s in cfg.strategies for seed in range(cfg.seeds)
            for r in _specs(main, s, n, seed, cfg)]
    if ablations and cfg.ablation_strategy != "scratch":
        runs += [r for b in ablations for n in pool_sizes if n in sizes_for.get(b, pool_sizes)
                 for seed in range(cfg.seeds) for r in _specs(b, cfg.ablation_strategy, n, seed, cfg)]
    return runs


def group_runs(specs: list[RunSpec]) -> list[list[RunSpec]]:
    """Runs that share one training, in plan order: wise_ft mixes the weights of the full run of its backbone,
    pool and seed, so its rows join that run (or, when full is not swept, each other: then they train full
    themselves, with the seeds full would have had); every other run trains alone."""
    groups: list[list[RunSpec]] = []
    shared: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        if spec.strategy not in ("full", "wise_ft"):
            groups.append([spec])
            continue
        key = (spec.backbone, spec.per_class, spec.seed)
        if key not in shared:
            shared[key] = []
            groups.append(shared[key])
        shared[key].append(spec)
    return groups


def balanced(rows: np.ndarray, labels: torch.Tensor) -> np.ndarray:
    """Repeat each class's rows up to the largest class's count (a wake-word pool has few positives and
    many negatives); a pool that is already balanced comes back unchanged."""
    by_class = [rows[labels[rows].numpy() == c] for c in np.unique(labels[rows].numpy())]
    most = max(len(r) for r in by_class)
    if all(len(r) == most for r in by_class):
        return rows
    return np.concatenate([np.resize(r, most) for r in by_class])


def steps_for(cfg: TransferParams, examples: int) -> int:
    return int(min(cfg.max_steps, cfg.steps + cfg.steps_per_example * examples))


def target_statistics(target: Prepared, modality: str) -> dict | None:
    """Input statistics of the whole training split of the target, not only of the pool a model was trained on:
    the pool is a random draw from that split, so both have one distribution, and a pool of 1-10 per class is
    too small to estimate the tails of it (a new digit would fall outside a 10-image range one time in six)."""
    train_rows = target.rows("train")
    return training_statistics(target.samples[train_rows], modality,
                               f"{len(train_rows)} target training-split samples (the pools are drawn from them)")


# run_sweep's per-run hook: (model, run_id, classes, save, runtime) → (runs-table columns, tensors to save under
# the run, card entries for a model that is saved); e.g. the wake-word models scored on continuous streams.
RunHook = Callable[..., tuple[dict, dict, dict]]


def run_group(specs: list[RunSpec], backbone_dir: Path, target: Prepared, target_dir: Path, cfg: TransferParams,
              runtime: Runtime, models_dir: Path, evaluate_run: RunHook | None = None) -> list[tuple]:
    """Fine-tune once for these runs (one run, or full and its wise_ft mixes; see group_runs); return each run's
    record, test-set logits and the hook's tensors (seed 0 also saves each model)."""
    spec = specs[0]  # they share backbone, pool and seed
    # Same seed → same data draw and same new-head init across strategies, so comparisons are paired.
    torch.manual_seed(10_000 + spec.seed)
    if spec.strategy == "scratch":
        _, card = load_model(backbone_dir)
        model = build_from_card({**card, "frozen_modules": []})  # same architecture, random weights
    else:
        model, card = load_model(backbone_dir)
    model.reset_classifier(len(target.classes))  # the source head and its weights are gone
    pretrained = body_state(model) if any(s.alpha is not None for s in specs) else None  # wise_ft mixes with it
    rows = target.pool(spec.seed, spec.per_class)
    gen = torch.Generator().manual_seed(20_000 + spec.seed)
    steps = steps_for(cfg, len(rows))
    start = time.perf_counter()
    # The stopping rule's validation rows come out of the pool itself (never the test set), the same rows for
    # every strategy of this pool and seed.
    fit_rows, val_rows = holdout(target.labels, rows, cfg.convergence, 30_000 + spec.seed)
    train_rows = balanced(fit_rows, target.labels)
    recipe, outcome = fit(model, spec.recipe, cfg, target.samples[train_rows], target.labels[train_rows], steps, gen,
                          runtime, val=(target.samples[val_rows], target.labels[val_rows]))
    seconds = time.perf_counter() - start
    results = []
    for s in specs:
        # train_seconds is what each row added: the training goes to the first row (full, or the first wise_ft
        # row when full is not swept), the mixing to each wise_ft row, so a sum per strategy is its cost.
        mix_start = time.perf_counter()
        tuned = model if s.alpha is None else wise_mix(pretrained, model, s.alpha)
        took = (seconds if s is spec else 0.0) + time.perf_counter() - mix_start
        results.append(_finish(s, tuned, card, recipe, rows, outcome.row(), took, backbone_dir, target, target_dir, cfg,
                               runtime, models_dir, evaluate_run))
    return results


def _finish(spec: RunSpec, model: torch.nn.Module, card: dict, recipe, rows: np.ndarray, trained: dict,
            seconds: float, backbone_dir: Path, target: Prepared, target_dir: Path, cfg: TransferParams,
            runtime: Runtime, models_dir: Path, evaluate_run: RunHook | None = None) -> tuple[dict, torch.Tensor, dict]:
    """One run's record, test logits and the hook's tensors; seed 0 also saves its model."""
    test_rows = target.rows("test")
    logits = predict_logits(model, target.samples[test_rows], runtime)
    accuracy = float((logits.argmax(1) == target.labels[test_rows]).float().mean())
    info = {"run_id": spec.run_id, "backbone": spec.backbone, "strategy": spec.label,
            "per_class": spec.per_class, "seed": spec.seed, "train_images": len(rows), **trained,
            "frozen_modules": len(recipe.frozen_modules),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "train_seconds": round(seconds, 3), "test_accuracy": round(accuracy, 5)}
    if spec.alpha is not None:
        info["wise_ft_alpha"] = spec.alpha
    if spec.block is not None:
        info["surgical_block"] = spec.block
    extra_info, tensors, card_extra = ({}, {}, {}) if evaluate_run is None else evaluate_run(
        model, spec.run_id, target.classes, spec.seed == 0, runtime)
    info.update(extra_info)
    if spec.seed == 0:
        save_model(models_dir / spec.model_name, model, make_card(
            architecture=card["architecture"], classes=target.classes, preprocessing=card["preprocessing"],
            frozen_modules=recipe.frozen_modules, params={"finetune": cfg.model_dump(), "run": info},
            parents=[parent(backbone_dir, "backbone"), parent(target_dir, "target")],
            metrics={"test_accuracy": accuracy}, extra={"strategy": spec.label, **card_extra},
            training_stats=target_statistics(target, card["preprocessing"]["modality"]), runtime=runtime))
    return info, logits, tensors


def _run_groups(groups: list[list[RunSpec]], backbones: dict[str, Path], target_dir: Path, cfg: TransferParams,
                runtime: Runtime, models_dir: Path, evaluate_run: RunHook | None = None,
                target: Prepared | None = None) -> list[tuple]:
    """One job: some run groups, on `target` when given (in this process), else loaded here (in a worker)."""
    target = target if target is not None else load_prepared(target_dir)
    return [r for g in groups for r in run_group(g, backbones[g[0].backbone], target, target_dir, cfg, runtime,
                                                 models_dir, evaluate_run)]


def run_sweep(cfg: TransferParams, backbones: dict[str, Path], target_dir: Path, pool_sizes: list[int],
              out_dir: Path, models_dir: Path, runtime: Runtime = CPU,
              sizes_for: dict[str, list[int]] | None = None, evaluate_run: RunHook | None = None,
              evaluate_file: str = "run_extras.safetensors") -> pd.DataFrame:
    """Run every planned fine-tune; write test logits per run, a runs table and the seed-0 models; with
    `evaluate_run`, its columns join the runs table and its tensors go to `evaluate_file`.

    With the runtime's workers > 1 (or a cluster) the runs are spread over processes of one thread each; every run
    is seeded on its own, so the set of runs and their order in the outputs do not depend on the split."""
    specs = plan_runs(cfg, pool_sizes, list(backbones), sizes_for)
    groups = group_runs(specs)
    target = load_prepared(target_dir)
    if not distributed(runtime) or runtime.device != "cpu":
        # Here, one run group a job, on the data already loaded (and on the GPU when there is one).
        jobs = [([g], backbones, target_dir, cfg, runtime, models_dir, evaluate_run, target) for g in groups]
        pool = runtime.with_workers(1)
    else:
        # Interleave so each worker gets a similar mix of cheap and expensive runs; each job loads the data
        # once for its runs, by path (workers may be other machines sharing the file system).
        slots = capacity(runtime) * 4
        chunks = [groups[i::slots] for i in range(slots)]
        jobs = [(c, backbones, target_dir, cfg, runtime, models_dir, evaluate_run) for c in chunks if c]
        pool = runtime
    results: dict[str, tuple[dict, torch.Tensor, dict]] = {}
    with progress_bar() as bar:
        task = bar.add_task("fine-tuning", total=len(specs))

        def done(_: int, runs: list[tuple[dict, torch.Tensor, dict]]) -> None:
            for info, logits, extra in runs:
                results[info["run_id"]] = (info, logits, extra)
                bar.update(task, advance=1, description=f"fine-tuned {info['run_id']}")
        run_jobs(_run_groups, jobs, pool, on_result=done)
    tensors = {"test_labels": target.labels[target.rows("test")].clone()}
    tensors.update({s.run_id: results[s.run_id][1].contiguous() for s in specs})
    out_dir.mkdir(parents=True, exist_ok=True)
    save_tensors(tensors, str(out_dir / PREDICTIONS_FILE))
    if evaluate_run is not None:
        save_tensors({k: v.contiguous() for s in specs for k, v in results[s.run_id][2].items()},
                     str(out_dir / evaluate_file))
    runs = pd.DataFrame([results[s.run_id][0] for s in specs])
    runs.to_csv(out_dir / RUNS_FILE, index=False)
    return runs
