"""Train in this process: the pipelines' loop (``wsfm.train.loop.run``) without Ray.

For tests, benchmarks and notebooks (and ``LocalRuntime.train``): the same DeepSpeed engine,
objective, data stream, EMA, checkpoints and outputs as under Ray Train, at world size 1.
torch.distributed runs gloo (NCCL with ``use_gpu``) over a file store in a temporary folder,
and is torn down afterwards, so :func:`fit_local` can be called again in the same process.

Checkpoints go to ``<out_dir>/checkpoints/step-NNNNNN`` (``wsfm.train.session.LocalSession``);
a later call on the same ``out_dir`` resumes from the newest complete one.

``spec.train.num_workers`` must be 1: the global batch is split as micro-batch x grad_accum x
num_workers, so a spec written for 2 workers would draw other batches here than under Ray
Train with the same config. A caller that wants one process replaces it explicitly
(``dataclasses.replace(spec.train, num_workers=1)``), which also shows in the config's
fingerprint.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from wsfm.data.base import Dataset
from wsfm.train.spec import TrainSpec

__all__ = ["CHECKPOINTS", "fit_local"]

CHECKPOINTS = "checkpoints"  # the local checkpoints' folder inside the stage folder


def fit_local(spec: TrainSpec, *, tracking: dict[str, str] | None = None,
              hooks: Sequence[Callable[[int, int], None]] = (),
              objective: Any = None, dataset: Dataset | None = None) -> dict[str, float]:
    """Train ``spec`` in this process and return its summary (``train_summary.json``).

    Args:
        spec: the run, with ``train.num_workers == 1``; outputs go to ``spec.out_dir``.
        tracking: ``{"uri", "run_id"}`` of the MLflow run to log to, or None.
        hooks: ``hook(rank, step)`` after each step (``wsfm.train.faults``; rank is 0).
        objective: the training objective; by default the one ``spec`` makes
            (``make_objective``). Benchmarks pass variants.
        dataset: the data; by default the one ``spec.data`` loads. Benchmarks pass data
            that no ``DataConfig`` describes (``wsfm.data.text.one_hot_dataset``).

    Raises:
        ValueError: ``spec.train.num_workers`` is not 1.
        RuntimeError: torch.distributed is already initialised in this process.
        Divergence: the loss became NaN or inf (the message names the step and the
            checkpoint kept).
    """
    tc, out = spec.train, Path(spec.out_dir)
    if tc.num_workers != 1:
        raise ValueError(f"fit_local trains on one process, but train.num_workers is "
                         f"{tc.num_workers}: the batch split (batch_size {tc.batch_size} = "
                         f"micro_batch x grad_accum x num_workers) would differ from Ray "
                         f"Train's; pass a spec with train.num_workers = 1")
    out.mkdir(parents=True, exist_ok=True)
    from wsfm.train.monitor import DIVERGED

    (out / DIVERGED).unlink(missing_ok=True)  # a new attempt may try again
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if tc.use_gpu else "cpu")
    from wsfm.train.loop import run
    from wsfm.train.session import LocalSession

    with _process_group("nccl" if tc.use_gpu else "gloo"):
        run(spec, LocalSession(out / CHECKPOINTS), tracking=tracking, hooks=hooks,
            objective=objective, dataset=dataset)
    return json.loads((out / "train_summary.json").read_text())


@contextlib.contextmanager
def _process_group(backend: str) -> Iterator[None]:
    """A world-size-1 process group for DeepSpeed, and the variables it reads, for the
    duration; both removed afterwards."""
    import torch.distributed as dist

    if dist.is_initialized():
        raise RuntimeError("torch.distributed is already initialised in this process; "
                           "fit_local starts (and ends) its own world-size-1 group")
    saved = {k: os.environ.get(k) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")  # DeepSpeed reads LOCAL_RANK
    with tempfile.TemporaryDirectory(prefix="wsfm-local-pg-") as tmp:
        store = dist.FileStore(os.path.join(tmp, "store"), 1)
        dist.init_process_group(backend, store=store, rank=0, world_size=1)
        try:
            yield
        finally:
            import deepspeed.comm

            if deepspeed.comm.is_initialized():
                # DeepSpeed's teardown also drops the groups it cached (its world clone, the
                # data-parallel group): a later engine would use them and fail.
                deepspeed.comm.destroy_process_group()
            else:
                dist.destroy_process_group()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
