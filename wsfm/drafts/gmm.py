"""Gaussian-mixture draft: fitted with scikit-learn, sampled with numpy from its arrays."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from wsfm.drafts.base import Draft, read_arrays

__all__ = ["GMMDraft", "COVARIANCE_TYPES"]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


class GMMDraft(Draft):
    """Gaussian mixture with ``n_components`` components.

    State (float64): ``weights`` (K,), ``means`` (K, D) and ``covariances`` in scikit-learn's
    layout for ``covariance_type``: full (K, D, D), tied (D, D), diag (K, D), spherical (K,).
    ``seed`` seeds the EM fit only; sampling takes its own seed.
    """

    kind: ClassVar[str] = "gmm"

    def __init__(self, n_components: int = 4, covariance_type: str = "full",
                 seed: int = 0) -> None:
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components!r}")
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"unknown covariance_type {covariance_type!r}; "
                             f"known: {list(COVARIANCE_TYPES)}")
        self.n_components = int(n_components)
        self.covariance_type = covariance_type
        self.seed = int(seed)
        self.weights: np.ndarray | None = None
        self.means: np.ndarray | None = None
        self.covariances: np.ndarray | None = None

    def __repr__(self) -> str:
        return (f"GMMDraft(n_components={self.n_components}, "
                f"covariance_type={self.covariance_type!r}, seed={self.seed})")

    def fit(self, data: np.ndarray) -> Self:
        """Fit to ``data`` (N, D) with EM; needs N >= n_components."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2:
            raise ValueError(f"data must have shape (N, D), got {data.shape}")
        if data.shape[0] < self.n_components:
            raise ValueError(f"need at least n_components={self.n_components} rows, "
                             f"got {data.shape[0]}")
        # Imported here: scikit-learn is about 1 s of the start-up of every process that
        # imports the draft kinds (training workers, shard tasks), and only a fit needs it.
        from sklearn.mixture import GaussianMixture

        gm = GaussianMixture(self.n_components, covariance_type=self.covariance_type,
                             random_state=self.seed).fit(data)
        self.weights = np.asarray(gm.weights_, dtype=np.float64)
        self.means = np.asarray(gm.means_, dtype=np.float64)
        self.covariances = np.asarray(gm.covariances_, dtype=np.float64)
        return self

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.weights is None or self.means is None or self.covariances is None:
            raise ValueError("GMMDraft is not fitted: call fit() or GMMDraft.load()")
        return self.weights, self.means, self.covariances

    @property
    def dim(self) -> int:
        return int(self._fitted()[1].shape[1])

    @property
    def cost_per_sample(self) -> float:
        """FLOPs for one sample: pick a component (K), draw D normals (D), add the mean (D)
        and multiply by the Cholesky factor: D^2 for a triangular matvec (full, tied) or D
        for a diagonal scale (diag, spherical)."""
        k, d = self.n_components, self.dim
        scale = d * d if self.covariance_type in ("full", "tied") else d
        return float(k + 2 * d + scale)

    def _scales(self) -> np.ndarray:
        """(K, D, D) lower Cholesky factors, or (K, D) standard deviations."""
        _, means, cov = self._fitted()
        k, d = means.shape
        if self.covariance_type == "full":
            return np.linalg.cholesky(cov)
        if self.covariance_type == "tied":
            return np.broadcast_to(np.linalg.cholesky(cov), (k, d, d))
        if self.covariance_type == "diag":
            return np.sqrt(cov)
        return np.broadcast_to(np.sqrt(cov)[:, None], (k, d))

    def sample(self, n: int, seed: int) -> np.ndarray:
        """(n, D) float32 samples; a pure function of the saved arrays and ``seed``."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n!r}")
        weights, means, _ = self._fitted()
        rng = np.random.default_rng(seed)
        comp = rng.choice(len(weights), size=n, p=weights / weights.sum())
        z = rng.standard_normal((n, means.shape[1]))
        scales = self._scales()
        out = np.empty_like(z)
        for k in range(len(weights)):
            rows = comp == k
            if scales.ndim == 3:
                out[rows] = means[k] + z[rows] @ scales[k].T
            else:
                out[rows] = means[k] + z[rows] * scales[k]
        return out.astype(np.float32)

    def save(self, path: str | Path) -> None:
        weights, means, cov = self._fitted()
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez(f, kind=np.array(self.kind), covariance_type=np.array(self.covariance_type),
                     n_components=np.array(self.n_components), seed=np.array(self.seed),
                     weights=weights, means=means, covariances=cov)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        f = read_arrays(path, cls.kind)
        draft = cls(int(f["n_components"]), str(f["covariance_type"]), int(f["seed"]))
        draft.weights = f["weights"].copy()
        draft.means = f["means"].copy()
        draft.covariances = f["covariances"].copy()
        return draft
