"""The plan: which stages run, which are cached, which are blocked, which are unused.

A stage that only feeds rivals the evaluation was not asked for (``StageSpec.methods``) is
``unused``: not part of this job, so it is neither run, nor waited for, nor logged, and its
dependents run without it (its fingerprint is the constant ``UNUSED``, so that a dependent's
fingerprint still says which of its inputs it had).

``make_plan`` is pure bookkeeping over the stage specs and the artifact store; it starts
nothing, so ``--dry-run`` and the tests can use it freely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from wsfm.config import PipelineConfig
from wsfm.errors import UserError
from wsfm.orchestrate.fingerprint import fingerprint
from wsfm.orchestrate.store import ArtifactStore
from wsfm.stages.base import StageSpec

__all__ = ["UNUSED", "PlanItem", "downstream", "make_plan", "topo_order"]

Action = Literal["run", "cached", "blocked", "skip", "unused"]
UNUSED = "unused"


@dataclass
class PlanItem:
    stage: str
    fingerprint: str
    action: Action
    reason: str = ""
    producer_run_id: str | None = None  # for cached stages: the MLflow run that made them


def topo_order(specs: Sequence[StageSpec]) -> list[StageSpec]:
    by_name = {s.name: s for s in specs}
    order: list[StageSpec] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise ValueError(f"stage graph has a cycle through {name!r}")
        if name not in by_name:
            raise ValueError(f"unknown stage {name!r} (stages: {list(by_name)})")
        state[name] = 1
        for dep in by_name[name].deps:
            visit(dep)
        state[name] = 2
        order.append(by_name[name])

    for spec in specs:
        visit(spec.name)
    return order


def downstream(specs: Sequence[StageSpec], name: str) -> set[str]:
    """``name`` and every stage that depends on it, directly or not."""
    out = {name}
    for spec in topo_order(specs):
        if any(dep in out for dep in spec.deps):
            out.add(spec.name)
    return out


def make_plan(
    specs: Sequence[StageSpec],
    config: PipelineConfig,
    store: ArtifactStore,
    *,
    force: bool = False,
    from_stage: str | None = None,
    only: str | None = None,
) -> list[PlanItem]:
    names = [s.name for s in specs]
    for flag, value in (("--from", from_stage), ("--only", only)):
        if value is not None and value not in names:
            raise UserError(f"{flag}: unknown stage {value!r} (stages: {names})")
    if from_stage and only:
        raise UserError("--from and --only cannot be combined")
    forced = downstream(specs, from_stage) if from_stage else set()

    plan: dict[str, PlanItem] = {}
    for spec in topo_order(specs):
        if why := spec.unused_by(config):
            plan[spec.name] = PlanItem(spec.name, UNUSED, "unused", why)
            continue
        fp = fingerprint(spec, config, {d: plan[d].fingerprint for d in spec.deps})
        record, problem = store.inspect(spec.name, fp)
        blocked = [d for d in spec.deps if plan[d].action in ("blocked", "skip")]
        if only is not None and spec.name != only:  # not selected: never a failure
            item = (PlanItem(spec.name, fp, "cached", producer_run_id=record.get("mlflow_run_id"))
                    if record else PlanItem(spec.name, fp, "skip", "not selected by --only"))
        elif blocked:
            item = PlanItem(spec.name, fp, "blocked", f"needs {blocked[0]}, which is not available")
        elif force or spec.name in forced or spec.name == only or record is None:
            why = problem if record is None else "forced"
            item = PlanItem(spec.name, fp, "run", why)
        else:
            item = PlanItem(spec.name, fp, "cached", producer_run_id=record.get("mlflow_run_id"))
        plan[spec.name] = item
    return list(plan.values())
