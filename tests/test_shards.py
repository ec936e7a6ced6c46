import hashlib

import numpy as np
import pyarrow.parquet as pq
import webdataset as wds

from wsfm.shards import (MANIFEST, read_manifest, shard_batches, verify_shards, write_manifest,
                         write_shard)


def make_shards(folder, sizes, dim=3):
    arrays = [np.random.default_rng(i).normal(size=(n, dim)).astype(np.float32)
              for i, n in enumerate(sizes)]
    records = [write_shard(folder, i, x, seed=i, block=16) for i, x in enumerate(arrays)]
    write_manifest(folder, records)
    return arrays


def test_manifest_matches_the_files(tmp_path):
    make_shards(tmp_path, [40, 7, 33])
    table = pq.read_table(tmp_path / MANIFEST).to_pylist()
    assert [r["shard"] for r in table] == ["shard-000000.tar", "shard-000001.tar",
                                           "shard-000002.tar"]
    for row in table:
        data = (tmp_path / row["shard"]).read_bytes()
        assert row["bytes"] == len(data)
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
    assert [r["count"] for r in table] == [40, 7, 33]
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind
    assert verify_shards(tmp_path) == []


def test_plain_webdataset_reads_every_draft_back(tmp_path):
    arrays = make_shards(tmp_path, [40, 7])
    urls = [str(tmp_path / r.shard) for r in read_manifest(tmp_path)]
    keys, blocks = [], []
    for sample in wds.WebDataset(urls, shardshuffle=False).decode():
        keys.append(sample["__key__"])
        blocks.append(sample["x.npy"])
    assert len(set(keys)) == len(keys) and all("." not in k for k in keys)
    np.testing.assert_array_equal(np.concatenate(blocks), np.concatenate(arrays))


def test_verify_names_a_truncated_shard(tmp_path):
    make_shards(tmp_path, [40, 40])
    bad = tmp_path / "shard-000001.tar"
    bad.write_bytes(bad.read_bytes()[:1000])
    problems = verify_shards(tmp_path)
    assert len(problems) == 1 and "shard-000001.tar" in problems[0]


def test_reader_splits_by_rank_and_yields_equal_batches(tmp_path):
    arrays = make_shards(tmp_path, [50, 13, 29])  # uneven and odd in number
    urls = [str(tmp_path / r.shard) for r in read_manifest(tmp_path)]
    seen = []
    for rank in range(2):
        stream = shard_batches(urls, 8, rank=rank, world_size=2, seed=0, shuffle_buffer=16)
        batches = [next(stream) for _ in range(30)]  # more than the data: resampled, no end
        assert all(b.shape == (8, 3) for b in batches)
        seen.append({tuple(row.tolist()) for b in batches for row in b})
    rank0 = {tuple(r.tolist()) for i in (0, 2) for r in arrays[i]}
    rank1 = {tuple(r.tolist()) for r in arrays[1]}
    assert seen[0] <= rank0 and seen[1] <= rank1  # shard-level split: no overlap
