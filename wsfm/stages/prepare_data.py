"""Stage ``prepare_data``: the head of the DAG. Reads the task's source once and writes its
splits as data shards (``wsfm.data.prepared``), which every later stage reads instead of the
source.

Keyed sources (every user's kind but text: ``npy``, ``image_folder``, ``parquet``,
``webdataset``; each row's split is a hash of its key) stream: rows are checked and written
into the shards a batch at a time, so the stage holds a batch, not the source
(``wsfm.data.prepared.stream_prepared``). The other kinds are loaded whole and then written
(``write_prepared``): the built-in tasks are small and split by shuffling the row indices,
and text (``text_lines``, ``prose``) needs its whole vocabulary and documents.
"""

from __future__ import annotations

import time

from wsfm.data.datasets import keyed_source, load_dataset
from wsfm.data.prepared import stream_prepared, write_prepared
from wsfm.stages.base import StageContext, StageResult

__all__ = ["prepare_data"]


def prepare_data(ctx: StageContext) -> StageResult:
    cfg = ctx.config.data
    start = time.perf_counter()
    keyed = keyed_source(cfg)
    timing: dict[str, float] = {}
    if keyed is not None:  # read, checked and written as it streams: one time for both
        blocks, kind_of = keyed
        about = stream_prepared(blocks, cfg, kind_of, ctx.out)
    else:
        data = load_dataset(cfg)
        timing["read_seconds"] = time.perf_counter() - start
        about = write_prepared(data, ctx.out)
        timing["write_seconds"] = time.perf_counter() - start - timing["read_seconds"]
    splits = about["splits"]
    return StageResult(
        metrics={"seconds": time.perf_counter() - start, **timing,
                 "bytes": float(sum(s["bytes"] for s in splits.values()))},
        params={"kind": about["kind"], "dim": splits["train"]["dim"], "streamed": keyed is not None,
                **{f"n_{name}": s["rows"] for name, s in splits.items()},
                "shards": sum(s["shards"] for s in splits.values())})
