"""A keyed source written into the prepared dataset by parts, read in parallel: what
``prepare_data`` runs for users' ``npy``, ``image_folder``, ``parquet`` and ``webdataset``
data.

The source is cut into parts by what it is made of (:func:`source_parts`): a Parquet file or
a tar each (consecutive files grouped when there are more than ``MAX_PARTS``), about
``PART_BYTES`` of float32 rows of an ``npy`` array, ``PART_IMAGES`` images of a folder. The
cut depends on the source alone, never on the number of workers, so the shards are the same
on one worker or ten.

1. The stage reads the source's first block (:func:`first_state`): a bad first row fails
   here, and what the first rows set (their width, their image mode and size, with where they
   came from) is handed to every part, so that each part checks its rows against the same
   first sample and names both, as reading the source in one stream would.
2. One task per part (:func:`write_part`, through ``Runtime.map``) reads its files or rows a
   block at a time, checks them, routes each row to the training or the held-out split by its
   key (``wsfm.data.base.hash_split``) and writes its own shards: part ``p`` numbers its
   shards from ``p * PART_SHARDS`` (``train/shard-003000.tar`` ...), so parts never write the
   same file and the shard names sort in the source's order. A bad row does not make the task
   fail (a retry would meet it again): the task returns its one-line message.
3. The stage (:func:`assemble`) raises the first part's error in the source's order, checks
   what no part can check alone (a key that repeats across parts, from the parts' key hashes:
   ``wsfm.data.base.KeyLedger``; the count of rows; that both splits have rows), writes each
   split's manifest over every part's shards, then the reference split, read back from the
   training shards ``REFERENCE_CHUNK`` rows at a time (``wsfm.data.base.held_out``), and
   ``dataset.json``.

The rows of each split are the rows of the source in its order, so the prepared splits equal
the source loaded whole (``wsfm.data.datasets.load_dataset``) row for row; the shards break
where parts end. Each task holds a block of rows and its part's key hashes; the stage holds
the parts' results (8 bytes a key where keys may repeat) and a chunk of reference rows.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsfm.config import DataConfig
from wsfm.data.base import KeyHashes, KeyLedger, hash_split, held_out
from wsfm.data.file_sources import (
    image_files,
    image_folder_blocks,
    image_folder_kind,
    npy_blocks,
    npy_kind,
    npy_rows,
)
from wsfm.data.parquet import (
    parquet_blocks,
    parquet_count,
    parquet_files,
    parquet_kind,
    parquet_ledger,
)
from wsfm.data.prepared import (
    SHARD_BYTES,
    PreparedData,
    SplitWriter,
    check_held_out,
    write_description,
)
from wsfm.data.webdataset_source import (
    tar_files,
    webdataset_blocks,
    webdataset_count,
    webdataset_kind,
    webdataset_ledger,
)
from wsfm.errors import DataError, InputNotFound
from wsfm.shards import ShardRecord, write_manifest
from wsfm.taskfiles import LocalFiles, TaskFiles

__all__ = ["KEYED", "MAX_PARTS", "PARTS", "PART_BYTES", "PART_IMAGES", "PART_SHARDS", "PartJob",
           "PartResult", "assemble", "first_state", "prepare_keyed", "source_blocks",
           "source_kind", "source_parts", "write_part"]

KEYED = ("npy", "image_folder", "parquet", "webdataset")
MAX_PARTS = 1000  # parts of a source at most (consecutive files are grouped beyond it)
PART_SHARDS = 1000  # shard numbers of a part: part p writes p*1000 .. p*1000 + 999
PART_BYTES = 64 << 20  # about this many bytes of float32 rows of an npy array per part
PART_IMAGES = 4096  # images of a folder per part
REFERENCE_CHUNK = 65_536  # reference rows gathered from the training shards at once
PARTS = "parts.json"  # what each part read, where and how fast
SPLITS = ("train", "test")  # the splits the parts write; the reference comes after

Span = tuple[int, int]
Map = Callable[..., list[Any]]


def source_kind(cfg: DataConfig) -> Callable[[DataConfig, int], tuple[str, tuple[int, ...]]]:
    """What gives a keyed source's kind and sample shape from its rows' width."""
    return {"npy": npy_kind, "image_folder": image_folder_kind, "parquet": parquet_kind,
            "webdataset": webdataset_kind}[cfg.kind]


def source_blocks(cfg: DataConfig, span: Span | None = None, state: dict | None = None,
                  keys: KeyHashes | None = None) -> Iterator[tuple[np.ndarray, list[str]]]:
    """The checked ``(rows, keys)`` blocks of a keyed source: all of it (``span`` None: its
    count and repeated keys checked too, once every block is read) or items ``span`` of it,
    checked against ``state`` and handing its keys (where they may repeat) to ``keys``."""
    if span is None:
        return _whole(cfg, state)
    return _blocks(cfg, span, state, keys)


def _whole(cfg: DataConfig, state: dict | None) -> Iterator[tuple[np.ndarray, list[str]]]:
    ledger, n = _ledger(cfg), 0
    for x, keys in _blocks(cfg, None, state, ledger):
        n += len(keys)
        yield x, keys
    if ledger is not None:
        ledger.close()
    _check_count(cfg, n)


def _blocks(cfg: DataConfig, span: Span | None, state: dict | None,
            keys: KeyLedger | KeyHashes | None) -> Iterator[tuple[np.ndarray, list[str]]]:
    if cfg.kind == "parquet":
        return parquet_blocks(cfg, span, state, keys if cfg.key else None)
    if cfg.kind == "webdataset":
        return webdataset_blocks(cfg, span=span, state=state, keys=keys)
    if cfg.kind == "npy":
        return npy_blocks(cfg, span=span)
    return image_folder_blocks(cfg, span=span, state=state)


def _items(cfg: DataConfig) -> tuple[int, int]:
    """(how many items the source is made of, items per part)."""
    if cfg.kind in ("parquet", "webdataset"):
        n = len(parquet_files(cfg.path) if cfg.kind == "parquet" else tar_files(cfg.urls))
        return n, 1
    if cfg.kind == "npy":
        rows, dim = npy_rows(cfg)
        return rows, max(1, PART_BYTES // (4 * dim))
    return len(image_files(Path(cfg.path))), PART_IMAGES


def source_parts(cfg: DataConfig) -> list[Span]:
    """The parts of a keyed source, as (lo, hi) ranges of its files (Parquet, tars), rows
    (``npy``) or sorted images (``image_folder``): fixed by the source, at most
    ``MAX_PARTS``."""
    n, per = _items(cfg)
    per = max(per, math.ceil(n / MAX_PARTS))
    return [(lo, min(n, lo + per)) for lo in range(0, n, per)]


def first_state(cfg: DataConfig) -> dict:
    """What the source's first block sets, for every part to check its rows against (the
    first block is checked: a bad first row is refused here)."""
    state: dict = {}
    blocks = source_blocks(cfg, state=state)
    next(blocks)  # a keyed source refuses to be empty
    blocks.close()  # type: ignore[attr-defined]
    return state


@dataclass(frozen=True)
class PartJob:
    """Part ``index`` of ``cfg``'s source: items ``span``, written through ``files``."""

    cfg: DataConfig
    index: int
    span: Span
    state: dict
    files: TaskFiles
    shard_bytes: int = SHARD_BYTES
    # the runtime's node_id (Runtime.node_id), called in the task: which node read the part
    node_id: Callable[[], str] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"part {self.index} (items {self.span[0]}..{self.span[1] - 1})"


