import itertools

import numpy as np
import pytest

from wsfm.data.words import decode, encode
from wsfm.drafts import DRAFTS, CharNgramDraft, load_draft, read_kind


def test_bigram_counts_by_hand():
    d = CharNgramDraft(order=2).fit(encode(["ab", "b"], 4))
    start = 27
    assert d.contexts.tolist() == [1, 2, start]  # a, b, ^: the contexts seen, sorted
    c = dict(zip(d.contexts.tolist(), d.counts, strict=True))
    assert d.counts.shape == (3, 27) and d.counts.sum() == 5  # 3 symbols of "ab$" + 2 of "b$"
    assert c[start][1] == 1 and c[start][2] == 1  # ^a, ^b
    assert c[1][2] == 1 and c[2][0] == 2  # ab, b$
    assert (d.min_len, d.max_len, d.dim) == (1, 2, 4)
    p = d.probabilities()
    assert p.shape == (4, 27) and np.allclose(p.sum(axis=1), 1.0)
    assert np.allclose(p[-1], 1 / 27)  # a context never seen: uniform
    assert d.rows(np.array([start, 1, 5])).tolist() == [2, 0, 3]


def _count_ngrams_by_dict(words: list[str], order: int) -> dict[tuple[str, str], int]:
    """Reference counts: (context of order - 1 symbols, next symbol) over words padded
    with ``^`` before and ``$`` after, counted in plain Python."""
    out: dict[tuple[str, str], int] = {}
    for w in words:
        s = "^" * (order - 1) + w + "$"
        for i in range(order - 1, len(s)):
            key = (s[i - order + 1:i], s[i])
            out[key] = out.get(key, 0) + 1
    return out


@pytest.mark.parametrize("order", [1, 3, 5, 7])
def test_sparse_counts_match_a_plain_python_count(order):
    words = ["the", "then", "there", "other", "hat", "cathedral", "theatre", "ether"]
    d = CharNgramDraft(order=order).fit(encode(words, 12))
    sym = "$" + "abcdefghijklmnopqrstuvwxyz" + "^"
    got = {}
    for ctx, row in zip(d.contexts.tolist(), d.counts, strict=True):
        letters = "".join(sym[(ctx // 28 ** (order - 2 - j)) % 28] for j in range(order - 1))
        for nxt in np.flatnonzero(row):
            got[(letters, sym[nxt])] = int(row[nxt])
    assert got == _count_ngrams_by_dict(words, order)


def test_order_five_draws_only_seen_continuations():
    words = ["abcdef", "abcdxy", "bcdefg", "zzzzz"]
    d = CharNgramDraft(order=5).fit(encode(words, 8))
    grams = {w[i:i + 5] for w in ["^^^^" + w + "$" for w in words] for i in range(len(w) - 4)}
    for w in decode(d.sample(300, seed=3)):
        s = "^^^^" + w + "$"
        assert all(s[i:i + 5] in grams for i in range(len(s) - 4)), w


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
    from wsfm.drafts.ngram import MAX_ORDER

    assert 28 ** (MAX_ORDER - 1) < 2 ** 63  # every context id fits int64
    with pytest.raises(ValueError):
        CharNgramDraft(order=MAX_ORDER + 1)
    with pytest.raises(ValueError):
        CharNgramDraft(order=0)
    with pytest.raises(ValueError):
        CharNgramDraft().sample(3, 0)
    with pytest.raises(ValueError):
        CharNgramDraft().fit(np.zeros((2, 3)))  # empty words


def test_substitutes_follow_the_chain_given_the_real_prefix():
    # "ab" and "ac" after "^": a, then b or c (1/2 each), then the end. Teacher forcing on
    # the real word draws position 1 from P(. | a) and position 2 from P(. | b) or P(. | c).
    d = CharNgramDraft(order=2).fit(encode(["ab", "ac"], 5))
    x1 = encode(["ab"] * 4000 + ["ac"] * 4000, 5)
    sub = d.substitutes(x1, seed=3)
    assert sub.shape == x1.shape and sub.dtype == np.int64
    assert (sub[:, 0] == 1).all()  # after ^ always a
    share_b = (sub[:, 1] == 2).mean()
    assert set(np.unique(sub[:, 1])) == {2, 3} and abs(share_b - 0.5) < 0.03  # 4 sd at n 8000
    assert (sub[:, 2] == 0).all()  # after b or c: the end
    assert (sub[:, 3:] == 0).all()  # after the end: pad, never drawn
    assert np.array_equal(sub, d.substitutes(x1, seed=3))  # a pure function of the seed
    assert not np.array_equal(sub, d.substitutes(x1, seed=4))


def test_substitutes_draw_the_end_inside_a_word_and_letters_past_it():
    # Trained on "a" and "aaa": after "a" the chain ends (1/2 ... ) or goes on, so on the
    # real word "aa" position 1 may be an end, and position 2 (its end) may be a letter;
    # the probabilities are the counted ones: P(end | a) = 2/4 with order 2.
    d = CharNgramDraft(order=2).fit(encode(["a", "aaa"], 4))
    p_end = d.probabilities()[d.rows(np.array([1]))[0], 0]
    assert p_end == 0.5
    sub = d.substitutes(encode(["aa"] * 6000, 4), seed=0)
    assert abs((sub[:, 1] == 0).mean() - p_end) < 0.03
    assert abs((sub[:, 2] == 1).mean() - (1 - p_end)) < 0.03  # a letter where "aa" ended
    assert (sub[:, 3] == 0).all()


def test_substitutes_refuse_codes_of_another_width_or_alphabet():
    d = CharNgramDraft(order=2).fit(encode(["ab"], 4))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        d.substitutes(np.zeros((2, 5), dtype=np.int64), 0)
    with pytest.raises(ValueError, match=r"\[0, 26\]"):
        d.substitutes(np.full((2, 4), 27), 0)
    assert d.substitutes(np.zeros((0, 4), dtype=np.int64), 0).shape == (0, 4)
