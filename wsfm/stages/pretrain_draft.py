"""Stage ``pretrain_draft``: fit the cheap draft generator on the training split, or on
``draft.fit_rows`` of its rows drawn by the seed where it is larger."""

from __future__ import annotations

import time

from wsfm.components import build_draft
from wsfm.data.prepared import load_prepared
from wsfm.flow.search import seeded_subset
from wsfm.stages.base import StageContext, StageResult

__all__ = ["pretrain_draft"]


def pretrain_draft(ctx: StageContext) -> StageResult:
    cfg = ctx.config
    data = load_prepared(ctx.inputs["prepare_data"])
    rows = seeded_subset(len(data.train), cfg.draft.fit_rows, [cfg.seed, 17])
    fit_on = data.train if rows is None else data.train[rows]
    start = time.perf_counter()
    draft = build_draft(cfg.draft, seed=cfg.seed).fit(fit_on)
    seconds = time.perf_counter() - start
    draft.save(ctx.out / "draft.npz")
    # How good the draft is comes from `evaluate` (its `draft` row), on the task's metric.
    return StageResult(metrics={"fit_seconds": seconds,
                                "cost_per_sample": float(draft.cost_per_sample)},
                       params={"dim": data.dim, "n_train": len(data.train),
                               "n_fit": len(fit_on)})
