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
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsfm.config import USER_KINDS, PipelineConfig, to_dict
from wsfm.data.datasets import load_dataset
from wsfm.orchestrate.board import StageBoard
from wsfm.orchestrate.dag import PlanItem, make_plan
from wsfm.orchestrate.fingerprint import stage_code_hash, stage_params
from wsfm.orchestrate.locks import file_lock, stage_lock
from wsfm.orchestrate.logfile import stage_tail
from wsfm.orchestrate.runtime import RayRuntime
from wsfm.orchestrate.scheduling import Demand, Ledger, check_fits, stage_demand
from wsfm.orchestrate.staleness import recorded_params
from wsfm.orchestrate.storage import Location, locate, storage_env
from wsfm.orchestrate.store import ArtifactStore
from wsfm.orchestrate.stores import open_store
from wsfm.progress import SNAPSHOT
from wsfm.stages import STAGES, StageContext, get_stage
from wsfm.train.faults import ENV as FAULT_ENV
from wsfm.train.faults import stage_fault

__all__ = ["PENDING", "RunSummary", "StageOutcome", "execute_stage", "run_pipeline",
           "settle_pending"]

PENDING = ".tracking-pending"  # under the lock root: runs an invocation could not log


@dataclass
class StageOutcome:
    stage: str
    status: str  # ran, cached, failed, blocked, skipped
    fingerprint: str
    seconds: float = 0.0
    run_id: str | None = None
    error: str = ""
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class RunSummary:
    pipeline: str
    parent_run_id: str | None
    outcomes: list[StageOutcome]
    plan: list[PlanItem]

    @property
    def ok(self) -> bool:
        return not any(o.status in ("failed", "blocked") for o in self.outcomes)

    def by_stage(self) -> dict[str, StageOutcome]:
        return {o.stage: o for o in self.outcomes}


def execute_stage(name: str, config: PipelineConfig, inputs: dict[str, str], store_root: str,
                  fp: str, runtime: RayRuntime, record: dict[str, Any],
                  reuse: bool = True) -> dict[str, Any]:
    """Run one stage into a temporary folder, then commit it, holding the output's lock.
    ``inputs``: upstream stage -> fingerprint, staged in as local folders on this node. With
    ``reuse`` (the plan did not force the stage), an output that another invocation finished
    since the plan is returned instead of being made again. (On an object-store root the lock
    is this node's: two invocations on different nodes still race, and the store's commit
    protocol is what keeps a half-made output from counting.)"""
    store = open_store(store_root, config.name)
    lock_root = store.root if isinstance(store, ArtifactStore) else store.cache
    with stage_lock(lock_root, config.name, name, fp):
        made = store.load(name, fp) if reuse else None
        if made is not None:
            return {**made, "tags": {**made.get("tags", {}), "wsfm.status": "reused",
                                     "wsfm.producer_run_id": made.get("mlflow_run_id", "")}}
        local = {dep: store.stage_in(dep, dep_fp) for dep, dep_fp in inputs.items()}
        return _run_stage(name, config, local, store, fp, runtime, record, inputs)


def _run_stage(name: str, config: PipelineConfig, inputs: dict[str, Path], store, fp: str,
               runtime: RayRuntime, record: dict[str, Any],
               input_fps: dict[str, str] | None = None) -> dict[str, Any]:
    spec = get_stage(name)
    tmp = store.begin(name, fp, resume=spec.resumable)
    # What the stage's fan-out tasks use to reach its folders from any node (wsfm.taskfiles);
    # the Ray runtime collects what they delivered after each map and each training run.
    files = store.task_files(name, fp, tmp, {dep: ((input_fps or {}).get(dep, ""), folder)
                                             for dep, folder in inputs.items()})
    if isinstance(runtime, RayRuntime):
        runtime = dataclasses.replace(runtime, files=files)
    start = time.perf_counter()
    try:
        result = spec.fn(StageContext(config, inputs, tmp, runtime, files))
        stage_fault(name)  # a fault drill (WSFM_FAULT): fail after the work, before the commit
        record = {**record, "metrics": result.metrics, "params": result.params,
                  "tags": dict(result.tags), "seconds": time.perf_counter() - start}
        return store.commit(tmp, name, fp, record)
    except BaseException as exc:
        full = _disk_full(exc, tmp)
        if not spec.resumable:
            store.discard(tmp)
        else:
            store.keep(tmp, name, fp)  # a remote root: for a rerun on any node
        if full is not None:
            raise full from exc
        raise


