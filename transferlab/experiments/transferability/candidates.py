"""Score candidate backbones on the target pools before any fine-tuning: frozen features once per image
(transferlab.core.frozen), then LogME, LEEP, NCE and H-score (transferlab.experiments.transferability.scores) at every pool size and
draw, for every backbone, a random-init network of the main architecture and, for the main backbone, the output
of each body block (layer cuts)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from transferlab.models.artifacts import build_from_card, load_model
from transferlab.data.prepared import Prepared
from transferlab.core.frozen import extract_features
from transferlab.models import body_groups, owning_modules
from transferlab.params.transferability import TransferabilityParams
from transferlab.experiments.transferability.scores import h_score, leep, logme, nce
from transferlab.system.context import CPU, Runtime

RANDOM = "random"  # the candidate with no pre-training: the main backbone's architecture, random weights
BODY = "body"  # the cut of the pooled pre-logits features (what fine-tuning puts its new head on)
NO_HEAD_CUT = "no source head after an intermediate block: LEEP and NCE need one"
RANDOM_HEAD = "random init: LEEP and NCE read its untrained head (a source task never learned)"


@dataclass
class Candidate:
    name: str
    model: nn.Module
    source_classes: int  # outputs of the head it came with (0: none that LEEP or NCE could read)
    note: str = ""


def load_candidate(name: str, path: Path) -> Candidate:
    model, card = load_model(path)
    return Candidate(name, model, len(card["classes"]))


def random_candidate(main: Path, seed: int) -> Candidate:
    """The main backbone's architecture (from its card) with random weights: what pre-training adds is measured
    against it; its head is as random as its body."""
    _, card = load_model(main)
    torch.manual_seed(seed)
    model = build_from_card({**card, "frozen_modules": []}).eval()
    return Candidate(RANDOM, model, len(card["classes"]), RANDOM_HEAD)


def _pooled(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) feature maps → (N, C) by the spatial mean; (N, L, D) tokens → (N, D) by the token mean."""
    if x.ndim == 4:
        return x.mean(dim=(2, 3))
    return x.mean(dim=1) if x.ndim == 3 else x


def cut_points(model: nn.Module) -> list[str]:
    """The module whose output is each body group's output (model.body_groups order): the group's deepest common
    parent when no other group shares it (a BlockNet block, a ResNet stage), else its last module (a stem of
    loose layers)."""
    groups = [owning_modules(g) for g in body_groups(model)]
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    points = []
    for i, owners in enumerate(groups):
        parts = [o.split(".") for o in owners]
        common = ".".join(p for p, *rest in zip(*parts) if all(r == p for r in rest))
        others = [o for j, g in enumerate(groups) if j != i for o in g]
        shared = not common or any(o == common or o.startswith(common + ".") for o in others)
        points.append(max(owners, key=order.__getitem__) if shared else common)
    return points


@dataclass
class Features:
    rows: np.ndarray  # target rows, sorted
    cuts: dict[str, np.ndarray]  # cut name → (len(rows), d) features; BODY first
    probs: np.ndarray | None  # (len(rows), source classes) softmax of the candidate's own head


@torch.no_grad()
def candidate_features(cand: Candidate, samples: torch.Tensor, rows: np.ndarray, runtime: Runtime, batch_size: int,
                       cuts: bool) -> Features:
    """One pass per image: the pooled pre-logits features, the source head's probabilities and, with `cuts`,
    each body block's pooled output (forward hooks; pooled inside the hook, before an in-place op reuses it)."""
    model = cand.model
    captured: dict[str, list[torch.Tensor]] = {}
    handles = []
    if cuts:
        for k, name in enumerate(cut_points(model), 1):
            store = captured.setdefault(f"block{k}", [])
            handles.append(model.get_submodule(name).register_forward_hook(
                lambda _m, _i, out, store=store: store.append(_pooled(out).float().cpu())))
    try:
        body = extract_features(model, samples[rows], runtime, batch_size)
    finally:
        for h in handles:
            h.remove()
    probs = None
    if cand.source_classes > 1:
        logits = torch.cat([model.get_classifier()(body[i:i + batch_size].to(runtime.torch_device)).float().cpu()
                            for i in range(0, len(body), batch_size)])
        if logits.shape[1] == cand.source_classes:  # a head that is not the card's (say, removed) is no source head
            probs = torch.softmax(logits.double(), dim=1).numpy()
    layers = {name: torch.cat(parts).numpy() for name, parts in captured.items()}
    return Features(rows, {BODY: body.numpy(), **layers}, probs)


