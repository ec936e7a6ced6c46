"""Feature-space metrics for images: Frechet distance, k-NN precision/recall, a classifier.

Sliced Wasserstein alone cannot rank image generators (a diagonal GMM beats a cold flow on it
while drawing smudges), so images are compared in the penultimate feature space of a small
classifier trained once on the training split, as FID does with Inception features.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch import nn

__all__ = ["FeatureClassifier", "frechet_distance", "knn_precision_recall", "train_classifier"]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to features ``a`` (N, F) and ``b`` (M, F):
    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # near-singular product: regularise, as FID does
        eps = 1e-6 * np.eye(len(cov_a))
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
                 - 2.0 * np.trace(covmean))


def _kth_neighbour_radius(x: np.ndarray, k: int) -> np.ndarray:
    d = torch.cdist(torch.from_numpy(x), torch.from_numpy(x))  # (N, N)
    return d.kthvalue(k + 1, dim=1).values.numpy()  # +1: each point is its own 0-th neighbour


def knn_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al., 2019) on features (N, F), (M, F).

    Precision: share of ``fake`` inside the union of k-NN balls around ``real`` samples;
    recall: share of ``real`` inside the union of k-NN balls around ``fake`` samples.
    """
    real, fake = np.asarray(real, np.float32), np.asarray(fake, np.float32)

    def coverage(support: np.ndarray, probe: np.ndarray) -> float:
        radius = _kth_neighbour_radius(support, k)  # (S,)
        d = torch.cdist(torch.from_numpy(probe), torch.from_numpy(support)).numpy()  # (P, S)
        return float((d <= radius[None, :]).any(axis=1).mean())

    return coverage(real, fake), coverage(fake, real)


class FeatureClassifier(nn.Module):
    """MLP classifier ``(B, D) -> (B, classes)``; ``features`` gives the penultimate (B, F)."""

    def __init__(self, dim: int, classes: int, hidden: int = 256, features: int = 64):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, features),
                                  nn.SiLU())
        self.head = nn.Linear(features, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(x: np.ndarray, y: np.ndarray, steps: int = 1500, seed: int = 0,
                     noise: float = 0.1) -> FeatureClassifier:
    """Fit a classifier on ``x`` (N, D), labels ``y`` (N,); light input noise for smoother
    features off the data manifold (generated samples are never exactly on it)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = FeatureClassifier(x.shape[1], int(y.max()) + 1)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y))
    for _ in range(steps):
        idx = torch.randint(len(xt), (256,), generator=gen)
        xb = xt[idx] + noise * torch.randn(len(idx), xt.shape[1], generator=gen)
        loss = nn.functional.cross_entropy(net(xb), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()
