import dataclasses
import hashlib
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds

from tests.helpers import DETERMINISTIC, WrappingRuntime, context, manifest_rows, with_shards
from wsfm.data.datasets import load_dataset
from wsfm.drafts import load_draft
from wsfm.orchestrate.local import LocalRuntime
from wsfm.orchestrate.runtime import MapError, RayRuntime
from wsfm.shard_reader import shard_batches
from wsfm.shards import ShardWriter, read_manifest, verify_shards
from wsfm.stages.generate_drafts import CHUNK_BLOCKS, generate_drafts


def blocks_of(path, name="x.npy"):
    samples = list(wds.WebDataset(str(path), shardshuffle=False).decode())
    return [s["__key__"] for s in samples], [s[name] for s in samples]


def test_shards_hold_the_drafts_of_their_seeds(tmp_path, tiny_config, draft_dir, ray_local):
    cfg = with_shards(tiny_config, num_shards=3, per_shard=300, block=16)
    out = tmp_path / "shards"
    runtime = RayRuntime(storage_path=str(tmp_path / "ray"), run_name="t")
    result = generate_drafts(context(cfg, out, runtime, pretrain_draft=draft_dir))

    records = read_manifest(out)
    assert len(records) == 3 and result.metrics["drafts"] == 900
    assert result.metrics["shards_written"] == 3 and result.metrics["shards_reused"] == 0
    assert len({r.seed for r in records}) == 3
    assert verify_shards(out) == []
    draft_sha = hashlib.sha256((draft_dir / "draft.npz").read_bytes()).hexdigest()
    draft = load_draft(draft_dir / "draft.npz")
    keys = []
    for i, rec in enumerate(records):
        assert rec.draft_sha256 == draft_sha and rec.pair == "none" and rec.seconds > 0
        assert json.loads((out / f"shard-{i:06d}.json").read_text()) == dataclasses.asdict(rec)
        # Sampled a chunk of 16 blocks at a time, each chunk with a seed derived from the
        # shard's: 256 + 44 rows.
        seeds = [int(np.random.SeedSequence([rec.seed, c]).generate_state(1)[0]) for c in (0, 1)]
        chunk = 16 * CHUNK_BLOCKS
        expected = np.concatenate([draft.sample(chunk, seeds[0]),
                                   draft.sample(300 - chunk, seeds[1])])
        shard_keys, blocks = blocks_of(out / rec.shard)
        keys += shard_keys
        assert [len(b) for b in blocks] == [16] * 18 + [12]
        np.testing.assert_array_equal(np.concatenate(blocks), expected)
    assert len(set(keys)) == len(keys) and not any("." in k for k in keys)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def _kill_first_attempt(marker: Path, index: int):
    def wrap(fn):
        def shard_or_die(job):
            if job.index == index and not marker.exists():
                marker.write_text(str(os.getpid()))
                # Die in the middle of writing: a real half-written temporary tar is left.
                writer = ShardWriter(Path(job.out_dir), job.index)
                writer.write(np.zeros((7, 2), np.float32))
                writer._fh.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(job)

        return shard_or_die

    return wrap


def test_a_sigkilled_worker_is_retried_and_the_manifest_is_right(tmp_path, tiny_config,
                                                                 draft_dir, ray_local):
    cfg = with_shards(tiny_config, num_shards=5, per_shard=400)
    reference = tmp_path / "reference"
    generate_drafts(context(cfg, reference, LocalRuntime(), pretrain_draft=draft_dir))

    out, marker = tmp_path / "shards", tmp_path / "killed"
    ray_runtime = RayRuntime(storage_path=str(tmp_path / "ray"), run_name="t", max_retries=2)
    runtime = WrappingRuntime(ray_runtime, _kill_first_attempt(marker, index=3))
    result = generate_drafts(context(cfg, out, runtime, pretrain_draft=draft_dir))

    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker really died
    assert result.metrics["shards_written"] == 5 and result.metrics["drafts"] == 2000
    assert verify_shards(out) == []
    assert manifest_rows(out) == manifest_rows(reference)  # same bytes, same sha256
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # the torn tar is gone


