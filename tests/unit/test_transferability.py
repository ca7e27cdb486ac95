"""LogME, LEEP, NCE and H-score against brute force, hand computations and the invariances the papers state."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from transferlab.experiments.transferability.scores import h_score, ledoit_wolf_shrinkage, leep, logme, logme_evidence, nce


def _informative(n, d, classes, seed, noise=0.5):
    """Features = class-specific means + noise, so each one-vs-rest target is partly linear in them."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centers = rng.normal(size=(classes, d)) * 2
    return centers[y] + noise * rng.normal(size=(n, d)), y


def _brute_evidence(f, y, alpha, beta):
    """log p(y | F, α, β): y = Fw + ε with w ~ N(0, α⁻¹I), ε ~ N(0, β⁻¹I) ⇒ y ~ N(0, β⁻¹I + α⁻¹FFᵀ)."""
    n = len(y)
    cov = np.eye(n) / beta + f @ f.T / alpha
    return multivariate_normal(mean=np.zeros(n), cov=cov).logpdf(y)


def _svd_evidence(f, y, alpha, beta):
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    x = u.T @ y
    return logme_evidence(s ** 2, x ** 2, float(y @ y - x @ x), len(y), f.shape[1], alpha, beta)


# n > d, and n < d with rank(F) = 3: FᵀF then has d − 3 zero eigenvalues. (A full-rank F with n < d fits
# any y exactly, so there the evidence peaks at β = ∞ and the fixed point stops at its clamp.)
@pytest.mark.parametrize("n,d,rank,seed,noise", [(12, 3, None, 15, 1.0), (6, 8, 3, 0, 0.5)])
def test_logme_equals_brute_force_evidence_and_is_a_maximum(n, d, rank, seed, noise):
    f, y = _informative(n, d, classes=2, seed=seed, noise=noise)
    if rank is not None:
        f = f[:, :rank] @ np.random.default_rng(0).normal(size=(rank, d))
    score, params = logme(f, y, return_params=True)
    brute = []
    for c, (alpha, beta) in enumerate(params):
        assert 1e-10 < alpha < 1e10 and 1e-10 < beta < 1e10  # an interior fixed point, not a clamp
        yc = (y == c).astype(float)
        ev = _brute_evidence(f, yc, alpha, beta)
        assert _svd_evidence(f, yc, alpha, beta) == pytest.approx(ev, rel=1e-9, abs=1e-9)
        brute.append(ev / n)
        # The fixed point is a stationary point of the evidence: no nearby (α, β) does better.
        for fa in (0.8, 0.95, 1.0, 1.05, 1.25):
            for fb in (0.8, 0.95, 1.0, 1.05, 1.25):
                assert _brute_evidence(f, yc, alpha * fa, beta * fb) <= ev + 1e-9
    assert score == pytest.approx(np.mean(brute), rel=1e-9)


def test_logme_prefers_separable_features_to_noise():
    f, y = _informative(200, 8, classes=3, seed=1, noise=0.3)
    noise = np.random.default_rng(2).normal(size=f.shape) * f.std()
    assert logme(f, y) > logme(noise, y) + 0.1


def test_logme_label_ids_need_not_be_contiguous():
    f, y = _informative(30, 4, classes=3, seed=3)
    assert logme(f, np.array([5, 9, 42])[y]) == pytest.approx(logme(f, y))


def test_leep_hand_computed():
    # θ rows (source classes z0, z1) and target labels:
    #   x1: (0.8, 0.2) y=0   x2: (0.6, 0.4) y=0   x3: (0.3, 0.7) y=1   x4: (0.1, 0.9) y=1
    # Joint P(y,z) = 1/4 Σ θ_z 1[y]: P(0,z0)=1.4/4, P(0,z1)=0.6/4, P(1,z0)=0.4/4, P(1,z1)=1.6/4
    # P(z0)=1.8/4, P(z1)=2.2/4 ⇒ P(0|z0)=7/9, P(1|z0)=2/9, P(0|z1)=3/11, P(1|z1)=8/11
    # EEP: x1 .8·7/9+.2·3/11, x2 .6·7/9+.4·3/11, x3 .3·2/9+.7·8/11, x4 .1·2/9+.9·8/11; LEEP = mean log
    theta = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    y = np.array([0, 0, 1, 1])
    eep = [.8 * 7 / 9 + .2 * 3 / 11, .6 * 7 / 9 + .4 * 3 / 11, .3 * 2 / 9 + .7 * 8 / 11, .1 * 2 / 9 + .9 * 8 / 11]
    assert leep(theta, y) == pytest.approx(np.mean(np.log(eep)), rel=1e-12)


