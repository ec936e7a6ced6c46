"""Stages ``train_refiner`` (warm, from draft shards) and ``train_baseline`` (cold, from noise).

Both hand the same network and the same budget to ``ctx.runtime.train``, which runs the
DeepSpeed loop on Ray Train workers; rank 0 writes ``model.pt`` into the stage folder.
"""

from __future__ import annotations

from wsfm.data.datasets import load_dataset
from wsfm.shards import read_manifest
from wsfm.stages.base import StageContext, StageResult, TrainSpec

__all__ = ["train_baseline", "train_refiner"]


def _spec(ctx: StageContext, mode: str, shard_urls: tuple[str, ...] = ()) -> TrainSpec:
    cfg = ctx.config
    return TrainSpec(mode=mode, data=cfg.data, flow=cfg.flow, model=cfg.model, train=cfg.train,
                     dim=load_dataset(cfg.data).dim, out_dir=str(ctx.out),
                     shard_urls=shard_urls)


def train_refiner(ctx: StageContext) -> StageResult:
    shards = ctx.inputs["generate_drafts"]
    urls = tuple(str(shards / rec.shard) for rec in read_manifest(shards))
    return StageResult(metrics=ctx.runtime.train(_spec(ctx, "warm", urls)))


def train_baseline(ctx: StageContext) -> StageResult:
    return StageResult(metrics=ctx.runtime.train(_spec(ctx, "cold")))
