"""Stage ``prepare_data``: the head of the DAG, and every other stage reads from it."""

import dataclasses

import numpy as np

from tests.helpers import context
from wsfm.config import DataConfig
from wsfm.data.datasets import load_dataset
from wsfm.data.prepared import load_prepared
from wsfm.orchestrate.local import LocalRuntime
from wsfm.stages import STAGES
from wsfm.stages.prepare_data import prepare_data


def test_the_stage_writes_the_splits_and_reports_their_rows(tmp_path, tiny_config):
    cfg = dataclasses.replace(tiny_config, data=DataConfig(kind="digits", seed=1))
    result = prepare_data(context(cfg, tmp_path / "out"))
    data = load_dataset(cfg.data)
    back = load_prepared(tmp_path / "out")
    assert np.array_equal(back.train, data.train) and np.array_equal(back.labels, data.labels)
    assert (result.params["n_train"], result.params["n_test"], result.params["dim"]) == (
        len(data.train), len(data.test), 64)
    assert result.metrics["bytes"] > data.train.nbytes
    assert result.metrics["seconds"] >= result.metrics["read_seconds"] + result.metrics[
        "write_seconds"] - 1e-9


def test_it_is_the_head_and_every_other_stage_reads_it():
    head = [s for s in STAGES if not s.deps]
    assert [s.name for s in head] == ["prepare_data"]
    assert all("prepare_data" in s.deps for s in STAGES if s.deps)


def test_a_parquet_source_is_streamed_into_the_shards_its_loader_gives(tmp_path, tiny_config):
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.random.default_rng(0).normal(size=(900, 3)).astype(np.float32)
    pq.write_table(pa.table({"x": pa.array(x.tolist(), type=pa.list_(pa.float32()))}),
                   tmp_path / "rows.parquet")
    data_cfg = DataConfig(kind="parquet", path=str(tmp_path / "rows.parquet"), column="x")
    cfg = dataclasses.replace(tiny_config, data=data_cfg)
    result = prepare_data(context(cfg, tmp_path / "out", runtime=LocalRuntime()))
    assert result.params["streamed"] and result.params["kind"] == "vector"
    assert "read_seconds" not in result.metrics and result.metrics["seconds"] > 0  # one pass
    data, back = load_dataset(data_cfg), load_prepared(tmp_path / "out")
    for split in ("train", "test", "reference"):
        assert np.array_equal(getattr(back, split), getattr(data, split)), split
    assert result.params["n_train"] + result.params["n_test"] == 900
