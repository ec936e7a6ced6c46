"""The window n-gram draft: closed-form chains, back-off, teacher-forced substitutes."""

from __future__ import annotations

import numpy as np
import pytest

from wsfm.drafts import WindowNgramDraft, load_draft


def _periodic(n: int, width: int, period: int = 3) -> np.ndarray:
    """Windows of the text 1 2 3 1 2 3 ... at every offset."""
    text = np.arange(n + width + period) % period + 1
    return np.stack([text[i:i + width] for i in range(n)])


def test_an_order_two_chain_on_a_periodic_text_writes_the_period():
    data = _periodic(30, 10)
    draft = WindowNgramDraft(order=2).fit(data)
    x = draft.sample(200, seed=0)
    assert x.shape == (200, 10) and x.dtype == np.int64
    # every step follows the only continuation seen: c -> c % 3 + 1
    assert np.array_equal(x[:, 1:], x[:, :-1] % 3 + 1)
    # the first character comes from the unigram table: all three appear
    assert set(x[:, 0]) == {1, 2, 3}


def test_order_one_draws_the_character_frequencies():
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.3, 0.2])
    data = rng.choice([1, 2, 3], p=p, size=(2000, 16))
    x = WindowNgramDraft(order=1).fit(data).sample(4000, seed=1)
    freq = np.bincount(x.ravel(), minlength=4)[1:] / x.size
    assert np.abs(freq - np.bincount(data.ravel(), minlength=4)[1:] / data.size).max() < 0.01


def test_substitutes_follow_the_real_left_context_and_back_off_where_unseen():
    draft = WindowNgramDraft(order=3).fit(_periodic(30, 10))
    real = _periodic(5, 10)
    sub = draft.substitutes(real, seed=0)
    assert np.array_equal(sub[:, 2:], real[:, 2:])  # a deterministic text: the same text
    odd = np.array([[3, 3, 3, 1, 2, 3, 1, 2, 3, 1]])  # "3 3" never seen: back off to "3"
    assert np.array_equal(draft.substitutes(odd, seed=0)[0, 2:4], [1, 1])


def test_sampling_is_deterministic_and_survives_save_and_load(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(1, 20, size=(300, 24))
    draft = WindowNgramDraft(order=4).fit(data)
    draft.save(tmp_path / "d.npz")
    loaded = load_draft(tmp_path / "d.npz")
    assert isinstance(loaded, WindowNgramDraft) and loaded.dim == 24
    assert np.array_equal(loaded.sample(50, 3), draft.sample(50, 3))
    assert not np.array_equal(draft.sample(50, 3), draft.sample(50, 4))
    assert np.array_equal(loaded.substitutes(data[:5], 1), draft.substitutes(data[:5], 1))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="order"):
        WindowNgramDraft(order=0)
    with pytest.raises(ValueError, match=">= 1"):
        WindowNgramDraft().fit(np.zeros((3, 4), dtype=np.int64))  # padded words, not windows
    with pytest.raises(ValueError, match="not fitted"):
        WindowNgramDraft().sample(1, 0)
