"""The training loop: a DeepSpeed engine on each rank, under Ray Train or in this process.

One loop trains both the cold baseline (noise -> data) and the warm refiner (draft -> data):
the two differ only in the sources and the path, so "same network, same budget" holds by
construction. Each rank draws exactly ``grad_accum`` micro-batches per step, so ranks never
wait on each other at the end of uneven data.

:func:`run` is the loop; the few calls that differ between a Ray Train worker
(:func:`train_loop_per_worker`) and one process (``wsfm.train.local.fit_local``) go through a
session (``wsfm.train.session``): rank and world size, the device, the checkpoint to resume
from, committing a checkpoint. A run resumes from the session's checkpoint with the same step,
optimizer, schedule, EMA and data position (``wsfm.train.checkpoint``).

The hot path has no host sync: each step's loss stays on the device, and the ranks meet
(one all-reduce, one copy to the host) only every ``log_every`` steps and before each
checkpoint, where a non-finite loss stops the run (``monitor.check_divergence``). A NaN step
thus reaches the weights, but never a checkpoint or the exported model; the error names the
first bad step and the checkpoint kept.

At the end rank 0 writes into the stage folder ``model.pt`` (the EMA weights, fp32, what
sampling uses), ``model_raw.pt`` (the trained weights, consolidated with ``zero_to_fp32``),
``deepspeed_config.json`` and ``train_summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from wsfm.components import net_spec
from wsfm.data.datasets import Dataset, load_dataset
from wsfm.data.prepared import PreparedData, RowTable, describe_prepared, load_prepared
from wsfm.models import build_model
from wsfm.models.user import UserVelocity
from wsfm.taskfiles import LocalFiles
from wsfm.train.checkpoint import (
    DEEPSPEED,
    POINTER,
    TrainState,
    checkpoint_name,
    restore,
    save,
)
from wsfm.train.data import BatchStream, as_tensor
from wsfm.train.discrete_objective import make_objective
from wsfm.train.ema import EMA
from wsfm.train.engine import (
    build_engine,
    consolidated_state_dict,
    deepspeed_config,
    full_parameters,
    lr_lambda,
)
from wsfm.train.faults import step_hooks
from wsfm.train.monitor import (
    DIVERGED,
    Divergence,
    RankZeroMonitor,
    check_divergence,
    global_losses,
)
from wsfm.train.session import Session
from wsfm.train.spec import TrainSpec

__all__ = ["ATTEMPTS", "deepspeed_config", "lr_lambda", "run", "train_loop_per_worker"]

ATTEMPTS = "train_attempts.jsonl"  # rank 0: a line per (re)start of training in this folder

StepHook = Callable[[int, int], None]  # hook(rank, step), after each step (wsfm.train.faults)
Objective = Any  # make_batch(source, data, gen) and loss(net, batch, gen, device=, dtype=)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point. ``config``: ``spec`` (TrainSpec), ``run_dir`` (this run's Ray
    folder, where checkpoints go), ``tracking`` (``{"uri", "run_id"}`` or None), ``hooks``.

    A worker on a node that does not see the stage folder (``spec.files``) reads the shards
    from its node's copy of the input and writes into a scratch folder; rank 0 delivers
    what it wrote there into the stage's output when it ends, failed or not."""
    spec: TrainSpec = config["spec"]
    files = spec.files or LocalFiles(spec.out_dir)
    with files.workspace(fetch=(DIVERGED, POINTER)) as out:
        _stop_if_diverged(out)
        os.environ.setdefault("DS_ACCELERATOR", "cuda" if spec.train.use_gpu else "cpu")
        from wsfm.train.session import RaySession

        here = dataclasses.replace(spec, out_dir=str(out), shard_urls=tuple(
            str(files.input(url)) for url in spec.shard_urls))
        session = RaySession(config["run_dir"])
        try:
            run(here, session, tracking=config.get("tracking"), hooks=config.get("hooks") or ())
        finally:
            if session.rank == 0:
                files.publish(out, *sorted(p.name for p in out.iterdir() if p.is_file()))


def _stop_if_diverged(out: Path) -> None:
    if (out / DIVERGED).is_file():  # a restarted worker group: the same NaN would come back
        raise Divergence(json.loads((out / DIVERGED).read_text())["message"])


def _prepared_folder(spec: TrainSpec) -> str:
    """The prepared dataset's folder as this node sees it."""
    return str(spec.files.input(spec.data_dir)) if spec.files is not None else spec.data_dir


def training_data(spec: TrainSpec, *, rows: bool = True) -> Dataset:
    """The data ``spec`` trains on: the prepared dataset (``spec.data_dir``, as this node sees
    it), or, outside a pipeline, the config's source. ``rows=False``: only its description
    where it is prepared (``describe_prepared``: no shard read)."""
    if not spec.data_dir:
        return load_dataset(spec.data)
    folder = _prepared_folder(spec)
    return load_prepared(folder) if rows else describe_prepared(folder)


