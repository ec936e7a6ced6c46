import math

import numpy as np
import pytest

from wsfm.metrics.text import CharNgramLM, length_histogram, text_metrics

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def test_standardised_rate_by_hand():
    # Reference lengths: 3, 3, 5 -> weights w3 = 2/3, w5 = 1/3.
    valid = {"cat", "dog", "horse"}
    train = {"cat"}
    samples = ["cat", "cax", "dog", "dox", "horse", "zz"]
    m = text_metrics(samples, train, valid, [3, 3, 5], CharNgramLM(2).fit(sorted(valid)))
    # length 3: 2 valid of 4 -> 1/2; length 5: 1 of 1; length 2 has no weight.
    assert m["valid_rate_std"] == pytest.approx(2 / 3 * 1 / 2 + 1 / 3 * 1)
    assert m["valid_rate"] == pytest.approx(3 / 6)
    assert m["novel_valid_rate"] == pytest.approx(2 / 6)  # dog, horse
    # sample histogram: len2 1/6, len3 4/6, len5 1/6; reference len3 2/3, len5 1/3
    assert m["length_tv"] == pytest.approx(0.5 * (1 / 6 + 0 + 1 / 6))


def test_missing_length_counts_as_zero():
    m = text_metrics(["cat"], set(), {"cat"}, [3, 5], CharNgramLM(1).fit(["cat"]))
    assert m["valid_rate_std"] == pytest.approx(0.5)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_lm_distributions_sum_to_one(order):
    lm = CharNgramLM(order, discount=0.6).fit(["the", "then", "that", "cat", "hat", "a"])
    for ctx in ["", "t", "th", "tha", "zzz", "qthe", "cat"]:
        total = sum(lm.prob(c, ctx) for c in LETTERS + "$")
        assert total == pytest.approx(1.0, abs=1e-12)
        assert all(lm.prob(c, ctx) > 0 for c in LETTERS + "$")


def test_lm_unigram_by_hand():
    # order 1, words "ab", "a": symbols a, b, $, a, $ -> n = 5, T = 3, D = 0.5.
    lm = CharNgramLM(1, discount=0.5).fit(["ab", "a"])
    assert lm.prob("a", "") == pytest.approx((2 - 0.5 + 0.5 * 3 / 27) / 5)
    assert lm.prob("z", "") == pytest.approx((0.5 * 3 / 27) / 5)
    nll = -(2 * math.log(lm.prob("a", "")) + math.log(lm.prob("b", ""))
            + 2 * math.log(lm.prob("$", "")))
    assert lm.nll_per_char(["ab", "a"]) == pytest.approx(nll / 5)


def test_lm_bigram_by_hand():
    # order 2, word "ab": events (^, a), (a, b), (b, $); context "a" has n = 1, T = 1.
    lm = CharNgramLM(2, discount=0.5).fit(["ab"])
    p0 = (1 - 0.5 + 0.5 * 3 / 27) / 3  # unigram P(b): n = 3, T = 3
    assert lm.prob("b", "a") == pytest.approx((1 - 0.5 + 0.5 * 1 * p0) / 1)
    assert lm.prob("b", "zq") == pytest.approx(p0)  # unseen context: back off


def test_lm_prefers_its_own_words():
    lm = CharNgramLM(5).fit(["banana", "bandana", "cabana"] * 3)
    assert lm.nll_per_char(["banana"]) < lm.nll_per_char(["qzxwv"])


def test_length_histogram():
    assert np.allclose(length_histogram([1, 1, 3], 3), [0, 2 / 3, 0, 1 / 3])
    with pytest.raises(ValueError):
        length_histogram([4], 3)


def test_sample_entropy_by_hand():
    from wsfm.metrics.text import sample_entropy

    # "ab" + end, "ab" + end: a, b, $ each 1/3 -> log 3; one repeated letter: "aaa" -> a 3/4, $ 1/4.
    assert sample_entropy(["ab", "ab"]) == pytest.approx(math.log(3))
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert sample_entropy(["aaa"]) == pytest.approx(expected)
    lm = CharNgramLM(1).fit(["cat"])
    assert "sample_entropy" in text_metrics(["cat"], set(), {"cat"}, [3], lm)
