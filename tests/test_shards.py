import hashlib
import io

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from tests.helpers import make_shards, urls_of, write_shard
from wsfm.shards import MANIFEST, shard_bytes, shard_key, verify_shards


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


def test_tars_are_what_webdataset_writes_and_reproducible(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    idx = np.arange(50, dtype=np.int64)
    record = write_shard(tmp_path, 0, x, seed=0, block=16, idx=idx, pair="nearest")
    # The reference: webdataset's own TarWriter (fixed mtime) and np.save.
    buf = io.BytesIO()
    with wds.TarWriter(buf, encoder=False, mtime=0) as sink:
        for i, start in enumerate(range(0, 50, 16)):
            sample = {"__key__": shard_key(0, i)}
            for name, a in (("x.npy", x), ("idx.npy", idx)):
                member = io.BytesIO()
                np.save(member, a[start:start + 16])
                sample[name] = member.getvalue()
            sink.write(sample)
    data = (tmp_path / record.shard).read_bytes()
    assert data == buf.getvalue()
    assert (record.bytes, record.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    (tmp_path / "again").mkdir()
    assert write_shard(tmp_path / "again", 0, x, 0, 16, idx=idx, pair="nearest") == record


def test_plain_webdataset_reads_every_draft_back(tmp_path):
    arrays = make_shards(tmp_path, [40, 7], with_index=True)
    keys, blocks, idx = [], [], []
    for sample in wds.WebDataset(urls_of(tmp_path), shardshuffle=False).decode():
        keys.append(sample["__key__"])
        blocks.append(sample["x.npy"])
        idx.append(sample["idx.npy"])
    assert len(set(keys)) == len(keys) and all("." not in k for k in keys)
    x = np.concatenate(arrays)
    np.testing.assert_array_equal(np.concatenate(blocks), x)
    np.testing.assert_array_equal(np.concatenate(idx), np.rint(x[:, 0] * 1000))


def test_verify_names_a_truncated_shard_and_an_unlisted_one(tmp_path):
    make_shards(tmp_path, [40, 40])
    bad = tmp_path / "shard-000001.tar"
    bad.write_bytes(bad.read_bytes()[:1000])
    problems = verify_shards(tmp_path)
    assert len(problems) == 1 and "shard-000001.tar" in problems[0]
    (tmp_path / "shard-000009.tar").write_bytes(b"x")
    assert any("shard-000009.tar" in p and "not in the manifest" in p
               for p in verify_shards(tmp_path))


@pytest.mark.parametrize("count,dim,block,paired,dtype", [
    (1, 2, 256, False, np.float32), (256, 2, 256, False, np.float32),
    (1000, 2, 256, True, np.float32), (777, 64, 100, False, np.float32),
    (300, 16, 256, True, np.int64), (5000, 3, 256, False, np.float64)])
def test_shard_bytes_is_the_size_of_the_tar_the_writer_writes(tmp_path, count, dim, block,
                                                              paired, dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(count, dim)).astype(dtype)
    idx = rng.integers(0, 10, size=count) if paired else None
    record = write_shard(tmp_path, 3, x, seed=0, block=block, idx=idx,
                         pair="nearest" if paired else "none")
    size = (tmp_path / record.shard).stat().st_size
    assert size == record.bytes
    assert shard_bytes(count, dim, dtype=dtype, paired=paired, block=block, index=3) == size
