"""The evaluation's trained rivals, one stage each (so adding one reruns nothing else).

- ``train_cold_ot``: flow matching from noise with minibatch-OT pairs (OT-CFM);
- ``generate_reflow``: pairs for one round of rectified flow on ``cold_ot``: noise ``z`` and
  the cold_ot model's sample from it at ``REFLOW_STEPS`` Euler steps, written as rows
  ``[z | x1]`` (2D) into WebDataset shards by one ``ctx.runtime.map`` task per shard, with
  ``generate_drafts``' layout, records and resume rules (``shards.num_shards`` x
  ``per_shard`` pairs), and as they do, delivered through ``job.files`` from whatever node;
- ``train_reflow``: flow matching on those pairs;
- ``generate_warm_reflow`` + ``train_warm_reflow``: the same round on the refiner (WS-FM's
  own rectified round): the widened draft ``x(t0)`` and the refiner's sample from it at
  ``REFLOW_STEPS`` Euler steps over ``[t0, 1]``, then flow matching on those pairs from t = 0.
  Like ``reflow`` it costs one pair generation and one more training of the same budget, so
  ``warm_reflow`` against ``reflow`` compares like with like (docs/method.md).

Every one trains with the refiner's network and budget (``ctx.runtime.train``). They run only
in a job whose ``evaluate.methods`` asks for their method (``StageSpec.methods``: the plan
leaves the others out, ``wsfm bench`` asks for them all). There is no "flow from the drafts at
t = 0" rival: that is the refiner itself, sampled from t0 = 0 (docs/method.md).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from wsfm.config import PipelineConfig
from wsfm.data.prepared import describe_prepared
from wsfm.sampler import WarmStartSampler
from wsfm.shards import (
    BLOCK,
    ShardRecord,
    ShardWriter,
    read_manifest,
    read_stats,
    sha256_file,
    shard_name,
    stats_name,
    write_manifest,
    write_stats,
)
from wsfm.stages.base import StageContext, StageResult
from wsfm.stages.generate_drafts import (
    CHUNK_BLOCKS,
    _earlier_attempt,
    _remove_temporaries,
    chunk_seed,
    task_node,
)
from wsfm.stages.train import _result
from wsfm.taskfiles import LocalFiles, TaskFiles
from wsfm.train.spec import Mode, TrainSpec

__all__ = ["REFLOW_STEPS", "ReflowJob", "generate_reflow", "generate_warm_reflow",
           "make_reflow_shard", "train_cold_ot", "train_reflow",
           "train_warm_reflow"]

REFLOW_STEPS = 100  # Euler steps of the teacher (cold_ot, or the refiner) behind the pairs
REFLOW_SEED = 7_000_000  # shard seeds, disjoint from the drafts' and evaluation's
WARM_REFLOW_SEED = 8_000_000


def _spec(ctx: StageContext, method: str, mode: Mode, urls: tuple[str, ...] = ()
          ) -> TrainSpec:
    cfg, data_dir = ctx.config, ctx.inputs["prepare_data"]
    return TrainSpec(mode=mode, data=cfg.data, flow=cfg.flow, model=cfg.model,
                     train=cfg.train, dim=describe_prepared(data_dir).dim, out_dir=str(ctx.out),
                     shard_urls=urls, stage=f"train_{method}", data_dir=str(data_dir))


def train_cold_ot(ctx: StageContext) -> StageResult:
    return _result(ctx.runtime.train(_spec(ctx, "cold_ot", "cold_ot")))


def _train_on_pairs(ctx: StageContext, method: str, pairs_stage: str) -> StageResult:
    pairs = ctx.inputs[pairs_stage]
    urls = tuple(str(pairs / rec.shard) for rec in read_manifest(pairs))
    return _result(ctx.runtime.train(_spec(ctx, method, "reflow", urls)))


def train_reflow(ctx: StageContext) -> StageResult:
    return _train_on_pairs(ctx, "reflow", "generate_reflow")


def train_warm_reflow(ctx: StageContext) -> StageResult:
    return _train_on_pairs(ctx, "warm_reflow", "generate_warm_reflow")


@dataclass(frozen=True)
class ReflowJob:
    """One shard of reflow pairs; picklable. Field names follow ``generate_drafts.ShardJob``
    (its resume check reads them); ``draft_sha256`` is the teacher's weights' sha256.
    ``draft_path`` empty: the teacher is cold_ot and the source noise; else the teacher is the
    refiner and the source the widened draft at ``config.flow.t0``."""

    model_path: str
    config: PipelineConfig
    out_dir: str
    index: int
    count: int
    seed: int
    draft_sha256: str
    block: int = BLOCK
    pair: str = "none"
    files: TaskFiles | None = None  # the stage's files from the task's node (None: out_dir)
    draft_path: str = ""
    data_dir: str = ""  # the prepared dataset (prepare_data's folder)
    node_id: Callable[[], str] | None = field(default=None, compare=False)  # Runtime.node_id

    def __str__(self) -> str:
        return f"{shard_name(self.index)} (seed {self.seed})"


def _teacher(job: ReflowJob) -> WarmStartSampler:
    """The sampler whose start and flow make the pairs: cold_ot from noise at 0, or the
    refiner from the widened draft at ``t0`` (its velocity rescaled from s-units)."""
    from wsfm.bundle import load_net
    from wsfm.components import make_sampler, net_spec
    from wsfm.drafts import load_draft

    data, flow = describe_prepared(job.data_dir), job.config.flow  # no row: noise or drafts
    net = load_net(net_spec(job.config.model, data), data.dim, job.model_path)
    draft = load_draft(job.draft_path) if job.draft_path else None
    # cold_ot's pairs start from noise: neither t0 nor the draft's widening is read for them
    # (generate_reflow does not declare them, so they must not shape its pairs).
    return make_sampler(data, draft, net, flow.t0 if draft else 0.0,
                        step_size=1.0 / REFLOW_STEPS,
                        draft_noise=flow.draft_noise if draft else 0.0)


def _pairs(job: ReflowJob) -> Iterator[np.ndarray]:
    """(rows, 2D) float32 ``[x0 | x1]`` pairs, chunk by chunk, deterministic in the seed:
    ``x0`` the teacher's start, ``x1`` its ``REFLOW_STEPS``-step Euler sample from ``x0``."""
    from wsfm.flow.solvers import integrate

    teacher = _teacher(job)
    teacher.refiner.eval()
    rows = job.block * CHUNK_BLOCKS
    for c, start in enumerate(range(0, job.count, rows)):
        x0 = teacher.initial(min(rows, job.count - start), chunk_seed(job.seed, c))
        with torch.no_grad():
            x1 = integrate(teacher.velocity, x0, teacher.t0, 1.0, steps=REFLOW_STEPS,
                           method="euler").x
        yield torch.cat([x0, x1], 1).numpy().astype(np.float32)


