import itertools

import numpy as np
import pytest

from wsfm.data.words import decode, encode
from wsfm.drafts import DRAFTS, CharNgramDraft, load_draft, read_kind


def test_bigram_counts_by_hand():
    d = CharNgramDraft(order=2).fit(encode(["ab", "b"], 4))
    c = d.counts
    start = 27
    assert c.shape == (28, 27) and c.sum() == 5  # 3 symbols of "ab$" + 2 of "b$"
    assert c[start, 1] == 1 and c[start, 2] == 1  # ^a, ^b
    assert c[1, 2] == 1 and c[2, 0] == 2  # ab, b$
    assert (d.min_len, d.max_len, d.dim) == (1, 2, 4)
    assert np.allclose(d.probabilities().sum(axis=1), 1.0)


def _exact_word_probs(table: dict[str, dict[str, float]], lengths: range) -> dict[str, float]:
    """Bigram chain probabilities of every word over {a, b} with length in ``lengths``,
    renormalised (the draft resamples other lengths)."""
    probs = {}
    for n in lengths:
        for letters in itertools.product("ab", repeat=n):
            w, p, prev = "".join(letters), 1.0, "^"
            for ch in w + "$":
                p *= table[prev].get(ch, 0.0)
                prev = ch
            probs[w] = p
    z = sum(probs.values())
    return {w: p / z for w, p in probs.items() if p > 0}


def test_bigram_samples_follow_the_conditioned_chain():
    words = ["ab", "aab", "ba", "bb"]
    # Transitions counted by hand: ^: a 2, b 2; a: a 1, b 2, $ 1; b: a 1, b 1, $ 3.
    table = {"^": {"a": 0.5, "b": 0.5}, "a": {"a": 0.25, "b": 0.5, "$": 0.25},
             "b": {"a": 1 / 5, "b": 1 / 5, "$": 3 / 5}}
    exact = _exact_word_probs(table, range(2, 4))
    draft = CharNgramDraft(2).fit(encode(words, 3))
    got = decode(draft.sample(40_000, seed=0))
    assert set(got) <= set(exact)
    for w, p in exact.items():
        freq = got.count(w) / len(got)
        assert abs(freq - p) < 4 * np.sqrt(p * (1 - p) / len(got)) + 1e-3, (w, freq, p)


def test_samples_are_typed_in_range_and_deterministic():
    words = ["the", "then", "there", "other", "hat", "cathedral"]
    draft = CharNgramDraft(order=3).fit(encode(words, 12))
    x = draft.sample(500, seed=1)
    assert x.shape == (500, 12) and x.dtype == np.int64
    lengths = [len(w) for w in decode(x)]
    assert min(lengths) >= 3 and max(lengths) <= 9  # the training range: "hat" to "cathedral"
    assert max(lengths) == 9
    assert np.array_equal(x, draft.sample(500, seed=1))
    assert not np.array_equal(x, draft.sample(500, seed=2))
    assert draft.sample(0, seed=0).shape == (0, 12)


def test_high_order_reproduces_a_single_word():
    draft = CharNgramDraft(order=4).fit(["banana"])
    assert set(decode(draft.sample(50, seed=0))) <= {"banana", "bananana", "banananana"} | {
        "ba" + "na" * k for k in range(2, 6)}
    assert "banana" in decode(draft.sample(50, seed=0))


def test_save_load_round_trip(tmp_path):
    draft = CharNgramDraft(order=3, alpha=0.1).fit(encode(["alpha", "beta", "gamma"], 8))
    path = tmp_path / "ngram.bin"
    draft.save(path)
    assert read_kind(path) == "ngram" and DRAFTS["ngram"] is CharNgramDraft
    with np.load(path, allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)
    loaded = load_draft(path)
    assert isinstance(loaded, CharNgramDraft)
    assert (loaded.order, loaded.alpha, loaded.min_len, loaded.max_len) == (3, 0.1, 4, 5)
    assert loaded.dim == 8
    assert np.array_equal(loaded.sample(300, 5), draft.sample(300, 5))
    assert loaded.cost_per_sample == draft.cost_per_sample > 0


def test_errors():
    with pytest.raises(ValueError):
        CharNgramDraft(order=5)
    with pytest.raises(ValueError):
        CharNgramDraft().sample(3, 0)
    with pytest.raises(ValueError):
        CharNgramDraft().fit(np.zeros((2, 3)))  # empty words
