import numpy as np
import pytest
from PIL import Image

from wsfm.config import DataConfig
from wsfm.data.datasets import load_dataset


def test_digits_split_is_fixed_by_seed_and_disjoint():
    a = load_dataset(DataConfig(kind="digits", seed=3))
    b = load_dataset(DataConfig(kind="digits", seed=3))
    assert np.array_equal(a.test, b.test) and a.shape == (1, 8, 8) and a.dim == 64
    assert len(a.train) + len(a.test) == 1797
    assert a.train.min() >= -1 and a.train.max() <= 1
    train_rows = {r.tobytes() for r in a.train}
    assert len(a.labels) == len(a.train)
    # Every reference row is training data; the test split is held out.
    assert all(r.tobytes() in train_rows for r in a.reference)


def test_npy_user_data(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).normal(size=(100, 3)))
    data = load_dataset(DataConfig(kind="npy", path=str(path)))
    assert data.kind == "vector" and data.dim == 3 and len(data.train) + len(data.test) == 100


@pytest.mark.parametrize("array,message", [
    (np.zeros((10, 2, 2)), "expected an array of shape \\(N, D\\)"),
    (np.zeros((0, 3)), "0 rows"),
    (np.array([[1.0, np.nan]] * 20), "row 0: NaN or infinite values"),
])
def test_npy_validation_names_the_problem_and_the_file(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=message) as err:
        load_dataset(DataConfig(kind="npy", path=str(path)))
    assert str(path) in str(err.value)


def test_missing_user_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        load_dataset(DataConfig(kind="npy", path=str(tmp_path / "nope.npy")))


def write_images(folder, n, mode, size=(16, 12)):
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
            folder / f"img{i:03d}.png")


def test_image_folder_is_resized_and_scaled(tmp_path):
    write_images(tmp_path / "imgs", 20, "L")
    data = load_dataset(DataConfig(kind="image_folder", path=str(tmp_path / "imgs"),
                                   image_size=[8, 6]))
    assert data.kind == "image" and data.shape == (1, 8, 6) and data.dim == 48
    assert data.train.min() >= -1.0 and data.train.max() <= 1.0


def test_image_folder_with_mixed_modes_is_refused(tmp_path):
    write_images(tmp_path / "imgs", 12, "L")
    Image.new("RGB", (16, 12)).save(tmp_path / "imgs" / "zz.png")
    with pytest.raises(ValueError, match="mixed modes.*zz.png is RGB"):
        load_dataset(DataConfig(kind="image_folder", path=str(tmp_path / "imgs")))


def test_image_folder_rejects_unreadable_and_too_few(tmp_path):
    write_images(tmp_path / "imgs", 12, "L")
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png: not a readable image"):
        load_dataset(DataConfig(kind="image_folder", path=str(tmp_path / "imgs")))
    write_images(tmp_path / "few", 3, "L")
    with pytest.raises(ValueError, match="3 images"):
        load_dataset(DataConfig(kind="image_folder", path=str(tmp_path / "few")))


def test_describe_source_reads_a_keyed_sources_first_batch_only(tmp_path):
    """The driver's check before any work: kind, shape and width from the first batch; a bad
    row in a later file is left to prepare_data, which streams every row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from wsfm.data.datasets import describe_source
    from wsfm.errors import DataError

    for i in range(2):
        x = np.ones((30, 6), np.float32)
        x[5, 1] = np.nan if i else 1.0  # the second file has a NaN
        pq.write_table(pa.table({"x": pa.array(x.tolist(), type=pa.list_(pa.float32()))}),
                       tmp_path / f"part-{i}.parquet")
    cfg = DataConfig(kind="parquet", path=str(tmp_path), column="x")
    about = describe_source(cfg)
    assert (about.kind, about.shape, about.dim, len(about.train)) == ("vector", (6,), 6, 0)
    with pytest.raises(DataError, match=r"part-1.parquet: row 5: NaN"):
        load_dataset(cfg)