def test_a_shard_that_keeps_failing_fails_the_stage_and_the_rerun_resumes(
        tmp_path, tiny_config, draft_dir, ray_local):
    cfg = with_shards(tiny_config, num_shards=4, per_shard=300)
    reference = tmp_path / "reference"
    generate_drafts(context(cfg, reference, LocalRuntime(), pretrain_draft=draft_dir))

    def always_fails_on_2(fn):
        def shard(job):
            if job.index == 2:
                raise OSError("disk on fire")
            return fn(job)
        return shard

    out = tmp_path / "shards"
    ray_runtime = RayRuntime(storage_path=str(tmp_path / "ray"), run_name="t", max_retries=1)
    with pytest.raises(MapError, match=r"shard-000002\.tar \(seed 1002\): OSError: disk on fire"):
        generate_drafts(context(cfg, out, WrappingRuntime(ray_runtime, always_fails_on_2),
                                pretrain_draft=draft_dir))
    assert sorted(p.name for p in out.glob("shard-*.tar")) == [
        "shard-000000.tar", "shard-000001.tar", "shard-000003.tar"]  # the others finished

    result = generate_drafts(context(cfg, out, ray_runtime, pretrain_draft=draft_dir))
    assert result.metrics["shards_reused"] == 3 and result.metrics["shards_written"] == 1
    assert manifest_rows(out) == manifest_rows(reference)
    # the runtime names the node inside each Ray task (the stage itself imports no Ray)
    assert all(row["node"] for row in manifest_rows(out, ["node"]))


def test_rerun_redoes_only_missing_and_invalid_shards(tmp_path, tiny_config, draft_dir, capsys):
    cfg = with_shards(tiny_config, num_shards=5, per_shard=300)
    out = tmp_path / "shards"
    generate_drafts(context(cfg, out, LocalRuntime(), pretrain_draft=draft_dir))
    before = manifest_rows(out, DETERMINISTIC + ["seconds"])
    truncated = out / "shard-000001.tar"
    truncated.write_bytes(truncated.read_bytes()[:-700])
    (out / "shard-000002.json").unlink()  # a crash between the rename and the stats record
    (out / "shard-000004.tar").unlink()
    (out / ".shard-000004.tar.tmp-999").write_bytes(b"torn")

    result = generate_drafts(context(cfg, out, LocalRuntime(), pretrain_draft=draft_dir))
    assert result.metrics["shards_written"] == 3 and result.metrics["shards_reused"] == 2
    assert result.tags["shards_repaired"] == (
        "shard-000001.tar, shard-000002.tar, shard-000004.tar")
    printed = capsys.readouterr().out
    assert "made again: shard-000001.tar:" in printed and "bytes, expected" in printed
    after = manifest_rows(out, DETERMINISTIC + ["seconds"])
    assert [r.pop("seconds") for r in after][0] == before[0]["seconds"]  # shard 0 was kept
    assert after == [{k: v for k, v in r.items() if k != "seconds"} for r in before]
    assert verify_shards(out) == []
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_nearest_pairing_stores_each_drafts_nearest_training_row(tmp_path, tiny_config,
                                                               draft_dir):
    cfg = with_shards(tiny_config, num_shards=2, per_shard=150, block=32, pair="nearest")
    out = tmp_path / "shards"
    generate_drafts(context(cfg, out, LocalRuntime(), pretrain_draft=draft_dir))
    train = load_dataset(cfg.data).train.astype(np.float64)
    for rec in read_manifest(out):
        assert rec.pair == "nearest"
        _, xs = blocks_of(out / rec.shard)
        _, idx = blocks_of(out / rec.shard, "idx.npy")
        x, idx = np.concatenate(xs).astype(np.float64), np.concatenate(idx)
        d = ((x[:, None, :] - train[None, :, :]) ** 2).sum(-1)  # brute force, in numpy
        np.testing.assert_allclose(d[np.arange(len(x)), idx], d.min(axis=1), rtol=1e-9)


def _pairs(out):
    """Each shard's drafts (n, 2) float64 and partners (n,), by shard name."""
    pairs = {}
    for rec in read_manifest(out):
        _, xs = blocks_of(out / rec.shard)
        _, idx = blocks_of(out / rec.shard, "idx.npy")
        pairs[rec.shard] = np.concatenate(xs).astype(np.float64), np.concatenate(idx)
    return pairs


