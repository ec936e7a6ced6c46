"""Run a pipeline: plan, then execute each stage as a Ray task, tracked in MLflow.

The driver schedules a stage once its upstream stages are done and the cluster has room for
what it holds (``wsfm.orchestrate.scheduling``: two training stages that cannot both fit run
one after the other instead of timing out inside Ray Train), so independent branches
(``train_baseline`` beside the draft branch) run at the same time when resources allow. A
stage that could never fit is refused before anything runs. A
stage task builds its output in a temporary folder and commits it atomically; a failure leaves
every finished stage intact, and the next invocation resumes from them (fingerprint cache).
Ray starts only when something has to run.

A tracking server that stops answering mid-run (:class:`wsfm.tracking.TrackingLost`) stops
the run without losing work: no further stage starts, the running ones finish and commit (a
training stage's rank 0 keeps its step metrics in the stage folder), the runs that could not
be logged are written down in ``<artifacts>/.tracking-pending/<parent run>.json``, and the
command fails with one line naming the server. The next invocation, with the server back,
logs those runs first (into the same run ids: params, metrics, files, step history) and then
finds the finished stages cached.

This module is the entry point, :func:`run_pipeline`; the parts live beside it: the
scheduler loop (``dispatch``), one stage's task (``stage_task``), starting Ray
(``ray_start``), recovery from a lost tracking server (``recovery``), what the operator sees
(``console``) and the outcomes (``outcome``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from wsfm.config import PipelineConfig, to_dict
from wsfm.data.datasets import describe_source
from wsfm.orchestrate.board import StageBoard
from wsfm.orchestrate.console import Echo, print_plan, print_table
from wsfm.orchestrate.dag import PlanItem, make_plan
from wsfm.orchestrate.dispatch import Driver, run_stages
from wsfm.orchestrate.locks import file_lock
from wsfm.orchestrate.outcome import RunSummary, StageOutcome
from wsfm.orchestrate.recovery import PENDING, PendingRuns, settle_pending
from wsfm.orchestrate.stage_task import execute_stage
from wsfm.orchestrate.storage import locate
from wsfm.orchestrate.stores import open_store
from wsfm.stages import STAGES

if TYPE_CHECKING:
    from wsfm.orchestrate.stage_task import Store
    from wsfm.tracking import Tracker

__all__ = ["PENDING", "RunSummary", "StageOutcome", "execute_stage", "run_pipeline",
           "settle_pending"]


def run_pipeline(config: PipelineConfig, *, home: str | Path, pipeline_file: str = "",
                 profile: str | None = None, force: bool = False, from_stage: str | None = None,
                 only: str | None = None, dry_run: bool = False, address: str | None = None,
                 echo: Echo = print, board: StageBoard | None = None,
                 log_path: Path | None = None) -> RunSummary:
    """Plan, then run what is not cached. ``board`` shows the running stages' progress
    (default: a live bar when stdout is a terminal, periodic lines otherwise). ``log_path``:
    the invocation's log file (``wsfm.orchestrate.logfile``), whose lines a failed stage
    quotes."""
    if config.data.is_users:
        describe_source(config.data)  # users' data: a bad source fails before any work
    where = locate(home)
    if not dry_run:  # a tracking server that is down or refuses us: one error, before any work
        from wsfm.tracking import check_tracking_server

        check_tracking_server(where.mlflow_uri)
    if config.model.kind == "python":  # the user's network and weights, before any work
        # Imported here: torch, the components and MLflow stay out of the driver's start-up.
        from wsfm.components import check_users_network
        from wsfm.tracking import registered_weights

        check_users_network(config, lambda uri: registered_weights(uri, where.mlflow_uri))
    store = open_store(where.artifacts, config.name)
    plan = make_plan(STAGES, config, store, force=force, from_stage=from_stage, only=only)
    if dry_run:
        print_plan(plan, echo)
        return RunSummary(config.name, None, [], plan)
    if log_path is not None:  # checks passed: from here on the log has something to say
        echo(f"[wsfm] log: {log_path}")

    from wsfm.tracking import Tracker, TrackingLost

    lock_root = Path(where.artifacts) if not where.remote else where.logs
    pending = PendingRuns(lock_root / PENDING, config.name)
    with file_lock(lock_root / ".locks" / "tracking.lock"):  # two first runs at once
        tracker = Tracker(where.mlflow_uri, config.name, where.mlflow_artifacts)
        settle_pending(tracker, store, lock_root / PENDING, echo)  # a run that lost it
    parent = tracker.start_run(config.name, tags={"wsfm.pipeline_file": pipeline_file,
                                                  "wsfm.profile": profile or "default"})
    pending.parent = parent
    run = Driver(config, store, tracker, parent, where, echo, board or StageBoard(), pending,
                 log_path)
    try:
        summary = _run_tracked(run, plan, pipeline_file, address)
    except TrackingLost as lost:
        tracker.abandon()
        raise pending.fail(lost, where, echo, log_path) from None
    print_table(summary, echo)
    if not summary.ok and log_path is not None:
        echo(f"[wsfm] full log: {log_path}")
    return summary


def _run_tracked(run: Driver, plan: list[PlanItem], pipeline_file: str,
                 address: str | None) -> RunSummary:
    """Under the parent run: log the config, record the cached stages, run the rest, log the
    headline of a finished evaluation and end the parent run."""
    from wsfm.tracking import TrackingLost

    config, store, tracker, parent = run.config, run.store, run.tracker, run.parent
    tracker.log(parent, params=to_dict(config))
    tracker.log_source(parent, pipeline_file, config)
    outcomes = _record_cached(tracker, parent, store, plan, run.echo)
    if any(item.action == "run" for item in plan):
        try:
            outcomes += run_stages(_on_board(run), plan, address)
        except TrackingLost:
            raise
        except BaseException:
            tracker.finish(parent, False)
            raise
    order = [s.name for s in STAGES]
    outcomes.sort(key=lambda o: order.index(o.stage))
    summary = RunSummary(config.name, parent, outcomes, plan)
    prepared = summary.by_stage().get("prepare_data")
    if prepared is not None and prepared.status in ("ran", "cached"):
        tracker.log_datasets(parent, config.data, store.stage_in("prepare_data",
                                                                 prepared.fingerprint))
    evaluated = summary.by_stage().get("evaluate")
    if evaluated is not None and evaluated.status in ("ran", "cached"):
        tracker.log_headline(parent, store.stage_in("evaluate", evaluated.fingerprint))
    tracker.finish(parent, summary.ok)
    return summary


def _on_board(run: Driver) -> Driver:
    """``run`` whose lines clear the board's live bar first."""
    import dataclasses

    return dataclasses.replace(run, echo=run.board.echo(run.echo))


