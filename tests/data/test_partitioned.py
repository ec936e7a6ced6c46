"""A keyed source written by parts (``wsfm.data.partitioned``): the rows of the source
loaded whole, in the same shards whatever runs the parts and in what order, and a bad row,
a mismatch or a repeated key across parts named as one stream would name it."""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import webdataset as wds

from wsfm.config import DataConfig
from wsfm.data import partitioned
from wsfm.data.datasets import load_dataset
from wsfm.data.partitioned import PART_SHARDS, PARTS, prepare_keyed, source_parts
from wsfm.data.prepared import DESCRIPTION, SPLITS, load_prepared
from wsfm.errors import DataError
from wsfm.shards import read_manifest

SMALL = 1024 * 4 * 4  # shard bytes: 1,024 rows of 4 floats


def _files(folder):
    """Every file the preparation wrote, by relative name, and its bytes' sha256; not the
    report of the parts' seconds (``parts.json``)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != PARTS}


def _parquet_source(folder, rows=5000, files=3, dim=4):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(exist_ok=True)
    x = np.random.default_rng(0).normal(size=(rows, dim)).astype(np.float32)
    for i, part in enumerate(np.array_split(x, files)):
        pq.write_table(pa.table({"x": pa.array(part.tolist(), type=pa.list_(pa.float32()))}),
                       folder / f"part-{i}.parquet")
    return DataConfig(kind="parquet", path=str(folder), column="x", test_fraction=0.3)


def _tars(folder, tars):
    """``tars``: per tar, a list of (key, row)."""
    folder.mkdir(exist_ok=True)
    for t, samples in enumerate(tars):
        with wds.TarWriter(str(folder / f"data-{t}.tar")) as sink:
            for key, row in samples:
                sink.write({"__key__": key, "x.npy": row})
    return DataConfig(kind="webdataset", urls=str(folder), key="x.npy", test_fraction=0.3)


def _webdataset_source(folder):
    x = np.random.default_rng(1).normal(size=(3000, 3)).astype(np.float32)
    return _tars(folder, [[(f"s{i:05d}", x[i]) for i in part]
                          for part in np.array_split(np.arange(3000), 2)])


def _npy_source(folder):
    folder.mkdir()
    x = np.random.default_rng(2).normal(size=(5000, 4))  # float64: converted block by block
    np.save(folder / "rows.npy", x)
    return DataConfig(kind="npy", path=str(folder / "rows.npy"), test_fraction=0.3)


def _image_folder_source(folder):
    from PIL import Image

    rng = np.random.default_rng(3)
    for i in range(3000):  # 4x4 grayscale: a 16-wide row
        sub = folder / f"part{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (4, 4), dtype=np.uint8), "L").save(
            sub / f"{i:05d}.png")
    return DataConfig(kind="image_folder", path=str(folder), image_size=[4, 4],
                      test_fraction=0.3)


SOURCES = [_parquet_source, _webdataset_source, _npy_source, _image_folder_source]
IDS = ["parquet", "webdataset", "npy", "image_folder"]


@pytest.fixture
def small_parts(monkeypatch):
    """npy arrays of 1,500 rows (of 4 values) and folders of 700 images per part: several
    parts."""
    monkeypatch.setattr(partitioned, "PART_BYTES", 1500 * 4 * 4)
    monkeypatch.setattr(partitioned, "PART_IMAGES", 700)


def _reversed(fn, items, **_):
    return [fn(item) for item in reversed(items)][::-1]


def _two_threads(fn, items, **_):
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(fn, items))


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_parts_give_the_rows_of_the_source_loaded_whole(tmp_path, source, small_parts,
                                                        monkeypatch):
    """Every split, row for row and in order, is what the loader gives; the reference rows
    are read back 250 at a time."""
    monkeypatch.setattr(partitioned, "REFERENCE_CHUNK", 250)
    cfg = source(tmp_path / "source")
    assert len(source_parts(cfg)) >= 2
    about = prepare_keyed(cfg, tmp_path / "out", shard_bytes=SMALL)
    data, back = load_dataset(cfg), load_prepared(tmp_path / "out")
    assert (back.kind, back.shape) == (data.kind, data.shape)
    for split in SPLITS:
        assert np.array_equal(getattr(back, split), getattr(data, split)), split
        assert about["splits"][split]["rows"] == len(getattr(data, split))
    assert about["splits"]["reference"]["rows"] > 250


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_the_files_do_not_depend_on_what_runs_the_parts(tmp_path, source, small_parts):
    """In order, in reverse, on two threads at once: the same files, byte for byte."""
    cfg = source(tmp_path / "source")
    runs = {}
    for name, run in (("in_order", partitioned._in_order), ("reversed", _reversed),
                      ("threads", _two_threads)):
        prepare_keyed(cfg, tmp_path / name, run=run, shard_bytes=SMALL)
        runs[name] = _files(tmp_path / name)
    assert runs["in_order"] == runs["reversed"] == runs["threads"]
    assert len(runs["in_order"]) > 8  # the shards, their records, manifests, description


def test_each_part_numbers_its_own_shards_in_the_sources_order(tmp_path):
    cfg = _parquet_source(tmp_path / "source", rows=9000, files=3)
    prepare_keyed(cfg, tmp_path / "out", shard_bytes=SMALL)
    names = [r.shard for r in read_manifest(tmp_path / "out" / "train")]
    firsts = sorted({int(n[6:12]) // PART_SHARDS for n in names})
    assert firsts == [0, 1, 2] and names == sorted(names)
    assert "shard-001000.tar" in names and "shard-001001.tar" in names  # part 1: 2 shards
    parts = json.loads((tmp_path / "out" / PARTS).read_text())
    assert [p["items"] for p in parts] == [[0, 1], [1, 2], [2, 3]]
    assert sum(p["rows"]["train"] + p["rows"]["test"] for p in parts) == 9000


def test_a_bad_row_is_named_by_the_first_part_that_meets_one(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cfg = _parquet_source(tmp_path / "source", rows=600, files=3)
    for i, row in ((1, 50), (2, 3)):  # parts 1 and 2 both hold a bad row
        x = np.ones((60, 4), np.float32)
        x[row, 2] = np.nan
        pq.write_table(pa.table({"x": pa.array(x.tolist(), type=pa.list_(pa.float32()))}),
                       tmp_path / "source" / f"part-{i}.parquet")
    with pytest.raises(DataError, match=r"part-1.parquet: row 50: NaN"):
        prepare_keyed(cfg, tmp_path / "out", run=_reversed)
    assert not (tmp_path / "out" / DESCRIPTION).exists()


def test_a_sample_unlike_the_first_is_named_with_the_first(tmp_path):
    """Part 1 checks its samples against the first sample of part 0."""
    x = np.zeros((40, 3), np.float32)
    cfg = _tars(tmp_path / "source", [[(f"a{i:02d}", x[i]) for i in range(20)],
                                      [(f"b{i:02d}", np.zeros(5, np.float32))
                                       for i in range(20)]])
    with pytest.raises(DataError, match=r"data-1.tar: sample 'b00' has length \(5,\), sample "
                                        r"'a00' of .*data-0.tar has \(3,\)"):
        prepare_keyed(cfg, tmp_path / "out")


def test_a_key_repeated_across_parts_is_named_with_both_files(tmp_path):
    x = np.zeros((40, 3), np.float32)
    cfg = _tars(tmp_path / "source", [[(f"a{i:02d}", x[i]) for i in range(20)],
                                      [(f"b{i:02d}", x[i]) for i in range(19)]
                                      + [("a07", x[0])]])
    with pytest.raises(DataError, match=r"data-1.tar: sample key 'a07' repeats \(also in "
                                        r".*data-0.tar\)"):
        prepare_keyed(cfg, tmp_path / "out", run=_two_threads)
    assert not (tmp_path / "out" / DESCRIPTION).exists()


def test_too_few_rows_over_all_parts_is_refused(tmp_path):
    cfg = _parquet_source(tmp_path / "source", rows=8, files=2)
    with pytest.raises(DataError, match="8 rows; need at least 10"):
        prepare_keyed(cfg, tmp_path / "out")
