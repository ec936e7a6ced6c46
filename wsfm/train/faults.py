"""Fault injection: step hooks that kill, stall or fail a worker on cue, and fault drills.

``fit(..., hooks=[KillAt(...)])`` calls each hook as ``hook(rank, step)`` on every worker
after each optimizer step (and after that step's checkpoint). The tests use them to kill a
worker, or stall one while the driver is killed, at a known step; a fire drill on a real
cluster can do the same.

A whole pipeline is drilled from outside through one environment variable, read here and
nowhere else (the reliability tests use it; see RELIABILITY.md)::

    WSFM_FAULT="pause:train_refiner@90"   # rank 0 of train_refiner stalls after step 90, once
    WSFM_FAULT="raise:train_refiner@90"   # ... raises there instead (every attempt)
    WSFM_FAULT="raise:evaluate"           # the stage raises after its work, before its commit

A pause fires once per stage output: it writes a marker (``PAUSE_MARKER``, JSON with the pid,
rank and step) into the stage folder and stalls until that file is deleted (the drill's "go
on") or an hour has passed; a restarted worker group (after a killed node, say) finds the
marker and runs on. Several faults are separated by commas. The variable reaches the Ray
workers of a local runtime through the environment they inherit from the driver. Unset,
nothing happens.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENV", "PAUSE_MARKER", "Fault", "InjectedFault", "KillAt", "PauseAt", "RaiseAt",
           "parse_faults", "pause_marker", "stage_fault", "step_hooks"]

ENV = "WSFM_FAULT"
PAUSE_MARKER = ".wsfm-fault-pause@{step}.json"  # in the stage folder, while and after a pause


def pause_marker(out_dir: str | Path, step: int) -> Path:
    """The marker of a ``pause:STAGE@step`` drill in the stage folder ``out_dir``."""
    return Path(out_dir) / PAUSE_MARKER.format(step=step)


class InjectedFault(RuntimeError):
    """The failure that a fault drill asked for (never raised unless ``WSFM_FAULT`` is set)."""


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
    """Stall the worker of ``rank`` for ``seconds`` when it finishes ``step``.

    With ``marker`` (a file path) the pause fires once: it writes the marker (pid, rank,
    step, ``"state": "paused"``) and stalls until the file is deleted or ``seconds`` have
    passed, then rewrites it as ``"released"``; a marker already there (a restarted worker,
    after a pause that was killed or released) means run on."""

    rank: int
    step: int
    seconds: float = 3600.0
    marker: str = ""

    def __call__(self, rank: int, step: int) -> None:
        if rank != self.rank or step != self.step:
            return
        if not self.marker:
            time.sleep(self.seconds)
            return
        path = Path(self.marker)
        if path.exists():
            return
        record = {"pid": os.getpid(), "rank": rank, "step": step}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({**record, "state": "paused"}))
        os.replace(tmp, path)
        deadline = time.monotonic() + self.seconds
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        path.write_text(json.dumps({**record, "state": "released"}))


@dataclass(frozen=True)
class RaiseAt:
    """Raise :class:`InjectedFault` on the worker of ``rank`` when it finishes ``step``."""

    rank: int
    step: int

    def __call__(self, rank: int, step: int) -> None:
        if rank == self.rank and step == self.step:
            raise InjectedFault(f"injected fault ({ENV}): rank {rank} raised after step {step}")


@dataclass(frozen=True)
class Fault:
    """One item of ``WSFM_FAULT``: ``action`` (pause, raise) at ``stage``, at ``step`` for a
    training stage (None: at the end of the stage's work)."""

    action: str
    stage: str
    step: int | None = None


def parse_faults(value: str) -> list[Fault]:
    """``"raise:evaluate,pause:train_refiner@90"`` -> faults; a malformed item is refused."""
    faults = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        action, _, target = item.partition(":")
        stage, _, step = target.partition("@")
        if action not in ("pause", "raise") or not stage or (step and not step.isdigit()) or (
                action == "pause" and not step):
            raise ValueError(f"{ENV}={value!r}: cannot read {item!r} (expected "
                             "pause:STAGE@STEP, raise:STAGE@STEP or raise:STAGE)")
        faults.append(Fault(action, stage, int(step) if step else None))
    return faults


def _faults(environ: Mapping[str, str] | None) -> list[Fault]:
    return parse_faults((os.environ if environ is None else environ).get(ENV, ""))


def step_hooks(stage: str, environ: Mapping[str, str] | None = None,
               out_dir: str | Path | None = None) -> tuple[Callable[[int, int], None], ...]:
    """The training-step hooks that ``WSFM_FAULT`` asks of ``stage`` (on rank 0). With
    ``out_dir`` (the stage folder) a pause fires once per stage output (its marker there)."""
    hooks: list[Callable[[int, int], None]] = []
    for f in _faults(environ):
        if f.stage != stage or f.step is None:
            continue
        if f.action == "pause":
            marker = "" if out_dir is None else str(pause_marker(out_dir, f.step))
            hooks.append(PauseAt(rank=0, step=f.step, marker=marker))
        else:
            hooks.append(RaiseAt(rank=0, step=f.step))
    return tuple(hooks)


def stage_fault(stage: str, environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`InjectedFault` when ``WSFM_FAULT`` holds ``raise:<stage>``."""
    if any(f.stage == stage and f.action == "raise" and f.step is None
           for f in _faults(environ)):
        raise InjectedFault(f"injected fault ({ENV}): {stage} raised after its work, "
                            "before its commit")
