"""Task datasets: a train split, a held-out split and a reference split, fixed by seed.

Every sample is a flat row, whatever its kind (``wsfm.data.base``):

- ``vector`` (toy2d, ``npy``: ``wsfm.data.file_sources``, ``parquet``: ``wsfm.data.parquet``,
  ``webdataset`` of ``.npy`` members: ``wsfm.data.webdataset_source``): (D,) as is;
- ``image`` (digits, glyphs, ``image_folder``, ``webdataset`` of images): (C*H*W,) in [-1, 1],
  ``shape`` = (C, H, W);
- ``text`` (words, ``text_lines``): int64 character codes, see ``wsfm.data.text``.

Users' own data is validated when loaded (:func:`load_dataset` raises ``ValueError`` or
``FileNotFoundError`` naming the file and the row). Before any stage runs the orchestrator
checks it (:func:`describe_source`: a keyed source's first batch, any other source whole);
``prepare_data`` checks every row of a keyed source as it streams it (:func:`keyed_source`).
Every user's kind but ``text_lines`` is keyed (``npy``, ``image_folder``, ``parquet``,
``webdataset``): each row's side of the split is a hash of its key, so it can stream. The
built-in tasks and text are loaded whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from wsfm.config import DataConfig
from wsfm.data.base import Dataset, gather_keyed, held_out, split
from wsfm.data.partitioned import KEYED, source_blocks, source_kind
from wsfm.data.text import load_text_dataset
from wsfm.data.toy2d import make_toy2d

__all__ = ["Dataset", "describe_source", "keyed_source", "load_dataset", "split"]



def load_dataset(cfg: DataConfig) -> Dataset:
    """The task's splits in memory. A keyed source (every user's kind but ``text_lines``) is
    gathered from its checked stream (:func:`keyed_source`), for what still wants the whole
    source in memory (``wsfm check`` and ``prepare_data`` stream it instead)."""
    keyed = keyed_source(cfg)
    if keyed is not None:
        blocks, kind_of = keyed
        return gather_keyed(blocks, cfg, kind_of)
    loaders = {"toy2d": _toy2d, "digits": _digits, "glyphs": _glyphs,
               "words": load_text_dataset, "prose": load_text_dataset,
               "text_lines": load_text_dataset}
    return loaders[cfg.kind](cfg)


def keyed_source(cfg: DataConfig) -> tuple[Iterator[tuple[np.ndarray, list[str]]],
                                            Callable[[DataConfig, int],
                                                     tuple[str, tuple[int, ...]]]] | None:
    """A keyed source's checked rows as one stream of ``(rows, keys)`` blocks, and what gives
    its kind and shape from the rows' width; None for the kinds that are loaded whole.
    (``prepare_data`` reads it by parts, in parallel: ``wsfm.data.partitioned``.)"""
    if cfg.kind not in KEYED:
        return None
    return source_blocks(cfg), source_kind(cfg)


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
