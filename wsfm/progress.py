"""Progress of a long loop: done/total, rate and ETA, as periodic log lines and a snapshot.

A :class:`Progress` runs where the work runs: inside a stage's Ray task (``RayRuntime.map``:
shard tasks done) or in this process (``LocalRuntime.map``). Its output never reaches a
terminal (a Ray task's output goes to the invocation's log file), so it prints one full line
every ``interval`` seconds and a last one when the work is done, so logs stay short and every
line stands on its own::

    generate_drafts  12/40 shards  30.0%  300,000 drafts  85.2k drafts/s  ETA 0:00:08

An optional second quantity (``work``: drafts per shard) gives the rate its unit; without it
the rate counts items. With a ``path`` it also keeps a *snapshot* there (JSON, replaced
atomically, at most once a second); the driver shows the running stages from those snapshots
(``wsfm.orchestrate.board``: a live line on a terminal, ``[progress]`` lines elsewhere). The
training stages write the same snapshot from rank 0 (``wsfm.train.monitor``), with the loss,
the learning rate and rank 0's ETA.

Why this is not ``ray.experimental.tqdm_ray`` or ``rich``: docs/progress.md.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

__all__ = ["SNAPSHOT", "Progress", "format_duration", "format_line", "format_rate",
           "read_snapshot", "write_snapshot"]

SNAPSHOT = "progress.json"  # a stage's snapshot, in its (partial) output folder


def write_snapshot(path: str | Path, snapshot: dict[str, Any]) -> None:
    """Replace the snapshot at ``path`` atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(snapshot))
    os.replace(tmp, path)


def read_snapshot(path: str | Path, newer_than: float = 0.0) -> dict[str, Any] | None:
    """The snapshot at ``path`` if it exists and was written after ``newer_than`` (a
    ``time.time()``), else None."""
    try:
        if os.stat(path).st_mtime < newer_than:
            return None
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def format_line(snap: dict[str, Any]) -> str:
    """One status line from a snapshot: ``desc``, ``done``/``total`` ``unit``, optional
    ``work`` ``work_unit``, ``rate`` ``rate_unit``/s, ``eta_s`` (or ``elapsed_s`` once done)
    and an optional ``note`` (a loss, say)."""
    done, total = snap["done"], snap["total"]
    pct = 100.0 * done / total if total else 100.0
    parts = [snap["desc"]] if snap.get("desc") else []
    parts += [f"{done}/{total} {snap['unit']}", f"{pct:5.1f}%"]
    if snap.get("work") is not None:
        parts.append(f"{snap['work']:,.0f} {snap['work_unit']}")
    if snap.get("note"):
        parts.append(snap["note"])
    parts.append(f"{format_rate(snap['rate'])} {snap['rate_unit']}/s")
    if done >= total:
        parts.append(f"in {format_duration(snap['elapsed_s'])}")
    else:
        parts.append(f"ETA {format_duration(snap['eta_s'])}")
    return "  ".join(parts)


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``?`` when unknown)."""
    if seconds != seconds or seconds == float("inf") or seconds < 0:  # NaN, inf
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_rate(value: float) -> str:
    """A rate with three significant digits and a k/M/G suffix: ``85.2k``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


class Progress:
    """Counts finished items and shows done/total, items (or work) per second and ETA.

    Args:
        total: items expected (shards, steps).
        desc: a label that starts every line.
        unit: what an item is called ("shards", "steps").
        work_total: optional total of a second quantity (drafts, samples) that the rate and
            the ETA are measured in; each :meth:`update` then says how much work it finished.
        work_unit: that quantity's name.
        stream: where to write (default ``sys.stdout``).
        interval: seconds between lines.
        clock: seconds, monotonic (tests pass a fake).
        path: keep a snapshot here for the driver's board (see the module docstring).
        quiet: write no lines; snapshots are still kept.
    """

    def __init__(self, total: int, *, desc: str = "", unit: str = "items",
                 work_total: float | None = None, work_unit: str = "",
                 stream: TextIO | None = None, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 path: str | Path | None = None, quiet: bool = False):
        if total < 0:
            raise ValueError(f"total must be >= 0, got {total}")
        self.total, self.desc, self.unit = total, desc, unit
        self.work_total, self.work_unit = work_total, work_unit
        self.stream = stream if stream is not None else sys.stdout
        self.interval, self.clock = interval, clock
        self.path = None if path is None else Path(path)
        self.quiet = quiet
        self.done, self.work = 0, 0.0
        self.start = clock()
        self._last_shown = self._last_saved = -float("inf")
        self._shown: tuple[int, float] | None = None  # (done, work) in the last line
        self._closed = False

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    def rate(self) -> float:
        """Work (or items) per second so far."""
        elapsed = self.elapsed
        amount = self.work if self.work_total is not None else self.done
        return amount / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float:
        """Seconds left at the rate so far (``inf`` before anything is done)."""
        if self.work_total is not None:
            left, amount = self.work_total - self.work, self.work
        else:
            left, amount = self.total - self.done, self.done
        if left <= 0:
            return 0.0
        return left * self.elapsed / amount if amount > 0 else float("inf")

    def snapshot(self) -> dict[str, Any]:
        """The status as data (what :func:`format_line` and the driver's board read)."""
        has_work = self.work_total is not None
        return {"desc": self.desc, "done": self.done, "total": self.total, "unit": self.unit,
                "work": self.work if has_work else None, "work_unit": self.work_unit,
                "rate": self.rate(), "rate_unit": self.work_unit if has_work else self.unit,
                "eta_s": self.eta(), "elapsed_s": self.elapsed}

    def line(self) -> str:
        """The status as one line of text."""
        return format_line(self.snapshot())

    def update(self, n: int = 1, work: float = 0.0) -> None:
        """Record ``n`` more finished items holding ``work`` more units of work."""
        self.done += n
        self.work += work
        self.refresh(force=self.done >= self.total)

    def refresh(self, force: bool = False) -> None:
        """Print the status line if ``interval`` has passed since the last one (or
        ``force``); keep the snapshot if a second has passed."""
        now = self.clock()
        if self._closed:
            return
        if self.path is not None and (force or now - self._last_saved >= 1.0):
            self._last_saved = now
            write_snapshot(self.path, self.snapshot())
        if self.quiet or (not force and now - self._last_shown < self.interval):
            return
        self._last_shown, self._shown = now, (self.done, self.work)
        self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Show the final status (once, unless the last line already did)."""
        if self._closed:
            return
        if self.path is not None:
            write_snapshot(self.path, self.snapshot())
        if self._shown != (self.done, self.work):
            self.refresh(force=True)
        self._closed = True

    def __enter__(self) -> Progress:
        self.refresh(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()
