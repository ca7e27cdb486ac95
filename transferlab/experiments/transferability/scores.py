"""Transferability scores: how well a frozen source model should transfer to a labelled target set.

Implemented from the papers (numpy only, no training):

* LogME — K. You, Y. Liu, J. Wang, M. Long, "LogME: Practical Assessment of Pre-trained Models for
  Transfer Learning", ICML 2021. Mean per-example log evidence of a Bayesian linear model on the features.
* LEEP — C. Nguyen, T. Hassner, M. Seeger, C. Archambeau, "LEEP: A New Measure to Evaluate
  Transferability of Learned Representations", ICML 2020. Log expected empirical prediction.
* NCE — A. Tran, C. Nguyen, T. Hassner, "Transferability and Hardness of Supervised Classification
  Tasks", ICCV 2019. Negative conditional entropy −H(Y|Z) of target labels given source labels.
* H-score — Y. Bao, Y. Li, S.-L. Huang, L. Zhang, L. Zheng, A. Zamir, L. Guibas, "An Information-Theoretic
  Approach to Transferability in Task Transfer Learning", ICIP 2019; the shrinkage variant follows
  S. Ibrahim, N. Ponomareva, R. Mazumder, "Newer is not always better: Rethinking transferability metrics,
  their peculiarities, stability and performance", ECML-PKDD 2022 (Ledoit–Wolf covariance).

Higher is better for all four.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["logme", "logme_evidence", "leep", "nce", "h_score", "ledoit_wolf_shrinkage"]


# ---------------------------------------------------------------- input checks
def _labels(labels, n: int | None = None, name: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if n is not None and len(y) != n:
        raise ValueError(f"{name} has {len(y)} entries but the other input has {n} rows")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(f"{name} must be integer class ids, got non-integer values")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iub":
        raise ValueError(f"{name} must be integer class ids, got dtype {y.dtype}")
    return y


def _target(labels, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Target labels re-coded to 0..C-1 (ids need not be contiguous); at least two classes."""
    y = _labels(labels, n)
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"labels need at least 2 classes, got {len(classes)}")
    return classes, codes


def _matrix(x, name: str) -> np.ndarray:
    f = np.asarray(x, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows, got {f.shape[0]}")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{name} contains NaN or inf")
    return f


# ---------------------------------------------------------------- LogME
def _logme_one(s2: np.ndarray, x: np.ndarray, y2: float, n: int, d: int,
               tol: float, max_iter: int) -> tuple[float, float, float]:
    """Fixed point for one target in the SVD basis F = U diag(s) Vᵀ (thin, k = min(n, d)).

    s2 = σ² (k values, some may be 0), x = Uᵀy, y2 = ||y||². In that basis A = αI + βFᵀF is diagonal,
    m = βA⁻¹Fᵀy has coordinates βσx/(α+βσ²) and Fm − y has coordinates −αx/(α+βσ²) plus the part of y
    outside span(U), so every quantity is O(k) per iteration. The d−k directions with σ² = 0 only add
    (d−k)·log α to log|A|: that is what makes n < d correct.
    """
    x2 = x ** 2
    res_out = max(y2 - float(x2.sum()), 0.0)  # ||(I − UUᵀ)y||²: no w can fit this part
    alpha, beta = 1.0, 1.0
    tiny = 1e-300
    for _ in range(max_iter):
        t = alpha + beta * s2
        gamma = float((beta * s2 / t).sum())                    # effective number of parameters
        m2 = float((beta ** 2 * s2 * x2 / t ** 2).sum())        # mᵀm
        res2 = float((alpha ** 2 * x2 / t ** 2).sum()) + res_out  # ||Fm − y||²
        new_alpha = gamma / max(m2, tiny)
        new_beta = (n - gamma) / max(res2, tiny)
        # Guard against runaway values when y is (almost) exactly representable; the evidence is flat there.
        new_alpha = min(max(new_alpha, 1e-12), 1e12)
        new_beta = min(max(new_beta, 1e-12), 1e12)
        done = abs(new_alpha - alpha) <= tol * alpha and abs(new_beta - beta) <= tol * beta
        alpha, beta = new_alpha, new_beta
        if done:
            break
    return logme_evidence(s2, x2, res_out, n, d, alpha, beta), alpha, beta


def logme_evidence(s2, x2, res_out: float, n: int, d: int, alpha: float, beta: float) -> float:
    """Log evidence log p(y | F, α, β) in the SVD basis (see _logme_one), the paper's Eq. for L(α, β)."""
    s2, x2 = np.asarray(s2, float), np.asarray(x2, float)
    t = alpha + beta * s2
    m2 = float((beta ** 2 * s2 * x2 / t ** 2).sum())
    res2 = float((alpha ** 2 * x2 / t ** 2).sum()) + res_out
    logdet_a = float(np.log(t).sum()) + (d - len(s2)) * math.log(alpha)
    return (n / 2 * math.log(beta) + d / 2 * math.log(alpha) - n / 2 * math.log(2 * math.pi)
            - beta / 2 * res2 - alpha / 2 * m2 - logdet_a / 2)


