"""PCA + Gaussian-mixture draft: a GMM fitted in the top ``n_pca`` principal components.

Samples are mapped back to data space, so every draft lies on the ``n_pca``-dimensional
affine subspace ``mean + span(components)``. That is by design: the widening noise of the
warm path (``WarmPath(draft_noise=...)``) gives the flow the missing dimensions
(docs/method.md, lesson 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from wsfm.drafts.base import Draft, read_arrays
from wsfm.drafts.gmm import GMMDraft

__all__ = ["PCAGMMDraft"]


class PCAGMMDraft(Draft):
    """GMM with ``n_components`` components in the top ``n_pca`` principal components.

    State (float64): ``mean`` (D,), ``components`` (n_pca, D) orthonormal rows, and the
    latent ``GMMDraft`` (weights (K,), means (K, n_pca), covariances). ``clip = (lo, hi)``
    clips every sample coordinate (e.g. ``(-1, 1)`` for images scaled to that range).
    ``seed`` seeds the EM fit only; sampling takes its own seed.
    """

    kind: ClassVar[str] = "pca_gmm"

    def __init__(self, n_pca: int = 8, n_components: int = 4, covariance_type: str = "full",
                 seed: int = 0, clip: tuple[float, float] | None = None) -> None:
        if n_pca < 1:
            raise ValueError(f"n_pca must be >= 1, got {n_pca!r}")
        if clip is not None:
            if len(clip) != 2 or not float(clip[0]) < float(clip[1]):
                raise ValueError(f"clip must be (lo, hi) with lo < hi, got {clip!r}")
            clip = (float(clip[0]), float(clip[1]))
        # validates n_components and covariance_type
        self.gmm = GMMDraft(n_components, covariance_type, seed)
        self.n_pca = int(n_pca)
        self.clip = clip
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None

    @property
    def n_components(self) -> int:
        return self.gmm.n_components

    @property
    def covariance_type(self) -> str:
        return self.gmm.covariance_type

    @property
    def seed(self) -> int:
        return self.gmm.seed

    def __repr__(self) -> str:
        return (f"PCAGMMDraft(n_pca={self.n_pca}, n_components={self.n_components}, "
                f"covariance_type={self.covariance_type!r}, seed={self.seed}, clip={self.clip})")

    def fit(self, data: np.ndarray) -> Self:
        """Fit to ``data`` (N, D): PCA by SVD, then EM in the (N, n_pca) projections."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2:
            raise ValueError(f"data must have shape (N, D), got {data.shape}")
        if self.n_pca > min(data.shape):
            raise ValueError(f"n_pca={self.n_pca} exceeds min(N, D) = {min(data.shape)} "
                             f"for data of shape {data.shape}")
        mean = data.mean(axis=0)
        _, _, vt = np.linalg.svd(data - mean, full_matrices=False)  # vt (min(N, D), D)
        components = vt[: self.n_pca]
        # numpy's SVD sign is arbitrary: fix it (largest |entry| positive) for a stable state
        signs = np.sign(components[np.arange(self.n_pca), np.abs(components).argmax(axis=1)])
        components = components * signs[:, None]
        self.gmm.fit((data - mean) @ components.T)  # (N, n_pca)
        self.mean, self.components = mean, components
        return self

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean is None or self.components is None:
            raise ValueError("PCAGMMDraft is not fitted: call fit() or PCAGMMDraft.load()")
        return self.mean, self.components

    @property
    def dim(self) -> int:
        return int(self._fitted()[0].shape[0])

    @property
    def cost_per_sample(self) -> float:
        """FLOPs for one sample: the latent GMM's cost, then ``2 n_pca D`` for the map back
        to data space and ``D`` for adding the mean (plus ``2 D`` when clipping)."""
        d = self.dim
        return self.gmm.cost_per_sample + 2 * self.n_pca * d + d + (2 * d if self.clip else 0)

    def sample(self, n: int, seed: int) -> np.ndarray:
        """(n, D) float32 samples; a pure function of the saved arrays and ``seed``."""
        mean, components = self._fitted()
        z = self.gmm.sample(n, seed).astype(np.float64)  # (n, n_pca); validates n
        x = mean + z @ components  # (n, D)
        if self.clip is not None:
            x = np.clip(x, *self.clip)
        return x.astype(np.float32)

    def save(self, path: str | Path) -> None:
        mean, components = self._fitted()
        weights, means, cov = self.gmm._fitted()
        clip = np.array(self.clip if self.clip is not None else [], dtype=np.float64)
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez(f, kind=np.array(self.kind), n_pca=np.array(self.n_pca),
                     n_components=np.array(self.n_components),
                     covariance_type=np.array(self.covariance_type), seed=np.array(self.seed),
                     clip=clip, mean=mean, components=components, weights=weights,
                     means=means, covariances=cov)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        f = read_arrays(path, cls.kind)
        clip = tuple(float(v) for v in f["clip"]) or None
        draft = cls(int(f["n_pca"]), int(f["n_components"]), str(f["covariance_type"]),
                    int(f["seed"]), clip=clip)  # type: ignore[arg-type]
        draft.mean, draft.components = f["mean"].copy(), f["components"].copy()
        draft.gmm.weights = f["weights"].copy()
        draft.gmm.means = f["means"].copy()
        draft.gmm.covariances = f["covariances"].copy()
        return draft
