"""Stages ``train_refiner`` (warm, from draft shards) and ``train_baseline`` (cold, from noise).

Both hand the same network and the same budget to ``ctx.runtime.train``, which runs the
DeepSpeed loop on Ray Train workers. The stage folder ends up holding ``model.pt`` (the EMA
weights, fp32: what evaluation and the registered model load), ``model_raw.pt`` (the trained
weights), ``deepspeed_config.json`` (the resolved DeepSpeed config) and
``train_summary.json``. Both stages are resumable: a failed attempt leaves ``ray_run.json``
and ``checkpoints.json`` in the partial folder, and the next attempt continues from the last
checkpoint.
"""

from __future__ import annotations

from typing import Literal

from wsfm.data.datasets import load_dataset
from wsfm.shards import ShardsDamaged, read_manifest, verify_shards
from wsfm.stages.base import StageContext, StageResult
from wsfm.train.spec import TrainSpec

__all__ = ["train_baseline", "train_refiner"]


def _spec(ctx: StageContext, mode: Literal["warm", "cold"], shard_urls: tuple[str, ...] = (),
          paired: bool = False) -> TrainSpec:
    cfg = ctx.config
    return TrainSpec(mode=mode, data=cfg.data, flow=cfg.flow, model=cfg.model, train=cfg.train,
                     dim=load_dataset(cfg.data).dim, out_dir=str(ctx.out),
                     shard_urls=shard_urls, paired=paired)


def _result(summary: dict) -> StageResult:
    metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}
    return StageResult(metrics=metrics)


def train_refiner(ctx: StageContext) -> StageResult:
    """Drafts from the shards; with partners stored in them (``shards.pair``, the manifest's
    ``pair`` column) the refiner trains on those pairs and skips the in-loop coupling."""
    shards = ctx.inputs["generate_drafts"]
    records = read_manifest(shards)
    damaged = verify_shards(shards)  # never train on a shard that changed since it was made
    if damaged:
        raise ShardsDamaged(f"refusing to train on damaged draft shards ({'; '.join(damaged)}); "
                            "a rerun of the pipeline makes them again")
    pairs = {rec.pair for rec in records}
    if len(pairs) > 1:
        raise ValueError(f"{shards}: the manifest mixes pairings {sorted(pairs)}; rerun "
                         "generate_drafts with --force")
    urls = tuple(str(shards / rec.shard) for rec in records)
    paired = pairs != {"none"}
    return _result(ctx.runtime.train(_spec(ctx, "warm", urls, paired)))


def train_baseline(ctx: StageContext) -> StageResult:
    return _result(ctx.runtime.train(_spec(ctx, "cold")))
