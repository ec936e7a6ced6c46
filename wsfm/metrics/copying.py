"""Copying checks: is a generator producing new samples, or giving back its training set?

**Vectors and images** (distances in the data's own space: pixels for images):

- ``copy_ratio``: the median over samples of the distance to the nearest training row,
  divided by the same median for held-out data (rows the model never saw). 1.0 = as far from
  the training set as real new data; well below 1 = the samples sit on training rows.
- ``near_copy_share``: the share of samples closer to their nearest training row than
  ``threshold``, the ``NEAR_COPY_QUANTILE`` quantile of the held-out rows' nearest-training
  distances. By construction held-out data scores about ``NEAR_COPY_QUANTILE`` (0.05); exact
  copies of training rows score 1.

**Text** (whole sequences, decoded): ``train_share`` (samples that are training words),
``held_out_share`` (samples that are held-out words, not training words: generalisation) and
``distinct_share`` (distinct samples / samples). Their values for real data come from the same
function applied to real words (``wsfm.stages.evaluate`` reports them as the reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wsfm.flow.search import exact_nearest

__all__ = ["NEAR_COPY_QUANTILE", "CopyingReference", "copying_metrics", "nearest_distances",
           "text_copying"]

NEAR_COPY_QUANTILE = 0.05


def nearest_distances(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """(n,) float64 Euclidean distance from each row of ``x`` (n, D) to its nearest row of
    ``train`` (N, D), in bounded memory whatever N (``wsfm.flow.search.exact_nearest``)."""
    x = np.asarray(x).reshape(len(x), -1)
    train = np.asarray(train).reshape(len(train), -1)
    if x.shape[1] != train.shape[1] or len(train) == 0:
        raise ValueError(f"need (n, D) samples and (N >= 1, D) training rows, got {x.shape} "
                         f"and {train.shape}")
    return np.sqrt(exact_nearest(x, train)[1]) if len(x) else np.zeros(0)


@dataclass(frozen=True)
class CopyingReference:
    """What held-out data looks like: its median nearest-training distance and the
    near-copy threshold (the ``quantile`` of its nearest-training distances)."""

    held_out_median: float
    threshold: float

    @classmethod
    def fit(cls, train: np.ndarray, held_out: np.ndarray,
            quantile: float = NEAR_COPY_QUANTILE) -> CopyingReference:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
        d = nearest_distances(held_out, train)
        median = float(np.median(d))
        if not median > 0:
            raise ValueError("held-out rows sit on training rows (median distance 0): the split "
                             "leaks, a copying ratio would be meaningless")
        return cls(median, float(np.quantile(d, quantile)))


def copying_metrics(samples: np.ndarray, train: np.ndarray,
                    ref: CopyingReference) -> dict[str, float]:
    """``copy_ratio`` and ``near_copy_share`` of ``samples`` (module docstring)."""
    d = nearest_distances(samples, train)
    return {"copy_ratio": float(np.median(d)) / ref.held_out_median,
            "near_copy_share": float(np.mean(d < ref.threshold)) if ref.threshold > 0
            else float(np.mean(d <= 0.0))}


def text_copying(samples: Sequence[str], train: set[str] | frozenset[str],
                 held_out: set[str] | frozenset[str]) -> dict[str, float]:
    """``train_share``, ``held_out_share`` and ``distinct_share`` of decoded ``samples``."""
    if len(samples) == 0:
        raise ValueError("text_copying needs at least one sample")
    n = len(samples)
    return {"train_share": sum(w in train for w in samples) / n,
            "held_out_share": sum(w in held_out and w not in train for w in samples) / n,
            "distinct_share": len(set(samples)) / n}