def _disk_full(exc: BaseException, folder: Path) -> OSError | None:
    """An ``OSError(ENOSPC)`` naming ``folder`` when ``exc`` came from a full disk: ENOSPC in
    its chain or text (a map task's error travels as text), or a failed write with under
    1 MiB left there (``torch.save`` reports only "file write failed")."""
    import errno
    import shutil

    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(chain) < 16:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    text = " ".join(str(e) for e in chain)
    try:
        free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    except OSError:
        return None
    if not (any(getattr(e, "errno", None) == errno.ENOSPC for e in chain)
            or "No space left on device" in text or (free < 1 << 20 and "write" in text)):
        return None
    return OSError(errno.ENOSPC, f"No space left on device ({free:,} bytes free) for the "
                   "output of this stage; nothing of it is marked complete. Free some space "
                   "and run again", str(folder))


def run_pipeline(config: PipelineConfig, *, home: str | Path, pipeline_file: str = "",
                 profile: str | None = None, force: bool = False, from_stage: str | None = None,
                 only: str | None = None, dry_run: bool = False, address: str | None = None,
                 echo=print, board: StageBoard | None = None,
                 log_path: Path | None = None) -> RunSummary:
    """Plan, then run what is not cached. ``board`` shows the running stages' progress
    (default: a live bar when stdout is a terminal, periodic lines otherwise). ``log_path``:
    the invocation's log file (``wsfm.orchestrate.logfile``), whose lines a failed stage
    quotes."""
    if config.data.kind in USER_KINDS:
        load_dataset(config.data)  # users' data is validated before anything runs or is made
    where = locate(home)
    if not dry_run:  # a tracking server that is down or refuses us: one error, before any work
        from wsfm.tracking import check_tracking_server

        check_tracking_server(where.mlflow_uri)
    store = open_store(where.artifacts, config.name)
    plan = make_plan(STAGES, config, store, force=force, from_stage=from_stage, only=only)
    if dry_run:
        for item in plan:
            echo(f"[plan] {item.stage:<16} {item.action:<8} {item.fingerprint}  {item.reason}")
        return RunSummary(config.name, None, [], plan)
    if log_path is not None:  # checks passed: from here on the log has something to say
        echo(f"[wsfm] log: {log_path}")

    from wsfm.tracking import Tracker, TrackingLost

    lock_root = Path(where.artifacts) if not where.remote else where.logs
    pending = _Pending(lock_root / PENDING, config.name)
    with file_lock(lock_root / ".locks" / "tracking.lock"):  # two first runs at once
        tracker = Tracker(where.mlflow_uri, config.name, where.mlflow_artifacts)
        settle_pending(tracker, store, lock_root / PENDING, echo)  # a run that lost it
    parent = tracker.start_run(config.name, tags={"wsfm.pipeline_file": pipeline_file,
                                                  "wsfm.profile": profile or "default"})
    pending.parent = parent
    try:
        tracker.log(parent, params=to_dict(config))
        tracker.log_source(parent, pipeline_file, config)
        outcomes = _record_cached(tracker, parent, store, plan, echo)
        todo = [item for item in plan if item.action == "run"]
        if todo:
            board = board or StageBoard()
            try:
                outcomes += _execute(config, store, tracker, parent, plan, where, address,
                                     board.echo(echo), board, log_path, pending)
            except TrackingLost:
                raise
            except BaseException:
                tracker.finish(parent, False)
                raise
        order = [s.name for s in STAGES]
        outcomes.sort(key=lambda o: order.index(o.stage))
        summary = RunSummary(config.name, parent, outcomes, plan)
        evaluated = summary.by_stage().get("evaluate")
        if evaluated is not None and evaluated.status in ("ran", "cached"):
            tracker.log_headline(parent, store.stage_in("evaluate", evaluated.fingerprint))
        tracker.finish(parent, summary.ok)
    except TrackingLost as lost:
        tracker.abandon()
        raise pending.fail(lost, where, echo, log_path) from None
    _print_table(summary, echo)
    if not summary.ok and log_path is not None:
        echo(f"[wsfm] full log: {log_path}")
    return summary