def test_pooled_nearest_pairing_finds_the_nearest_row_of_each_shards_pool(tmp_path, tiny_config,
                                                                         draft_dir):
    cfg = with_shards(tiny_config, num_shards=2, per_shard=300, block=32, pair="nearest",
                      nearest_pool=60)
    out = tmp_path / "shards"
    generate_drafts(context(cfg, out, LocalRuntime(), pretrain_draft=draft_dir))
    train = load_dataset(cfg.data).train.astype(np.float64)
    used = []
    for x, idx in _pairs(out).values():
        rows = np.unique(idx)  # a subset of the shard's pool of 60
        assert len(rows) <= 60
        d = ((x[:, None, :] - train[None, rows, :]) ** 2).sum(-1)
        # nearest in the pool, so nearest among the partners the pool gave up
        np.testing.assert_allclose(((x - train[idx]) ** 2).sum(-1), d.min(axis=1), rtol=1e-9)
        used.append(set(rows.tolist()))
    assert used[0] != used[1]  # each shard draws its own pool


def test_ivf_nearest_pairing_is_remade_with_the_same_bytes(tmp_path, tiny_config, draft_dir):
    cfg = with_shards(tiny_config, num_shards=1, per_shard=400, block=32, pair="nearest",
                      nearest_index="ivf", nearest_nprobe=2)
    runs = []
    for name in ("a", "b"):
        generate_drafts(context(cfg, tmp_path / name, LocalRuntime(), pretrain_draft=draft_dir))
        runs.append(manifest_rows(tmp_path / name, ["shard", "sha256"]))
    assert runs[0] == runs[1]
    train = load_dataset(cfg.data).train.astype(np.float64)
    (x, idx), = _pairs(tmp_path / "a").values()
    d = ((x[:, None, :] - train[None, :, :]) ** 2).sum(-1)
    found = d[np.arange(len(x)), idx]
    assert (found >= d.min(axis=1) - 1e-9).all()  # approximate: never nearer than exact


def test_minibatch_ot_pairing_is_a_optimal_matching_per_block(tmp_path, tiny_config, draft_dir):
    cfg = with_shards(tiny_config, num_shards=2, per_shard=100, block=25, pair="minibatch_ot")
    out = tmp_path / "shards"
    generate_drafts(context(cfg, out, LocalRuntime(), pretrain_draft=draft_dir))
    train = load_dataset(cfg.data).train.astype(np.float64)
    urls = []
    for rec in read_manifest(out):
        urls.append(str(out / rec.shard))
        _, xs = blocks_of(out / rec.shard)
        _, idxs = blocks_of(out / rec.shard, "idx.npy")
        for x, idx in zip(xs, idxs):
            assert len(set(idx.tolist())) == len(idx)  # a matching: distinct training rows
            c = ((x.astype(np.float64)[:, None] - train[idx][None]) ** 2).sum(-1)  # c[i, j]
            # Optimal => no two drafts gain by swapping partners (2-opt).
            gain = np.diag(c)[:, None] + np.diag(c)[None, :] - c - c.T
            assert gain.max() <= 1e-9
    for x, idx in shard_batches(urls, 20, epoch_batches=3, with_index=True):
        assert x.shape == (20, 2) and idx.shape == (20,)


