"""Task datasets: a train split, a held-out split and a reference split, fixed by seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wsfm.config import DataConfig
from wsfm.data.toy2d import make_toy2d

__all__ = ["Dataset", "load_dataset"]


@dataclass(frozen=True)
class Dataset:
    """``train`` (N, D) for fitting; ``test`` (M, D) held out for evaluation; ``reference``
    (M, D) a second held-out draw, so that data-against-data gives the metric's floor."""

    train: np.ndarray
    test: np.ndarray
    reference: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])


def load_dataset(cfg: DataConfig) -> Dataset:
    if cfg.kind == "toy2d":
        # Generated data: the splits are independent draws with distinct seeds.
        return Dataset(
            train=make_toy2d(cfg.name, cfg.n_train, seed=cfg.seed),
            test=make_toy2d(cfg.name, cfg.n_test, seed=cfg.seed + 1_000_003),
            reference=make_toy2d(cfg.name, cfg.n_test, seed=cfg.seed + 2_000_003),
        )
    raise ValueError(f"unknown data kind {cfg.kind!r} (kinds: ['toy2d'])")
