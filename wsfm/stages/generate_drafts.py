"""Stage ``generate_drafts``: sample drafts in parallel into WebDataset shards.

One parallel task per shard, each with its own seed. A task samples its drafts a chunk at a
time (its memory does not grow with the shard, let alone with the total), optionally pairs
each draft with a row of the training split (``shards.pair``: the coupling, precomputed, so
that training does not redo it; ``substitute``: a random training window, the "draft" being
the draft model's substitutes drawn on it), writes the tar atomically and then its stats record. The
stage is resumable: a shard whose stats record matches its job and whose tar matches the
record (size, sha256) is kept, every other one is made again; the manifest is assembled from
the stats records, so a resumed run's manifest equals an uninterrupted run's (all columns but
the wall-clock ``seconds`` and the ``node`` that made each shard).

A shard task may run on a node that does not see the stage's folders (an object-store root
on several nodes): it reads the draft through ``job.files`` and writes into its
``workspace``, then publishes the tar and its stats record (``wsfm.taskfiles``); the runtime
collects them into the stage's folder before the manifest is assembled. Such a task does not
see an earlier attempt's shard either, so it makes it again (the same seed, the same bytes).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wsfm.data.prepared import PreparedData
from wsfm.drafts import SubstituteDraft, load_draft
from wsfm.flow.couplings import ot_permutation
from wsfm.flow.discrete import hamming_ot_permutation
from wsfm.flow.search import NearestSearch, nearest_pool_rows
from wsfm.shards import (
    BLOCK,
    ShardRecord,
    ShardWriter,
    check_shard,
    read_stats,
    sha256_file,
    shard_bytes,
    shard_name,
    stats_name,
    write_manifest,
    write_stats,
)
from wsfm.space import require_space
from wsfm.stages.base import StageContext, StageResult
from wsfm.taskfiles import LocalFiles, TaskFiles

__all__ = ["ShardJob", "ShardResult", "chunk_seed", "generate_drafts", "make_shard", "task_node"]

CHUNK_BLOCKS = 16  # blocks sampled at once: bounds a task's memory whatever the shard size


@dataclass(frozen=True)
class ShardJob:
    """One shard's task; picklable."""

    draft_path: str
    out_dir: str
    index: int
    count: int
    seed: int
    draft_sha256: str = ""
    block: int = BLOCK
    pair: str = "none"
    data_dir: str = ""  # the prepared dataset (prepare_data's folder), read for pairing
    # pair nearest: the candidate pool (0: the whole split) and the search (wsfm.flow.search)
    nearest_pool: int = 0
    nearest_index: str = "exact"
    nearest_nprobe: int = 8
    files: TaskFiles | None = None  # the stage's files from the task's node (None: out_dir)
    # the runtime's node_id (Runtime.node_id), called in the task: which node made the shard
    node_id: Callable[[], str] | None = field(default=None, compare=False)

    def __str__(self) -> str:  # how a failed task is named in errors
        return f"{shard_name(self.index)} (seed {self.seed})"


@dataclass(frozen=True)
class ShardResult:
    record: ShardRecord
    reused: bool  # found complete from an earlier attempt
    repaired: str = ""  # why an earlier attempt's shard was made again ("" if none was there)


def chunk_seed(seed: int, chunk: int) -> int:
    """The draft seed of rows ``[chunk * block * CHUNK_BLOCKS, ...)`` of the shard ``seed``."""
    return int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0])


def make_shard(job: ShardJob) -> ShardResult:
    """Make (or find complete) one shard and its stats record (one parallel task per shard)."""
    files = job.files or LocalFiles(job.out_dir)
    job = dataclasses.replace(job, draft_path=str(files.input(job.draft_path)),
                              data_dir=job.data_dir and str(files.input(job.data_dir)))
    with files.workspace() as out:
        old, problem = _earlier_attempt(out, job)
        if problem is None:
            assert old is not None  # complete means its record is there
            return ShardResult(old, reused=True)
        (out / stats_name(job.index)).unlink(missing_ok=True)  # the record comes after the tar
        start = time.perf_counter()
        with ShardWriter(out, job.index) as writer:
            for x, idx in _chunks(job):
                for s in range(0, len(x), job.block):
                    writer.write(x[s:s + job.block],
                                 None if idx is None else idx[s:s + job.block])
            size, sha = writer.commit()
        record = ShardRecord(shard_name(job.index), writer.count, size, sha, job.seed,
                             seconds=time.perf_counter() - start, draft_sha256=job.draft_sha256,
                             pair=job.pair, node=task_node(job.node_id))
        write_stats(out, job.index, record)
        files.publish(out, shard_name(job.index), stats_name(job.index))
    return ShardResult(record, reused=False, repaired=problem)


def task_node(node_id: Callable[[], str] | None) -> str:
    """The node this task runs on, as the stage's runtime names it (``Runtime.node_id``,
    handed to the task in its job; None: ""): which node made which shard."""
    return node_id() if node_id is not None else ""