def test_nce_informative_is_zero_and_independent_is_minus_entropy():
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    assert nce(np.array([3, 3, 7, 7, 1, 1, 1, 1]), y) == pytest.approx(0.0, abs=1e-12)
    # Z independent of Y empirically: every y appears equally often under both z values.
    z = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    p = np.array([2, 2, 4]) / 8
    assert nce(z, y) == pytest.approx(np.sum(p * np.log(p)), rel=1e-12)  # −H(Y)


def test_leep_and_nce_invariant_to_permuting_source_classes():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(40, 5))
    theta = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 3, 40)
    y[:3] = [0, 1, 2]
    perm = rng.permutation(5)
    assert leep(theta[:, perm], y) == pytest.approx(leep(theta, y), rel=1e-12)
    z = theta.argmax(1)
    assert nce(perm[z], y) == pytest.approx(nce(z, y), rel=1e-12)


def test_h_score_invariant_to_invertible_linear_maps():
    f, y = _informative(100, 4, classes=3, seed=5)
    base = h_score(f, y)
    scaled = f.copy()
    scaled[:, 1] *= 10
    assert h_score(scaled, y) == pytest.approx(base, rel=1e-9)
    m = np.random.default_rng(6).normal(size=(4, 4)) + 3 * np.eye(4)
    assert h_score(f @ m + 5.0, y) == pytest.approx(base, rel=1e-8)
    # H-score ≤ rank of cov(E[f|y]) ≤ C − 1 and near it for well separated classes.
    assert 0 < base <= 2 + 1e-9


def test_h_score_shrinkage():
    f, y = _informative(60, 10, classes=3, seed=7)
    assert h_score(f, y, shrinkage=0.0) == pytest.approx(h_score(f, y), rel=1e-9)
    lam = ledoit_wolf_shrinkage(f - f.mean(0))
    sklearn_cov = pytest.importorskip("sklearn.covariance")
    assert lam == pytest.approx(sklearn_cov.ledoit_wolf_shrinkage(f), rel=1e-9)
    assert h_score(f, y, shrinkage="auto") == pytest.approx(h_score(f, y, shrinkage=lam), rel=1e-12)
    assert h_score(3 * f, y, shrinkage=0.5) == pytest.approx(h_score(f, y, shrinkage=0.5), rel=1e-9)
    with pytest.raises(ValueError, match="shrinkage"):
        h_score(f, y, shrinkage=1.5)


@pytest.mark.parametrize("call,match", [
    (lambda: logme(np.ones((4, 2)), np.array([0, 1, 0])), "3 entries but the other input has 4"),
    (lambda: logme(np.ones((4, 2)), np.zeros(4, int)), "at least 2 classes"),
    (lambda: h_score(np.array([[0.0, 1.0], [np.nan, 1.0]]), np.array([0, 1])), "NaN or inf"),
    (lambda: h_score(np.ones((4, 2)), np.array([0.5, 1, 0, 1])), "integer class ids"),
    (lambda: leep(np.array([[0.5, 0.6], [0.5, 0.5]]), np.array([0, 1])), "probabilities"),
    (lambda: nce(np.array([0, 1]), np.array([0, 1, 1])), "3 entries but the other input has 2"),
])
def test_bad_inputs_name_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_scores_are_finite_numbers():
    f, y = _informative(20, 3, classes=2, seed=8)
    for v in (logme(f, y), h_score(f, y)):
        assert isinstance(v, float) and math.isfinite(v)
