"""Users' data in an object store (wsfm.data.remote): Parquet files and WebDataset tars in a
bucket of a real S3-compatible server (moto, on 127.0.0.1) load exactly as the same files on
disk do (the same rows on the same side of the split), named as an object, a prefix or a glob;
a bad row is named by its object's URI; what is not there, or a store that cannot be reached,
is one clear error."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from tests.s3server import CREDENTIALS, make_bucket, moto_server
from wsfm.config import DataConfig
from wsfm.data.datasets import load_dataset
from wsfm.data.remote import remote_files, source_name
from wsfm.errors import DataError, InputNotFound

BUCKET = "users-data"


def write_parquet(path, x):
    """Rows of ``x`` as a ``list<float>`` column ``x``."""
    pq.write_table(pa.table({"x": pa.array([list(r) for r in x], type=pa.list_(pa.float32()))}),
                   path)
    return path


def write_tar(path, samples):
    """samples: [(key, {extension: value})] -> one tar at path, by WebDataset's writer."""
    with wds.TarWriter(str(path)) as sink:
        for key, members in samples:
            sink.write({"__key__": key, **members})
    return path


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        make_bucket(url, BUCKET)
        yield url


@pytest.fixture
def store(endpoint, monkeypatch):
    """The server as the environment names it; ``put(local, key)`` uploads a file."""
    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    fs = pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1",
                           access_key="testing", secret_key="testing")

    def put(local, key: str) -> str:
        with fs.open_output_stream(f"{BUCKET}/{key}") as out:
            out.write(local.read_bytes())
        return f"s3://{BUCKET}/{key}"
    return put


def same(a, b) -> None:
    for part in ("train", "test"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    assert a.kind == b.kind and a.shape == b.shape


def test_parquet_in_a_bucket_loads_as_the_same_files_on_disk(tmp_path, store):
    rng = np.random.default_rng(0)
    local = tmp_path / "vecs"
    local.mkdir()
    for i in range(3):
        f = write_parquet(local / f"part-{i}.parquet", rng.normal(size=(40, 5)))
        store(f, f"pq/vecs/part-{i}.parquet")
    store(write_parquet(tmp_path / "other.parquet", rng.normal(size=(40, 5))), "pq/other.parquet")
    on_disk = load_dataset(DataConfig(kind="parquet", path=str(local), column="x"))
    for path in (f"s3://{BUCKET}/pq/vecs", f"s3://{BUCKET}/pq/vecs/", f"s3://{BUCKET}/pq/v*/*"):
        same(load_dataset(DataConfig(kind="parquet", path=path, column="x")), on_disk)
    one = load_dataset(DataConfig(kind="parquet", path=f"s3://{BUCKET}/pq/vecs/part-1.parquet",
                                  column="x"))
    same(one, load_dataset(DataConfig(kind="parquet", path=str(local / "part-1.parquet"),
                                      column="x")))


def test_tars_in_a_bucket_load_as_the_same_tars_on_disk(tmp_path, store):
    x = np.random.default_rng(1).normal(size=(60, 4)).astype(np.float32)
    for t in range(3):
        write_tar(tmp_path / f"data-{t:03d}.tar",
                  [(f"s{i:04d}", {"x.npy": x[i]}) for i in range(t * 20, t * 20 + 20)])
        store(tmp_path / f"data-{t:03d}.tar", f"wds/data-{t:03d}.tar")
    on_disk = load_dataset(DataConfig(kind="webdataset", urls=str(tmp_path / "data-{000..002}.tar"),
                                      key="x.npy"))
    for urls in (f"s3://{BUCKET}/wds/data-{{000..002}}.tar", f"s3://{BUCKET}/wds",
                 f"s3://{BUCKET}/wds/data-000.tar s3://{BUCKET}/wds/data-00[12].tar"):
        same(load_dataset(DataConfig(kind="webdataset", urls=urls, key="x.npy")), on_disk)


def test_a_bad_row_is_named_by_its_objects_uri(tmp_path, store):
    x = np.random.default_rng(2).normal(size=(30, 3))
    x[17, 1] = np.nan
    uri = store(write_parquet(tmp_path / "bad.parquet", x), "bad/bad.parquet")
    with pytest.raises(DataError, match=f"^{uri}: row 17: NaN or infinite"):
        load_dataset(DataConfig(kind="parquet", path=uri, column="x"))
    uri = store(write_tar(tmp_path / "t.tar", [("a", {"x.npy": np.ones(3, np.float32)}),
                                               ("b", {"txt": "no array"})]), "bad/t.tar")
    with pytest.raises(DataError, match=f"^{uri}: sample 'b' has no member 'x.npy'"):
        load_dataset(DataConfig(kind="webdataset", urls=uri, key="x.npy"))


def test_what_is_not_in_the_bucket_is_named(store):
    with pytest.raises(InputNotFound, match=f"data not found: s3://{BUCKET}/nope.parquet"):
        remote_files(f"s3://{BUCKET}/nope.parquet", ".parquet")
    with pytest.raises(InputNotFound, match="no objects match"):
        remote_files(f"s3://{BUCKET}/pq/*.none", ".parquet")
    with pytest.raises(InputNotFound, match=f"no .tar objects under s3://{BUCKET}/pq"):
        remote_files(f"s3://{BUCKET}/pq", ".tar")
    assert source_name(f"s3://{BUCKET}/a/b/part-3.parquet") == "part-3.parquet"


def test_a_store_that_cannot_be_reached_is_one_error(monkeypatch):
    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(DataError, match="the object store cannot be read"):
        remote_files(f"s3://{BUCKET}/pq", ".parquet")


def test_wsfm_check_reads_a_bucket(tmp_path, store, capsys):
    from wsfm.cli import app as cli

    x = np.random.default_rng(3).normal(size=(50, 2))
    uri = store(write_parquet(tmp_path / "v.parquet", x), "check/v.parquet")
    yaml = tmp_path / "p.yaml"
    yaml.write_text(f"name: vectors\ndata: {{kind: parquet, path: '{uri}', column: x}}\n")
    assert cli.main(["check", str(yaml)]) == 0
    assert capsys.readouterr().out.startswith("vectors (profile default): data ok: parquet, ")