def _left_singular(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """σ² and the left singular vectors U of F = U diag(σ) Vᵀ, leaving out σ = 0 (see _logme_one: such a
    direction only adds log α to log|A|, and y's part along it is residual either way).

    n ≤ d: the thin SVD. n > d (a pool of thousands of images): the eigendecomposition of the d×d FᵀF and
    U = FV/σ — the same quantities, 10× faster than an SVD of the n×d matrix (measured, n=3000, d=256).
    """
    n, d = f.shape
    if n <= d:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
        s2 = s ** 2
    else:
        s2, v = np.linalg.eigh(f.T @ f)
        keep = s2 > max(float(s2.max()), 0.0) * d * np.finfo(float).eps  # numerically zero: σ² at rounding level
        s2, v = s2[keep], v[:, keep]
        u = (f @ v) / np.sqrt(s2)
    keep = s2 > 0
    return s2[keep], u[:, keep]


def logme(features, labels, tol: float = 1e-10, max_iter: int = 1000, return_params: bool = False):
    """LogME score: mean over classes of (max over α, β of log evidence) / n.

    Each class c is a one-vs-rest target y_c ∈ {0, 1}; the features are used as given (the paper does
    not centre or add a bias). With return_params=True also returns the per-class [(α, β), ...].
    """
    f = _matrix(features, "features")
    n, d = f.shape
    _, codes = _target(labels, n)
    s2, u = _left_singular(f)
    scores, params = [], []
    for c in range(codes.max() + 1):
        y = (codes == c).astype(np.float64)
        ev, a, b = _logme_one(s2, u.T @ y, float(y @ y), n, d, tol, max_iter)
        scores.append(ev / n)
        params.append((a, b))
    score = float(np.mean(scores))
    return (score, params) if return_params else score


# ---------------------------------------------------------------- LEEP
def leep(source_probs, labels) -> float:
    """LEEP = 1/n Σ_i log Σ_z P̂(y_i | z) θ(x_i)_z, where θ is the source head's softmax output.

    P̂(y, z) = 1/n Σ_i θ(x_i)_z 1[y_i = y] is the empirical joint and P̂(y | z) = P̂(y, z) / P̂(z).
    """
    theta = _matrix(source_probs, "source_probs")
    n = theta.shape[0]
    if np.any(theta < 0) or not np.allclose(theta.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("source_probs must be probabilities: non-negative rows that sum to 1 (apply softmax)")
    _, codes = _target(labels, n)
    onehot = np.eye(codes.max() + 1)[codes]                    # (n, C)
    joint = onehot.T @ theta / n                                # P̂(y, z), (C, Z)
    pz = joint.sum(axis=0)                                      # P̂(z)
    # A source class no example puts mass on has P̂(z) = 0; it also gets θ_z = 0 in every row, so its
    # conditional never matters — set it to 0 instead of dividing by zero.
    cond = np.divide(joint, pz, out=np.zeros_like(joint), where=pz > 0)
    eep = np.einsum("iz,iz->i", theta, cond[codes])            # Σ_z P̂(y_i|z) θ_iz
    return float(np.mean(np.log(eep)))


# ---------------------------------------------------------------- NCE
def nce(source_labels, labels) -> float:
    """NCE = −H(Y | Z) = Σ_{y,z} P̂(y, z) log P̂(y | z) from hard source predictions Z (argmax of the head).

    0 when Z determines Y; −H(Y) when they are independent (in the empirical distribution).
    """
    z = _labels(source_labels, name="source_labels")
    _, y = _target(labels, len(z))
    _, z = np.unique(z, return_inverse=True)
    joint = np.zeros((y.max() + 1, z.max() + 1))
    np.add.at(joint, (y, z), 1.0)
    joint /= len(y)
    pz = joint.sum(axis=0, keepdims=True)
    nz = joint > 0                                              # 0 · log 0 = 0
    return float(np.sum(joint[nz] * np.log((joint / pz)[nz])))


# ---------------------------------------------------------------- H-score
def ledoit_wolf_shrinkage(x: np.ndarray) -> float:
    """Ledoit–Wolf (2004) optimal shrinkage λ for centred x toward μI (same formula as scikit-learn)."""
    n, d = x.shape
    x2 = x ** 2
    emp_trace = x2.sum(axis=0) / n
    mu = emp_trace.sum() / d
    beta_ = float((x2.T @ x2).sum())
    delta_ = float(((x.T @ x) ** 2).sum()) / n ** 2
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2 * mu * emp_trace.sum() + d * mu ** 2) / d
    beta = min(beta, delta)
    return 0.0 if beta == 0 else float(beta / delta)


def h_score(features, labels, shrinkage: float | str | None = None) -> float:
    """H-score = tr(cov(f)⁺ cov(E[f | y])), cov(f)⁺ the Moore–Penrose pseudo-inverse.

    shrinkage=None is the paper's score; it is invariant to invertible linear maps of the features but
    unstable when d is large relative to n (cov(f) is then ill-conditioned). shrinkage=λ ∈ [0, 1] uses
    (1−λ)cov(f) + λ·(tr cov(f)/d)·I instead, and shrinkage="auto" picks λ by Ledoit–Wolf (Ibrahim et al.
    2022). Shrinkage trades the linear-map invariance for stability (it is still scale invariant).
    """
    f = _matrix(features, "features")
    n, d = f.shape
    _, codes = _target(labels, n)
    f = f - f.mean(axis=0)
    cov_f = f.T @ f / n
    if shrinkage is not None:
        lam = ledoit_wolf_shrinkage(f) if shrinkage == "auto" else float(shrinkage)
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"shrinkage must be in [0, 1] or 'auto', got {shrinkage!r}")
        cov_f = (1 - lam) * cov_f + lam * np.trace(cov_f) / d * np.eye(d)
    counts = np.bincount(codes).astype(np.float64)
    onehot = np.zeros((len(counts), n))
    onehot[codes, np.arange(n)] = 1.0
    means = onehot @ f / counts[:, None]                       # E[f | y] (f already centred; np.add.at is 20× slower)
    g = means[codes]                                           # each example replaced by its class mean
    cov_g = g.T @ g / n
    # pinv with a relative cutoff: directions of (numerically) zero feature variance carry no information.
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-10, hermitian=True) @ cov_g))
