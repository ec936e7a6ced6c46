"""The driver's scheduler loop: start each stage once its upstream is done and the cluster
has room for it, collect it when its task ends.

Independent branches run at the same time when resources allow; a stage that must wait for
room says so once (``wsfm.orchestrate.scheduling`` keeps the ledger of what the running
stages hold). A failed stage blocks what depends on it, and the other branches go on. Each
stage runs as a Ray task (:func:`wsfm.orchestrate.stage_task.execute_stage`) under its own
MLflow run, a child of the invocation's. Once the tracking server is lost no stage starts;
the running ones finish, and their runs are kept for the next invocation to log
(``wsfm.orchestrate.recovery``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsfm.config import PipelineConfig
from wsfm.orchestrate.board import StageBoard
from wsfm.orchestrate.console import Echo, report_failure, short_error
from wsfm.orchestrate.dag import PlanItem
from wsfm.orchestrate.fingerprint import stage_code_hash, stage_params
from wsfm.orchestrate.outcome import StageOutcome
from wsfm.orchestrate.ray_start import init_ray
from wsfm.orchestrate.recovery import PendingRuns
from wsfm.orchestrate.runtime import RayRuntime
from wsfm.orchestrate.scheduling import Demand, Ledger, check_fits, stage_cpus, stage_demand
from wsfm.orchestrate.stage_task import execute_stage
from wsfm.orchestrate.staleness import recorded_params
from wsfm.orchestrate.storage import Location
from wsfm.orchestrate.store import ArtifactStore
from wsfm.progress import SNAPSHOT
from wsfm.stages import StageSpec, get_stage

if TYPE_CHECKING:
    from ray import ObjectRef

    from wsfm.orchestrate.stage_task import Store
    from wsfm.tracking import Tracker, TrackingLost

__all__ = ["Driver", "run_stages"]


@dataclass
class Driver:
    """What the loop works with: the invocation's config, store, tracker and parent run,
    where things live, how it speaks (``echo``, ``board``; ``log_path``: the invocation's
    log, which a failed stage quotes) and the runs it could not log (``pending``)."""

    config: PipelineConfig
    store: Store
    tracker: Tracker
    parent: str
    where: Location
    echo: Echo
    board: StageBoard
    pending: PendingRuns
    log_path: Path | None = None


@dataclass
class _Loop:
    """The driver's bookkeeping while stages run."""

    items: dict[str, PlanItem]
    done: set[str]
    bad: set[str]
    waiting: list[str]
    ledger: Ledger
    demands: dict[str, Demand]
    running: dict[Any, tuple[str, str, float]] = field(default_factory=dict)
    outcomes: list[StageOutcome] = field(default_factory=list)
    told_waiting: set[str] = field(default_factory=set)
    lost: TrackingLost | None = None  # what stopped the run (no stage starts after it)


def run_stages(run: Driver, plan: list[PlanItem], address: str | None) -> list[StageOutcome]:
    """Run the plan's ``run`` stages on Ray (joined at ``address``, or started here) and
    return their outcomes; raises the ``TrackingLost`` that stopped the run, if one did."""
    import ray

    todo = [i.stage for i in plan if i.action == "run"]
    demands = {name: stage_demand(get_stage(name), run.config) for name in todo}
    started = init_ray(run.config, address)
    try:
        from wsfm.orchestrate.cluster import check_artifact_root

        check_artifact_root(run.where.artifacts)  # every node must see it: refuse before
        total = Demand.from_ray(ray.cluster_resources())
        check_fits(demands, total)  # refused before anything runs
        loop = _Loop(items={item.stage: item for item in plan},
                     done={i.stage for i in plan if i.action in ("cached", "unused")},
                     bad={i.stage for i in plan if i.action in ("blocked", "skip")},
                     waiting=todo, ledger=Ledger(total), demands=demands)
        # Once the tracking server is lost nothing new starts; the running stages finish.
        while (loop.waiting and loop.lost is None) or loop.running:
            _start_ready(loop, run)
            if not loop.running:
                if loop.lost is None:
                    time.sleep(run.board.interval)  # waiting for Ray to show the room it has
                continue
            ready, _ = ray.wait(list(loop.running), num_returns=1,
                                timeout=run.board.interval)
            if not ready:
                run.board.refresh()
                continue
            _collect(loop, ready[0], run)
    finally:
        run.board.clear()
        if started:
            ray.shutdown()
    if loop.lost is not None:
        raise loop.lost
    return loop.outcomes


def _lost(loop: _Loop, exc: TrackingLost, echo: Echo) -> None:
    """Record the first tracking loss; say once that nothing new will start."""
    if loop.lost is None:
        loop.lost = exc
        running = ", ".join(name for name, _, _ in loop.running.values())
        echo(f"[wsfm] {exc}; no further stage starts"
             + (f", waiting for {running} to finish" if running else ""))


def _start_ready(loop: _Loop, run: Driver) -> None:
    """Start every waiting stage whose upstream is done and that fits beside the running
    ones; block those whose upstream failed."""
    import ray

    from wsfm.tracking import TrackingLost

    for name in list(loop.waiting):
        if loop.lost is not None:
            return
        item, deps = loop.items[name], get_stage(name).deps
        if any(d in loop.bad for d in deps):
            loop.waiting.remove(name)
            loop.bad.add(name)
            loop.outcomes.append(StageOutcome(name, "blocked", item.fingerprint,
                                              error="an upstream stage failed"))
            run.echo(f"[wsfm] {name:<16} blocked  (an upstream stage failed)")
            continue
        if not all(d in loop.done for d in deps):
            continue
        demand = loop.demands[name]
        if not loop.ledger.can_start(demand, Demand.from_ray(ray.available_resources())):
            if name not in loop.told_waiting:
                loop.told_waiting.add(name)
                run.echo(f"[wsfm] {name:<16} waiting  (needs {demand.describe()}; running: "
                         f"{', '.join(loop.ledger.holding())})")
            continue
        try:
            ref, run_id = _submit(run, loop.items, name)
        except TrackingLost as exc:
            _lost(loop, exc, run.echo)
            return
        loop.waiting.remove(name)
        loop.ledger.start(name, demand)
        loop.running[ref] = (name, run_id, time.perf_counter())
        why = item.reason
        run.echo(f"[wsfm] {name:<16} started"
                 + (f"  ({why})" if why not in ("", "no finished output") else ""))
        run.board.watch(name, run.store.partial(name, item.fingerprint))


