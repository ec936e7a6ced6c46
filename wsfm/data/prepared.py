"""The prepared dataset: the output of the ``prepare_data`` stage, read by every later stage.

``prepare_data`` reads the task's source once (a built-in generator, or the user's files,
validated as :func:`wsfm.data.datasets.load_dataset` validates them) and writes each split as
data shards, so that no later stage reads or decodes the source again::

    dataset.json                 kind, sample shape, text vocabulary; per split its rows,
                                 width D, dtype and whether it has labels
    train/shard-000000.tar       WebDataset tars of row blocks: ``<key>.x.npy`` (rows, D)
    train/shard-000000.json      float32 (int64 character codes for text), ``<key>.y.npy``
    train/manifest.parquet       (rows,) int64 labels where the task has them; the stats
    test/...                     record and manifest of :mod:`wsfm.shards` (count, bytes,
    reference/...                sha256 per shard)

The shards are the draft shards' format (:class:`wsfm.shards.ShardWriter`), byte-
reproducible: the same source and seed give the same sha256 per shard. Reading checks each
shard against its manifest (size, then sha256) and names the shard that differs.

Reading: :class:`PreparedData` reads a split's rows by index (:meth:`PreparedData.take`),
shard by shard and a record at a time, so that a consumer that needs a seeded sample of a
large split holds the sample, not the split: only the shards that hold a wanted row are read
(and checked). :func:`load_prepared` gathers every split into one array, for the consumers
that still need all of it (``docs/scale.md`` lists them).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from wsfm.data.base import Dataset, TextInfo, hash_split
from wsfm.errors import DataError, InputNotFound
from wsfm.shards import (
    ShardRecord,
    ShardWriter,
    check_shard,
    read_manifest,
    shard_name,
    write_manifest,
    write_stats,
)

if TYPE_CHECKING:
    from wsfm.config import DataConfig

__all__ = ["DESCRIPTION", "SPLITS", "PreparedData", "RowTable", "SplitWriter", "check_held_out",
           "describe_prepared", "load_prepared", "route_keyed", "shard_rows", "write_description",
           "write_prepared"]

DESCRIPTION = "dataset.json"
SPLITS = ("train", "test", "reference")
BLOCK_ROWS = 1024  # rows per tar record
SHARD_BYTES = 64 << 20  # about this many bytes of rows per shard


def shard_rows(dim: int, itemsize: int, shard_bytes: int = SHARD_BYTES) -> int:
    """Rows per shard: about ``shard_bytes`` of them, a whole number of records."""
    rows = max(1, shard_bytes // max(1, dim * itemsize))
    return max(BLOCK_ROWS, rows - rows % BLOCK_ROWS)


class SplitWriter:
    """Writes one split's rows into ``folder`` as they come: records of ``BLOCK_ROWS`` rows,
    shards of :func:`shard_rows` rows (the last of each shorter), then the manifest. Holds at
    most one record. The same rows give the same bytes however they are handed over."""

    def __init__(self, folder: Path, dim: int, dtype: np.dtype, labels: bool,
                 shard_bytes: int = SHARD_BYTES, first_shard: int = 0):
        self.folder, self.dim, self.labels = Path(folder), dim, labels
        self.first_shard = first_shard  # the number of the first shard (a part's, see close)
        self.dtype = np.dtype(dtype)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.per = shard_rows(dim, self.dtype.itemsize, shard_bytes)
        self.records: list[ShardRecord] = []
        self.rows = 0
        self._writer: ShardWriter | None = None
        self._xs: list[np.ndarray] = []
        self._ys: list[np.ndarray] = []
        self._held = 0  # rows waiting for their record
        self._in_shard = 0  # rows written into the open shard

    def add(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        """Rows ``x`` (n, D) and their labels ``y`` (n,) (where the split has labels)."""
        if (y is not None) != self.labels:
            raise ValueError(f"{self.folder.name}: labels {'missing' if self.labels else 'given'}")
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{self.folder.name}: rows of shape {x.shape}, expected "
                             f"(n, {self.dim})")
        self.rows += len(x)
        s = 0
        while s < len(x):
            limit = min(BLOCK_ROWS, self.per - self._in_shard)  # where this record ends
            e = min(len(x), s + limit - self._held)
            self._xs.append(x[s:e])
            if y is not None:
                self._ys.append(np.asarray(y[s:e], dtype=np.int64))
            self._held += e - s
            s = e
            if self._held == limit:
                self._record()

    def _record(self) -> None:
        if self._writer is None:
            self._writer = ShardWriter(self.folder, self.first_shard + len(self.records))
        if self._held:
            self._writer.write(np.concatenate(self._xs),
                               y=np.concatenate(self._ys) if self.labels else None)
        self._in_shard += self._held
        self._xs, self._ys, self._held = [], [], 0
        if self._in_shard == self.per:
            self._commit()

    def _commit(self) -> None:
        assert self._writer is not None
        size, sha = self._writer.commit()
        index = self.first_shard + len(self.records)
        record = ShardRecord(shard_name(index), self._writer.count, size, sha, seed=0)
        write_stats(self.folder, index, record)
        self.records.append(record)
        self._writer, self._in_shard = None, 0

    def close(self, part: bool = False) -> dict:
        """Write what is held and the manifest (an empty split: one empty shard); returns the
        split's entry of ``dataset.json``. ``part``: these rows are one part of the split
        (``wsfm.data.partitioned``): no manifest and no empty shard, the records stay in
        ``records`` for the split's manifest."""
        if self._held or (self._writer is None and not self.records and not part):
            self._record()
        if self._writer is not None:
            self._commit()
        if not part:
            write_manifest(self.folder, self.records)
        return {"rows": self.rows, "dim": self.dim, "dtype": str(self.dtype),
                "labels": self.labels, "shards": len(self.records),
                "bytes": int(sum(r.bytes for r in self.records))}

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


