"""Stage ``prepare_data``: the head of the DAG. Reads the task's source once and writes its
splits as data shards (``wsfm.data.prepared``), which every later stage reads instead of the
source."""

from __future__ import annotations

import time

from wsfm.data.datasets import load_dataset
from wsfm.data.prepared import write_prepared
from wsfm.stages.base import StageContext, StageResult

__all__ = ["prepare_data"]


def prepare_data(ctx: StageContext) -> StageResult:
    start = time.perf_counter()
    data = load_dataset(ctx.config.data)
    read = time.perf_counter() - start
    about = write_prepared(data, ctx.out)
    splits = about["splits"]
    return StageResult(
        metrics={"read_seconds": read, "write_seconds": time.perf_counter() - start - read,
                 "bytes": float(sum(s["bytes"] for s in splits.values()))},
        params={"kind": data.kind, "dim": data.dim,
                **{f"n_{name}": s["rows"] for name, s in splits.items()},
                "shards": sum(s["shards"] for s in splits.values())})

