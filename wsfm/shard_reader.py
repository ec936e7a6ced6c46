"""The training reader for draft shards (see :mod:`wsfm.shards` for the layout).

:class:`ShardReader` yields shuffled batches of drafts in epochs of exactly ``epoch_batches``
batches on every rank: the shards are split by rank and then by DataLoader worker, resampled
with replacement, and their rows pass through a shuffle buffer; with ``with_index`` each batch
comes with its drafts' precomputed partner indices. :func:`shard_batches` iterates one.
"""

from __future__ import annotations

import io
import itertools
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import webdataset as wds

from wsfm.shards import member_problem

__all__ = ["ShardReader", "ShardRefused", "shard_batches"]


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
            if self.with_index:
                yield torch.from_numpy(cols[0]), torch.from_numpy(cols[1])
            else:
                yield torch.from_numpy(cols[0])


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
        _checked_samples,
    )
    for record in stream:
        missing = [c for c in columns if c not in record]
        if missing:
            raise ValueError(f"{record['__url__']}: record {record['__key__']} has no "
                             f"{missing[0]} (with_index needs shards made with shards.pair)")
        try:
            yield [_load_npy(record[c]) for c in columns]
        except ValueError as exc:
            raise ShardRefused(f"{record['__url__']}: record {record['__key__']}: {exc}") from None


class ShardRefused(ValueError):
    """A shard holds something the reader will not take (an unsafe member name, an ``.npy``
    of objects); the message names the shard and the member. ``str`` is the message alone:
    WebDataset appends its stream objects to an exception's ``args`` on the way out."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return type(self), (self.message,)


def _checked_samples(sources: Iterator[dict]) -> Iterator[dict]:
    """``wds.tarfile_samples`` shard by shard, refusing unsafe member names before their
    data is read (``wsfm.shards.member_problem``)."""
    for source in sources:
        url = source["url"]

        def safe(name: str, url: str = url) -> bool:
            why = member_problem(name)
            if why is not None:
                raise ShardRefused(f"{url}: member {name!r} is {why}")
            return True

        yield from wds.tarfile_samples([source], select_files=safe)


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
        if spec[2].hasobject:  # objects would need unpickling
            raise ValueError(f"an .npy of dtype {spec[2]} is refused (objects are pickles)")
        if fh.tell() != end:
            raise ValueError("an .npy whose header length disagrees with its header")
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
        self.blocks, self.rows = blocks, 0
        self.parts: list[list[np.ndarray]] = []

    def take(self, n: int) -> list[np.ndarray]:
        while self.rows < n:
            cols = next(self.blocks)
            self.parts.append(cols)
            self.rows += len(cols[0])
        merged = [np.concatenate(col) for col in zip(*self.parts)]
        rest = [col[n:] for col in merged]
        self.parts, self.rows = ([rest] if len(rest[0]) else []), len(rest[0])
        return [col[:n] for col in merged]
