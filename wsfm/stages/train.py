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

from wsfm.data.datasets import load_dataset
from wsfm.shards import read_manifest
from wsfm.stages.base import StageContext, StageResult, TrainSpec

__all__ = ["train_baseline", "train_refiner"]


def _spec(ctx: StageContext, mode: str, shard_urls: tuple[str, ...] = ()) -> TrainSpec:
    cfg = ctx.config
    return TrainSpec(mode=mode, data=cfg.data, flow=cfg.flow, model=cfg.model, train=cfg.train,
                     dim=load_dataset(cfg.data).dim, out_dir=str(ctx.out),
                     shard_urls=shard_urls)


def _result(summary: dict) -> StageResult:
    metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}
    return StageResult(metrics=metrics)


def train_refiner(ctx: StageContext) -> StageResult:
    shards = ctx.inputs["generate_drafts"]
    urls = tuple(str(shards / rec.shard) for rec in read_manifest(shards))
    return _result(ctx.runtime.train(_spec(ctx, "warm", urls)))


def train_baseline(ctx: StageContext) -> StageResult:
    return _result(ctx.runtime.train(_spec(ctx, "cold")))
