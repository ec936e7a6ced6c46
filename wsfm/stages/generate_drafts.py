"""Stage ``generate_drafts``: sample drafts in parallel into WebDataset shards."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from wsfm.drafts import load_draft
from wsfm.shards import ShardRecord, write_manifest, write_shard
from wsfm.stages.base import StageContext, StageResult

__all__ = ["ShardJob", "generate_drafts", "make_shard"]


@dataclass(frozen=True)
class ShardJob:
    draft_path: str
    out_dir: str
    index: int
    count: int
    seed: int


def make_shard(job: ShardJob) -> ShardRecord:
    """Sample one shard's drafts and write it (one parallel task per shard)."""
    draft = load_draft(job.draft_path)
    return write_shard(Path(job.out_dir), job.index, draft.sample(job.count, job.seed), job.seed)


def generate_drafts(ctx: StageContext) -> StageResult:
    cfg = ctx.config
    draft_path = ctx.inputs["pretrain_draft"] / "draft.npz"
    # Shard seeds are disjoint from the seeds that evaluation samples with.
    jobs = [ShardJob(str(draft_path), str(ctx.out), i, cfg.shards.per_shard,
                     seed=cfg.seed * 1_000_003 + 1_000 + i)
            for i in range(cfg.shards.num_shards)]
    start = time.perf_counter()
    records = ctx.runtime.map(make_shard, jobs)
    seconds = time.perf_counter() - start
    write_manifest(ctx.out, records)
    drafts = sum(r.count for r in records)
    size = sum(r.bytes for r in records)
    return StageResult(metrics={"drafts": drafts, "bytes": size, "seconds": seconds,
                                "drafts_per_s": drafts / seconds,
                                "mb_per_s": size / 1e6 / seconds})
