"""Few-shot learning's training and scoring: episodes drawn from a class pool, the prototypical network
meta-trained on source episodes, and nearest-prototype accuracy on target episodes and pools."""
from __future__ import annotations


import numpy as np
import pandas as pd
import torch

from transferlab.data.prepared import Prepared
from transferlab.core.engine import TrainConfig, predict_logits, train
from transferlab.models import create_model
from transferlab.core.objectives import prototype_logits, prototypes
from transferlab.params import FewshotParams
from transferlab.system.context import CPU, Runtime


def sample_episode(labels: np.ndarray, rows: np.ndarray, ways: int, shots: int, queries: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An N-way K-shot episode from `rows` only: (rows, class 0..ways-1 within the episode, is_query)."""
    classes, counts = np.unique(labels[rows], return_counts=True)
    eligible = classes[counts >= shots + queries]
    if len(eligible) < ways:
        raise ValueError(f"only {len(eligible)} classes have {shots + queries} examples; a {ways}-way episode "
                         "needs more")
    chosen = rng.choice(eligible, ways, replace=False)
    picked, rel, is_query = [], [], []
    for i, c in enumerate(chosen):
        r = rng.choice(rows[labels[rows] == c], shots + queries, replace=False)
        picked.append(r)
        rel += [i] * (shots + queries)
        is_query += [0] * shots + [1] * queries
    return np.concatenate(picked), np.array(rel), np.array(is_query)


def episode_sampler(labels: np.ndarray, rows: np.ndarray, cfg: FewshotParams):
    """An engine sampler: each step is one training episode (its own seeded generator, so resumable)."""
    def sample(step: int, generator: torch.Generator):
        rng = np.random.default_rng([cfg.seed, 97, step])
        picked, rel, query = sample_episode(labels, rows, cfg.train_ways, cfg.train_shots, cfg.train_queries, rng)
        return torch.from_numpy(picked), (torch.from_numpy(rel), torch.from_numpy(query))
    return sample


def train_protonet(source: Prepared, cfg: FewshotParams, in_chans: int = 1,
                   backbone: torch.nn.Module | None = None, runtime: Runtime = CPU) -> torch.nn.Module:
    """Episodic training on the source's training split; the network is an embedding (no head). With a
    backbone (init: pretrained) the episodes fine-tune a copy of it, else a fresh `cfg.model`."""
    import copy

    from transferlab.core.objectives import prototypical

    torch.manual_seed(cfg.seed)
    if backbone is not None:
        model = copy.deepcopy(backbone)
        model.reset_classifier(0)
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        model = create_model(cfg.model.name, num_classes=0, in_chans=in_chans, widths=list(cfg.model.widths),
                             dropout=cfg.model.dropout)
    rows = source.rows("train")
    batch = cfg.train_ways * (cfg.train_shots + cfg.train_queries)
    train(model, source.samples, source.labels, [{"params": list(model.parameters()), "lr": cfg.lr}],
          TrainConfig(steps=cfg.episodes, batch_size=batch, weight_decay=cfg.weight_decay),
          torch.Generator().manual_seed(cfg.seed), runtime, objective=prototypical,
          sampler=episode_sampler(source.labels.numpy(), rows, cfg))
    return model


def episode_accuracies(features: dict[str, torch.Tensor], labels: np.ndarray, rows: np.ndarray, ways: int,
                       shots: int, queries: int, episodes: int, seed: int) -> pd.DataFrame:
    """Nearest-prototype accuracy of every embedding on the same test episodes (paired by episode)."""
    rng = np.random.default_rng([seed, 98, shots])
    out = []
    for e in range(episodes):
        picked, rel, query = sample_episode(labels, rows, ways, shots, queries, rng)
        rel_t, q = torch.from_numpy(rel), torch.from_numpy(query).bool()
        for method, f in features.items():
            emb = f[picked]
            logits = prototype_logits(emb[q], prototypes(emb[~q], rel_t[~q], ways))
            out.append({"method": method, "shots": shots, "episode": e,
                        "accuracy": float((logits.argmax(1) == rel_t[q]).float().mean())})
    return pd.DataFrame(out)


def pool_accuracies(features: dict[str, torch.Tensor], target: Prepared, shots: list[int], draws: int) -> pd.DataFrame:
    """All-way K-shot on the fine-tuning pools: prototypes from pool(draw, K), scored on the whole test split,
    the exact data and test set the fine-tuning strategies had."""
    test = target.rows("test")
    y = target.labels[test]
    out = []
    for k in shots:
        for draw in range(draws):
            pool = target.pool(draw, k)
            for method, f in features.items():
                protos = prototypes(f[pool], target.labels[pool], len(target.classes))
                acc = float((prototype_logits(f[test], protos).argmax(1) == y).float().mean())
                out.append({"method": method, "per_class": k, "seed": draw, "accuracy": acc})
    return pd.DataFrame(out)
