"""Run a pipeline: plan, then execute each stage as a Ray task, tracked in MLflow.

The driver schedules a stage once its upstream stages are done, so independent branches
(``train_baseline`` beside the draft branch) run at the same time when resources allow. A
stage task builds its output in a temporary folder and commits it atomically; a failure leaves
every finished stage intact, and the next invocation resumes from them (fingerprint cache).
Ray starts only when something has to run.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wsfm.config import USER_KINDS, PipelineConfig, to_dict
from wsfm.data.datasets import load_dataset
from wsfm.orchestrate.board import StageBoard
from wsfm.orchestrate.dag import PlanItem, make_plan
from wsfm.orchestrate.locks import file_lock, stage_lock
from wsfm.orchestrate.runtime import RayRuntime
from wsfm.orchestrate.store import ArtifactStore
from wsfm.progress import SNAPSHOT
from wsfm.stages import STAGES, StageContext, get_stage
from wsfm.train.faults import ENV as FAULT_ENV
from wsfm.train.faults import stage_fault

__all__ = ["RunSummary", "StageOutcome", "execute_stage", "run_pipeline"]


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
    With ``reuse`` (the plan did not force the stage), an output that another invocation
    finished since the plan is returned instead of being made again."""
    store = ArtifactStore(store_root, config.name)
    with stage_lock(store.root, config.name, name, fp):
        made = store.load(name, fp) if reuse else None
        if made is not None:
            return {**made, "tags": {**made.get("tags", {}), "wsfm.status": "reused",
                                     "wsfm.producer_run_id": made.get("mlflow_run_id", "")}}
        return _run_stage(name, config, inputs, store, fp, runtime, record)


def _run_stage(name: str, config: PipelineConfig, inputs: dict[str, str], store: ArtifactStore,
               fp: str, runtime: RayRuntime, record: dict[str, Any]) -> dict[str, Any]:
    spec = get_stage(name)
    tmp = store.begin(name, fp, resume=spec.resumable)
    start = time.perf_counter()
    try:
        result = spec.fn(StageContext(config, {k: Path(v) for k, v in inputs.items()}, tmp,
                                      runtime))
        stage_fault(name)  # a fault drill (WSFM_FAULT): fail after the work, before the commit
        record = {**record, "metrics": result.metrics, "params": result.params,
                  "tags": dict(result.tags),
                  "seconds": time.perf_counter() - start}
        return store.commit(tmp, name, fp, record)
    except BaseException as exc:
        full = _disk_full(exc, tmp)
        if not spec.resumable:
            store.discard(tmp)
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
    while exc is not None and len(chain) < 16:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
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


def run_pipeline(config: PipelineConfig, *, home: Path, pipeline_file: str = "",
                 profile: str | None = None, force: bool = False, from_stage: str | None = None,
                 only: str | None = None, dry_run: bool = False, address: str | None = None,
                 echo=print, board: StageBoard | None = None) -> RunSummary:
    """Plan, then run what is not cached. ``board`` draws the running stages' live progress
    (default: a bar when stdout is a terminal, nothing otherwise)."""
    if config.data.kind in USER_KINDS:
        load_dataset(config.data)  # users' data is validated before anything runs or is made
    home = Path(home).resolve()
    store = ArtifactStore(home / "artifacts", config.name)
    plan = make_plan(STAGES, config, store, force=force, from_stage=from_stage, only=only)
    if dry_run:
        for item in plan:
            echo(f"[plan] {item.stage:<16} {item.action:<8} {item.fingerprint}  {item.reason}")
        return RunSummary(config.name, None, [], plan)

    from wsfm.tracking import Tracker, tracking_uri

    with file_lock(home / "artifacts" / ".locks" / "tracking.lock"):  # two first runs at once
        tracker = Tracker(tracking_uri(home), config.name, home / "mlartifacts")
    parent = tracker.start_run(config.name, tags={"wsfm.pipeline_file": pipeline_file,
                                                  "wsfm.profile": profile or "default"})
    tracker.log(parent, params=to_dict(config))
    outcomes = _record_cached(tracker, parent, store, plan, echo)
    todo = [item for item in plan if item.action == "run"]
    if todo:
        board = board or StageBoard()
        outcomes += _execute(config, store, tracker, parent, plan, home, address,
                             board.echo(echo), board)
    order = [s.name for s in STAGES]
    outcomes.sort(key=lambda o: order.index(o.stage))
    summary = RunSummary(config.name, parent, outcomes, plan)
    tracker.finish(parent, summary.ok)
    _print_table(summary, echo)
    return summary


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


