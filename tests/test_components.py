"""wsfm.components.judged: the rows an evaluator is fitted on and scored against are a seeded
sample of at most ``evaluate.test_rows`` of each split, their labels with them."""

import dataclasses

import numpy as np

from wsfm.components import judged
from wsfm.config import PipelineConfig
from wsfm.data.base import Dataset


def labelled(n_train: int, n_test: int) -> Dataset:
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(n_train, 3)), rng.normal(size=(n_test, 3))
    # each row's label is a function of the row: a label that travels with its row stays equal
    return Dataset("vector", train, test, train[:10], shape=(3,),
                   labels=(train[:, 0] > 0).astype(int), test_labels=(test[:, 0] > 0).astype(int))


def config(test_rows: int, seed: int = 0) -> PipelineConfig:
    base = PipelineConfig(name="t")
    return dataclasses.replace(base, seed=seed, evaluate=dataclasses.replace(
        base.evaluate, test_rows=test_rows))


def test_each_split_is_a_seeded_sample_of_its_own_rows_with_their_labels():
    data = labelled(500, 300)
    sample = judged(data, config(100))
    for part, labels in (("train", "labels"), ("test", "test_labels")):
        x, y = getattr(sample, part), getattr(sample, labels)
        rows = {tuple(r) for r in getattr(data, part).tolist()}
        assert len(x) == 100 and len({tuple(r) for r in x.tolist()}) == 100
        assert {tuple(r) for r in x.tolist()} <= rows
        np.testing.assert_array_equal(y, (x[:, 0] > 0).astype(int))
    assert sample.reference is data.reference
    again, other = judged(data, config(100)), judged(data, config(100, seed=1))
    np.testing.assert_array_equal(again.test, sample.test)  # the seed decides
    assert not np.array_equal(other.test, sample.test)


def test_a_split_smaller_than_test_rows_is_kept_whole():
    data = labelled(50, 300)
    sample = judged(data, config(100))
    assert sample.train is data.train and sample.labels is data.labels and len(sample.test) == 100
    assert judged(data, config(300)) is data
