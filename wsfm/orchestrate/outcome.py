"""What an invocation made of each stage (:class:`StageOutcome`), and of the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field

from wsfm.orchestrate.dag import PlanItem

__all__ = ["RunSummary", "StageOutcome"]


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