def _earlier_attempt(out: Path, job: ShardJob) -> tuple[ShardRecord | None, str | None]:
    """The stats record an earlier attempt left, and what is wrong with its shard: None if
    it is complete, ``""`` if nothing is there."""
    old = read_stats(out, job.index)
    tar = out / shard_name(job.index)
    if old is None:
        return None, f"{tar.name}: no valid stats record" if tar.exists() else ""
    if (old.shard, old.count, old.seed, old.draft_sha256, old.pair) != (
            tar.name, job.count, job.seed, job.draft_sha256, job.pair):
        return old, f"{tar.name}: its stats record is for another job"
    problem = check_shard(out, old)
    return old, None if problem is None else problem.replace(str(tar), tar.name)


@dataclass(frozen=True)
class PairRows:
    """The training rows a shard task pairs with, read from the prepared data: ``x`` holds
    rows ``index`` (sorted; None: every row) of the ``n_ref`` training rows. ``rows[i]``
    looks up training rows ``i`` (global indices, as the partner indices are stored)."""

    x: torch.Tensor  # (len(index) or n_ref, D)
    index: np.ndarray | None
    n_ref: int
    text: bool

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor:
        return self.x[rows if self.index is None else np.searchsorted(self.index, rows)]

    def global_rows(self, local: np.ndarray) -> np.ndarray:
        return local if self.index is None else self.index[local]


def _chunk_sizes(job: ShardJob) -> list[int]:
    rows = job.block * CHUNK_BLOCKS
    return [min(rows, job.count - start) for start in range(0, job.count, rows)]


def _ot_rows(job: ShardJob, chunk: int, n: int, n_ref: int) -> list[np.ndarray]:
    """Per block of the chunk's ``n`` drafts, the training rows drawn to pair it with."""
    rng = np.random.default_rng([job.seed, chunk, 1])
    sizes = [min(job.block, n - s) for s in range(0, n, job.block)]
    return [rng.choice(n_ref, size=k, replace=k > n_ref) for k in sizes]


def _substitute_rows(job: ShardJob, chunk: int, n: int, n_ref: int) -> np.ndarray:
    """The training windows of the chunk's ``n`` substitute drafts."""
    return np.random.default_rng([job.seed, chunk, 2]).integers(n_ref, size=n)


def _rows_needed(job: ShardJob, n_ref: int) -> np.ndarray | None:
    """The training rows (sorted) the shard's pairing reads; None: all of them (exact or IVF
    search over the whole split). Every other pairing reads at most a row per draft, or the
    pool: the task's memory is bounded by the shard or the pool, not by the split."""
    if job.pair == "nearest":
        return nearest_pool_rows(n_ref, job.nearest_pool, [job.seed, 3])
    assert job.pair in ("minibatch_ot", "substitute"), job.pair
    parts = [np.concatenate(_ot_rows(job, c, n, n_ref)) if job.pair == "minibatch_ot"
             else _substitute_rows(job, c, n, n_ref) for c, n in enumerate(_chunk_sizes(job))]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def pair_rows(job: ShardJob) -> PairRows:
    """Read the training rows the shard pairs with (:func:`_rows_needed`)."""
    prepared = PreparedData(job.data_dir)
    n_ref = prepared.rows("train")
    index = _rows_needed(job, n_ref)
    x = prepared.take("train", index)[0]
    return PairRows(torch.from_numpy(x), index, n_ref, text=prepared.describe().text is not None)


def _chunks(job: ShardJob) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """The shard's drafts (rows, D) (float32, or int64 codes for text) and their partners
    (rows,) int64, chunk by chunk."""
    draft = load_draft(job.draft_path)
    data = None
    if job.pair != "none":
        assert job.data_dir, "pairing needs the prepared data"
        data = pair_rows(job)
        if data.x.shape[1] != draft.dim:
            raise ValueError(f"draft dim {draft.dim} != data dim {data.x.shape[1]}")
    # built once per shard: an IVF index costs its k-means
    search = _nearest_search(job, data) if job.pair == "nearest" and data is not None else None
    for c, n in enumerate(_chunk_sizes(job)):
        seed = chunk_seed(job.seed, c)
        if job.pair == "substitute":  # real windows, and the draft's substitutes on them
            assert data is not None and isinstance(draft, SubstituteDraft), \
                "pair substitute needs a draft that draws substitutes (checked by the config)"
            idx = _substitute_rows(job, c, n, data.n_ref)
            yield draft.substitutes(data[idx].numpy(), seed), idx.astype(np.int64)
            continue
        x = draft.sample(n, seed)  # (n, D)
        yield x, None if data is None else _partners(x, data, job, c, search)