def _collect(loop: _Loop, ref: ObjectRef[dict[str, Any]], run: Driver) -> None:
    """Record the stage that ``ref`` ran: done (log it to MLflow) or failed (its error, one
    line, and its last lines in the log). Without a tracking server (``loop.lost``) the
    outcome is kept for the next invocation to log (``run.pending``)."""
    import ray

    from wsfm.tracking import TrackingLost

    name, run_id, start = loop.running.pop(ref)
    loop.ledger.finish(name)
    run.board.unwatch(name)
    item = loop.items[name]
    seconds = time.perf_counter() - start
    try:
        record = ray.get(ref)
    except Exception as exc:  # the stage failed: record it, block what depends on it
        _failed(loop, run, name, run_id, seconds, exc)
        return
    logged = loop.lost is None
    if logged:
        try:
            run.tracker.log_stage(run_id, record, run.store.stage_in(name, item.fingerprint))
            run.tracker.finish(run_id, True)
        except TrackingLost as lost:
            _lost(loop, lost, run.echo)
            logged = False
    if not logged:
        run.pending.add(name, run_id, item.fingerprint, committed=True)
    loop.done.add(name)
    loop.outcomes.append(StageOutcome(name, "ran", item.fingerprint, seconds, run_id,
                                      metrics=record["metrics"]))
    run.echo(f"[wsfm] {name:<16} done     {seconds:7.1f}s"
             + ("" if logged else "  (kept; not logged: the tracking store is lost)"))


def _failed(loop: _Loop, run: Driver, name: str, run_id: str, seconds: float,
            exc: Exception) -> None:
    """A stage's task raised: end its run FAILED (or keep it, the server lost), block what
    depends on it, and tell the operator."""
    from wsfm.tracking import TrackingLost

    item = loop.items[name]
    error = short_error(exc)
    if loop.lost is None:
        try:
            run.tracker.log(run_id, tags={"wsfm.error": error[:5000]})
            run.tracker.finish(run_id, False)
        except TrackingLost as lost:
            _lost(loop, lost, run.echo)
    if loop.lost is not None:
        run.pending.add(name, run_id, item.fingerprint, committed=False)
    loop.bad.add(name)
    loop.outcomes.append(StageOutcome(name, "failed", item.fingerprint, seconds, run_id,
                                      error=error))
    report_failure(name, seconds, exc, run.log_path, run.echo)


def _submit(run: Driver, items: dict[str, PlanItem],
            name: str) -> tuple[ObjectRef[dict[str, Any]], str]:
    """Start ``name``'s MLflow run and its Ray task; returns the task's ref and the run id."""
    import ray

    config, store, tracker, item = run.config, run.store, run.tracker, items[name]
    spec = get_stage(name)
    res = config.resources_for(name)
    run_id = tracker.start_run(name, run.parent, tags={
        "wsfm.stage": name, "wsfm.status": "ran", "wsfm.fingerprint": item.fingerprint,
        "wsfm.artifact_dir": str(store.path(name, item.fingerprint))})
    try:
        _prepare_run(run, run_id, spec, item, items)
    except BaseException:  # the run exists but its stage never started
        run.pending.add(name, run_id, item.fingerprint, committed=False)
        raise
    runtime = RayRuntime(storage_path=run.where.ray_storage,
                         run_name=f"{config.name}-{name}-{item.fingerprint}",
                         tracking={"uri": tracker.uri, "run_id": run_id},
                         max_retries=res.max_retries,
                         progress_path=str(store.partial(name, item.fingerprint) / SNAPSHOT))
    inputs = used_inputs(spec, items)
    record = {"mlflow_run_id": run_id, "code": stage_code_hash(spec), "inputs": inputs,
              "config": recorded_params(spec, config)}  # what `wsfm status` compares
    task = ray.remote(execute_stage).options(num_cpus=stage_cpus(spec, config),
                                              num_gpus=res.num_gpus,
                                              max_retries=res.max_retries, name=f"stage:{name}")
    ref = task.remote(name, config, inputs, str(store.root), item.fingerprint, runtime, record,
                      item.reason != "forced")
    return ref, run_id


def _prepare_run(run: Driver, run_id: str, spec: StageSpec, item: PlanItem,
                 items: dict[str, PlanItem]) -> None:
    """A stage's run before its task starts: its params, system metrics, drafts input."""
    run.tracker.log(run_id, params=stage_params(spec, run.config))
    inputs = used_inputs(spec, items)
    if isinstance(run.store, ArtifactStore):  # local folders: the manifest is read in place
        run.tracker.stage_started(run_id, spec.name, {d: str(run.store.path(d, fp))
                                                      for d, fp in inputs.items()})


def used_inputs(spec: StageSpec, items: dict[str, PlanItem]) -> dict[str, str]:
    """``{upstream stage: fingerprint}`` of ``spec``'s inputs, the unused ones left out."""
    return {d: items[d].fingerprint for d in spec.deps if items[d].action != "unused"}
