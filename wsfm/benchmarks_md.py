"""Write one benchmark's section of ``BENCHMARKS.md`` without touching the others.

(Moved here from ``benchmarks/report.py`` so that ``wsfm bench`` can import it.) Each
benchmark command owns the text between ``<!-- begin NAME -->`` and ``<!-- end NAME -->``
and rewrites it whole, with the command that produced it, the date and the machine.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import statistics
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BENCHMARKS", "machine", "markdown_table", "median", "write_section"]

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nMeasured by the commands named in each section (protocol: "
          "`docs/benchmark-protocol.md`). Compare numbers within a section only: each "
          "section's methods ran in one run on the same machine.\n")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, {gpu}"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, title: str, command: str, body: str,
                  path: Path = BENCHMARKS) -> None:
    """Replace (or append) section ``name`` of BENCHMARKS.md."""
    stamp = _dt.date.today().isoformat()
    one, _, fifteen = os.getloadavg()  # other work on the machine slows every timing
    block = (f"<!-- begin {name} -->\n## {title}\n\nCommand: `{command}`  \n"
             f"Date: {stamp}; machine: {machine()}; load average when written: {one:.1f} "
             f"(1 min), {fifteen:.1f} (15 min)\n\n{body.strip()}\n<!-- end {name} -->")
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->",
                         re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else (
        text.rstrip() + "\n\n" + block + "\n")
    path.write_text(text)
