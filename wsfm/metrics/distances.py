"""Sample-based distances between point clouds ``a`` (N, D) and ``b`` (M, D).

All are computed in float64 and are 0 for identical sets.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial.distance import cdist

__all__ = ["energy_distance", "mmd_rbf", "sliced_wasserstein", "wasserstein2_1d"]

_CHUNK = 1024  # rows of ``a`` per block of pairwise distances


def _as_clouds(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (N, D) and (M, D) arrays, got {a.shape} and {b.shape}")
    if len(a) == 0 or len(b) == 0:
        raise ValueError("point clouds must be non-empty")
    return a, b


def wasserstein2_1d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact squared W2 between the empirical measures of each column: (N, P), (M, P) -> (P,).

    ``W2^2 = int_0^1 (F_a^-1(q) - F_b^-1(q))^2 dq``; both quantile functions are steps that
    change only at multiples of 1/N and 1/M, so the integral is a finite sum over the merged
    breakpoints (integers in units of 1/(N M), exact for N != M).
    """
    n, m = len(a), len(b)
    sa, sb = np.sort(a, axis=0), np.sort(b, axis=0)
    if n == m:
        return np.mean((sa - sb) ** 2, axis=0)
    levels = np.union1d(np.arange(1, n + 1) * m, np.arange(1, m + 1) * n)  # ends, x 1/(NM)
    starts = np.concatenate([[0], levels[:-1]])
    widths = (levels - starts).astype(np.float64) / (n * m)
    diff = sa[starts // m] - sb[starts // n]  # (K, P): quantiles on each interval
    return widths @ diff**2


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, n_projections: int = 256,
                       seed: int = 0) -> float:
    """Sliced Wasserstein-2: ``sqrt(mean_theta W2^2(a.theta, b.theta))`` over
    ``n_projections`` random unit directions ``theta`` drawn with ``seed``."""
    a, b = _as_clouds(a, b)
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections!r}")
    theta = np.random.default_rng(seed).standard_normal((a.shape[1], n_projections))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)  # (D, P) unit columns
    return float(np.sqrt(np.mean(wasserstein2_1d(a @ theta, b @ theta))))


def _mean_pairwise(x: np.ndarray, y: np.ndarray,
                   f: Callable[[np.ndarray], np.ndarray]) -> float:
    """Mean of ``f(|x_i - y_j|)`` over all pairs, in blocks to bound memory."""
    total = 0.0
    for start in range(0, len(x), _CHUNK):
        total += float(f(cdist(x[start:start + _CHUNK], y)).sum())
    return total / (len(x) * len(y))


def energy_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Energy distance ``sqrt(2 E|X-Y| - E|X-X'| - E|Y-Y'|)`` (V-statistic, as in
    ``scipy.stats.energy_distance`` for D = 1)."""
    a, b = _as_clouds(a, b)
    e2 = (2 * _mean_pairwise(a, b, np.asarray) - _mean_pairwise(a, a, np.asarray)
          - _mean_pairwise(b, b, np.asarray))
    return float(np.sqrt(max(e2, 0.0)))


def mmd_rbf(a: np.ndarray, b: np.ndarray, bandwidth: float) -> float:
    """Maximum mean discrepancy with ``k(x, y) = exp(-|x - y|^2 / (2 bandwidth^2))``:
    ``sqrt(E k(X,X') + E k(Y,Y') - 2 E k(X,Y))`` (biased V-statistic, clipped at 0)."""
    a, b = _as_clouds(a, b)
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth!r}")

    def k(d: np.ndarray) -> np.ndarray:
        return np.exp(-(d**2) / (2.0 * bandwidth**2))

    m2 = _mean_pairwise(a, a, k) + _mean_pairwise(b, b, k) - 2 * _mean_pairwise(a, b, k)
    return float(np.sqrt(max(m2, 0.0)))
