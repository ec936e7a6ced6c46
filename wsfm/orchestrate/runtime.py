"""The Ray runtime that stages use for parallel maps and distributed training."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from wsfm.progress import Progress
from wsfm.stages.base import ModelRelease
from wsfm.taskfiles import TaskFiles
from wsfm.train.spec import TrainSpec

__all__ = ["MapError", "RayRuntime"]


class MapError(RuntimeError):
    """Items of a parallel map failed after all their retries; the message names each one."""


@dataclass(frozen=True)
class RayRuntime:
    """Picklable: built by the driver, used inside the stage's Ray task.

    Args:
        storage_path: Ray Train's storage folder (absolute).
        run_name: a name unique to this stage output (Ray Train run name).
        tracking: ``{"uri", "run_id"}`` of the stage's MLflow run, for rank-0 logging.
        max_retries: retries of a map task whose worker dies or that raises.
        num_cpus: CPUs per map task.
        progress_path: where a map keeps its progress snapshot for the driver's bar ("" none).
        files: the stage's files as its tasks reach them (``wsfm.taskfiles``; set in the
            stage's task): after each map and each training run it collects what tasks on
            other nodes delivered into the stage's folder.
    """

    storage_path: str
    run_name: str
    tracking: dict[str, str] | None = None
    max_retries: int = 3
    num_cpus: float = 1.0
    progress_path: str = ""
    files: TaskFiles | None = None

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, desc: str = "",
            unit: str = "items", work: Callable[[Any], float] | None = None,
            work_unit: str = "") -> list[Any]:
        """``[fn(item) for item in items]``, one Ray task per item; results in order.

        A task whose worker dies or that raises is retried ``max_retries`` times
        (``retry_exceptions``: Ray retries only dead workers by default). Progress is shown
        as tasks finish. Tasks that still fail do not stop the others (a resumable stage keeps
        their output); at the end a :class:`MapError` names every failed item (``str(item)``)
        with its last error.
        """
        # On a cluster the items go to every node (I/O, memory), not the driver's first: item i
        # prefers node i mod n (soft: elsewhere if that node dies or cannot fit it). Ray's
        # SPREAD alone is best effort and was seen putting every shard on one node.
        task = ray.remote(fn)
        nodes = sorted(n["NodeID"] for n in ray.nodes()
                       if n["Alive"] and n["Resources"].get("CPU", 0) >= self.num_cpus)

        def placed(i: int) -> Any:
            where = (NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True)
                     if len(nodes) > 1 else "SPREAD")
            return task.options(num_cpus=self.num_cpus, max_retries=self.max_retries,
                                retry_exceptions=True, scheduling_strategy=where)

        index = {placed(i).remote(item): i for i, item in enumerate(items)}
        results: list[Any] = [None] * len(items)
        failures: list[str] = []
        progress = Progress(len(items), desc=desc or getattr(fn, "__name__", "map"), unit=unit,
                            work_total=None if work is None else sum(work(x) for x in items),
                            work_unit=work_unit, path=self.progress_path or None)
        pending = list(index)
        with progress, self._collecting():
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=progress.interval)
                if ready and pending:  # collect whatever else finished meanwhile
                    more, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
                    ready += more
                for ref in ready:
                    i = index[ref]
                    try:
                        results[i] = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        failures.append(f"{items[i]}: {_describe(exc)}")
                    progress.update(1, 0.0 if work is None else work(items[i]))
                progress.refresh()
        if failures:
            raise MapError(f"{len(failures)} of {len(items)} tasks failed after "
                           f"{self.max_retries} retries: " + "; ".join(failures))
        return results

    @contextlib.contextmanager
    def _collecting(self) -> Iterator[None]:
        """Bring what the tasks delivered into the stage's folder once they are done, failed
        ones included (a resumable stage keeps what the others made)."""
        try:
            yield
        finally:
            if self.files is not None:
                self.files.collect()

    def train(self, spec: TrainSpec) -> dict[str, float]:
        from wsfm.train.ray_train import fit

        if spec.files is None and self.files is not None:  # fit collects rank 0's files
            spec = dataclasses.replace(spec, files=self.files)
        return fit(spec, storage_path=self.storage_path, run_name=self.run_name,
                   tracking=self.tracking)

    def publish(self, release: ModelRelease) -> dict[str, str]:
        return publish(self.tracking, release)

    def registered_weights(self, uri: str) -> dict[str, Any]:
        return registered_weights(self.tracking, uri)

    def node_id(self) -> str:
        """The Ray node of the calling process ("" outside Ray); picklable as a bound method,
        so a map task that calls it names its own node, not the stage's."""
        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def publish(tracking: dict[str, str] | None, release: ModelRelease) -> dict[str, str]:
    """Log ``release`` into the MLflow run ``tracking`` (``{"uri", "run_id"}``), register it
    and apply the champion rule (``wsfm.tracking.publish_model``)."""
    if not tracking:
        raise ValueError(f"cannot register {release.name}: this runtime has no MLflow run to "
                         "log the model into (give it tracking={'uri', 'run_id'})")
    from wsfm.tracking import publish_model

    return publish_model(tracking["uri"], tracking["run_id"], release)


def registered_weights(tracking: dict[str, str] | None, uri: str) -> dict[str, Any]:
    """The state dict of ``models:/NAME/VERSION`` in the store of the MLflow run
    ``tracking`` (``wsfm.tracking.registered_weights``)."""
    from wsfm.tracking import registered_weights as fetch  # MLflow: only for a models:/ URI

    return fetch(uri, (tracking or {}).get("uri"))


def _describe(exc: ray.exceptions.RayError) -> str:
    """The task's own exception (``RayTaskError`` wraps it), or Ray's (a dead worker)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"
