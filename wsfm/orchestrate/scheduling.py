"""Resource accounting: a stage starts only when the cluster has room for what it will hold.

Ray queues a task until a CPU is free, but Ray Train's worker group waits for its placement
group only so long and then fails ("controller error"), so two training stages that cannot
both fit must run one after the other. The driver therefore commits each running stage's
demand and starts another only when it fits beside them.

What a stage really holds (``stage_demand``):

- a plain stage: its task's ``resources.<stage>`` (``num_cpus``, ``num_gpus``); without
  ``num_cpus``, 1 CPU, or none for a stage that only fans out (:func:`stage_cpus`);
- a training stage (one that reads the ``train`` section): ``train.num_workers`` Ray Train
  workers of 1 CPU each (and 1 GPU each with ``train.use_gpu``), and its task's own CPU only
  while it is not blocked in ``fit()``: Ray lends a task's CPU back while the task waits in
  ``ray.get``. So it holds ``max(task CPUs, workers)`` CPUs at a time, and the task's GPUs plus
  the workers' GPUs.

A stage whose demand exceeds the cluster's total can never start; :func:`check_fits` refuses
it before anything runs, naming what it asks for and what the cluster has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from wsfm.config import PipelineConfig
from wsfm.stages.base import StageSpec

__all__ = ["Demand", "Ledger", "check_fits", "stage_cpus", "stage_demand"]


@dataclass(frozen=True)
class Demand:
    """CPUs and GPUs a stage holds at a time."""

    cpus: float = 0.0
    gpus: float = 0.0

    def __add__(self, other: Demand) -> Demand:
        return Demand(self.cpus + other.cpus, self.gpus + other.gpus)

    def __sub__(self, other: Demand) -> Demand:
        return Demand(self.cpus - other.cpus, self.gpus - other.gpus)

    def fits_in(self, room: Demand) -> bool:
        eps = 1e-9  # fractional CPUs add up with rounding error
        return self.cpus <= room.cpus + eps and self.gpus <= room.gpus + eps

    def describe(self) -> str:
        text = f"{self.cpus:g} CPU" + ("" if self.cpus == 1 else "s")
        return text + (f" and {self.gpus:g} GPU" + ("" if self.gpus == 1 else "s")
                       if self.gpus else "")

    @staticmethod
    def from_ray(resources: Mapping[str, float]) -> Demand:
        """From ``ray.cluster_resources()`` / ``ray.available_resources()``."""
        return Demand(float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0)))


def is_training(spec: StageSpec) -> bool:
    """Training stages read the ``train`` section (and start a Ray Train worker group)."""
    return "train" in spec.reads


def stage_cpus(spec: StageSpec, config: PipelineConfig) -> float:
    """The CPUs of ``spec``'s own task: ``resources.<stage>.num_cpus``, else 0 for a stage
    that only fans out (``StageSpec.fans_out``: its mapped tasks hold the CPUs) and 1 for the
    others."""
    given = config.resources_for(spec.name).num_cpus
    if given is not None:
        return float(given)
    return 0.0 if spec.fans_out else 1.0


def stage_demand(spec: StageSpec, config: PipelineConfig) -> Demand:
    """What ``spec`` holds at a time on the cluster (see the module docstring)."""
    res, cpus = config.resources_for(spec.name), stage_cpus(spec, config)
    if not is_training(spec):
        return Demand(cpus, res.num_gpus)
    workers = config.train.num_workers
    gpus = res.num_gpus + (workers if config.train.use_gpu else 0)
    return Demand(max(cpus, float(workers)), gpus)


def check_fits(demands: Mapping[str, Demand], total: Demand) -> None:
    """Raise a :class:`~wsfm.errors.UserError` naming every stage that needs more than the
    cluster has in all."""
    too_big = [f"{name} needs {d.describe()}" for name, d in demands.items()
               if not d.fits_in(total)]
    if too_big:
        from wsfm.errors import UserError

        raise UserError(f"{'; '.join(too_big)} at a time, but the cluster has "
                         f"{total.describe()} in all, so it could never start. Lower "
                         "train.num_workers (--workers) or resources.<stage>, or join a bigger "
                         "cluster (--address)")


class Ledger:
    """What the driver has committed to the stages it started.

    Args:
        total: the cluster's resources (``ray.cluster_resources()``).
    """

    def __init__(self, total: Demand):
        self.total = total
        self.held: dict[str, Demand] = {}

    @property
    def committed(self) -> Demand:
        out = Demand()
        for demand in self.held.values():
            out = out + demand
        return out

    def room(self, available: Demand | None = None) -> Demand:
        """Free for a new stage: the total less what running stages hold, and no more than
        Ray says is available now (``available``: other jobs on a shared cluster)."""
        free = self.total - self.committed
        if available is None:
            return free
        return Demand(min(free.cpus, available.cpus), min(free.gpus, available.gpus))

    def can_start(self, demand: Demand, available: Demand | None = None) -> bool:
        """True when ``demand`` fits now. With nothing of ours running, only the driver's
        own accounting counts: Ray's availability lags behind a task that just ended, and a
        stage that fits the total would otherwise wait on a stale figure."""
        if not self.held:
            return demand.fits_in(self.total)
        return demand.fits_in(self.room(available))

    def start(self, stage: str, demand: Demand) -> None:
        self.held[stage] = demand

    def finish(self, stage: str) -> None:
        self.held.pop(stage, None)

    def holding(self) -> Iterable[str]:
        return list(self.held)
