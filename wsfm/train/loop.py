"""The per-worker training loop: a DeepSpeed engine inside a Ray Train worker.

One loop trains both the cold baseline (noise -> data) and the warm refiner (draft -> data):
the two differ only in the source batch and the path, so "same network, same budget" holds
by construction. Each rank draws exactly ``train.steps`` batches, so ranks never wait on each
other at the end of uneven data.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from wsfm.config import TrainConfig
from wsfm.data.datasets import load_dataset
from wsfm.flow.couplings import get_coupling
from wsfm.flow.paths import WarmPath
from wsfm.models import build_model
from wsfm.stages.base import TrainSpec

__all__ = ["deepspeed_config", "lr_lambda", "train_loop_per_worker"]


def deepspeed_config(train: TrainConfig, world_size: int) -> dict[str, Any]:
    """The DeepSpeed config for a run: fp32 on CPU, ZeRO stage from the YAML."""
    return {
        "train_batch_size": train.batch_size,
        "train_micro_batch_size_per_gpu": train.batch_size // world_size,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": train.zero_stage},
        "fp16": {"enabled": False},
        "bf16": {"enabled": False},
        # We pass a torch optimizer so that DeepSpeed builds no C++ op on CPU.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
    }


def lr_lambda(train: TrainConfig):
    """Linear warm-up to the peak rate, then cosine decay to 10% of it."""

    def factor(step: int) -> float:
        if step < train.warmup_steps:
            return (step + 1) / train.warmup_steps
        progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _sources(spec: TrainSpec, per_rank: int, rank: int, world: int,
             gen: torch.Generator) -> Iterator[torch.Tensor]:
    if spec.mode == "cold":
        while True:
            yield torch.randn(per_rank, spec.dim, generator=gen)
    from wsfm.shards import shard_batches

    yield from shard_batches(list(spec.shard_urls), per_rank, rank=rank, world_size=world,
                             seed=spec.train.seed, shuffle_buffer=spec.train.shuffle_buffer)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point. ``config``: ``spec`` (TrainSpec), ``tracking`` (uri, run_id)."""
    spec: TrainSpec = config["spec"]
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if spec.train.use_gpu else "cpu")
    import deepspeed  # after DS_ACCELERATOR is set
    import ray.train

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    tc = spec.train
    torch.manual_seed(tc.seed)  # identical initial weights on every rank
    model = build_model(spec.model.kind, dim=spec.dim, hidden=spec.model.hidden,
                        depth=spec.model.depth, time_dim=spec.model.time_dim)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(tc))
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer,
                                           lr_scheduler=scheduler,
                                           config=deepspeed_config(tc, world))

    data = torch.from_numpy(load_dataset(spec.data).train)  # (N, D)
    gen = torch.Generator().manual_seed(tc.seed * 1000 + rank + 1)
    per_rank = tc.batch_size // world
    warm = spec.mode == "warm"
    t0 = spec.flow.t0 if warm else 0.0  # the cold baseline ignores every flow setting
    widener = WarmPath(t0, draft_noise=spec.flow.draft_noise if warm else 0.0)
    path = WarmPath(t0, sigma_min=spec.flow.sigma_min if warm else 0.0)  # sources come widened
    pair = get_coupling(spec.flow.coupling if warm else "independent")
    logger = _RankZeroLogger(config.get("tracking"), enabled=rank == 0, every=tc.log_every)

    sources = _sources(spec, per_rank, rank, world, gen)
    start = time.perf_counter()
    for step in range(1, tc.steps + 1):
        x1 = data[torch.randint(len(data), (per_rank,), generator=gen)]  # (B, D)
        x0 = widener.widen(next(sources), generator=gen)  # (B, D): pair what the flow starts from
        x0, x1 = pair(x0, x1)
        t = path.sample_t(per_rank, generator=gen)
        ps = path.sample(x0, x1, t, generator=gen)
        loss = torch.mean((engine(ps.x_t, ps.s) - ps.target) ** 2)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{spec.mode} training: loss is {loss.item()} at step {step}")
        engine.backward(loss)
        engine.step()
        logger.log(step, loss.item(), scheduler.get_last_lr()[0], tc.batch_size)

    if rank == 0:
        seconds = time.perf_counter() - start
        out = Path(spec.out_dir)
        torch.save(engine.module.state_dict(), out / "model.pt")
        summary = {"final_loss": logger.recent_loss(), "steps": tc.steps, "seconds": seconds,
                   "samples_per_s": tc.steps * tc.batch_size / seconds, "world_size": world}
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
        (out / "deepspeed_config.json").write_text(json.dumps(deepspeed_config(tc, world),
                                                              indent=2))


class _RankZeroLogger:
    """Logs loss, learning rate, samples/s and step time to MLflow from rank 0 only."""

    def __init__(self, tracking: dict[str, str] | None, enabled: bool, every: int):
        self.enabled = enabled
        self.tracking = tracking if enabled else None
        self.every = max(1, every)
        self.losses: list[float] = []
        self.last = time.perf_counter()

    def log(self, step: int, loss: float, lr: float, batch: int) -> None:
        self.losses.append(loss)
        if not self.enabled or step % self.every:
            return
        now = time.perf_counter()
        step_time = (now - self.last) / self.every
        self.last = now
        metrics = {"train/loss": self.recent_loss(), "train/lr": lr,
                   "train/step_time_s": step_time, "train/samples_per_s": batch / step_time}
        if self.tracking:
            from wsfm.tracking import log_step_metrics

            log_step_metrics(self.tracking["uri"], self.tracking["run_id"], metrics, step)
        print(f"[train] step {step} loss {metrics['train/loss']:.4f} lr {lr:.2e} "
              f"{metrics['train/samples_per_s']:.0f} samples/s", flush=True)

    def recent_loss(self) -> float:
        tail = self.losses[-self.every:]
        return float(sum(tail) / max(1, len(tail)))
