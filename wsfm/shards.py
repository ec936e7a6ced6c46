"""Draft shards: WebDataset tar files, one stats record per shard, one Parquet manifest.

Layout of a shard folder::

    shard-000000.tar     records keyed ``s000000x000000042`` (unique across shards, dot-free);
                         each holds ``x.npy``, a block of drafts, float32 (rows, D), and with a
                         precomputed coupling ``idx.npy``, their partners' rows in the training
                         split, int64 (rows,)
    shard-000000.json    the shard's stats record (a :class:`ShardRecord`), written last
    manifest.parquet     one row per shard, assembled from the stats records

A tar is written under a temporary name, fsynced and renamed into place, and only then is its
stats record written (also atomically): a shard with a record whose size and sha256 match is
complete, anything else is redone. Tars are byte-reproducible (fixed mtime), so a resumed run
writes exactly the shards an uninterrupted one does. The shards are plain WebDataset tars:
``webdataset.WebDataset`` reads them without this module. Drafts are stored in blocks of rows:
a tar member costs at least 1 KiB of headers and padding, far more than one small vector.

Reading for training is :class:`ShardReader` / :func:`shard_batches`.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import tarfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import webdataset as wds

__all__ = [
    "BLOCK",
    "MANIFEST",
    "ShardReader",
    "ShardRecord",
    "ShardWriter",
    "batches_per_epoch",
    "check_shard",
    "read_manifest",
    "read_stats",
    "shard_batches",
    "shard_key",
    "shard_name",
    "sha256_file",
    "stats_name",
    "verify_shards",
    "write_manifest",
    "write_shard",
    "write_stats",
]

MANIFEST = "manifest.parquet"
BLOCK = 256  # drafts per tar record (default)


@dataclass(frozen=True)
class ShardRecord:
    """One shard's stats record and manifest row."""

    shard: str  # file name, e.g. shard-000003.tar
    count: int  # drafts
    bytes: int
    sha256: str
    seed: int
    seconds: float = 0.0  # wall time to make it (the one column that is not reproducible)
    draft_sha256: str = ""  # sha256 of the draft model file the shard was sampled from
    pair: str = "none"  # precomputed coupling: none, nearest, minibatch_ot (idx.npy present)


_SCHEMA = pa.schema([("shard", pa.string()), ("count", pa.int64()), ("bytes", pa.int64()),
                     ("sha256", pa.string()), ("seed", pa.int64()), ("seconds", pa.float64()),
                     ("draft_sha256", pa.string()), ("pair", pa.string())])


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def stats_name(index: int) -> str:
    return f"shard-{index:06d}.json"


def shard_key(shard: int, index: int) -> str:
    return f"s{shard:06d}x{index:09d}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class ShardWriter:
    """Writes shard ``index`` block by block under a temporary name; :meth:`commit` renames
    it into place. Used as a context manager, an exception removes the temporary file.

    The tar is written member by member (what ``webdataset.TarWriter`` writes, at a fraction
    of its per-record cost), hashed as it goes."""

    def __init__(self, folder: Path, index: int):
        self.index = index
        self.final = Path(folder) / shard_name(index)
        self.tmp = self.final.with_name(f".{self.final.name}.tmp-{os.getpid()}")
        self._fh = open(self.tmp, "wb")
        self._sha = hashlib.sha256()
        self.size = 0
        self.count = 0
        self._blocks = 0

    def write(self, x: np.ndarray, idx: np.ndarray | None = None) -> None:
        """One record: drafts ``x`` (rows, D) and optionally partner indices ``idx`` (rows,)."""
        key = shard_key(self.index, self._blocks)
        if idx is not None:
            assert idx.shape == (len(x),), (idx.shape, x.shape)
            self._member(f"{key}.idx.npy", _npy(np.ascontiguousarray(idx, dtype=np.int64)))
        self._member(f"{key}.x.npy", _npy(np.ascontiguousarray(x, dtype=np.float32)))
        self._blocks += 1
        self.count += len(x)

    def _member(self, name: str, payload: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uname, info.gname = len(payload), 0o444, "bigdata", "bigdata"
        info.mtime = 0  # fixed: the bytes, hence the sha256, are a function of the drafts alone
        pad = b"\0" * (-len(payload) % tarfile.BLOCKSIZE)
        self._emit(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + payload + pad)

    def _emit(self, data: bytes) -> None:
        self._sha.update(data)
        self._fh.write(data)
        self.size += len(data)

    def commit(self) -> tuple[int, str]:
        """Finish the tar, fsync it, rename it into place; returns its (bytes, sha256)."""
        end = self.size + 2 * tarfile.BLOCKSIZE  # two zero blocks end an archive...
        self._emit(b"\0" * (end - self.size + (-end % tarfile.RECORDSIZE)))  # ...then pad
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp, self.final)
        return self.size, self._sha.hexdigest()

    def abort(self) -> None:
        self._fh.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is not None:
            self.abort()


_NPY_HEADERS_OUT: dict[tuple[str, tuple[int, ...]], bytes] = {}


