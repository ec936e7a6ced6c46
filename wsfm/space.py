"""Free space, checked before a stage writes what it knows the size of.

A stage whose output size is known in advance (the draft shards: ``wsfm.shards.shard_bytes``;
a training run's checkpoints and models: ``wsfm.train.checkpoint.training_bytes``) asks
:func:`require_space` before any work, and a destination that is short refuses the stage
with both numbers, instead of a full disk half-way through. Destinations on one filesystem
add up. An object-store URI has no free space to read: it is not checked.

A full disk can still come from elsewhere (another writer, the tracking store, a size the
estimate does not cover); the stage then fails with ``No space left on device`` and nothing
of it is marked complete (``wsfm.orchestrate.store``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from wsfm.errors import UserError

__all__ = ["SpaceShort", "exception_chain", "free_bytes", "human_bytes", "require_space",
           "says_disk_full"]


class SpaceShort(UserError, OSError):
    """A destination has less free space than a stage is about to write."""


def human_bytes(n: float) -> str:
    """``12.3 MB`` (decimal units)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (a stage folder may not exist yet)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: str | os.PathLike) -> int | None:
    """The free space (for this user) of the filesystem that holds ``path``; None for an
    object-store URI."""
    if "://" in str(path):
        return None
    return shutil.disk_usage(_existing(Path(path))).free


def require_space(needs: Mapping[str, int], what: str) -> None:
    """Refuse ``what`` unless each filesystem among ``needs`` (``{destination: bytes}``)
    has room for what goes onto it.

    Raises:
        SpaceShort: the first filesystem that is short, with the bytes needed and free.
    """
    by_device: dict[int, tuple[list[str], int, int]] = {}
    for dest, need in needs.items():
        free = free_bytes(dest)
        if free is None or need <= 0:
            continue
        device = os.stat(_existing(Path(dest))).st_dev
        paths, total, _ = by_device.get(device, ([], 0, free))
        by_device[device] = ([*paths, str(dest)], total + need, free)
    for paths, need, free in by_device.values():
        if need > free:
            raise SpaceShort(
                f"{what} needs {human_bytes(need)} ({need:,} bytes) in {' and '.join(paths)}, "
                f"whose filesystem has {human_bytes(free)} ({free:,} bytes) free: it did not "
                "start; free some space (or move the home, WSFM_HOME) and run again")


def exception_chain(exc: BaseException, limit: int = 16) -> list[BaseException]:
    """``exc`` and what it was raised from or during (``__cause__``, ``__context__``)."""
    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < limit:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    return chain


def says_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` or what it wraps says that a disk is full: ENOSPC, its text (an error
    that travelled as text), or SQLite's "database or disk is full" (wrapped by SQLAlchemy
    and MLflow)."""
    import errno

    return any(getattr(e, "errno", None) == errno.ENOSPC
               or "No space left on device" in str(e) or "database or disk is full" in str(e)
               for e in exception_chain(exc))
