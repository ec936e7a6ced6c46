"""Users' samples in WebDataset tars (wsfm.data.webdataset_source), written by WebDataset's own
TarWriter: vectors and images come back as written (images as ``image_folder`` makes them), the
split follows each sample's key, every way of naming the tars finds them, and each kind of bad
sample is named by tar and key."""

import io
import tarfile

import numpy as np
import pytest
import webdataset as wds

from tests.helpers import png_bytes, png_folder, row_set
from wsfm.cli import app as cli
from wsfm.config import DataConfig
from wsfm.data.base import hash_split
from wsfm.data.datasets import load_dataset
from wsfm.errors import DataError, InputNotFound


def write(path, samples):
    """samples: [(key, {extension: value})] -> one tar at path."""
    with wds.TarWriter(str(path)) as sink:
        for key, members in samples:
            sink.write({"__key__": key, **members})
    return path


def vectors(n=60, d=4, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x, [f"s{i:04d}" for i in range(n)]


def cfg(urls, key="x.npy", **kw):
    return DataConfig(kind="webdataset", urls=str(urls), key=key, **kw)


as_set = row_set
png = png_bytes


def test_vectors_come_back_once_each_split_by_their_keys(tmp_path):
    x, keys = vectors()
    for j, part in enumerate(np.array_split(np.arange(60), 3)):
        write(tmp_path / f"data-{j:06d}.tar", [(keys[i], {"x.npy": x[i]}) for i in part])
    data = load_dataset(cfg(tmp_path / "data-{000000..000002}.tar", test_fraction=0.3))
    assert data.kind == "vector" and data.shape == (4,) and data.train.dtype == np.float32
    test = hash_split(keys, 0.3, 0)
    assert as_set(data.test) == as_set(x[test]) and as_set(data.train) == as_set(x[~test])
    assert as_set(data.reference) <= as_set(data.train)


def test_the_same_samples_in_other_tars_and_order_split_the_same(tmp_path):
    x, keys = vectors(90)
    one = load_dataset(cfg(write(tmp_path / "one.tar", [(k, {"npy": r}) for k, r in
                                                        zip(keys, x)]), key="npy"))
    parts = tmp_path / "parts"
    parts.mkdir()
    order = np.random.default_rng(1).permutation(90)
    for j, chunk in enumerate(np.array_split(order, 4)):
        write(parts / f"p{3 - j}.tar", [(keys[i], {"npy": x[i]}) for i in chunk])
    for urls in (parts, parts / "p*.tar", " ".join(str(parts / f"p{j}.tar") for j in range(4))):
        other = load_dataset(cfg(urls, key="npy"))
        assert as_set(other.test) == as_set(one.test)
        assert as_set(other.train) == as_set(one.train)
    assert as_set(load_dataset(cfg(tmp_path / "one.tar", key="npy", seed=1)).test) != \
        as_set(one.test)


@pytest.mark.parametrize("channels", [1, 3])
def test_images_are_what_an_image_folder_of_the_same_files_gives(tmp_path, channels):
    folder = tmp_path / "folder"
    images, mode = png_folder(folder, 30, channels, 12, 10)
    write(tmp_path / "img.tar", [(f"{i:03d}", {"png": png(img, mode), "cls": str(i % 3)})
                                 for i, img in enumerate(images)])
    size = {"image_size": [6, 5], "channels": channels}
    tars = load_dataset(cfg(tmp_path / "img.tar", key="png", **size))
    pngs = load_dataset(DataConfig(kind="image_folder", path=str(folder), **size))
    assert tars.kind == "image" and tars.shape == (channels, 6, 5)
    assert as_set(np.concatenate([tars.train, tars.test])) == \
        as_set(np.concatenate([pngs.train, pngs.test]))
    assert -1.0 <= tars.train.min() and tars.train.max() <= 1.0


def test_each_bad_sample_is_named_by_tar_and_key(tmp_path):
    x, keys = vectors(20)

    def fails(samples, match, key="x.npy"):
        path = write(tmp_path / "bad.tar", [(k, {"x.npy": r}) for k, r in zip(keys, x)]
                     + samples)
        with pytest.raises(DataError, match=match):
            load_dataset(cfg(path, key=key))
        return path

    fails([("odd", {"txt": "hello"})], r"bad\.tar: sample 'odd' has no member 'x\.npy' "
                 r"\(members: txt\)")
    fails([("odd", {"x.npy": b"not an array"})], r"sample 'odd': not a numeric \.npy array")
    fails([("odd", {"x.npy": np.ones((2, 2))})], r"sample 'odd': expected a non-empty 1-D")
    fails([("odd", {"x.npy": np.array([1.0, np.nan, 0.0, 0.0])})],
          r"sample 'odd': NaN or infinite")
    fails([("odd", {"x.npy": np.ones(5)})],
          r"sample 'odd' has length \(5,\), sample 's0000' of .*bad\.tar has \(4,\)")
    good = png(np.zeros((4, 4), np.uint8), "L")
    imgs = write(tmp_path / "imgs.tar", [(k, {"png": good}) for k in keys]
                 + [("odd", {"png": b"\x89PNG not really"})])
    with pytest.raises(DataError, match=r"imgs\.tar: sample 'odd': not a readable image"):
        load_dataset(cfg(imgs, key="png"))
    write(imgs, [(k, {"png": good}) for k in keys] + [("odd", {"png": png(np.zeros(
        (5, 4), np.uint8), "L")})])
    with pytest.raises(DataError, match=r"sample 'odd' has mode and size \('L', \(4, 5\)\), "
                       r"sample 's0000' of .*imgs\.tar has \('L', \(4, 4\)\)"):
        load_dataset(cfg(imgs, key="png"))
    path = write(tmp_path / "good.tar", [(k, {"x.npy": r}) for k, r in zip(keys, x)])
    write(tmp_path / "again.tar", [("s0003", {"x.npy": x[0]})])
    with pytest.raises(DataError, match=r"again\.tar: sample key 's0003' repeats \(also in "
                       r".*good\.tar\)"):
        load_dataset(cfg(f"{path} {tmp_path / 'again.tar'}"))
    broken = tmp_path / "broken.tar"
    broken.write_bytes(path.read_bytes()[:700] + b"\x01" * 300)
    with pytest.raises(DataError, match=r"broken\.tar: not a readable tar"):
        load_dataset(cfg(broken))
    with pytest.raises(DataError, match=r"3 samples; need at least 10"):
        load_dataset(cfg(write(tmp_path / "few.tar", [(k, {"x.npy": r}) for k, r in
                                                       zip(keys[:3], x)])))


def test_where_the_tars_are_not(tmp_path):
    with pytest.raises(InputNotFound, match="data file not found"):
        load_dataset(cfg(tmp_path / "missing-{0..2}.tar"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFound, match="no .tar files in folder"):
        load_dataset(cfg(tmp_path / "empty"))
    with pytest.raises(DataError, match="member holding each sample must be"):
        load_dataset(cfg(tmp_path, key="json"))
    for bad in ({"urls": "a.tar"}, {"key": "npy"}, {"urls": "a.tar", "key": "npy", "path": "x"}):
        with pytest.raises(ValueError, match="'webdataset' needs 'urls'"):
            DataConfig(kind="webdataset", **bad)


def test_wsfm_check_reads_the_tars_and_names_a_bad_sample(tmp_path, capsys):
    x, keys = vectors(40, 3)
    x[25, 1] = np.inf
    tar = write(tmp_path / "d.tar", [(k, {"x.npy": r}) for k, r in zip(keys, x)])
    yaml = tmp_path / "p.yaml"
    yaml.write_text(f"name: vectors\ndata: {{kind: webdataset, urls: {tar}, key: x.npy}}\n")
    assert cli.main(["check", str(yaml)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"wsfm: error: {tar}: sample 's0025': NaN or infinite values")
    x[25, 1] = 0.0
    write(tar, [(k, {"x.npy": r}) for k, r in zip(keys, x)])
    assert cli.main(["check", str(yaml)]) == 0
    assert capsys.readouterr().out.startswith("vectors (profile default): data ok: webdataset, ")


def test_tarfile_members_without_a_dot_or_hidden_are_not_samples(tmp_path):
    """WebDataset's own rule: a member is (key).(extension); others are skipped."""
    x, keys = vectors(12)
    path = write(tmp_path / "d.tar", [(k, {"x.npy": r}) for k, r in zip(keys, x)])
    with tarfile.open(path, "a") as tar:
        for name in ("README", "dir/.hidden.npy"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
    data = load_dataset(cfg(path))
    assert len(data.train) + len(data.test) == 12