def training_set(spec: TrainSpec, dataset: Dataset | None = None
                 ) -> tuple[Dataset, Tensor | RowTable]:
    """What training needs of the data: the dataset (its kind, shape, text) and the rows the
    batches draw from. A prepared vector or image split stays in its shards
    (:class:`wsfm.data.prepared.RowTable`: a batch's rows read at a time), the
    dataset being its description; text, a ``dataset`` handed in, or the config's source are
    loaded whole (text's objective may pair against every training row)."""
    if dataset is None and spec.data_dir:  # the folder is reached once (it may be fetched)
        prepared = PreparedData(_prepared_folder(spec))
        about = prepared.describe()
        if about.text is None:
            return about, prepared.table("train")
        dataset = load_prepared(prepared.folder)
    data = dataset if dataset is not None else training_data(spec)
    return data, as_tensor(data.train)


def run(spec: TrainSpec, session: Session, *, tracking: dict[str, str] | None = None,
        hooks: Sequence[StepHook] = (), objective: Objective | None = None,
        dataset: Dataset | None = None) -> None:
    """Train ``spec`` on this rank of ``session`` (a collective: every rank runs it), resuming
    from the session's checkpoint if it has one; rank 0 writes the outputs into
    ``spec.out_dir``. ``objective``: the one ``spec`` makes by default (``make_objective``);
    benchmarks pass variants (``FlowObjective``'s parameterisation). ``dataset``: the data
    ``spec.data`` loads by default; benchmarks pass data that no ``DataConfig`` describes
    (``wsfm.data.text.one_hot_dataset``)."""
    tc, out = spec.train, Path(spec.out_dir)
    rank = session.rank
    data, rows = training_set(spec, dataset)
    engine, scheduler, ema, stream = _build(spec, session, data, rows)
    state = TrainState()
    resume = session.resume_from()
    if resume is not None:
        with resume as folder:
            restore(folder, engine, state, stream, ema)
        if rank == 0:
            print(f"[train] resuming at step {state.step}/{tc.steps} from {folder}",
                  file=sys.__stdout__, flush=True)
    start = state.step
    if rank == 0:  # one line per attempt: how often this output's training (re)started
        with open(out / ATTEMPTS, "a") as fh:
            fh.write(json.dumps({"resumed_from_step": start, "node": _node_id(),
                                 "pid": os.getpid(), "time": time.time()}) + "\n")

    if objective is None:
        objective = make_objective(spec.mode, spec.flow, data, paired=spec.paired,
                                   user_clock=spec.model.user_clock)
    dtype = torch.bfloat16 if tc.precision == "bf16" else torch.float32
    hooks = (*hooks, *step_hooks(spec.mode_stage, out_dir=out))  # WSFM_FAULT drills
    monitor = RankZeroMonitor(tracking, rank=rank, every=tc.log_every,
                              total=tc.steps, start=start, batch=tc.batch_size,
                              desc=spec.label,
                              out_dir=out)
    began = time.perf_counter()
    window = _Window(start + 1, began)
    for step in range(start + 1, tc.steps + 1):
        window.lrs.append(scheduler.get_last_lr()[0])  # the rate this step uses
        micro = []
        for _ in range(tc.grad_accum):
            source, x1, gen = next(stream)
            batch = objective.make_batch(source, x1, gen)
            loss = objective.loss(engine, batch, gen, device=engine.device, dtype=dtype)
            micro.append(loss.detach())  # stays on the device: no host sync per step
            engine.backward(loss)
            engine.step()  # DeepSpeed steps the optimizer and the schedule every grad_accum
        with full_parameters(engine, tc) as params:  # a collective under ZeRO-3
            if ema is not None:
                ema.update(params)
        window.losses.append(torch.stack(micro).mean())
        state.step, state.samples = step, state.samples + tc.batch_size
        saving = step == tc.steps or bool(tc.checkpoint_every and step % tc.checkpoint_every == 0)
        if saving or step % tc.log_every == 0:  # the same steps on every rank
            # Checked before the save: a checkpoint never holds weights trained on a
            # non-finite loss.
            state.loss = _close(window, spec, session, monitor)
            if saving:
                save(engine, state, stream, ema, session, metrics={"loss": state.loss},
                     out_dir=out)
            window = _Window(step + 1, time.perf_counter())
        for hook in hooks:
            hook(rank, step)
    _finish(spec, session, engine, ema, state, monitor, start, time.perf_counter() - began)


@dataclass
class _Window:
    """The steps since the last check: ``first`` the first one, ``began`` when it began,
    each step's loss (a scalar on the device, this rank's) and learning rate."""

    first: int
    began: float
    losses: list[torch.Tensor] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)


