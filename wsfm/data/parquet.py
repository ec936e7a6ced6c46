"""Users' samples in Parquet: ``data: {kind: parquet, path: FILE | DIR | GLOB, column: NAME}``.

The column holds one sample per row as a fixed-length list of numbers (``list<float>``,
``list<double>``, ``fixed_size_list<...>`` or integers); every row must have the same length
D. Images instead: ``image_column: NAME``, a binary column of encoded images (PNG, JPEG, ...),
each decoded and converted by ``image_size`` and ``channels`` as every image source is
(``wsfm.data.images``); an image that does not decode, or of another mode or size than the
first, is named by file and row. The files are read one record batch at a time
(``pyarrow.parquet.ParquetFile.iter_batches``), so a bad row is found without first reading
every file, and the error names the file and the row: a missing column, a column of another
type, a null, a row of another length, NaN or infinity.

**The split is decided per row by a hash of its key** (``wsfm.data.base.hash_split``), not by
shuffling the row indices: the key is the row's value in ``key`` when the YAML names a key
column, else ``<file name>:<row>``. So a row lands on the same side whatever the order of the
files, the batch size or how a future reader splits the work (with a key column, whatever the
files).
``test_fraction`` of the rows are held out in expectation, not exactly.

``parquet_blocks`` streams the checked rows a batch at a time: ``prepare_data`` writes them into
its shards as they come (``wsfm.data.prepared``), holding a batch (and a hash of each key of a
key column, to refuse a repeat: ``wsfm.data.base.KeyLedger``).
``wsfm.data.datasets.load_dataset`` gathers them into one (N, D) float32 array, for what still
wants the whole source in memory.
"""

from __future__ import annotations

import functools
import glob
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from wsfm.config import DataConfig
from wsfm.data.base import KeyHashes, KeyLedger, hash_split
from wsfm.data.images import image_row
from wsfm.data.remote import open_remote, remote_files, source_name
from wsfm.errors import DataError, InputNotFound
from wsfm.uri import is_uri

# pyarrow is imported inside the functions that read: it stays out of the driver's start-up
# (which imports this module through wsfm.data.datasets) unless Parquet data is read.
__all__ = ["BATCH_ROWS", "hash_split", "parquet_blocks", "parquet_count", "parquet_files",
           "parquet_kind", "parquet_ledger", "read_rows"]

BATCH_ROWS = 8192  # rows per record batch read


def parquet_files(path: str) -> list[Path | str]:
    """The files of ``path``: one file, every ``*.parquet`` under a folder, or a glob; sorted
    by name (the order does not decide the split). An object-store URI (``s3://...``) names an
    object, a prefix or a glob the same way (``wsfm.data.remote``); its files are URIs."""
    if is_uri(path):
        return list(remote_files(path, ".parquet"))
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.parquet") if f.is_file())
        where = f"folder {p}"
    else:
        files = sorted(Path(f) for f in glob.glob(path, recursive=True) if Path(f).is_file())
        where = f"pattern {path}"
        if not files and not any(c in path for c in "*?["):
            raise InputNotFound(f"data file not found: {path}")
    if not files:
        raise InputNotFound(f"no .parquet files in {where}")
    return list(files)


def _numeric_list(type_) -> bool:
    import pyarrow as pa

    if not (pa.types.is_list(type_) or pa.types.is_large_list(type_)
            or pa.types.is_fixed_size_list(type_)):
        return False
    value = type_.value_type
    return pa.types.is_floating(value) or pa.types.is_integer(value)