def _npy(a: np.ndarray) -> bytes:
    """``np.save`` of a C-contiguous array as bytes, with the header made once per shape."""
    key = (a.dtype.str, a.shape)
    header = _NPY_HEADERS_OUT.get(key)
    if header is None:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {
            "descr": np.lib.format.dtype_to_descr(a.dtype), "fortran_order": False,
            "shape": a.shape})
        header = buf.getvalue()
        if len(_NPY_HEADERS_OUT) > 256:
            _NPY_HEADERS_OUT.clear()
        _NPY_HEADERS_OUT[key] = header
    return header + a.tobytes()


def write_shard(folder: Path, index: int, x: np.ndarray, seed: int, block: int = BLOCK, *,
                idx: np.ndarray | None = None, pair: str = "none") -> ShardRecord:
    """Write drafts ``x`` (N, D), paired by ``pair`` with rows ``idx`` (N,), as shard ``index``."""
    if (idx is None) != (pair == "none"):
        raise ValueError(f"pair {pair!r} and idx {'absent' if idx is None else 'given'} disagree")
    with ShardWriter(folder, index) as writer:
        for start in range(0, len(x), block):
            writer.write(x[start:start + block], None if idx is None else idx[start:start + block])
        size, sha = writer.commit()
    return ShardRecord(writer.final.name, writer.count, size, sha, seed, pair=pair)


def write_stats(folder: Path, index: int, record: ShardRecord) -> Path:
    """Write ``shard-%06d.json`` atomically (after the tar is in place)."""
    path = Path(folder) / stats_name(index)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(asdict(record), indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path


def read_stats(folder: Path, index: int) -> ShardRecord | None:
    """Shard ``index``'s stats record, or None when it is missing or unreadable."""
    try:
        data = json.loads((Path(folder) / stats_name(index)).read_text())
        return ShardRecord(**data)
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def check_shard(folder: Path, record: ShardRecord) -> str | None:
    """What is wrong with ``record``'s tar in ``folder`` (size, then sha256), or None."""
    path = Path(folder) / record.shard
    if not path.is_file():
        return f"{path}: missing"
    if path.stat().st_size != record.bytes:
        return f"{path}: {path.stat().st_size} bytes, expected {record.bytes}"
    if sha256_file(path) != record.sha256:
        return f"{path}: sha256 differs from its record"
    return None


def write_manifest(folder: Path, records: Sequence[ShardRecord]) -> Path:
    """Write ``manifest.parquet`` (rows sorted by shard name) atomically."""
    rows = sorted((asdict(r) for r in records), key=lambda r: r["shard"])
    path = Path(folder) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(rows, schema=_SCHEMA), tmp)
    os.replace(tmp, path)
    return path


def read_manifest(folder: Path) -> list[ShardRecord]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no shard manifest at {path}")
    known = {f.name for f in fields(ShardRecord)}
    return [ShardRecord(**{k: v for k, v in row.items() if k in known})
            for row in pq.read_table(path).to_pylist()]


def verify_shards(folder: Path) -> list[str]:
    """Check each shard against the manifest; one message per bad shard (empty: all good).

    A tar in the folder that the manifest does not list is reported too."""
    records = read_manifest(folder)
    problems = [p for p in (check_shard(folder, r) for r in records) if p]
    listed = {r.shard for r in records}
    problems += [f"{p}: not in the manifest" for p in sorted(Path(folder).glob("shard-*.tar"))
                 if p.name not in listed]
    return problems


# ---------------------------------------------------------------------------------- reading