@dataclass
class _Pending:
    """The runs of this invocation that are not logged yet (written down only when the
    tracking server is lost): the parent, and ``(stage, run id, fingerprint)`` per stage."""

    folder: Path
    pipeline: str
    parent: str = ""
    runs: list[dict[str, str]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # stages finished and committed, unlogged

    def add(self, stage: str, run_id: str, fingerprint: str, committed: bool) -> None:
        self.runs.append({"stage": stage, "run_id": run_id, "fingerprint": fingerprint})
        if committed:
            self.kept.append(stage)

    def fail(self, lost, where: Location, echo, log_path: Path | None):
        """Write the record down and return the one-line error (a ``TrackingLost``)."""
        from wsfm.tracking import TrackingLost

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.parent or 'no-parent'}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"pipeline": self.pipeline, "parent": self.parent,
                                   "uri": lost.uri, "runs": self.runs}, indent=2))
        os.replace(tmp, path)
        if log_path is not None:
            echo(f"[wsfm] full log: {log_path}")
        kept = (f"{', '.join(self.kept)} finished and {'is' if len(self.kept) == 1 else 'are'}"
                " kept" if self.kept else "every finished stage is kept")
        return TrackingLost(lost.uri, f"{lost.what}. Nothing done was lost: {kept} under "
                            f"{where.artifacts}, and no further stage was started. Start the "
                            "server again and run the same command: finished stages are "
                            "reused, and the runs not logged now are logged then")


def settle_pending(tracker, store, folder: Path, echo) -> list[str]:
    """Log the runs that an earlier invocation could not (``<folder>/<parent>.json``, written
    when it lost the tracking server): a stage whose output was committed by that run gets
    its record, files and step history logged into that same run, which then ends FINISHED
    (tagged ``wsfm.logged_late``); a stage that did not commit, and the earlier parent run,
    end FAILED. Returns the stages logged. A run the store does not know (the tracking URI
    changed) is passed over with a line saying so."""
    from mlflow.exceptions import MlflowException

    logged: list[str] = []
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        pending = json.loads(path.read_text())
        if pending.get("pipeline") != store.pipeline:
            continue
        for entry in pending["runs"]:
            stage, run_id, fp = entry["stage"], entry["run_id"], entry["fingerprint"]
            record = store.load(stage, fp)
            try:
                if record is not None and record.get("mlflow_run_id") == run_id:
                    tracker.log_stage(run_id, record, store.stage_in(stage, fp))
                    tracker.log(run_id, tags={"wsfm.logged_late": "true"})
                    tracker.finish(run_id, True)
                    logged.append(stage)
                    echo(f"[wsfm] {stage:<16} logged   (run {run_id}, made when the tracking "
                         "server was lost)")
                else:
                    tracker.log(run_id, tags={"wsfm.error": "the tracking server was lost "
                                              "before this stage committed its output"})
                    tracker.finish(run_id, False)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                echo(f"[wsfm] {stage:<16} run {run_id} is not in {tracker.uri}: not logged")
        if pending.get("parent"):
            try:
                tracker.log(pending["parent"], tags={"wsfm.error": "the tracking server was "
                                                     "lost during this invocation"})
                tracker.finish(pending["parent"], False)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
        path.unlink()
    return logged


def _record_cached(tracker, parent: str, store: ArtifactStore, plan: list[PlanItem],
                   echo) -> list[StageOutcome]:
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


def _init_ray(config: PipelineConfig, address: str | None) -> bool:
    """Join ``address`` / ``RAY_ADDRESS``, or start a local runtime. True if we started it.
    Workers' output is forwarded to the driver (``log_to_driver``), whose stdout and stderr
    the CLI sends into the invocation's log file."""
    import ray

    if ray.is_initialized():
        return False
    env = {**({} if config.train.use_gpu else {"DS_ACCELERATOR": "cpu"}),
           **storage_env(),  # a joined cluster's workers open an object-store home too
           **{k: os.environ[k] for k in (FAULT_ENV,) if k in os.environ}}  # a fault drill
    ray.init(address=address or os.environ.get("RAY_ADDRESS"), runtime_env={"env_vars": env},
             include_dashboard=False, log_to_driver=True)
    return True


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
    lost: Any = None  # the TrackingLost that stopped the run (no stage starts after it)


