"""Few-shot learning: episodes stay inside their split; prototypes on pools and on episodes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from transferlab.experiments.fewshot.episodes import episode_accuracies, episode_sampler, pool_accuracies, sample_episode
from transferlab.params import FewshotParams

from ..conftest import tiny_digits as _digits


def test_episodes_never_contain_a_class_outside_their_split():
    labels = np.repeat(np.arange(20), 30)
    rows = np.flatnonzero(labels < 12)  # the split: classes 0..11 only
    rng = np.random.default_rng(0)
    for _ in range(200):
        picked, rel, query = sample_episode(labels, rows, ways=5, shots=2, queries=3, rng=rng)
        assert set(labels[picked]) <= set(range(12)) and set(picked) <= set(rows)
        assert len(set(labels[picked])) == 5 and len(set(picked)) == len(picked)  # no example twice
        assert (np.bincount(rel) == 5).all() and query.sum() == 15
        # Episode classes map one-to-one onto real classes.
        assert all(len(set(labels[picked][rel == i])) == 1 for i in range(5))
    sampler = episode_sampler(labels, rows, FewshotParams(train_ways=6, train_shots=1, train_queries=2))
    for step in range(50):
        idx, (rel, query) = sampler(step, torch.Generator())
        assert set(labels[idx.numpy()]) <= set(range(12)) and int(rel.max()) == 5
    with pytest.raises(ValueError, match="classes have"):
        sample_episode(labels, rows, ways=13, shots=1, queries=1, rng=rng)


def test_prototypes_on_the_finetuning_pools_and_on_episodes():
    target = _digits()
    # Features that separate the classes perfectly: one-hot of the label.
    features = {"oracle": F.one_hot(target.labels, 10).float(), "noise": torch.randn(len(target.labels), 10)}
    pools = pool_accuracies(features, target, [1, 5], draws=2)
    assert len(pools) == 2 * 2 * 2
    assert (pools[pools["method"] == "oracle"]["accuracy"] == 1.0).all()
    episodes = episode_accuracies(features, target.labels.numpy(), target.rows("test"), 5, 1, 4, 20, seed=0)
    assert len(episodes) == 40 and (episodes[episodes["method"] == "oracle"]["accuracy"] == 1.0).all()
