"""Helpers that only tests use: writing a shard from an array, the usual epoch length."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wsfm.shards import BLOCK, ShardRecord, ShardWriter

__all__ = ["batches_per_epoch", "wait_for_pause", "write_shard"]


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


def batches_per_epoch(records: Sequence[ShardRecord], batch_size: int, world_size: int) -> int:
    """Batches per rank in one pass over the drafts (at least 1): the usual ``epoch_batches``."""
    return max(1, sum(r.count for r in records) // (batch_size * world_size))


def wait_for_pause(stage: Path, step: int, proc: subprocess.Popen, log: Path,
                   timeout: float) -> Path:
    """The pause marker (``WSFM_FAULT=pause:STAGE@step``) in ``stage``'s partial folder once
    rank 0 stalls there; fails with the log's tail if ``proc`` exits first."""
    from wsfm.train.faults import pause_marker

    deadline = time.monotonic() + timeout
    while True:
        for partial in stage.glob(".*.partial") if stage.is_dir() else []:
            marker = pause_marker(partial, step)
            if marker.is_file() and json.loads(marker.read_text())["state"] == "paused":
                return marker
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{stage.name} did not reach the pause in time"
        time.sleep(0.2)
