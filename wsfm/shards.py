"""Draft shards: WebDataset tar files plus one Parquet manifest.

Layout of a shard folder::

    shard-000000.tar     records keyed ``s000000x000000042`` (unique across shards, dot-free)
    shard-000001.tar     each record holds ``x.npy``: a block of drafts, float32 (rows, D)
    manifest.parquet     one row per shard: shard, count, bytes, sha256, seed

Each tar is written under a temporary name and renamed into place, so a crash never leaves a
half-written ``shard-*.tar``. The shards are plain WebDataset tars: ``webdataset.WebDataset``
reads them without this module. Drafts are stored in blocks of rows (``BLOCK`` by default):
a tar member costs at least 1 KiB of headers and padding, far more than one small vector.
"""

from __future__ import annotations

import hashlib
import random
import io
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import webdataset as wds

__all__ = [
    "MANIFEST",
    "ShardRecord",
    "read_manifest",
    "shard_batches",
    "shard_key",
    "shard_name",
    "sha256_file",
    "verify_shards",
    "write_manifest",
    "write_shard",
]

MANIFEST = "manifest.parquet"
BLOCK = 256  # drafts per tar record


@dataclass(frozen=True)
class ShardRecord:
    shard: str  # file name, e.g. shard-000003.tar
    count: int
    bytes: int
    sha256: str
    seed: int


def shard_name(index: int) -> str:
    return f"shard-{index:06d}.tar"


def shard_key(shard: int, index: int) -> str:
    return f"s{shard:06d}x{index:09d}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_shard(folder: Path, index: int, x: np.ndarray, seed: int,
                block: int = BLOCK) -> ShardRecord:
    """Write drafts ``x`` (N, ...) as shard ``index`` in ``folder``, atomically."""
    folder = Path(folder)
    final = folder / shard_name(index)
    tmp = folder / f".{final.name}.tmp-{os.getpid()}"
    x = np.ascontiguousarray(x, dtype=np.float32)
    with wds.TarWriter(str(tmp)) as sink:
        for i, start in enumerate(range(0, len(x), block)):
            buf = io.BytesIO()
            np.save(buf, x[start:start + block])
            sink.write({"__key__": shard_key(index, i), "x.npy": buf.getvalue()})
    os.replace(tmp, final)
    return ShardRecord(final.name, len(x), final.stat().st_size, sha256_file(final), seed)


def write_manifest(folder: Path, records: list[ShardRecord]) -> Path:
    """Write ``manifest.parquet`` (rows sorted by shard name) atomically."""
    rows = sorted((asdict(r) for r in records), key=lambda r: r["shard"])
    table = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("shard", pa.string()),
                ("count", pa.int64()),
                ("bytes", pa.int64()),
                ("sha256", pa.string()),
                ("seed", pa.int64()),
            ]
        ),
    )
    path = Path(folder) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def read_manifest(folder: Path) -> list[ShardRecord]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no shard manifest at {path}")
    return [ShardRecord(**row) for row in pq.read_table(path).to_pylist()]


def verify_shards(folder: Path) -> list[str]:
    """Check each shard against the manifest; returns one message per bad shard (empty: all good)."""
    problems = []
    for rec in read_manifest(folder):
        path = Path(folder) / rec.shard
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != rec.bytes:
            problems.append(f"{path}: {path.stat().st_size} bytes, manifest says {rec.bytes}")
        elif sha256_file(path) != rec.sha256:
            problems.append(f"{path}: sha256 differs from the manifest")
    return problems


def shard_batches(
    urls: list[str],
    batch_size: int,
    *,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    shuffle_buffer: int = 1000,
) -> Iterator[torch.Tensor]:
    """An endless stream of (batch_size, D) float32 draft batches for one rank.

    The shards are split by rank (``urls[rank::world_size]`` when there are enough of them) and
    resampled with a rank-specific seed, so every rank can draw the same number of batches
    whatever the shard sizes: the caller takes exactly ``steps`` batches on every rank, and
    uneven shards cannot hang a distributed run.
    """
    if not urls:
        raise ValueError("no shards to read")
    mine = urls[rank::world_size] if len(urls) >= world_size else urls
    pipeline = wds.DataPipeline(
        wds.ResampledShards(
            mine, seed=seed, worker_seed=lambda: rank * 1000, deterministic=True
        ),
        wds.tarfile_to_samples(),
        wds.decode(),
        _rows,
        wds.shuffle(shuffle_buffer, rng=random.Random(seed * 7919 + rank)),
        wds.batched(batch_size, collation_fn=_stack, partial=False),
    )
    yield from pipeline


def _rows(records: Iterator[dict]) -> Iterator[np.ndarray]:
    """Blocks of drafts -> single drafts."""
    for record in records:
        yield from record["x.npy"]


def _stack(rows: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(rows))
