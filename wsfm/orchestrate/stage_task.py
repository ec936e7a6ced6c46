"""One stage's task: build its output in a temporary folder, then commit it atomically.

:func:`execute_stage` is what the driver runs as a Ray task per stage
(``wsfm.orchestrate.dispatch``). It holds the output's lock while it works
(``wsfm.orchestrate.locks``), so two invocations never make the same output at once; a
failure leaves no half-made output that counts (a resumable stage keeps its partial folder
for the next attempt), and a full disk is reported as such, naming the folder.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wsfm.config import PipelineConfig
from wsfm.orchestrate.leases import lease_uri, object_lease
from wsfm.orchestrate.locks import stage_lock
from wsfm.orchestrate.runtime import RayRuntime
from wsfm.orchestrate.store import ArtifactStore
from wsfm.orchestrate.stores import lock_root, open_store
from wsfm.space import SpaceShort, exception_chain, says_disk_full
from wsfm.stages import StageContext, get_stage
from wsfm.train.faults import stage_fault

if TYPE_CHECKING:
    from typing import TypeAlias

    from wsfm.orchestrate.remote_store import RemoteArtifactStore

    Store: TypeAlias = ArtifactStore | RemoteArtifactStore  # a local folder, or a URI

__all__ = ["execute_stage"]


def execute_stage(name: str, config: PipelineConfig, inputs: dict[str, str], store_root: str,
                  fp: str, runtime: RayRuntime, record: dict[str, Any],
                  reuse: bool = True) -> dict[str, Any]:
    """Run one stage into a temporary folder, then commit it, holding the output's lock (and,
    on an ``s3://`` root, its lease: ``wsfm.orchestrate.leases``, so that invocations on
    other machines wait too). ``inputs``: upstream stage -> fingerprint, staged in as local
    folders on this node. With ``reuse`` (the plan did not force the stage), an output that
    another invocation finished since the plan is returned instead of being made again."""
    store = open_store(store_root, config.name)
    holder = {"mlflow_run_id": record.get("mlflow_run_id", "")}
    with stage_lock(lock_root(store), config.name, name, fp, holder=holder), \
            object_lease(lease_uri(store_root, config.name, name, fp), holder,
                         note=f"{name} is being made by another invocation"):
        made = store.load(name, fp) if reuse else None
        if made is not None:
            return {**made, "tags": {**made.get("tags", {}), "wsfm.status": "reused",
                                     "wsfm.producer_run_id": made.get("mlflow_run_id", "")}}
        local = {dep: store.stage_in(dep, dep_fp) for dep, dep_fp in inputs.items()}
        return _run_stage(name, config, local, store, fp, runtime, record, inputs)


def _run_stage(name: str, config: PipelineConfig, inputs: dict[str, Path], store: Store,
               fp: str, runtime: RayRuntime, record: dict[str, Any],
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
    its chain or text (a map task's error travels as text), or any failure with under 1 MiB
    left there. The last covers writers that do not say so: ``torch.save`` on a full disk
    raises ``RuntimeError: [enforce fail at inline_container.cc] . unexpected pos ...`` (seen
    on ``model_raw.pt``); its own words are kept in the message."""
    import errno
    import shutil
    import traceback

    if any(isinstance(e, SpaceShort) for e in exception_chain(exc)):  # refused: says so
        return None
    try:
        free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    except OSError:
        return None
    said = says_disk_full(exc)
    if not said and free >= 1 << 20:
        return None
    own = "" if said else " (the error: " + " ".join(
        "".join(traceback.format_exception_only(type(exc), exc)).split())[:300] + ")"
    return OSError(errno.ENOSPC, f"No space left on device ({free:,} bytes free) for the "
                   f"output of this stage{own}; nothing of it is marked complete. Free some "
                   "space and run again", str(folder))