def _init_ray(config: PipelineConfig, address: str | None, board: StageBoard) -> bool:
    """Join ``address`` / ``RAY_ADDRESS``, or start a local runtime. True if we started it.
    (Ray that is already up keeps its own environment: its workers print progress lines.)"""
    import ray

    if ray.is_initialized():
        return False
    env = {**({} if config.train.use_gpu else {"DS_ACCELERATOR": "cpu"}), **board.env,
           **{k: os.environ[k] for k in (FAULT_ENV,) if k in os.environ}}  # a fault drill
    ray.init(address=address or os.environ.get("RAY_ADDRESS"), runtime_env={"env_vars": env},
             include_dashboard=False, log_to_driver=True)
    return True


def _execute(config, store, tracker, parent, plan, home, address, echo,
             board: StageBoard) -> list[StageOutcome]:
    import ray

    started = _init_ray(config, address, board)
    if not started:
        board.live = False  # workers were not told to leave the progress to the driver
    items = {item.stage: item for item in plan}
    done = {i.stage for i in plan if i.action == "cached"}
    bad = {i.stage for i in plan if i.action in ("blocked", "skip")}
    waiting = [i.stage for i in plan if i.action == "run"]
    running: dict[Any, tuple[str, str, float]] = {}
    outcomes: list[StageOutcome] = []
    try:
        while waiting or running:
            for name in list(waiting):
                deps = get_stage(name).deps
                if any(d in bad for d in deps):
                    waiting.remove(name)
                    bad.add(name)
                    outcomes.append(StageOutcome(name, "blocked", items[name].fingerprint,
                                                 error="an upstream stage failed"))
                    echo(f"[wsfm] {name:<16} blocked  (an upstream stage failed)")
                elif all(d in done for d in deps):
                    waiting.remove(name)
                    ref, run_id = _submit(config, store, tracker, parent, items, name, home)
                    running[ref] = (name, run_id, time.perf_counter())
                    why = items[name].reason
                    echo(f"[wsfm] {name:<16} started"
                         + (f"  ({why})" if why not in ("", "no finished output") else ""))
                    board.watch(name, store.partial(name, items[name].fingerprint))
            if not running:
                continue
            ready, _ = ray.wait(list(running), num_returns=1,
                                timeout=board.interval if board.live else None)
            if not ready:
                board.refresh()
                continue
            ref = ready[0]
            name, run_id, start = running.pop(ref)
            board.unwatch(name)
            seconds = time.perf_counter() - start
            try:
                record = ray.get(ref)
            except Exception as exc:  # the stage failed: record it, block what depends on it
                error = _short_error(exc)
                tracker.log(run_id, tags={"wsfm.error": error[:5000]})
                tracker.finish(run_id, False)
                bad.add(name)
                outcomes.append(StageOutcome(name, "failed", items[name].fingerprint, seconds,
                                             run_id, error=error))
                echo(f"[wsfm] {name:<16} FAILED   {seconds:7.1f}s  {error.splitlines()[-1]}")
                continue
            tracker.log(run_id, params=record.get("params"), metrics=record["metrics"],
                        tags=record.get("tags"))
            tracker.log_files(run_id, store.path(name, items[name].fingerprint))
            tracker.finish(run_id, True)
            done.add(name)
            outcomes.append(StageOutcome(name, "ran", items[name].fingerprint, seconds, run_id,
                                         metrics=record["metrics"]))
            echo(f"[wsfm] {name:<16} done     {seconds:7.1f}s")
    finally:
        board.clear()
        if started:
            ray.shutdown()
    return outcomes


def _submit(config, store, tracker, parent, items, name, home):
    import ray

    item = items[name]
    spec = get_stage(name)
    res = config.resources_for(name)
    run_id = tracker.start_run(name, parent, tags={
        "wsfm.stage": name, "wsfm.status": "ran", "wsfm.fingerprint": item.fingerprint,
        "wsfm.artifact_dir": str(store.path(name, item.fingerprint))})
    tracker.log(run_id, params={s: to_dict(getattr(config, s)) for s in spec.sections})
    runtime = RayRuntime(storage_path=str(home / "ray"),
                         run_name=f"{config.name}-{name}-{item.fingerprint}",
                         tracking={"uri": tracker.uri, "run_id": run_id},
                         max_retries=res.max_retries,
                         progress_path=str(store.partial(name, item.fingerprint) / SNAPSHOT))
    inputs = {d: str(store.path(d, items[d].fingerprint)) for d in spec.deps}
    record = {"mlflow_run_id": run_id, "version": spec.version,
              "inputs": {d: items[d].fingerprint for d in spec.deps}}
    task = ray.remote(execute_stage).options(num_cpus=res.num_cpus, num_gpus=res.num_gpus,
                                              max_retries=res.max_retries, name=f"stage:{name}")
    ref = task.remote(name, config, inputs, str(store.root), item.fingerprint, runtime, record,
                      item.reason != "forced")
    return ref, run_id


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
