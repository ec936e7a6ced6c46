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
While it holds a stage's lock, the holder writes who it is into the file (its MLflow run, pid,
host, since when: :func:`lock_holder`): a waiting invocation says once whom it waits for, and
``wsfm status`` names the run that is making a stage.
They work on local file systems (and NFSv4); an object store has its own scheme
(``wsfm.orchestrate.leases``). A waiter
polls (:data:`POLL`) rather than blocking in ``flock``, so that inside a Ray task it can give
its CPU back while it waits (:func:`_idle`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray._private.worker import RemoteFunction0  # what ray.remote makes of _sleep

__all__ = ["LOCKS", "describe_holder", "file_lock", "lock_holder", "stage_lock",
           "stage_lock_path"]

LOCKS = ".locks"
POLL = 1.0  # seconds between attempts while another process holds a lock


def stage_lock_path(store_root: str | Path, pipeline: str, stage: str, fp: str) -> Path:
    return Path(store_root) / LOCKS / pipeline / f"{stage}-{fp}.lock"


@contextlib.contextmanager
def file_lock(path: str | Path, *, note: str = "",
              holder: dict[str, Any] | None = None) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created with its folder); yields True when
    another process held it first and this one had to wait. ``note``: printed once when
    waiting, with who holds the lock. ``holder``: what this process records in the lock
    file while it holds it (with its pid, host and start time; :func:`lock_holder`)."""
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
                    print(f"[wsfm] {note} ({describe_holder(_record(fh))}): waiting for "
                          f"{path}", file=sys.stderr, flush=True)
                waited = True
                _idle(POLL)
        try:
            if holder is not None:
                _rewrite(fh, json.dumps({**holder, "pid": os.getpid(),
                                         "host": socket.gethostname(), "since": time.time()}))
            yield waited
        finally:
            if holder is not None:
                _rewrite(fh, "")  # an empty record: nobody (the file itself stays)
            fcntl.flock(fh, fcntl.LOCK_UN)


def _rewrite(fh: IO[str], text: str) -> None:
    """Replace the lock file's record, unbuffered. Best effort: the record only says who
    holds the lock (the ``flock`` is the lock), so a full disk must not fail the holder."""
    try:
        os.ftruncate(fh.fileno(), 0)
        os.pwrite(fh.fileno(), text.encode(), 0)
    except OSError:
        pass


def _record(fh: IO[str]) -> dict[str, Any]:
    fh.seek(0)
    try:
        record = json.loads(fh.read() or "{}")
    except ValueError:  # being rewritten this instant
        return {}
    return record if isinstance(record, dict) else {}


def lock_holder(path: str | Path) -> dict[str, Any] | None:
    """The record of the process that holds the lock at ``path`` now (``{}`` when it wrote
    none), or None when no process holds it. A holder that died holds nothing: the kernel
    dropped its ``flock``."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _record(fh)
        fcntl.flock(fh, fcntl.LOCK_UN)
        return None


def describe_holder(record: dict[str, Any]) -> str:
    """``MLflow run <id>, pid <pid> on <host> since <time>`` (what the record has)."""
    parts = []
    if record.get("mlflow_run_id"):
        parts.append(f"MLflow run {record['mlflow_run_id']}")
    if record.get("pid"):
        parts.append(f"pid {record['pid']} on {record.get('host', '?')}")
    if record.get("since"):
        parts.append("since " + time.strftime("%Y-%m-%d %H:%M:%S",
                                              time.localtime(record["since"])))
    return ", ".join(parts) or "another invocation"


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
def stage_lock(store_root: str | Path, pipeline: str, stage: str, fp: str,
               holder: dict[str, Any] | None = None) -> Iterator[bool]:
    """:func:`file_lock` on the lock of ``stage``'s output ``fp``; ``holder``: who makes it
    (``{"mlflow_run_id": ...}``), for the other invocations and ``wsfm status``."""
    with file_lock(stage_lock_path(store_root, pipeline, stage, fp),
                   note=f"{stage} is being made by another invocation",
                   holder=holder or {}) as waited:
        yield waited
