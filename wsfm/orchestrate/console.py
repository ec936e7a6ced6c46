"""What the operator sees of a run: the plan, a failed stage's line, the final table.

Every line goes through ``echo`` (``print``, or the log file's echo that also writes the
invocation's log, ``wsfm.orchestrate.logfile``). A failed stage is one line
(:func:`failure_line`): the stage, the cause in words (:func:`short_error`: the stage's own
exception, found inside Ray's and Ray Train's wrappers), what to do (:func:`remedy`) and the
log file. Its full traceback goes to stderr, which the CLI sends into that log only (``-v``
streams the log).
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from wsfm.orchestrate.dag import PlanItem
from wsfm.orchestrate.outcome import RunSummary
from wsfm.space import says_disk_full

__all__ = ["Echo", "failure_line", "print_plan", "print_table", "remedy", "report_failure",
           "root_cause", "short_error"]

Echo = Callable[[str], None]  # print-like: one line for the operator


def print_plan(plan: list[PlanItem], echo: Echo) -> None:
    """A dry run's answer: each stage's action, fingerprint and why."""
    for item in plan:
        echo(f"[plan] {item.stage:<16} {item.action:<8} {item.fingerprint}  {item.reason}")


def root_cause(exc: BaseException) -> BaseException:
    """The stage's own exception inside the wrappers it travels in: a Ray task's
    (``RayTaskError.cause``), Ray Train's (``WorkerGroupError.worker_failures``, the lowest
    rank's; ``ControllerError.controller_failure``)."""
    cur = exc
    for _ in range(8):
        inner = getattr(cur, "cause", None)
        failures = getattr(cur, "worker_failures", None)
        if isinstance(inner, BaseException):
            cur = inner
        elif isinstance(failures, dict) and failures:
            cur = failures[min(failures)]
        elif isinstance(getattr(cur, "controller_failure", None), BaseException):
            cur = cur.controller_failure  # type: ignore[attr-defined]
        else:
            break
    return cur


# Ray's memory monitor: "... was 4.20GB used / 23.54GB limit (0.178462)" and "OOM kill reason:
# Memory usage ...B exceeded threshold of ...B (1.0% of ...B limit)".
_OOM_USED = re.compile(r"was ([\d.]+\w+) used / ([\d.]+\w+) limit")
_OOM_THRESHOLD = re.compile(r"exceeded threshold of \d+B \(([\d.]+%) of")


def short_error(exc: BaseException) -> str:
    """The stage's own exception (:func:`root_cause`) in one line: ``Type: message``; a Ray
    worker killed by the memory monitor, or lost with its node, in words."""
    cause = root_cause(exc)
    kind = type(cause).__name__
    if kind == "OutOfMemoryError" and type(cause).__module__.startswith("ray"):
        used, threshold = _OOM_USED.search(str(cause)), _OOM_THRESHOLD.search(str(cause))
        numbers = (f" (the node used {used.group(1)} of {used.group(2)}" if used else "") + (
            f"{'; ' if used else ' ('}its threshold is {threshold.group(1)} of the limit)"
            if threshold else ")" if used else "")
        return f"a Ray worker of this stage was killed by Ray's memory monitor{numbers}"
    if kind in ("WorkerCrashedError", "NodeDiedError", "ActorDiedError", "ObjectLostError"):
        return (f"{kind}: the Ray worker or node running this stage died (killed from outside, "
                "or its node was lost)")
    text = "".join(traceback.format_exception_only(type(cause), cause))
    return " ".join(text.split())


def remedy(exc: BaseException, stage: str) -> str:
    """What the operator can do about a stage's failure ("" where its message says so)."""
    cause = root_cause(exc)
    text = short_error(exc)
    if "run again" in text.lower():
        return ""
    if says_disk_full(cause):
        return "free some space and run again: finished stages are reused"
    if "memory monitor" in text:
        return (f"lower {stage}'s memory use (batch or shard size), give it more "
                f"(resources.{stage}.memory in the YAML) or raise RAY_memory_usage_threshold, "
                "and run again: finished stages are reused")
    if "died" in text:
        return "run again: finished stages are reused, training resumes from its checkpoint"
    from wsfm.errors import UserError

    if isinstance(cause, UserError):
        return "fix what it names and run again: finished stages are reused"
    return "the traceback is in the log; a rerun reuses the finished stages"


def failure_line(name: str, seconds: float, exc: BaseException, log_path: Path | None) -> str:
    """A failed stage for the operator, in one line: stage, cause, what to do, the log."""
    todo = remedy(exc, name)
    return (f"[wsfm] {name:<16} FAILED   {seconds:7.1f}s  {short_error(exc)}"
            + (f"; {todo}" if todo else "") + (f" (log: {log_path})" if log_path else ""))


def report_failure(name: str, seconds: float, exc: BaseException, log_path: Path | None,
                   echo: Echo) -> None:
    """The FAILED line; the full traceback (the remote one included) into the log only."""
    echo(failure_line(name, seconds, exc, log_path))
    if log_path is not None:
        trace = "".join(traceback.format_exception(exc))
        print(f"{name} failed:\n{trace}", file=sys.stderr, flush=True)  # into the log


def print_table(summary: RunSummary, echo: Echo) -> None:
    """Each stage's status, time, fingerprint and first metrics (or error); then the verdict."""
    echo("")
    echo(f"{'stage':<16} {'status':<8} {'seconds':>8}  {'fingerprint':<16}  notes")
    for o in summary.outcomes:
        note = (o.error if len(o.error) <= 120 else o.error[:119] + "…") or ", ".join(
            f"{k}={v:.4g}" for k, v in list(o.metrics.items())[:3])
        echo(f"{o.stage:<16} {o.status:<8} {o.seconds:8.1f}  {o.fingerprint:<16}  {note}")
    echo(f"pipeline {summary.pipeline}: {'ok' if summary.ok else 'FAILED'}"
         f" (MLflow parent run {summary.parent_run_id})")