def read_rows(path: Path | str, column: str, key: str = "", batch_rows: int = BATCH_ROWS,
              images: DataConfig | None = None,
              first: dict | None = None) -> Iterator[tuple[np.ndarray, list[str]]]:
    """One file's samples, a record batch at a time: ``(rows (b, D) float32, keys)``,
    checked as the module docstring says (``DataError`` naming the file and the row).
    ``images``: ``column`` holds encoded images, converted by its ``image_size`` and
    ``channels``; ``first`` remembers the first image's mode and size across calls."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(open_remote(str(path), seekable=True) if is_uri(path) else path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a damaged file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    schema = pf.schema_arrow
    for name in (column, key):
        if name and schema.get_field_index(name) < 0:
            raise DataError(f"{path}: no column {name!r} (columns: {', '.join(schema.names)})")
    type_ = schema.field(column).type
    if images is not None and not (pa.types.is_binary(type_) or pa.types.is_large_binary(type_)):
        raise DataError(f"{path}: column {column!r} is {type_}, not binary (one encoded image "
                        f"per row)")
    if images is None and not _numeric_list(type_):
        raise DataError(f"{path}: column {column!r} is {type_}, not a list of numbers "
                        f"(one sample per row)")
    start, name = 0, source_name(path)
    for batch in pf.iter_batches(batch_size=batch_rows, columns=[c for c in (column, key) if c]):
        values = batch.column(column)
        x = (_check_batch(path, column, values, start) if images is None
             else _decode_batch(path, column, values, start, images,
                                first if first is not None else {}))
        yield x, (
            [str(v) for v in batch.column(key).to_pylist()] if key
            else [f"{name}:{start + i}" for i in range(len(values))])
        start += len(values)


def _check_batch(path: Path | str, column: str, values, start: int) -> np.ndarray:
    import pyarrow.compute as pc

    if values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{path}: row {start + row}: column {column!r} is null")
    lengths = pc.list_value_length(values).to_numpy(zero_copy_only=False)
    if len(lengths) and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise DataError(f"{path}: row {start + row}: {lengths[row]} values, row {start} has "
                        f"{lengths[0]} (every sample needs the same length)")
    if len(lengths) and lengths[0] == 0:
        raise DataError(f"{path}: row {start}: an empty sample")
    flat = pc.list_flatten(values)
    if flat.null_count:
        row = int(np.repeat(np.arange(len(lengths)), lengths)[
            np.flatnonzero(flat.is_null().to_numpy(zero_copy_only=False))[0]])
        raise DataError(f"{path}: row {start + row}: a null value in column {column!r}")
    x = flat.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(lengths), -1)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise DataError(f"{path}: row {start + int(np.flatnonzero(bad)[0])}: NaN or infinite "
                        f"values in column {column!r}")
    return x


def _decode_batch(path: Path | str, column: str, values, start: int, cfg: DataConfig,
                  first: dict) -> np.ndarray:
    """A batch of encoded images as rows (``wsfm.data.images``), checked one by one."""
    import io

    rows = []
    for i, raw in enumerate(values.to_pylist()):
        if raw is None:
            raise DataError(f"{path}: row {start + i}: column {column!r} is null")
        try:
            row, kind = image_row(io.BytesIO(raw), cfg.image_size, cfg.channels)
        except OSError as exc:
            raise DataError(f"{path}: row {start + i}: not a readable image in column "
                            f"{column!r} ({exc})") from exc
        where = first.setdefault("kind", (kind, f"row {start + i} of {path}"))
        if kind != where[0]:
            raise DataError(f"{path}: row {start + i}: an image of mode and size {kind}, "
                            f"{where[1]} is {where[0]} (every image needs the same)")
        rows.append(row)
    return np.stack(rows) if rows else np.zeros((0, cfg.channels * int(np.prod(
        cfg.image_size))), np.float32)


def parquet_blocks(cfg: DataConfig, span: tuple[int, int] | None = None,
                   state: dict | None = None, keys: KeyLedger | KeyHashes | None = None
                   ) -> Iterator[tuple[np.ndarray, list[str]]]:
    """The rows of a Parquet source's files ``span`` (lo, hi; None: every file), checked, a
    record batch at a time: ``(rows (b, D) float32, keys)``, in the order of the files
    (module docstring). Each row is checked against ``state``, what the source's first rows
    set (their width, their image mode and size); the key column's values go to ``keys``
    (:func:`parquet_ledger` or a part's hashes). Holds one batch. The count and the repeated
    keys are checked over the whole source by its caller (``wsfm.data.partitioned``)."""
    state = {} if state is None else state
    images = cfg if cfg.image_column else None
    files = parquet_files(cfg.path)
    lo, hi = span or (0, len(files))
    for i in range(lo, hi):
        path = files[i]
        for x, k in read_rows(path, cfg.image_column or cfg.column, cfg.key, images=images,
                              first=state):
            if "dim" not in state:
                state["dim"], state["first"] = x.shape[1], path
            elif x.shape[1] != state["dim"]:
                raise DataError(f"{path}: {x.shape[1]} values per row, {state['first']} has "
                                f"{state['dim']} (every sample needs the same length)")
            if keys is not None:
                keys.add(k, i)
            yield x, k


def parquet_ledger(cfg: DataConfig) -> KeyLedger | None:
    """What refuses a repeated value of the key column (None: no key column, every row's
    key is its file and row). The files are listed only to name a repeat."""
    if not cfg.key:
        return None
    files = functools.cache(lambda: parquet_files(cfg.path))
    return KeyLedger(lambda i: _key_values(files()[i], cfg.key), lambda key, a, b: (
        f"{files()[b]}: key column {cfg.key!r} repeats a value, {key!r} (also in "
        f"{files()[a]}): a row's key decides its split, so keys must be unique"))


def parquet_count(cfg: DataConfig, n: int) -> None:
    """Refuses a source of fewer than 10 rows."""
    if n < 10:
        raise DataError(f"{cfg.path}: {n} rows; need at least 10 samples")


def _key_values(path: Path | str, key: str) -> Iterator[str]:
    """The values of column ``key`` of one file, as the keys :func:`read_rows` gives."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(open_remote(str(path), seekable=True) if is_uri(path) else path)
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[key]):
        yield from (str(v) for v in batch.column(key).to_pylist())


def parquet_kind(cfg: DataConfig, dim: int) -> tuple[str, tuple[int, ...]]:
    """A Parquet source's kind and sample shape, given its rows' width."""
    if cfg.image_column:
        return "image", (cfg.channels, *cfg.image_size)
    return "vector", (dim,)