def score_one(features: np.ndarray, probs: np.ndarray | None, labels: np.ndarray,
              cfg: TransferabilityParams) -> dict[str, float]:
    """The asked-for scores of one pool (NaN for LEEP and NCE without source probabilities)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        # d×d matrices of a few hundred: one BLAS thread beats two that wait for a busy core (LogME + H-score on
        # 3000×256 features: 0.3 s on one thread, 5.8 s on two, measured on a shared 2-core machine).
        return _scores(features, probs, labels, cfg)


def _scores(features: np.ndarray, probs: np.ndarray | None, labels: np.ndarray,
            cfg: TransferabilityParams) -> dict[str, float]:
    out: dict[str, float] = {}
    for score in cfg.scores:
        if score == "logme":
            out[score] = logme(features, labels)
        elif score == "h_score":
            out[score] = h_score(features, labels, cfg.h_score_shrinkage)
        elif probs is None:
            out[score] = float("nan")
        elif score == "leep":
            out[score] = leep(probs, labels)
        else:
            out[score] = nce(probs.argmax(axis=1), labels)
    return out


def pool_draws(target: Prepared, pool_sizes: list[int], draws: int) -> dict[tuple[int, int], np.ndarray]:
    """(per_class, draw) → the pool's rows: the very pools fine-tuning trains on (same sizes, same draws)."""
    return {(n, d): target.pool(d, n) for n in pool_sizes for d in range(draws)}


def _score_cuts(name: str, cand: Candidate, feats: Features, pools: dict, labels: np.ndarray,
                cfg: TransferabilityParams) -> list[dict]:
    rows = []
    for cut, matrix in feats.cuts.items():
        probs = feats.probs if cut == BODY else None
        note = NO_HEAD_CUT if cut != BODY else cand.note if probs is not None else (
            "its head is not a source head with the card's classes: no LEEP or NCE")
        for (n, d), pool in pools.items():
            at = np.searchsorted(feats.rows, pool)
            rows.append({"backbone": name, "cut": cut, "per_class": n, "draw": d, "images": len(pool),
                         "features": matrix.shape[1],
                         **score_one(matrix[at], None if probs is None else probs[at], labels[pool], cfg),
                         "note": note})
    return rows


def score_candidates(backbones: dict[str, Path], target: Prepared, pool_sizes: list[int], draws: int,
                     cfg: TransferabilityParams, runtime: Runtime = CPU) -> tuple[pd.DataFrame, pd.DataFrame]:
    """scores (a row per candidate × cut × pool size × draw) and timing (a row per candidate: wall seconds to
    load it, extract every image's features once and score every pool; layer cuts apart)."""
    if RANDOM in backbones:
        raise ValueError(f"a backbone is named {RANDOM!r}: that name is the random-init candidate's")
    from timm.models import group_parameters  # noqa: F401 - imported once here, not inside the first timing

    pools = pool_draws(target, pool_sizes, draws)
    union = np.unique(np.concatenate(list(pools.values())))  # pools overlap: each image's features once
    labels = target.labels.numpy()
    main = next(iter(backbones))
    rows, timing = [], []
    for name in [*backbones, RANDOM]:
        start = time.perf_counter()  # one candidate at a time: only one model in memory
        cand = random_candidate(backbones[main], cfg.random_seed) if name == RANDOM else load_candidate(
            name, backbones[name])
        feats = candidate_features(cand, target.samples, union, runtime, cfg.batch_size,
                                   cuts=cfg.layer_cuts and name == main)
        extracted = time.perf_counter()
        body = Features(feats.rows, {BODY: feats.cuts.pop(BODY)}, feats.probs)
        rows += _score_cuts(name, cand, body, pools, labels, cfg)
        scored = time.perf_counter()
        rows += _score_cuts(name, cand, feats, pools, labels, cfg)  # the layer cuts left in feats
        timing.append({"backbone": name, "images": len(union), "source_classes": cand.source_classes,
                       "extract_seconds": round(extracted - start, 3), "score_seconds": round(scored - extracted, 3),
                       "seconds": round(scored - start, 3),
                       "layer_cut_seconds": round(time.perf_counter() - scored, 3)})
        del cand, feats, body
    return pd.DataFrame(rows), pd.DataFrame(timing)
