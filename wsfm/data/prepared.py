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

What is still in memory (issue 28): :func:`load_prepared` gathers each split into one array,
as ``load_dataset`` did, for the consumers that have not moved to streaming the shards
(``docs/scale.md``).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np

from wsfm.data.base import Dataset, TextInfo
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

__all__ = ["DESCRIPTION", "SPLITS", "describe_prepared", "load_prepared", "shard_rows",
           "write_prepared"]

DESCRIPTION = "dataset.json"
SPLITS = ("train", "test", "reference")
BLOCK_ROWS = 1024  # rows per tar record
SHARD_BYTES = 64 << 20  # about this many bytes of rows per shard


def shard_rows(dim: int, itemsize: int, shard_bytes: int = SHARD_BYTES) -> int:
    """Rows per shard: about ``shard_bytes`` of them, a whole number of records."""
    rows = max(1, shard_bytes // max(1, dim * itemsize))
    return max(BLOCK_ROWS, rows - rows % BLOCK_ROWS)


def _columns(data: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    return {"train": (data.train, data.labels), "test": (data.test, data.test_labels),
            "reference": (data.reference, None)}


def write_prepared(data: Dataset, out: Path, *, shard_bytes: int = SHARD_BYTES) -> dict:
    """Write ``data`` into folder ``out`` (the layout above); returns the description written
    to ``dataset.json``."""
    out = Path(out)
    splits = {}
    for split, (x, y) in _columns(data).items():
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        x = np.ascontiguousarray(x, dtype=np.int64 if data.kind == "text" else np.float32)
        per = shard_rows(x.shape[1], x.itemsize, shard_bytes)
        records = []
        for index, start in enumerate(range(0, max(len(x), 1), per)):
            with ShardWriter(folder, index) as writer:
                for s in range(start, min(start + per, len(x)), BLOCK_ROWS):
                    e = min(s + BLOCK_ROWS, start + per, len(x))
                    writer.write(x[s:e], y=None if y is None else y[s:e])
                size, sha = writer.commit()
            record = ShardRecord(shard_name(index), writer.count, size, sha, seed=0)
            write_stats(folder, index, record)
            records.append(record)
        write_manifest(folder, records)
        splits[split] = {"rows": int(len(x)), "dim": int(x.shape[1]), "dtype": str(x.dtype),
                         "labels": y is not None, "shards": len(records),
                         "bytes": int(sum(r.bytes for r in records))}
    text = None
    if data.text is not None:
        t = data.text
        text = {"seq_len": t.seq_len, "vocab": t.vocab, "alphabet": t.alphabet,
                "train_words": list(t.train_words), "test_words": list(t.test_words),
                "form": t.form}
    description = {"kind": data.kind, "shape": list(data.shape), "splits": splits,
                   "text": text}
    tmp = out / f".{DESCRIPTION}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(description, indent=1))
    os.replace(tmp, out / DESCRIPTION)
    return description


def _description(folder: Path) -> dict:
    path = folder / DESCRIPTION
    if not path.is_file():
        raise InputNotFound(f"no prepared dataset at {folder} ({DESCRIPTION} missing)")
    return json.loads(path.read_text())


def load_prepared(folder: Path | str) -> Dataset:
    """The :class:`Dataset` that ``prepare_data`` wrote into ``folder``, every shard checked
    against its manifest first (a shard that differs is named)."""
    description = _description(Path(folder))
    arrays = {split: _read_split(Path(folder) / split, description["splits"][split])
              for split in SPLITS}
    return _dataset(description, arrays)


def describe_prepared(folder: Path | str) -> Dataset:
    """What the prepared dataset in ``folder`` is, without reading a shard: its kind, sample
    shape, text vocabulary and width, as a :class:`Dataset` whose splits hold no rows
    (``(0, D)`` arrays of the stored dtype). For what needs only that: building a network,
    the shipped bundle's settings, a training run's space check."""
    description = _description(Path(folder))
    arrays = {}
    for split in SPLITS:
        about = description["splits"][split]
        labels = np.zeros(0, dtype=np.int64) if about["labels"] else None
        arrays[split] = (np.zeros((0, about["dim"]), dtype=np.dtype(about["dtype"])), labels)
    return _dataset(description, arrays)


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


def _read_split(folder: Path, about: dict) -> tuple[np.ndarray, np.ndarray | None]:
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for record in read_manifest(folder):
        problem = check_shard(folder, record)
        if problem is not None:
            raise DataError(f"prepared data shard damaged: {problem}; rerun the pipeline with "
                            "--from prepare_data to write it again")
        with tarfile.open(folder / record.shard, "r:") as tar:
            for member in tar:
                fh = tar.extractfile(member)
                assert fh is not None, member.name
                array = np.load(io.BytesIO(fh.read()), allow_pickle=False)
                (ys if member.name.endswith(".y.npy") else xs).append(array)
    x = (np.concatenate(xs) if xs
         else np.zeros((0, about["dim"]), dtype=np.dtype(about["dtype"])))
    if len(x) != about["rows"]:
        raise DataError(f"{folder}: {len(x)} rows in the shards, {DESCRIPTION} says "
                        f"{about['rows']}")
    if not about["labels"]:
        return x, None
    return x, np.concatenate(ys) if ys else np.zeros(0, dtype=np.int64)