def make_reflow_shard(job: ReflowJob) -> ShardRecord:
    """Make (or find complete) one shard of pairs and its stats record."""
    files = job.files or LocalFiles(job.out_dir)
    job = dataclasses.replace(job, model_path=str(files.input(job.model_path)),
                              draft_path=job.draft_path and str(files.input(job.draft_path)),
                              data_dir=str(files.input(job.data_dir)))
    with files.workspace() as out:
        old, problem = _earlier_attempt(out, job)  # type: ignore[arg-type]  # same fields
        if problem is None:
            assert old is not None  # complete means its record is there
            return old
        start = time.perf_counter()
        with ShardWriter(out, job.index) as writer:
            for x in _pairs(job):
                for s in range(0, len(x), job.block):
                    writer.write(x[s:s + job.block], None)
            size, sha = writer.commit()
        record = ShardRecord(shard_name(job.index), writer.count, size, sha, job.seed,
                             seconds=time.perf_counter() - start, draft_sha256=job.draft_sha256,
                             node=task_node(job.node_id))
        write_stats(out, job.index, record)
        files.publish(out, shard_name(job.index), stats_name(job.index))
    return record


def _count(job: ReflowJob) -> int:
    return job.count


def generate_reflow(ctx: StageContext) -> StageResult:
    return _generate_pairs(ctx, "reflow", "train_cold_ot", from_draft=False)


def generate_warm_reflow(ctx: StageContext) -> StageResult:
    return _generate_pairs(ctx, "warm_reflow", "train_refiner", from_draft=True)


def _generate_pairs(ctx: StageContext, method: str, teacher: str, from_draft: bool
                    ) -> StageResult:
    cfg, sh = ctx.config, ctx.config.shards
    model = ctx.inputs[teacher] / "model.pt"
    draft = str(ctx.inputs["pretrain_draft"] / "draft.npz") if from_draft else ""
    if not model.is_file():
        raise FileNotFoundError(f"{model}: {method} needs its teacher's model.pt")
    sha = sha256_file(model)
    seed0 = cfg.seed * 1_000_003 + (WARM_REFLOW_SEED if draft else REFLOW_SEED)
    jobs = [ReflowJob(str(model), cfg, str(ctx.out), i, sh.per_shard, seed=seed0 + i,
                      draft_sha256=sha, block=sh.block, files=ctx.files, draft_path=draft,
                      data_dir=str(ctx.inputs["prepare_data"]),
                      node_id=ctx.runtime.node_id)
            for i in range(sh.num_shards)]
    _remove_temporaries(ctx.out)
    start = time.perf_counter()
    try:
        records = ctx.runtime.map(make_reflow_shard, jobs, desc=f"generate_{method}",
                                  unit="shards", work=_count, work_unit="pairs")
    finally:
        _remove_temporaries(ctx.out)  # left by tasks whose worker died mid-write
    assert records == [read_stats(ctx.out, j.index) for j in jobs]
    write_manifest(ctx.out, records)
    seconds = time.perf_counter() - start
    pairs = sum(r.count for r in records)
    return StageResult(metrics={"pairs": pairs, "seconds": seconds,
                                "pairs_per_s": pairs / max(seconds, 1e-9)})
