"""wsfm.components.judged: the rows an evaluator is fitted on and scored against are a seeded
sample of at most ``evaluate.test_rows`` of each split, their labels with them, read from the
prepared data."""

import dataclasses

import numpy as np

from wsfm.components import judged
from wsfm.config import PipelineConfig
from wsfm.data.base import Dataset
from wsfm.data.prepared import PreparedData, write_prepared


def labelled(folder, n_train: int, n_test: int) -> tuple[Dataset, PreparedData]:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(n_train, 3)).astype(np.float32)
    test = rng.normal(size=(n_test, 3)).astype(np.float32)
    # each row's label is a function of the row: a label that travels with its row stays equal
    data = Dataset("vector", train, test, train[:10], shape=(3,),
                   labels=(train[:, 0] > 0).astype(np.int64),
                   test_labels=(test[:, 0] > 0).astype(np.int64))
    write_prepared(data, folder, shard_bytes=1024 * 3 * 4)  # several shards
    return data, PreparedData(folder)


def config(test_rows: int, seed: int = 0) -> PipelineConfig:
    base = PipelineConfig(name="t")
    return dataclasses.replace(base, seed=seed, evaluate=dataclasses.replace(
        base.evaluate, test_rows=test_rows))


def test_each_split_is_a_seeded_sample_of_its_own_rows_with_their_labels(tmp_path):
    data, prepared = labelled(tmp_path, 2500, 1300)
    sample = judged(prepared, config(100))
    for part, labels in (("train", "labels"), ("test", "test_labels")):
        x, y = getattr(sample, part), getattr(sample, labels)
        rows = {tuple(r) for r in getattr(data, part).tolist()}
        assert len(x) == 100 and len({tuple(r) for r in x.tolist()}) == 100
        assert {tuple(r) for r in x.tolist()} <= rows
        np.testing.assert_array_equal(y, (x[:, 0] > 0).astype(int))
    assert len(sample.reference) == 0  # not read
    again, other = judged(prepared, config(100)), judged(prepared, config(100, seed=1))
    np.testing.assert_array_equal(again.test, sample.test)  # the seed decides
    assert not np.array_equal(other.test, sample.test)
    test_only = judged(prepared, config(100), train=False)
    np.testing.assert_array_equal(test_only.test, sample.test)
    assert len(test_only.train) == 0


def test_a_split_smaller_than_test_rows_is_kept_whole(tmp_path):
    data, prepared = labelled(tmp_path, 50, 300)
    sample = judged(prepared, config(100))
    np.testing.assert_array_equal(sample.train, data.train)
    np.testing.assert_array_equal(sample.labels, data.labels)
    assert len(sample.test) == 100
    whole = judged(prepared, config(300))
    np.testing.assert_array_equal(whole.test, data.test)
    np.testing.assert_array_equal(whole.test_labels, data.test_labels)
