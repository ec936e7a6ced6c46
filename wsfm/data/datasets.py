"""Task datasets: a train split, a held-out split and a reference split, fixed by seed.

Every sample is a flat float32 vector, whatever its kind:

- ``vector`` (toy2d, ``npy``): (D,) as is;
- ``image`` (digits, ``image_folder``): (C*H*W,) in [-1, 1], ``shape`` = (C, H, W);
- ``text`` (words, ``text_lines``): see ``wsfm.data.text``.

Users' own data is validated when loaded (:func:`load_dataset` raises ``ValueError`` or
``FileNotFoundError`` naming the file): the orchestrator loads it before any stage runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wsfm.config import DataConfig
from wsfm.data.toy2d import make_toy2d

__all__ = ["Dataset", "load_dataset", "split"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Dataset:
    """``train`` (N, D) for fitting; ``test`` (M, D) held out for evaluation; ``reference``
    (R, D) real data not in ``test``, so that data-against-data gives the metric's floor.
    ``labels`` (N,) are the train labels where the data has classes."""

    kind: Literal["vector", "image", "text"]
    train: np.ndarray
    test: np.ndarray
    reference: np.ndarray
    shape: tuple[int, ...] = ()  # one sample's natural shape, e.g. (1, 8, 8)
    labels: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific (text vocabularies)

    @property
    def dim(self) -> int:
        return int(self.train.shape[1])


def split(x: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random (train, test) index split of ``len(x)`` rows, fixed by ``seed``."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(test_fraction * len(x))))
    if n_test >= len(x):
        raise ValueError(f"{len(x)} samples are too few to hold out {test_fraction:.0%}")
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def load_dataset(cfg: DataConfig) -> Dataset:
    loaders = {"toy2d": _toy2d, "digits": _digits, "npy": _npy, "image_folder": _image_folder,
               "words": _text, "text_lines": _text}
    return loaders[cfg.kind](cfg)


def _toy2d(cfg: DataConfig) -> Dataset:
    # Generated data: the splits are independent draws with distinct seeds.
    return Dataset("vector",
                   train=make_toy2d(cfg.name, cfg.n_train, seed=cfg.seed),
                   test=make_toy2d(cfg.name, cfg.n_test, seed=cfg.seed + 1_000_003),
                   reference=make_toy2d(cfg.name, cfg.n_test, seed=cfg.seed + 2_000_003),
                   shape=(2,))


def _held_out(x: np.ndarray, cfg: DataConfig, kind, shape, labels=None) -> Dataset:
    train, test = split(x, cfg.test_fraction, cfg.seed)
    # The reference is training data of the test split's size: real samples the metric has
    # not been computed against, i.e. what a perfect model would score.
    ref = np.random.default_rng(cfg.seed + 1).choice(train, size=min(len(test), len(train)),
                                                     replace=False)
    return Dataset(kind, x[train], x[test], x[ref], shape=shape,
                   labels=None if labels is None else labels[train])


def _digits(cfg: DataConfig) -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data.astype(np.float32) / 16.0) * 2.0 - 1.0  # (1797, 64) in [-1, 1]
    return _held_out(x, cfg, "image", (1, 8, 8), labels=digits.target.astype(np.int64))


def _npy(cfg: DataConfig) -> Dataset:
    path = Path(cfg.path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path}: not a numeric .npy array ({exc})") from exc
    if x.ndim != 2:
        raise ValueError(f"{path}: expected an array of shape (N, D), got shape {x.shape}")
    if len(x) < 10:
        raise ValueError(f"{path}: {len(x)} rows; need at least 10 samples")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{path}: dtype {x.dtype} is not numeric")
    x = x.astype(np.float32)
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        raise ValueError(f"{path}: {len(bad)} NaN or infinite values, first at row {bad[0][0]}")
    return _held_out(x, cfg, "vector", (x.shape[1],))


def _image_folder(cfg: DataConfig) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    folder = Path(cfg.path)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 10:
        raise ValueError(f"{folder}: {len(files)} images ({', '.join(IMAGE_SUFFIXES)}); "
                         f"need at least 10")
    height, width = cfg.image_size
    mode = "L" if cfg.channels == 1 else "RGB"
    first_mode, rows = None, []
    for path in files:
        try:
            with Image.open(path) as img:
                img.load()
                if first_mode is None:
                    first_mode = (img.mode, path)
                elif img.mode != first_mode[0]:
                    raise ValueError(f"{folder}: images of mixed modes: {first_mode[1].name} is "
                                     f"{first_mode[0]}, {path.name} is {img.mode}")
                arr = np.asarray(img.convert(mode).resize((width, height), Image.BILINEAR))
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"{path}: not a readable image ({exc})") from exc
        arr = arr.reshape(height, width, cfg.channels).transpose(2, 0, 1)  # (C, H, W)
        rows.append(arr.astype(np.float32).reshape(-1) / 127.5 - 1.0)
    x = np.stack(rows)
    return _held_out(x, cfg, "image", (cfg.channels, height, width))


def _text(cfg: DataConfig) -> Dataset:
    from wsfm.data.text import load_text_dataset

    return load_text_dataset(cfg)
