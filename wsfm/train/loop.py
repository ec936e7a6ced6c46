"""The per-worker training loop: a DeepSpeed engine inside a Ray Train worker.

One loop trains both the cold baseline (noise -> data) and the warm refiner (draft -> data):
the two differ only in the sources and the path, so "same network, same budget" holds by
construction. Each rank draws exactly ``grad_accum`` micro-batches per step, so ranks never
wait on each other at the end of uneven data.

A run resumes from ``ray.train.get_checkpoint()`` with the same step, optimizer, schedule,
EMA and data position (``wsfm.train.checkpoint``). At the end rank 0 writes into the stage
folder ``model.pt`` (the EMA weights, fp32, what sampling uses), ``model_raw.pt`` (the
trained weights, consolidated with ``zero_to_fp32``), ``deepspeed_config.json`` and
``train_summary.json``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from wsfm.components import net_spec
from wsfm.data.datasets import load_dataset
from wsfm.models import build_model
from wsfm.train.spec import TrainSpec
from wsfm.train.checkpoint import DEEPSPEED, TrainState, checkpoint_name, restore, save
from wsfm.train.data import BatchStream, as_tensor
from wsfm.train.ema import EMA
from wsfm.train.faults import step_hooks
from wsfm.train.engine import (build_engine, consolidated_state_dict, deepspeed_config,
                               full_parameters, lr_lambda)
from wsfm.train.monitor import (DIVERGED, Divergence, RankZeroMonitor, check_divergence,
                                global_loss)
from wsfm.train.discrete_objective import make_objective

__all__ = ["deepspeed_config", "lr_lambda", "train_loop_per_worker"]

StepHook = Callable[[int, int], None]  # hook(rank, step), after each step (wsfm.train.faults)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point. ``config``: ``spec`` (TrainSpec), ``run_dir`` (this run's Ray
    folder, where checkpoints go), ``tracking`` (``{"uri", "run_id"}`` or None), ``hooks``."""
    spec: TrainSpec = config["spec"]
    tc, out = spec.train, Path(spec.out_dir)
    if (out / DIVERGED).is_file():  # a restarted worker group: the same NaN would come back
        raise Divergence(json.loads((out / DIVERGED).read_text())["message"])
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if tc.use_gpu else "cpu")
    import ray.train

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    engine, scheduler, ema, stream = _build(spec, rank, world)
    state = TrainState()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        restore(checkpoint, engine, state, stream, ema)
        if rank == 0:
            print(f"[train] resuming at step {state.step}/{tc.steps} from {checkpoint.path}",
                  file=sys.__stdout__, flush=True)
    start = state.step

    objective = make_objective(spec.mode, spec.flow, load_dataset(spec.data), paired=spec.paired)
    dtype = torch.bfloat16 if tc.precision == "bf16" else torch.float32
    stage = "train_refiner" if spec.mode == "warm" else "train_baseline"
    hooks: Sequence[StepHook] = (*(config.get("hooks") or ()), *step_hooks(stage))
    monitor = RankZeroMonitor(config.get("tracking"), rank=rank, every=tc.log_every,
                              total=tc.steps, start=start, batch=tc.batch_size,
                              desc=f"train_{'refiner' if spec.mode == 'warm' else 'baseline'}",
                              out_dir=out)
    began = time.perf_counter()
    for step in range(start + 1, tc.steps + 1):
        tick = time.perf_counter()
        lr = scheduler.get_last_lr()[0]  # the rate this step uses
        losses = []
        for _ in range(tc.grad_accum):
            source, x1, gen = next(stream)
            batch = objective.make_batch(source, x1, gen)
            loss = objective.loss(engine, batch, gen, device=engine.device, dtype=dtype)
            losses.append(global_loss(loss, world))
            # Before backward: a bad step never reaches the weights or a checkpoint.
            check_divergence(losses[-1], step=step, mode=spec.mode, lr=lr, rank=rank,
                             world_size=world, out_dir=out)
            engine.backward(loss)
            engine.step()  # DeepSpeed steps the optimizer and the schedule every grad_accum
        with full_parameters(engine, tc) as params:  # a collective under ZeRO-3
            if ema is not None:
                ema.update(params)
        state.step, state.samples = step, state.samples + tc.batch_size
        state.loss = sum(losses) / len(losses)
        monitor.step(step, state.loss, lr, time.perf_counter() - tick)
        if step == tc.steps or (tc.checkpoint_every and step % tc.checkpoint_every == 0):
            save(engine, state, stream, ema, rank=rank, world_size=world,
                 metrics={"loss": state.loss}, run_dir=config["run_dir"], out_dir=out)
        for hook in hooks:
            hook(rank, step)
    _finish(spec, config["run_dir"], engine, ema, state, monitor, rank, world, start,
            time.perf_counter() - began)


def _build(spec: TrainSpec, rank: int, world: int):
    """``(engine, scheduler, ema, stream)``: the same initial weights on every rank; the EMA
    on rank 0 only (None elsewhere)."""
    tc = spec.train
    data = load_dataset(spec.data)
    torch.manual_seed(tc.seed)
    kwargs = net_spec(spec.model, data)
    net = build_model(kwargs.pop("kind"), dim=data.dim, **kwargs)
    if tc.use_gpu:  # before the optimizer: fused optimizers want their parameters on the GPU
        import ray.train.torch

        device = ray.train.torch.get_device()
        torch.cuda.set_device(device)
        net.to(device)
    ema = EMA(dict(net.named_parameters()), tc.ema_decay) if rank == 0 else None
    engine, scheduler = build_engine(net, tc, world)
    stream = BatchStream(spec.mode, as_tensor(data.train), tc.micro_batch_size, rank=rank,
                         world_size=world, seed=tc.seed, shard_urls=spec.shard_urls,
                         shuffle_buffer=tc.shuffle_buffer, paired=spec.paired)
    return engine, scheduler, ema, stream


def _finish(spec: TrainSpec, run_dir: str, engine, ema: EMA | None, state: TrainState,
            monitor: RankZeroMonitor, rank: int, world: int, start: int,
            seconds: float) -> None:
    """Rank 0 writes the weights (EMA and raw, fp32), the DeepSpeed config and the summary."""
    import ray.train

    rss = _gather([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024], world)
    if rank != 0:
        return
    tc, out = spec.train, Path(spec.out_dir)
    final = ray.train.Checkpoint(f"{run_dir}/{checkpoint_name(tc.steps)}")
    with final.as_directory() as folder:
        raw = consolidated_state_dict(engine, tc, os.path.join(folder, DEEPSPEED))
    torch.save(raw, out / "model_raw.pt")
    torch.save(ema.weights(raw), out / "model.pt")
    (out / "deepspeed_config.json").write_text(json.dumps(deepspeed_config(tc, world), indent=2))
    ran = tc.steps - start
    summary = {"steps": tc.steps, "world_size": world, "resumed_from_step": start,
               "paired": float(spec.paired),  # trained on the shards' stored partners
               "seconds": seconds, **monitor.summary(),
               "samples_per_s_wall": ran * tc.batch_size / seconds if ran else float("nan"),
               "torch_threads": torch.get_num_threads(), "peak_rss_mb_max": max(rss),
               **{f"peak_rss_mb_rank{r}": v for r, v in enumerate(rss)}}
    if not ran:  # resumed after the last step: nothing trained in this attempt
        summary["final_loss"] = state.loss
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))


def _gather(values: list[float], world: int) -> list[float]:
    """Every rank's ``values``, concatenated in rank order."""
    if world == 1:
        return values
    import torch.distributed as dist

    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, values)
    return [v for part in parts for v in part]