@dataclass(frozen=True)
class PartResult:
    """What a part wrote: per split its shards' records and rows; its rows' width; its keys'
    hashes (where keys may repeat); or the one-line ``error`` that stopped it
    (``missing``: a file not found)."""

    index: int
    records: dict[str, list[ShardRecord]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    dim: int = 0
    hashes: list[tuple[int, np.ndarray]] = field(default_factory=list)
    error: str = ""
    missing: bool = False
    span: Span = (0, 0)
    node: str = ""
    seconds: float = 0.0

    def about(self) -> dict:
        """The part's line of ``parts.json``."""
        return {"part": self.index, "items": list(self.span), "node": self.node,
                "seconds": round(self.seconds, 3), "rows": self.rows,
                "shards": {split: [r.shard for r in records]
                           for split, records in self.records.items()}}


def write_part(job: PartJob) -> PartResult:
    """Read, check, split and write one part (module docstring, step 2)."""
    cfg, hashes = job.cfg, KeyHashes()
    start = time.perf_counter()
    node = job.node_id() if job.node_id is not None else ""
    writers: dict[str, SplitWriter] = {}
    with job.files.workspace() as ws:
        try:
            for x, keys in source_blocks(cfg, job.span, dict(job.state), hashes):
                held = hash_split(keys, cfg.test_fraction, cfg.seed)
                if not writers:
                    writers = {split: SplitWriter(ws / split, x.shape[1], np.dtype(np.float32),
                                                  False, job.shard_bytes,
                                                  first_shard=job.index * PART_SHARDS)
                               for split in SPLITS}
                writers["train"].add(x[~held])
                writers["test"].add(x[held])
                if max(len(w.records) for w in writers.values()) >= PART_SHARDS:
                    raise DataError(f"{_source(cfg)}: {job} holds more than {PART_SHARDS} "
                                    "shards of rows; split its file into smaller ones")
            entries = {split: w.close(part=True) for split, w in writers.items()}
        except (DataError, InputNotFound) as exc:
            return PartResult(job.index, error=str(exc), missing=isinstance(exc, InputNotFound),
                              span=job.span, node=node)
        finally:
            for writer in writers.values():
                writer.abort()
        job.files.publish(ws, *[f"{split}/{name}" for split, w in writers.items()
                                for r in w.records
                                for name in (r.shard, Path(r.shard).with_suffix(".json").name)])
    return PartResult(job.index, {split: w.records for split, w in writers.items()},
                      {split: e["rows"] for split, e in entries.items()},
                      dim=writers["train"].dim if writers else 0, hashes=hashes.batches,
                      span=job.span, node=node, seconds=time.perf_counter() - start)


def _source(cfg: DataConfig) -> str:
    return cfg.path or cfg.urls


def _ledger(cfg: DataConfig) -> KeyLedger | None:
    if cfg.kind == "parquet":
        return parquet_ledger(cfg)
    if cfg.kind == "webdataset":
        return webdataset_ledger(cfg)
    return None


def _check_count(cfg: DataConfig, n: int) -> None:
    """Refuses a Parquet or tar source of fewer than 10 rows (an array's or a folder's count
    is checked before any row is read)."""
    if cfg.kind == "parquet":
        parquet_count(cfg, n)
    elif cfg.kind == "webdataset":
        webdataset_count(cfg, n)


def assemble(cfg: DataConfig, out: Path, results: Sequence[PartResult],
             shard_bytes: int = SHARD_BYTES) -> dict:
    """The prepared dataset from its parts' results, in the source's order (module
    docstring, step 3); returns the description written to ``dataset.json``."""
    out = Path(out)
    for r in sorted(results, key=lambda r: r.index):
        if r.error:
            raise (InputNotFound if r.missing else DataError)(r.error)
    results = sorted(results, key=lambda r: r.index)
    ledger = _ledger(cfg)
    if ledger is not None:
        for r in results:
            for file, hashes in r.hashes:
                ledger.add_hashes(hashes, file)
        ledger.close()
    n_train, n_test = (sum(r.rows.get(split, 0) for r in results) for split in SPLITS)
    _check_count(cfg, n_train + n_test)
    check_held_out(cfg, n_train, n_test)
    dim = next(r.dim for r in results if r.dim)
    splits = {}
    for split in SPLITS:
        records = [rec for r in results for rec in r.records.get(split, [])]
        write_manifest(out / split, records)
        splits[split] = {"rows": sum(rec.count for rec in records), "dim": dim,
                         "dtype": "float32", "labels": False, "shards": len(records),
                         "bytes": int(sum(rec.bytes for rec in records))}
    written = PreparedData(out, about={"splits": splits})
    rows = held_out(n_train, n_test, cfg.seed)
    writer = SplitWriter(out / "reference", dim, np.dtype(np.float32), False, shard_bytes)
    try:
        for s in range(0, len(rows), REFERENCE_CHUNK):
            writer.add(written.take("train", rows[s:s + REFERENCE_CHUNK])[0])
        splits["reference"] = writer.close()
    finally:
        writer.abort()
    kind, shape = source_kind(cfg)(cfg, dim)
    (out / PARTS).write_text(json.dumps([r.about() for r in results], indent=1))
    return write_description(out, {"kind": kind, "shape": list(shape), "splits": splits,
                                    "text": None})


def _in_order(fn: Callable[[Any], Any], items: Sequence[Any], **_: Any) -> list[Any]:
    return [fn(item) for item in items]


def prepare_keyed(cfg: DataConfig, out: Path, *, run: Map = _in_order,
                  files: TaskFiles | None = None, shard_bytes: int = SHARD_BYTES,
                  node_id: Callable[[], str] | None = None) -> dict:
    """Write the keyed source of ``cfg`` into ``out`` by parts: ``run(write_part, jobs,
    desc=..., unit=...)`` runs the parts (``Runtime.map``: in parallel; by default one after
    the other here), ``files`` is how a part's task reaches ``out`` (``wsfm.taskfiles``),
    ``node_id`` names the node a task runs on (``Runtime.node_id``). Returns the
    description; ``parts.json`` lists each part: its items, node, seconds, rows and shards."""
    out = Path(out)
    files = files if files is not None else LocalFiles(str(out))
    state = first_state(cfg)
    jobs = [PartJob(cfg, i, span, state, files, shard_bytes, node_id)
            for i, span in enumerate(source_parts(cfg))]
    results = run(write_part, jobs, desc="prepare_data", unit="parts")
    return assemble(cfg, out, results, shard_bytes)
