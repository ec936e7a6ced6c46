"""Locks that let two invocations share one home: per stage output, and for the tracking store.

Two ``wsfm run`` of the same pipeline on the same home plan the same stages with the same
fingerprints. Without a lock both would build the same output in the same partial folder at
once. With :func:`stage_lock`, a stage task holds an exclusive ``flock`` on
``<artifacts>/.locks/<pipeline>/<stage>-<fingerprint>.lock`` from before it opens its partial
folder until after its commit; the other invocation's task waits, then finds the output
committed and reuses it (``wsfm.orchestrate.runner.execute_stage``). :func:`file_lock` serialises
the creation of the MLflow store and experiment, which two first runs would otherwise race on.

``flock`` locks belong to the open file: the kernel drops them when the holder dies, so a
SIGKILLed stage never leaves a stale lock. The lock files live apart from the stage folders
(``.locks/``), so that listing a stage folder shows outputs only; they are never deleted (a
deleted lock file lets a third process lock a new file while a second still waits on the old).
They work on local file systems (and NFSv4); an object store needs its own scheme.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOCKS", "file_lock", "stage_lock", "stage_lock_path"]

LOCKS = ".locks"


def stage_lock_path(store_root: str | Path, pipeline: str, stage: str, fp: str) -> Path:
    return Path(store_root) / LOCKS / pipeline / f"{stage}-{fp}.lock"


@contextlib.contextmanager
def file_lock(path: str | Path, *, note: str = "") -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created with its folder); yields True when
    another process held it first and this one had to wait. ``note``: printed when waiting."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            waited = False
        except BlockingIOError:
            if note:
                print(f"[wsfm] {note}: waiting for {path}", file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
            waited = True
        try:
            yield waited
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def stage_lock(store_root: str | Path, pipeline: str, stage: str, fp: str) -> Iterator[bool]:
    """:func:`file_lock` on the lock of ``stage``'s output ``fp``."""
    with file_lock(stage_lock_path(store_root, pipeline, stage, fp),
                   note=f"{stage} is being made by another invocation") as waited:
        yield waited
