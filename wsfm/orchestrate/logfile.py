"""The invocation's log file: everything but the driver's own messages goes there.

``wsfm run`` talks to the user through a few lines (stage lines, the board or periodic
progress lines, warnings, the summary). Everything else that reaches the driver process (Ray's
own logging, the worker output that Ray forwards with ``log_to_driver``, DeepSpeed, MLflow,
torch warnings, C++ logs written straight to file descriptor 2) is captured at the file
descriptor level: :func:`capture` points fds 1 and 2 at a pipe whose reader thread writes
``<home>/logs/<timestamp>-<pipeline>.log`` (and, with ``verbose``, the terminal too). The
user's messages go to :attr:`Capture.user`, a stream on the original stdout, and into the log.
The exceptions: a warning that wsfm's own code raised (in the driver or in a Ray worker) is
something the user can act on, so it is shown as well (``[wsfm] warning: ...``); so is each
kill of Ray's memory monitor (:data:`RAY_OOM`), which Ray itself only writes to the log.

A log that cannot be written (its disk is full) must not stop the run nor flood the console:
the log moves to the temporary folder (``<tmp>/wsfm-logs/``), the user is told once, and the
lines that name the log name the new file; if that fails too, the log is dropped (told once).
"""

from __future__ import annotations

import codecs
import io
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = ["RAY_OOM", "WSFM_WARNING", "Capture", "capture", "log_path"]

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# ``warnings`` prints ``<path>/wsfm/<module>.py:<line>: <Category>: <message>``.
WSFM_WARNING = re.compile(r"/wsfm/[\w/]+\.py:\d+: (\w*Warning): (.*?)(?: \[repeated .*)?$")
# The raylet's line when its memory monitor killed a worker and its task will be retried.
RAY_OOM = re.compile(r"Task (\S+) failed due to oom\. There are (\S+) oom retries remaining.*?"
                     r"was ([\d.]+\w+) used / ([\d.]+\w+) limit")


def log_path(folder: Path, pipeline: str, now: float | None = None) -> Path:
    """``<folder>/<YYYYmmdd-HHMMSS>-<pipeline>.log`` (a new name for each invocation;
    ``folder`` is ``Location.logs``, ``<home>/logs`` for a local home)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    path = Path(folder) / f"{stamp}-{pipeline}.log"
    n = 1
    while path.exists():  # two invocations within a second
        path = path.with_name(f"{stamp}-{pipeline}-{n}.log")
        n += 1
    return path


@dataclass
class Capture:
    """``user``: the original stdout (for the driver's messages); ``path``: the log file."""

    user: TextIO
    path: Path
    _log: TextIO | None = None  # opened on the first write: a refused run leaves no file
    _closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _warned: set[str] = field(default_factory=set)
    _first: Path | None = None  # the log's first path, once it moved
    _dropped: bool = False  # no log can be written at all

    def echo(self, *args: Any, **kwargs: Any) -> None:
        """``print`` to the user and into the log."""
        buf = io.StringIO()
        print(*args, file=buf, **kwargs)
        with self._lock:
            text = buf.getvalue()
            if self._first is not None:  # the log moved: lines that name it say where
                text = text.replace(str(self._first), str(self.path))
            self.user.write(text)
            self.user.flush()
            self._write_log(text)

    def _write_log(self, text: str) -> None:
        """Append to the log file (under the lock); on a failed write, go on in the
        temporary folder once, else drop the log; say so once either way."""
        if self._dropped:
            return
        try:
            self._append(text)
            return
        except OSError as exc:
            why = exc.strerror or str(exc)
        if self._first is None:
            self._first = self.path
            self.path = Path(tempfile.gettempdir()) / "wsfm-logs" / self.path.name
            try:
                self._append(text)
                self.user.write(f"[wsfm] warning: the log {self._first} cannot be written "
                                f"({why}); it goes on in {self.path}\n")
                return
            except OSError as again:
                why = again.strerror or str(again)
        self._dropped = True
        self.user.write(f"[wsfm] warning: the log {self.path} cannot be written ({why}): "
                        "this console has the run's messages; tracebacks are dropped (-v "
                        "shows them)\n")

    def _append(self, text: str) -> None:
        """Write ``text`` to the log at :attr:`path`, opening it on first use (closed again
        when a write fails)."""
        try:
            if self._log is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._log = open(self.path, "a", encoding="utf-8",  # noqa: SIM115
                                 errors="replace")
            self._log.write(text)
            self._log.flush()
        except OSError:
            self._close_log()
            raise

    def _close_log(self) -> None:
        if self._log is not None:
            try:
                self._log.close()
            except OSError:  # the buffered rest did not fit either
                pass
            self._log = None

    def _pump(self, fd: int, verbose: bool) -> None:
        partial = ""
        decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while True:
                data = pipe.read(1 << 16)
                if not data:
                    return
                text = decode(data)  # a character may be split between two reads
                *lines, partial = (partial + text).split("\n")
                with self._lock:
                    if self._closed:  # capture() ended; a lingering child wrote late
                        return
                    self._write_log(ANSI.sub("", text))  # Ray colours its line prefixes
                    if verbose:
                        self.user.write(text)
                    else:
                        self._surface_warnings(lines)
                    self.user.flush()

    def _surface_warnings(self, lines: list[str]) -> None:
        """wsfm's own warnings (``warnings.warn`` in a wsfm module, wherever it ran) are for
        the user: each distinct one is shown once."""
        for line in lines:
            oom = RAY_OOM.search(line)
            if oom:
                erase = "\r\x1b[K" if self.user.isatty() else ""
                self.user.write(f"{erase}[wsfm] warning: Ray's memory monitor killed a worker "
                                f"running {oom.group(1)} (the node used {oom.group(3)} of "
                                f"{oom.group(4)}); Ray retries it ({oom.group(2)} retries "
                                "left)\n")
            found = WSFM_WARNING.search(line)
            if found and found.group(2) not in self._warned:
                self._warned.add(found.group(2))
                erase = "\r\x1b[K" if self.user.isatty() else ""  # a live bar may be drawn
                self.user.write(f"{erase}[wsfm] warning: {found.group(2).strip()}\n")


@contextmanager
def capture(path: Path, *, verbose: bool = False) -> Iterator[Capture]:
    """Send fds 1 and 2 (and so ``sys.stdout``, ``sys.stderr``, logging and child processes
    started meanwhile) into ``path``; with ``verbose`` also on to the original stdout."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    user = os.fdopen(os.dup(1), "w", buffering=1, errors="replace")
    cap = Capture(user, path)
    read, write = os.pipe()
    pump = threading.Thread(target=cap._pump, args=(read, verbose), daemon=True,
                            name="wsfm-log")
    pump.start()
    os.dup2(write, 1)
    os.dup2(write, 2)
    os.close(write)
    try:
        yield cap
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)  # the pipe's last writers close: the pump sees its end
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        # Processes started meanwhile (Ray's) may still hold the pipe: do not wait forever.
        pump.join(timeout=5.0)
        with cap._lock:
            cap._closed = True
            cap._close_log()
            user.flush()
        user.close()
