"""Stage ``pretrain_draft``: fit the cheap draft generator on the training split."""

from __future__ import annotations

import time

from wsfm.data.datasets import load_dataset
from wsfm.drafts import get_draft
from wsfm.metrics import sliced_wasserstein
from wsfm.stages.base import StageContext, StageResult

__all__ = ["pretrain_draft"]


def pretrain_draft(ctx: StageContext) -> StageResult:
    cfg = ctx.config
    data = load_dataset(cfg.data)
    start = time.perf_counter()
    draft = get_draft(cfg.draft.kind)(n_components=cfg.draft.n_components, seed=cfg.seed)
    draft.fit(data.train)
    seconds = time.perf_counter() - start
    draft.save(ctx.out / "draft.npz")
    # How far the draft is from the data: refinement must have something to do.
    samples = draft.sample(min(cfg.evaluate.n_samples, len(data.test)), seed=cfg.seed)
    swd = sliced_wasserstein(samples, data.test, cfg.evaluate.n_projections, seed=0)
    return StageResult(
        metrics={"draft_swd": swd, "fit_seconds": seconds,
                 "cost_per_sample": float(draft.cost_per_sample)},
        params={"dim": data.dim, "n_train": len(data.train)},
    )
