"""Task datasets: a train split, a held-out split and a reference split, fixed by seed.

Every sample is a flat row, whatever its kind (``wsfm.data.base``):

- ``vector`` (toy2d, ``npy``, ``parquet``: ``wsfm.data.parquet``, ``webdataset`` of ``.npy``
  members: ``wsfm.data.webdataset_source``): (D,) as is;
- ``image`` (digits, glyphs, ``image_folder``, ``webdataset`` of images): (C*H*W,) in [-1, 1],
  ``shape`` = (C, H, W);
- ``text`` (words, ``text_lines``): int64 character codes, see ``wsfm.data.text``.

Users' own data is validated when loaded (:func:`load_dataset` raises ``ValueError`` or
``FileNotFoundError`` naming the file and the row). Before any stage runs the orchestrator
checks it (:func:`describe_source`: a keyed source's first batch, any other source whole);
``prepare_data`` checks every row of a keyed source as it streams it (:func:`keyed_source`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from wsfm.config import DataConfig
from wsfm.data.base import Dataset, held_out, split
from wsfm.data.images import IMAGE_SUFFIXES, image_row
from wsfm.data.parquet import load_parquet, parquet_blocks, parquet_kind
from wsfm.data.text import load_text_dataset
from wsfm.data.toy2d import make_toy2d
from wsfm.data.webdataset_source import load_webdataset, webdataset_blocks, webdataset_kind
from wsfm.errors import DataError, InputNotFound

__all__ = ["Dataset", "describe_source", "keyed_source", "load_dataset", "split"]



def load_dataset(cfg: DataConfig) -> Dataset:
    loaders = {"toy2d": _toy2d, "digits": _digits, "glyphs": _glyphs, "npy": _npy,
               "parquet": load_parquet, "webdataset": load_webdataset,
               "image_folder": _image_folder, "words": load_text_dataset,
               "prose": load_text_dataset, "text_lines": load_text_dataset}
    return loaders[cfg.kind](cfg)


def keyed_source(cfg: DataConfig) -> tuple[Iterator[tuple[np.ndarray, list[str]]],
                                            Callable[[DataConfig, int],
                                                     tuple[str, tuple[int, ...]]]] | None:
    """A keyed source's checked rows as a stream of ``(rows, keys)`` blocks, and what gives
    its kind and shape from the rows' width; None for the kinds that are loaded whole."""
    if cfg.kind == "parquet":
        return parquet_blocks(cfg), parquet_kind
    if cfg.kind == "webdataset":
        return webdataset_blocks(cfg), webdataset_kind
    return None


def describe_source(cfg: DataConfig) -> Dataset:
    """What the driver checks of users' data before any work, and what it learns: a keyed
    source's files, its column or member and its first batch of rows, as a :class:`Dataset`
    of its kind, shape and width whose splits hold no rows (every row is checked as
    ``prepare_data`` streams it, before anything trains; ``wsfm check`` checks them all); any
    other source is loaded and checked whole."""
    keyed = keyed_source(cfg)
    if keyed is None:
        return load_dataset(cfg)
    blocks, kind_of = keyed
    first = next(iter(blocks))  # a keyed source refuses to be empty
    kind, shape = kind_of(cfg, first[0].shape[1])
    none = first[0][:0]
    return Dataset(kind, none, none, none, shape=shape)  # type: ignore[arg-type]


def _toy2d(cfg: DataConfig) -> Dataset:
    # Generated data: the splits are independent draws with distinct seeds.
    return Dataset("vector",
                   train=make_toy2d(cfg.name, cfg.n_train, seed=cfg.seed),
                   test=make_toy2d(cfg.name, cfg.n_test, seed=cfg.seed + 1_000_003),
                   reference=make_toy2d(cfg.name, cfg.n_test, seed=cfg.seed + 2_000_003),
                   shape=(2,))


def _held_out(x: np.ndarray, cfg: DataConfig, kind, shape, labels=None) -> Dataset:
    train, test = split(x, cfg.test_fraction, cfg.seed)
    ref = train[held_out(len(train), len(test), cfg.seed)]
    return Dataset(kind, x[train], x[test], x[ref], shape=shape,
                   labels=None if labels is None else labels[train])


def _digits(cfg: DataConfig) -> Dataset:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data.astype(np.float32) / 16.0) * 2.0 - 1.0  # (1797, 64) in [-1, 1]
    return _held_out(x, cfg, "image", (1, 8, 8), labels=digits.target.astype(np.int64))


def _glyphs(cfg: DataConfig) -> Dataset:
    from wsfm.data.glyphs import SIZE, render_glyphs, split_glyphs

    glyphs = render_glyphs(cfg.per_glyph, cfg.seed)
    train, test, _ = split_glyphs(glyphs, cfg.test_fraction, cfg.seed)
    ref = train[held_out(len(train), len(test), cfg.seed)]
    x, y = glyphs.images, glyphs.labels
    return Dataset("image", x[train], x[test], x[ref], shape=(1, SIZE, SIZE), labels=y[train],
                   test_labels=y[test])


def _npy(cfg: DataConfig) -> Dataset:
    path = Path(cfg.path)
    if not path.is_file():
        raise InputNotFound(f"data file not found: {path}")
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path}: not a numeric .npy array ({exc})") from exc
    if x.ndim != 2:
        raise DataError(f"{path}: expected an array of shape (N, D), got shape {x.shape}")
    if len(x) < 10:
        raise DataError(f"{path}: {len(x)} rows; need at least 10 samples")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: dtype {x.dtype} is not numeric")
    x = x.astype(np.float32)
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        raise DataError(f"{path}: {len(bad)} NaN or infinite values, first at row {bad[0][0]}")
    return _held_out(x, cfg, "vector", (x.shape[1],))


def _image_folder(cfg: DataConfig) -> Dataset:
    folder = Path(cfg.path)
    if not folder.is_dir():
        raise InputNotFound(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 10:
        raise DataError(f"{folder}: {len(files)} images ({', '.join(IMAGE_SUFFIXES)}); "
                         f"need at least 10")
    first, rows = None, []
    for path in files:
        try:
            row, (mode, size) = image_row(path, cfg.image_size, cfg.channels)
        except OSError as exc:
            raise DataError(f"{path}: not a readable image ({exc})") from exc
        first = first or (mode, size, path)
        _same_kind(folder, first, (mode, size, path))
        rows.append(row)
    x = np.stack(rows)
    return _held_out(x, cfg, "image", (cfg.channels, *cfg.image_size))


def _same_kind(folder: Path, first: tuple, this: tuple) -> None:
    """Refuse a folder whose images differ in mode or size (W, H): one of them is probably
    not what the user meant to train on, and resizing would hide it."""
    for i, what in ((0, "modes"), (1, "sizes")):
        if this[i] != first[i]:
            raise DataError(f"{folder}: images of mixed {what}: {first[2].name} is {first[i]}, "
                            f"{this[2].name} is {this[i]}")
