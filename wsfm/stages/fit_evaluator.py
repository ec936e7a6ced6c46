"""Stage ``fit_evaluator``: fit the task's quality metric once (e.g. an image classifier)."""

from __future__ import annotations

from wsfm.components import make_evaluator
from wsfm.data.datasets import load_dataset
from wsfm.stages.base import StageContext, StageResult

__all__ = ["fit_evaluator"]


def fit_evaluator(ctx: StageContext) -> StageResult:
    cfg = ctx.config
    data = load_dataset(cfg.data)
    evaluator = make_evaluator(data, cfg.evaluate, seed=cfg.seed)
    evaluator.fit(data)
    evaluator.save(ctx.out)
    floor = evaluator.score(data.reference, data.test)  # real data against real data
    return StageResult(metrics={f"reference_{k}": v for k, v in floor.items()},
                       params={"evaluator": evaluator.kind, "primary": evaluator.primary})
