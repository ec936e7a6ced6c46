"""The Ray runtime that stages use for parallel maps and distributed training."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray

from wsfm.stages.base import TrainSpec

__all__ = ["RayRuntime"]


@dataclass(frozen=True)
class RayRuntime:
    """Picklable: built by the driver, used inside the stage's Ray task.

    Args:
        storage_path: Ray Train's storage folder (absolute).
        run_name: a name unique to this stage output (Ray Train run name).
        tracking: ``{"uri", "run_id"}`` of the stage's MLflow run, for rank-0 logging.
        max_retries: retries of a map task whose worker dies.
        num_cpus: CPUs per map task.
    """

    storage_path: str
    run_name: str
    tracking: dict[str, str] | None = None
    max_retries: int = 3
    num_cpus: float = 1.0

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        task = ray.remote(fn).options(num_cpus=self.num_cpus, max_retries=self.max_retries)
        return ray.get([task.remote(item) for item in items])

    def train(self, spec: TrainSpec) -> dict[str, float]:
        from wsfm.train.ray_train import fit

        return fit(spec, storage_path=self.storage_path, run_name=self.run_name,
                   tracking=self.tracking)