def _columns(data: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    return {"train": (data.train, data.labels), "test": (data.test, data.test_labels),
            "reference": (data.reference, None)}


def _text_entry(text: TextInfo | None) -> dict | None:
    if text is None:
        return None
    return {"seq_len": text.seq_len, "vocab": text.vocab, "alphabet": text.alphabet,
            "train_words": list(text.train_words), "test_words": list(text.test_words),
            "form": text.form}


def write_description(out: Path, description: dict) -> dict:
    """Write ``dataset.json`` into ``out`` atomically (last: its presence means the shards
    are complete); returns ``description``."""
    tmp = out / f".{DESCRIPTION}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(description, indent=1))
    os.replace(tmp, out / DESCRIPTION)
    return description


def write_prepared(data: Dataset, out: Path, *, shard_bytes: int = SHARD_BYTES) -> dict:
    """Write ``data`` into folder ``out`` (the layout above); returns the description written
    to ``dataset.json``."""
    out = Path(out)
    dtype = np.dtype(np.int64 if data.kind == "text" else np.float32)
    splits = {}
    for split, (x, y) in _columns(data).items():
        writer = SplitWriter(out / split, x.shape[1], dtype, y is not None, shard_bytes)
        try:
            writer.add(x, y)
            splits[split] = writer.close()
        finally:
            writer.abort()
    return write_description(out, {"kind": data.kind, "shape": list(data.shape),
                                    "splits": splits, "text": _text_entry(data.text)})


def route_keyed(blocks: Iterable[tuple[np.ndarray, list[str]]], cfg: DataConfig
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Each block's ``(training rows, held-out rows)``, each row's side decided by its key
    (:func:`wsfm.data.base.hash_split`)."""
    for x, keys in blocks:
        held = hash_split(keys, cfg.test_fraction, cfg.seed)
        yield x[~held], x[held]


def check_held_out(cfg: DataConfig, n_train: int, n_test: int) -> None:
    """Refuses a keyed source whose rows all landed on one side of the split."""
    if not n_train or not n_test:
        raise DataError(f"{cfg.path or cfg.urls}: {n_train + n_test} samples are too few "
                        f"to hold out {cfg.test_fraction:.0%}")


def _description(folder: Path) -> dict:
    path = folder / DESCRIPTION
    if not path.is_file():
        raise InputNotFound(f"no prepared dataset at {folder} ({DESCRIPTION} missing)")
    return json.loads(path.read_text())


class PreparedData:
    """The prepared dataset in ``folder``: its description, and its rows read on demand.

    Every shard is checked against its manifest (size, then sha256) before a row of it is
    used; a shard that differs is named (:class:`DataError`)."""

    def __init__(self, folder: Path | str, about: dict | None = None):
        self.folder = Path(folder)
        self.about = about if about is not None else _description(self.folder)

    def rows(self, split: str) -> int:
        """How many rows ``split`` holds (from the description: no shard is read)."""
        return int(self._split(split)["rows"])

    @property
    def dim(self) -> int:
        return int(self.about["splits"]["train"]["dim"])

    def describe(self) -> Dataset:
        """Kind, sample shape, text vocabulary and width, as a :class:`Dataset` whose splits
        hold no rows (``(0, D)`` arrays of the stored dtype)."""
        return _dataset(self.about, {split: self._empty(split) for split in SPLITS})

    def take(self, split: str, index: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows ``index`` (any order, repeats allowed; None: every row) of ``split``, and
        their labels where it has any: ``(x (n, D), y (n,) | None)``. Holds the rows asked
        for and one record of the shards that hold them."""
        about = self._split(split)
        if index is None:
            return self._all(split, about)
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= about["rows"]):
            raise IndexError(f"rows {index.min()}..{index.max()} of {split}, which has "
                             f"{about['rows']}")
        wanted, inverse = np.unique(index, return_inverse=True)
        x = np.empty((len(wanted), about["dim"]), dtype=np.dtype(about["dtype"]))
        y = np.empty(len(wanted), dtype=np.int64) if about["labels"] else None
        for first, bx, by in self._blocks(split, wanted):
            lo, hi = np.searchsorted(wanted, [first, first + len(bx)])
            x[lo:hi] = bx[wanted[lo:hi] - first]
            if y is not None:
                if by is None:
                    raise DataError(f"{self.folder / split}: rows {first}.. have no labels, "
                                    f"{DESCRIPTION} says the split has them")
                y[lo:hi] = by[wanted[lo:hi] - first]
        return x[inverse], None if y is None else y[inverse]

    def sample(self, split: str, k: int, seed: int | list[int]
               ) -> tuple[np.ndarray, np.ndarray | None]:
        """At most ``k`` rows of ``split`` drawn without replacement by ``seed``, in the order
        of the split (:func:`wsfm.flow.search.seeded_subset`); every row where ``k`` is 0 or
        covers them all."""
        from wsfm.flow.search import seeded_subset

        return self.take(split, seeded_subset(self.rows(split), k, seed))

    def table(self, split: str) -> RowTable:
        """``split``'s rows in place, for random access (:class:`RowTable`)."""
        return RowTable(self.folder / split, self._split(split))

    def head(self, split: str, k: int) -> np.ndarray:
        """The first ``k`` rows of ``split`` (all of them where it has fewer)."""
        return self.take(split, np.arange(min(k, self.rows(split))))[0]

    def _split(self, split: str) -> dict:
        if split not in SPLITS:
            raise ValueError(f"no split {split!r}: {', '.join(SPLITS)}")
        return self.about["splits"][split]

    def _empty(self, split: str) -> tuple[np.ndarray, np.ndarray | None]:
        about = self._split(split)
        labels = np.zeros(0, dtype=np.int64) if about["labels"] else None
        return np.zeros((0, about["dim"]), dtype=np.dtype(about["dtype"])), labels

    def _all(self, split: str, about: dict) -> tuple[np.ndarray, np.ndarray | None]:
        blocks = list(self._blocks(split))
        if not blocks:
            x, y = self._empty(split)
        else:
            x = np.concatenate([b[1] for b in blocks])
            y = None if not about["labels"] else np.concatenate([b[2] for b in blocks])
        if len(x) != about["rows"]:
            raise DataError(f"{self.folder / split}: {len(x)} rows in the shards, "
                            f"{DESCRIPTION} says {about['rows']}")
        return x, y

    def _blocks(self, split: str, wanted: np.ndarray | None = None
                ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        """``(first row, x, y)`` per record of the shards of ``split`` (only those holding a
        row of sorted ``wanted``, when given), each shard checked before it is read."""
        folder = self.folder / split
        first = 0
        for record in read_manifest(folder):
            start, first = first, first + record.count
            if wanted is not None and (np.searchsorted(wanted, first)
                                       == np.searchsorted(wanted, start)):
                continue  # no wanted row in this shard
            yield from _records(_checked(folder, record), start)


class RowTable:
    """Random access to a split's rows where they lie: each gather reads from the shards the
    bytes of the rows asked for (``os.pread``, one call per run of consecutive rows of a
    record), so the process holds the rows it asked for, not the split. The files' pages
    stay in the page cache (the kernel's, shared by every process of the node that reads
    the same shards, and given back under memory pressure), not in the process: mapping
    the shards instead put every page a worker touched in its RSS (3x at 10^7 rows,
    BENCHMARKS.md "scale"). For the training workers, whose batches draw rows uniformly from
    the whole split. Every shard is checked against its manifest first."""

    def __init__(self, folder: Path | str, about: dict):
        self.folder = Path(folder)
        self.dim, self.dtype = int(about["dim"]), np.dtype(about["dtype"])
        self._row_bytes = self.dim * self.dtype.itemsize
        self._paths: list[Path] = []
        self._where: list[tuple[int, int]] = []  # per record: (its shard, its data's offset)
        starts = []
        first = 0
        for record in read_manifest(self.folder):
            path = _checked(self.folder, record)
            for offset, shape, dtype in _record_layout(path):
                if dtype != self.dtype or len(shape) != 2 or shape[1] != self.dim:
                    raise DataError(f"{self.folder / record.shard}: a record of "
                                    f"{dtype} {shape}, {DESCRIPTION} says "
                                    f"{self.dtype} (n, {self.dim})")
                starts.append(first)
                self._where.append((len(self._paths), offset))
                first += shape[0]
            self._paths.append(path)
        if first != about["rows"]:
            raise DataError(f"{self.folder}: {first} rows in the shards, {DESCRIPTION} says "
                            f"{about['rows']}")
        self._starts = np.asarray(starts + [first], dtype=np.int64)
        self._fds: dict[int, int] = {}  # shard -> descriptor, opened on first use
        self.rows = first

    def __len__(self) -> int:
        return self.rows

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.dim

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (any order, repeats allowed) as one (n, D) array."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.rows):
            raise IndexError(f"rows {rows.min()}..{rows.max()} of a split of {self.rows}")
        wanted, inverse = np.unique(rows, return_inverse=True)
        got = np.empty((len(wanted), self.dim), dtype=self.dtype)
        record = np.searchsorted(self._starts, wanted, side="right") - 1
        # runs of consecutive rows within one record: one read each
        cuts = np.flatnonzero((np.diff(wanted) != 1) | (np.diff(record) != 0)) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(wanted)], strict=True):
            if a == b:
                continue
            r = int(record[a])
            shard, offset = self._where[r]
            at = offset + int(wanted[a] - self._starts[r]) * self._row_bytes
            size = int(b - a) * self._row_bytes
            data = os.pread(self._fd(shard), size, at)
            if len(data) != size:
                raise DataError(f"{self._paths[shard]}: {len(data)} bytes at {at}, expected "
                                f"{size} (the shard changed after it was checked)")
            got[a:b] = np.frombuffer(data, dtype=self.dtype).reshape(-1, self.dim)
        return got[inverse]

    def _fd(self, shard: int) -> int:
        if shard not in self._fds:
            self._fds[shard] = os.open(self._paths[shard], os.O_RDONLY)
        return self._fds[shard]

    def close(self) -> None:
        """Close the shards' descriptors (a later :meth:`take` opens them again)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fds": {}}  # descriptors do not cross processes


def _record_layout(path: Path) -> list[tuple[int, tuple[int, ...], np.dtype]]:
    """Each ``x.npy`` record of a data shard as ``(offset of its data in the file, shape,
    dtype)``, from the tar's and the ``.npy`` headers (no row is read)."""
    out = []
    with tarfile.open(path, "r:") as tar, open(path, "rb") as fh:
        for member in tar.getmembers():
            if not member.name.endswith(".x.npy"):
                continue
            fh.seek(member.offset_data)
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(fh)
            if fortran or len(shape) != 2:
                raise DataError(f"{path}: member {member.name} is not a C-ordered (rows, D) "
                                "array")
            out.append((fh.tell(), tuple(shape), dtype))
    return out


