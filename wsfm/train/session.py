"""Where the training loop runs: the few calls that differ between Ray Train and one process.

The loop (``wsfm.train.loop.run``) asks its session for its rank and world size, its device,
the checkpoint to resume from, to commit a checkpoint folder, and for the final checkpoint's
folder. Everything else (the engine, the data, the objective, the EMA, the export) is the
same code on both:

- :class:`RaySession`: a Ray Train worker (``ray.train.get_context``, ``get_checkpoint``,
  ``report``; the checkpoint is committed once Ray Train has recorded it);
- :class:`LocalSession`: this process alone (world size 1), checkpoints in a local folder,
  ``<out_dir>/checkpoints/step-NNNNNN``, each renamed into place once complete, so the
  latest ``step-*`` folder is always a whole one (``wsfm.train.local.fit_local``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Protocol

import torch

__all__ = ["LocalSession", "RaySession", "Session"]


class Session(Protocol):
    """What the loop needs from the process that runs it."""

    rank: int
    world_size: int

    def device(self) -> torch.device:
        """The accelerator this rank trains on (called only when ``use_gpu``)."""

    def resume_from(self) -> contextlib.AbstractContextManager[str] | None:
        """A context giving the folder of the checkpoint to resume from, or None."""

    def commit(self, folder: str, name: str, metrics: dict[str, float]) -> str:
        """Make this rank's part of checkpoint ``name`` (written into ``folder``, which the
        caller deletes afterwards) durable; return where the checkpoint lives. A collective:
        every rank calls it; it returns once the checkpoint is complete."""

    def checkpoint(self, name: str) -> contextlib.AbstractContextManager[str]:
        """A context giving the folder of the committed checkpoint ``name``."""


class RaySession:
    """A Ray Train worker: rank and world from its context, checkpoints through Ray Train.

    ``run_dir``: this run's folder in Ray Train's storage (``<storage>/<run name>``), where
    Ray writes each reported checkpoint under its ``checkpoint_dir_name``.
    """

    def __init__(self, run_dir: str):
        import ray.train

        ctx = ray.train.get_context()
        self.rank, self.world_size = ctx.get_world_rank(), ctx.get_world_size()
        self.run_dir = run_dir

    def device(self) -> torch.device:
        import ray.train.torch

        return ray.train.torch.get_device()

    def resume_from(self) -> contextlib.AbstractContextManager[str] | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        return None if checkpoint is None else checkpoint.as_directory()

    def commit(self, folder: str, name: str, metrics: dict[str, float]) -> str:
        import ray.train

        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder),
                         checkpoint_dir_name=name)
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()  # report returns once this rank's files are up: now everyone's are
        if self.rank == 0:
            # Wait until Ray Train has committed it (it is then what a restart resumes from),
            # so that the stage's pointer is never ahead of Ray's own record.
            ray.train.get_all_reported_checkpoints(
                consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)
        return f"{self.run_dir}/{name}"

    def checkpoint(self, name: str) -> contextlib.AbstractContextManager[str]:
        import ray.train

        return ray.train.Checkpoint(f"{self.run_dir}/{name}").as_directory()


class LocalSession:
    """This process alone: checkpoints in ``folder`` (``step-NNNNNN`` each), the newest
    ``keep`` of them kept, as Ray Train keeps two."""

    rank, world_size = 0, 1

    def __init__(self, folder: Path, *, keep: int = 2):
        self.folder, self.keep = Path(folder), keep

    def device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device())

    def complete(self) -> list[Path]:
        """The complete checkpoints, oldest first (a half-written one is still a dot-folder)."""
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("step-*") if p.is_dir())

    def resume_from(self) -> contextlib.AbstractContextManager[str] | None:
        done = self.complete()
        return contextlib.nullcontext(str(done[-1])) if done else None

    def commit(self, folder: str, name: str, metrics: dict[str, float]) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        staging, final = self.folder / f".{name}.tmp", self.folder / name
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(folder, staging)
        shutil.rmtree(final, ignore_errors=True)  # a rerun of the same step replaces it
        os.replace(staging, final)  # atomic: the folder appears whole or not at all
        for old in self.complete()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return str(final)

    def checkpoint(self, name: str) -> contextlib.AbstractContextManager[str]:
        return contextlib.nullcontext(str(self.folder / name))
