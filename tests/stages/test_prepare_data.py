"""Stage ``prepare_data``: the head of the DAG, and every other stage reads from it."""

import dataclasses

import numpy as np

from tests.helpers import context
from wsfm.config import DataConfig
from wsfm.data.datasets import load_dataset
from wsfm.data.prepared import load_prepared
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


def test_it_is_the_head_and_every_other_stage_reads_it():
    head = [s for s in STAGES if not s.deps]
    assert [s.name for s in head] == ["prepare_data"]
    assert all("prepare_data" in s.deps for s in STAGES if s.deps)
