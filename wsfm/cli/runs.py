"""``wsfm runs list [PIPELINE]`` and ``wsfm runs show RUN_ID``: past invocations from MLflow.

Each ``wsfm run`` is one MLflow parent run with a child run per stage (tagged ``wsfm.stage``
and ``wsfm.status``: ran or cached; a failed stage's run has status FAILED). Reads the
tracking store (``<home>/mlflow.db`` or ``$MLFLOW_TRACKING_URI``); writes nothing.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from wsfm.errors import UserError
from wsfm.progress import format_duration

__all__ = ["HEADLINE", "Invocation", "StageRow", "add_parser", "invocations"]

# (stage, metric) pairs shown for every invocation: the quality and speed-up it reached.
HEADLINE = (("evaluate", "warm_quality"), ("evaluate", "cold_quality"),
            ("evaluate", "speedup_nfe"), ("register", "gates_passed"))


@dataclass
class StageRow:
    stage: str
    status: str  # ran, cached, failed, running
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str = ""


@dataclass
class Invocation:
    run_id: str
    pipeline: str
    profile: str
    status: str  # MLflow's: FINISHED, FAILED, RUNNING
    start_ms: int
    end_ms: int | None
    stages: list[StageRow] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return None if self.end_ms is None else (self.end_ms - self.start_ms) / 1000

    def outcomes(self) -> str:
        """``"5 ran, 2 cached"``."""
        counts = Counter(s.status for s in self.stages)
        return ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "-"

    def headline(self) -> str:
        by_stage = {s.stage: s.metrics for s in self.stages}
        return "  ".join(f"{m}={by_stage[st][m]:.4g}" for st, m in HEADLINE
                         if m in by_stage.get(st, {}))


def _stage_status(run) -> str:
    if run.info.status == "FAILED":
        return "failed"
    if run.info.status == "RUNNING":
        return "running"
    return run.data.tags.get("wsfm.status", "?")


def invocations(runs, experiments: dict[str, str]) -> list[Invocation]:
    """Parent runs (no ``mlflow.parentRunId``) with their stage rows, newest first.
    ``runs``: MLflow ``Run`` objects; ``experiments``: experiment id -> name."""
    children: dict[str, list] = {}
    parents = []
    for run in runs:
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent:
            children.setdefault(parent, []).append(run)
        else:
            parents.append(run)
    out = []
    for run in parents:
        rows = [StageRow(c.data.tags.get("wsfm.stage", c.info.run_name), _stage_status(c),
                         ((c.info.end_time or c.info.start_time) - c.info.start_time) / 1000,
                         dict(c.data.metrics), c.info.run_id)
                for c in sorted(children.get(run.info.run_id, []),
                                key=lambda c: c.info.start_time)]
        out.append(Invocation(run.info.run_id, experiments.get(run.info.experiment_id, "?"),
                              run.data.tags.get("wsfm.profile", ""), run.info.status,
                              run.info.start_time, run.info.end_time, rows))
    return sorted(out, key=lambda i: i.start_ms, reverse=True)


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _client(home: str | None):
    """The tracking store's client; a missing SQLite store is an error, not created.
    (The URI rule of ``wsfm.tracking.tracking_uri``, without importing the pyfunc model.)"""
    import os

    from mlflow.tracking import MlflowClient

    from wsfm.cli.common import home_of

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        db = Path(home_of(home)) / "mlflow.db"
        if not db.is_file():
            from wsfm.errors import InputNotFound

            raise InputNotFound(f"no MLflow store at {db} (nothing has run with this "
                                "--home / $WSFM_HOME yet)")
        uri = f"sqlite:///{db}"
    return MlflowClient(uri)


def _load(client, pipeline: str | None) -> list[Invocation]:
    if pipeline and Path(pipeline).is_file():  # a YAML: its pipeline name
        from wsfm.config import load_pipeline

        pipeline = load_pipeline(pipeline).name
    exps = client.search_experiments()
    if pipeline:
        exps = [e for e in exps if e.name == pipeline]
        if not exps:
            raise UserError(f"no runs of pipeline {pipeline!r} in {client.tracking_uri}")
    names = {e.experiment_id: e.name for e in exps}
    runs = client.search_runs(list(names), max_results=50000) if names else []
    return invocations(runs, names)


def _cmd_list(args: argparse.Namespace) -> int:
    found = _load(_client(args.home), args.pipeline)
    print(f"{'run id':<32}  {'pipeline':<10} {'profile':<8} {'started':<19}  "
          f"{'duration':>8}  {'status':<8}  {'stages':<22}  headline")
    for inv in found[:args.limit]:
        took = "-" if inv.seconds is None else format_duration(inv.seconds)
        print(f"{inv.run_id:<32}  {inv.pipeline:<10} {inv.profile:<8} {_when(inv.start_ms)}  "
              f"{took:>8}  {inv.status:<8}  {inv.outcomes():<22}  {inv.headline()}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    client = _client(args.home)
    matches = [i for i in _load(client, None) if i.run_id.startswith(args.run_id)]
    if len(matches) != 1:
        raise UserError(f"run id {args.run_id!r} matches {len(matches)} invocations in "
                         f"{client.tracking_uri} (`wsfm runs list` shows them)")
    inv = matches[0]
    took = "still running" if inv.seconds is None else format_duration(inv.seconds)
    print(f"run {inv.run_id}: pipeline {inv.pipeline}, profile {inv.profile}, {inv.status}, "
          f"started {_when(inv.start_ms)}, took {took}")
    print(f"  stages: {inv.outcomes()}")
    if inv.headline():
        print(f"  headline: {inv.headline()}")
    print(f"  {'stage':<16} {'status':<8} {'seconds':>8}  metrics")
    for row in inv.stages:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(row.metrics.items())[:6])
        print(f"  {row.stage:<16} {row.status:<8} {row.seconds:8.1f}  {shown}")
    return 0 if inv.status != "FAILED" else 1


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    runs = sub.add_parser("runs", help="list past invocations or show one (from MLflow)",
                          description="Past `wsfm run` invocations from the MLflow tracking "
                          "store (<home>/mlflow.db or $MLFLOW_TRACKING_URI). Reads it; "
                          "writes nothing.")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    listing = runs_sub.add_parser(
        "list", parents=[common], help="one line per invocation, newest first",
        description="One line per invocation (MLflow parent run), newest first: run id, "
        "pipeline, profile, start, duration, status, stage outcomes (from the child runs' "
        "wsfm.status tags) and the headline metrics. Reads the MLflow store; writes nothing.")
    listing.add_argument("pipeline", nargs="?",
                         help="a pipeline name or YAML (default: every pipeline)")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (20)")
    listing.set_defaults(func=_cmd_list)
    show = runs_sub.add_parser(
        "show", parents=[common], help="one invocation, stage by stage",
        description="One invocation: status, duration, and per stage its outcome, seconds "
        "and metrics. Reads the MLflow store; writes nothing. Exit 1 if the run failed.")
    show.add_argument("run_id", help="the parent run's id (a unique prefix will do)")
    show.set_defaults(func=_cmd_show)