def _record_cached(tracker: Tracker, parent: str, store: Store, plan: list[PlanItem],
                   echo: Echo) -> list[StageOutcome]:
    """A run per cached stage (tagged with the run that made it), and the blocked and
    skipped stages' outcomes. Unused stages are not part of the job: no run, no outcome."""
    outcomes = []
    for item in plan:
        if item.action == "cached":
            record = store.load(item.stage, item.fingerprint) or {}
            run_id = tracker.start_run(item.stage, parent, tags={
                "wsfm.stage": item.stage, "wsfm.status": "cached",
                "wsfm.fingerprint": item.fingerprint,
                "wsfm.producer_run_id": item.producer_run_id or "",
                "wsfm.artifact_dir": str(store.path(item.stage, item.fingerprint))})
            tracker.log(run_id, metrics=record.get("metrics", {}))
            tracker.finish(run_id, True)
            outcomes.append(StageOutcome(item.stage, "cached", item.fingerprint, 0.0, run_id,
                                         metrics=record.get("metrics", {})))
            echo(f"[wsfm] {item.stage:<16} cached   (made by run {item.producer_run_id})")
        elif item.action in ("blocked", "skip"):
            status = "blocked" if item.action == "blocked" else "skipped"
            outcomes.append(StageOutcome(item.stage, status, item.fingerprint, error=item.reason))
            echo(f"[wsfm] {item.stage:<16} {status:<8} {item.reason}")
    return outcomes