def _execute(config, store, tracker, parent, plan, where: Location, address, echo,
             board: StageBoard, log_path: Path | None = None,
             pending: _Pending | None = None) -> list[StageOutcome]:
    import ray

    todo = [i.stage for i in plan if i.action == "run"]
    demands = {name: stage_demand(get_stage(name), config) for name in todo}
    started = _init_ray(config, address)
    try:
        from wsfm.orchestrate.cluster import check_artifact_root

        check_artifact_root(where.artifacts)  # every node must see it: refuse before running
        total = Demand.from_ray(ray.cluster_resources())
        check_fits(demands, total)  # refused before anything runs
        loop = _Loop(items={item.stage: item for item in plan},
                     done={i.stage for i in plan if i.action == "cached"},
                     bad={i.stage for i in plan if i.action in ("blocked", "skip")},
                     waiting=todo, ledger=Ledger(total), demands=demands)
        pending = pending or _Pending(Path(where.logs) / PENDING, config.name, parent)
        # Once the tracking server is lost nothing new starts; the running stages finish.
        while (loop.waiting and loop.lost is None) or loop.running:
            _start_ready(loop, config, store, tracker, parent, where, echo, board, pending)
            if not loop.running:
                if loop.lost is None:
                    time.sleep(board.interval)  # waiting for Ray to show the room it has
                continue
            ready, _ = ray.wait(list(loop.running), num_returns=1, timeout=board.interval)
            if not ready:
                board.refresh()
                continue
            _collect(loop, ready[0], store, tracker, echo, board, log_path, pending)
    finally:
        board.clear()
        if started:
            ray.shutdown()
    if loop.lost is not None:
        raise loop.lost
    return loop.outcomes


def _lost(loop: _Loop, exc, echo) -> None:
    """Record the first tracking loss; say once that nothing new will start."""
    if loop.lost is None:
        loop.lost = exc
        running = ", ".join(name for name, _, _ in loop.running.values())
        echo(f"[wsfm] {exc}; no further stage starts"
             + (f", waiting for {running} to finish" if running else ""))


def _start_ready(loop: _Loop, config, store, tracker, parent, where: Location, echo,
                 board: StageBoard, pending: _Pending) -> None:
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
            echo(f"[wsfm] {name:<16} blocked  (an upstream stage failed)")
            continue
        if not all(d in loop.done for d in deps):
            continue
        demand = loop.demands[name]
        if not loop.ledger.can_start(demand, Demand.from_ray(ray.available_resources())):
            if name not in loop.told_waiting:
                loop.told_waiting.add(name)
                echo(f"[wsfm] {name:<16} waiting  (needs {demand.describe()}; running: "
                     f"{', '.join(loop.ledger.holding())})")
            continue
        try:
            ref, run_id = _submit(config, store, tracker, parent, loop.items, name, where,
                                  pending)
        except TrackingLost as exc:
            _lost(loop, exc, echo)
            return
        loop.waiting.remove(name)
        loop.ledger.start(name, demand)
        loop.running[ref] = (name, run_id, time.perf_counter())
        why = item.reason
        echo(f"[wsfm] {name:<16} started"
             + (f"  ({why})" if why not in ("", "no finished output") else ""))
        board.watch(name, store.partial(name, item.fingerprint))


