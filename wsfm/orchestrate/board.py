"""The driver's live progress bar for the stages that are running.

A stage runs in a Ray task (and its training in Ray Train workers), far from the driver's
terminal; it keeps a progress snapshot (``wsfm.progress``) in its partial output folder. On a
terminal the driver redraws one line from those snapshots, one part per running stage::

    [#######.................] generate_drafts  12/40 shards  30.0%  ...  ETA 0:00:08

The line is cut to the terminal's width (a wrapped line cannot be redrawn in place) and is
cleared before any other driver message. Anywhere else the board draws nothing: the workers
print their own periodic lines, which Ray forwards to the log.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

from wsfm.progress import ENV, SNAPSHOT, bar, format_line, is_terminal, read_snapshot

__all__ = ["StageBoard"]


class StageBoard:
    """Args: ``stream`` (default stdout); ``live`` (default: whether it is a terminal);
    ``interval``: seconds between redraws; ``width``: columns (default: the terminal's)."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None,
                 interval: float = 0.5, width: int | None = None):
        self.stream = stream if stream is not None else sys.stdout
        self.live = is_terminal(self.stream) if live is None else live
        self.interval = interval
        self.width = width
        self._watched: dict[str, tuple[Path, float]] = {}  # stage -> (snapshot, since)
        self._drawn = False

    @property
    def env(self) -> dict[str, str]:
        """Environment for the Ray jobs: while the board draws, workers stay quiet."""
        return {ENV: "driver"} if self.live else {}

    def watch(self, stage: str, folder: Path) -> None:
        """Show ``stage``, whose snapshot is ``folder/progress.json`` (one left there by an
        earlier attempt is ignored)."""
        self._watched[stage] = (Path(folder) / SNAPSHOT, time.time() - 1.0)

    def unwatch(self, stage: str) -> None:
        self._watched.pop(stage, None)

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
        if not self.live or not self._watched:
            return
        width = self.width or shutil.get_terminal_size().columns
        self.stream.write("\r" + self.line()[:max(10, width - 1)] + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        """Remove the bar (before another message is printed)."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def echo(self, echo):
        """``echo`` that clears the bar first."""
        def wrapped(*args, **kwargs):
            self.clear()
            echo(*args, **kwargs)
        return wrapped
