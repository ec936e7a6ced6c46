"""The prepared dataset (``wsfm.data.prepared``): what ``prepare_data`` writes is what the
source's loader gives, row for row, in plain WebDataset tars whose bytes the seed decides."""

import numpy as np
import pytest
import webdataset as wds

from wsfm.config import DataConfig
from wsfm.data.datasets import load_dataset
from wsfm.data.prepared import (
    SPLITS,
    PreparedData,
    describe_prepared,
    load_prepared,
    shard_rows,
    write_prepared,
)
from wsfm.errors import DataError
from wsfm.shards import read_manifest

KINDS = [DataConfig(kind="toy2d", n_train=3000, n_test=500),
         DataConfig(kind="digits", seed=2),
         DataConfig(kind="words", top_n=300)]


def _same(a, b) -> None:
    assert (a.kind, a.shape, a.text) == (b.kind, b.shape, b.text)
    for name in ("train", "test", "reference", "labels", "test_labels"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), name


@pytest.mark.parametrize("cfg", KINDS, ids=lambda c: c.kind)
def test_what_is_read_back_is_what_the_loader_gave(tmp_path, cfg):
    data = load_dataset(cfg)
    write_prepared(data, tmp_path)
    _same(load_prepared(tmp_path), data)


def test_split_into_several_shards_keeps_every_row_in_order(tmp_path):
    data = load_dataset(DataConfig(kind="toy2d", n_train=5000, n_test=300))
    per = shard_rows(2, 4, shard_bytes=2048 * 2 * 4)
    assert per == 2048
    about = write_prepared(data, tmp_path, shard_bytes=2048 * 2 * 4)
    assert about["splits"]["train"]["shards"] == 3  # 2048 + 2048 + 904 rows
    assert [r.count for r in read_manifest(tmp_path / "train")] == [2048, 2048, 904]
    _same(load_prepared(tmp_path), data)


def test_the_bytes_are_decided_by_the_source_and_seed(tmp_path):
    cfg = DataConfig(kind="digits", seed=5)
    write_prepared(load_dataset(cfg), tmp_path / "a")
    write_prepared(load_dataset(cfg), tmp_path / "b")
    write_prepared(load_dataset(DataConfig(kind="digits", seed=6)), tmp_path / "c")
    sums = {run: [r.sha256 for s in SPLITS for r in read_manifest(tmp_path / run / s)]
            for run in "abc"}
    assert sums["a"] == sums["b"] and sums["a"] != sums["c"]


def test_the_shards_are_plain_webdataset_tars(tmp_path):
    data = load_dataset(DataConfig(kind="digits"))
    write_prepared(data, tmp_path)
    urls = [str(tmp_path / "train" / r.shard) for r in read_manifest(tmp_path / "train")]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode())
    assert np.array_equal(np.concatenate([s["x.npy"] for s in samples]), data.train)
    assert np.array_equal(np.concatenate([s["y.npy"] for s in samples]), data.labels)


def test_a_damaged_shard_is_named(tmp_path):
    write_prepared(load_dataset(DataConfig(kind="toy2d", n_train=2000, n_test=100)), tmp_path)
    shard = tmp_path / "test" / "shard-000000.tar"
    raw = bytearray(shard.read_bytes())
    raw[1024] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=f"{shard}: sha256 differs"):
        load_prepared(tmp_path)


def test_no_prepared_dataset_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no prepared dataset"):
        load_prepared(tmp_path)


@pytest.mark.parametrize("cfg", KINDS, ids=lambda c: c.kind)
def test_the_description_reads_no_shard(tmp_path, cfg):
    """What a network or a bundle needs (kind, shape, text, width, dtype), with every shard
    gone: no row is read."""
    data = load_dataset(cfg)
    write_prepared(data, tmp_path)
    for tar in tmp_path.rglob("*.tar"):
        tar.unlink()
    about = describe_prepared(tmp_path)
    assert (about.kind, about.shape, about.text, about.dim) == (
        data.kind, data.shape, data.text, data.dim)
    assert len(about.train) == len(about.test) == len(about.reference) == 0
    assert about.train.dtype == data.train.dtype
    assert (about.labels is None) == (data.labels is None)