@pytest.mark.parametrize("pair, read", [("minibatch_ot", 100), ("nearest", 60)])
def test_a_shard_task_reads_only_the_training_rows_it_pairs_with(tmp_path, tiny_config,
                                                                  draft_dir, monkeypatch, pair,
                                                                  read):
    """At most a row per draft (minibatch OT) or the pool (nearest), not the split; the
    partners are those that pairing against the whole split in memory gives."""
    from wsfm.data.prepared import PreparedData
    from wsfm.flow.search import nearest_pool_rows
    from wsfm.stages.generate_drafts import PairRows, ShardJob, _partners

    cfg = with_shards(tiny_config, num_shards=2, per_shard=100, block=25, pair=pair,
                      nearest_pool=60)
    taken = []
    take = PreparedData.take

    def counting(self, split, index=None):
        taken.append(self.rows(split) if index is None else len(index))
        return take(self, split, index)

    monkeypatch.setattr(PreparedData, "take", counting)
    out = tmp_path / "shards"
    generate_drafts(context(cfg, out, LocalRuntime(), pretrain_draft=draft_dir))
    assert len(taken) == 2 and max(taken) <= read < 2000  # of 2,000 training rows
    train = torch.from_numpy(load_dataset(cfg.data).train)
    whole = PairRows(train, None, len(train), text=False)
    for i, (x, idx) in enumerate(_pairs(out).values()):
        job = ShardJob("", "", i, 100, seed=cfg.seed * 1_000_003 + 1_000 + i, block=25,
                             pair=pair, nearest_pool=60)
        if pair == "nearest":  # the pool drawn from the whole split, searched by brute force
            rows = nearest_pool_rows(len(train), 60, [job.seed, 3])
            d = ((x[:, None, :] - train[rows].double().numpy()[None]) ** 2).sum(-1)
            expect = rows[d.argmin(axis=1)]
        else:  # one chunk of 100 drafts
            expect = _partners(x.astype(np.float32), whole, job, chunk=0)
        np.testing.assert_array_equal(idx, expect)


@pytest.mark.parametrize("pair", ["nearest", "minibatch_ot"])
def test_text_drafts_are_paired_by_hamming_distance(pair):
    from wsfm.stages.generate_drafts import PairRows, ShardJob, _partners

    rng = np.random.default_rng(0)
    words = rng.integers(0, 5, size=(60, 6))  # (N, L) character codes, many near ties
    drafts = rng.integers(0, 5, size=(40, 6))  # int64 codes, as text drafts are
    job = ShardJob("", "", 0, 40, seed=1, block=20, pair=pair)
    rows = PairRows(torch.from_numpy(words), None, 60, text=True)  # codes, as _chunks gives
    idx = _partners(drafts, rows, job, chunk=0)
    hamming = (drafts[:, None, :].astype(int) != words[None, :, :]).sum(-1)  # (40, 60)
    if pair == "nearest":
        np.testing.assert_array_equal(hamming[np.arange(40), idx], hamming.min(axis=1))
    else:
        for b in range(2):  # per block: a matching no swap of two partners improves
            rows = slice(20 * b, 20 * b + 20)
            c = hamming[rows][:, idx[rows]]
            assert len(set(idx[rows].tolist())) == 20
            gain = np.diag(c)[:, None] + np.diag(c)[None, :] - c - c.T
            assert gain.max() <= 0


@pytest.mark.parametrize("kind", ["window_ngram", "window_gru"])
def test_substitute_shards_hold_real_windows_and_the_drafts_substitutes(tmp_path, kind):
    """pair substitute (prose): each stored draft is the draft model's substitutes of the
    training window its partner index names: the same shape, characters of the alphabet,
    agreeing with the real window far more often than chance; a shard remade is the same."""
    from wsfm.components import build_draft
    from wsfm.config import DataConfig, DraftConfig
    from wsfm.stages.generate_drafts import ShardJob, make_shard

    data_cfg = DataConfig(kind="prose", max_len=16, stride=64)
    from wsfm.data.prepared import write_prepared

    train = load_dataset(data_cfg).train
    write_prepared(load_dataset(data_cfg), tmp_path / "prepared")
    draft = build_draft(DraftConfig(kind=kind, order=4, hidden=32, steps=150), seed=0)
    draft.fit(train).save(tmp_path / "draft.npz")
    digests = []
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        out.mkdir()
        job = ShardJob(str(tmp_path / "draft.npz"), str(out), 0, 300, seed=7, block=50,
                       pair="substitute", data_dir=str(tmp_path / "prepared"))
        shard = out / make_shard(job).record.shard
        digests.append(hashlib.sha256(shard.read_bytes()).hexdigest())
    _, xs = blocks_of(shard)
    _, idxs = blocks_of(shard, "idx.npy")
    x, idx = np.concatenate(xs), np.concatenate(idxs)
    real = train[idx]
    assert x.shape == real.shape == (300, 16) and x.dtype == np.int64
    assert 1 <= x.min() and x.max() <= train.max()
    same = (x == real).mean()
    assert 0.1 < same < 1.0  # chance is about 1/95: the substitutes follow the real context
    assert digests[0] == digests[1]
