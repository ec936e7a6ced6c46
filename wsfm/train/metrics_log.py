"""The per-step metrics file of a training stage, ``train_metrics.jsonl``: its one format.

Rank 0's monitor (``wsfm.train.monitor``) appends each logged step here before it sends it to
MLflow; the driver that logs the stage (``wsfm.tracking``) reads it back to log what the
tracking server did not receive. Both import this module and not each other, so the format
has one home and neither side drags the other's dependencies (MLflow, torch) in.

One JSON object a line: ``{"step": int, "timestamp": int (ms since the epoch), "metrics":
{name: float}}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["STEP_METRICS", "append_step_metrics", "read_step_metrics"]

STEP_METRICS = "train_metrics.jsonl"  # rank 0's logged steps: {"step", "timestamp", "metrics"}


def append_step_metrics(folder: Path, record: dict[str, Any]) -> None:
    """Append one step's record to ``train_metrics.jsonl`` in ``folder`` (one line, so that a
    worker killed mid-write costs at most that line)."""
    with open(Path(folder) / STEP_METRICS, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def read_step_metrics(folder: Path) -> list[dict[str, Any]]:
    """The records of ``train_metrics.jsonl`` in ``folder`` (none: ``[]``); a line cut short
    by a killed worker is left out."""
    path = Path(folder) / STEP_METRICS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
