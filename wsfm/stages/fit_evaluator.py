"""Stage ``fit_evaluator``: fit the task's quality metric once (e.g. an image classifier), on
at most ``evaluate.test_rows`` rows of each split (only those are read)."""

from __future__ import annotations

from wsfm.components import judged, make_evaluator
from wsfm.data.prepared import PreparedData
from wsfm.stages.base import StageContext, StageResult

__all__ = ["fit_evaluator"]


def fit_evaluator(ctx: StageContext) -> StageResult:
    cfg = ctx.config
    data = PreparedData(ctx.inputs["prepare_data"])
    sample = judged(data, cfg)  # at most evaluate.test_rows rows of each split
    evaluator = make_evaluator(sample, cfg.evaluate, seed=cfg.seed)
    evaluator.fit(sample)
    evaluator.save(ctx.out)
    # real data against real data
    floor = evaluator.score(data.head("reference", cfg.evaluate.test_rows), sample.test)
    return StageResult(metrics={f"reference_{k}": v for k, v in floor.items()},
                       params={"evaluator": evaluator.kind, "primary": evaluator.primary,
                               "judged_rows": len(sample.test)})
