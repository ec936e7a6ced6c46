"""Per-rank micro-batches whose position survives a restart.

Every random draw of micro-batch ``i`` on rank ``r`` (data rows, noise sources, and whatever
the objective draws: times, widening noise) comes from a generator seeded by
``(seed, r, i)``. Draft sources come from the shard reader, a deterministic stream for
``(seed, r)``: a restored stream is rebuilt and fast-forwarded past the batches already
consumed. So a run resumed at step ``k`` sees exactly the batches an uninterrupted run sees
from step ``k`` on.

Shards written with ``shards.pair`` carry each draft's partner (a row index into the training
split): a ``paired`` stream then returns ``data[idx]`` beside the drafts, the coupling already
applied, instead of rows drawn at random.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from wsfm.train.spec import Mode

if TYPE_CHECKING:
    from wsfm.data.prepared import RowTable

__all__ = ["BatchStream", "as_tensor", "step_generator"]


def step_generator(seed: int, rank: int, index: int) -> torch.Generator:
    """A CPU generator seeded by ``(seed, rank, index)``, independent of any other triple."""
    digest = hashlib.blake2b(f"wsfm:{seed}:{rank}:{index}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


class BatchStream:
    """``(source (B, D), data (B, D), generator)`` micro-batches for one rank.

    Args:
        mode: ``cold`` (sources are N(0, I) noise) or ``warm`` (drafts from ``shard_urls``).
        data: (N, D) training data, a tensor or a :class:`wsfm.data.prepared.RowTable` (the
            prepared split in place, gathered a batch at a time); rows are drawn uniformly
            with replacement.
        batch: B, the micro-batch per rank.
        rank, world_size: this worker's place; ranks draw disjoint random streams.
        seed: the run's seed.
        shard_urls, shuffle_buffer: the draft shards and the reader's shuffle buffer.
        paired: the shards hold each draft's partner row (``shards.pair``); ``data[idx]``
            is returned with it.
    """

    def __init__(self, mode: Mode, data: Tensor | RowTable, batch: int, *, rank: int,
                 world_size: int, seed: int, shard_urls: Sequence[str] = (),
                 shuffle_buffer: int = 2000, paired: bool = False):
        if mode in ("warm", "reflow") and not shard_urls:
            raise ValueError(f"{mode} training needs shards")
        if paired and mode != "warm":
            raise ValueError("only warm training reads paired drafts")
        self.mode, self.data, self.batch, self.paired = mode, data, batch, paired
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.shard_urls, self.shuffle_buffer = list(shard_urls), shuffle_buffer
        self.consumed = 0  # micro-batches drawn so far: the data position
        self._drafts: Iterator[Any] | None = None

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> tuple[Tensor, Tensor, torch.Generator]:
        gen = step_generator(self.seed, self.rank, self.consumed)
        if self.mode in ("cold", "cold_ot"):
            source = torch.randn(self.batch, self.data.shape[1], generator=gen)
        elif self.paired:
            source, rows = next(self._reader())
            if int(rows.max()) >= len(self.data):
                raise ValueError(f"a paired draft names training row {int(rows.max())}, but "
                                 f"the training split has {len(self.data)} rows: the shards "
                                 "were paired with other data")
            self.consumed += 1
            return source, self._gather(rows), gen
        else:
            source = next(self._reader())
        rows = torch.randint(len(self.data), (self.batch,), generator=gen)
        self.consumed += 1
        return source, self._gather(rows), gen

    def _gather(self, rows: Tensor) -> Tensor:
        if isinstance(self.data, Tensor):
            return self.data[rows]
        return torch.from_numpy(self.data.take(rows.numpy()))

    def _reader(self) -> Iterator[Any]:
        if self._drafts is None:
            from wsfm.shard_reader import shard_batches

            self._drafts = shard_batches(self.shard_urls, self.batch, rank=self.rank,
                                         world_size=self.world_size, seed=self.seed,
                                         shuffle_buffer=self.shuffle_buffer,
                                         with_index=self.paired)
        return self._drafts

    def state_dict(self) -> dict[str, Any]:
        return {"consumed": self.consumed, "rank": self.rank, "seed": self.seed,
                "batch": self.batch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Go to ``state["consumed"]``: rebuild the draft reader and skip what was read."""
        for key in ("seed", "batch"):
            if state[key] != getattr(self, key):
                raise ValueError(f"checkpoint's data stream has {key} {state[key]}, this run "
                                 f"{getattr(self, key)}")
        self._drafts = None
        if self.mode in ("warm", "reflow"):
            reader = self._reader()
            for _ in range(state["consumed"]):
                next(reader)
        self.consumed = int(state["consumed"])


def as_tensor(x: np.ndarray) -> Tensor:
    """(N, D) training data as a tensor (shared memory, no copy): float32 rows, or int64
    character codes as they are."""
    dtype = np.int64 if x.dtype.kind in "iu" else np.float32
    return torch.from_numpy(np.ascontiguousarray(x, dtype=dtype))