def _close(window: _Window, spec: TrainSpec, session: Session,
           monitor: RankZeroMonitor) -> float:
    """The window's one host sync: the ranks' mean loss of each step, checked for divergence
    (a collective) and handed to the monitor; returns the last step's loss. The window's
    steps share its mean time (the per-step time is unknown without a sync per step)."""
    losses = global_losses(torch.stack(window.losses), session.world_size)
    check_divergence(losses, first_step=window.first, lrs=window.lrs, mode=spec.mode,
                     rank=session.rank, world_size=session.world_size,
                     out_dir=Path(spec.out_dir))
    seconds = (time.perf_counter() - window.began) / len(losses)
    for i, loss in enumerate(losses):
        monitor.step(window.first + i, loss, window.lrs[i], seconds)
    return losses[-1]


def _build(spec: TrainSpec, session: Session, data: Dataset, rows: Tensor | RowTable):
    """``(engine, scheduler, ema, stream)``: the same initial weights on every rank (the
    user's, where ``train.init_from`` names them); the EMA on rank 0 only (None elsewhere)."""
    tc, rank, world = spec.train, session.rank, session.world_size
    torch.manual_seed(tc.seed)
    kwargs = net_spec(spec.model, data)
    net = build_model(kwargs.pop("kind"), dim=data.dim, **kwargs)
    if spec.init_state is not None:
        assert isinstance(net, UserVelocity), "train.init_from needs model.kind python"
        net.net.load_state_dict(spec.init_state)
    if tc.use_gpu:  # before the optimizer: fused optimizers want their parameters on the GPU
        device = session.device()
        torch.cuda.set_device(device)
        net.to(device)
    ema = EMA(dict(net.named_parameters()), tc.ema_decay) if rank == 0 else None
    engine, scheduler = build_engine(net, tc, world)
    stream = BatchStream(spec.mode, rows, tc.micro_batch_size, rank=rank,
                         world_size=world, seed=tc.seed, shard_urls=spec.shard_urls,
                         shuffle_buffer=tc.shuffle_buffer, paired=spec.paired)
    return engine, scheduler, ema, stream


def _finish(spec: TrainSpec, session: Session, engine, ema: EMA | None, state: TrainState,
            monitor: RankZeroMonitor, start: int, seconds: float) -> None:
    """Rank 0 writes the weights (EMA and raw, fp32), the DeepSpeed config and the summary."""
    rank, world = session.rank, session.world_size
    rss = _gather([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024], world)
    nodes = _gather([_node_id()], world)  # where each rank ran
    if rank != 0:
        return
    tc, out = spec.train, Path(spec.out_dir)
    with session.checkpoint(checkpoint_name(tc.steps)) as folder:
        raw = consolidated_state_dict(engine, tc, os.path.join(folder, DEEPSPEED))
    torch.save(raw, out / "model_raw.pt")
    assert ema is not None  # rank 0 keeps the EMA
    torch.save(ema.weights(raw), out / "model.pt")
    (out / "deepspeed_config.json").write_text(json.dumps(deepspeed_config(tc, world), indent=2))
    ran = tc.steps - start
    attempts = [json.loads(line) for line in (out / ATTEMPTS).read_text().splitlines()
                if line.strip()] if (out / ATTEMPTS).is_file() else []
    summary = {"steps": tc.steps, "world_size": world, "resumed_from_step": start,
               # every (re)start of training for this output: Ray Train's restarts after a
               # lost worker or node (at most train.max_failures per fit) and reruns
               "attempts": len(attempts),
               "attempt_starts": [a["resumed_from_step"] for a in attempts],
               "max_failures": tc.max_failures, **monitor.close(),
               "paired": float(spec.paired),  # trained on the shards' stored partners
               "seconds": seconds, **monitor.summary(),
               "samples_per_s_wall": ran * tc.batch_size / seconds if ran else float("nan"),
               "torch_threads": torch.get_num_threads(), "peak_rss_mb_max": max(rss),
               **{f"peak_rss_mb_rank{r}": v for r, v in enumerate(rss)},
               "nodes": nodes}  # Ray node id per rank: ranks on two nodes talked across them
    if not ran:  # resumed after the last step: nothing trained in this attempt
        summary["final_loss"] = state.loss
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))


def _node_id() -> str:
    """This worker's Ray node id, or the host name when it runs outside Ray (fit_local)."""
    import ray

    if ray.is_initialized():
        return ray.get_runtime_context().get_node_id()
    import socket

    return socket.gethostname()


def _gather(values: list[Any], world: int) -> list[Any]:
    """Every rank's ``values``, concatenated in rank order."""
    if world == 1:
        return values
    import torch.distributed as dist

    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, values)
    return [v for part in parts for v in part]