def _nearest_search(job: ShardJob, data: PairRows) -> NearestSearch:
    """The search over ``data``'s rows (already the pool where there is one)."""
    return NearestSearch(data.x.numpy(), index=job.nearest_index,  # type: ignore[arg-type]
                         nprobe=job.nearest_nprobe, seed=[job.seed, 3], hamming=data.text)


def _partners(x: np.ndarray, data: PairRows, job: ShardJob, chunk: int,
              search: NearestSearch | None = None) -> np.ndarray:
    """(n,) training rows paired with the drafts ``x`` (n, D): the nearest (by squared
    Euclidean distance, or for text's long character codes by Hamming distance, through
    ``search``, built here if not given), or by exact OT within each block of drafts and as
    many training rows drawn for it: the coupling the training loop would compute, done
    once."""
    if job.pair == "nearest":
        return data.global_rows((search or _nearest_search(job, data)).search(x))
    xt = torch.from_numpy(np.ascontiguousarray(x))
    assert job.pair == "minibatch_ot", job.pair
    permutation = hamming_ot_permutation if data.text else ot_permutation
    idx = []
    for b, rows in enumerate(_ot_rows(job, chunk, len(xt), data.n_ref)):
        xb = xt[b * job.block:b * job.block + len(rows)]
        idx.append(rows[permutation(xb, data[rows]).numpy()])
    return np.concatenate(idx).astype(np.int64)


def _drafts(job: ShardJob) -> int:
    return job.count


def generate_drafts(ctx: StageContext) -> StageResult:
    cfg = ctx.config
    sh = cfg.shards
    draft_path = ctx.inputs["pretrain_draft"] / "draft.npz"
    draft_sha = sha256_file(draft_path)
    # Shard seeds are disjoint from the seeds that evaluation samples with.
    jobs = [ShardJob(str(draft_path), str(ctx.out), i, sh.per_shard,
                     seed=cfg.seed * 1_000_003 + 1_000 + i, draft_sha256=draft_sha,
                     block=sh.block, pair=sh.pair,
                     data_dir=str(ctx.inputs["prepare_data"]) if sh.pair != "none" else "",
                     nearest_pool=sh.nearest_pool, nearest_index=sh.nearest_index,
                     nearest_nprobe=sh.nearest_nprobe,
                     files=ctx.files, node_id=ctx.runtime.node_id)
            for i in range(sh.num_shards)]
    _remove_temporaries(ctx.out)
    if isinstance(ctx.files, LocalFiles):  # shards land in ctx.out (not through a store)
        _check_space(ctx, jobs, load_draft(draft_path).dim)
    start = time.perf_counter()
    try:
        results = ctx.runtime.map(make_shard, jobs, desc="generate_drafts", unit="shards",
                                  work=_drafts, work_unit="drafts")
    finally:
        _remove_temporaries(ctx.out)  # left by tasks whose worker died mid-write
    seconds = time.perf_counter() - start
    records = [r.record for r in results]
    assert records == [read_stats(ctx.out, job.index) for job in jobs], \
        "stats records differ from the tasks' results"
    write_manifest(ctx.out, records)
    repaired = [r.repaired for r in results if r.repaired]
    for line in repaired:
        print(f"generate_drafts: made again: {line}", flush=True)
    made = [r.record for r in results if not r.reused]
    written = sum(r.count for r in made)
    size = sum(r.bytes for r in made)
    metrics = {"drafts": sum(r.count for r in records), "bytes": sum(r.bytes for r in records),
               "shards_written": len(made), "shards_reused": len(results) - len(made),
               "shards_repaired": len(repaired), "seconds": seconds,
               "drafts_per_s": written / seconds, "mb_per_s": size / 1e6 / seconds}
    names = [line.split(":", 1)[0] for line in repaired]
    tags = {"shards_repaired": ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")}
    return StageResult(metrics=metrics, tags=tags if names else {})


def _check_space(ctx: StageContext, jobs: list[ShardJob], dim: int) -> None:
    """Refuse before any work when the shards still to write do not fit (``wsfm.space``); a
    shard an earlier attempt finished (its record and a tar of the recorded size) needs none."""
    sh = ctx.config.shards

    def finished(job: ShardJob) -> bool:
        old, tar = read_stats(ctx.out, job.index), ctx.out / shard_name(job.index)
        return (old is not None and old.count == job.count and tar.is_file()
                and tar.stat().st_size == old.bytes)

    todo = [job for job in jobs if not finished(job)]
    dtype = np.int64 if ctx.config.data.is_text else np.float32
    need = sum(shard_bytes(job.count, dim, dtype=dtype, paired=job.pair != "none",
                           block=job.block, index=job.index) for job in todo)
    require_space({str(ctx.out): need},
                  f"generate_drafts ({len(todo)} shards of {sh.per_shard:,} drafts)")


def _remove_temporaries(folder: Path) -> None:
    for tmp in Path(folder).glob(".shard-*.tmp-*"):
        tmp.unlink(missing_ok=True)
