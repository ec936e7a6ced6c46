"""Users' ``npy`` arrays and image folders, streamed: ``data: {kind: npy, path: FILE}`` and
``data: {kind: image_folder, path: DIR, image_size: [H, W], channels: 1 | 3}``.

Both are keyed sources, like Parquet and WebDataset (``wsfm.data.parquet``): each row's side
of the split is decided by a hash of its key (``wsfm.data.base.hash_split``), so the rows are
checked and written a block at a time and no process holds the whole source.

- ``npy``: one (N, D) numeric array, memory-mapped (``numpy.load(mmap_mode="r")``) and read
  ``ARRAY_BYTES`` of rows at a time, each block converted to float32. A row's key is
  ``<file name>:<row>``. A bad row (NaN or infinity) is named by file and row.
- ``image_folder``: every image under the folder (``IMAGE_SUFFIXES``, searched recursively,
  sorted by path), decoded as every image source is (``wsfm.data.images``), ``IMAGE_BLOCK`` at
  a time. A row's key is the image's path relative to the folder. An image that does not
  decode is named; so is one of another mode or size than the first (both files named).

``test_fraction`` of the rows are held out in expectation, not exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from wsfm.config import DataConfig
from wsfm.data.images import IMAGE_SUFFIXES, image_row
from wsfm.errors import DataError, InputNotFound

__all__ = ["ARRAY_BYTES", "IMAGE_BLOCK", "image_files", "image_folder_blocks",
           "image_folder_kind", "npy_blocks", "npy_kind", "npy_rows"]

ARRAY_BYTES = 16 << 20  # about this many bytes of float32 rows per block of an npy array
IMAGE_BLOCK = 512  # images decoded per block
MIN_ROWS = 10


def _array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputNotFound(f"data file not found: {path}")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:  # not an .npy file, or an array of Python objects
        raise DataError(f"{path}: not a numeric .npy array ({exc})") from exc
    if not isinstance(x, np.ndarray):  # an .npz archive
        raise DataError(f"{path}: not a numeric .npy array (an .npz archive)")
    if x.ndim != 2:
        raise DataError(f"{path}: expected an array of shape (N, D), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: dtype {x.dtype} is not numeric")
    if len(x) < MIN_ROWS:
        raise DataError(f"{path}: {len(x)} rows; need at least {MIN_ROWS} samples")
    return x


def npy_rows(cfg: DataConfig) -> tuple[int, int]:
    """The source's array's (rows, width) (it is checked: shape, dtype, at least 10 rows;
    no row is read)."""
    x = _array(Path(cfg.path))
    return int(x.shape[0]), int(x.shape[1])


def npy_blocks(cfg: DataConfig, block_bytes: int = ARRAY_BYTES,
               span: tuple[int, int] | None = None) -> Iterator[tuple[np.ndarray, list[str]]]:
    """Every row of an ``npy`` source (rows lo..hi-1 of ``span``: a part of it, read by one
    task, ``wsfm.data.partitioned``), checked, a block at a time: ``(rows (b, D) float32,
    keys)``, in the array's order (module docstring). Holds one block: the array stays
    mapped, its pages in the page cache."""
    path = Path(cfg.path)
    x = _array(path)
    per = max(1, block_bytes // max(1, 4 * x.shape[1]))
    lo, hi = span or (0, len(x))
    for start in range(lo, hi, per):
        rows = np.ascontiguousarray(x[start:min(hi, start + per)], dtype=np.float32)
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            raise DataError(f"{path}: row {start + int(np.flatnonzero(bad)[0])}: NaN or "
                            "infinite values")
        yield rows, [f"{path.name}:{i}" for i in range(start, start + len(rows))]


def npy_kind(cfg: DataConfig, dim: int) -> tuple[str, tuple[int, ...]]:
    """An ``npy`` source's kind and sample shape, given its rows' width."""
    return "vector", (dim,)


def image_files(folder: Path) -> list[Path]:
    """The images of ``folder``, searched recursively and sorted; refuses a missing folder
    and fewer than ``MIN_ROWS`` images."""
    if not folder.is_dir():
        raise InputNotFound(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < MIN_ROWS:
        raise DataError(f"{folder}: {len(files)} images ({', '.join(IMAGE_SUFFIXES)}); "
                        f"need at least {MIN_ROWS}")
    return files


def image_folder_blocks(cfg: DataConfig, block: int = IMAGE_BLOCK,
                        span: tuple[int, int] | None = None, state: dict | None = None
                        ) -> Iterator[tuple[np.ndarray, list[str]]]:
    """Every image of an ``image_folder`` source as rows, checked, ``block`` at a time:
    ``(rows (b, C*H*W) float32 in [-1, 1], keys)``, in the order of the paths (module
    docstring). Holds one block and the list of paths. A part of the source
    (``wsfm.data.partitioned``): ``span`` (lo, hi) reads images lo..hi-1 of the sorted
    paths, checked against ``state`` (the first image's mode and size)."""
    folder = Path(cfg.path)
    state = {} if state is None else state
    rows: list[np.ndarray] = []
    keys: list[str] = []
    files = image_files(folder)
    lo, hi = span or (0, len(files))
    for path in files[lo:hi]:
        try:
            row, (mode, size) = image_row(path, cfg.image_size, cfg.channels)
        except OSError as exc:
            raise DataError(f"{path}: not a readable image ({exc})") from exc
        first = state.setdefault("first", (mode, size, path))  # (mode, size, path)
        _same_kind(folder, first, (mode, size, path))
        rows.append(row)
        keys.append(path.relative_to(folder).as_posix())
        if len(rows) == block:
            yield np.stack(rows), keys
            rows, keys = [], []
    if rows:
        yield np.stack(rows), keys


def image_folder_kind(cfg: DataConfig, dim: int) -> tuple[str, tuple[int, ...]]:
    """An image folder's kind and sample shape (from ``image_size`` and ``channels``)."""
    return "image", (cfg.channels, *cfg.image_size)


def _same_kind(folder: Path, first: tuple, this: tuple) -> None:
    """Refuse a folder whose images differ in mode or size (W, H): one of them is probably
    not what the user meant to train on, and resizing would hide it."""
    for i, what in ((0, "modes"), (1, "sizes")):
        if this[i] != first[i]:
            raise DataError(f"{folder}: images of mixed {what}: {first[2].name} is {first[i]}, "
                            f"{this[2].name} is {this[i]}")