def _checked(folder: Path, record: ShardRecord) -> Path:
    """The path of ``record``'s shard in ``folder`` once it matches its manifest row (size,
    then sha256); a shard that differs is named."""
    problem = check_shard(folder, record)
    if problem is not None:
        raise DataError(f"prepared data shard damaged: {problem}; rerun the pipeline with "
                        "--from prepare_data to write it again")
    return folder / record.shard


def _records(path: Path, first: int) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """``(first row, x, y)`` per record of one data shard, read a member at a time (each
    record's ``y.npy``, where there is one, precedes its ``x.npy``)."""
    labels = None
    with tarfile.open(path, "r|") as tar:
        for member in tar:
            fh = tar.extractfile(member)
            assert fh is not None, member.name
            array = np.load(io.BytesIO(fh.read()), allow_pickle=False)
            if member.name.endswith(".y.npy"):
                labels = array
                continue
            yield first, array, labels
            first, labels = first + len(array), None


def load_prepared(folder: Path | str) -> Dataset:
    """The whole :class:`Dataset` that ``prepare_data`` wrote into ``folder``, every shard
    checked against its manifest first (a shard that differs is named)."""
    prepared = PreparedData(folder)
    return _dataset(prepared.about, {split: prepared.take(split) for split in SPLITS})


def describe_prepared(folder: Path | str) -> Dataset:
    """What the prepared dataset in ``folder`` is, without reading a shard: its kind, sample
    shape, text vocabulary and width, as a :class:`Dataset` whose splits hold no rows
    (``(0, D)`` arrays of the stored dtype). For what needs only that: building a network,
    the shipped bundle's settings, a training run's space check."""
    return PreparedData(folder).describe()


def _dataset(description: dict,
             arrays: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> Dataset:
    text = description["text"]
    info = None if text is None else TextInfo(
        seq_len=text["seq_len"], vocab=text["vocab"], alphabet=text["alphabet"],
        train_words=tuple(text["train_words"]), test_words=tuple(text["test_words"]),
        form=text["form"])
    return Dataset(description["kind"], train=arrays["train"][0], test=arrays["test"][0],
                   reference=arrays["reference"][0], shape=tuple(description["shape"]),
                   labels=arrays["train"][1], text=info, test_labels=arrays["test"][1])
