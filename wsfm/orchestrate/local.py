"""A runtime that runs a stage's work in this process: for tests, benchmarks and notebooks.

``map`` runs the items one after another; ``train`` runs the same training loop as the Ray
Train workers, at world size 1, in this process (``wsfm.train.local.fit_local``); ``publish``
registers a model in the MLflow run it is given; ``node_id`` is "". No Ray is started::

    from wsfm.orchestrate.local import LocalRuntime
    from wsfm.stages import StageContext
    from wsfm.stages.pretrain_draft import pretrain_draft

    pretrain_draft(StageContext(config, {}, Path("out/draft"), LocalRuntime()))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from wsfm.orchestrate.runtime import MapError, publish, registered_weights
from wsfm.progress import Progress
from wsfm.stages.base import ModelRelease
from wsfm.train.spec import TrainSpec

__all__ = ["LocalRuntime"]


@dataclass(frozen=True)
class LocalRuntime:
    """Args:
        tracking: ``{"uri", "run_id"}`` of an MLflow run, for ``publish`` (and rank-0 logging).
        max_retries: extra attempts for an item of ``map`` that raises.
        show_progress: print progress lines while a map runs.
    """

    tracking: dict[str, str] | None = None
    max_retries: int = 0
    show_progress: bool = False

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, desc: str = "",
            unit: str = "items", work: Callable[[Any], float] | None = None,
            work_unit: str = "") -> list[Any]:
        """``[fn(item) for item in items]`` in order; an item that still raises after its
        retries does not stop the others, and then a :class:`MapError` names each one."""
        results: list[Any] = [None] * len(items)
        failures: list[str] = []
        progress = Progress(len(items), desc=desc or getattr(fn, "__name__", "map"), unit=unit,
                            work_total=None if work is None else sum(work(x) for x in items),
                            work_unit=work_unit, quiet=not self.show_progress)
        with progress:
            for i, item in enumerate(items):
                for attempt in range(self.max_retries + 1):
                    try:
                        results[i] = fn(item)
                        break
                    except Exception as exc:  # noqa: BLE001 - reported below, with the item
                        if attempt == self.max_retries:
                            failures.append(f"{item}: {type(exc).__name__}: {exc}")
                progress.update(1, 0.0 if work is None else work(item))
        if failures:
            raise MapError(f"{len(failures)} of {len(items)} tasks failed after "
                           f"{self.max_retries} retries: " + "; ".join(failures))
        return results

    def train(self, spec: TrainSpec) -> dict[str, float]:
        """Train in this process: one worker, the same global batch (``batch_size`` split
        into ``grad_accum`` micro-batches), so the data per rank differs from a
        ``num_workers``-worker run and the weights are close to, not equal to, Ray's."""
        import dataclasses
        import warnings

        from wsfm.train.local import fit_local

        if spec.train.num_workers != 1:
            warnings.warn(f"train.num_workers={spec.train.num_workers} is ignored in-process: "
                          "one worker trains with the same global batch", stacklevel=2)
            train = dataclasses.replace(spec.train, num_workers=1,  # type: ignore[type-var]
                                        micro_batch=0)  # a pydantic dataclass
            spec = dataclasses.replace(spec, train=train)
        return fit_local(spec)

    def publish(self, release: ModelRelease) -> dict[str, str]:
        return publish(self.tracking, release)

    def registered_weights(self, uri: str) -> dict[str, Any]:
        return registered_weights(self.tracking, uri)

    def node_id(self) -> str:
        """No cluster: every item runs here, so no node is named."""
        return ""
