"""Two-dimensional toy distributions, generated (nothing is downloaded).

All fit roughly in ``[-4, 4]^2`` (the scale of TorchCFM / FFJORD's checkerboard).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["TOY2D", "make_toy2d"]

Sampler = Callable[[int, np.random.Generator], np.ndarray]  # (n, rng) -> (n, 2) float64


def _checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    """4x4 board on [-4, 4]^2 of 2x2 squares; the 8 squares with even
    ``floor(x/2) + floor(y/2)`` are filled uniformly (FFJORD's construction)."""
    x = rng.uniform(-2.0, 2.0, n)
    y = rng.uniform(0.0, 1.0, n) - 2.0 * rng.integers(0, 2, n) + np.floor(x) % 2
    return 2.0 * np.stack([x, y], axis=1)


def _moons(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two interleaved half circles (scikit-learn's moons), noise 0.1, centred, x2.5."""
    lower = rng.integers(0, 2, n).astype(bool)
    angle = rng.uniform(0.0, np.pi, n)
    x = np.where(lower, 1.0 - np.cos(angle), np.cos(angle))
    y = np.where(lower, 0.5 - np.sin(angle), np.sin(angle))
    pts = np.stack([x, y], axis=1) + 0.1 * rng.standard_normal((n, 2))
    return 2.5 * (pts - np.array([0.5, 0.25]))


def _eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    """Eight Gaussians (std 0.5 / sqrt 2) on a circle of radius 4 / sqrt 2 (FFJORD)."""
    angles = 2.0 * np.pi * np.arange(8) / 8
    centers = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    pts = centers[rng.integers(0, 8, n)] + 0.5 * rng.standard_normal((n, 2))
    return pts / np.sqrt(2.0)


def _rings(n: int, rng: np.random.Generator) -> np.ndarray:
    """Four concentric circles of radii 1, 2, 3, 4 (equal mass), noise 0.08."""
    radius = rng.integers(1, 5, n).astype(np.float64)
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    pts = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return pts + 0.08 * rng.standard_normal((n, 2))


TOY2D: dict[str, Sampler] = {
    "checkerboard": _checkerboard,
    "moons": _moons,
    "8gaussians": _eight_gaussians,
    "rings": _rings,
}


def make_toy2d(name: str, n: int, seed: int) -> np.ndarray:
    """(n, 2) float32 samples of the toy distribution ``name``, deterministic in ``seed``."""
    try:
        sampler = TOY2D[name]
    except KeyError:
        raise ValueError(f"unknown toy2d dataset {name!r}; known: {sorted(TOY2D)}") from None
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n!r}")
    return sampler(int(n), np.random.default_rng(seed)).astype(np.float32)
