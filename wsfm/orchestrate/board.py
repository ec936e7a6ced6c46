"""The driver's view of the stages that are running, drawn from their progress snapshots.

A stage runs in a Ray task (and its training in Ray Train workers), far from the driver's
terminal; it keeps a progress snapshot (``wsfm.progress``; rank 0's for training, with its
ETA) in its partial output folder. On a terminal the driver redraws one line from those
snapshots, one part per running stage::

    [#######.................] generate_drafts  12/40 shards  30.0%  ...  ETA 0:00:08

The line is cut to the terminal's width (a wrapped line cannot be redrawn in place) and is
cleared before any other driver message. Anywhere else (CI logs, ``| tee``, ``-v``) the board
prints one line per running stage every ``every`` seconds, from the same snapshots, when it
moved::

    [progress] generate_drafts  12/40 shards  30.0%  ...  ETA 0:00:08

Workers never need to know which: they keep snapshots, and what they print goes to the
invocation's log file. Why the line is drawn here rather than by ``rich`` or ``tqdm_ray``:
docs/progress.md.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from wsfm.progress import SNAPSHOT, format_line, read_snapshot

__all__ = ["StageBoard", "bar", "is_terminal"]


def bar(done: int, total: int, width: int = 24) -> str:
    filled = width if not total else min(width, int(width * done / total))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class StageBoard:
    """Args: ``stream`` (default stdout); ``live`` (default: whether it is a terminal);
    ``interval``: seconds between redraws; ``width``: columns (default: the terminal's);
    ``every``: seconds between progress lines when not live; ``clock``: ``time.time``-like
    (tests pass a fake)."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None,
                 interval: float = 0.5, width: int | None = None, every: float = 20.0,
                 clock: Callable[[], float] = time.time):
        self.stream = stream if stream is not None else sys.stdout
        self.live = is_terminal(self.stream) if live is None else live
        self.interval = interval
        self.width = width
        self.every = every
        self.clock = clock
        self._watched: dict[str, tuple[Path, float]] = {}  # stage -> (snapshot, since)
        self._drawn = False
        self._printed: dict[str, tuple[float, Any]] = {}  # stage -> (when, what) last line

    def watch(self, stage: str, folder: Path) -> None:
        """Show ``stage``, whose snapshot is ``folder/progress.json`` (one left there by an
        earlier attempt is ignored)."""
        self._watched[stage] = (Path(folder) / SNAPSHOT, time.time() - 1.0)
        self._printed[stage] = (self.clock(), None)  # the first line comes after ``every``

    def unwatch(self, stage: str) -> None:
        self._watched.pop(stage, None)
        self._printed.pop(stage, None)

    def line(self) -> str:
        """The running stages' status, one part each ("starting" before a snapshot)."""
        parts = []
        for stage, (path, since) in self._watched.items():
            snap = read_snapshot(path, newer_than=since)
            if snap is None:
                parts.append(f"{stage}  starting")
            else:
                snap = {**snap, "desc": snap.get("desc") or stage}
                parts.append(f"{bar(snap['done'], snap['total'])} {format_line(snap)}")
        return "  |  ".join(parts)

    def refresh(self) -> None:
        """Redraw the bar (live), or print the lines that are due (not live)."""
        if not self.live:
            self._print_lines()
            return
        if not self._watched:
            return
        width = self.width or self._columns()
        self.stream.write("\r" + self.line()[:max(10, width - 1)] + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def _columns(self) -> int:
        """The width of the terminal that ``stream`` is (stdout itself may be redirected
        into the log file meanwhile: ``wsfm.orchestrate.logfile``)."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):  # no fileno, or not a terminal
            return shutil.get_terminal_size().columns

    def _print_lines(self) -> None:
        """One line per stage whose last line is ``every`` seconds old and that moved since."""
        now = self.clock()
        for stage, (path, since) in self._watched.items():
            when, last = self._printed.get(stage, (now, None))
            if now - when < self.every:
                continue
            snap = read_snapshot(path, newer_than=since)
            if snap is None or (snap["done"], snap.get("work")) == last:
                continue
            self._printed[stage] = (now, (snap["done"], snap.get("work")))
            self.stream.write(f"[progress] {format_line({**snap, 'desc': stage})}\n")
            self.stream.flush()

    def clear(self) -> None:
        """Remove the bar (before another message is printed)."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def echo(self, echo: Callable[..., None]) -> Callable[..., None]:
        """``echo`` that clears the bar first."""
        def wrapped(*args: Any, **kwargs: Any) -> None:
            self.clear()
            echo(*args, **kwargs)
        return wrapped
