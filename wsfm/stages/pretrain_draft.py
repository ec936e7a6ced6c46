"""Stage ``pretrain_draft``: fit the cheap draft generator on the training split, or on
``draft.fit_rows`` of its rows drawn by the seed where it is larger (only those rows are
read: the stage's memory is bounded by ``fit_rows``, not by the split)."""

from __future__ import annotations

import time

from wsfm.components import build_draft
from wsfm.data.prepared import PreparedData
from wsfm.stages.base import StageContext, StageResult

__all__ = ["pretrain_draft"]


def pretrain_draft(ctx: StageContext) -> StageResult:
    cfg = ctx.config
    data = PreparedData(ctx.inputs["prepare_data"])
    fit_on, _ = data.sample("train", cfg.draft.fit_rows, [cfg.seed, 17])
    start = time.perf_counter()
    draft = build_draft(cfg.draft, seed=cfg.seed).fit(fit_on)
    seconds = time.perf_counter() - start
    draft.save(ctx.out / "draft.npz")
    # How good the draft is comes from `evaluate` (its `draft` row), on the task's metric.
    return StageResult(metrics={"fit_seconds": seconds,
                                "cost_per_sample": float(draft.cost_per_sample)},
                       params={"dim": data.dim, "n_train": data.rows("train"),
                               "n_fit": len(fit_on)})
