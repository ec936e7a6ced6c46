"""Users' vectors in Parquet (wsfm.data.parquet): the values come back as written, the split
depends on each row's key alone, and each kind of bad row is named by file and row."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import png_bytes, png_folder, row_set
from wsfm.config import DataConfig
from wsfm.data.datasets import load_dataset
from wsfm.data.parquet import hash_split
from wsfm.errors import DataError, InputNotFound


def write(path, x, *, key=None, column="x", type_=None, **extra):
    cols = {column: pa.array([list(r) if r is not None else None for r in x],
                             type=type_ or pa.list_(pa.float32()))}
    if key is not None:
        cols["id"] = pa.array(key)
    cols.update(extra)
    pq.write_table(pa.table(cols), path)
    return path


def rows(n=200, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def cfg(path, **kw):
    return DataConfig(kind="parquet", path=str(path), column="x", **kw)


as_set = row_set


def test_every_row_comes_back_once_on_one_side_of_the_split(tmp_path):
    x = rows()
    data = load_dataset(cfg(write(tmp_path / "a.parquet", x), test_fraction=0.25))
    assert data.kind == "vector" and data.shape == (5,) and data.train.dtype == np.float32
    assert as_set(data.train) | as_set(data.test) == as_set(x)
    assert not as_set(data.train) & as_set(data.test)
    assert 20 < len(data.test) < 80  # 25% of 200 in expectation (binomial sd 6)
    assert as_set(data.reference) <= as_set(data.train)


def test_the_split_follows_the_key_not_the_files_or_their_order(tmp_path):
    """The same keyed rows as one file, or as three files in another order, split the same;
    another seed splits otherwise."""
    x, ids = rows(300), [f"s{i}" for i in range(300)]
    one = load_dataset(cfg(write(tmp_path / "one.parquet", x, key=ids), key="id"))
    parts = tmp_path / "parts"
    parts.mkdir()
    order = np.random.default_rng(1).permutation(300)
    for j, chunk in enumerate(np.array_split(order, 3)):
        write(parts / f"p{2 - j}.parquet", x[chunk], key=[ids[i] for i in chunk])
    three = load_dataset(cfg(parts, key="id"))
    assert as_set(one.test) == as_set(three.test) and as_set(one.train) == as_set(three.train)
    other = load_dataset(cfg(tmp_path / "one.parquet", key="id", seed=1))
    assert as_set(other.test) != as_set(one.test)


def test_hash_split_holds_out_the_asked_share_and_is_deterministic():
    keys = [f"k{i}" for i in range(20_000)]
    test = hash_split(keys, 0.2, seed=0)
    assert abs(test.mean() - 0.2) < 0.015  # binomial sd 0.0028
    assert (hash_split(keys[::-1], 0.2, seed=0) == test[::-1]).all()


def test_a_glob_and_integer_and_fixed_size_lists_are_read(tmp_path):
    x = np.arange(60, dtype=np.int64).reshape(20, 3)
    write(tmp_path / "a.parquet", x[:10], type_=pa.list_(pa.int64()))
    write(tmp_path / "b.parquet", x[10:], type_=pa.list_(pa.float64(), 3))
    data = load_dataset(cfg(tmp_path / "*.parquet", test_fraction=0.3))
    got = np.concatenate([data.train, data.test])
    assert sorted(map(tuple, got.tolist())) == sorted(map(tuple, x.astype(float).tolist()))


@pytest.mark.parametrize("bad,message", [
    ("column", "no column 'x' (columns: y)"),
    ("type", "column 'x' is string, not a list of numbers"),
    ("null", "row 7: column 'x' is null"),
    ("ragged", "row 12: 4 values, row 0 has 5"),
    ("nan", "row 33: NaN or infinite values"),
    ("null_value", "row 3: a null value in column 'x'"),
])
def test_a_bad_row_is_named_by_file_and_row(tmp_path, bad, message):
    path = tmp_path / "bad.parquet"
    x = [list(r) for r in rows(50)]
    if bad == "column":
        write(path, x, column="y")
    elif bad == "type":
        pq.write_table(pa.table({"x": pa.array(["a"] * 50)}), path)
    elif bad == "null":
        write(path, x[:7] + [None] + x[8:])
    elif bad == "ragged":
        write(path, x[:12] + [x[12][:4]] + x[13:])
    elif bad == "nan":
        x[33][2] = float("nan")
        write(path, x)
    else:
        x[3][1] = None
        write(path, x)
    with pytest.raises(DataError) as err:
        load_dataset(cfg(path))
    assert str(err.value) == f"{path}: {message}" or str(err.value).startswith(
        f"{path}: {message}")


def test_files_that_disagree_on_the_length_and_keys_that_repeat_are_refused(tmp_path):
    write(tmp_path / "a.parquet", rows(20, 5))
    write(tmp_path / "b.parquet", rows(20, 4))
    with pytest.raises(DataError, match=r"b.parquet: 4 values per row, .*a.parquet has 5"):
        load_dataset(cfg(tmp_path))
    path = write(tmp_path / "k.parquet", rows(20), key=["same"] * 20)
    with pytest.raises(DataError, match="key column 'id' repeats a value"):
        load_dataset(cfg(path, key="id"))


def test_missing_or_empty_sources_and_a_damaged_file(tmp_path):
    with pytest.raises(InputNotFound, match="data file not found"):
        load_dataset(cfg(tmp_path / "nope.parquet"))
    with pytest.raises(InputNotFound, match="no .parquet files in folder"):
        load_dataset(cfg(tmp_path))
    (tmp_path / "x.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="x.parquet: not a readable Parquet file"):
        load_dataset(cfg(tmp_path / "x.parquet"))
    with pytest.raises(ValueError, match="needs 'column'"):
        DataConfig(kind="parquet", path="p")


@pytest.mark.parametrize("channels", [1, 3])
def test_an_image_column_gives_what_an_image_folder_of_the_same_files_gives(tmp_path, channels):
    folder = tmp_path / "folder"
    images, mode = png_folder(folder, 25, channels, 9, 7)
    path = tmp_path / "imgs.parquet"
    pq.write_table(pa.table({"img": pa.array([png_bytes(im, mode) for im in images]),
                             "id": pa.array([f"k{i}" for i in range(25)])}), path)
    size = {"image_size": [5, 4], "channels": channels}
    data = load_dataset(DataConfig(kind="parquet", path=str(path), image_column="img", key="id",
                                   **size))
    folder_data = load_dataset(DataConfig(kind="image_folder", path=str(folder), **size))
    assert data.kind == "image" and data.shape == (channels, 5, 4)
    assert as_set(np.concatenate([data.train, data.test])) == \
        as_set(np.concatenate([folder_data.train, folder_data.test]))


def test_a_bad_image_row_is_named_by_file_and_row(tmp_path):
    good = png_bytes(np.zeros((6, 6), np.uint8), "L")

    def fails(values, match, type_=None):
        path = tmp_path / "imgs.parquet"
        pq.write_table(pa.table({"img": pa.array(values, type=type_)}), path)
        with pytest.raises(DataError, match=match):
            load_dataset(DataConfig(kind="parquet", path=str(path), image_column="img"))

    fails([good] * 12 + [b"not a png"], r"imgs\.parquet: row 12: not a readable image in "
          r"column 'img'")
    fails([good] * 12 + [None], r"row 12: column 'img' is null")
    fails([good] * 12 + [png_bytes(np.zeros((6, 5), np.uint8), "L")],
          r"row 12: an image of mode and size \('L', \(5, 6\)\), row 0 of .*imgs\.parquet is "
          r"\('L', \(6, 6\)\)")
    fails([[1.0, 2.0]] * 12, r"column 'img' is list<.*double>, not binary",
          type_=pa.list_(pa.float64()))
    for both in ({}, {"column": "x", "image_column": "img"}):
        with pytest.raises(ValueError, match="needs 'column' .* or 'image_column'"):
            DataConfig(kind="parquet", path="p", **both)
