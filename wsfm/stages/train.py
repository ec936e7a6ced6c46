"""Stages ``train_refiner`` (warm, from draft shards) and ``train_baseline`` (cold, from noise);
``train_refiner_budget``, the benchmark's equal-budget refiner (twice the steps).

Both hand the same network and the same budget to ``ctx.runtime.train``, which runs the
DeepSpeed loop on Ray Train workers. The stage folder ends up holding ``model.pt`` (the EMA
weights, fp32: what evaluation and the registered model load), ``model_raw.pt`` (the trained
weights), ``deepspeed_config.json`` (the resolved DeepSpeed config) and
``train_summary.json``. Both stages are resumable: a failed attempt leaves ``ray_run.json``
and ``checkpoints.json`` in the partial folder, and the next attempt continues from the last
checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch

from wsfm.components import users_network
from wsfm.data.prepared import describe_prepared
from wsfm.shards import ShardsDamaged, read_manifest, verify_shards
from wsfm.stages.base import StageContext, StageResult
from wsfm.train.spec import TrainSpec

__all__ = ["BUDGET_FACTOR", "train_baseline", "train_refiner", "train_refiner_budget"]

# warm_reflow's chain trains two networks of the refiner's budget: the equal-budget refiner
# trains this many times the steps.
BUDGET_FACTOR = 2


def _spec(ctx: StageContext, mode: Literal["warm", "cold"], shard_urls: tuple[str, ...] = (),
          paired: bool = False, steps_factor: int = 1, stage: str = "") -> TrainSpec:
    cfg = ctx.config
    train = cfg.train
    if steps_factor != 1:  # the same schedule, stretched: warm-up and checkpoints scale too
        train = dataclasses.replace(  # type: ignore[type-var]  # pydantic dataclass
            train, steps=train.steps * steps_factor,
            warmup_steps=train.warmup_steps * steps_factor,
            checkpoint_every=train.checkpoint_every * steps_factor)
    data = describe_prepared(ctx.inputs["prepare_data"])  # the workers read the rows
    init = (users_network(cfg, data, ctx.runtime.registered_weights).net.state_dict()
            if mode == "warm" and cfg.train.init_from else None)
    return TrainSpec(mode=mode, data=cfg.data, flow=cfg.flow, model=cfg.model, train=train,
                     dim=data.dim, out_dir=str(ctx.out), shard_urls=shard_urls,
                     paired=paired, stage=stage, init_state=init,
                     data_dir=str(ctx.inputs["prepare_data"]))


def _result(summary: dict) -> StageResult:
    metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}
    return StageResult(metrics=metrics)


def train_refiner(ctx: StageContext) -> StageResult:
    """Drafts from the shards; with partners stored in them (``shards.pair``, the manifest's
    ``pair`` column) the refiner trains on those pairs and skips the in-loop coupling."""
    urls, paired = _draft_shards(ctx)
    return _result(ctx.runtime.train(_spec(ctx, "warm", urls, paired)))


def train_refiner_budget(ctx: StageContext) -> StageResult:
    """The refiner again with ``BUDGET_FACTOR`` times its optimizer steps: the budget of its
    rectified round's chain (the refiner, then a network of the same budget on its pairs), so
    that ``warm_reflow`` has an equal-budget line beside it (the ``warm_budget`` rows). The
    teacher's pair generation is not in it: the section names that cost separately."""
    urls, paired = _draft_shards(ctx)
    return _result(ctx.runtime.train(_spec(ctx, "warm", urls, paired, BUDGET_FACTOR,
                                           stage="train_refiner_budget")))


def _draft_shards(ctx: StageContext) -> tuple[tuple[str, ...], bool]:
    """The draft shards' paths and whether they store partners; damaged shards refused."""
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
    return tuple(str(shards / rec.shard) for rec in records), pairs != {"none"}


def train_baseline(ctx: StageContext) -> StageResult:
    """The cold flow from noise; with ``train.init_from`` the user's model as given: its
    weights become ``model.pt`` untrained, so the cold rows (and zero-shot) are the user's
    own model, the one the refiner is asked to speed up."""
    if ctx.config.train.init_from:
        return _users_model(ctx)
    return _result(ctx.runtime.train(_spec(ctx, "cold")))


def _users_model(ctx: StageContext) -> StageResult:
    cfg = ctx.config
    net = users_network(cfg, describe_prepared(ctx.inputs["prepare_data"]),
                        ctx.runtime.registered_weights)
    torch.save(net.state_dict(), ctx.out / "model.pt")  # the wrapper's keys, as training's
    return StageResult(metrics={"steps": 0.0, "train_seconds": 0.0},
                       params={"init_from": cfg.train.init_from})