def batches_per_epoch(records: Sequence[ShardRecord], batch_size: int, world_size: int) -> int:
    """Batches per rank in one pass over the drafts (at least 1): the usual ``epoch_batches``."""
    return max(1, sum(r.count for r in records) // (batch_size * world_size))


class ShardReader(torch.utils.data.IterableDataset):
    """Shuffled batches of drafts for one rank, in equal-length epochs.

    The shards are split by rank (``urls[rank::world_size]``) and, inside a DataLoader, by
    worker; each part is *resampled* (shards drawn with replacement, seeded per rank, worker
    and epoch), so the stream never runs dry whatever the shard sizes. Rows pass a shuffle
    buffer of ``shuffle_buffer`` rows and come out as ``batch_size`` batches: ``x`` (B, D)
    float32, or with ``with_index`` the pair ``(x, idx)``, ``idx`` (B,) int64 partner rows in
    the training split. One iteration yields exactly ``epoch_batches`` batches on every rank
    (split over DataLoader workers), the analogue of WebDataset's ``with_epoch``, so uneven
    shards cannot leave one rank waiting on another; ``epoch_batches=None`` never ends.
    Call :meth:`set_epoch` between epochs for a fresh order.
    """

    def __init__(self, urls: Sequence[str], batch_size: int, *, rank: int = 0,
                 world_size: int = 1, seed: int = 0, shuffle_buffer: int = 1000,
                 epoch_batches: int | None = None, with_index: bool = False):
        super().__init__()
        if not urls:
            raise ValueError("no shards to read")
        if batch_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad batch_size {batch_size} or rank {rank} of {world_size}")
        if epoch_batches is not None and epoch_batches < 1:
            raise ValueError(f"epoch_batches must be >= 1 or None, got {epoch_batches}")
        self.urls, self.batch_size = list(urls), batch_size
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.shuffle_buffer, self.epoch_batches = max(shuffle_buffer, batch_size), epoch_batches
        self.with_index = with_index
        self.epoch = 0
        if len(self.urls) < world_size:
            warnings.warn(f"{len(self.urls)} shards for {world_size} ranks: every rank reads "
                          "all of them", stacklevel=2)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.epoch_batches is None:
            raise TypeError("an endless ShardReader (epoch_batches=None) has no length")
        return self.epoch_batches

    def __iter__(self) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        mine = _split(_split(self.urls, self.rank, self.world_size), worker, workers)
        seeds = np.random.SeedSequence([self.seed, self.rank, worker, self.epoch])
        shard_seed, row_seed = (int(s) for s in seeds.generate_state(2))
        columns = ("x.npy", "idx.npy") if self.with_index else ("x.npy",)
        blocks = _blocks(mine, shard_seed, columns)
        batches = _shuffled(blocks, self.batch_size, self.shuffle_buffer,
                            np.random.default_rng(row_seed))
        if self.epoch_batches is not None:
            share = self.epoch_batches // workers + (worker < self.epoch_batches % workers)
            batches = itertools.islice(batches, share)
        for cols in batches:
            tensors = tuple(torch.from_numpy(c) for c in cols)
            yield tensors if self.with_index else tensors[0]


def shard_batches(urls: Sequence[str], batch_size: int, **kwargs
                  ) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """``iter(ShardReader(urls, batch_size, **kwargs))``: endless unless ``epoch_batches``."""
    return iter(ShardReader(urls, batch_size, **kwargs))


def _split(items: list[str], part: int, parts: int) -> list[str]:
    """Part ``part`` of ``parts`` (round robin); everything when there are too few items."""
    return items[part::parts] if len(items) >= parts else items


def _blocks(urls: list[str], seed: int, columns: tuple[str, ...]) -> Iterator[list[np.ndarray]]:
    """Endless records drawn from ``urls`` with replacement: the named arrays of each."""
    stream = wds.DataPipeline(
        wds.ResampledShards(urls, seed=seed, worker_seed=lambda: 0, deterministic=True),
        wds.tarfile_to_samples(),
    )
    for record in stream:
        missing = [c for c in columns if c not in record]
        if missing:
            raise ValueError(f"{record['__url__']}: record {record['__key__']} has no "
                             f"{missing[0]} (with_index needs shards made with shards.pair)")
        yield [_load_npy(record[c]) for c in columns]


_NPY_HEADERS: dict[bytes, tuple] = {}


def _load_npy(data: bytes) -> np.ndarray:
    """``np.load`` of ``.npy`` bytes, parsing each distinct header once: for small blocks the
    header's ``literal_eval`` costs more than the data."""
    size = 2 if data[6] == 1 else 4  # format version 1 has a 2-byte header length
    end = 8 + size + int.from_bytes(data[8:8 + size], "little")
    spec = _NPY_HEADERS.get(data[:end])
    if spec is None:
        fh = io.BytesIO(data)
        version = np.lib.format.read_magic(fh)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        spec = read(fh)
        assert fh.tell() == end and not spec[2].hasobject, "unexpected .npy header"
        if len(_NPY_HEADERS) > 256:
            _NPY_HEADERS.clear()
        _NPY_HEADERS[data[:end]] = spec
    shape, fortran, dtype = spec
    return np.frombuffer(data, dtype, offset=end).reshape(shape, order="F" if fortran else "C")


def _shuffled(blocks: Iterator[list[np.ndarray]], batch: int, buffer: int,
              rng: np.random.Generator) -> Iterator[list[np.ndarray]]:
    """Batches drawn at random from a buffer of rows that incoming rows refill.

    The same scheme as ``webdataset.shuffle``, vectorised: each batch takes ``batch`` random
    rows of the buffer and the next ``batch`` incoming rows take their places."""
    queue = _RowQueue(blocks)
    pool = queue.take(buffer)
    while True:
        pick = rng.choice(buffer, size=batch, replace=False)
        out = [col[pick] for col in pool]
        for col, new in zip(pool, queue.take(batch)):
            col[pick] = new
        yield out


class _RowQueue:
    """Rows of a stream of blocks, taken ``n`` at a time."""

    def __init__(self, blocks: Iterator[list[np.ndarray]]):
        self.blocks, self.parts, self.rows = blocks, [], 0

    def take(self, n: int) -> list[np.ndarray]:
        while self.rows < n:
            cols = next(self.blocks)
            self.parts.append(cols)
            self.rows += len(cols[0])
        merged = [np.concatenate(col) for col in zip(*self.parts)]
        rest = [col[n:] for col in merged]
        self.parts, self.rows = ([rest] if len(rest[0]) else []), len(rest[0])
        return [col[:n] for col in merged]
