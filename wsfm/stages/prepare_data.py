"""Stage ``prepare_data``: the head of the DAG. Reads the task's source once and writes its
splits as data shards (``wsfm.data.prepared``), which every later stage reads instead of the
source.

Keyed sources (every user's kind but text: ``npy``, ``image_folder``, ``parquet``,
``webdataset``; each row's split is a hash of its key) are read by parts in parallel, one
fan-out task per part through ``ctx.runtime.map`` (``wsfm.data.partitioned``): each part's
rows are checked and written into its own shards a block at a time, so no process holds the
source. The other kinds are loaded whole and then written (``write_prepared``): the built-in
tasks are small and split by shuffling the row indices, and text (``text_lines``, ``prose``)
needs its whole vocabulary and documents.
"""

from __future__ import annotations

import time

from wsfm.data.datasets import load_dataset
from wsfm.data.partitioned import KEYED, prepare_keyed
from wsfm.data.prepared import write_prepared
from wsfm.stages.base import StageContext, StageResult

__all__ = ["prepare_data"]


def prepare_data(ctx: StageContext) -> StageResult:
    cfg = ctx.config.data
    start = time.perf_counter()
    keyed = cfg.kind in KEYED
    timing: dict[str, float] = {}
    if keyed:  # read, checked and written by parts as they stream: one time for both
        about = prepare_keyed(cfg, ctx.out, run=ctx.runtime.map, files=ctx.files,
                              node_id=ctx.runtime.node_id)
    else:
        data = load_dataset(cfg)
        timing["read_seconds"] = time.perf_counter() - start
        about = write_prepared(data, ctx.out)
        timing["write_seconds"] = time.perf_counter() - start - timing["read_seconds"]
    splits = about["splits"]
    seconds = time.perf_counter() - start
    rows = splits["train"]["rows"] + splits["test"]["rows"]
    size = float(sum(s["bytes"] for s in splits.values()))
    return StageResult(
        metrics={"seconds": seconds, **timing, "bytes": size, "rows_per_s": rows / seconds,
                 "mb_per_s": size / 1e6 / seconds},
        params={"kind": about["kind"], "dim": splits["train"]["dim"], "streamed": keyed,
                **{f"n_{name}": s["rows"] for name, s in splits.items()},
                "shards": sum(s["shards"] for s in splits.values())})
