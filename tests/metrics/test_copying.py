import numpy as np
import pytest

from wsfm.metrics.copying import (
    NEAR_COPY_QUANTILE,
    CopyingReference,
    copying_metrics,
    nearest_distances,
    text_copying,
)


def clouds(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(4000, 3)), rng.normal(size=(2000, 3)), rng.normal(size=(2000, 3))


def test_nearest_distances_match_brute_force():
    rng = np.random.default_rng(1)
    x, train = rng.normal(size=(300, 4)), rng.normal(size=(700, 4))
    brute = np.sqrt(((x[:, None, :] - train[None]) ** 2).sum(-1)).min(1)
    assert np.allclose(nearest_distances(x, train), brute)


def test_copies_of_the_training_set_score_zero_and_all_near_copies():
    train, held_out, _ = clouds()
    ref = CopyingReference.fit(train, held_out)
    m = copying_metrics(train[:1000], train, ref)
    assert m["copy_ratio"] == 0.0 and m["near_copy_share"] == 1.0


def test_fresh_data_scores_one_and_the_quantile():
    train, held_out, fresh = clouds()
    ref = CopyingReference.fit(train, held_out)
    m = copying_metrics(fresh, train, ref)
    assert m["copy_ratio"] == pytest.approx(1.0, abs=0.08)
    assert m["near_copy_share"] == pytest.approx(NEAR_COPY_QUANTILE, abs=0.02)
    # The held-out rows themselves: the ratio is 1 by definition.
    assert copying_metrics(held_out, train, ref)["copy_ratio"] == pytest.approx(1.0)


def test_jittered_copies_fall_between():
    train, held_out, _ = clouds()
    ref = CopyingReference.fit(train, held_out)
    jitter = train[:1000] + 0.01 * ref.held_out_median * np.random.default_rng(3).normal(
        size=(1000, 3))
    m = copying_metrics(jitter, train, ref)
    assert 0.0 < m["copy_ratio"] < 0.1 and m["near_copy_share"] > 0.9


def test_a_leaking_split_is_refused():
    train, _, _ = clouds()
    with pytest.raises(ValueError, match="leaks"):
        CopyingReference.fit(train, train[:100])


def test_text_copying_by_hand():
    train, held_out = {"cat", "dog"}, {"horse", "cat"}
    m = text_copying(["cat", "cat", "horse", "zzz"], train, held_out)
    assert m == {"train_share": 0.5, "held_out_share": 0.25, "distinct_share": 0.75}
