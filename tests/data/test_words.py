import numpy as np
import pytest

from wsfm.data.words import (
    ALPHABET,
    PAD,
    VOCAB,
    decode,
    encode,
    from_one_hot,
    load_words,
    one_hot,
    top_words,
)


def test_encode_hand_values():
    codes = encode(["abc", "z", "ba"], max_len=4)
    assert codes.dtype == np.int64
    assert codes.tolist() == [[1, 2, 3, 0], [26, 0, 0, 0], [2, 1, 0, 0]]


def test_decode_round_trip_and_stops_at_first_pad():
    words = ["hello", "xyz", "abcdefghijkl"]
    assert decode(encode(words, 12)) == words
    assert decode(encode(words, 12).astype(np.float32)) == words
    assert decode(np.array([[3, 1, 0, 20, 0]])) == ["ca"]  # "t" after the pad is dropped
    assert decode(np.zeros((1, 5), dtype=np.int64)) == [""]


@pytest.mark.parametrize("bad", [["Hello"], ["abc1"], ["abcdefghijklm"]])
def test_encode_rejects_bad_words(bad):
    with pytest.raises(ValueError):
        encode(bad, 12)


def test_decode_rejects_out_of_range_and_fractional_codes():
    with pytest.raises(ValueError):
        decode(np.array([[27, 0]]))
    with pytest.raises(ValueError):
        decode(np.array([[1.5, 0.0]]))


def test_one_hot_layout_and_inverse():
    codes = np.array([[2, 0], [26, 5]])
    x = one_hot(codes)
    assert x.shape == (2, 2 * VOCAB) and x.dtype == np.float32
    assert x.sum() == 4
    assert x[0, 2] == 1 and x[0, VOCAB + PAD] == 1  # position-major: i * VOCAB + c
    assert x[1, 26] == 1 and x[1, VOCAB + 5] == 1
    assert np.array_equal(from_one_hot(x), codes)
    noisy = x + 0.15 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    assert np.array_equal(from_one_hot(noisy), codes)


def test_top_words_filters_then_cuts():
    import wordfreq

    words = top_words(300)
    assert len(words) == 300 and len(set(words)) == 300
    assert all(3 <= len(w) <= 12 and set(w) <= set(ALPHABET) for w in words)
    raw = wordfreq.top_n_list("en", 2000)
    expect = [w for w in raw if 3 <= len(w) <= 12 and w.isascii() and w.isalpha()
              and w.islower()][:300]
    assert words == expect  # the same words in frequency order


def test_load_words_split():
    d = load_words(1000, seed=3)
    assert len(d.train) == 900 and len(d.test) == 100
    assert set(d.train) | set(d.test) == d.valid and not set(d.train) & set(d.test)
    assert d.train_codes.shape == (900, 12) and d.test_codes.shape == (100, 12)
    again, other = load_words(1000, seed=3), load_words(1000, seed=4)
    assert again.test == d.test and other.test != d.test
