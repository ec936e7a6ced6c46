import dataclasses

import numpy as np
import pytest

from wsfm.config import DataConfig
from wsfm.data.base import Dataset
from wsfm.data.datasets import load_dataset
from wsfm.metrics.evaluators import ImageEvaluator, VectorEvaluator, load_evaluator


def test_vector_evaluator_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    test, samples = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 0.5
    ev = VectorEvaluator(n_projections=64)
    ev.fit(Dataset("vector", train=test, test=test, reference=test))
    ev.save(tmp_path)
    assert load_evaluator(tmp_path).score(samples, test) == ev.score(samples, test)


@pytest.mark.parametrize("labelled", [True, False])
def test_image_evaluator_ranks_noise_below_data_and_round_trips(tmp_path, labelled):
    data = load_dataset(DataConfig(kind="digits"))
    ev = ImageEvaluator(seed=0)
    ev.fit(data if labelled else dataclasses.replace(data, labels=None))
    ev.save(tmp_path)
    loaded = load_evaluator(tmp_path)
    noise = np.random.default_rng(0).uniform(-1, 1, size=data.reference.shape)
    real, fake = loaded.score(data.reference, data.test), loaded.score(noise, data.test)
    assert real["fd"] < fake["fd"] / 5
    assert real == ev.score(data.reference, data.test)
    if labelled:
        assert real["confidence"] > fake["confidence"]


def test_image_evaluator_is_fitted_on_the_held_out_split_where_its_labels_are_known():
    """With held-out labels (glyphs) the classifier learns from the held-out split: here the
    training split has one class and the held-out split three, so the fitted head has three."""
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(40, 16)), rng.normal(size=(30, 16))
    data = Dataset("image", train, test, train[:10], shape=(1, 4, 4),
                   labels=np.zeros(40, np.int64), test_labels=np.arange(30) % 3)
    ev = ImageEvaluator(seed=0)
    ev.fit(data)
    assert ev.classes == 3 and ev.net is not None and ev.net.head.out_features == 3


def test_text_evaluator_scores_real_words_perfectly_and_round_trips(tmp_path):
    from wsfm.data.words import encode
    from wsfm.metrics.evaluators import TextEvaluator

    data = load_dataset(DataConfig(kind="words", top_n=500))
    ev = TextEvaluator()
    ev.fit(data)
    ev.save(tmp_path)
    loaded = load_evaluator(tmp_path)
    real = loaded.score(data.reference, data.test)
    # Real data: words drawn from every word, so held-out ones as often as the split has them.
    from wsfm.data.words import decode

    held_out = set(data.text.test_words)
    share = np.mean([w in held_out for w in decode(data.reference)])
    assert loaded.primary == "novel_valid_rate"
    assert real["valid_rate"] == 1.0 and real["novel_valid_rate"] == pytest.approx(share)
    assert 0.05 < share < 0.4  # test_fraction 0.2 of 500 words, 100 draws
    junk = encode(["qqqq", "zzxz", "xkcd"] * 10, 12)
    assert loaded.score(junk, data.test)["valid_rate"] == 0.0
    assert real == ev.score(data.reference, data.test)


def test_prose_evaluator_ranks_real_text_above_noise_and_round_trips(tmp_path):
    from wsfm.metrics.evaluators import ProseEvaluator

    data = load_dataset(DataConfig(kind="prose", max_len=64, n_test=300))
    ev = ProseEvaluator()
    ev.fit(data)
    ev.save(tmp_path)
    loaded = load_evaluator(tmp_path)
    assert isinstance(loaded, ProseEvaluator) and loaded.primary == "nll"
    real = loaded.score(data.reference[:300], data.test)
    assert real == ev.score(data.reference[:300], data.test)
    noise = np.random.default_rng(0).integers(1, 96, size=(300, 64))
    fake = loaded.score(noise, data.test)
    assert real["nll"] < 3.0 < 6.0 < fake["nll"]  # judge fitted on other held-out topics
    assert real["entropy"] < fake["entropy"] and real["word_share"] > fake["word_share"]
    assert loaded.score(data.train[:50], data.test)["copy32"] == 1.0  # training windows
