"""Users' npy arrays and image folders streamed a block at a time
(``wsfm.data.file_sources``): the rows the whole file gives, each split by its key."""

import numpy as np
import pytest
from PIL import Image

from wsfm.config import DataConfig
from wsfm.data.base import hash_split
from wsfm.data.datasets import load_dataset
from wsfm.data.file_sources import image_folder_blocks, npy_blocks
from wsfm.errors import DataError


def test_npy_blocks_are_the_array_as_float32_a_block_at_a_time(tmp_path):
    x = np.asfortranarray(np.random.default_rng(0).normal(size=(103, 5)))  # float64, F order
    np.save(tmp_path / "rows.npy", x)
    cfg = DataConfig(kind="npy", path=str(tmp_path / "rows.npy"))
    blocks = list(npy_blocks(cfg, block_bytes=8 * 5 * 4))  # 8 float32 rows
    assert [len(b) for b, _ in blocks] == [8] * 12 + [7]
    rows = np.concatenate([b for b, _ in blocks])
    assert rows.dtype == np.float32 and np.array_equal(rows, x.astype(np.float32))
    assert [k for _, keys in blocks for k in keys] == [f"rows.npy:{i}" for i in range(103)]


def test_npy_rows_are_held_out_by_their_key(tmp_path):
    """The split is the key hash's (row i: ``rows.npy:i``), not a shuffle of the indices."""
    x = np.arange(400, dtype=np.float32).reshape(200, 2)
    np.save(tmp_path / "rows.npy", x)
    data = load_dataset(DataConfig(kind="npy", path=str(tmp_path / "rows.npy"), seed=4))
    held = hash_split([f"rows.npy:{i}" for i in range(200)], 0.2, 4)
    assert np.array_equal(data.test, x[held]) and np.array_equal(data.train, x[~held])


def test_a_bad_row_in_a_later_block_is_named_by_its_row(tmp_path):
    x = np.ones((60, 3), np.float32)
    x[37, 2] = np.inf
    np.save(tmp_path / "bad.npy", x)
    cfg = DataConfig(kind="npy", path=str(tmp_path / "bad.npy"))
    blocks = npy_blocks(cfg, block_bytes=10 * 3 * 4)
    for _ in range(3):  # rows 0..29 are good
        next(blocks)
    with pytest.raises(DataError, match=r"bad.npy: row 37: NaN or infinite"):
        list(blocks)


@pytest.mark.parametrize("write, what", [
    (lambda p: np.savez(p, x=np.ones((20, 2))), "npz"),
    (lambda p: np.save(p, np.array([[object()]] * 20), allow_pickle=True), "numeric"),
    (lambda p: np.save(p, np.array([["a", "b"]] * 20)), "not numeric"),
])
def test_what_is_not_a_numeric_array_is_refused_by_name(tmp_path, write, what):
    path = tmp_path / "x.npy"
    with open(path, "wb") as fh:
        write(fh)
    with pytest.raises(DataError, match=what) as err:
        next(npy_blocks(DataConfig(kind="npy", path=str(path))))
    assert str(path) in str(err.value)


def _images(folder, names, mode="L", size=(6, 4)):
    rng = np.random.default_rng(0)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / name)


def test_image_folder_blocks_are_keyed_by_the_relative_path(tmp_path):
    names = [f"{d}/img{i}.png" for d in ("b", "a/deep") for i in range(6)]
    _images(tmp_path, names)
    cfg = DataConfig(kind="image_folder", path=str(tmp_path), image_size=[4, 6])
    blocks = list(image_folder_blocks(cfg, block=5))
    assert [len(b) for b, _ in blocks] == [5, 5, 2]
    keys = [k for _, ks in blocks for k in ks]
    assert keys == sorted(names)  # sorted by path, relative, with "/" on every system
    first = np.concatenate([b for b, _ in blocks])[0]
    with Image.open(tmp_path / keys[0]) as img:
        expected = np.asarray(img.convert("L").resize((6, 4), Image.Resampling.BILINEAR))
    assert np.allclose(first, expected.reshape(-1) / 127.5 - 1.0)


def test_an_image_of_another_mode_in_a_later_block_names_both_files(tmp_path):
    _images(tmp_path, [f"img{i:02d}.png" for i in range(11)])
    _images(tmp_path, ["img99.png"], mode="RGB")
    cfg = DataConfig(kind="image_folder", path=str(tmp_path))
    blocks = image_folder_blocks(cfg, block=4)
    next(blocks)
    with pytest.raises(DataError, match=r"mixed modes: img00.png is L, img99.png is RGB"):
        list(blocks)
