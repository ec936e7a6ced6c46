"""Fault injection for training runs: step hooks that kill or stall a worker on cue.

``fit(..., hooks=[KillAt(...)])`` calls each hook as ``hook(rank, step)`` on every worker
after each optimizer step (and after that step's checkpoint). The tests use them to kill a
worker, or stall one while the driver is killed, at a known step; a fire drill on a real
cluster can do the same.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KillAt", "PauseAt"]


@dataclass(frozen=True)
class KillAt:
    """SIGKILL the worker of ``rank`` when it finishes ``step``, once: ``marker`` (a file
    path) records that it fired, so the restarted worker runs on."""

    rank: int
    step: int
    marker: str

    def __call__(self, rank: int, step: int) -> None:
        if rank == self.rank and step == self.step and not Path(self.marker).exists():
            Path(self.marker).write_text(f"killed rank {rank} (pid {os.getpid()}) at step {step}")
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class PauseAt:
    """Stall the worker of ``rank`` for ``seconds`` when it finishes ``step``."""

    rank: int
    step: int
    seconds: float = 3600.0

    def __call__(self, rank: int, step: int) -> None:
        if rank == self.rank and step == self.step:
            time.sleep(self.seconds)
