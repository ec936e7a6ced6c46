"""What the operator sees of a run: the plan, a failed stage's summary, the final table.

Every line goes through ``echo`` (``print``, or the log file's echo that also writes the
invocation's log, ``wsfm.orchestrate.logfile``); a failed stage's full traceback goes to
stderr, which the CLI sends into that log.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from wsfm.orchestrate.dag import PlanItem
from wsfm.orchestrate.logfile import stage_tail
from wsfm.orchestrate.outcome import RunSummary

__all__ = ["Echo", "print_plan", "print_table", "report_failure", "short_error"]

Echo = Callable[[str], None]  # print-like: one line for the operator


def print_plan(plan: list[PlanItem], echo: Echo) -> None:
    """A dry run's answer: each stage's action, fingerprint and why."""
    for item in plan:
        echo(f"[plan] {item.stage:<16} {item.action:<8} {item.fingerprint}  {item.reason}")


def short_error(exc: BaseException) -> str:
    """The stage's own exception, as ``Type: message`` (its last line)."""
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the stage's exception
    return "".join(traceback.format_exception_only(type(cause), cause)).strip()


def report_failure(name: str, seconds: float, error: str, exc: BaseException,
                   log_path: Path | None, echo: Echo) -> None:
    """One FAILED line; with a log file, the stage's last lines in it, where the full
    traceback is, and that traceback (the remote one included) into the log."""
    echo(f"[wsfm] {name:<16} FAILED   {seconds:7.1f}s  {error.splitlines()[-1]}")
    if log_path is not None:
        for line in stage_tail(log_path, name, 10):
            echo(f"    | {line}")
        echo(f"    (the full traceback: {log_path})")
        trace = "".join(traceback.format_exception(exc))  # the remote trace is in it
        print(f"{name} failed:\n{trace}", file=sys.stderr, flush=True)  # into the log


def print_table(summary: RunSummary, echo: Echo) -> None:
    """Each stage's status, time, fingerprint and first metrics (or error); then the verdict."""
    echo("")
    echo(f"{'stage':<16} {'status':<8} {'seconds':>8}  {'fingerprint':<16}  notes")
    for o in summary.outcomes:
        note = o.error or ", ".join(f"{k}={v:.4g}" for k, v in list(o.metrics.items())[:3])
        echo(f"{o.stage:<16} {o.status:<8} {o.seconds:8.1f}  {o.fingerprint:<16}  {note}")
    echo(f"pipeline {summary.pipeline}: {'ok' if summary.ok else 'FAILED'}"
         f" (MLflow parent run {summary.parent_run_id})")