def _several_shards(tmp_path):
    """toy2d (no labels), its training split in 3 shards of 2048 + 2048 + 904 rows."""
    data = load_dataset(DataConfig(kind="toy2d", n_train=5000, n_test=300))
    write_prepared(data, tmp_path, shard_bytes=2048 * 2 * 4)
    return data


def test_take_gives_the_rows_asked_for_in_their_order(tmp_path):
    data = _several_shards(tmp_path)
    prepared = PreparedData(tmp_path)
    index = np.array([4999, 0, 2048, 2047, 0, 3000])  # across shards, unsorted, a repeat
    x, y = prepared.take("train", index)
    assert y is None and x.dtype == np.float32
    assert np.array_equal(x, data.train[index])
    assert np.array_equal(prepared.take("test", np.arange(0))[0], data.test[:0])
    assert np.array_equal(prepared.head("reference", 10), data.reference[:10])
    assert np.array_equal(prepared.head("test", 10 ** 6), data.test)
    with pytest.raises(IndexError, match="5000"):
        prepared.take("train", np.array([5000]))


def test_take_keeps_labels_with_their_rows(tmp_path):
    data = load_dataset(DataConfig(kind="digits", seed=2))
    write_prepared(data, tmp_path, shard_bytes=1024 * 64 * 4)
    prepared = PreparedData(tmp_path)
    index = np.random.default_rng(0).choice(len(data.train), 300, replace=False)
    x, y = prepared.take("train", index)
    assert np.array_equal(x, data.train[index]) and np.array_equal(y, data.labels[index])


def test_sample_is_the_seeded_subset_of_the_split(tmp_path):
    from wsfm.flow.search import seeded_subset

    data = _several_shards(tmp_path)
    prepared = PreparedData(tmp_path)
    rows = seeded_subset(5000, 700, [3, 17])
    assert np.array_equal(prepared.sample("train", 700, [3, 17])[0], data.train[rows])
    assert np.array_equal(prepared.sample("train", 10 ** 6, 0)[0], data.train)


def test_take_reads_only_the_shards_that_hold_a_wanted_row(tmp_path):
    data = _several_shards(tmp_path)
    last = tmp_path / "train" / "shard-000002.tar"
    last.write_bytes(last.read_bytes()[:-1] + b"\1")
    prepared = PreparedData(tmp_path)
    assert np.array_equal(prepared.take("train", np.arange(4096))[0], data.train[:4096])
    with pytest.raises(DataError, match="shard-000002.tar"):
        prepared.take("train", np.array([4096]))


def test_a_row_table_gathers_the_rows_in_place(tmp_path, monkeypatch):
    """Records across 3 shards give the rows the loader gave, in any order and with
    repeats, reading the bytes of the rows asked for and no more: one read per run of
    consecutive rows of a record."""
    import os
    import pickle

    from wsfm.data import prepared

    data = _several_shards(tmp_path)
    table = PreparedData(tmp_path).table("train")
    assert len(table) == 5000 and table.shape == (5000, 2)
    reads = []
    real = os.pread
    monkeypatch.setattr(prepared.os, "pread", lambda fd, n, at: reads.append(n) or real(fd, n, at))
    index = np.random.default_rng(0).integers(5000, size=700)
    got = table.take(index)
    assert got.dtype == np.float32 and np.array_equal(got, data.train[index])
    assert sum(reads) == len(np.unique(index)) * 2 * 4  # the distinct rows' bytes
    reads.clear()
    assert np.array_equal(table.take(np.arange(5000)), data.train)
    assert len(reads) == len(table._where)  # every record read whole, once
    assert np.array_equal(pickle.loads(pickle.dumps(table)).take(index), data.train[index])
    with pytest.raises(IndexError):
        table.take(np.array([5000]))


def test_a_row_table_names_a_damaged_shard(tmp_path):
    _several_shards(tmp_path)
    shard = tmp_path / "train" / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes()[:-1] + b"\1")
    with pytest.raises(DataError, match="shard-000001.tar"):
        PreparedData(tmp_path).table("train")