def _collect(loop: _Loop, ref, store, tracker, echo, board: StageBoard,
             log_path: Path | None, pending: _Pending) -> None:
    """Record the stage that ``ref`` ran: done (log it to MLflow) or failed (its error, one
    line, and its last lines in the log). Without a tracking server (``loop.lost``) the
    outcome is kept for the next invocation to log (``pending``)."""
    import ray

    from wsfm.tracking import TrackingLost

    name, run_id, start = loop.running.pop(ref)
    loop.ledger.finish(name)
    board.unwatch(name)
    item = loop.items[name]
    seconds = time.perf_counter() - start
    try:
        record = ray.get(ref)
    except Exception as exc:  # the stage failed: record it, block what depends on it
        error = _short_error(exc)
        if loop.lost is None:
            try:
                tracker.log(run_id, tags={"wsfm.error": error[:5000]})
                tracker.finish(run_id, False)
            except TrackingLost as lost:
                _lost(loop, lost, echo)
        if loop.lost is not None:
            pending.add(name, run_id, item.fingerprint, committed=False)
        loop.bad.add(name)
        loop.outcomes.append(StageOutcome(name, "failed", item.fingerprint, seconds, run_id,
                                          error=error.splitlines()[-1]))
        echo(f"[wsfm] {name:<16} FAILED   {seconds:7.1f}s  {error.splitlines()[-1]}")
        if log_path is not None:
            for line in stage_tail(log_path, name, 10):
                echo(f"    | {line}")
            echo(f"    (the full traceback: {log_path})")
            trace = "".join(traceback.format_exception(exc))  # the remote trace is in it
            print(f"{name} failed:\n{trace}", file=sys.stderr, flush=True)  # into the log
        return
    logged = loop.lost is None
    if logged:
        try:
            tracker.log_stage(run_id, record, store.stage_in(name, item.fingerprint))
            tracker.finish(run_id, True)
        except TrackingLost as lost:
            _lost(loop, lost, echo)
            logged = False
    if not logged:
        pending.add(name, run_id, item.fingerprint, committed=True)
    loop.done.add(name)
    loop.outcomes.append(StageOutcome(name, "ran", item.fingerprint, seconds, run_id,
                                      metrics=record["metrics"]))
    echo(f"[wsfm] {name:<16} done     {seconds:7.1f}s"
         + ("" if logged else "  (kept; not logged: the tracking server is lost)"))


def _submit(config, store, tracker, parent, items, name, where: Location,
            pending: _Pending | None = None):
    import ray

    item = items[name]
    spec = get_stage(name)
    res = config.resources_for(name)
    run_id = tracker.start_run(name, parent, tags={
        "wsfm.stage": name, "wsfm.status": "ran", "wsfm.fingerprint": item.fingerprint,
        "wsfm.artifact_dir": str(store.path(name, item.fingerprint))})
    try:
        _prepare_run(tracker, store, run_id, name, spec, config, item, items)
    except BaseException:
        if pending is not None:  # the run exists but its stage never started
            pending.add(name, run_id, item.fingerprint, committed=False)
        raise
    runtime = RayRuntime(storage_path=where.ray_storage,
                         run_name=f"{config.name}-{name}-{item.fingerprint}",
                         tracking={"uri": tracker.uri, "run_id": run_id},
                         max_retries=res.max_retries,
                         progress_path=str(store.partial(name, item.fingerprint) / SNAPSHOT))
    inputs = {d: items[d].fingerprint for d in spec.deps}
    record = {"mlflow_run_id": run_id, "code": stage_code_hash(spec),
              "inputs": {d: items[d].fingerprint for d in spec.deps},
              "config": recorded_params(spec, config)}  # what `wsfm status` compares
    task = ray.remote(execute_stage).options(num_cpus=res.num_cpus, num_gpus=res.num_gpus,
                                              max_retries=res.max_retries, name=f"stage:{name}")
    ref = task.remote(name, config, inputs, str(store.root), item.fingerprint, runtime, record,
                      item.reason != "forced")
    return ref, run_id


def _prepare_run(tracker, store, run_id: str, name: str, spec, config, item, items) -> None:
    """A stage's run before its task starts: its params, system metrics, drafts input."""
    tracker.log(run_id, params=stage_params(spec, config))
    inputs = {d: items[d].fingerprint for d in spec.deps}
    if isinstance(store, ArtifactStore):  # local folders: the manifest is read in place
        tracker.stage_started(run_id, name, {d: str(store.path(d, fp))
                                             for d, fp in inputs.items()})


def _short_error(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the stage's exception
    return "".join(traceback.format_exception_only(type(cause), cause)).strip()


def _print_table(summary: RunSummary, echo) -> None:
    echo("")
    echo(f"{'stage':<16} {'status':<8} {'seconds':>8}  {'fingerprint':<16}  notes")
    for o in summary.outcomes:
        note = o.error or ", ".join(f"{k}={v:.4g}" for k, v in list(o.metrics.items())[:3])
        echo(f"{o.stage:<16} {o.status:<8} {o.seconds:8.1f}  {o.fingerprint:<16}  {note}")
    echo(f"pipeline {summary.pipeline}: {'ok' if summary.ok else 'FAILED'}"
         f" (MLflow parent run {summary.parent_run_id})")
