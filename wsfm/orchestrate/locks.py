"""Locks that let two invocations share one home: per stage output, and for the tracking store.

Two ``wsfm run`` of the same pipeline on the same home plan the same stages with the same
fingerprints. Without a lock both would build the same output in the same partial folder at
once. With :func:`stage_lock`, a stage task holds an exclusive ``flock`` on
``<artifacts>/.locks/<pipeline>/<stage>-<fingerprint>.lock`` from before it opens its partial
folder until after its commit; the other invocation's task waits, then finds the output
committed and reuses it (``wsfm.orchestrate.stage_task.execute_stage``).
:func:`file_lock` serialises the creation of the MLflow store and experiment, which two
first runs would otherwise race on.

``flock`` locks belong to the open file: the kernel drops them when the holder dies, so a
SIGKILLed stage never leaves a stale lock. The lock files live apart from the stage folders
(``.locks/``), so that listing a stage folder shows outputs only; they are never deleted (a
deleted lock file lets a third process lock a new file while a second still waits on the old).
They work on local file systems (and NFSv4); an object store needs its own scheme. A waiter
polls (:data:`POLL`) rather than blocking in ``flock``, so that inside a Ray task it can give
its CPU back while it waits (:func:`_idle`).
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray._private.worker import RemoteFunction0  # what ray.remote makes of _sleep

__all__ = ["LOCKS", "file_lock", "stage_lock", "stage_lock_path"]

LOCKS = ".locks"
POLL = 1.0  # seconds between attempts while another process holds a lock


def stage_lock_path(store_root: str | Path, pipeline: str, stage: str, fp: str) -> Path:
    return Path(store_root) / LOCKS / pipeline / f"{stage}-{fp}.lock"


@contextlib.contextmanager
def file_lock(path: str | Path, *, note: str = "") -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created with its folder); yields True when
    another process held it first and this one had to wait. ``note``: printed when waiting."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        waited = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if note and not waited:
                    print(f"[wsfm] {note}: waiting for {path}", file=sys.stderr, flush=True)
                waited = True
                _idle(POLL)
        try:
            yield waited
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _idle(seconds: float) -> None:
    """Sleep. Inside a Ray task, by blocking on a zero-CPU timer task: Ray lends the CPU of a
    task blocked in ``ray.get`` to others, but not of one blocked in ``flock``. (Two
    invocations on a 2-CPU runtime each had a stage task waiting here on the stage the other
    was training, holding the CPUs that the other's training workers needed: a deadlock.)"""
    import ray

    if ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE:
        ray.get(_timer().remote(seconds))
    else:
        time.sleep(seconds)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _timer() -> RemoteFunction0[None, float]:
    import ray

    return ray.remote(num_cpus=0)(_sleep)


@contextlib.contextmanager
def stage_lock(store_root: str | Path, pipeline: str, stage: str, fp: str) -> Iterator[bool]:
    """:func:`file_lock` on the lock of ``stage``'s output ``fp``."""
    with file_lock(stage_lock_path(store_root, pipeline, stage, fp),
                   note=f"{stage} is being made by another invocation") as waited:
        yield waited
